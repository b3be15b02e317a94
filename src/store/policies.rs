//! Security alert policies per server. A server without a stored policy has the default one.

use super::db::{vals, Db};
use super::{now_utc, Result, Store, StoreError};
use crate::policy::{Policy, PolicyUpdate};

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

    /// Replaces a server's policy. A body without `storageAccountAccessKey` keeps the stored
    /// key: the key is write-only, so a client cannot send back what it never saw.
    pub fn put_policy(&self, server: &str, u: &PolicyUpdate) -> Result<Policy> {
        let props = u.policy.properties().to_string();
        self.write(|tx| {
            tx.exec(
                "INSERT INTO policies (server, properties, storage_key, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (server) DO UPDATE SET properties = excluded.properties,
                   storage_key = coalesce(excluded.storage_key, policies.storage_key),
                   updated_at = excluded.updated_at",
                vals![
                    server,
                    props.as_str(),
                    &u.storage_account_access_key,
                    now_utc()
                ],
            )
        })?;
        Ok(u.policy.clone())
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
