//! The two databases the store runs on, behind one small interface: SQLite (embedded, the
//! default) and PostgreSQL (`store.url`, for fleets). The store's SQL is written once, with
//! `$1`-style parameters and types both understand (TEXT, BIGINT, DOUBLE PRECISION); each
//! backend binds [`Val`]s and reads rows back as [`Val`]s.

use super::{Result, StoreError};

/// A parameter or column value. Nulls are typed, as PostgreSQL needs to know what it binds.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Text(Some(s.to_string()))
    }
}
impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Text(Some(s))
    }
}
impl From<&String> for Val {
    fn from(s: &String) -> Val {
        Val::Text(Some(s.clone()))
    }
}
impl From<Option<String>> for Val {
    fn from(s: Option<String>) -> Val {
        Val::Text(s)
    }
}
impl From<Option<&str>> for Val {
    fn from(s: Option<&str>) -> Val {
        Val::Text(s.map(String::from))
    }
}
impl From<&Option<String>> for Val {
    fn from(s: &Option<String>) -> Val {
        Val::Text(s.clone())
    }
}
impl From<i64> for Val {
    fn from(n: i64) -> Val {
        Val::Int(Some(n))
    }
}
impl From<bool> for Val {
    fn from(b: bool) -> Val {
        Val::Int(Some(i64::from(b)))
    }
}
impl From<Option<f64>> for Val {
    fn from(f: Option<f64>) -> Val {
        Val::Real(f)
    }
}
impl From<&[u8]> for Val {
    fn from(b: &[u8]) -> Val {
        Val::Blob(Some(b.to_vec()))
    }
}

/// `vals![a, b, …]`: parameters for a statement.
macro_rules! vals {
    ($($v:expr),* $(,)?) => { &[$($crate::db::Val::from($v)),*][..] };
}
pub(crate) use vals;

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Val>);

fn bad(i: usize, want: &str, got: &Val) -> StoreError {
    StoreError::Corrupt {
        what: format!("column {i}"),
        reason: format!("expected {want}, found {got:?}"),
    }
}

impl Row {
    fn get(&self, i: usize) -> Result<&Val> {
        self.0.get(i).ok_or_else(|| StoreError::Corrupt {
            what: format!("column {i}"),
            reason: "missing".into(),
        })
    }

    pub fn text(&self, i: usize) -> Result<String> {
        self.str(i).map(str::to_owned)
    }

    /// [`Row::text`], borrowed: a page of alerts reads a kilobyte or two of record per row.
    pub fn str(&self, i: usize) -> Result<&str> {
        match self.get(i)? {
            Val::Text(Some(s)) => Ok(s),
            v => Err(bad(i, "text", v)),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.get(i)? {
            Val::Text(s) => Ok(s.clone()),
            Val::Int(None) | Val::Real(None) | Val::Blob(None) => Ok(None),
            v => Err(bad(i, "text", v)),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64> {
        match self.get(i)? {
            Val::Int(Some(n)) => Ok(*n),
            v => Err(bad(i, "integer", v)),
        }
    }

    pub fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        match self.get(i)? {
            Val::Real(f) => Ok(*f),
            Val::Int(n) => Ok(n.map(|n| n as f64)),
            Val::Text(None) | Val::Blob(None) => Ok(None),
            v => Err(bad(i, "number", v)),
        }
    }

    pub fn blob(&self, i: usize) -> Result<Vec<u8>> {
        match self.get(i)? {
            Val::Blob(Some(b)) => Ok(b.clone()),
            v => Err(bad(i, "bytes", v)),
        }
    }
}

/// What the store needs of a connection or transaction.
pub trait Db {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<usize>;
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>>;

    fn query_opt(&mut self, sql: &str, params: &[Val]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Serialises transactions that take the same key, until they end: for decisions that
    /// read what other writers may be writing at the same moment. SQLite has one writer at a
    /// time already.
    fn lock(&mut self, _key: i64) -> Result<()> {
        Ok(())
    }

    /// SQLite, whose planner differs from PostgreSQL's where it matters at 100k alerts: it
    /// groups by sorting into a temporary b-tree (several times the cost of the reading, so
    /// the store counts by key itself as it reads), and it has no statistics (so it prefers
    /// an index for any equality, even one that half the rows meet, over the index that
    /// gives the order asked for).
    fn is_sqlite(&self) -> bool {
        true
    }
}

// ---- SQLite ----

/// `$1` → `?1`: SQLite reads `$1` as a *named* parameter, numbered by first appearance.
fn sqlite_sql(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    for (i, c) in sql.char_indices() {
        if c == '$' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match self {
            Val::Int(Some(n)) => ToSqlOutput::Owned(Value::Integer(*n)),
            Val::Real(Some(f)) => ToSqlOutput::Owned(Value::Real(*f)),
            Val::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Val::Blob(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            _ => ToSqlOutput::Owned(Value::Null),
        })
    }
}

pub struct Sqlite<'a>(pub &'a rusqlite::Connection);

impl Db for Sqlite<'_> {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<usize> {
        let mut st = self.0.prepare_cached(&sqlite_sql(sql))?;
        Ok(st.execute(rusqlite::params_from_iter(params.iter()))?)
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        use rusqlite::types::ValueRef;
        let mut st = self.0.prepare_cached(&sqlite_sql(sql))?;
        let n = st.column_count();
        let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                v.push(match r.get_ref(i)? {
                    ValueRef::Null => Val::Text(None),
                    ValueRef::Integer(x) => Val::Int(Some(x)),
                    ValueRef::Real(x) => Val::Real(Some(x)),
                    // SQLite hands back what was stored; text that is not UTF-8 (written
                    // by something else) is read with replacement characters. The check
                    // first: the lossy reader is several times slower on valid text.
                    ValueRef::Text(t) => Val::Text(Some(match std::str::from_utf8(t) {
                        Ok(s) => s.to_owned(),
                        Err(_) => String::from_utf8_lossy(t).into_owned(),
                    })),
                    ValueRef::Blob(b) => Val::Blob(Some(b.to_vec())),
                });
            }
            out.push(Row(v));
        }
        Ok(out)
    }
}

// ---- PostgreSQL ----

pub struct Pg<'a, C: postgres::GenericClient>(pub &'a mut C);

fn pg_err(e: postgres::Error) -> StoreError {
    StoreError::Postgres(pg_message(&e))
}

/// The server's own message (with its SQLSTATE) when there is one: `postgres::Error` alone
/// says only "db error".
pub fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!(
            "{}: {} (SQLSTATE {})",
            d.severity(),
            d.message(),
            d.code().code()
        ),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(x) = src {
                s.push_str(&format!(": {x}"));
                src = x.source();
            }
            s
        }
    }
}

fn pg_params(params: &[Val]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Val::Int(n) => Box::new(*n),
                Val::Real(f) => Box::new(*f),
                Val::Text(s) => Box::new(s.clone()),
                Val::Blob(b) => Box::new(b.clone()),
            }
        })
        .collect()
}

impl<C: postgres::GenericClient> Db for Pg<'_, C> {
    fn is_sqlite(&self) -> bool {
        false
    }

    fn lock(&mut self, key: i64) -> Result<()> {
        self.0
            .execute("SELECT pg_advisory_xact_lock($1)", &[&key])
            .map_err(pg_err)?;
        Ok(())
    }

    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<usize> {
        let p = pg_params(params);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            p.iter().map(|b| b.as_ref()).collect();
        Ok(self.0.execute(sql, &refs).map_err(pg_err)? as usize)
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        use postgres::types::Type;
        let p = pg_params(params);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            p.iter().map(|b| b.as_ref()).collect();
        let rows = self.0.query(sql, &refs).map_err(pg_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut v = Vec::with_capacity(r.len());
            for (i, col) in r.columns().iter().enumerate() {
                let t = col.type_();
                v.push(if *t == Type::INT8 {
                    Val::Int(r.try_get::<_, Option<i64>>(i).map_err(pg_err)?)
                } else if *t == Type::INT4 {
                    Val::Int(
                        r.try_get::<_, Option<i32>>(i)
                            .map_err(pg_err)?
                            .map(i64::from),
                    )
                } else if *t == Type::BOOL {
                    Val::Int(
                        r.try_get::<_, Option<bool>>(i)
                            .map_err(pg_err)?
                            .map(i64::from),
                    )
                } else if *t == Type::FLOAT8 {
                    Val::Real(r.try_get::<_, Option<f64>>(i).map_err(pg_err)?)
                } else if *t == Type::BYTEA {
                    Val::Blob(r.try_get::<_, Option<Vec<u8>>>(i).map_err(pg_err)?)
                } else {
                    Val::Text(r.try_get::<_, Option<String>>(i).map_err(pg_err)?)
                });
            }
            out.push(Row(v));
        }
        Ok(out)
    }
}

/// `f`, tried again (up to five times) while PostgreSQL ends it as a deadlock or a
/// serialization failure.
pub(crate) fn retry_conflicts<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut tries = 0;
    loop {
        tries += 1;
        match f() {
            Err(StoreError::Postgres(m))
                if tries < 5 && (m.contains("40P01") || m.contains("40001")) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20 * tries));
            }
            out => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dollar_parameters_become_numbered_sqlite_ones() {
        assert_eq!(
            super::sqlite_sql("UPDATE t SET a = $2 WHERE id = $1 AND b = '$x'"),
            "UPDATE t SET a = ?2 WHERE id = ?1 AND b = '$x'"
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_read_with_replacement_characters() {
        use super::{Db, Sqlite};
        let c = rusqlite::Connection::open_in_memory().unwrap();
        // Written by something else than pgvigil: a Latin-1 "é" amid UTF-8.
        c.execute_batch(
            "CREATE TABLE t (a TEXT);
             INSERT INTO t VALUES ('caf' || CAST(X'E9' AS TEXT) || ' ok'), ('naïve');",
        )
        .unwrap();
        let rows = Sqlite(&c)
            .query("SELECT a FROM t ORDER BY rowid", &[])
            .unwrap();
        assert_eq!(rows[0].text(0).unwrap(), "caf\u{fffd} ok");
        assert_eq!(rows[1].str(0).unwrap(), "naïve");
    }
}
