//! API tokens. A token is shown once, when made; the store keeps its SHA-256 only. Tokens are
//! 256 random bits, so an unsalted hash cannot be reversed by guessing.

use super::db::vals;
use super::{now_utc, Result, Store, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// GET only.
    Reader,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub last_used: Option<String>,
}

/// Prefix of every token, so that a leaked one is recognisable (secret scanners).
const PREFIX: &str = "pgv_";

/// What the store keeps of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Makes a token for `actor` and returns it; it cannot be shown again.
    pub fn add_token(&self, name: &str, role: Role, actor: &str) -> Result<String> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            return Err(StoreError::Invalid(format!(
                "token name {name:?}: use 1 to 64 letters, digits, '-', '_', '.', '@'"
            )));
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)
            .map_err(|e| StoreError::Invalid(format!("no randomness for a token: {e}")))?;
        let token = format!("{PREFIX}{}", hex::encode(raw));
        self.write(|tx| {
            let n = tx.exec(
                "INSERT INTO tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO NOTHING",
                vals![name, role.as_str(), hash(&token), now_utc()],
            )?;
            if n == 0 {
                return Err(StoreError::Invalid(format!(
                    "a token named {name:?} exists; revoke it first"
                )));
            }
            super::audit::record(
                tx,
                actor,
                super::audit::Action::TokenAdd,
                name,
                &serde_json::json!({"role": role.as_str()}),
                &now_utc(),
            )
        })?;
        Ok(token)
    }

    pub fn revoke_token(&self, name: &str, actor: &str) -> Result<bool> {
        self.write(|tx| {
            let gone = tx.exec("DELETE FROM tokens WHERE name = $1", vals![name])? > 0;
            if gone {
                super::audit::record(
                    tx,
                    actor,
                    super::audit::Action::TokenRevoke,
                    name,
                    &serde_json::json!({}),
                    &now_utc(),
                )?;
            }
            Ok(gone)
        })
    }

    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.read(|c| {
            c.query(
                "SELECT name, role, created_at, last_used FROM tokens ORDER BY name",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(TokenInfo {
                    name: r.text(0)?,
                    role: Role::parse(&r.text(1)?).unwrap_or(Role::Reader),
                    created_at: r.text(2)?,
                    last_used: r.opt_text(3)?,
                })
            })
            .collect()
        })
    }

    /// The name and role of the token with this hash, while it exists: a console session
    /// keeps its token's hash and ends when the token is revoked.
    pub fn token_by_hash(&self, token_hash: &str) -> Result<Option<(String, Role)>> {
        self.read(|c| {
            c.query_opt(
                "SELECT name, role FROM tokens WHERE hash = $1",
                vals![token_hash],
            )?
            .map(|r| Ok((r.text(0)?, r.text(1)?)))
            .transpose()
        })
        .map(|found| found.and_then(|(n, r)| Role::parse(&r).map(|r| (n, r))))
    }

    /// The name and role of a presented token, or `None`.
    pub fn verify_token(&self, token: &str) -> Result<Option<(String, Role)>> {
        if !token.starts_with(PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        let h = hash(token);
        let found = self.read(|c| {
            c.query_opt(
                "SELECT name, role, last_used FROM tokens WHERE hash = $1",
                vals![h.as_str()],
            )?
            .map(|r| Ok((r.text(0)?, r.text(1)?, r.opt_text(2)?)))
            .transpose()
        })?;
        let Some((name, role, last_used)) = found else {
            return Ok(None);
        };
        // last_used to the minute: not a write per request.
        let now = now_utc();
        if last_used.as_deref().map(|l| &l[..16.min(l.len())]) != Some(&now[..16]) {
            self.write(|tx| {
                tx.exec(
                    "UPDATE tokens SET last_used = $2 WHERE hash = $1",
                    vals![h.as_str(), now.as_str()],
                )
            })?;
        }
        Ok(Role::parse(&role).map(|r| (name, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::on_each_store;
    use crate::test_support::temp_store;

    on_each_store!(a_token_verifies_until_revoked);

    fn a_token_verifies_until_revoked(s: &Store) {
        let t = s.add_token("ops", Role::Admin, "test").unwrap();
        assert_eq!(
            s.verify_token(&t).unwrap(),
            Some(("ops".into(), Role::Admin))
        );
        assert_eq!(s.verify_token(&format!("{t}0")).unwrap(), None);
        assert!(s.add_token("ops", Role::Reader, "test").is_err());
        assert!(s.revoke_token("ops", "test").unwrap());
        assert_eq!(s.verify_token(&t).unwrap(), None);
        assert!(!s.revoke_token("ops", "test").unwrap());
    }

    /// Checked on SQLite, whose store is a file to read.
    #[test]
    fn only_a_tokens_hash_is_kept() {
        let (dir, s) = temp_store();
        let t = s.add_token("ops", Role::Admin, "test").unwrap();
        drop(s);
        let bytes = std::fs::read(dir.path().join("pgvigil.db")).unwrap();
        let wal = std::fs::read(dir.path().join("pgvigil.db-wal")).unwrap_or_default();
        let needle = t.as_bytes();
        for b in [bytes, wal] {
            assert!(
                !b.windows(needle.len()).any(|w| w == needle),
                "token stored in clear"
            );
        }
        // Yet it still verifies, the store opened again.
        let s = Store::open(&dir.path().join("pgvigil.db")).unwrap();
        assert_eq!(
            s.verify_token(&t).unwrap(),
            Some(("ops".into(), Role::Admin))
        );
    }
}
