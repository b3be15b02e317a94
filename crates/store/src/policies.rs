//! Security alert policies per server. A server without a stored policy has the default one.

use super::db::{vals, Db};
use super::{Result, Store, StoreError};
use model::policy::Policy;

/// What is kept of a storage access key: `sha256:<hex>`, or `""` for no key.
pub(super) fn fingerprint(key: &str) -> Option<String> {
    use sha2::Digest;
    (!key.is_empty()).then(|| {
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(key.as_bytes()))
        )
    })
}

pub(super) fn parse(server: &str, props: &str) -> Result<Policy> {
    let v: serde_json::Value = serde_json::from_str(props).map_err(|e| StoreError::Corrupt {
        what: format!("policy of {server}"),
        reason: e.to_string(),
    })?;
    Policy::from_properties(&v).map_err(|e| StoreError::Corrupt {
        what: format!("policy of {server}"),
        reason: e.to_string(),
    })
}

pub(super) fn load(c: &mut dyn Db, server: &str) -> Result<Policy> {
    match c.query_opt(
        "SELECT properties FROM policies WHERE server = $1",
        vals![server],
    )? {
        Some(r) => parse(server, &r.text(0)?),
        None => Ok(Policy::default()),
    }
}

impl Store {
    pub fn get_policy(&self, server: &str) -> Result<Policy> {
        self.read(|c| load(c, server))
    }

    /// Stores written before keys were fingerprinted hold them in clear: fingerprint them.
    pub(super) fn forget_clear_storage_keys(&self) -> Result<()> {
        let clear = self.read(|c| {
            c.query(
                "SELECT server, storage_key FROM policies
                 WHERE storage_key IS NOT NULL AND storage_key NOT LIKE 'sha256:%'",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?)))
            .collect::<Result<Vec<_>>>()
        })?;
        for (server, key) in clear {
            self.write(|tx| {
                tx.exec(
                    "UPDATE policies SET storage_key = $2 WHERE server = $1",
                    vals![server.as_str(), fingerprint(&key)],
                )
            })?;
        }
        Ok(())
    }

    /// Whether a storage access key is stored for the server (the key itself never leaves).
    pub fn has_storage_key(&self, server: &str) -> Result<bool> {
        self.read(|c| {
            Ok(c.query_opt(
                "SELECT storage_key FROM policies WHERE server = $1",
                vals![server],
            )?
            .map(|r| r.opt_text(0))
            .transpose()?
            .flatten()
            .is_some())
        })
    }
}
