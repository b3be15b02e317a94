//! Webhooks: the alert record as JSON (signed with HMAC-SHA256 when a secret is set), or a
//! ready-made message for Slack or Microsoft Teams incoming webhooks.
//!
//! A signature covers the time of sending and the body (`X-Pgvigil-Timestamp` and
//! `X-Pgvigil-Signature: sha256=HMAC(secret, "<timestamp>.<body>")`), so that a receiver
//! that refuses old timestamps cannot be fed a captured delivery again.

use super::Secret;
use super::{render, DeliveryError};
use hmac::{KeyInit, Mac};
use model::alert::Alert;
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
    /// Key of the `X-Pgvigil-Signature: sha256=<hex>` header, an HMAC-SHA256 of
    /// `<X-Pgvigil-Timestamp>.<body>`.
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

/// The `X-Pgvigil-Signature` value of `body` sent at `timestamp` (Unix seconds).
pub fn signed(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    format!("sha256={}", signature(key, &msg))
}

/// Adaptive Cards render a TextBlock's text as CommonMark (links, emphasis, lists): every
/// ASCII punctuation mark that can start markup is escaped, so that a role named
/// `[Reset your password](https://…)` is shown as written, not as a link.
fn teams_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in render::clean(s).chars() {
        if matches!(
            c,
            '\\' | '`'
                | '*'
                | '_'
                | '{'
                | '}'
                | '['
                | ']'
                | '<'
                | '>'
                | '('
                | ')'
                | '#'
                | '+'
                | '-'
                | '.'
                | '!'
                | '|'
                | '~'
                | '&'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn body(
    format: WebhookFormat,
    a: &Alert,
    simulated: bool,
    record: &str,
    public_url: Option<&str>,
) -> String {
    match format {
        WebhookFormat::Json => record.to_string(),
        WebhookFormat::Slack => {
            let mut text = format!(
                "*{}*\n{}\n*Why unusual:* {}",
                slack_escape(&render::subject(a, simulated)),
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
                "text": slack_escape(&render::subject(a, simulated)),
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
                json!({"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true, "text": teams_escape(&render::subject(a, simulated))}),
                json!({"type": "TextBlock", "wrap": true, "text": teams_escape(&a.description)}),
                json!({"type": "FactSet", "facts": facts(a).into_iter().map(|(k, v)| json!({"title": k, "value": teams_escape(&v)})).collect::<Vec<_>>()}),
                json!({"type": "TextBlock", "wrap": true, "text": format!("Why unusual: {}", teams_escape(&a.anomaly_context))}),
            ];
            for r in &a.remediation_steps {
                body.push(json!({"type": "TextBlock", "wrap": true, "text": format!("• {}", teams_escape(r))}));
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

/// Posts one notification; an HTTP status outside 2xx is a failure (retried later), a 4xx
/// but 408 (timeout) and 429 (too many requests) a refusal.
pub fn send(
    agent: &ureq::Agent,
    cfg: &WebhookConfig,
    a: &Alert,
    simulated: bool,
    record: &str,
    delivery: &str,
    public_url: Option<&str>,
) -> Result<(), DeliveryError> {
    let body = body(cfg.format, a, simulated, record, public_url);
    let mut req = agent
        .post(&cfg.url)
        .header("Content-Type", "application/json")
        .header("User-Agent", concat!("pgvigil/", env!("CARGO_PKG_VERSION")))
        .header("X-Pgvigil-Event", "alert")
        .header("X-Pgvigil-Delivery", delivery);
    if let Some(s) = &cfg.secret {
        let now = store::now_ms() / 1000;
        req = req.header("X-Pgvigil-Timestamp", now.to_string()).header(
            "X-Pgvigil-Signature",
            signed(s.expose().as_bytes(), now, body.as_bytes()),
        );
    }
    match req.send(body.as_bytes()) {
        Ok(_) => Ok(()),
        Err(ureq::Error::StatusCode(code))
            if (400..500).contains(&code) && code != 408 && code != 429 =>
        {
            Err(DeliveryError::Refused(format!("HTTP {code}")))
        }
        Err(ureq::Error::StatusCode(code)) => Err(DeliveryError::Failed(format!("HTTP {code}"))),
        Err(e) => Err(DeliveryError::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_name_cannot_inject_slack_markup_or_extra_lines() {
        let mut a = model::sample::alerts("db1", 0).remove(0);
        a.entities.principal = Some("<!channel> & <https://evil.example|click>\nforged".into());
        let b = body(WebhookFormat::Slack, &a, false, "{}", None);
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

    /// The text CommonMark shows for `md`, and whether it made a link, emphasis or HTML.
    fn rendered(md: &str) -> (String, bool) {
        use pulldown_cmark::{Event, Parser, Tag};
        let mut text = String::new();
        let mut markup = false;
        for ev in Parser::new(md) {
            match ev {
                Event::Text(t) | Event::Code(t) => text.push_str(&t),
                Event::Start(Tag::Paragraph) | Event::End(_) => {}
                Event::SoftBreak | Event::HardBreak => text.push(' '),
                _ => markup = true,
            }
        }
        (text, markup)
    }

    #[test]
    fn a_role_name_cannot_make_a_link_or_emphasis_in_a_teams_card() {
        let mut a = model::sample::alerts("db1", 0).remove(0);
        let hostile = "[Reset_your_password](https://evil.example/reset) *now* <b>x</b> # - 1. `c`";
        a.entities.principal = Some(hostile.into());
        a.description = format!("Login as {hostile}\u{202e}gnp.exe");
        let b = body(WebhookFormat::Teams, &a, false, "{}", None);
        let v: Value = serde_json::from_str(&b).unwrap();
        let card = &v["attachments"][0]["content"];
        let facts = card["body"][2]["facts"].as_array().unwrap();
        let principal = facts.iter().find(|f| f["title"] == "Principal").unwrap();
        let (text, markup) = rendered(principal["value"].as_str().unwrap());
        assert!(!markup, "{principal}");
        assert_eq!(text, hostile);
        let (text, markup) = rendered(card["body"][1]["text"].as_str().unwrap());
        assert!(!markup, "{text}");
        assert_eq!(text, format!("Login as {hostile}<U+202E>gnp.exe"));
    }

    #[test]
    fn a_receiver_that_refuses_is_told_from_one_that_fails_for_now() {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .max_redirects(0)
            .build()
            .into();
        let a = model::sample::alerts("db1", 0).remove(0);
        for (status, refused) in [
            (200, None),
            (400, Some(true)),
            (401, Some(true)),
            (410, Some(true)),
            (408, Some(false)),
            (429, Some(false)),
            (500, Some(false)),
            (503, Some(false)),
        ] {
            let cfg = WebhookConfig {
                name: "w".into(),
                url: super::super::tests::answering(status),
                format: WebhookFormat::default(),
                secret: None,
            };
            let got = send(&agent, &cfg, &a, false, "{}", "d/1", None);
            assert_eq!(
                got.as_ref().err().map(|e| e.is_permanent()),
                refused,
                "HTTP {status}: {got:?}"
            );
        }
    }

    #[test]
    fn a_signature_covers_the_time_of_sending() {
        let body = br#"{"id":"a"}"#;
        let sig = signed(b"k", 1_790_000_000, body);
        assert_eq!(
            sig,
            format!("sha256={}", signature(b"k", b"1790000000.{\"id\":\"a\"}"))
        );
        assert_ne!(sig, signed(b"k", 1_790_000_001, body));
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
