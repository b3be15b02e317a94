//! Durations in configuration files: `"90s"`, `"10m"`, `"1h"`, `"7d"`, `"250ms"`, `"0s"`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A span of event time, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(pub i64);

impl Span {
    pub const fn secs(s: i64) -> Span {
        Span(s * 1000)
    }
    pub const fn mins(m: i64) -> Span {
        Span(m * 60_000)
    }
    pub fn ms(self) -> i64 {
        self.0
    }

    /// As a `std::time::Duration`, at least a millisecond (a zero timeout would fail every
    /// wait at once).
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.ms().max(1) as u64)
    }
}

/// A text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error("{0:?} is not a duration (like \"90s\", \"10m\", \"1h\", \"7d\")")]
    NotADuration(String),
    #[error("unknown unit {unit:?} in duration {text:?} (use ms, s, m, h, d or w)")]
    UnknownUnit { unit: String, text: String },
}

impl std::str::FromStr for Span {
    type Err = SpanError;
    fn from_str(s: &str) -> Result<Span, SpanError> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| SpanError::NotADuration(s.to_string()))?;
        let mult = match unit.trim() {
            "ms" => 1.0,
            "s" | "sec" | "secs" => 1000.0,
            "m" | "min" | "mins" => 60_000.0,
            "h" | "hour" | "hours" => 3_600_000.0,
            "d" | "day" | "days" => 86_400_000.0,
            "w" | "week" | "weeks" => 604_800_000.0,
            u => {
                return Err(SpanError::UnknownUnit {
                    unit: u.to_string(),
                    text: s.to_string(),
                })
            }
        };
        Ok(Span((n * mult) as i64))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms % 86_400_000 == 0 && ms != 0 {
            write!(f, "{}d", ms / 86_400_000)
        } else if ms % 3_600_000 == 0 && ms != 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 && ms != 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parse_and_print() {
        assert_eq!("10m".parse::<Span>().unwrap(), Span::mins(10));
        assert_eq!("250ms".parse::<Span>().unwrap(), Span(250));
        assert_eq!("7d".parse::<Span>().unwrap().to_string(), "7d");
        assert_eq!(
            "10 parsecs".parse::<Span>().unwrap_err().to_string(),
            "unknown unit \"parsecs\" in duration \"10 parsecs\" (use ms, s, m, h, d or w)"
        );
        assert!(matches!(
            "soon".parse::<Span>(),
            Err(SpanError::NotADuration(_))
        ));
    }
}
