//! Which format a log file is in, and for stderr logs which `log_line_prefix` fits, from the
//! file's first lines.

use super::prefix::Prefix;
use super::{timestamp, LogFormat, Record};
use std::path::Path;

/// The format of a file from its first bytes; the extension decides only for an empty file.
pub fn sniff_format(head: &[u8], path: &Path) -> LogFormat {
    let first = head
        .split(|c| *c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.iter().all(|c| c.is_ascii_whitespace()));
    match first {
        Some(l) if l.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{') => LogFormat::Jsonlog,
        Some(l) if super::pgbouncer::is_pgbouncer_line(l) => LogFormat::Pgbouncer,
        Some(l) if is_csv_line(l) => LogFormat::Csvlog,
        Some(_) => LogFormat::Stderr,
        None => match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => LogFormat::Csvlog,
            Some("json") => LogFormat::Jsonlog,
            _ => LogFormat::Stderr,
        },
    }
}

/// csvlog lines start with `log_time` and a comma: `2026-11-28 10:24:43.441 UTC,`.
fn is_csv_line(l: &[u8]) -> bool {
    let Some(n) = timestamp::datetime_len(l) else {
        return false;
    };
    let rest = &l[n..];
    let zone_end = rest.iter().position(|c| *c == b',');
    match zone_end {
        Some(p) => p <= 8 && !rest[..p].contains(&b'['),
        None => false,
    }
}

/// How well a prefix fits sample lines: (lines it parses, the fields that matter that it
/// read a value into on some line, fewer escapes). A prefix with `%q%u@%d` reads a plain
/// `%m [%p] ` log too (every line looks like a postmaster's), but it found no role or
/// database there, and must not win: it would claim failures carry their database.
///
/// Between prefixes that read the same lines, the one whose role, database and application
/// fields hold the names the messages themselves give (`connection authorized: user=…`)
/// is the server's: `%q%a` and `%q%u` read the same text, but only one puts `orders-api`
/// where an application name goes.
fn score(
    prefix: &Prefix,
    lines: &[&str],
    names: &super::prefix_infer::Names,
) -> (usize, usize, usize, std::cmp::Reverse<usize>) {
    let mut rec = Record::default();
    let mut hits = 0;
    let mut consistent = 0;
    let mut read = [false; 9];
    for l in lines {
        rec.clear();
        if prefix.match_line(l, &mut rec).is_none() {
            continue;
        }
        hits += 1;
        let has = |v: &[String], x: &str| !x.is_empty() && v.iter().any(|y| y == x);
        let host_ok = rec.host == "[local]" || rec.host.parse::<std::net::IpAddr>().is_ok();
        consistent += usize::from(has(&names.users, &rec.user))
            + usize::from(has(&names.databases, &rec.database))
            + usize::from(has(&names.applications, &rec.application))
            + usize::from(!rec.host.is_empty() && host_ok);
        for (k, got) in [
            rec.time.is_some(),
            rec.pid.is_some(),
            !rec.session_id.is_empty(),
            !rec.user.is_empty(),
            !rec.database.is_empty(),
            !rec.application.is_empty(),
            !rec.host.is_empty(),
            rec.port.is_some(),
            rec.sqlstate.is_some(),
        ]
        .into_iter()
        .enumerate()
        {
            read[k] |= got;
        }
    }
    let escapes = prefix.as_str().matches('%').count();
    (
        hits,
        consistent,
        read.iter().filter(|x| **x).count(),
        std::cmp::Reverse(escapes),
    )
}

/// Picks the best-fitting prefix for the first lines of a stderr log: the well-known ones
/// (PostgreSQL's default, Debian's, the managed services', pgBadger's) and the ones inferred
/// from the lines themselves ([`super::prefix_infer`]), scored by how many lines each reads.
/// Lines that continue an entry (tab-indented) are not counted. `None` if none reads a line.
pub fn guess_prefix(head: &[u8]) -> Option<Prefix> {
    let text = String::from_utf8_lossy(head);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('\t'))
        .take(500)
        .collect();
    let names = super::prefix_infer::Names::of(&lines);
    let mut candidates = Prefix::well_known();
    for p in super::prefix_infer::infer(&lines) {
        if !candidates.iter().any(|c| c.as_str() == p) {
            if let Ok(c) = Prefix::compile(&p) {
                candidates.push(c);
            }
        }
    }
    // Among equals the first listed wins (max_by_key keeps the last, hence rev).
    candidates
        .into_iter()
        .rev()
        .map(|p| (score(&p, &lines, &names), p))
        .filter(|((hits, _, _, _), _)| *hits > 0)
        .max_by_key(|(s, _)| *s)
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let p = Path::new("x.log");
        assert_eq!(
            sniff_format(b"{\"timestamp\":\"2026-11-28 10:24:43.441 UTC\"}\n", p),
            LogFormat::Jsonlog
        );
        assert_eq!(
            sniff_format(
                b"2026-11-28 10:24:43.441 UTC,,,8059,,6b0aabeb.1f7b,1,,\n",
                p
            ),
            LogFormat::Csvlog
        );
        assert_eq!(
            sniff_format(b"2026-11-28 10:24:43.441 UTC [8059] LOG:  x\n", p),
            LogFormat::Stderr
        );
        assert_eq!(sniff_format(b"", Path::new("a.csv")), LogFormat::Csvlog);
    }

    #[test]
    fn guesses_debian_prefix() {
        let head = b"2026-11-28 10:23:36.794 UTC [4599] LOG:  database system is ready to accept connections\n\
2026-11-28 10:23:41.039 UTC [4876] app@appdb FATAL:  password authentication failed for user \"app\"\n";
        assert_eq!(guess_prefix(head).unwrap().as_str(), "%m [%p] %q%u@%d ");
    }

    #[test]
    fn guesses_pgbadger_prefix() {
        let head = b"2026-11-28 10:23:54 UTC [5547]: [2-1] user=app,db=template1,app=[unknown],client=127.0.0.1 FATAL:  password authentication failed for user \"app\"\n";
        assert_eq!(
            guess_prefix(head).unwrap().as_str(),
            "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "
        );
    }
}
