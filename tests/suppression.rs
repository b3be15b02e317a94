//! Suppression rules end to end: a rule made over the API for a known scanner's address;
//! the scanner and an attacker both guess passwords at a real server; `pgvigil run` stores
//! the scanner's alert dismissed by the rule and tells the webhook only of the attacker. On
//! the SQLite store and on a central PostgreSQL one.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_dismisses_the_scanners_alerts_and_only_the_attacker_is_notified() {
    scenario("").await;
}

/// The same on a central PostgreSQL store (over TLS), as a fleet's agents use.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_with_a_central_postgresql_store() {
    let certs = tempfile::tempdir().unwrap();
    let (central, ca, _, _) = tls_cluster(certs.path());
    central.psql("CREATE ROLE pgvigil LOGIN PASSWORD 'fleet-pw'");
    central.psql("CREATE DATABASE pgvigil OWNER pgvigil");
    scenario(&format!(
        "[store]\nurl = \"postgres://pgvigil:fleet-pw@127.0.0.1:{}/pgvigil?sslmode=require\"\nca_file = \"{}\"\n",
        central.port,
        ca.display()
    ))
    .await;
}

async fn scenario(store: &str) {
    let cl = Cluster::start(ClusterOptions::default());
    let hook = HttpSink::start(0);
    let s = RunSetup::new(
        &cl.log_dir,
        &format!(
            "{store}[[notify.webhook]]\nname = \"soc\"\nurl = \"http://{}/hook\"\n",
            hook.addr
        ),
    );
    let token =
        |name: &str, role: &str| make_token(&["-c".as_ref(), s.config.as_os_str()], name, role);
    let admin = token("alice", "admin");
    let reader = token("bob", "reader");
    let run = s.start();
    let base = format!("http://{}", run.api_addr());
    let rule = json!({"properties": {
        "alertType": "*",
        "reason": "the weekly vulnerability scan",
        "comment": "scanner at 127.0.0.5",
        "expirationDateUtc": "2099-01-01T00:00:00Z",
        "suppressionAlertsScope": {"allOf": [
            {"field": "entities.sourceIp", "in": ["127.0.0.5"]},
            {"field": "server", "in": ["db1"]},
        ]},
    }});
    // Readers may look, not change; a wrong body is refused with the field named.
    assert_eq!(
        api_put(&base, "/alertsSuppressionRules/scanner", &reader, &rule).0,
        403
    );
    let mut wrong = rule.clone();
    wrong["properties"]["suppressionAlertsScope"]["allOf"][0]["in"] = json!(["127.0.0.5/33"]);
    let (st, e) = api_put(&base, "/alertsSuppressionRules/scanner", &admin, &wrong);
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("suppressionAlertsScope.allOf[0].in[0]"),
        "{e}"
    );
    let (st, made) = api_put(&base, "/alertsSuppressionRules/scanner", &admin, &rule);
    assert_eq!(st, 201, "{made}");
    assert_eq!(made["properties"]["state"], "Enabled");
    let (st, list) = api_get(&base, "/alertsSuppressionRules", &reader);
    assert_eq!(
        (st, list["value"][0]["name"].clone()),
        (200, json!("scanner"))
    );

    // The scanner, then the attacker, each guessing a dozen passwords as fast as they can.
    for who in ["127.0.0.5", "127.0.0.6"] {
        for i in 0..12 {
            let wrong = format!("guess-{i}");
            assert!(!login(who, cl.port, "app", &wrong, "appdb", None).await);
        }
    }
    let alerts_of = |ip: &str| -> Vec<Value> {
        let (st, v) = api_get(&base, &format!("/alerts?sourceIp={ip}"), &reader);
        assert_eq!(st, 200, "{v}");
        v["value"].as_array().cloned().unwrap_or_default()
    };
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while (alerts_of("127.0.0.5").is_empty() || alerts_of("127.0.0.6").is_empty())
        && std::time::Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let scanner = alerts_of("127.0.0.5");
    let attacker = alerts_of("127.0.0.6");
    assert!(
        scanner
            .iter()
            .any(|a| a["alertType"] == "PostgreSQL_BruteForce"),
        "{scanner:#?}\n{}",
        run.log()
    );
    assert!(
        attacker
            .iter()
            .any(|a| a["alertType"] == "PostgreSQL_BruteForce"),
        "{attacker:#?}\n{}",
        run.log()
    );
    for a in &scanner {
        assert_eq!(a["status"], "Dismissed", "{a:#}");
        let (_, full) = api_get(
            &base,
            &format!("/alerts/{}", a["id"].as_str().unwrap()),
            &reader,
        );
        assert!(
            full["stateHistory"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["actor"] == "rule:scanner" && h["toStatus"] == "Dismissed"),
            "{full:#}"
        );
    }
    assert!(
        attacker.iter().all(|a| a["status"] == "Active"),
        "{attacker:#?}"
    );

    // The webhook hears of the attacker, and in the seconds after, never of the scanner.
    let mut heard = hook.collect(attacker.len(), Duration::from_secs(30));
    heard.extend(hook.collect(100, Duration::from_secs(4)));
    let bodies: Vec<String> = heard
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        bodies.iter().any(|b| b.contains("127.0.0.6")),
        "{bodies:#?}\n{}",
        run.log()
    );
    assert!(
        !bodies.iter().any(|b| b.contains("127.0.0.5")),
        "the scanner's alert was notified: {bodies:#?}"
    );

    // The change is in the audit trail, by its author.
    let (_, audit) = api_get(&base, "/audit?action=suppressionRule.put", &admin);
    assert_eq!(audit["value"][0]["actor"], "alice", "{audit:#}");
    assert_eq!(audit["value"][0]["target"], "scanner", "{audit:#}");
    let (st, _) = api_send(&base, "DELETE", "/alertsSuppressionRules/scanner", &admin);
    assert_eq!(st, 204);
    let (st, _) = api_get(&base, "/alertsSuppressionRules/scanner", &reader);
    assert_eq!(st, 404);
}
