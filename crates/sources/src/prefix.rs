//! `log_line_prefix`, compiled once into a matcher for the stderr parser.
//!
//! Every escape PostgreSQL 13–17 knows is understood, with optional padding (`%-10u`):
//! `%a %u %d %r %h %L %b %p %P %t %m %n %i %e %c %l %s %v %x %q %Q %%`. Fixed-shape escapes
//! (times, numbers, session id, SQLSTATE) are matched by shape; free-text ones (role, database,
//! application, host, backend type, command tag) run up to the literal text that follows them.

use super::{timestamp, Record, SourceError};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(String),
    /// An escape, and whether it was given a padding width (`%-10u`, `%5p`).
    Field(char, bool),
    /// `%q`: non-session processes stop the prefix here.
    QStop,
}

/// A compiled `log_line_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    source: String,
    tokens: Vec<Token>,
    /// Consecutive lines mostly share their second: parse it once.
    times: timestamp::TimeCache,
}

/// What matching a line's prefix produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixMatch {
    /// Byte offset where `SEVERITY:  message` starts.
    pub rest: usize,
    /// The time zone of `%m`/`%t` was not one this build knows (the time was taken as UTC).
    pub unknown_zone: bool,
}

const FIXED: &str = "mtsnpPlxQcev";
const FREE: &str = "udahrbiLk";

impl Prefix {
    /// PostgreSQL's built-in default since 10: `'%m [%p] '`.
    pub fn postgres_default() -> Prefix {
        Prefix::compile("%m [%p] ").expect("the built-in default prefix compiles")
    }

    /// Prefixes worth trying when none is given: PostgreSQL's default (RHEL and PGDG
    /// packages), Debian's, those of the managed services (Amazon RDS and Aurora, Azure,
    /// Google Cloud SQL, Heroku), of operators and HA tools (Crunchy, Spilo/Patroni), and the
    /// ones pgBadger's documentation recommends. Others are inferred from the lines.
    pub fn well_known() -> Vec<Prefix> {
        [
            "%m [%p] %q%u@%d ",
            "%m [%p] ",
            "%t:%r:%u@%d:[%p]:",
            "%t-%c-",
            "%m [%p]: [%l-1] db=%d,user=%u ",
            "%t [%p]: [%l-1] db=%d,user=%u ",
            " sql_error_code = %e ",
            "< %m > ",
            "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
            "%t [%p]: user=%u,db=%d,app=%a,client=%h ",
            "%t [%p]: [%l-1] ",
            "%t [%p]: ",
            "%m [%p] %u@%d ",
            "%m [%p] %q%u@%d %h ",
            "%m [%p] %q%u@%d/%a ",
            "%m [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
            "%t [%p-%l] %q%u@%d ",
            "%m %r %u %d [%p] ",
            "%t [%p]: [%l-1] %c %q%u@%d ",
            "%m [%p] %q[user=%u,db=%d,app=%a] ",
            "%t ",
            "%m ",
        ]
        .iter()
        .filter_map(|p| Prefix::compile(p).ok())
        .collect()
    }

    /// Compiles a prefix a person typed (`--log-line-prefix`, `input.log_line_prefix`): as
    /// [`Prefix::compile`], but an escape PostgreSQL does not know is an error naming it
    /// rather than nothing (as the server prints it), since it is most likely a typo.
    pub fn compile_given(src: &str) -> Result<Prefix, SourceError> {
        let mut chars = src.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                continue;
            }
            if chars.peek() == Some(&'-') {
                chars.next();
            }
            while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                chars.next();
            }
            match chars.next() {
                Some(e) if e == '%' || e == 'q' || FIXED.contains(e) || FREE.contains(e) => {}
                Some(e) => {
                    let known: String = FREE
                        .chars()
                        .chain(FIXED.chars())
                        .chain(['q'])
                        .map(|k| format!(" %{k}"))
                        .collect();
                    return Err(SourceError::BadPrefix {
                        prefix: src.to_string(),
                        reason: format!(
                            "unknown escape %{e} (PostgreSQL's are{known} and %% for a percent sign)"
                        ),
                    });
                }
                None => {}
            }
        }
        Prefix::compile(src)
    }

    /// Compiles a prefix as written in `postgresql.conf` (without the quotes).
    pub fn compile(src: &str) -> Result<Prefix, SourceError> {
        let bad = |reason: String| SourceError::BadPrefix {
            prefix: src.to_string(),
            reason,
        };
        let mut tokens: Vec<Token> = Vec::new();
        let mut lit = String::new();
        let mut chars = src.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            // Padding: an optional '-' then digits, as PostgreSQL allows.
            let mut padded = false;
            if chars.peek() == Some(&'-') {
                chars.next();
            }
            while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                chars.next();
                padded = true;
            }
            let Some(esc) = chars.next() else {
                lit.push('%');
                break;
            };
            if esc == '%' {
                lit.push('%');
                continue;
            }
            if !lit.is_empty() {
                tokens.push(Token::Lit(std::mem::take(&mut lit)));
            }
            if esc == 'q' {
                tokens.push(Token::QStop);
            } else if FIXED.contains(esc) || FREE.contains(esc) {
                tokens.push(Token::Field(esc, padded));
            }
            // PostgreSQL prints nothing for an unknown escape, and so do we.
        }
        if !lit.is_empty() {
            tokens.push(Token::Lit(lit));
        }
        // A free-text field must be followed by literal text (or end the prefix), or its end
        // cannot be found.
        let fields: Vec<&Token> = tokens.iter().filter(|t| **t != Token::QStop).collect();
        for w in fields.windows(2) {
            if let (Token::Field(a, _), Token::Field(b, _)) = (w[0], w[1]) {
                if FREE.contains(*a) {
                    return Err(bad(format!(
                        "%{a} is followed directly by %{b}: a separator between them is needed to tell where %{a} ends"
                    )));
                }
            }
        }
        Ok(Prefix {
            source: src.to_string(),
            tokens,
            times: timestamp::TimeCache::default(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Matches `line`, filling `rec`; the remainder must start with `SEVERITY:  `.
    ///
    /// The prefix must end exactly where a severity word does. Role, database and application
    /// names are chosen by whoever connects and may hold spaces, `@`, brackets or even
    /// `FATAL:  `, so free-text fields are not simply cut at the next separator: each place
    /// where the rest of the prefix can still fit is tried, preferring the value the message
    /// itself names (`for user "…"`, `user=… database=…`), and the first candidate severity
    /// word whose left side fits the whole prefix wins.
    pub fn match_line(&self, line: &str, rec: &mut Record) -> Option<PrefixMatch> {
        // A session line (every field) at any candidate severity word comes before a
        // non-session line (cut at %q): a role named `FATAL:  x` must not turn its own
        // session's line into a postmaster's.
        if let Some(m) = self.match_with(&self.tokens, line, rec) {
            return Some(m);
        }
        let q = self.tokens.iter().position(|t| *t == Token::QStop)?;
        clear_prefix_fields(rec);
        let m = self.match_with(&self.tokens[..q], line, rec);
        if m.is_none() {
            clear_prefix_fields(rec);
        }
        m
    }

    fn match_with(&self, tokens: &[Token], line: &str, rec: &mut Record) -> Option<PrefixMatch> {
        let b = line.as_bytes();
        let mut from = 0;
        for _ in 0..MAX_SEVERITY_CANDIDATES {
            let colon = from + find_colon_two_spaces(&b[from..])?;
            from = colon + 1;
            // The severity word: the letters (and DEBUG's digit) right before the colon.
            let word_start = line[..colon]
                .char_indices()
                .rev()
                .take_while(|(_, c)| c.is_alphanumeric())
                .last()
                .map_or(colon, |(i, _)| i);
            let word = &line[word_start..colon];
            if word.is_empty() || word.len() > 40 || !is_severity_word(word) {
                continue;
            }
            let goal = Goal {
                tokens,
                line,
                end: word_start,
                msg: &line[colon + 3..],
                hints: std::cell::OnceCell::new(),
            };
            let mut st = MatchState {
                unknown_zone: false,
                budget: MATCH_BUDGET,
            };
            // Most lines need no choice: each free-text field ends at the first place the next
            // literal occurs. A failed login's names are read with the care of `match_at`.
            let simple = self.match_first(&goal, rec, &mut st)
                && (!Hints::named_in(goal.msg) || goal.hints().agree_with(rec));
            if simple || self.match_at(&goal, 0, 0, rec, &mut st) {
                return Some(PrefixMatch {
                    rest: word_start,
                    unknown_zone: st.unknown_zone,
                });
            }
        }
        None
    }

    /// `match_at` without going back: every free-text field ends at the first occurrence of
    /// the literal after it.
    fn match_first(&self, goal: &Goal<'_>, rec: &mut Record, st: &mut MatchState) -> bool {
        let mut i = 0;
        for (k, tok) in goal.tokens.iter().enumerate() {
            match tok {
                Token::QStop => {}
                Token::Lit(l) => {
                    if !goal.line[i..goal.end].starts_with(l.as_str()) {
                        return false;
                    }
                    i += l.len();
                }
                Token::Field(esc, padded) => {
                    let next_lit = goal.tokens[k + 1..].iter().find_map(|t| match t {
                        Token::Lit(l) => Some(l.as_str()),
                        Token::Field(..) => Some(""),
                        Token::QStop => None,
                    });
                    let s = &goal.line[i..goal.end];
                    let n = if FREE.contains(*esc) {
                        match next_lit {
                            Some("") => return false,
                            None => s.len(),
                            Some(l) => match find_lit(s.as_bytes(), l.as_bytes()) {
                                Some(n) => n,
                                None => return false,
                            },
                        }
                    } else {
                        match scan_field(*esc, *padded, s, next_lit) {
                            Some(n) => n,
                            None => return false,
                        }
                    };
                    let v = if *padded { s[..n].trim() } else { &s[..n] };
                    if !free_value_ok(*esc, v)
                        || assign(*esc, v, rec, &mut st.unknown_zone, &self.times).is_none()
                    {
                        return false;
                    }
                    i += n;
                }
            }
        }
        i == goal.end
    }

    /// Matches `goal.tokens[k..]` against exactly `goal.line[i..goal.end]`, backtracking over
    /// where each free-text field ends. `st.budget` bounds the attempts whatever a hostile
    /// line holds.
    fn match_at(
        &self,
        goal: &Goal<'_>,
        k: usize,
        i: usize,
        rec: &mut Record,
        st: &mut MatchState,
    ) -> bool {
        if st.budget == 0 {
            return false;
        }
        st.budget -= 1;
        let Some(tok) = goal.tokens.get(k) else {
            return i == goal.end;
        };
        let (esc, padded) = match tok {
            Token::QStop => return self.match_at(goal, k + 1, i, rec, st),
            Token::Lit(l) => {
                return goal.line[i..goal.end].starts_with(l.as_str())
                    && self.match_at(goal, k + 1, i + l.len(), rec, st)
            }
            Token::Field(esc, padded) => (*esc, *padded),
        };
        let next_lit = goal.tokens[k + 1..].iter().find_map(|t| match t {
            Token::Lit(l) => Some(l.as_str()),
            Token::Field(..) => Some(""),
            Token::QStop => None,
        });
        let s = &goal.line[i..goal.end];
        // One way for the field to end: its value is `s[..n]`.
        let take = |n: usize, rec: &mut Record, st: &mut MatchState| -> bool {
            let v = if padded { s[..n].trim() } else { &s[..n] };
            if !free_value_ok(esc, v)
                || assign(esc, v, rec, &mut st.unknown_zone, &self.times).is_none()
            {
                return false;
            }
            self.match_at(goal, k + 1, i + n, rec, st)
        };
        if !FREE.contains(esc) {
            return match scan_field(esc, padded, s, next_lit) {
                Some(n) => take(n, rec, st),
                None => false,
            };
        }
        // Free text: the value the message names first, then every place the next literal
        // occurs, shortest first. Where the next literal occurs once only, there is no choice
        // to make and no need to read the message.
        let ambiguous = Hints::named_in(goal.msg)
            && match next_lit {
                Some(l) if !l.is_empty() => find_lit(s.as_bytes(), l.as_bytes())
                    .is_some_and(|p| find_lit(&s.as_bytes()[p + 1..], l.as_bytes()).is_some()),
                _ => true,
            };
        let hinted = if ambiguous {
            goal.hints().get(esc).filter(|h| {
                s.starts_with(*h) && next_lit.is_none_or(|l| s[h.len()..].starts_with(l))
            })
        } else {
            None
        };
        if let Some(h) = hinted {
            if take(h.len(), rec, st) {
                return true;
            }
        }
        match next_lit {
            Some("") => false,
            None => take(s.len(), rec, st),
            Some(l) => {
                let mut at = 0;
                while let Some(p) = find_lit(&s.as_bytes()[at..], l.as_bytes()) {
                    let n = at + p;
                    if hinted.is_none_or(|h| h.len() != n) && take(n, rec, st) {
                        return true;
                    }
                    if st.budget == 0 {
                        return false;
                    }
                    at = n + 1;
                    while at < s.len() && !s.is_char_boundary(at) {
                        at += 1;
                    }
                    if at > s.len() {
                        break;
                    }
                }
                false
            }
        }
    }
}

/// What one match attempt must cover: `line[..end]` with `tokens`, and what the line's
/// message says of its names (worked out only when a name is ambiguous).
struct Goal<'a> {
    tokens: &'a [Token],
    line: &'a str,
    end: usize,
    msg: &'a str,
    hints: std::cell::OnceCell<Hints<'a>>,
}

impl<'a> Goal<'a> {
    fn hints(&self) -> &Hints<'a> {
        self.hints.get_or_init(|| Hints::of(self.msg))
    }
}

/// What a match attempt carries along.
struct MatchState {
    unknown_zone: bool,
    budget: u32,
}

/// Severity words tried per line before giving up on it.
const MAX_SEVERITY_CANDIDATES: usize = 8;
/// Steps of the backtracking match per candidate: far more than any real line needs (one
/// per token), few enough that a line built to be ambiguous costs microseconds.
const MATCH_BUDGET: u32 = 2_000;

/// A word that can stand before `:  ` as PostgreSQL's severity (in any `lc_messages`).
fn is_severity_word(w: &str) -> bool {
    super::Severity::parse(w) != super::Severity::Unknown
        || super::Secondary::parse(w).is_some()
        || (w.chars().all(char::is_uppercase) && w.chars().count() >= 3)
}

/// Whether `v` can be the value of free-text field `esc`: host names and addresses have no
/// spaces; names may hold anything but a line break on its own is still allowed (a role name
/// may contain one).
fn free_value_ok(esc: char, v: &str) -> bool {
    match esc {
        'h' | 'r' => !v.contains(' ') && !v.contains('\n'),
        _ => true,
    }
}

/// Names the message of a line states itself, to settle where a name in the prefix ends.
#[derive(Debug, Default)]
struct Hints<'a> {
    user: Option<&'a str>,
    database: Option<&'a str>,
    host: Option<&'a str>,
}

impl<'a> Hints<'a> {
    /// Whether the message is a failed login's, which names its role (and the rejection, its
    /// database and client). A successful login's names come from its own message anyway
    /// (the session takes them from `connection authorized`), so only these need the prefix
    /// read right.
    fn named_in(msg: &str) -> bool {
        matches!(msg.as_bytes().first(), Some(b'p' | b'n' | b'r'))
            && (msg.starts_with("password authentication failed for user \"")
                || msg.starts_with("no pg_hba.conf entry")
                || msg.starts_with("pg_hba.conf rejects")
                || msg.starts_with("role \""))
    }

    fn of(msg: &'a str) -> Hints<'a> {
        let mut h = Hints::default();
        let find =
            |hay: &str, needle: &str| memchr::memmem::find(hay.as_bytes(), needle.as_bytes());
        let quoted_after = |key: &str| -> Option<&'a str> {
            let at = find(msg, key)? + key.len();
            let rest = &msg[at..];
            // The name runs to the quote that closes it: the last one before `", ` or the end.
            let end = find(rest, "\", ").or_else(|| rest.rfind('"'))?;
            Some(&rest[..end])
        };
        if let Some(r) = msg.strip_prefix("password authentication failed for user \"") {
            h.user = r.rfind('"').map(|e| &r[..e]);
        } else if msg.starts_with("no pg_hba.conf entry") || msg.starts_with("pg_hba.conf rejects")
        {
            h.user = quoted_after("user \"");
            h.database = quoted_after("database \"");
            h.host = quoted_after("host \"");
        } else if let Some(r) = msg.strip_prefix("role \"") {
            h.user = r.rfind("\" does not exist").map(|e| &r[..e]);
        }
        h
    }

    /// The names a quick read of the prefix found are the ones the message states (or it
    /// states none of them).
    fn agree_with(&self, rec: &Record) -> bool {
        let same = |hint: Option<&str>, got: &str| {
            hint.is_none_or(|h| got.is_empty() || got == h || (h.is_empty() && got.is_empty()))
        };
        same(self.user, &rec.user)
            && same(self.database, &rec.database)
            && same(self.host, &rec.host)
    }

    fn get(&self, esc: char) -> Option<&'a str> {
        match esc {
            'u' => self.user,
            'd' => self.database,
            'h' => self.host,
            _ => None,
        }
        .filter(|v| !v.is_empty())
    }
}

fn clear_prefix_fields(rec: &mut Record) {
    let line = rec.line;
    rec.clear();
    rec.line = line;
}

/// Length of `SEVERITY:  ` at the start of `s`: a word without spaces or colons, then a colon
/// and two spaces. Localised severity words (`lc_messages`) pass too.
pub fn severity_len(s: &str) -> Option<usize> {
    let pos = find_colon_two_spaces(s.as_bytes())?;
    let word = &s[..pos];
    // One word, like "LOG" or "ОШИБКА": this is what tells a prefix that fits from one that
    // leaves some of its fields in front of the severity.
    if word.is_empty() || word.len() > 40 || word.contains([':', ' ']) {
        return None;
    }
    Some(pos + 3)
}

/// Position of the first `":  "`; a plain memchr loop, faster than a substring searcher
/// built for each call, and this runs for every line.
fn find_colon_two_spaces(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b':', &b[from..]) {
        let p = from + i;
        if b.get(p + 1) == Some(&b' ') && b.get(p + 2) == Some(&b' ') {
            return Some(p);
        }
        from = p + 1;
    }
    None
}

/// Position of `needle` in `hay`: memchr for one byte (the usual separators), else memmem.
fn find_lit(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [c] => memchr::memchr(*c, hay),
        _ => memchr::memmem::find(hay, needle),
    }
}

fn scan_field(esc: char, padded: bool, s: &str, next_lit: Option<&str>) -> Option<usize> {
    let b = s.as_bytes();
    // Padding puts spaces before right-aligned values.
    let lead = if padded {
        b.iter().take_while(|c| **c == b' ').count()
    } else {
        0
    };
    let body = &b[lead..];
    let n = match esc {
        'm' | 't' | 's' => {
            let n = timestamp::datetime_len(body)?;
            // The zone abbreviation follows after one space.
            if body.len() > n && body[n] == b' ' {
                let stop = next_lit
                    .and_then(|l| l.bytes().next())
                    .filter(|c| *c != b' ');
                let z = body[n + 1..]
                    .iter()
                    .take_while(|c| **c != b' ' && Some(**c) != stop)
                    .count();
                n + 1 + z
            } else {
                n
            }
        }
        'n' => body
            .iter()
            .take_while(|c| c.is_ascii_digit() || **c == b'.')
            .count(),
        'p' | 'P' | 'l' | 'x' => body.iter().take_while(|c| c.is_ascii_digit()).count(),
        'Q' => body
            .iter()
            .take_while(|c| c.is_ascii_digit() || **c == b'-')
            .count(),
        'c' => body
            .iter()
            .take_while(|c| c.is_ascii_hexdigit() || **c == b'.')
            .count(),
        'e' => {
            if body.len() >= 5 && body[..5].iter().all(|c| c.is_ascii_alphanumeric()) {
                5
            } else {
                return None;
            }
        }
        'v' => body
            .iter()
            .take_while(|c| c.is_ascii_digit() || **c == b'/' || **c == b'-')
            .count(),
        _ => {
            // Free text: up to the next literal, or up to the severity word if the prefix
            // ends with this field.
            return match next_lit {
                Some("") => None,
                Some(l) => find_lit(b, l.as_bytes()),
                None => {
                    let sev = find_colon_two_spaces(b)?;
                    Some(
                        b[..sev]
                            .iter()
                            .rposition(|c| *c == b' ')
                            .map_or(0, |p| p + 1),
                    )
                }
            };
        }
    };
    // Left-aligned padding puts spaces after the value; they belong to the field unless the
    // next literal starts with a space.
    let mut end = lead + n;
    if padded && next_lit.is_some_and(|l| !l.starts_with(' ')) {
        end += b[end..].iter().take_while(|c| **c == b' ').count();
    }
    Some(end)
}

fn unknown_is_empty(v: &str) -> &str {
    if v == "[unknown]" || v == "[not initialized]" {
        ""
    } else {
        v
    }
}

fn assign(
    esc: char,
    v: &str,
    rec: &mut Record,
    unknown_zone: &mut bool,
    cache: &timestamp::TimeCache,
) -> Option<()> {
    match esc {
        'm' | 't' => {
            let p = cache.parse(v)?;
            *unknown_zone |= !p.zone_known;
            rec.time = Some(p.time);
        }
        'n' => rec.time = Some(timestamp::parse_epoch(v)?),
        'p' => rec.pid = v.parse().ok(),
        'c' => {
            rec.session_id.clear();
            rec.session_id.push_str(v);
        }
        'e' => {
            let b = v.as_bytes();
            if b.len() == 5 {
                rec.sqlstate = Some([b[0], b[1], b[2], b[3], b[4]]);
            }
        }
        'u' => {
            rec.user.clear();
            rec.user.push_str(unknown_is_empty(v));
        }
        'd' => {
            rec.database.clear();
            rec.database.push_str(unknown_is_empty(v));
        }
        'a' => {
            rec.application.clear();
            rec.application.push_str(unknown_is_empty(v));
        }
        'b' => {
            rec.backend_type.clear();
            rec.backend_type.push_str(unknown_is_empty(v));
        }
        'h' => {
            rec.host.clear();
            rec.host.push_str(v);
        }
        'r' => {
            // host(port), or [local]
            rec.host.clear();
            match v.rsplit_once('(') {
                Some((h, p)) if p.ends_with(')') => {
                    rec.host.push_str(h);
                    rec.port = p[..p.len() - 1].parse().ok();
                }
                _ => rec.host.push_str(v),
            }
        }
        _ => {}
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(prefix: &str, line: &str) -> Option<(Record, String)> {
        let p = Prefix::compile(prefix).unwrap();
        let mut r = Record::default();
        let pm = p.match_line(line, &mut r)?;
        Some((r, line[pm.rest..].to_string()))
    }

    #[test]
    fn debian_session_and_non_session_lines() {
        let (r, rest) = m(
            "%m [%p] %q%u@%d ",
            "2026-11-28 10:23:41.039 UTC [4876] app@appdb FATAL:  password authentication failed for user \"app\"",
        )
        .unwrap();
        assert_eq!(
            (r.pid, r.user.as_str(), r.database.as_str()),
            (Some(4876), "app", "appdb")
        );
        assert!(rest.starts_with("FATAL:  password"));
        let (r, rest) = m(
            "%m [%p] %q%u@%d ",
            "2026-11-28 10:23:36.794 UTC [4599] LOG:  database system is ready to accept connections",
        )
        .unwrap();
        assert_eq!((r.pid, r.user.as_str()), (Some(4599), ""));
        assert!(rest.starts_with("LOG:  database"));
    }

    #[test]
    fn unknown_user_is_empty() {
        let (r, _) = m(
            "%m [%p] %q%u@%d ",
            "2026-11-28 10:23:36.889 UTC [4617] [unknown]@[unknown] LOG:  connection received: host=[local]",
        )
        .unwrap();
        assert_eq!((r.user.as_str(), r.database.as_str()), ("", ""));
    }

    #[test]
    fn every_fixed_escape() {
        let (r, rest) = m(
            "%n %c %r %e [%b] %i %x %v %l %s %q%a ",
            "1795861458.476 6b0aabd2.1c34 127.0.0.1(34390) 28P01 [client backend] authentication 0 3/7 2 2026-11-28 10:24:18 UTC [unknown] FATAL:  password authentication failed for user \"md5user\"",
        )
        .unwrap();
        assert_eq!(r.time, Some(1795861458476));
        assert_eq!(r.session_id, "6b0aabd2.1c34");
        assert_eq!((r.host.as_str(), r.port), ("127.0.0.1", Some(34390)));
        assert_eq!(r.sqlstate_str(), Some("28P01"));
        assert_eq!(r.backend_type, "client backend");
        assert_eq!(r.application, "");
        assert!(rest.starts_with("FATAL:  "));
    }

    #[test]
    fn empty_fields_between_spaces() {
        let (r, _) = m(
            "%n %c %r %e [%b] %i %x %v %l %s %q%a ",
            "1795861452.396 6b0aabcc.1a79 127.0.0.1(46610) 00000 [not initialized]  0  1 2026-11-28 10:24:12 UTC [unknown] LOG:  connection received: host=127.0.0.1 port=46610",
        )
        .unwrap();
        assert_eq!(r.backend_type, "not initialized");
        assert_eq!(r.pid, None);
        assert_eq!(r.host, "127.0.0.1");
    }

    #[test]
    fn padding() {
        let (r, rest) = m(
            "%m %-10u|%5p| ",
            "2026-11-28 10:23:41.039 UTC app       | 4876| LOG:  x",
        )
        .unwrap();
        assert_eq!((r.user.as_str(), r.pid), ("app", Some(4876)));
        assert_eq!(rest, "LOG:  x");
    }

    #[test]
    fn wrong_prefix_does_not_match() {
        assert!(m(
            "%t [%p]: [%l-1] ",
            "2026-11-28 10:23:41.039 UTC [4876] app@appdb FATAL:  x"
        )
        .is_none());
    }

    #[test]
    fn adjacent_free_fields_are_rejected() {
        let e = Prefix::compile("%u%d ").unwrap_err().to_string();
        assert!(e.contains("%u is followed directly by %d"), "{e}");
    }
}
