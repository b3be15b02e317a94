//! The store, the API and the notifiers, end to end: `pgvigil run` over a real hydra log,
//! tokens made with `pgvigil token`, requests over HTTP, and notifications received by a real
//! SMTP server (aiosmtpd), a real HTTP listener and a UDP syslog listener.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::*;

struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    fn new(addr: std::net::SocketAddr) -> Api {
        Api {
            base: format!("http://{addr}"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    /// (status, body) of a request; `token` None sends no Authorization header.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        self.try_call(method, path, token, body).unwrap()
    }

    fn try_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(u16, Value), ureq::Error> {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let resp = match method {
            "GET" => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            "PUT" | "POST" => {
                let mut r = if method == "PUT" {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.header("Content-Type", "application/json")
                    .send(body.unwrap_or("").as_bytes())
            }
            _ => unreachable!(),
        };
        let mut resp = resp?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

fn token(store: &Path, name: &str, role: &str) -> String {
    make_token(&["--store".as_ref(), store.as_os_str()], name, role)
}

struct Setup {
    dir: tempfile::TempDir,
    store: std::path::PathBuf,
    config: std::path::PathBuf,
}

/// A log directory holding a real hydra attack, and a configuration with the given
/// `[notify]` section.
fn setup(notify: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stderr/hydra.log"),
        logs.join("postgresql-15-main.log"),
    )
    .unwrap();
    let state = dir.path().join("state");
    let store = state.join("pgvigil.db");
    let config = dir.path().join("pgvigil.toml");
    std::fs::write(
        &config,
        format!(
            r#"server = "db1"
[input]
paths = ["{}"]
start_at = "beginning"
[state]
dir = "{}"
[api]
listen = "127.0.0.1:0"
public_url = "https://pgvigil.example.com"
{notify}
"#,
            logs.display(),
            state.display()
        ),
    )
    .unwrap();
    Setup { dir, store, config }
}

fn start(s: &Setup) -> Runner {
    Runner::start(&["-c".as_ref(), s.config.as_os_str()])
}

fn alerts_of(v: &Value) -> Vec<Value> {
    v["value"].as_array().cloned().unwrap_or_default()
}

#[test]
fn tokens_roles_and_the_policy_api() {
    let s = setup("");
    let admin = token(&s.store, "alice", "admin");
    let reader = token(&s.store, "auditor", "reader");
    let run = start(&s);
    let (_, found) = run.until(Duration::from_secs(30), |a| {
        a["displayName"] == "Suspected successful brute force attack"
    });
    assert!(found, "no alert from the hydra log:\n{}", run.log());
    let api = Api::new(run.api_addr());
    let pol = "/servers/db1/securityAlertPolicies/Default";

    // Health needs no token; everything else does.
    assert_eq!(api.call("GET", "/healthz", None, None).0, 200);
    let (st, body) = api.call("GET", "/alerts", None, None);
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (401, Some("AuthenticationFailed"))
    );
    // The right prefix and length, one digit off.
    let last = if admin.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &admin[..admin.len() - 1]);
    assert_eq!(api.call("GET", "/alerts", Some(&wrong), None).0, 401);
    assert_eq!(api.call("GET", "/openapi.json", None, None).0, 401);

    // A reader reads, and cannot change anything.
    let (st, list) = api.call("GET", "/alerts?server=db1", Some(&reader), None);
    assert_eq!(st, 200);
    let bf: Vec<Value> = alerts_of(&list)
        .into_iter()
        .filter(|a| a["alertType"] == "PostgreSQL_BruteForce")
        .collect();
    assert_eq!(bf.len(), 1, "{list}");
    let id = bf[0]["id"].as_str().unwrap().to_string();
    let before = api.call("GET", pol, Some(&reader), None).1;
    assert_eq!(before["properties"]["state"], "Enabled");
    let change = json!({"properties": {"state": "Disabled"}}).to_string();
    let (st, body) = api.call("PUT", pol, Some(&reader), Some(&change));
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (403, Some("AuthorizationFailed"))
    );
    assert_eq!(
        api.call(
            "POST",
            &format!("/alerts/{id}/dismiss"),
            Some(&reader),
            None
        )
        .0,
        403
    );
    assert_eq!(api.call("GET", pol, Some(&reader), None).1, before);
    assert_eq!(
        api.call("GET", &format!("/alerts/{id}"), Some(&reader), None)
            .1["status"],
        "Active"
    );

    // Bad bodies: a 4xx naming the field, nothing stored.
    for (body, want) in [
        ("{not json", "InvalidRequestContent"),
        (
            r#"{"properties": {"state": "Enabled", "emailAddresses": ["ok@example.com", "nope"]}}"#,
            "emailAddresses[1]",
        ),
        (
            r#"{"properties": {"state": "Enabled", "retentionDays": "ten"}}"#,
            "retentionDays",
        ),
        (
            r#"{"properties": {"state": "Enabled", "disabledAlerts": ["Brute_Force", "Everything"]}}"#,
            "disabledAlerts[1]",
        ),
        (
            r#"{"properties": {"state": "Enabled"}, "colour": "red"}"#,
            "colour",
        ),
        (r#"{"properties": {"emailAddresses": []}}"#, "state"),
    ] {
        let (st, b) = api.call("PUT", pol, Some(&admin), Some(body));
        assert_eq!(st, 400, "{body}: {b}");
        assert!(b.to_string().contains(want), "{body}: {b}");
    }
    let big = format!(
        r#"{{"properties": {{"state": "Enabled", "storageEndpoint": "https://{}"}}}}"#,
        "a".repeat(100_000)
    );
    // The server answers 413 without reading the body; the client may see that answer, or
    // the connection closed under the body it is still sending. Either way nothing changes.
    // A client of its own: the connection may end with this answer.
    let once = Api::new(run.api_addr());
    match once.try_call("PUT", pol, Some(&admin), Some(&big)) {
        Ok((st, b)) => assert_eq!(st, 413, "{b}"),
        Err(e) => assert!(matches!(e, ureq::Error::Io(_)), "{e}"),
    }
    assert_eq!(api.call("GET", pol, Some(&reader), None).1, before);
    assert_eq!(
        api.call(
            "GET",
            "/servers/nosuch/securityAlertPolicies/Default",
            Some(&admin),
            None
        )
        .0,
        404
    );

    // An admin changes the policy; the access key goes in and never comes out.
    let body = json!({"properties": {
        "state": "Enabled",
        "emailAddresses": "sec@example.com; ops@example.com",
        "disabledAlerts": ["Access_Anomaly"],
        "retentionDays": 90,
        "storageEndpoint": "https://audit.blob.core.windows.net",
        "storageAccountAccessKey": "s3cret-key"
    }})
    .to_string();
    let (st, put) = api.call("PUT", pol, Some(&admin), Some(&body));
    assert_eq!(st, 200, "{put}");
    let got = api.call("GET", pol, Some(&reader), None).1;
    assert_eq!(got, put);
    assert_eq!(
        got["properties"]["emailAddresses"],
        json!(["sec@example.com", "ops@example.com"])
    );
    assert_eq!(
        got["type"],
        "Microsoft.DBforPostgreSQL/servers/securityAlertPolicies"
    );
    let listed = api
        .call(
            "GET",
            "/servers/db1/securityAlertPolicies",
            Some(&reader),
            None,
        )
        .1;
    assert_eq!(listed["value"][0], got);
    assert!(listed["nextLink"].is_null());
    for v in [&put, &got, &listed] {
        assert!(!v.to_string().contains("s3cret-key"));
    }
    assert!(!run.log().contains("s3cret-key"));
    // Nor is it kept: pgvigil exports nothing, so the store has only its fingerprint.
    let store_bytes = |s: &Setup| {
        let mut all = std::fs::read(&s.store).unwrap();
        all.extend(std::fs::read(s.store.with_extension("db-wal")).unwrap_or_default());
        all
    };
    let has = |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        !has(&store_bytes(&s), "s3cret-key"),
        "the key is stored in clear"
    );
    assert!(has(&store_bytes(&s), "sha256:"));
    // PUTting back what GET returned keeps the key; "" removes it.
    let (st, _) = api.call("PUT", pol, Some(&admin), Some(&got.to_string()));
    assert_eq!(st, 200);
    let key_of = |s: &Setup| -> Option<String> {
        let c = rusqlite::Connection::open(&s.store).unwrap();
        c.query_row(
            "SELECT storage_key FROM policies WHERE server = 'db1'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert!(key_of(&s).is_some_and(|k| k.starts_with("sha256:")));
    let clear = json!({"properties": {"state": "Enabled", "storageAccountAccessKey": ""}});
    let (st, _) = api.call("PUT", pol, Some(&admin), Some(&clear.to_string()));
    assert_eq!(st, 200);
    assert_eq!(key_of(&s), None);
    let (st, _) = api.call("PUT", pol, Some(&admin), Some(&got.to_string()));
    assert_eq!(st, 200);

    // A body that is not declared JSON is refused (a browser form or text/plain post from
    // another site cannot change a policy); so is an object naming a key twice.
    let r = raw_agent()
        .put(format!("{}{pol}", api.base))
        .header("Authorization", format!("Bearer {admin}"))
        .header("Content-Type", "text/plain")
        .send(r#"{"properties":{"state":"Disabled"}}"#)
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let twice = r#"{"properties":{"state":"Enabled","state":"Disabled"}}"#;
    let (st, e) = api.call("PUT", pol, Some(&admin), Some(twice));
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"state\" appears twice"),
        "{e}"
    );
    assert_eq!(api.call("GET", pol, Some(&reader), None).1, got);
    // A path that is not UTF-8 and a target too long are answered in the error shape too.
    let (st, e) = api.call(
        "GET",
        "/servers/%FF%FE/securityAlertPolicies",
        Some(&reader),
        None,
    );
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"]["code"], "InvalidParameterValue", "{e}");
    let long = format!("/alerts?server={}", "a".repeat(10_000));
    let (st, e) = api.call("GET", &long, Some(&reader), None);
    assert_eq!(st, 414, "{e}");
    assert_eq!(e["error"]["code"], "RequestUriTooLong", "{e}");

    // An admin dismisses the alert: recorded with who and when.
    let (st, d) = api.call("POST", &format!("/alerts/{id}/dismiss"), Some(&admin), None);
    assert_eq!((st, d["status"].as_str()), (200, Some("Dismissed")));
    let hist = d["stateHistory"].as_array().unwrap();
    let last = hist.last().unwrap();
    assert_eq!(
        (last["actor"].as_str(), last["toStatus"].as_str()),
        (Some("alice"), Some("Dismissed"))
    );
    let (_, f) = api.call("GET", "/alerts?status=Dismissed", Some(&reader), None);
    assert_eq!(alerts_of(&f).len(), 1);
    assert_eq!(
        api.call("GET", "/alerts?status=Gone", Some(&reader), None)
            .0,
        400
    );

    // The servers list and the metrics see the agent's work.
    let (_, servers) = api.call("GET", "/servers", Some(&reader), None);
    let db1 = &servers["value"][0];
    assert_eq!(db1["name"], "db1");
    assert!(db1["events"].as_u64().unwrap() > 50, "{servers}");
    // The hydra alert left open (the other one is dismissed), and one alert for each of the
    // two policy changes above that turned Access_Anomaly off.
    assert_eq!(db1["openAlerts"], 3, "{servers}");
    let (_, open) = api.call("GET", "/alerts?status=Active", Some(&reader), None);
    let off: Vec<Value> = alerts_of(&open)
        .into_iter()
        .filter(|a| a["displayName"] == "Threat detection turned off for a server")
        .collect();
    assert_eq!(off.len(), 2, "{open}");
    assert!(off
        .iter()
        .all(|a| a["evidence"]["turnedOff"] == json!(["Access_Anomaly"])));
    let (st, prof) = api.call("GET", "/servers/db1/profile", Some(&reader), None);
    assert_eq!(st, 200, "{prof}");
    let principals = prof["profile"]["principals"].as_array().unwrap();
    assert!(
        principals
            .iter()
            .any(|p| p["name"] == "app" && p["count"].as_u64() >= Some(1)),
        "{prof}"
    );
    assert_eq!(
        api.call("GET", "/servers/nosuch/profile", Some(&reader), None)
            .0,
        404
    );
    let (st, m) = api.call("GET", "/metrics", Some(&reader), None);
    assert_eq!(st, 200);
    let m = m.as_str().unwrap().to_string();
    assert!(m.contains("pgvigil_events_total{server=\"db1\"}"), "{m}");
    assert!(
        m.contains("pgvigil_alerts{alert_type=\"PostgreSQL_BruteForce\",severity=\"High\"} 1"),
        "{m}"
    );

    // The shell client speaks to the same API.
    let out = pgvigil()
        .args(["alerts", "list", "--severity", "High"])
        .env("PGVIGIL_URL", &api.base)
        .env("PGVIGIL_TOKEN", &reader)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Suspected successful brute force"), "{text}");
    let out = pgvigil()
        .args(["policy", "set", "db1", "--retention-days", "7"])
        .env("PGVIGIL_URL", &api.base)
        .env("PGVIGIL_TOKEN", &reader)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));
    let out = pgvigil()
        .args(["policy", "set", "db1", "--retention-days", "7"])
        .env("PGVIGIL_URL", &api.base)
        .env("PGVIGIL_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = api.call("GET", pol, Some(&reader), None).1;
    assert_eq!(got["properties"]["retentionDays"], 7);
    assert_eq!(
        got["properties"]["emailAddresses"],
        put["properties"]["emailAddresses"]
    );
    drop(s.dir);
}

#[test]
fn simulated_alerts_reach_email_webhook_and_syslog() {
    let smtp = SmtpServer::start();
    let hook = HttpSink::start(0);
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let s = setup(&format!(
        r#"[notify.email]
host = "127.0.0.1"
port = {}
security = "none"
from = "pgvigil <pgvigil@example.com>"
admins = ["dba@example.com"]
[[notify.webhook]]
name = "soc"
url = "http://{}/hook"
secret = "hook-secret"
[[notify.webhook]]
name = "chat"
url = "http://{}/slack"
format = "slack"
[[notify.webhook]]
name = "teams"
url = "http://{}/teams"
format = "teams"
[[notify.syslog]]
name = "siem"
address = "{}"
format = "cef"
"#,
        smtp.port,
        hook.addr,
        hook.addr,
        hook.addr,
        syslog.local_addr().unwrap()
    ));
    let admin = token(&s.store, "alice", "admin");
    let run = start(&s);
    let api = Api::new(run.api_addr());
    // The hydra log's own two alerts go out first, on each of the three webhooks.
    let first = hook.collect(6, Duration::from_secs(30));
    assert_eq!(first.len(), 6, "{}", run.log());
    let slack: Value =
        serde_json::from_slice(&first.iter().find(|r| r.path == "/slack").unwrap().body).unwrap();
    assert!(
        slack["text"].as_str().unwrap().starts_with("[pgvigil] "),
        "{slack}"
    );
    assert!(
        slack["blocks"].to_string().contains("What to do"),
        "{slack}"
    );
    let teams: Value =
        serde_json::from_slice(&first.iter().find(|r| r.path == "/teams").unwrap().body).unwrap();
    assert_eq!(
        teams["attachments"][0]["content"]["type"], "AdaptiveCard",
        "{teams}"
    );
    assert!(
        teams
            .to_string()
            .contains("https://pgvigil.example.com/console/alerts/"),
        "{teams}"
    );
    let body = json!({"properties": {"state": "Enabled", "emailAddresses": ["sec@example.com"]}})
        .to_string();
    assert_eq!(
        api.call(
            "PUT",
            "/servers/db1/securityAlertPolicies/Default",
            Some(&admin),
            Some(&body)
        )
        .0,
        200
    );
    let (st, sim) = api.call("POST", "/servers/db1/alerts/simulate", Some(&admin), None);
    assert_eq!(st, 200, "{sim}");
    let sims = alerts_of(&sim);
    assert_eq!(sims.len(), pgvigil::alert::AlertType::ALL.len());
    assert!(sims.iter().all(|a| a["isSimulated"] == true));

    // Webhook: each alert once per webhook, the JSON one signed.
    let n = pgvigil::alert::AlertType::ALL.len();
    let all = hook.collect(3 * n, Duration::from_secs(30));
    assert_eq!(all.len(), 3 * n, "{}", run.log());
    let got: Vec<HttpRequest> = all.into_iter().filter(|r| r.path == "/hook").collect();
    assert_eq!(got.len(), n);
    for r in &got {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
        // Signed over "<timestamp>.<body>", the timestamp the time of sending.
        let sig = r.header("X-Pgvigil-Signature").unwrap();
        let ts = r.header("X-Pgvigil-Timestamp").unwrap();
        let sent: i64 = ts.parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((now - sent).abs() < 120, "timestamp {ts}, now {now}");
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&r.body);
        assert_eq!(
            sig,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        let a: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(a["isSimulated"], true, "{a}");
        assert!(a["description"]
            .as_str()
            .unwrap()
            .starts_with("Sample alert"));
    }
    let mut types: Vec<String> = got
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["alertType"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    types.sort();
    types.dedup();
    assert_eq!(types.len(), n);
    assert!(
        hook.collect(1, Duration::from_millis(1500)).is_empty(),
        "sent twice"
    );

    // Syslog: CEF lines, one per alert (the hydra pair and the samples).
    let mut cef = Vec::new();
    let mut buf = [0u8; 65536];
    while cef.len() < 2 + n {
        let n = syslog.recv(&mut buf).expect("syslog message");
        cef.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert!(
        cef.iter().all(|m| m.starts_with('<')
            && m.contains(">1 ")
            && m.contains("CEF:0|pgvigil|pgvigil|")),
        "{cef:?}"
    );
    assert!(
        cef.iter().any(
            |m| m.contains("|PostgreSQL_BruteForce|Suspected successful brute force attack|8|")
        ),
        "{cef:?}"
    );
    // The samples say so to the SIEM; the real alerts do not.
    assert_eq!(
        cef.iter()
            .filter(|m| m.contains("cs6Label=simulated cs6=true"))
            .count(),
        n,
        "{cef:?}"
    );

    // Email: one message per alert to the policy's and the admins' addresses, readable.
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let mut mails = smtp.messages();
    while mails.len() < 2 + n && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        mails = smtp.messages();
    }
    assert_eq!(mails.len(), 2 + n, "{}", run.log());
    let bf = mails
        .iter()
        .find(|m| {
            m.contains("Subject: [pgvigil] High: Suspected successful brute force attack on db1")
        })
        .unwrap_or_else(|| panic!("{mails:?}"));
    assert!(bf.contains("dba@example.com"), "{bf}");
    assert!(
        !bf.contains("sec@example.com"),
        "the policy changed after this alert: {bf}"
    );
    for want in [
        "Source        127.0.0.1",
        "Principal",
        "What to do",
        "https://pgvigil.example.com/console/alerts/",
    ] {
        assert!(bf.contains(want), "{want}: {bf}");
    }
    assert!(
        !bf.contains("[sample]") && !bf.contains("SAMPLE ALERT"),
        "{bf}"
    );
    // The link is a console page: a browser without a token is sent to sign in, not refused.
    let path = bf
        .split("https://pgvigil.example.com")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let agent = raw_agent();
    let r = agent
        .get(format!("http://{}{path}", run.api_addr()))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "{path}");
    assert_eq!(
        r.headers().get("location").unwrap().to_str().unwrap(),
        "/console/signin"
    );
    let sample = mails.iter().find(|m| m.contains("[sample]")).unwrap();
    assert!(sample.contains("SAMPLE ALERT"), "{sample}");
    assert!(
        sample.contains("sec@example.com") && sample.contains("dba@example.com"),
        "{sample}"
    );
}

#[test]
fn a_notification_waits_for_a_receiver_that_is_down_even_across_a_restart() {
    let port = free_port();
    let s = setup(&format!(
        r#"[notify]
retry_base = "200ms"
retry_max = "1s"
[[notify.webhook]]
name = "late"
url = "http://127.0.0.1:{port}/hook"
"#
    ));
    let run = start(&s);
    let (_, found) = run.until(Duration::from_secs(30), |a| {
        a["alertType"] == "PostgreSQL_HarmfulApplication"
    });
    assert!(found, "{}", run.log());
    // Failures are recorded before the receiver comes up...
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !run.log().contains("notification failed") {
        assert!(std::time::Instant::now() < end, "{}", run.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...pgvigil is killed and comes back...
    run.kill();
    let run = start(&s);
    // ...and once the receiver listens, each alert arrives exactly once. (A delivery the
    // killed process had under way is leased for 30 s before the new one takes it over.)
    let hook = HttpSink::start(port);
    let got = hook.collect(2, Duration::from_secs(60));
    assert_eq!(got.len(), 2, "{}", run.log());
    assert!(
        hook.collect(1, Duration::from_secs(3)).is_empty(),
        "a notification was sent twice"
    );
    let mut ids: Vec<_> = got
        .iter()
        .map(|r| r.header("X-Pgvigil-Delivery").unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2);
}

/// schemathesis (PyPI) generates requests from the served OpenAPI document — valid ones,
/// malformed ones, and sequences — for 30 seconds, with every check it has: no 5xx, no
/// request the document allows refused, none it forbids accepted, answers as documented.
/// (One worker: with two, its generator hit an internal error of its own now and then.)
#[test]
fn generated_requests_from_the_openapi_document_get_documented_answers() {
    let st = ["schemathesis", "st"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| panic!("schemathesis not found: `python3 -m pip install schemathesis`"));
    let s = setup("");
    let admin = token(&s.store, "fuzz", "admin");
    let run = start(&s);
    let addr = run.api_addr();
    // A fixed seed keeps the suite's verdict the same from run to run;
    // PGVIGIL_FUZZ_SEED=<n> explores elsewhere.
    let seed = std::env::var("PGVIGIL_FUZZ_SEED").unwrap_or_else(|_| "20261201".into());
    let out = std::process::Command::new(st)
        .args(["run", &format!("http://{addr}/openapi.json")])
        .args(["--seed", &seed])
        .args(["-H", &format!("Authorization: Bearer {admin}")])
        .args(["--checks", "all", "--max-time", "30", "--workers", "1"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        run.log()
    );
    assert!(
        text.contains("passed") && !text.contains("Server error"),
        "{text}"
    );
    // It did reach the API: the token was used and nothing broke.
    assert_eq!(Api::new(addr).call("GET", "/healthz", None, None).0, 200);
}

/// With `api.tls_cert`/`api.tls_key`, the API speaks only HTTPS; a real client (curl)
/// verifies the certificate and gets its answers; plain HTTP gets none; a key that does not
/// fit stops pgvigil with the file's name.
#[test]
fn the_api_over_tls() {
    let s = setup("");
    let (ca, cert, key) = private_ca(s.dir.path());
    let mut text = std::fs::read_to_string(&s.config).unwrap();
    text = text.replace(
        "[api]\n",
        &format!(
            "[api]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    std::fs::write(&s.config, &text).unwrap();
    let admin = token(&s.store, "alice", "admin");
    let run = start(&s);
    let addr = run.api_addr();
    let curl = |url: String, extra: &[&str]| {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .args(extra)
            .arg(url)
            .output()
            .unwrap()
    };
    let ok = curl(format!("https://{addr}/healthz"), &[]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), r#"{"status":"ok"}"#);
    let auth = format!("Authorization: Bearer {admin}");
    let servers = curl(format!("https://{addr}/servers"), &["-H", &auth]);
    assert!(String::from_utf8_lossy(&servers.stdout).contains(r#""name":"db1""#));
    let plain = curl(format!("http://{addr}/healthz"), &[]);
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("ok"),
        "plain HTTP answered"
    );
    // Over HTTPS the console's cookies are Secure and browsers are told to stay on HTTPS.
    let page = curl(format!("https://{addr}/console/signin"), &["-i"]);
    let head = String::from_utf8_lossy(&page.stdout).to_lowercase();
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie: pgvigil_signin="))
        .unwrap_or_else(|| panic!("{head}"));
    assert!(cookie.contains("; secure"), "{cookie}");
    drop(run);

    // A key that is not the certificate's: the CA's.
    let other = s.dir.path().join("ca-key.pem");
    std::fs::write(
        &s.config,
        text.replace(&key.display().to_string(), &other.display().to_string()),
    )
    .unwrap();
    let out = pgvigil()
        .args(["run", "-c"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("api.tls_cert") && err.contains(&cert.display().to_string()),
        "{err}"
    );
}

/// Email over STARTTLS to a relay whose certificate comes from a private CA
/// (`notify.email.ca_file`); the server refuses mail without TLS, so a delivered message went
/// over it.
#[test]
fn email_over_starttls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(dir.path());
    let smtp = SmtpServer::start_tls(&cert, &key);
    let s = setup(&format!(
        r#"[notify.email]
host = "127.0.0.1"
port = {}
security = "starttls"
ca_file = "{}"
from = "pgvigil@example.com"
admins = ["dba@example.com"]
"#,
        smtp.port,
        ca.display()
    ));
    let run = start(&s);
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while smtp.messages().len() < 2 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "{}", run.log());
    assert!(mails
        .iter()
        .any(|m| m.contains("Suspected successful brute force attack")));
}

/// Syslog over TCP (RFC 6587 octet counting), RFC 5424 with structured data and the alert
/// record as the message, to a real listener.
#[test]
fn syslog_over_tcp_carries_rfc_5424_with_the_record() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let s = setup(&format!(
        "[[notify.syslog]]\nname = \"siem\"\naddress = \"{addr}\"\ntransport = \"tcp\"\nformat = \"rfc5424\"\n"
    ));
    let run = start(&s);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut data = Vec::new();
            let _ = conn.unwrap().read_to_end(&mut data);
            let _ = tx.send(data);
        }
    });
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let data = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no syslog message\n{}", run.log()));
        let text = String::from_utf8(data).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len(), "octet count");
        frames.push(msg.to_string());
    }
    let bf = frames
        .iter()
        .find(|m| m.contains(" PostgreSQL_BruteForce "))
        .unwrap_or_else(|| panic!("{frames:?}"));
    // <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG; authpriv.crit = 10*8+2.
    assert!(bf.starts_with("<82>1 "), "{bf}");
    assert!(
        bf.contains("pgvigil ") && bf.contains("[pgvigil@32473 id=\""),
        "{bf}"
    );
    assert!(bf.contains(" src=\"127.0.0.1\" user=\"app\"]"), "{bf}");
    let record: Value = serde_json::from_str(&bf[bf.find("] {").unwrap() + 2..]).unwrap();
    assert_eq!(
        record["displayName"],
        "Suspected successful brute force attack"
    );
}

/// Azure's own example bodies for PostgreSQL's `securityAlertPolicies` (REST API 2017-12-01:
/// ServerSecurityAlertsCreateMax, and the body its list returns), sent as Azure's clients send
/// them, under Azure Resource Manager's paths: accepted, served back in Azure's shape, and
/// Azure's GET bodies PUT back as they are.
#[test]
fn azure_example_bodies_round_trip_under_arm_paths() {
    let s = setup("");
    let admin = token(&s.store, "alice", "admin");
    let run = start(&s);
    let api = Api::new(run.api_addr());
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while !api.call("GET", "/servers", Some(&admin), None).1["value"]
        .to_string()
        .contains("\"db1\"")
    {
        assert!(std::time::Instant::now() < end, "{}", run.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let arm = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/securityalert-4799/providers/Microsoft.DBforPostgreSQL/servers/db1/securityAlertPolicies";
    let create_max = json!({"properties": {
        "state": "Enabled",
        "emailAccountAdmins": true,
        "emailAddresses": ["testSecurityAlert@microsoft.com"],
        "disabledAlerts": ["Access_Anomaly", "Usage_Anomaly"],
        "retentionDays": 5,
        "storageAccountAccessKey": "sdlfkjabc+sdlfkjsdlkfsjdfLDKFTERLKFDFKLjsdfksjdflsdkfD2342309432849328476458/3RSD==",
        "storageEndpoint": "https://mystorage.blob.core.windows.net"
    }});
    let (st, put) = api.call(
        "PUT",
        &format!("{arm}/Default?api-version=2017-12-01"),
        Some(&admin),
        Some(&create_max.to_string()),
    );
    assert_eq!(st, 200, "{put}");
    // Azure's 200 body, id and all.
    assert_eq!(
        put,
        json!({
            "id": format!("{arm}/Default"),
            "name": "Default",
            "type": "Microsoft.DBforPostgreSQL/servers/securityAlertPolicies",
            "properties": {
                "state": "Enabled",
                "emailAccountAdmins": true,
                "emailAddresses": ["testSecurityAlert@microsoft.com"],
                "disabledAlerts": ["Access_Anomaly", "Usage_Anomaly"],
                "retentionDays": 5,
                "storageEndpoint": "https://mystorage.blob.core.windows.net"
            }
        })
    );
    let (_, got) = api.call("GET", &format!("{arm}/Default"), Some(&admin), None);
    assert_eq!(got, put);
    let (_, listed) = api.call("GET", arm, Some(&admin), None);
    assert_eq!(listed["value"][0], put);
    // The same policy under pgvigil's own path.
    let (_, own) = api.call(
        "GET",
        "/servers/db1/securityAlertPolicies/Default",
        Some(&admin),
        None,
    );
    assert_eq!(own["properties"], put["properties"]);

    // Azure's bodies as its GETs return them: the id in lower case, or ending at the
    // collection; addresses as one "a;b" element; a value Azure documents with no alert here.
    for body in [
        json!({
            "id": format!("{}/default", arm.to_lowercase()),
            "name": "default",
            "type": "Microsoft.DBforPostgreSQL/servers/securityAlertPolicies",
            "properties": {"state": "Disabled", "emailAccountAdmins": true,
                "emailAddresses": ["test@microsoft.com;user@microsoft.com"],
                "disabledAlerts": ["Access_Anomaly", "Sql_Injection_Vulnerability"], "retentionDays": 0,
                "storageEndpoint": "https://mystorage.blob.core.windows.net"}
        }),
        json!({
            "id": arm,
            "name": "Default",
            "type": "Microsoft.DBforPostgreSQL/servers/securityAlertPolicies",
            "properties": {"state": "Disabled", "emailAccountAdmins": true,
                "emailAddresses": ["test@microsoft.com;user@microsoft.com"],
                "disabledAlerts": ["SQL.PostgreSQL_BruteForce"], "retentionDays": 0,
                "storageEndpoint": "https://mystorage.blob.core.windows.net"}
        }),
    ] {
        let (st, back) = api.call(
            "PUT",
            "/servers/db1/securityAlertPolicies/Default",
            Some(&admin),
            Some(&body.to_string()),
        );
        assert_eq!(st, 200, "{body}\n{back}");
        assert_eq!(
            back["properties"]["emailAddresses"],
            json!(["test@microsoft.com", "user@microsoft.com"])
        );
    }
    // Another server's id is refused.
    let other = json!({"id": arm.replace("/db1/", "/db2/"), "properties": {"state": "Enabled"}});
    let (st, e) = api.call(
        "PUT",
        "/servers/db1/securityAlertPolicies/Default",
        Some(&admin),
        Some(&other.to_string()),
    );
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (400, Some("InvalidParameterValue"))
    );

    // The fleet's policy can be set before its first alert.
    let (st, f) = api.call(
        "PUT",
        "/servers/fleet/securityAlertPolicies/Default",
        Some(&admin),
        Some(r#"{"properties":{"state":"Enabled","emailAddresses":["soc@example.com"]}}"#),
    );
    assert_eq!(st, 200, "{f}");
}

/// Every change an operator makes is in the audit trail with who and when: tokens made and
/// revoked at the command line, a policy changed through the API (before and after), an
/// alert's status. Turning detection off raises an alert of its own, sent to those the policy
/// notified before; a reader cannot read the trail.
#[test]
fn the_audit_trail_records_changes_and_turning_detection_off_raises_an_alert() {
    let hook = HttpSink::start(0);
    let s = setup(&format!(
        "[[notify.webhook]]\nname = \"soc\"\nurl = \"http://{}/hook\"\n",
        hook.addr
    ));
    let admin = token(&s.store, "alice", "admin");
    let reader = token(&s.store, "auditor", "reader");
    token(&s.store, "temp", "reader");
    ran(
        pgvigil()
            .args(["token", "revoke", "temp", "--store"])
            .arg(&s.store)
            .env("USER", "ops"),
        "the pgvigil binary",
    );
    let run = start(&s);
    let api = Api::new(run.api_addr());
    // The hydra log's alerts go out first.
    let first = hook.collect(2, Duration::from_secs(30));
    assert_eq!(first.len(), 2, "{}", run.log());
    let (_, list) = api.call("GET", "/alerts", Some(&reader), None);
    let id = alerts_of(&list)[0]["id"].as_str().unwrap().to_string();
    let (st, _) = api.call("POST", &format!("/alerts/{id}/resolve"), Some(&admin), None);
    assert_eq!(st, 200);
    let pol = "/servers/db1/securityAlertPolicies/Default";
    let off = json!({"properties": {"state": "Enabled", "disabledAlerts": ["Brute_Force"]}});
    let (st, _) = api.call("PUT", pol, Some(&admin), Some(&off.to_string()));
    assert_eq!(st, 200);

    let (st, _) = api.call("GET", "/audit", Some(&reader), None);
    assert_eq!(st, 403);
    let (st, trail) = api.call("GET", "/audit", Some(&admin), None);
    assert_eq!(st, 200, "{trail}");
    let entries = alerts_of(&trail);
    let seen: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("policy.update", "alice", "db1"),
        ("alert.status", "alice", id.as_str()),
        ("token.revoke", "cli:ops", "temp"),
        ("token.add", "cli:", "alice"),
    ] {
        assert!(
            seen.iter()
                .any(|(a, who, t)| a == want.0 && who.starts_with(want.1) && t == want.2),
            "{want:?} in {seen:?}"
        );
    }
    // Newest first; the policy change with what it was and what it became.
    assert_eq!(seen[0].0, "policy.update");
    assert_eq!(entries[0]["detail"]["before"]["disabledAlerts"], json!([]));
    assert_eq!(
        entries[0]["detail"]["after"]["disabledAlerts"],
        json!(["Brute_Force"])
    );
    let (_, status) = api.call("GET", "/audit?action=alert.status", Some(&admin), None);
    assert_eq!(
        status["value"][0]["detail"],
        json!({"from": "Active", "to": "Resolved"})
    );
    let (_, page) = api.call("GET", "/audit?top=1", Some(&admin), None);
    let next = page["nextLink"].as_str().unwrap();
    let (_, page2) = api.call("GET", next, Some(&admin), None);
    assert_eq!(page2["value"][0], entries[1]);

    // Turning brute force detection off is itself an alert, and it went out.
    let sent = hook.collect(1, Duration::from_secs(30));
    assert_eq!(sent.len(), 1, "{}", run.log());
    let a: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(a["displayName"], "Threat detection turned off for a server");
    assert_eq!(a["entities"]["principal"], "alice");
    assert_eq!(a["techniques"], json!(["T1562.001"]));
    assert_eq!(a["evidence"]["turnedOff"], json!(["Brute_Force"]));
}
