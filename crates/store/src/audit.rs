//! The audit trail: every change an operator makes — a server's alert policy, an API token, a
//! proxy block lifted, an alert's status — with who made it and when, written in the same
//! transaction as the change, and read through `GET /audit`.

use super::db::{vals, Db, Val};
use super::{now_utc, Result, Store, StoreError};
use serde::Serialize;
use serde_json::Value;

/// What was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PolicyUpdate,
    TokenAdd,
    TokenRevoke,
    BlockLift,
    BlockPut,
    AlertStatus,
    SuppressionRulePut,
    SuppressionRuleDelete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::PolicyUpdate => "policy.update",
            Action::TokenAdd => "token.add",
            Action::TokenRevoke => "token.revoke",
            Action::BlockLift => "block.lift",
            Action::BlockPut => "block.put",
            Action::AlertStatus => "alert.status",
            Action::SuppressionRulePut => "suppressionRule.put",
            Action::SuppressionRuleDelete => "suppressionRule.delete",
        }
    }

    pub const ALL: [Action; 8] = [
        Action::PolicyUpdate,
        Action::TokenAdd,
        Action::TokenRevoke,
        Action::BlockLift,
        Action::BlockPut,
        Action::AlertStatus,
        Action::SuppressionRulePut,
        Action::SuppressionRuleDelete,
    ];

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One entry of the trail, as `GET /audit` serves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub seq: i64,
    pub time_utc: String,
    /// The API token's name, or `cli:<user>` for the command line on the store's machine.
    pub actor: String,
    pub action: String,
    /// The server, token, address or alert id changed.
    pub target: String,
    pub detail: Value,
}

/// Records a change inside the caller's transaction.
pub(super) fn record(
    tx: &mut dyn Db,
    actor: &str,
    action: Action,
    target: &str,
    detail: &Value,
    at: &str,
) -> Result<()> {
    tx.exec(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
        vals![at, actor, action.as_str(), target, detail.to_string()],
    )?;
    Ok(())
}

/// Filters of `GET /audit`: newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub action: Option<Action>,
    pub actor: Option<String>,
    /// Entries at or after this time (RFC 3339, the store's spelling).
    pub from: Option<String>,
    /// Entries older than this one (the previous page's last `seq`).
    pub before: Option<i64>,
    pub top: usize,
}

impl Store {
    /// Records a change made outside a store transaction of its own (a proxy block lifted
    /// in memory).
    pub fn audit(&self, actor: &str, action: Action, target: &str, detail: &Value) -> Result<()> {
        self.write(|tx| record(tx, actor, action, target, detail, &now_utc()))
    }

    pub fn audit_log(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut sql =
            String::from("SELECT seq, at, actor, action, target, detail FROM audit WHERE 1 = 1");
        let mut args: Vec<Val> = Vec::new();
        if let Some(a) = q.action {
            args.push(Val::from(a.as_str()));
            sql.push_str(&format!(" AND action = ${}", args.len()));
        }
        if let Some(a) = &q.actor {
            args.push(Val::from(a.as_str()));
            sql.push_str(&format!(" AND actor = ${}", args.len()));
        }
        if let Some(f) = &q.from {
            args.push(Val::from(f.as_str()));
            sql.push_str(&format!(" AND at >= ${}", args.len()));
        }
        if let Some(b) = q.before {
            args.push(Val::from(b));
            sql.push_str(&format!(" AND seq < ${}", args.len()));
        }
        sql.push_str(&format!(
            " ORDER BY seq DESC LIMIT {}",
            q.top.clamp(1, 1000)
        ));
        self.read(|c| {
            c.query(&sql, &args)?
                .iter()
                .map(|r| {
                    let detail = r.text(5)?;
                    Ok(AuditEntry {
                        seq: r.int(0)?,
                        time_utc: r.text(1)?,
                        actor: r.text(2)?,
                        action: r.text(3)?,
                        target: r.text(4)?,
                        detail: serde_json::from_str(&detail).map_err(|e| StoreError::Corrupt {
                            what: "audit entry".into(),
                            reason: e.to_string(),
                        })?,
                    })
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::on_each_store;

    on_each_store!(entries_read_back_newest_first_and_filter);

    fn entries_read_back_newest_first_and_filter(s: &Store) {
        s.audit(
            "alice",
            Action::BlockLift,
            "203.0.113.7",
            &serde_json::json!({"alert": "a1"}),
        )
        .unwrap();
        s.audit(
            "bob",
            Action::TokenAdd,
            "ci",
            &serde_json::json!({"role": "reader"}),
        )
        .unwrap();
        let all = s
            .audit_log(&AuditQuery {
                top: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            all.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            ["bob", "alice"]
        );
        assert_eq!(all[1].detail["alert"], "a1");
        let lifts = s
            .audit_log(&AuditQuery {
                action: Some(Action::BlockLift),
                top: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(lifts.len(), 1);
        let older = s
            .audit_log(&AuditQuery {
                before: Some(all[0].seq),
                top: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(older, vec![all[1].clone()]);
    }
}
