//! Many rows a statement, for inserts and for asking which keys have rows: what keeps a
//! batch at a few round trips per hundred documents. Apart from the batch's own parts,
//! the ledger's other bulk writers (deliveries, spans, unpacked runs) insert through
//! [`insert_many`] too.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use super::{key_of, BatchTx};
use crate::ledger::db::{params_from_iter, Transaction, Value};
use crate::ledger::Result;

/// Rows per multi-row `INSERT` (17 columns at most: well under both databases' limits on
/// parameters per statement).
const ROWS_PER_INSERT: usize = 100;

/// The versions and the holders among the keys a batch asks about, followed by the keys
/// as `VALUES` and [`ASKED_SQL`]. The keys are a subquery, not a bare list: SQLite 3.40
/// (Debian 12's) answers `(entity, key) IN (VALUES …)` by scanning the table, every
/// version and key the ledger ever made for every 200 keys of a batch. The bundled SQLite
/// searches the primary key for either form; a test pins that it does.
pub(in crate::ledger) const VERSIONS_OF_SQL: &str = "SELECT DISTINCT entity, key FROM versions \
     WHERE (entity, key) IN (SELECT column1, column2 FROM (";
pub(in crate::ledger) const HOLDERS_OF_SQL: &str =
    "SELECT entity, key FROM keys WHERE (entity, key) IN (SELECT column1, column2 FROM (";
pub(in crate::ledger) const ASKED_SQL: &str = ") AS asked)";

/// `head VALUES (?1, …), (…) tail` for `rows` rows of `width` values each.
pub(in crate::ledger) fn values_sql(head: &str, width: usize, rows: usize, tail: &str) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * width * 6 + 16);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            let sep = if c == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}?{}", r * width + c + 1);
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// [`values_sql`] of a statement shape, made once per thread: formatting the numbers of
/// 1,700 placeholders for every hundred rows was a tenth of the committing thread's time.
fn values_sql_once(
    head: &'static str,
    width: usize,
    rows: usize,
    tail: &'static str,
) -> std::rc::Rc<str> {
    type Shapes = HashMap<(&'static str, &'static str, usize, usize), std::rc::Rc<str>>;
    thread_local!(static MADE: RefCell<Shapes> = RefCell::default());
    let shape = (head, tail, width, rows);
    MADE.with(|m| {
        m.borrow_mut()
            .entry(shape)
            .or_insert_with(|| values_sql(head, width, rows, tail).into())
            .clone()
    })
}

/// Notes a row to be written with the next hundred (its key `key_of` form, no longer
/// absent); `true` once the hundred is full.
pub(super) fn defer<T>(
    absent: &RefCell<HashSet<String>>,
    rows: &RefCell<Vec<T>>,
    key: &str,
    row: T,
) -> bool {
    absent.borrow_mut().remove(key);
    let mut rows = rows.borrow_mut();
    rows.push(row);
    rows.len() >= ROWS_PER_INSERT
}

/// Inserts `values` (rows of `width` values, in order) a hundred rows a statement.
pub(in crate::ledger) fn insert_many(
    tx: &Transaction,
    head: &'static str,
    tail: &'static str,
    width: usize,
    values: &[Value<'_>],
) -> Result<()> {
    for chunk in values.chunks(width * ROWS_PER_INSERT) {
        let sql = values_sql_once(head, width, chunk.len() / width, tail);
        tx.prepare_cached(&sql)?
            .execute(params_from_iter(chunk.iter().copied()))?;
    }
    Ok(())
}

impl BatchTx<'_> {
    /// Which of `keys` the table that `select_in` asks has no row for (`key_of` form),
    /// each key asked for once.
    pub(super) fn without_rows<'k>(
        &self,
        select_in: &'static str,
        keys: impl IntoIterator<Item = (&'k str, &'k str)>,
    ) -> Result<HashSet<String>> {
        let mut keys: Vec<(&str, &str)> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let mut absent: HashSet<String> = keys.iter().map(|(e, k)| key_of(e, k)).collect();
        for chunk in keys.chunks(ROWS_PER_INSERT * 2) {
            let sql = values_sql_once(select_in, 2, chunk.len(), ASKED_SQL);
            let args = chunk
                .iter()
                .flat_map(|(e, k)| [Value::Text(e), Value::Text(k)]);
            let mut st = self.tx.prepare_cached(&sql)?;
            let found = st.query_map(params_from_iter(args), |r| {
                Ok(key_of(&r.get::<_, String>(0)?, &r.get::<_, String>(1)?))
            })?;
            for k in found {
                absent.remove(&k?);
            }
        }
        Ok(absent)
    }
}
