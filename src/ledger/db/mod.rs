//! The ledger's one door to a database: SQLite embedded (the default) or PostgreSQL shared
//! by several machines. Its shape is rusqlite's (connection, statement, row, transaction),
//! so the ledger's SQL is written once; statements are written in the dialect both accept,
//! and the few SQLite spellings PostgreSQL lacks are rewritten when a statement is prepared
//! there (see pg.rs). Nothing outside the ledger sees this module.

mod pg;
mod value;

pub use pg::PgConn;
pub use value::{params_from_iter, FromSql, Params, RowIndex, ToSql, Value};

pub use crate::ledger_params as params;

use value::Column;

/// Names as an SQL list of string literals (`'order', 'invoice'`). Only `'static` names:
/// the program's own spellings of its enums, never text from outside, go into a statement
/// this way.
pub fn quoted_list(names: impl IntoIterator<Item = &'static str>) -> String {
    let quoted: Vec<String> = names.into_iter().map(|n| format!("'{n}'")).collect();
    quoted.join(", ")
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Lite(rusqlite::Error),
    #[error("{}", pg::describe(.0))]
    Pg(postgres::Error),
    /// A statement PostgreSQL refused to prepare: a dialect difference, named with the
    /// statement so it can be fixed.
    #[error("{} in: {sql}", pg::describe(.source))]
    PgPrepare {
        sql: String,
        source: postgres::Error,
    },
    #[error("the query returned no rows")]
    NoRows,
    #[error("column {column}: {problem}")]
    Type { column: String, problem: String },
    #[error("{0} is not available on a PostgreSQL ledger")]
    Unsupported(&'static str),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            e => Error::Lite(e),
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Error::Pg(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether the database session is gone (a PostgreSQL restart, a network cut, a session
    /// the server ended): what was not committed is lost, and a later statement opens a
    /// new session.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::Pg(e) | Error::PgPrepare { source: e, .. } => pg::is_connection_lost(e),
            _ => false,
        }
    }
}

/// `query_row(...).optional()`: no row is `None`, not an error.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How a transaction begins. `Immediate` takes the ledger's write lock first (SQLite's
/// `BEGIN IMMEDIATE`; on PostgreSQL a transaction-scoped advisory lock), so a transaction
/// that reads and then writes sees no other writer in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionBehavior {
    Deferred,
    Immediate,
}

pub enum Connection {
    Lite(rusqlite::Connection),
    Pg(Box<PgConn>),
}

/// Small allocations SQLite makes for a connection come from its lookaside slots while
/// there are free ones, else from `malloc` behind a mutex. A batch's inserts bind a few
/// hundred texts at once (labels, keys, hashes: a hundred rows a statement) and the
/// default 40 slots ran out on every one: three quarters of those bindings went to
/// `malloc`. 2,048 slots of 128 bytes (256 KiB a connection) hold a statement's.
fn more_lookaside(c: &rusqlite::Connection) {
    const SLOT: std::os::raw::c_int = 128;
    const SLOTS: std::os::raw::c_int = 2048;
    // SAFETY: the connection's own handle, on the thread that opened it, before any
    // statement ran; SQLite allocates the slots itself (null buffer). On failure (slots in
    // use) the defaults stay.
    unsafe {
        rusqlite::ffi::sqlite3_db_config(
            c.handle(),
            rusqlite::ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<std::os::raw::c_void>(),
            SLOT,
            SLOTS,
        );
    }
}

/// Keeps SQLite from preparing a cached statement again whenever a parameter is bound
/// anew. Deciding whether a partial index (`units_rejected`: `status = 'rejected'`) serves
/// a statement, SQLite compares the statement's bound parameters with the index's
/// literals and marks the statement to be prepared again on every new binding, so a
/// statement on `units`, `files`, `deliveries` or `runs` asked in a loop (a unit by seq,
/// a page of lines) was parsed and planned each time: 140,000 instructions a call, most
/// of a corrections file's writing. The planner stability guarantee turns that off; the
/// statements that use a partial index name its literal, not a parameter.
fn plan_once(c: &rusqlite::Connection) -> Result<()> {
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

impl Connection {
    pub fn open_sqlite(path: &std::path::Path) -> Result<Connection> {
        let c = rusqlite::Connection::open(path)?;
        more_lookaside(&c);
        plan_once(&c)?;
        c.set_prepared_statement_cache_capacity(128);
        Ok(Connection::Lite(c))
    }

    pub fn open_postgres(url: &str, password: Option<&str>) -> Result<Connection> {
        Ok(Connection::Pg(Box::new(PgConn::connect(url, password)?)))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Connection::Pg(_))
    }

    /// Applies a session setting (PostgreSQL `SET`) now and to every session opened again
    /// after a cut. Nothing on SQLite.
    pub fn set(&self, statement: &str) -> Result<()> {
        match self {
            Connection::Lite(_) => Ok(()),
            Connection::Pg(c) => c.set(statement),
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, online backup).
    pub fn sqlite(&self) -> Result<&rusqlite::Connection> {
        match self {
            Connection::Lite(c) => Ok(c),
            Connection::Pg(_) => Err(Error::Unsupported("this SQLite operation")),
        }
    }

    pub fn execute<P: Params>(&self, sql: &str, p: P) -> Result<usize> {
        self.prepare(sql)?.execute(p)
    }

    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Connection::Lite(c) => Ok(c.execute_batch(sql)?),
            Connection::Pg(c) => c.batch(sql),
        }
    }

    /// Runs a script as written, without rewriting it for PostgreSQL (its own schema).
    pub fn execute_script(&self, sql: &str) -> Result<()> {
        match self {
            Connection::Lite(c) => Ok(c.execute_batch(sql)?),
            Connection::Pg(c) => c.script(sql),
        }
    }

    pub fn query_row<T, P, F>(&self, sql: &str, p: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        self.prepare(sql)?.query_row(p, f)
    }

    /// Prepares (and caches) a statement. Both spellings exist because rusqlite has both;
    /// every statement is cached here.
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement {
            inner: match self {
                Connection::Lite(c) => Stmt::Lite(c.prepare_cached(sql)?),
                Connection::Pg(c) => Stmt::Pg(c, c.prepare(sql)?),
            },
        })
    }

    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        self.prepare(sql)
    }

    pub fn last_insert_rowid(&self) -> Result<i64> {
        match self {
            Connection::Lite(c) => Ok(c.last_insert_rowid()),
            Connection::Pg(_) => self.query_row("SELECT lastval()", (), |r| r.get(0)),
        }
    }

    pub fn transaction_with_behavior(&self, b: TransactionBehavior) -> Result<Transaction<'_>> {
        let begin = match b {
            TransactionBehavior::Deferred => "BEGIN DEFERRED",
            TransactionBehavior::Immediate => "BEGIN IMMEDIATE",
        };
        self.execute_batch(begin)?;
        Ok(Transaction {
            conn: self,
            open: true,
        })
    }

    pub fn unchecked_transaction(&self) -> Result<Transaction<'_>> {
        self.transaction_with_behavior(TransactionBehavior::Deferred)
    }
}

/// A transaction on a connection; rolled back when dropped uncommitted.
pub struct Transaction<'c> {
    conn: &'c Connection,
    open: bool,
}

impl Transaction<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        self.conn.execute_batch("COMMIT")
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

pub struct Statement<'c> {
    inner: Stmt<'c>,
}

enum Stmt<'c> {
    Lite(rusqlite::CachedStatement<'c>),
    Pg(&'c PgConn, postgres::Statement),
}

impl Statement<'_> {
    #[cfg(test)]
    pub fn column_count(&self) -> usize {
        match &self.inner {
            Stmt::Lite(s) => s.column_count(),
            Stmt::Pg(_, s) => s.columns().len(),
        }
    }

    pub fn execute<P: Params>(&mut self, p: P) -> Result<usize> {
        let args = p.args();
        match &mut self.inner {
            Stmt::Lite(s) => Ok(s.execute(rusqlite::params_from_iter(args.iter()))?),
            Stmt::Pg(c, s) => c.execute(s, &args),
        }
    }

    pub fn query<P: Params>(&mut self, p: P) -> Result<Rows<'_>> {
        let args = p.args();
        Ok(match &mut self.inner {
            Stmt::Lite(s) => Rows::Lite(s.query(rusqlite::params_from_iter(args.iter()))?),
            Stmt::Pg(c, s) => Rows::Pg(c.query(s, &args)?, 0),
        })
    }

    pub fn query_map<T, P, F>(&mut self, p: P, f: F) -> Result<MappedRows<'_, F>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        Ok(MappedRows {
            rows: self.query(p)?,
            f,
        })
    }

    pub fn query_row<T, P, F>(&mut self, p: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        let mut rows = self.query(p)?;
        match rows.next()? {
            Some(r) => f(&r),
            None => Err(Error::NoRows),
        }
    }
}

/// The rows of a query: streamed from SQLite, fetched whole from PostgreSQL.
pub enum Rows<'s> {
    Lite(rusqlite::Rows<'s>),
    Pg(Vec<postgres::Row>, usize),
}

impl Rows<'_> {
    #[allow(clippy::should_implement_trait)] // lends each row, as rusqlite's does
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        match self {
            Rows::Lite(r) => Ok(r.next()?.map(Row::Lite)),
            Rows::Pg(rows, at) => {
                let row = rows.get(*at);
                *at += 1;
                Ok(row.map(Row::Pg))
            }
        }
    }
}

pub struct MappedRows<'s, F> {
    rows: Rows<'s>,
    f: F,
}

impl<T, F> Iterator for MappedRows<'_, F>
where
    F: FnMut(&Row<'_>) -> Result<T>,
{
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        match self.rows.next() {
            Ok(Some(r)) => Some((self.f)(&r)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// One row of a result.
pub enum Row<'a> {
    Lite(&'a rusqlite::Row<'a>),
    Pg(&'a postgres::Row),
}

impl Row<'_> {
    pub fn column_count(&self) -> usize {
        match self {
            Row::Lite(r) => r.as_ref().column_count(),
            Row::Pg(r) => r.len(),
        }
    }

    /// Column `n` rendered as text, whatever its type (NULL is `None`).
    pub fn text(&self, n: usize) -> Result<Option<String>> {
        Ok(match self.value(n)? {
            Value::Null => None,
            Value::Int(i) => Some(i.to_string()),
            Value::Real(f) => Some(f.to_string()),
            Value::Text(s) => Some(s.to_owned()),
            Value::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
        })
    }

    pub fn get<I: RowIndex, T: FromSql>(&self, i: I) -> Result<T> {
        let at = i.at();
        let n = self.index(at)?;
        T::from_value(self.value(n)?).map_err(|problem| Error::Type {
            column: match at {
                Column::Place(n) => n.to_string(),
                Column::Name(s) => s.to_owned(),
            },
            problem,
        })
    }

    /// The place of a column given by place or name.
    fn index(&self, at: Column<'_>) -> Result<usize> {
        match (self, at) {
            (_, Column::Place(n)) => Ok(n),
            (Row::Lite(r), Column::Name(s)) => Ok(r.as_ref().column_index(s)?),
            (Row::Pg(r), Column::Name(s)) => r
                .columns()
                .iter()
                .position(|c| c.name() == s)
                .ok_or_else(|| Error::Type {
                    column: s.to_owned(),
                    problem: "no such column".into(),
                }),
        }
    }

    /// Column `n` as one of the ledger's values.
    fn value(&self, n: usize) -> Result<Value<'_>> {
        match self {
            Row::Lite(r) => lite_value(r.get_ref(n)?).map_err(|problem| Error::Type {
                column: n.to_string(),
                problem,
            }),
            Row::Pg(r) => pg::value(r, n),
        }
    }
}

fn lite_value(v: rusqlite::types::ValueRef<'_>) -> std::result::Result<Value<'_>, String> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(std::str::from_utf8(t).map_err(|e| e.to_string())?),
        ValueRef::Blob(b) => Value::Blob(b),
    })
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(i),
            Value::Real(f) => ValueRef::Real(f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

#[cfg(test)]
mod lookaside_tests {
    use rusqlite::ffi;

    use super::Connection;

    /// `(slots in use at most, allocations that found every slot taken)` since `reset`.
    fn lookaside(c: &rusqlite::Connection, reset: bool) -> (i32, i32) {
        let (mut cur, mut high, mut misses) = (0, 0, 0);
        // SAFETY: status reads on the connection's own handle.
        unsafe {
            let db = c.handle();
            let r = i32::from(reset);
            ffi::sqlite3_db_status(
                db,
                ffi::SQLITE_DBSTATUS_LOOKASIDE_USED,
                &mut cur,
                &mut high,
                r,
            );
            ffi::sqlite3_db_status(
                db,
                ffi::SQLITE_DBSTATUS_LOOKASIDE_MISS_FULL,
                &mut cur,
                &mut misses,
                r,
            );
        }
        (high, misses)
    }

    #[test]
    fn a_statement_of_a_hundred_rows_binds_its_texts_in_lookaside() {
        let dir = tempfile::tempdir().unwrap();
        let Connection::Lite(c) = Connection::open_sqlite(&dir.path().join("l.db")).unwrap() else {
            unreachable!()
        };
        c.execute_batch("CREATE TABLE t(a TEXT, b TEXT, c TEXT)")
            .unwrap();
        let rows = vec!["(?, ?, ?)"; 100].join(", ");
        let mut st = c.prepare(&format!("INSERT INTO t VALUES {rows}")).unwrap();
        let texts: Vec<String> = (0..300).map(|i| format!("order B{i:08}")).collect();
        lookaside(&c, true);
        st.execute(rusqlite::params_from_iter(texts.iter()))
            .unwrap();
        let (high, misses) = lookaside(&c, true);
        assert!(
            high > 300,
            "{high} slots at most: the 300 texts were not in lookaside"
        );
        assert_eq!(misses, 0);
    }

    /// A statement on a table with a partial index, asked again with other parameters, is
    /// not prepared again (see `plan_once`): it was, every time.
    #[test]
    fn a_statement_asked_again_with_other_parameters_is_not_prepared_again() {
        let dir = tempfile::tempdir().unwrap();
        let Connection::Lite(c) = Connection::open_sqlite(&dir.path().join("l.db")).unwrap() else {
            unreachable!()
        };
        c.execute_batch(
            "CREATE TABLE u(f INTEGER, s INTEGER, status TEXT, PRIMARY KEY (f, s)) WITHOUT ROWID; \
             CREATE INDEX u_rejected ON u(status, f, s) WHERE status = 'rejected'; \
             INSERT INTO u VALUES (1, 1, 'applied'), (1, 2, 'rejected'), (1, 3, 'applied');",
        )
        .unwrap();
        let mut st = c
            .prepare("SELECT s FROM u WHERE f = ?1 AND s >= ?2 AND s < ?3 ORDER BY s LIMIT ?4")
            .unwrap();
        for s in 1..=3 {
            let got: i64 = st.query_row((1, s, s + 1, 1), |r| r.get(0)).unwrap();
            assert_eq!(got, s);
        }
        let again = st.get_status(rusqlite::StatementStatus::RePrepare);
        assert_eq!(again, 0, "prepared again {again} times");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_become_one_sql_list_of_literals() {
        assert_eq!(
            super::quoted_list(["applied", "unmapped"]),
            "'applied', 'unmapped'"
        );
        assert_eq!(super::quoted_list(["order"]), "'order'");
        assert_eq!(super::quoted_list([]), "");
    }
}
