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

/// How well a prefix fits sample lines: (lines it parses, its number of fields).
fn score(prefix: &Prefix, lines: &[&str]) -> (usize, usize) {
    let mut rec = Record::default();
    let hits = lines
        .iter()
        .filter(|l| {
            rec.clear();
            prefix.match_line(l, &mut rec).is_some()
        })
        .count();
    (hits, prefix.as_str().matches('%').count())
}

/// Picks the best-fitting well-known prefix for the first lines of a stderr log. Lines that
/// continue an entry (tab-indented) are not counted. `None` if no candidate parses any line.
pub fn guess_prefix(head: &[u8]) -> Option<Prefix> {
    let text = String::from_utf8_lossy(head);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('\t'))
        .take(200)
        .collect();
    // Among equals the first listed wins (max_by_key keeps the last, hence rev).
    Prefix::well_known()
        .into_iter()
        .rev()
        .map(|p| (score(&p, &lines), p))
        .filter(|((hits, _), _)| *hits > 0)
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
