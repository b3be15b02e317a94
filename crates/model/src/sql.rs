//! A lexer for PostgreSQL's SQL, for the statement-level detections: it splits a statement
//! into tokens as the server would (comments, nested block comments, standard and escape
//! strings, dollar quoting, quoted identifiers), so that rules match keywords and not text
//! (`COP/**/Y` is two words, not COPY; a `-- COPY` comment is no statement), and it redacts
//! literals for evidence. One pass, no backtracking: linear in the statement's length,
//! whatever it holds.

use compact_str::CompactString;

/// A token of a statement. Its text is a [`CompactString`]: most words, numbers and operators
/// fit inline, so lexing a statement allocates little more than its token list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A keyword or unquoted identifier, folded to upper case.
    Word(CompactString),
    /// A `"quoted identifier"`, as written inside the quotes.
    Ident(CompactString),
    /// A string constant ('…', E'…', $tag$…$tag$, B'…', X'…'), its content.
    Str(CompactString),
    /// A number.
    Num(CompactString),
    /// A positional parameter `$1`.
    Param(u32),
    /// An operator or punctuation: `(`, `,`, `;`, `||`, `::`, …
    Op(CompactString),
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// The tokens of `sql`. Unterminated strings and comments run to the end, as the server would
/// reject them: the lexer never fails.
pub fn tokens(sql: &str) -> Vec<Token> {
    lex(sql).0
}

/// The character that starts at byte `i` of `s` (a character boundary before its end).
#[inline]
fn char_at(s: &str, i: usize) -> char {
    match s.as_bytes()[i] {
        b if b.is_ascii() => b as char,
        _ => s[i..].chars().next().unwrap_or('\0'),
    }
}

/// Where the run of characters meeting `keep` that starts at byte `i` ends. ASCII bytes are
/// tested as they are; characters are decoded from the first other byte on.
#[inline]
fn run_end(s: &str, mut i: usize, keep: impl Fn(char) -> bool) -> usize {
    let b = s.as_bytes();
    while i < b.len() && b[i].is_ascii() {
        if !keep(b[i] as char) {
            return i;
        }
        i += 1;
    }
    s[i..]
        .char_indices()
        .find(|&(_, c)| !keep(c))
        .map_or(s.len(), |(k, _)| i + k)
}

/// The tokens of `s`, and where each was written (a range of `s`'s bytes). The lexer walks
/// bytes and decodes a character only where a non-ASCII one can matter (blanks and names):
/// every byte that ends a string, comment or quote is ASCII, which never occurs inside
/// another character's UTF-8 encoding.
fn lex(s: &str) -> (Vec<Token>, Vec<std::ops::Range<usize>>) {
    let b = s.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < n {
        let (start, before) = (i, out.len());
        // Blanks between tokens, the commonest thing in a statement, skipped a byte at a time.
        if matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            i += 1;
            continue;
        }
        let c = char_at(s, i);
        if c.is_whitespace() {
            i += c.len_utf8();
        } else if c == '-' && b.get(i + 1) == Some(&b'-') {
            i = memchr::memchr(b'\n', &b[i..]).map_or(n, |k| i + k);
        } else if c == '/' && b.get(i + 1) == Some(&b'*') {
            // Block comments nest in PostgreSQL.
            let mut depth = 0usize;
            while i < n {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '\'' {
            let (text, next) = quoted(s, i + 1, b'\'', false);
            out.push(Token::Str(text));
            i = next;
        } else if matches!(c, 'e' | 'E') && b.get(i + 1) == Some(&b'\'') {
            let (text, next) = quoted(s, i + 2, b'\'', true);
            out.push(Token::Str(text));
            i = next;
        } else if matches!(c, 'b' | 'B' | 'x' | 'X' | 'n' | 'N') && b.get(i + 1) == Some(&b'\'') {
            let (text, next) = quoted(s, i + 2, b'\'', false);
            out.push(Token::Str(text));
            i = next;
        } else if c == '"' {
            let (text, next) = quoted(s, i + 1, b'"', false);
            out.push(Token::Ident(text));
            i = next;
        } else if c == '$' {
            if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                let j = run_end(s, i + 1, |d| d.is_ascii_digit());
                out.push(Token::Param(s[i + 1..j].parse().unwrap_or(u32::MAX)));
                i = j;
            } else if let Some(body_start) = dollar_tag(s, i) {
                // $tag$ … $tag$ (str::find is linear, however the two look)
                let tag = &s[i..body_start];
                match s[body_start..].find(tag).map(|k| body_start + k) {
                    Some(k) => {
                        out.push(Token::Str(s[body_start..k].into()));
                        i = k + tag.len();
                    }
                    None => {
                        out.push(Token::Str(s[body_start..].into()));
                        i = n;
                    }
                }
            } else {
                out.push(Token::Op(CompactString::const_new("$")));
                i += 1;
            }
        } else if c.is_ascii_digit() || (c == '.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let j = run_end(s, i, |d| d.is_ascii_alphanumeric() || d == '.' || d == '_');
            out.push(Token::Num(s[i..j].into()));
            i = j;
        } else if is_ident_start(c) {
            let j = run_end(s, i, is_ident_char);
            let word = &s[i..j];
            out.push(Token::Word(if word.is_ascii() {
                let mut w = CompactString::from(word);
                w.make_ascii_uppercase();
                w
            } else {
                word.to_uppercase().into()
            }));
            i = j;
        } else {
            // Operators: a run of operator characters, punctuation alone.
            const OPS: &[u8] = b"+-*/<>=~!@#%^&|`?";
            if OPS.contains(&b[i]) {
                let mut j = i;
                while j < n && OPS.contains(&b[j]) {
                    // A comment start ends an operator.
                    if (b[j] == b'-' && b.get(j + 1) == Some(&b'-'))
                        || (b[j] == b'/' && b.get(j + 1) == Some(&b'*'))
                    {
                        break;
                    }
                    j += 1;
                }
                let j = j.max(i + 1);
                out.push(Token::Op(s[i..j].into()));
                i = j;
            } else if c == ':' && b.get(i + 1) == Some(&b':') {
                out.push(Token::Op(CompactString::const_new("::")));
                i += 2;
            } else {
                let j = i + c.len_utf8();
                out.push(Token::Op(s[i..j].into()));
                i = j;
            }
        }
        if out.len() > before {
            spans.push(start..i);
        }
    }
    (out, spans)
}

/// What a text runs besides its own tokens: for each `DO` block the tokens of its body, and of
/// each statement the body builds for `EXECUTE` from constants (`'COPY … TO PRO' || 'GRAM'`,
/// `chr(80)`), each after a `;`; nothing for a text without a `DO` block. With
/// `log_statement` a `DO` block is logged as written and its dynamic statements never are
/// (pgaudit logs them, `log_statement` does not): rules that look for what was run must see
/// inside.
pub fn dynamic_tokens(toks: &[Token]) -> Vec<Token> {
    let mut extra = Vec::new();
    expand(toks, 0, &mut extra);
    extra
}

/// Whether `t` is the keyword or unquoted name `w` (upper case).
#[inline]
pub fn is_word(t: Option<&Token>, w: &str) -> bool {
    matches!(t, Some(Token::Word(x)) if x == w)
}

/// Whether `t` is the operator or punctuation `o`.
#[inline]
pub fn is_op(t: Option<&Token>, o: &str) -> bool {
    matches!(t, Some(Token::Op(x)) if x == o)
}

/// Nested `DO` blocks and `EXECUTE`s followed this deep (three `DO` blocks each executing the
/// next); deeper ones stay as written, and each level repeats no more than the text it holds.
const MAX_EXPANSION_DEPTH: usize = 6;

fn expand(toks: &[Token], depth: usize, out: &mut Vec<Token>) {
    if depth >= MAX_EXPANSION_DEPTH {
        return;
    }
    // Another statement that runs: after a `;`, and what it runs in turn.
    let runs = |text: &str, out: &mut Vec<Token>| {
        let inner = tokens(text);
        out.push(Token::Op(";".into()));
        out.extend(inner.iter().cloned());
        expand(&inner, depth + 1, out);
    };
    for (i, t) in toks.iter().enumerate() {
        let statement_start = i == 0 || is_op(toks.get(i - 1), ";");
        if statement_start && is_word(Some(t), "DO") {
            // `DO [LANGUAGE l] body [LANGUAGE l]`: the body is the statement's string.
            let body = toks[i + 1..]
                .iter()
                .take_while(|t| !is_op(Some(t), ";"))
                .find_map(|t| match t {
                    Token::Str(b) => Some(b),
                    _ => None,
                });
            if let Some(body) = body {
                runs(body, out);
            }
        } else if is_word(Some(t), "EXECUTE") && depth > 0 {
            if let Some(text) = constant_text(&toks[i + 1..]) {
                runs(&text, out);
            }
        }
    }
}

/// The text of a constant string expression at the start of `toks`: literals and `chr(n)`
/// joined by `||`, as far as it goes (a variable ends it).
fn constant_text(toks: &[Token]) -> Option<String> {
    let mut text = String::new();
    let mut i = 0;
    let mut any = false;
    loop {
        match toks.get(i) {
            Some(Token::Str(s)) => {
                text.push_str(s);
                i += 1;
            }
            Some(Token::Word(w)) if w == "CHR" => {
                let code = match (toks.get(i + 1), toks.get(i + 2), toks.get(i + 3)) {
                    (Some(Token::Op(a)), Some(Token::Num(n)), Some(Token::Op(b)))
                        if a == "(" && b == ")" =>
                    {
                        n.parse::<u32>().ok().and_then(char::from_u32)
                    }
                    _ => None,
                };
                text.push(code?);
                i += 4;
            }
            _ => break,
        }
        any = true;
        match toks.get(i) {
            Some(Token::Op(o)) if o == "||" => i += 1,
            _ => break,
        }
    }
    any.then_some(text)
}

/// The end (exclusive) of a dollar-quote opening tag starting at byte `i` (`$$` or `$tag$`).
fn dollar_tag(s: &str, i: usize) -> Option<usize> {
    let mut j = i + 1;
    if j < s.len() && is_ident_start(char_at(s, j)) {
        j = run_end(s, j, |c| c.is_alphanumeric() || c == '_');
    }
    (s.as_bytes().get(j) == Some(&b'$')).then_some(j + 1)
}

/// The content of a quoted string or identifier starting after its opening quote (byte `i`),
/// and where the lexer goes on. A doubled quote stands for one; with `backslash`, `\x` escapes.
fn quoted(s: &str, mut i: usize, q: u8, backslash: bool) -> (CompactString, usize) {
    let b = s.as_bytes();
    let mut text = CompactString::default();
    // The start of the text not yet copied: copied a run at a time, up to a quote or escape.
    let mut run = i;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            text.push_str(&s[run..i]);
            match s[i + 1..].chars().next() {
                Some(next) => {
                    text.push(next);
                    i += 1 + next.len_utf8();
                }
                None => i = b.len(),
            }
            run = i;
        } else if b[i] == q {
            text.push_str(&s[run..i]);
            if b.get(i + 1) == Some(&q) {
                text.push(q as char);
                i += 2;
                run = i;
            } else {
                return (text, i + 1);
            }
        } else {
            i += 1;
        }
    }
    text.push_str(&s[run.min(b.len())..]);
    (text, b.len())
}

/// The statement as written, with every literal replaced by `?`, comments gone and each run of
/// blanks made one space: evidence that shows the shape of a statement without the data (or
/// passwords) in it, in the case and spacing its author used (`orders.id`, not `ORDERS . ID`).
pub fn redacted(sql: &str) -> String {
    let (toks, spans) = lex(sql);
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for (t, r) in toks.iter().zip(spans) {
        // Whatever lay between two tokens was blanks or comments (which may hold data).
        if r.start > last && !out.is_empty() {
            out.push(' ');
        }
        match t {
            Token::Str(_) | Token::Num(_) => out.push('?'),
            _ => out.push_str(&sql[r.clone()]),
        }
        last = r.end;
    }
    out
}

/// `s` as a string constant, as PostgreSQL's `quote_literal` writes it: quotes doubled, and
/// with a backslash in `s`, an `E'…'` constant with backslashes doubled, so that the text
/// means the same whatever `standard_conforming_strings` is. Every name that reaches SQL in
/// an alert's advice goes through here or [`quote_ident`]: role names are chosen by whoever
/// connects.
pub fn quote_literal(s: &str) -> String {
    let body = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// Reserved words (PostgreSQL 15's `reserved` and `type_func_name` keywords) and the role
/// specifications that mean something else than a role of that name.
const NEEDS_QUOTES: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "none",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "public",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// `s` as an identifier, as PostgreSQL's `quote_ident` writes it: bare when it is a plain
/// lower-case name that is no reserved word, otherwise in double quotes with quotes doubled.
pub fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !NEEDS_QUOTES.contains(&s);
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(sql: &str) -> Vec<String> {
        tokens(sql)
            .into_iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn comments_hide_nothing_and_split_words() {
        assert_eq!(
            words("COP/**/Y t TO PROGRAM 'x'"),
            ["COP", "Y", "T", "TO", "PROGRAM"]
        );
        assert_eq!(words("select 1 -- COPY x TO PROGRAM\n"), ["SELECT"]);
        assert_eq!(words("/* a /* nested */ COPY */ select"), ["SELECT"]);
        assert_eq!(
            words("copy t to program 'id'"),
            ["COPY", "T", "TO", "PROGRAM"]
        );
    }

    #[test]
    fn strings_of_every_kind_are_literals() {
        let t = tokens("SELECT 'it''s', E'a\\'b', $$x ' y$$, $f$ $$ $f$, \"Col\"\"x\", $1");
        assert_eq!(
            t[1..]
                .iter()
                .filter(|t| !matches!(t, Token::Op(_)))
                .cloned()
                .collect::<Vec<_>>(),
            vec![
                Token::Str("it's".into()),
                Token::Str("a'b".into()),
                Token::Str("x ' y".into()),
                Token::Str(" $$ ".into()),
                Token::Ident("Col\"x".into()),
                Token::Param(1),
            ]
        );
    }

    #[test]
    fn literals_are_redacted() {
        assert_eq!(
            redacted("SELECT * FROM users WHERE name = 'admin' AND id = 42 -- note"),
            "SELECT * FROM users WHERE name = ? AND id = ?"
        );
        assert_eq!(
            redacted("ALTER ROLE app PASSWORD 'hunter2'"),
            "ALTER ROLE app PASSWORD ?"
        );
        assert_eq!(redacted("select pg_sleep(5)"), "select pg_sleep(?)");
        // Case and spacing as written; blanks and comments (which may hold data) one space.
        assert_eq!(
            redacted("SELECT o.Id,\n\t\"Total\"/*secret*/FROM Orders o WHERE o.n=-1.5e3 AND x=$tag$s$tag$"),
            "SELECT o.Id, \"Total\" FROM Orders o WHERE o.n=-? AND x=?"
        );
        assert_eq!(
            redacted("SELECT E'a\\'b', B'01', 'it''s'"),
            "SELECT ?, ?, ?"
        );
    }

    #[test]
    fn do_blocks_and_their_dynamic_statements_are_seen() {
        let w = |sql: &str| -> String {
            let own = tokens(sql);
            [own.clone(), dynamic_tokens(&own)]
                .concat()
                .iter()
                .map(|t| match t {
                    Token::Word(w) => w.clone(),
                    Token::Str(_) => "?".into(),
                    Token::Op(o) => o.clone(),
                    _ => "·".into(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            w("DO $$BEGIN EXECUTE 'COPY (SELECT 1) TO PRO' || 'GRAM ' || chr(39) || 'id' || chr(39); END$$"),
            "DO ? ; BEGIN EXECUTE ? || ? || CHR ( · ) || ? || CHR ( · ) ; END ; COPY ( SELECT · ) TO PROGRAM ?"
        );
        // Nested, with a language clause, and after another statement.
        assert!(w("SELECT 1; DO LANGUAGE plpgsql $a$BEGIN EXECUTE 'DO $b$BEGIN EXECUTE ''ALTER ROLE x SUPERUSER''; END$b$'; END$a$")
            .ends_with("; ALTER ROLE X SUPERUSER"));
        // A variable ends what is known; a string that is only data stays data.
        assert_eq!(
            w("DO $$BEGIN EXECUTE 'SELECT ' || v; PERFORM 'DROP TABLE x'; END$$"),
            "DO ? ; BEGIN EXECUTE ? || V ; PERFORM ? ; END ; SELECT"
        );
        assert_eq!(w("SELECT 'DO $$x$$'"), "SELECT ?");
    }

    #[test]
    fn unterminated_input_ends_without_failing() {
        for s in [
            "'open",
            "E'\\",
            "$tag$ never",
            "/* open",
            "\"open",
            "$",
            "$$",
            "--",
        ] {
            let _ = tokens(s);
            let _ = redacted(s);
        }
    }

    #[test]
    fn random_and_huge_input_never_panics() {
        let mut rng = crate::rng::Rng(0x5eed);
        let alphabet: Vec<char> = "'\"$/*-\\eE \n(),;:abc12$_\u{e9}\u{1F600}"
            .chars()
            .collect();
        for len in [0usize, 1, 7, 64, 1000] {
            for _ in 0..300 {
                let s: String = (0..len).map(|_| *rng.pick(&alphabet)).collect();
                let _ = redacted(&s);
            }
        }
        // A megabyte of nested comment openers, of quotes, of dollars: no recursion to
        // overflow, nothing left over.
        for unit in ["/*", "'", "$a", "$$", "\"", "--"] {
            let big = unit.repeat(500_000);
            let _ = tokens(&big);
        }
    }

    #[test]
    fn quoted_names_lex_back_to_themselves() {
        let hostile = [
            "ops' OR usename <> '",
            "a\\' OR true --",
            "x\" NOLOGIN; DROP ROLE postgres; --",
            "Mixed Case",
            "user",
            "public",
            "app_1$",
            "",
            "\u{202e}evil",
        ];
        for name in hostile {
            assert_eq!(
                tokens(&quote_literal(name)),
                vec![Token::Str(name.into())],
                "{name:?}"
            );
            let ident = tokens(&quote_ident(name));
            let expected = if quote_ident(name).starts_with('"') {
                Token::Ident(name.into())
            } else {
                Token::Word(name.to_uppercase().into())
            };
            assert_eq!(ident, vec![expected], "{name:?}");
        }
        assert_eq!(quote_ident("app"), "app");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }
}
