//! Webhooks: the alert record as JSON (signed with HMAC-SHA256 when a secret is set), or a
//! ready-made message for Slack or Microsoft Teams incoming webhooks.

use super::render;
use super::Secret;
use crate::alert::Alert;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The alert record, as the API serves it.
    #[default]
    Json,
    Slack,
    Teams,
}

/// `[[notify.webhook]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name of the channel (in logs and metrics).
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Key of the `X-Pgvigil-Signature: sha256=<hex>` header, an HMAC-SHA256 of the body.
    #[serde(default)]
    pub secret: Option<Secret>,
}

/// HMAC-SHA256 of `body` under `key`, hex.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn body(format: WebhookFormat, a: &Alert, record: &str, public_url: Option<&str>) -> String {
    match format {
        WebhookFormat::Json => record.to_string(),
        WebhookFormat::Slack => {
            let mut text = format!(
                "*{}*\n{}\n*Why unusual:* {}",
                slack_escape(&render::subject(a)),
                slack_escape(&render::clean(&a.description)),
                slack_escape(&render::clean(&a.anomaly_context)),
            );
            if let Some(l) = render::link(a, public_url) {
                text.push_str(&format!("\n<{}|Open the alert>", slack_escape(&l)));
            }
            let fields: Vec<Value> = facts(a)
                .into_iter()
                .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{}", slack_escape(&v))}))
                .collect();
            json!({
                "text": slack_escape(&render::subject(a)),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                    {"type": "section", "fields": fields},
                    {"type": "section", "text": {"type": "mrkdwn", "text": format!(
                        "*What to do*\n{}",
                        a.remediation_steps.iter().map(|r| format!("• {}", slack_escape(&render::clean(r)))).collect::<Vec<_>>().join("\n")
                    )}}
                ]
            })
            .to_string()
        }
        WebhookFormat::Teams => {
            let mut body = vec![
                json!({"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true, "text": render::subject(a)}),
                json!({"type": "TextBlock", "wrap": true, "text": render::clean(&a.description)}),
                json!({"type": "FactSet", "facts": facts(a).into_iter().map(|(k, v)| json!({"title": k, "value": v})).collect::<Vec<_>>()}),
                json!({"type": "TextBlock", "wrap": true, "text": format!("Why unusual: {}", render::clean(&a.anomaly_context))}),
            ];
            for r in &a.remediation_steps {
                body.push(json!({"type": "TextBlock", "wrap": true, "text": format!("- {}", render::clean(r))}));
            }
            let actions: Vec<Value> = render::link(a, public_url)
                .map(|l| json!({"type": "Action.OpenUrl", "title": "Open the alert", "url": l}))
                .into_iter()
                .collect();
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": body,
                        "actions": actions,
                    }
                }]
            })
            .to_string()
        }
    }
}

fn facts(a: &Alert) -> Vec<(&'static str, String)> {
    let e = &a.entities;
    let d = |v: &Option<String>| {
        v.as_deref()
            .map(render::clean)
            .unwrap_or_else(|| "-".into())
    };
    vec![
        ("Severity", a.severity.to_string()),
        ("Server", render::clean(&a.server)),
        ("Source", d(&e.source_ip)),
        ("Location", render::place(a)),
        ("Principal", d(&e.principal)),
        ("Time (UTC)", a.end_time_utc.clone()),
    ]
}

/// Posts one notification; an HTTP status outside 2xx is a failure (retried later).
pub fn send(
    agent: &ureq::Agent,
    cfg: &WebhookConfig,
    a: &Alert,
    record: &str,
    delivery: &str,
    public_url: Option<&str>,
) -> Result<(), String> {
    let body = body(cfg.format, a, record, public_url);
    let mut req = agent
        .post(&cfg.url)
        .header("Content-Type", "application/json")
        .header("User-Agent", concat!("pgvigil/", env!("CARGO_PKG_VERSION")))
        .header("X-Pgvigil-Event", "alert")
        .header("X-Pgvigil-Delivery", delivery);
    if let Some(s) = &cfg.secret {
        req = req.header(
            "X-Pgvigil-Signature",
            format!(
                "sha256={}",
                signature(s.expose().as_bytes(), body.as_bytes())
            ),
        );
    }
    match req.send(body.as_bytes()) {
        Ok(_) => Ok(()),
        Err(ureq::Error::StatusCode(code)) => Err(format!("HTTP {code}")),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_name_cannot_inject_slack_markup_or_extra_lines() {
        let mut a = crate::api::simulate::samples("db1", 0).remove(0);
        a.entities.principal = Some("<!channel> & <https://evil.example|click>\nforged".into());
        let b = body(WebhookFormat::Slack, &a, "{}", None);
        let v: Value = serde_json::from_str(&b).unwrap();
        let text = v["blocks"].to_string();
        assert!(
            !text.contains("<!channel>") && !text.contains("<https://evil"),
            "{text}"
        );
        assert!(
            text.contains("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; forged"),
            "{text}"
        );
    }

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
