//! A setting that parses but cannot work. Each part checks its own settings (a URL that is no
//! URL, a name used twice, a file that cannot be read, two settings that go together) and
//! names the one at fault as the configuration file writes it (`notify.webhook[0].url`), so
//! that the message leads a user to the line to change, and a caller or a test can tell which
//! setting it was without reading the message.

/// What is wrong with a setting, and which one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SettingError {
    /// The setting at fault, as the file writes it (the first of two that go together).
    pub setting: String,
    /// The whole message, the setting named in it.
    pub message: String,
}

impl SettingError {
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> SettingError {
        SettingError {
            setting: setting.into(),
            message: message.into(),
        }
    }
}
