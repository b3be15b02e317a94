//! The web console in a real headless Chromium (Debian `chromium` + `chromium-driver`, driven
//! with fantoccini) over a pgvigil whose alerts come from real failed logins on a test
//! cluster — by a role whose name is a script tag: sign in (a bad token refused), see the
//! alert, open it (the markup shown as text, never run), dismiss it and find the API agree;
//! a reader sees no buttons; a form without the session's CSRF token is refused. Screenshots of
//! each page go to `test-artifacts/console/`.

mod support;

use fantoccini::{ClientBuilder, Locator};
use serde_json::Value;
use std::time::Duration;
use support::*;

const EVIL_ROLE: &str = "<script>window.pwned=1</script>";

struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> (Driver, u16) {
    let port = free_port();
    let child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver (apt-get install -y chromium chromium-driver)");
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < end,
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (Driver(child), port)
}

async fn browser(port: u16) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a headless Chromium session")
}

async fn shot(c: &fantoccini::Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts/console");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.png")),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
}

/// Waits for the browser to arrive at a page whose path ends with `suffix`.
async fn until_path(c: &fantoccini::Client, suffix: &str) {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let path = c.current_url().await.unwrap().path().to_string();
        if path.ends_with(suffix) {
            return;
        }
        assert!(std::time::Instant::now() < end, "at {path}, not …{suffix}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the element's text contains `what`.
async fn until_text(c: &fantoccini::Client, css: &str, what: &str) -> String {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t.contains(what) {
                    return t;
                }
            }
        }
        assert!(std::time::Instant::now() < end, "{css} never said {what:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(c: &fantoccini::Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn type_into(c: &fantoccini::Client, css: &str, text: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

async fn sign_in(c: &fantoccini::Client, base: &str, token: &str) {
    c.goto(&format!("{base}/console")).await.unwrap();
    until_path(c, "/console/signin").await;
    type_into(c, "#token", token).await;
    click(c, "form.signin button").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_see_open_and_dismiss_an_alert_in_a_real_browser() {
    let cl = Cluster::start(ClusterOptions::default());
    for _ in 0..12 {
        assert!(
            !login(
                "127.0.4.1",
                cl.port,
                EVIL_ROLE,
                "guess",
                "appdb",
                Some("<img src=x onerror=alert(1)>")
            )
            .await
        );
    }
    // A second attack, from another address, for paging.
    for _ in 0..10 {
        assert!(!login("127.0.4.2", cl.port, "app", "guess", "appdb", None).await);
    }
    let setup = RunSetup::new(&cl.log_dir, "");
    let admin = setup.token("alice", "admin");
    let reader = setup.token("auditor", "reader");
    let run = setup.start();
    let seen = std::sync::Mutex::new(Vec::<Value>::new());
    let (_, found) = run.until(Duration::from_secs(30), |a| {
        let mut v = seen.lock().unwrap();
        v.push(a.clone());
        v.iter().any(|a| a["entities"]["principal"] == EVIL_ROLE)
            && v.iter().any(|a| a["entities"]["sourceIp"] == "127.0.4.2")
    });
    let alerts: Vec<Value> = seen
        .into_inner()
        .unwrap()
        .into_iter()
        .filter(|a| a["entities"]["principal"] == EVIL_ROLE)
        .collect();
    assert!(found, "{alerts:#?}\n{}", run.log());
    let id = alerts.last().unwrap()["id"].as_str().unwrap().to_string();
    let base = format!("http://{}", run.api_addr());

    let (_driver, port) = chromedriver();
    let c = browser(port).await;

    // A bad token is refused on the page.
    sign_in(&c, &base, "not-a-token").await;
    until_text(&c, "p.error", "not valid").await;
    shot(&c, "01-signin-refused").await;

    // The admin signs in and sees the alert, its role shown as text.
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    type_into(&c, "#token", &admin).await;
    click(&c, "form.signin button").await;
    until_path(&c, "/console").await;
    let overview = until_text(&c, "main", "Top sources").await;
    assert!(
        overview.contains("Suspected brute force attack"),
        "{overview}"
    );
    assert!(
        overview.contains("127.0.4.1"),
        "the attacking source: {overview}"
    );
    // Failed logins on the timeline: the 22 above, at least (the log may hold others).
    let count = |text: &str| -> u64 {
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let end = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let logins = until_text(&c, "p.logins", "failed").await;
        if count(&logins) >= 22 {
            break;
        }
        assert!(std::time::Instant::now() < end, "{logins}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.refresh().await.unwrap();
    }
    let numbers = c
        .find_all(Locator::Css("figure.chart table"))
        .await
        .unwrap();
    assert_eq!(numbers.len(), 2, "alerts and failed logins");
    shot(&c, "02-overview").await;
    // One server's overview, chosen in the form; a server with nothing shows nothing.
    c.find(Locator::Css("#server option[value=db1]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&c, "form.filters button").await;
    until_text(&c, "main", "Failed logins, last 24h, db1").await;
    let url = c.current_url().await.unwrap();
    assert!(url.query().unwrap_or("").contains("server=db1"), "{url}");
    let one = until_text(&c, "p.logins", "failed").await;
    assert!(count(&one) >= 22, "db1 is the server attacked: {one}");
    click(&c, "nav.ranges a").await;
    let week = until_text(&c, "main", "last 7d, db1").await;
    assert!(week.contains("127.0.4.1"), "{week}");
    c.goto(&format!("{base}/console?server=elsewhere"))
        .await
        .unwrap();
    let none = until_text(&c, "p.logins", "failed").await;
    assert!(none.starts_with("0 failed and 0 successful"), "{none}");
    c.goto(&format!("{base}/console/alerts")).await.unwrap();
    until_path(&c, "/console/alerts").await;
    let table = c
        .find(Locator::Css("table"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        table.contains(EVIL_ROLE),
        "the role name is shown as text: {table}"
    );
    shot(&c, "02-alerts-list").await;

    // The alert page: markup escaped and not run.
    c.goto(&format!("{base}/console/alerts/{id}"))
        .await
        .unwrap();
    let body = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains(EVIL_ROLE), "{body}");
    assert!(
        body.contains("Take action") && body.contains("What to do") && body.contains("T1110"),
        "{body}"
    );
    let pwned = c
        .execute("return window.pwned === undefined", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, Value::Bool(true), "the role name's script never ran");
    let src = c.source().await.unwrap();
    assert!(!src.contains(EVIL_ROLE), "only escaped in the HTML");
    let timeline = until_text(&c, "table.samples", "LoginFailed").await;
    assert!(
        timeline.contains(EVIL_ROLE) && timeline.contains("127.0.4.1"),
        "{timeline}"
    );
    assert!(
        body.contains("Client fingerprint") && body.contains("not seen (logs only)"),
        "{body}"
    );
    shot(&c, "03-alert").await;

    // Dismiss, and the API agrees, naming who.
    let buttons = c.find_all(Locator::Css(".actions button")).await.unwrap();
    let mut dismissed = false;
    for b in buttons {
        if b.text().await.unwrap() == "Dismiss" {
            b.click().await.unwrap();
            dismissed = true;
            break;
        }
    }
    assert!(dismissed, "a Dismiss button for the admin");
    until_text(&c, "p.meta", "Dismissed").await;
    shot(&c, "04-dismissed").await;
    let (_, a) = api_get(&base, &format!("/alerts/{id}"), &reader);
    assert_eq!(a["status"], "Dismissed");
    assert_eq!(
        a["stateHistory"].as_array().unwrap().last().unwrap()["actor"],
        "alice"
    );

    // Filters and paging: one alert a page, then the older one; filters that match nothing.
    c.goto(&format!("{base}/console/alerts?top=1"))
        .await
        .unwrap();
    let first = until_text(&c, "table", "127.0.4").await;
    click(&c, "a.older").await;
    let second = until_text(&c, "table", "127.0.4").await;
    assert_ne!(first, second, "the next page holds the other alert");
    assert!(
        c.find_all(Locator::Css("a.older"))
            .await
            .unwrap()
            .is_empty(),
        "two alerts, two pages"
    );
    // Highest severity first over the whole list, across pages.
    let rank = |row: &str| {
        ["High", "Medium", "Low"]
            .iter()
            .position(|s| row.contains(s))
            .unwrap_or(3)
    };
    let mut rows = Vec::new();
    c.goto(&format!("{base}/console/alerts?sort=severity&top=1"))
        .await
        .unwrap();
    loop {
        rows.push(until_text(&c, "table tbody", "127.0.4").await);
        if c.find_all(Locator::Css("a.older"))
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        click(&c, "a.older").await;
        assert!(rows.len() < 5, "{rows:?}");
    }
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_ne!(rows[0], rows[1]);
    assert!(rank(&rows[0]) <= rank(&rows[1]), "{rows:?}");
    let (_, api_order) = api_get(&base, "/alerts?orderBy=severity", &reader);
    let api_sev: Vec<&str> = api_order["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["severity"].as_str().unwrap())
        .collect();
    assert!(rows[0].contains(api_sev[0]), "{rows:?} {api_sev:?}");
    // A click on a column's heading sorts the whole list by it, as the API does.
    c.goto(&format!("{base}/console/alerts")).await.unwrap();
    until_text(&c, "table", "127.0.4").await;
    c.find(Locator::LinkText("Source"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("sort=sourceIp")
    {
        assert!(std::time::Instant::now() < end, "the heading did not sort");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caption = until_text(&c, "table caption", "by source").await;
    let sorted = c
        .find(Locator::Css("th[aria-sort='ascending']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sorted, "Source", "{caption}");
    let first_row = until_text(&c, "table tbody tr", "127.0.4").await;
    let (_, by_source) = api_get(&base, "/alerts?orderBy=sourceIp", &reader);
    let want = by_source["value"][0]["entities"]["sourceIp"]
        .as_str()
        .unwrap();
    assert!(first_row.contains(want), "{first_row} / {by_source:#}");
    c.goto(&format!("{base}/console/alerts?alertType=PostgreSQL_Probe"))
        .await
        .unwrap();
    until_text(&c, "main", "No alerts.").await;
    c.goto(&format!("{base}/console/alerts?from=2099-01-01"))
        .await
        .unwrap();
    until_text(&c, "main", "No alerts.").await;
    shot(&c, "05-filtered").await;

    // Servers and what is normal for each.
    c.goto(&format!("{base}/console/servers")).await.unwrap();
    let servers = until_text(&c, "table", "db1").await;
    assert!(servers.contains("Alert policy"), "{servers}");
    shot(&c, "05-servers").await;
    c.goto(&format!("{base}/console/servers/db1"))
        .await
        .unwrap();
    until_text(&c, "main", "Principals").await;
    shot(&c, "06-profile").await;

    // The policy: a bad recipient is shown next to its field, nothing saved; then a good one.
    c.goto(&format!("{base}/console/servers/db1/policy"))
        .await
        .unwrap();
    let emails = c.find(Locator::Css("#email_addresses")).await.unwrap();
    emails.clear().await.unwrap();
    emails
        .send_keys("soc@example.com; not-an-address")
        .await
        .unwrap();
    click(&c, "form.policy button").await;
    let err = until_text(&c, "#email-error", "not-an-address").await;
    assert!(!err.is_empty());
    shot(&c, "07-policy-error").await;
    let emails = c.find(Locator::Css("#email_addresses")).await.unwrap();
    emails.clear().await.unwrap();
    emails.send_keys("soc@example.com").await.unwrap();
    click(&c, "input[value=Brute_Force]").await;
    click(&c, "form.policy button").await;
    until_text(&c, "main", "Saved.").await;
    shot(&c, "08-policy-saved").await;
    let (_, pol) = api_get(&base, "/servers/db1/securityAlertPolicies/Default", &reader);
    assert_eq!(
        pol["properties"]["emailAddresses"][0], "soc@example.com",
        "{pol:#}"
    );
    assert_eq!(
        pol["properties"]["disabledAlerts"][0], "Brute_Force",
        "{pol:#}"
    );

    // A reader sees no buttons.
    c.delete_all_cookies().await.unwrap();
    sign_in(&c, &base, &reader).await;
    until_path(&c, "/console").await;
    c.goto(&format!("{base}/console/alerts/{id}"))
        .await
        .unwrap();
    assert!(c
        .find_all(Locator::Css(".actions button"))
        .await
        .unwrap()
        .is_empty());
    shot(&c, "09-reader").await;
    c.goto(&format!("{base}/console/servers/db1/policy"))
        .await
        .unwrap();
    until_text(&c, "main", "can look, not change").await;
    assert!(c
        .find_all(Locator::Css("form.policy button"))
        .await
        .unwrap()
        .is_empty());
    c.close().await.unwrap();

    // A form posted without the session's CSRF token is refused, and changes nothing.
    let agent = raw_agent();
    let cookie = form_sign_in(&agent, &base, &admin).unwrap();
    let r = post_form(
        &agent,
        &format!("{base}/console/alerts/{id}/activate"),
        &cookie,
        "csrf=forged",
    );
    assert_eq!(r.status().as_u16(), 403);
    let (_, a) = api_get(&base, &format!("/alerts/{id}"), &reader);
    assert_eq!(a["status"], "Dismissed");
}

/// From an alert's page, "Suppress similar alerts…" opens the rule form filled in with the
/// alert's type, server, source and principal (a role name that is a script tag, shown as
/// text); saved, the rule is listed, and the API serves it. The rules page fits a 390 px
/// screen without sideways scrolling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppression_rule_made_from_an_alert_in_a_real_browser() {
    let cl = Cluster::start(ClusterOptions::default());
    for _ in 0..12 {
        assert!(!login("127.0.4.9", cl.port, EVIL_ROLE, "guess", "appdb", None).await);
    }
    let setup = RunSetup::new(&cl.log_dir, "");
    let admin = setup.token("alice", "admin");
    let run = setup.start();
    let (seen, found) = run.until(Duration::from_secs(30), |a| {
        a["alertType"] == "PostgreSQL_BruteForce" && a["entities"]["sourceIp"] == "127.0.4.9"
    });
    assert!(found, "{seen:#?}\n{}", run.log());
    let id = seen.last().unwrap()["id"].as_str().unwrap().to_string();
    let base = format!("http://{}", run.api_addr());
    let (_driver, port) = chromedriver();
    let c = browser(port).await;
    sign_in(&c, &base, &admin).await;
    until_path(&c, "/console").await;
    c.goto(&format!("{base}/console/alerts/{id}"))
        .await
        .unwrap();
    c.find(Locator::LinkText("Suppress similar alerts…"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_path(&c, "/console/suppression").await;
    let value = |css: &'static str| {
        let c = c.clone();
        async move {
            c.find(Locator::Css(css))
                .await
                .unwrap()
                .prop("value")
                .await
                .unwrap()
                .unwrap_or_default()
        }
    };
    assert_eq!(value("#sources").await, "127.0.4.9");
    assert_eq!(value("#servers").await, "db1");
    assert_eq!(value("#principals").await, EVIL_ROLE);
    assert_eq!(value("#alert_type").await, "PostgreSQL_BruteForce");
    type_into(&c, "#name", "scanner").await;
    type_into(&c, "#reason", "the weekly vulnerability scan").await;
    click(&c, "form.policy button").await;
    let page = until_text(&c, "main", "Saved.").await;
    assert!(
        page.contains("source address in 127.0.4.9") && page.contains(EVIL_ROLE),
        "{page}"
    );
    let pwned = c
        .execute("return window.pwned === undefined", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, Value::Bool(true), "the role name's script never ran");
    shot(&c, "06-suppression-rules").await;
    let (st, rule) = api_get(&base, "/alertsSuppressionRules/scanner", &admin);
    assert_eq!(st, 200, "{rule}");
    assert_eq!(rule["properties"]["alertType"], "PostgreSQL_BruteForce");
    assert_eq!(
        rule["properties"]["suppressionAlertsScope"]["allOf"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "server, source and principal: {rule:#}"
    );
    // On a phone's width: no sideways scrolling.
    c.set_window_size(390, 844).await.unwrap();
    c.refresh().await.unwrap();
    until_text(&c, "main", "scanner").await;
    shot(&c, "07-suppression-rules-390px").await;
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    let wide = c
        .execute(
            "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        fits,
        Value::Bool(true),
        "the rules page scrolls sideways at 390 px: {wide}"
    );
    c.close().await.unwrap();
}

/// Every page at a desktop's 1440 px and a phone's 390 px: nothing wider than the screen
/// (`scrollWidth <= innerWidth`), a screenshot of each. The pivots: from a brute force
/// alert, the other alert about its source (an attack tool's name) is shown as related, and
/// the source's link opens its page with both; the principal's link lists its alerts. The
/// list exports its filter as CSV (an attacker's formula made harmless) and dismisses the
/// rows ticked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_desktop_and_a_phone_and_entities_are_pivots() {
    let cl = Cluster::start(ClusterOptions::default());
    let attacker = "127.0.4.20";
    for i in 0..12 {
        let guess = format!("guess-{i}");
        assert!(!login(attacker, cl.port, "app", &guess, "appdb", None).await);
    }
    // Then in, as an attack tool names itself: the brute force succeeded, and a second
    // alert about the same source.
    assert!(
        login(
            attacker,
            cl.port,
            "app",
            APP_PASSWORD,
            "appdb",
            Some("sqlmap/1.7.2")
        )
        .await
    );
    // A role name that is a spreadsheet formula, from elsewhere.
    for i in 0..12 {
        let guess = format!("guess-{i}");
        assert!(
            !login(
                "127.0.4.21",
                cl.port,
                "=HYPERLINK(1)",
                &guess,
                "appdb",
                None
            )
            .await
        );
    }
    let setup = RunSetup::new(&cl.log_dir, "");
    let admin = setup.token("alice", "admin");
    let run = setup.start();
    let seen = std::sync::Mutex::new(Vec::<Value>::new());
    let (_, found) = run.until(Duration::from_secs(30), |a| {
        let mut v = seen.lock().unwrap();
        v.push(a.clone());
        let of = |t: &str, ip: &str| {
            v.iter()
                .any(|a| a["alertType"] == t && a["entities"]["sourceIp"] == ip)
        };
        of("PostgreSQL_BruteForce", attacker)
            && of("PostgreSQL_HarmfulApplication", attacker)
            && of("PostgreSQL_BruteForce", "127.0.4.21")
    });
    let seen = seen.into_inner().unwrap();
    assert!(found, "{seen:#?}\n{}", run.log());
    let brute = seen
        .iter()
        .rev()
        .find(|a| {
            a["alertType"] == "PostgreSQL_BruteForce" && a["entities"]["sourceIp"] == attacker
        })
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("http://{}", run.api_addr());
    let (_driver, port) = chromedriver();
    let c = browser(port).await;
    sign_in(&c, &base, &admin).await;
    until_path(&c, "/console").await;

    // The overview names alerts as people do, newest and highest open first.
    let overview = until_text(&c, "main", "Highest open alerts").await;
    assert!(
        overview.contains("Suspected brute force attack"),
        "{overview}"
    );

    // Related alerts on the alert page, and the pivots from it.
    c.goto(&format!("{base}/console/alerts/{brute}"))
        .await
        .unwrap();
    let related = until_text(&c, "section.related", "potentially harmful application").await;
    assert!(related.contains("db1"), "{related}");
    let mitre = until_text(&c, "ul.techniques", "T1110").await;
    assert!(mitre.contains("Brute Force"), "techniques by name: {mitre}");
    click(&c, "dl a.source").await;
    until_path(&c, &format!("/console/sources/{attacker}")).await;
    let source = until_text(&c, "main", "Alerts").await;
    assert!(
        source.contains("Suspected successful brute force attack")
            && source.contains("login succeeded")
            && source.contains("potentially harmful application"),
        "{source}"
    );
    assert!(
        source.contains("First seen") && source.contains("Not blocked"),
        "{source}"
    );
    c.find(Locator::Css("table.alerts a.principal"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_path(&c, "/console/alerts").await;
    let url = c.current_url().await.unwrap();
    assert!(url.query().unwrap_or("").contains("principal=app"), "{url}");
    let listed = until_text(&c, "table.alerts", "app").await;
    assert!(
        !listed.contains("HYPERLINK"),
        "only the principal's alerts: {listed}"
    );
    // And what the server's profile knows of it: the attacker's login made it known.
    let known = until_text(&c, "section.principal", "Known on").await;
    assert!(known.contains("db1") && known.contains("logins"), "{known}");

    // The servers: the agent's health and how long it is still learning.
    c.goto(&format!("{base}/console/servers")).await.unwrap();
    let servers = until_text(&c, "main table", "db1").await;
    assert!(
        servers.contains("days left")
            && servers.contains("reported")
            && servers.contains("not scanned"),
        "{servers}"
    );
    c.goto(&format!("{base}/console/servers/db1"))
        .await
        .unwrap();
    let server = until_text(&c, "main", "Posture scan").await;
    assert!(
        server.contains("Agent") && server.contains("What is normal for db1"),
        "{server}"
    );
    // The files the agent follows, with their format (reported with the profile).
    let end = std::time::Instant::now() + Duration::from_secs(40);
    let log_dir = cl.log_dir.display().to_string();
    loop {
        c.refresh().await.unwrap();
        let follows = until_text(&c, "main", "Follows").await;
        if follows.contains(&log_dir) {
            assert!(
                ["(stderr", "(csvlog", "(jsonlog"]
                    .iter()
                    .any(|f| follows.contains(f)),
                "{follows}"
            );
            break;
        }
        assert!(std::time::Instant::now() < end, "{follows}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every page, on a desktop and on a phone.
    let pages = [
        ("overview", "/console".to_string()),
        ("alerts", "/console/alerts".to_string()),
        ("alert", format!("/console/alerts/{brute}")),
        ("source", format!("/console/sources/{attacker}")),
        ("servers", "/console/servers".to_string()),
        ("server", "/console/servers/db1".to_string()),
        ("policy", "/console/servers/db1/policy".to_string()),
        ("rules", "/console/suppression".to_string()),
    ];
    for (w, h) in [(1440, 900), (390, 844)] {
        c.set_window_size(w, h).await.unwrap();
        for (name, path) in &pages {
            c.goto(&format!("{base}{path}")).await.unwrap();
            until_text(&c, "main h1", "").await;
            shot(&c, &format!("10-{name}-{w}px")).await;
            let wide = c
                .execute(
                    "return document.documentElement.scrollWidth <= window.innerWidth ? [] : [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).map(e => e.tagName + '.' + e.className)",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(wide, serde_json::json!([]), "{path} is wider than {w} px");
        }
    }

    // The list's filter exported: a formula in a role name arrives as text.
    let cookies = c.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|k| k.name() == "pgvigil_session")
        .unwrap()
        .value()
        .to_string();
    let mut r = raw_agent()
        .get(&format!(
            "{base}/console/alerts/export?format=csv&sourceIp=127.0.4.21"
        ))
        .header("Cookie", &format!("pgvigil_session={session}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let csv = r.body_mut().read_to_string().unwrap();
    assert!(csv.starts_with("id,alertType,"), "{csv}");
    assert!(csv.contains(",'=HYPERLINK(1),"), "{csv}");
    assert!(!csv.contains(attacker), "the filter holds: {csv}");
    // As JSON: the records the API serves for the same filter, nothing added or lost.
    let mut r = raw_agent()
        .get(&format!(
            "{base}/console/alerts/export?format=json&sourceIp=127.0.4.21"
        ))
        .header("Cookie", &format!("pgvigil_session={session}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let exported: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let (_, served) = api_get(&base, "/alerts?sourceIp=127.0.4.21", &admin);
    assert!(!served["value"].as_array().unwrap().is_empty(), "{served}");
    assert_eq!(exported, served["value"]);

    // Tick the formula's alert and dismiss it from the list.
    c.set_window_size(1440, 900).await.unwrap();
    c.goto(&format!("{base}/console/alerts?sourceIp=127.0.4.21"))
        .await
        .unwrap();
    until_text(&c, "table.alerts", "HYPERLINK").await;
    click(&c, "table.alerts tbody input[type=checkbox]").await;
    click(&c, "form.bulk button[value=dismiss]").await;
    until_path(&c, "/console/alerts").await;
    let after = until_text(&c, "table.alerts", "Dismissed").await;
    assert!(after.contains("HYPERLINK"), "{after}");
    let (_, listed) = api_get(&base, "/alerts?sourceIp=127.0.4.21", &admin);
    assert!(
        listed["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "Dismissed"),
        "{listed:#}"
    );
    c.close().await.unwrap();
}

/// Whether `cookie` opens the console (a page, not the way to sign-in).
fn signed_in(agent: &ureq::Agent, base: &str, cookie: &str) -> bool {
    let r = agent
        .get(format!("{base}/console/servers"))
        .header("Cookie", cookie)
        .call()
        .unwrap();
    r.status().as_u16() == 200
}

/// Sessions as a penetration tester tries them: a sign-in posted from another site, a
/// sign-out with a wrong CSRF token, guessing tokens, a revoked token's session, a session
/// left idle.
#[test]
fn console_sessions_resist_forgery_guessing_revocation_and_idleness() {
    let logs = tempfile::tempdir().unwrap();
    let setup = RunSetup::new(logs.path(), "[api]\nsession_idle = \"3s\"\n");
    let admin = setup.token("alice", "admin");
    let other = setup.token("bob", "reader");
    let run = setup.start();
    let base = format!("http://{}", run.api_addr());
    let agent = raw_agent();

    // A foreign page posting the sign-in form has neither the form's cookie nor its value.
    let r = agent
        .post(format!("{base}/console/signin"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("token={admin}"))
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(set_cookie(&r, "pgvigil_session"), None);

    // Sign-out needs the session's CSRF token; a forged one leaves the session alone.
    let cookie = form_sign_in(&agent, &base, &admin).unwrap();
    assert!(signed_in(&agent, &base, &cookie));
    let r = post_form(
        &agent,
        &format!("{base}/console/signout"),
        &cookie,
        "csrf=forged",
    );
    assert_eq!(r.status().as_u16(), 403);
    assert!(
        signed_in(&agent, &base, &cookie),
        "a forged sign-out ended the session"
    );

    // Idle for longer than api.session_idle: the session is over.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !signed_in(&agent, &base, &cookie),
        "an idle session lived on"
    );

    // Revoking the token ends its sessions at once; other tokens' sessions go on.
    let cookie = form_sign_in(&agent, &base, &admin).unwrap();
    let bobs = form_sign_in(&agent, &base, &other).unwrap();
    assert!(signed_in(&agent, &base, &cookie));
    let db = setup.state.join("pgvigil.db");
    ran(
        pgvigil()
            .args(["token", "revoke", "alice", "--store"])
            .arg(&db),
        "the pgvigil binary",
    );
    assert!(
        !signed_in(&agent, &base, &cookie),
        "a revoked token's session lived on"
    );
    let r = post_form(
        &agent,
        &format!("{base}/console/alerts/x/dismiss"),
        &cookie,
        "csrf=x",
    );
    assert_ne!(r.status().as_u16(), 200);
    assert!(signed_in(&agent, &base, &bobs));

    // Guessing: each failure is logged with its address (never the token tried), and after
    // ten the address waits, even with a valid token.
    for i in 0..10 {
        assert_eq!(
            form_sign_in(&agent, &base, &format!("pgv_guess{i}")),
            Err(401)
        );
    }
    assert_eq!(form_sign_in(&agent, &base, &other), Err(429));
    let log = run.log();
    assert_eq!(
        log.matches("console sign-in with a token that is not valid")
            .count(),
        10,
        "{log}"
    );
    assert!(log.contains("source=127.0.0.1"), "{log}");
    assert!(
        !log.contains("pgv_guess"),
        "a tried token was logged: {log}"
    );
}
