//! Infers a stderr log's `log_line_prefix` from its lines, for prefixes no list foresees.
//!
//! PostgreSQL's own lines name the values its prefix printed: `connection authorized: user=U
//! database=D application_name=A` and `password authentication failed for user "U"` give the
//! role and database, `connection received: host=H port=P` the client. Reading the text in
//! front of such a line's severity word, each known value becomes its escape (`%u`, `%d`,
//! `%r`, `%h`), times and numbers become theirs by shape (`%m`, `%t`, `%n`, `%c`, `%v`, `%e`),
//! and the number the line shares with its own `connection received` line is the backend's
//! `%p`. Where non-session lines (the postmaster, the checkpointer) stop short, a `%q` goes.
//! The candidates are then scored like any other prefix: by how many lines they read.

use super::prefix::Prefix;
use super::timestamp;

/// What one line's prefix was made of, escape by escape.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Esc(char),
    /// A number whose escape (`%p`, `%l`, `%x`) is decided by comparing lines.
    Num(u64),
}

/// Known severity words (the ones every server writes in English or with SQLSTATEs).
const SEVERITIES: [&str; 12] = [
    "LOG",
    "FATAL",
    "ERROR",
    "WARNING",
    "NOTICE",
    "INFO",
    "DETAIL",
    "HINT",
    "STATEMENT",
    "CONTEXT",
    "PANIC",
    "DEBUG1",
];

/// `(prefix text, message)` of a line: split before its first severity word.
fn split(line: &str) -> Option<(&str, &str)> {
    let b = line.as_bytes();
    let mut from = 0;
    for _ in 0..4 {
        let colon = from + memchr::memmem::find(&b[from..], b":  ")?;
        from = colon + 1;
        let start = b[..colon]
            .iter()
            .rposition(|c| !c.is_ascii_uppercase() && !c.is_ascii_digit())
            .map_or(0, |p| p + 1);
        if SEVERITIES.contains(&&line[start..colon]) {
            return Some((&line[..start], &line[colon + 3..]));
        }
    }
    None
}

/// Values a line's message gives away: role, database, application, client host and port.
#[derive(Debug, Default, Clone)]
struct Known<'a> {
    user: Option<&'a str>,
    database: Option<&'a str>,
    application: Option<&'a str>,
    host: Option<&'a str>,
    port: Option<&'a str>,
}

fn known(msg: &str) -> Known<'_> {
    let mut k = Known::default();
    let after = |s: &'_ str, key: &str, ends: &[&str]| -> Option<(usize, usize)> {
        let at = s.find(key)? + key.len();
        let r = &s[at..];
        let end = ends
            .iter()
            .filter_map(|e| r.find(e))
            .min()
            .unwrap_or(r.len());
        Some((at, at + end))
    };
    if let Some(rest) = msg.strip_prefix("connection authorized: ") {
        let off = msg.len() - rest.len();
        let g = |key, ends: &[&str]| after(rest, key, ends).map(|(a, b)| &msg[off + a..off + b]);
        k.user = g("user=", &[" database="]);
        k.database = g(" database=", &[" application_name=", " SSL ", " GSS "]);
        k.application = g(" application_name=", &[" SSL enabled (", " GSS ("]);
    } else if let Some(rest) = msg.strip_prefix("connection received: ") {
        let off = msg.len() - rest.len();
        let g = |key, ends: &[&str]| after(rest, key, ends).map(|(a, b)| &msg[off + a..off + b]);
        k.host = g("host=", &[" "]);
        k.port = g(" port=", &[" "]);
    } else if let Some(rest) = msg.strip_prefix("disconnection: ") {
        let off = msg.len() - rest.len();
        let g = |key, ends: &[&str]| after(rest, key, ends).map(|(a, b)| &msg[off + a..off + b]);
        k.user = g(" user=", &[" database="]);
        k.database = g(" database=", &[" host="]);
    } else if let Some(r) = msg.strip_prefix("password authentication failed for user \"") {
        k.user = r.strip_suffix('"');
    }
    k
}

/// Every role, database and application name the sample's messages give away: a line's
/// prefix may show them long after the message that named them (a statement's error).
#[derive(Debug, Default, Clone)]
pub struct Names {
    pub users: Vec<String>,
    pub databases: Vec<String>,
    pub applications: Vec<String>,
}

impl Names {
    pub fn of(lines: &[&str]) -> Names {
        let mut n = Names::default();
        let add = |v: &mut Vec<String>, x: Option<&str>| {
            if let Some(x) = x.filter(|x| !x.is_empty() && x.len() <= 64) {
                if !v.iter().any(|y| y == x) && v.len() < 200 {
                    v.push(x.to_string());
                }
            }
        };
        for line in lines {
            let Some((_, msg)) = split(line) else {
                continue;
            };
            let k = known(msg);
            add(&mut n.users, k.user);
            add(&mut n.databases, k.database);
            add(&mut n.applications, k.application);
        }
        n
    }

    fn of_kind(&self, c: char) -> &[String] {
        match c {
            'u' => &self.users,
            'd' => &self.databases,
            _ => &self.applications,
        }
    }
}

/// Length of a timestamp at the start of `s` (with its zone), and whether it has fractions.
/// A zone is letters with an optional offset (`UTC`, `CET`, `GMT+1`) or an offset alone
/// (`+03`, `-05:30`): a `-` after it may be the prefix's own separator (`%t-%c-`).
fn time_len(s: &str) -> Option<(usize, bool)> {
    let b = s.as_bytes();
    let n = timestamp::datetime_len(b)?;
    let frac = n > 19;
    if b.get(n) != Some(&b' ') {
        return Some((n, frac));
    }
    let mut end = n + 1;
    let letters = b[end..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    end += letters;
    let offset = |at: usize| -> usize {
        if !matches!(b.get(at), Some(b'+' | b'-')) {
            return 0;
        }
        let d = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if d == 0 || d > 4 {
            return 0;
        }
        let mut k = 1 + d;
        if d == 2 && b.get(at + k) == Some(&b':') {
            let d2 = b[at + k + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if d2 == 2 {
                k += 3;
            }
        }
        // `UTC-6b0dd663.24c7`: what follows the dash is no offset but the next field.
        if b.get(at + k).is_some_and(u8::is_ascii_alphanumeric) {
            return 0;
        }
        k
    };
    end += offset(end);
    if end == n + 1 {
        return Some((n, frac));
    }
    Some((end, frac))
}

/// Length of an IP address at the start of `s`.
fn ip_len(s: &str) -> Option<usize> {
    let n = s
        .bytes()
        .take_while(|c| c.is_ascii_hexdigit() || *c == b'.' || *c == b':')
        .count();
    // The longest head that is an address (a `:` after it may be a separator).
    (2..=n)
        .rev()
        .find(|k| s[..*k].parse::<std::net::IpAddr>().is_ok())
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Reads one line's prefix text into parts, with what its message (and its session's
/// `connection received`) revealed.
fn parts(text: &str, names: &Names, host: Option<(&str, &str)>) -> Vec<Part> {
    let b = text.as_bytes();
    let mut out: Vec<Part> = Vec::new();
    let mut lit = String::new();
    let mut used: Vec<char> = Vec::new();
    let mut times = 0;
    let mut i = 0;
    let push = |out: &mut Vec<Part>, lit: &mut String, p: Part| {
        if !lit.is_empty() {
            out.push(Part::Lit(std::mem::take(lit)));
        }
        out.push(p);
    };
    while i < b.len() {
        let s = &text[i..];
        let boundary = i == 0 || !is_ident(b[i - 1]);
        if boundary {
            if let Some((n, frac)) = time_len(s) {
                let e = match times {
                    0 if frac => 'm',
                    0 => 't',
                    _ => 's',
                };
                times += 1;
                push(&mut out, &mut lit, Part::Esc(e));
                i += n;
                continue;
            }
            // Labels before a value say which one it is when two are equal (`postgres`).
            let label = |keys: &[&str]| keys.iter().any(|l| lit.ends_with(l));
            let mut cands: Vec<(char, &str)> = Vec::new();
            if let Some((h, _)) = host {
                cands.push(('R', h));
                cands.push(('h', h));
            }
            let order: [(char, &[&str]); 3] = [
                ('u', &["user=", "usr="]),
                ('d', &["db=", "database=", "dbname="]),
                ('a', &["app=", "application_name=", "appname="]),
            ];
            let labelled = order.iter().find(|(_, ls)| label(ls)).map(|(c, _)| *c);
            for (c, _) in order {
                if labelled.is_none_or(|l| l == c) {
                    // The longest name of the kind that stands here.
                    let best = names
                        .of_kind(c)
                        .iter()
                        .filter(|v| {
                            s.starts_with(v.as_str())
                                && b.get(i + v.len()).is_none_or(|x| !is_ident(*x))
                        })
                        .max_by_key(|v| v.len());
                    if let Some(v) = best {
                        cands.push((c, v.as_str()));
                    }
                }
            }
            let mut hit = None;
            for (c, v) in cands {
                if v.is_empty() || used.contains(&c) {
                    continue;
                }
                if c == 'R' {
                    if used.contains(&'r') {
                        continue;
                    }
                    if let Some((h, p)) = host {
                        let hp = format!("{h}({p})");
                        if s.starts_with(&hp) {
                            hit = Some(('r', hp.len()));
                            break;
                        }
                    }
                    continue;
                }
                if s.starts_with(v) && b.get(i + v.len()).is_none_or(|c| !is_ident(*c)) {
                    hit = Some((c, v.len()));
                    break;
                }
            }
            if let Some((c, n)) = hit {
                used.push(c);
                if c == 'r' || c == 'h' {
                    used.extend(['r', 'h']);
                }
                push(&mut out, &mut lit, Part::Esc(c));
                i += n;
                continue;
            }
            if s.starts_with("[unknown]") || s.starts_with("[local]") {
                // A session field the server did not know yet: which one, the labels or the
                // fields still missing say.
                let local = s.starts_with("[local]");
                let c = if local {
                    'h'
                } else if let Some(l) = labelled {
                    l
                } else {
                    *['u', 'd', 'a']
                        .iter()
                        .find(|c| !used.contains(c))
                        .unwrap_or(&'a')
                };
                used.push(c);
                push(&mut out, &mut lit, Part::Esc(c));
                i += if local { 7 } else { 9 };
                continue;
            }
            for (word, e) in [
                ("client backend", 'b'),
                ("authentication", 'i'),
                ("startup", 'i'),
                ("idle", 'i'),
            ] {
                if s.starts_with(word) && b.get(i + word.len()).is_none_or(|c| !is_ident(*c)) {
                    push(&mut out, &mut lit, Part::Esc(e));
                    i += word.len();
                    hit = Some((e, 0));
                    break;
                }
            }
            if hit.is_some() {
                continue;
            }
            if !used.contains(&'h') {
                if let Some(n) = ip_len(s) {
                    // An address, with its port in parentheses for %r.
                    let port = s[n..]
                        .strip_prefix('(')
                        .map(|r| r.bytes().take_while(u8::is_ascii_digit).count())
                        .filter(|d| *d > 0 && s.as_bytes().get(n + 1 + d) == Some(&b')'));
                    let (c, len) = match port {
                        Some(d) => ('r', n + d + 2),
                        None => ('h', n),
                    };
                    used.extend(['r', 'h']);
                    push(&mut out, &mut lit, Part::Esc(c));
                    i += len;
                    continue;
                }
            }
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let hex = b[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
            // Session id: two hex numbers joined by a dot.
            if hex > 0 && b.get(i + hex) == Some(&b'.') {
                let hex2 = b[i + hex + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
                let all = &text[i..i + hex + 1 + hex2];
                if hex2 > 0
                    && hex >= 6
                    && all.bytes().any(|c| c.is_ascii_alphabetic())
                    && b.get(i + hex + 1 + hex2).is_none_or(|c| !is_ident(*c))
                {
                    push(&mut out, &mut lit, Part::Esc('c'));
                    i += hex + 1 + hex2;
                    continue;
                }
                // Epoch seconds with milliseconds.
                if digits == 10 && hex == 10 && hex2 == 3 {
                    times += 1;
                    push(&mut out, &mut lit, Part::Esc('n'));
                    i += 14;
                    continue;
                }
            }
            if digits > 0 {
                // Virtual transaction id.
                if b.get(i + digits) == Some(&b'/') {
                    let d2 = b[i + digits + 1..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                    if d2 > 0 {
                        push(&mut out, &mut lit, Part::Esc('v'));
                        i += digits + 1 + d2;
                        continue;
                    }
                }
                if b.get(i + digits).is_none_or(|c| !is_ident(*c)) {
                    let v = &text[i..i + digits];
                    if digits == 5 && v == "00000" {
                        push(&mut out, &mut lit, Part::Esc('e'));
                    } else {
                        push(&mut out, &mut lit, Part::Num(v.parse().unwrap_or(0)));
                    }
                    i += digits;
                    continue;
                }
            }
            // A SQLSTATE with letters (`28P01`).
            if s.len() >= 5
                && s.as_bytes()[..5]
                    .iter()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
                && s.as_bytes()[..2].iter().all(u8::is_ascii_digit)
                && b.get(i + 5).is_none_or(|c| !is_ident(*c))
            {
                push(&mut out, &mut lit, Part::Esc('e'));
                i += 5;
                continue;
            }
        }
        let ch = s.chars().next().unwrap_or(' ');
        lit.push(ch);
        i += ch.len_utf8();
    }
    if !lit.is_empty() {
        out.push(Part::Lit(lit));
    }
    out
}

fn numbers(parts: &[Part]) -> Vec<u64> {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Num(n) => Some(*n),
            _ => None,
        })
        .collect()
}

/// The prefix text of `parts` with numbers resolved: the one at `pid` is `%p`, zeros are
/// `%x`, the rest `%l`.
fn render(parts: &[Part], pid: Option<usize>) -> String {
    let mut s = String::new();
    let mut k = 0;
    for p in parts {
        match p {
            Part::Lit(l) => s.push_str(&l.replace('%', "%%")),
            Part::Esc(c) => {
                s.push('%');
                s.push(*c);
            }
            Part::Num(n) => {
                s.push_str(if Some(k) == pid {
                    "%p"
                } else if *n == 0 {
                    "%x"
                } else {
                    "%l"
                });
                k += 1;
            }
        }
    }
    s
}

/// Adds the prefix of `ps` and its variants with `%q` where non-session lines stop: at any
/// point of the literal text in front of the role, database, application or client, or in
/// front of a command tag (`%i`, which non-session lines print empty).
fn add(out: &mut Vec<String>, ps: &[Part], pid: Option<usize>) {
    // A lone name field printed `[unknown]` (the application, before the login sets it) may
    // be any of the three: try each.
    let names: Vec<usize> = ps
        .iter()
        .enumerate()
        .filter(|(_, x)| matches!(x, Part::Esc('u' | 'd' | 'a')))
        .map(|(i, _)| i)
        .collect();
    if let [one] = names[..] {
        for c in ['u', 'd', 'a'] {
            if ps[one] != Part::Esc(c) {
                let mut v = ps.to_vec();
                v[one] = Part::Esc(c);
                add_one(out, &v, pid);
            }
        }
    }
    add_one(out, ps, pid);
}

fn add_one(out: &mut Vec<String>, ps: &[Part], pid: Option<usize>) {
    let full = render(ps, pid);
    if !out.contains(&full) {
        out.push(full);
    }
    let Some(last) = ps
        .iter()
        .position(|x| matches!(x, Part::Esc('u' | 'd' | 'a' | 'r' | 'h')))
    else {
        return;
    };
    let first_i = ps.iter().position(|x| matches!(x, Part::Esc('i')));
    let from = first_i
        .filter(|i| *i < last)
        .unwrap_or(last)
        .saturating_sub(1);
    for j in from..=last {
        let cuts: Vec<(String, String)> = match &ps[j] {
            Part::Lit(l) => l
                .char_indices()
                .map(|(i, _)| i)
                .chain([l.len()])
                .map(|c| (l[..c].to_string(), l[c..].to_string()))
                .collect(),
            Part::Esc(_) => vec![(String::new(), String::new())],
            Part::Num(_) => continue,
        };
        let in_head = numbers(&ps[..j]).len();
        let head = render(&ps[..j], pid);
        let tail_start = if matches!(ps[j], Part::Lit(_)) {
            j + 1
        } else {
            j
        };
        let in_cut = numbers(&ps[j..tail_start]).len();
        let tail = render(
            &ps[tail_start..],
            pid.and_then(|p| p.checked_sub(in_head + in_cut)),
        );
        for (a, b) in cuts {
            let cand = format!(
                "{head}{}%q{}{tail}",
                a.replace('%', "%%"),
                b.replace('%', "%%")
            );
            if !out.contains(&cand) {
                out.push(cand);
            }
        }
    }
}

/// Candidate prefixes inferred from sample lines (already without continuation lines).
pub fn infer(lines: &[&str]) -> Vec<String> {
    let names = Names::of(lines);
    let mut out: Vec<String> = Vec::new();
    // Recent `connection received` lines: (host, port, numbers of their prefix).
    let mut received: Vec<(String, String, Vec<u64>)> = Vec::new();
    for line in lines {
        let Some((text, msg)) = split(line) else {
            continue;
        };
        let k = known(msg);
        if let (Some(h), Some(p)) = (k.host, k.port) {
            let ps = parts(text, &names, Some((h, p)));
            received.push((h.to_string(), p.to_string(), numbers(&ps)));
            if received.len() > 16 {
                received.remove(0);
            }
            // Its own prefix shows where the session fields are (`[unknown]` before the
            // login), with the backend's number first (a session's first line is %l 1, and
            // no transaction has begun: %x 0).
            let first = numbers(&ps).iter().position(|n| *n > 1);
            add(&mut out, &ps, first);
            continue;
        }
        let mentions = |v: &Vec<String>| v.iter().any(|x| text.contains(x.as_str()));
        let named =
            mentions(&names.users) || mentions(&names.databases) || mentions(&names.applications);
        if !(named || k.user.is_some()) {
            continue;
        }
        // The session's client: tried with each recent `connection received` in turn, newest
        // first; the one that shares the backend's number with this line is its own.
        let mut best: Option<(Vec<Part>, Option<usize>)> = None;
        for (h, p, nums) in received.iter().rev() {
            let ps = parts(text, &names, Some((h, p)));
            let mine = numbers(&ps);
            let pid =
                (0..mine.len().min(nums.len())).find(|i| mine[*i] == nums[*i] && mine[*i] > 1);
            let used_host = ps.iter().any(|x| matches!(x, Part::Esc('r' | 'h')));
            if pid.is_some() || used_host {
                best = Some((ps, pid));
                break;
            }
        }
        let (ps, pid) = best.unwrap_or_else(|| {
            let ps = parts(text, &names, None);
            // No `connection received` to compare with: the first number past 1 is the
            // backend's, unless a session id (%c) names it already.
            let has_session = ps.iter().any(|x| matches!(x, Part::Esc('c')));
            let first = if has_session {
                None
            } else {
                numbers(&ps).iter().position(|n| *n > 1)
            };
            (ps, first)
        });
        add(&mut out, &ps, pid);
        if out.len() > 200 {
            break;
        }
    }
    out.retain(|p| Prefix::compile(p).is_ok());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inferred(log: &str) -> Vec<String> {
        let lines: Vec<&str> = log.lines().filter(|l| !l.starts_with('\t')).collect();
        infer(&lines)
    }

    #[test]
    fn debian_with_host() {
        let log = "2026-11-30 19:29:43.115 UTC [11802] [unknown]@[unknown] 127.0.0.66 LOG:  connection received: host=127.0.0.66 port=36523\n\
2026-11-30 19:29:43.178 UTC [11802] app@appdb 127.0.0.66 FATAL:  password authentication failed for user \"app\"\n";
        let c = inferred(log);
        assert!(c.contains(&"%m [%p] %q%u@%d %h ".to_string()), "{c:?}");
    }

    #[test]
    fn rds() {
        let log = "2026-11-30 19:29:43 UTC:127.0.0.66(36523):[unknown]@[unknown]:[11802]:LOG:  connection received: host=127.0.0.66 port=36523\n\
2026-11-30 19:29:43 UTC:127.0.0.66(36523):app@appdb:[11802]:FATAL:  password authentication failed for user \"app\"\n";
        let c = inferred(log);
        assert!(c.contains(&"%t:%r:%u@%d:[%p]:".to_string()), "{c:?}");
    }
}
