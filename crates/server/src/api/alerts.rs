//! `GET /alerts` (filters, paging), `GET /alerts/{id}`, and the state changes
//! `POST /alerts/{id}/dismiss|activate|inProgress|resolve`, each recorded with who and when.

use super::{blocking, ApiError, ApiResult, ApiState, Caller};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use model::alert::{AlertType, Severity};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use store::{AlertQuery, Order, PageKey, SortKey, Status};

const DEFAULT_TOP: usize = 100;
const MAX_TOP: usize = 1000;

pub(super) fn bad(param: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("InvalidQueryParameterValue", format!("{param}: {message}"))
}

/// An RFC 3339 time, normalised to the store's spelling so that text order is time order.
pub(super) fn time_param(name: &str, v: &str) -> ApiResult<String> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| model::event::format_time(t.timestamp_millis()))
        .map_err(|_| bad(name, "not an RFC 3339 time (e.g. 2026-11-28T12:00:00Z)"))
}

/// A page position as text: `[key_]end_id`, the end time in the store's spelling; the key is
/// a severity's rank, or `t` and a column's text in hex for the orders by a column. Every
/// string of that shape (the OpenAPI document's `skipToken` pattern) is a position, so a
/// client can only ask for a page, never for an error.
fn encode_token(k: &PageKey) -> String {
    match &k.sort {
        Some(SortKey::Rank(r)) => format!("{r}_{}_{}", k.end, k.id),
        Some(SortKey::Text(t)) => {
            // PostgreSQL's names are at most 63 bytes and servers are named by their
            // operators; a name past the limit is cut at a character.
            let t = model::event::truncate(t, MAX_KEY_BYTES);
            let hex: String = t.bytes().map(|b| format!("{b:02x}")).collect();
            format!("t{hex}_{}_{}", k.end, k.id)
        }
        None => format!("{}_{}", k.end, k.id),
    }
}

/// The longest text a page position carries.
const MAX_KEY_BYTES: usize = 1024;

/// A column's text from its hex, or `None` when it is not hex of up to `MAX_KEY_BYTES` bytes.
fn text_key(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) || hex.len() > 2 * MAX_KEY_BYTES {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            let pair = hex.get(i..i + 2)?;
            pair.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
                .then(|| u8::from_str_radix(pair, 16).ok())
                .flatten()
        })
        .collect::<Option<Vec<u8>>>()?;
    // Any bytes make a position: text that is not UTF-8 sorts where its lossy form does.
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn is_store_time(s: &str) -> bool {
    // 2026-11-28T12:00:00.000Z
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn decode_token(t: &str) -> ApiResult<PageKey> {
    let bad_token = || bad("skipToken", "not a token from a nextLink");
    let parts: Vec<&str> = t.split('_').collect();
    let (sort, end, id) = match parts[..] {
        [end, id] => (None, end, id),
        [key, end, id] => match (key.parse::<i64>(), key.strip_prefix('t')) {
            (Ok(r), _) if key.len() == 1 && (0..=2).contains(&r) => {
                (Some(SortKey::Rank(r)), end, id)
            }
            (_, Some(hex)) => match text_key(hex) {
                Some(t) => (Some(SortKey::Text(t)), end, id),
                None => return Err(bad_token()),
            },
            _ => return Err(bad_token()),
        },
        _ => return Err(bad_token()),
    };
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !is_store_time(end) || !id_ok {
        return Err(bad_token());
    }
    Ok(PageKey {
        sort,
        end: end.into(),
        id: id.into(),
    })
}

pub(crate) fn parse_query(params: &HashMap<String, String>) -> ApiResult<AlertQuery> {
    let mut q = AlertQuery {
        top: DEFAULT_TOP,
        ..Default::default()
    };
    for (k, v) in params {
        match k.as_str() {
            "server" => q.server = Some(v.clone()),
            "alertType" | "type" => {
                // Defender for Cloud's spelling too: SQL.PostgreSQL_BruteForce.
                let v = AlertType::without_defender_prefix(v);
                let t = AlertType::ALL
                    .iter()
                    .find(|t| {
                        // The catalogue's name, or its short form as `analyze` prints it.
                        t.as_str().eq_ignore_ascii_case(v)
                            || t.as_str()
                                .trim_start_matches("PostgreSQL_")
                                .eq_ignore_ascii_case(v)
                    })
                    .ok_or_else(|| bad(k, "not an alertType of the catalogue"))?;
                q.alert_type = Some(t.as_str().to_string());
            }
            "severity" => {
                let s = [Severity::Low, Severity::Medium, Severity::High]
                    .into_iter()
                    .find(|s| s.to_string().eq_ignore_ascii_case(v))
                    .ok_or_else(|| bad(k, "must be Low, Medium or High"))?;
                q.severity = Some(s.to_string());
            }
            "status" => {
                let s = Status::parse(v)
                    .ok_or_else(|| bad(k, "must be Active, InProgress, Dismissed or Resolved"))?;
                q.status = Some(s.as_str().to_string());
            }
            "sourceIp" => {
                let ip: std::net::IpAddr = v.parse().map_err(|_| bad(k, "not an IP address"))?;
                q.source_ip = Some(ip.to_string());
            }
            "principal" => q.principal = Some(v.clone()),
            "from" => q.from = Some(time_param(k, v)?),
            "to" => q.to = Some(time_param(k, v)?),
            "isSimulated" => {
                q.simulated = Some(v.parse().map_err(|_| bad(k, "must be true or false"))?)
            }
            "top" | "$top" => {
                q.top = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_TOP).contains(n))
                    .ok_or_else(|| bad(k, format!("must be a number from 1 to {MAX_TOP}")))?
            }
            "skipToken" | "$skipToken" => q.after = Some(decode_token(v)?),
            "orderBy" | "$orderBy" => {
                q.order = Order::parse(v).ok_or_else(|| {
                    bad(
                        k,
                        "must be endTime (newest first), severity (High first), or server, \
                         alertType, sourceIp or principal (A to Z, then newest first)",
                    )
                })?
            }
            "api-version" => {}
            other => {
                return Err(ApiError::bad_request(
                    "InvalidQueryParameter",
                    format!(
                        "unknown query parameter {:?}",
                        model::event::truncate(other, 100)
                    ),
                ))
            }
        }
    }
    Ok(q)
}

pub(crate) fn next_link(params: &HashMap<String, String>, key: &PageKey) -> String {
    page_link("/alerts", params, &encode_token(key))
}

/// `path` with the request's parameters (in a stable order) and `skipToken` set to `token`:
/// a `nextLink`.
pub(crate) fn page_link(path: &str, params: &HashMap<String, String>, token: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "skipToken" | "$skipToken"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort();
    pairs.push(("skipToken", token));
    let qs: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect();
    format!("{path}?{}", qs.join("&"))
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A page of alerts as the API writes it (members in name order).
#[derive(serde::Serialize)]
pub(super) struct AlertPage {
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
    value: Vec<Box<serde_json::value::RawValue>>,
}

pub(super) async fn list(
    State(st): State<Arc<ApiState>>,
    params: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AlertPage>> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("InvalidQueryParameter", e.body_text()))?;
    let q = parse_query(&params)?;
    let store = st.store.clone();
    let (value, next) = blocking(move || store.list_alert_records(&q)).await?;
    Ok(Json(AlertPage {
        next_link: next.map(|k| next_link(&params, &k)),
        value,
    }))
}

pub(super) async fn get_one(
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let store = st.store.clone();
    blocking(move || store.get_alert(&id))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such alert"))
}

pub(super) async fn transition(
    State(st): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let to = Status::of_action(&action).ok_or_else(|| {
        ApiError::not_found("alert actions are dismiss, activate, inProgress and resolve")
    })?;
    let out = st
        .set_alert_status(&id, to, &caller.name)
        .await?
        .ok_or_else(|| ApiError::not_found("no such alert"))?;
    tracing::info!(alert = %id, status = to.as_str(), by = %caller.name, "alert status changed");
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> ApiResult<AlertQuery> {
        parse_query(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn filters_are_checked_and_normalised() {
        let a = q(&[
            ("alertType", "postgresql_bruteforce"),
            ("severity", "high"),
            ("from", "2026-11-28T13:00:00+01:00"),
        ])
        .unwrap();
        assert_eq!(a.alert_type.as_deref(), Some("PostgreSQL_BruteForce"));
        assert_eq!(a.severity.as_deref(), Some("High"));
        assert_eq!(a.from.as_deref(), Some("2026-11-28T12:00:00.000Z"));
        for bad in [
            ("severity", "Critical"),
            ("top", "0"),
            ("top", "5000"),
            ("from", "yesterday"),
            ("sourceIp", "1.2.3"),
            ("skipToken", "zz"),
            ("orderBy", "colour"),
            ("colour", "red"),
        ] {
            let e = q(&[bad]).unwrap_err();
            assert_eq!(e.status, 400, "{bad:?}");
            assert!(e.message.contains(bad.0), "{}", e.message);
        }
    }

    #[test]
    fn a_next_link_carries_the_filters_and_a_token_that_reads_back() {
        let params: HashMap<String, String> = [("server".to_string(), "db 1".to_string())]
            .into_iter()
            .collect();
        let key = PageKey {
            sort: None,
            end: "2026-11-28T12:00:00.000Z".into(),
            id: "abc".into(),
        };
        let link = next_link(&params, &key);
        assert!(
            link.starts_with("/alerts?server=db%201&skipToken="),
            "{link}"
        );
        let tok = link.rsplit('=').next().unwrap();
        let tok = percent_encoding::percent_decode_str(tok)
            .decode_utf8()
            .unwrap();
        assert_eq!(decode_token(&tok).unwrap(), key);
        // The OpenAPI document's pattern is what the token looks like.
        let doc: Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
        let params = doc["paths"]["/alerts"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let skip = params.iter().find(|p| p["name"] == "skipToken").unwrap();
        let by_severity = PageKey {
            sort: Some(SortKey::Rank(1)),
            ..key.clone()
        };
        let by_principal = PageKey {
            sort: Some(SortKey::Text("Émile_x\u{0}".into())),
            ..key.clone()
        };
        assert_eq!(
            decode_token(&encode_token(&by_principal)).unwrap(),
            by_principal
        );
        for t in [
            tok.to_string(),
            encode_token(&by_severity),
            encode_token(&by_principal),
        ] {
            assert!(
                jsonschema::is_valid(&skip["schema"], &Value::String(t.clone())),
                "{t}"
            );
        }
        for t in [
            "zz",
            "3_2026-11-28T12:00:00.000Z_abc",
            "2026-11-28_abc",
            "tA0_2026-11-28T12:00:00.000Z_abc",
            "t0_2026-11-28T12:00:00.000Z_abc",
        ] {
            assert!(
                !jsonschema::is_valid(&skip["schema"], &Value::String(t.into())),
                "{t}"
            );
            assert!(decode_token(t).is_err(), "{t}");
        }
        let by_severity = PageKey {
            sort: Some(SortKey::Rank(1)),
            ..key
        };
        assert_eq!(
            decode_token(&encode_token(&by_severity)).unwrap(),
            by_severity
        );
    }
}
