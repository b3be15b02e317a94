//! The Grafana dashboard shipped in `deploy/grafana/pgvigil.json`: what Grafana needs to
//! import it (`schema/grafana-dashboard.schema.json`), panels that fit the grid without
//! overlapping, and queries of pgvigil's own metrics only (the live scrape that checks they
//! exist is in `tests/proxy.rs`, where `run` serves every family).

mod support;

use std::collections::HashSet;
use std::path::Path;
use support::metrics_of;

fn dashboard() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/pgvigil.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_dashboard_is_what_grafana_imports() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/grafana-dashboard.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let v = jsonschema::options().build(&schema).unwrap();
    let d = dashboard();
    let errors: Vec<String> = v
        .iter_errors(&d)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    let panels = d["panels"].as_array().unwrap();
    let mut ids = HashSet::new();
    let mut cells = HashSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "id used twice: {p}");
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "{} runs off the grid", p["title"]);
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{} overlaps another panel",
                    p["title"]
                );
            }
        }
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            assert!(!metrics_of(expr).is_empty(), "{expr}");
            // Parentheses balance: a query Grafana would reject otherwise.
            let mut depth = 0i32;
            for c in expr.chars() {
                depth += match c {
                    '(' | '[' | '{' => 1,
                    ')' | ']' | '}' => -1,
                    _ => 0,
                };
                assert!(depth >= 0, "{expr}");
            }
            assert_eq!(depth, 0, "{expr}");
        }
    }
    // The four: alerts by type and severity, logins per minute, follower lag, proxy
    // refusals.
    let all: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .flat_map(|t| metrics_of(t["expr"].as_str().unwrap()))
        .collect();
    for m in [
        "pgvigil_alerts",
        "pgvigil_logins_total",
        "pgvigil_follower_lag_seconds",
        "pgvigil_proxy_refused_total",
    ] {
        assert!(all.iter().any(|a| a == m), "no panel shows {m}");
    }
}
