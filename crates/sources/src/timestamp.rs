//! PostgreSQL log timestamps (`%m`, `%t`, `%n`, csvlog/jsonlog `log_time`) to [`EventTime`].
//!
//! Parsed by hand: this runs once per log line and chrono's format-string parser would be a
//! large share of the whole pipeline's time.

use model::event::EventTime;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Length of a `YYYY-MM-DD HH:MM:SS[.fff]` head at the start of `s`, if there is one.
pub fn datetime_len(s: &[u8]) -> Option<usize> {
    if s.len() < 19 {
        return None;
    }
    let shape = b"dddd-dd-dd dd:dd:dd";
    for (c, p) in s.iter().zip(shape.iter()) {
        let ok = match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p || (*p == b' ' && *c == b'T'),
        };
        if !ok {
            return None;
        }
    }
    let mut n = 19;
    if s.len() > 20 && s[19] == b'.' && s[20].is_ascii_digit() {
        n = 20;
        while n < s.len() && s[n].is_ascii_digit() {
            n += 1;
        }
    }
    Some(n)
}

/// Offset in seconds east of UTC for a time-zone name as `log_timezone` prints it.
/// Numeric forms (`+03`, `-0530`, `+05:30`) and common abbreviations are known; `None` for
/// anything else (the caller assumes UTC and reports it once).
pub fn zone_offset(z: &str) -> Option<i64> {
    let b = z.as_bytes();
    if let Some(&sign) = b.first() {
        if sign == b'+' || sign == b'-' {
            let rest: Vec<u8> = b[1..].iter().copied().filter(|c| *c != b':').collect();
            let (h, m) = match rest.len() {
                1 | 2 => (digits(&rest)?, 0),
                4 => (digits(&rest[..2])?, digits(&rest[2..])?),
                _ => return None,
            };
            let secs = (h as i64) * 3600 + (m as i64) * 60;
            return Some(if sign == b'-' { -secs } else { secs });
        }
    }
    let h: f64 = match z {
        "UTC" | "GMT" | "Z" | "UCT" | "WET" | "Etc/UTC" | "Universal" | "Zulu" => 0.0,
        "BST" | "CET" | "WEST" | "MET" => 1.0,
        "CEST" | "EET" | "SAST" | "MEST" => 2.0,
        "EEST" | "MSK" | "IDT" | "TRT" => 3.0,
        "IST" => 5.5,
        "HKT" | "AWST" | "SGT" => 8.0,
        "JST" | "KST" => 9.0,
        "ACST" => 9.5,
        "AEST" => 10.0,
        "ACDT" => 10.5,
        "AEDT" => 11.0,
        "NZST" => 12.0,
        "NZDT" => 13.0,
        "ADT" => -3.0,
        "AST" | "EDT" => -4.0,
        "EST" | "CDT" => -5.0,
        "CST" | "MDT" => -6.0,
        "MST" | "PDT" => -7.0,
        "PST" | "AKDT" => -8.0,
        "AKST" => -9.0,
        "HST" => -10.0,
        _ => return None,
    };
    Some((h * 3600.0) as i64)
}

/// The milliseconds of a `datetime_len`-long head (digits after the third are ignored).
fn millis(s: &[u8], n: usize) -> i64 {
    let mut ms = 0i64;
    if n > 20 {
        let mut scale = 100;
        for &c in s[20..n].iter().take(3) {
            ms += (c - b'0') as i64 * scale;
            scale /= 10;
        }
    }
    ms
}

/// Parses `YYYY-MM-DD HH:MM:SS[.fff]` (local wall time) to milliseconds, without zone.
pub fn parse_naive(s: &[u8]) -> Option<EventTime> {
    let n = datetime_len(s)?;
    let y = digits(&s[0..4])? as i64;
    let mo = digits(&s[5..7])?;
    let d = digits(&s[8..10])?;
    let h = digits(&s[11..13])? as i64;
    let mi = digits(&s[14..16])? as i64;
    let se = digits(&s[17..19])? as i64;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se) * 1000 + millis(s, n))
}

/// Result of parsing a zoned timestamp: the time, and whether the zone was understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub time: EventTime,
    pub zone_known: bool,
}

/// Parses `YYYY-MM-DD HH:MM:SS[.fff] ZONE` (`%m`, `%t`, csvlog, jsonlog).
pub fn parse_zoned(s: &str) -> Option<Parsed> {
    let b = s.as_bytes();
    let n = datetime_len(b)?;
    let local = parse_naive(b)?;
    let zone = s[n..].trim_start();
    if zone.is_empty() {
        return Some(Parsed {
            time: local,
            zone_known: true,
        });
    }
    match zone_offset(zone) {
        Some(off) => Some(Parsed {
            time: local - off * 1000,
            zone_known: true,
        }),
        None => Some(Parsed {
            time: local,
            zone_known: false,
        }),
    }
}

/// Remembers the last `YYYY-MM-DD HH:MM:SS ZONE` parsed, so that lines within the same second
/// cost a comparison instead of a parse. Interior mutability keeps the prefix matcher `&self`.
#[derive(Debug, Clone, Default)]
pub struct TimeCache(std::cell::Cell<CachedSecond>);

#[derive(Debug, Clone, Copy, Default)]
struct CachedSecond {
    /// Date and time up to the seconds (19 bytes), then the zone, at most 13 bytes.
    key: [u8; 32],
    len: u8,
    /// UTC seconds since the epoch for that key, in milliseconds.
    base_ms: i64,
    zone_known: bool,
}

impl PartialEq for TimeCache {
    fn eq(&self, _: &Self) -> bool {
        // A cache: never part of what makes two values different.
        true
    }
}

impl Eq for TimeCache {}

impl TimeCache {
    /// [`parse_zoned`], cached by second and zone.
    pub fn parse(&self, s: &str) -> Option<Parsed> {
        let b = s.as_bytes();
        let n = datetime_len(b)?;
        // Key: the text without the fraction of a second.
        let zone = s[n..].trim_start();
        let key_len = 19 + zone.len();
        if key_len > 32 {
            return parse_zoned(s);
        }
        let mut key = [0u8; 32];
        key[..19].copy_from_slice(&b[..19]);
        key[19..key_len].copy_from_slice(zone.as_bytes());
        let ms = millis(b, n);
        let c = self.0.get();
        if c.len as usize == key_len && c.key == key {
            return Some(Parsed {
                time: c.base_ms + ms,
                zone_known: c.zone_known,
            });
        }
        let p = parse_zoned(s)?;
        self.0.set(CachedSecond {
            key,
            len: key_len as u8,
            base_ms: p.time - ms,
            zone_known: p.zone_known,
        });
        Some(p)
    }
}

/// Parses `%n`: seconds since the epoch with milliseconds, `1795861452.396`.
pub fn parse_epoch(s: &str) -> Option<EventTime> {
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let secs = digits(secs.as_bytes())? as i64;
    let mut ms = 0i64;
    let mut scale = 100;
    for c in frac.bytes().take(3) {
        if !c.is_ascii_digit() {
            return None;
        }
        ms += (c - b'0') as i64 * scale;
        scale /= 10;
    }
    Some(secs * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_with_millis() {
        let p = parse_zoned("2026-11-28 10:23:49.544 UTC").unwrap();
        assert_eq!(
            model::event::format_time(p.time),
            "2026-11-28T10:23:49.544Z"
        );
        assert!(p.zone_known);
    }

    #[test]
    fn zones_shift_to_utc() {
        let a = parse_zoned("2026-11-28 11:23:49 CET").unwrap().time;
        let b = parse_zoned("2026-11-28 10:23:49 UTC").unwrap().time;
        let c = parse_zoned("2026-11-28 15:53:49 +0530").unwrap().time;
        let d = parse_zoned("2026-11-28 07:23:49 -03").unwrap().time;
        assert_eq!(a, b);
        assert_eq!(c, b);
        assert_eq!(d, b);
    }

    #[test]
    fn unknown_zone_is_reported() {
        let p = parse_zoned("2026-11-28 10:23:49 XYZT").unwrap();
        assert!(!p.zone_known);
    }

    #[test]
    fn epoch() {
        assert_eq!(parse_epoch("1795861452.396"), Some(1795861452396));
        assert_eq!(
            model::event::format_time(parse_epoch("1795861452.396").unwrap()),
            "2026-11-28T10:24:12.396Z"
        );
        assert_eq!(parse_epoch("17958x"), None);
    }

    #[test]
    fn the_cache_gives_what_parsing_gives() {
        let c = TimeCache::default();
        for s in [
            "2026-11-28 10:23:49.544 UTC",
            "2026-11-28 10:23:49.545 UTC",
            "2026-11-28 10:23:49 UTC",
            "2026-11-28 10:23:49.001 CET",
            "2026-11-28 10:23:50.000 UTC",
            "2026-11-28 10:23:49.9 XYZT",
        ] {
            assert_eq!(c.parse(s), parse_zoned(s), "{s}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_zoned("2026-13-28 10:23:49 UTC"), None);
        assert_eq!(parse_zoned("not a time"), None);
        assert_eq!(parse_zoned(""), None);
    }
}
