//! Suppression rules in the store: kept as their PUT body's properties, changed with an
//! audit entry, and read by every ingest (a fleet's agents all apply the central rules).

use super::audit::{self, Action};
use super::db::{vals, Db};
use super::{now_utc, Result, Store, StoreError};
use model::suppression::{Rule, MAX_RULES};

fn parse(name: &str, props: &str, updated: &str) -> Result<Rule> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: format!("suppression rule {name}"),
        reason,
    };
    let v: serde_json::Value = serde_json::from_str(props).map_err(|e| corrupt(e.to_string()))?;
    Rule::from_body(name, &serde_json::json!({ "properties": v }), updated)
        .map_err(|e| corrupt(e.to_string()))
}

pub(super) fn all(c: &mut dyn Db) -> Result<Vec<Rule>> {
    c.query(
        "SELECT name, properties, updated_at FROM suppression_rules ORDER BY name",
        &[],
    )?
    .iter()
    .map(|r| parse(&r.text(0)?, &r.text(1)?, &r.text(2)?))
    .collect()
}

impl Store {
    pub fn suppression_rules(&self) -> Result<Vec<Rule>> {
        self.read(|c| all(c))
    }

    pub fn suppression_rule(&self, name: &str) -> Result<Option<Rule>> {
        self.read(|c| {
            c.query_opt(
                "SELECT name, properties, updated_at FROM suppression_rules WHERE name = $1",
                vals![name],
            )?
            .map(|r| parse(&r.text(0)?, &r.text(1)?, &r.text(2)?))
            .transpose()
        })
    }

    /// Creates or replaces a rule on `actor`'s behalf; whether it is new.
    pub fn put_suppression_rule(&self, rule: &Rule, actor: &str) -> Result<bool> {
        self.write(|tx| {
            let before = tx
                .query_opt(
                    "SELECT properties FROM suppression_rules WHERE name = $1",
                    vals![rule.name.as_str()],
                )?
                .map(|r| r.text(0))
                .transpose()?;
            if before.is_none() {
                let n = tx
                    .query_opt("SELECT count(*) FROM suppression_rules", &[])?
                    .map(|r| r.int(0))
                    .transpose()?
                    .unwrap_or(0);
                if n as usize >= MAX_RULES {
                    return Err(StoreError::Invalid(format!(
                        "there are already {MAX_RULES} suppression rules; delete one first"
                    )));
                }
            }
            let props = rule.properties().to_string();
            tx.exec(
                "INSERT INTO suppression_rules (name, properties, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET properties = excluded.properties,
                   updated_at = excluded.updated_at",
                vals![
                    rule.name.as_str(),
                    props.as_str(),
                    rule.last_modified.as_str()
                ],
            )?;
            let before: Option<serde_json::Value> =
                before.and_then(|b| serde_json::from_str(&b).ok());
            audit::record(
                tx,
                actor,
                Action::SuppressionRulePut,
                &rule.name,
                &serde_json::json!({"before": before, "after": rule.properties()}),
                &now_utc(),
            )?;
            Ok(before.is_none())
        })
    }

    /// Deletes a rule on `actor`'s behalf; whether there was one.
    pub fn delete_suppression_rule(&self, name: &str, actor: &str) -> Result<bool> {
        self.write(|tx| {
            let before = tx
                .query_opt(
                    "SELECT properties FROM suppression_rules WHERE name = $1",
                    vals![name],
                )?
                .map(|r| r.text(0))
                .transpose()?;
            let Some(before) = before else {
                return Ok(false);
            };
            tx.exec("DELETE FROM suppression_rules WHERE name = $1", vals![name])?;
            let before: Option<serde_json::Value> = serde_json::from_str(&before).ok();
            audit::record(
                tx,
                actor,
                Action::SuppressionRuleDelete,
                name,
                &serde_json::json!({ "before": before }),
                &now_utc(),
            )?;
            Ok(true)
        })
    }
}
