//! pgaudit's entries (`AUDIT: SESSION,…` in any log format's message): a CSV record that
//! pgaudit writes itself, a field quoted when it holds a comma, a quote or a line break, with
//! quotes inside doubled. Such a record is split without copying (the statement is most of
//! the line); anything else a server might have written goes through `csv_core`'s reader.

use std::borrow::Cow;

/// One pgaudit entry: `AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.t,select …,<not logged>[,rows]`.
#[derive(Debug, PartialEq)]
pub struct AuditEntry<'a> {
    pub statement_id: u64,
    pub substatement_id: u64,
    pub class: Cow<'a, str>,
    pub command: Cow<'a, str>,
    /// `None` with `pgaudit.log_statement = off`.
    pub statement: Option<Cow<'a, str>>,
    /// With `pgaudit.log_rows = on`.
    pub rows: Option<u64>,
}

impl<'a> AuditEntry<'a> {
    pub fn parse(entry: &'a str) -> Option<AuditEntry<'a>> {
        // Cheap refusal first: most messages of a busy log are not audit entries of a kind
        // pgvigil reads.
        if !(entry.starts_with("SESSION,") || entry.starts_with("OBJECT,")) {
            return None;
        }
        let (mut rec, n) = csv_fields::<10>(entry)?;
        if n < 9 {
            return None;
        }
        let number = |f: &str| f.parse::<u64>().ok();
        Some(AuditEntry {
            statement_id: number(&rec[1])?,
            substatement_id: number(&rec[2])?,
            rows: if n > 9 { number(&rec[9]) } else { None },
            statement: (rec[7] != "<not logged>").then(|| std::mem::take(&mut rec[7])),
            class: std::mem::take(&mut rec[3]),
            command: std::mem::take(&mut rec[4]),
        })
    }
}

/// The first `MAX` fields of the CSV record `line` (the whole of it), quotes undone, and how
/// many there are.
fn csv_fields<const MAX: usize>(line: &str) -> Option<([Cow<'_, str>; MAX], usize)> {
    split_plain::<MAX>(line).or_else(|| split_any::<MAX>(line))
}

/// The fields of a record as pgaudit writes it, borrowed from `line` but for a quoted field
/// with doubled quotes; `None` for anything else (a quote inside an unquoted field, text after
/// a closing quote, an unclosed quote, a line break outside quotes, an empty line), which
/// [`split_any`] reads as a CSV reader would.
fn split_plain<const MAX: usize>(line: &str) -> Option<([Cow<'_, str>; MAX], usize)> {
    let b = line.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut fields: [Cow<'_, str>; MAX] = std::array::from_fn(|_| Cow::Borrowed(""));
    let (mut n, mut i) = (0, 0);
    while n < MAX {
        let end = if b.get(i) == Some(&b'"') {
            let mut owned: Option<String> = None;
            // The start of the text not yet copied into `owned`.
            let mut run = i + 1;
            let close = loop {
                let k = run + memchr::memchr(b'"', &b[run..])?;
                if b.get(k + 1) == Some(&b'"') {
                    owned.get_or_insert_default().push_str(&line[run..=k]);
                    run = k + 2;
                } else {
                    break k;
                }
            };
            fields[n] = match owned {
                None => Cow::Borrowed(&line[i + 1..close]),
                Some(mut s) => {
                    s.push_str(&line[run..close]);
                    Cow::Owned(s)
                }
            };
            match b.get(close + 1) {
                None | Some(b',') => close + 1,
                Some(_) => return None,
            }
        } else {
            let end = memchr::memchr(b',', &b[i..]).map_or(b.len(), |k| i + k);
            let field = &line[i..end];
            if memchr::memchr3(b'"', b'\n', b'\r', field.as_bytes()).is_some() {
                return None;
            }
            fields[n] = Cow::Borrowed(field);
            end
        };
        n += 1;
        if end >= b.len() {
            break;
        }
        i = end + 1;
    }
    Some((fields, n))
}

thread_local! {
    /// One CSV field reader and its output buffer per thread, reset for each record: building
    /// a reader (or a buffer) per entry was most of the time spent on a pgaudit log.
    static CSV: std::cell::RefCell<(csv_core::Reader, Vec<u8>)> =
        std::cell::RefCell::new((csv_core::Reader::new(), Vec::new()));
}

/// The fields of any CSV record, by `csv_core`'s reader (a line break outside quotes ends it).
fn split_any<const MAX: usize>(line: &str) -> Option<([Cow<'_, str>; MAX], usize)> {
    CSV.with(|cell| {
        let (rdr, buf) = &mut *cell.borrow_mut();
        rdr.reset();
        // Undoing quotes never lengthens a field: the line's length is room enough.
        if buf.len() < line.len() + 1 {
            buf.resize(line.len() + 1, 0);
        }
        let mut input = line.as_bytes();
        let mut ends = [0usize; MAX];
        let (mut n, mut len) = (0, 0);
        loop {
            let (res, read, written) = rdr.read_field(input, &mut buf[len..]);
            input = &input[read..];
            len += written;
            match res {
                csv_core::ReadFieldResult::InputEmpty if input.is_empty() => {
                    // End of the line: the reader is told so, and ends the last field.
                    let (res, _, written) = rdr.read_field(&[], &mut buf[len..]);
                    len += written;
                    if matches!(res, csv_core::ReadFieldResult::Field { .. }) {
                        ends[n] = len;
                        n += 1;
                    }
                    break;
                }
                csv_core::ReadFieldResult::InputEmpty => {}
                csv_core::ReadFieldResult::OutputFull => return None,
                csv_core::ReadFieldResult::Field { record_end } => {
                    ends[n] = len;
                    n += 1;
                    if record_end || n >= MAX {
                        break;
                    }
                }
                csv_core::ReadFieldResult::End => break,
            }
        }
        let mut fields: [Cow<'_, str>; MAX] = std::array::from_fn(|_| Cow::Borrowed(""));
        let mut from = 0;
        for (i, end) in ends[..n].iter().enumerate() {
            fields[i] = Cow::Owned(String::from_utf8_lossy(&buf[from..*end]).into_owned());
            from = *end;
        }
        Some((fields, n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_entries_are_read_as_csv() {
        let a = AuditEntry::parse(
            "SESSION,3,1,READ,SELECT,TABLE,public.t,\"select a, \"\"b\"\" from t\nwhere x = 'y,z'\",<none>,42",
        )
        .unwrap();
        assert_eq!((a.statement_id, a.substatement_id), (3, 1));
        assert_eq!((&*a.class, &*a.command), ("READ", "SELECT"));
        assert_eq!(
            a.statement.as_deref(),
            Some("select a, \"b\" from t\nwhere x = 'y,z'")
        );
        assert_eq!(a.rows, Some(42));
        let b = AuditEntry::parse("OBJECT,1,1,WRITE,INSERT,TABLE,t,<not logged>,<none>").unwrap();
        assert_eq!((b.statement, b.rows), (None, None));
        assert!(AuditEntry::parse("SESSION,1,1,READ").is_none());
        assert!(AuditEntry::parse("statement: SELECT 1").is_none());
    }

    /// The quick split agrees with the CSV reader on every record it takes, and leaves it the
    /// rest: random records of the characters that matter, and of pgaudit's own shape.
    #[test]
    fn the_quick_split_reads_what_a_csv_reader_reads() {
        let mut rng = model::rng::Rng(0xc5f);
        let alphabet: Vec<&str> = vec![",", "\"", "\"\"", "a", "é", "\n", "\r", " ", "1"];
        let (mut quick, mut total) = (0, 0);
        for len in 0..14 {
            for _ in 0..4000 {
                let line: String = (0..len).map(|_| *rng.pick(&alphabet)).collect();
                total += 1;
                let reader = split_any::<4>(&line);
                if let Some(q) = split_plain::<4>(&line) {
                    quick += 1;
                    assert_eq!(Some(&q), reader.as_ref(), "{line:?}");
                }
            }
        }
        // Most short random records are something pgaudit would never write; enough are
        // taken by the quick split for the comparison to mean something.
        assert!(quick > total / 20, "{quick} of {total}");
        for stmt in ["select 1", "select 'a,b'", "say \"\"hi\"\"", "", "x\ny"] {
            let quoted = format!("\"{}\"", stmt);
            let line = format!("SESSION,1,1,READ,SELECT,TABLE,t,{quoted},<not logged>,7");
            let q = split_plain::<10>(&line).expect("pgaudit's shape is taken");
            assert_eq!(Some(q), split_any::<10>(&line), "{line:?}");
        }
    }
}
