//! Security alert policies per server. A server without a stored policy has the default one.

use super::{now_utc, Result, Store, StoreError};
use crate::policy::{Policy, PolicyUpdate};
use rusqlite::{params, OptionalExtension};

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

pub(super) fn load(c: &rusqlite::Connection, server: &str) -> Result<Policy> {
    let props: Option<String> = c
        .query_row(
            "SELECT properties FROM policies WHERE server = ?1",
            [server],
            |r| r.get(0),
        )
        .optional()?;
    match props {
        Some(p) => parse(server, &p),
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
            tx.execute(
                "INSERT INTO policies (server, properties, storage_key, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (server) DO UPDATE SET properties = excluded.properties,
                   storage_key = coalesce(excluded.storage_key, policies.storage_key),
                   updated_at = excluded.updated_at",
                params![server, props, u.storage_account_access_key, now_utc()],
            )?;
            Ok(())
        })?;
        Ok(u.policy.clone())
    }

    /// Whether a storage access key is stored for the server (the key itself never leaves).
    pub fn has_storage_key(&self, server: &str) -> Result<bool> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT storage_key IS NOT NULL FROM policies WHERE server = ?1",
                [server],
                |r| r.get::<_, bool>(0),
            )
            .optional()?
            .unwrap_or(false))
        })
    }
}
