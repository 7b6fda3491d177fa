//! The write transaction of one batch: duplicate checks, key claims, line and unit rows,
//! staged chunk names and the resume mark, committed together or not at all.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::db::{
    params, params_from_iter, OptionalExtension, Transaction, TransactionBehavior, Value,
};

use super::model::{ChunkRow, Counts, HashHex, LineRow, StoredHash, UnitRow};
use super::{Ledger, Result};
use crate::records::Current;

impl Ledger {
    /// Starts the write transaction of one batch of file `file_id`. `BEGIN IMMEDIATE` takes
    /// the write lock up front, so the duplicate checks and the key inserts see one
    /// consistent ledger even when two processes run at once. It is refused at once if
    /// another run took the file over (see leases.rs): before anything is checked or staged,
    /// so a fenced run never stages output the ledger's state no longer agrees with. No
    /// taking can happen while the transaction holds the lock.
    pub fn batch(&mut self, file_id: i64) -> Result<BatchTx<'_>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        super::leases::keep(&tx, &self.fences, &super::Leased::File(file_id))?;
        Ok(BatchTx {
            tx,
            routes: &self.routes,
            roots: &self.roots,
            absent: Default::default(),
            pending: Default::default(),
            unheld: Default::default(),
            held: Default::default(),
            taken: Default::default(),
            made: Default::default(),
            scratch: Default::default(),
        })
    }
}

/// The duplicate checks and writes of one batch, in one `BEGIN IMMEDIATE` transaction.
///
/// Rows go in a hundred a statement and the keys of a batch are looked up together, so a
/// batch costs a few round trips per hundred documents, not several per document (what
/// a PostgreSQL ledger across a network pays for each).
pub struct BatchTx<'a> {
    tx: Transaction<'a>,
    routes: &'a [(String, Vec<String>)],
    roots: &'a super::Roots,
    /// Keys (`entity\0key`) known to have no version: looked up together by
    /// [`BatchTx::prefetch_versions`], dropped when this batch adds one. The writer lock
    /// keeps any other writer from adding one meanwhile.
    absent: RefCell<HashSet<String>>,
    /// Versions added and not yet written (written before anything reads versions).
    pending: RefCell<Vec<OwnedVersion>>,
    /// Keys (`entity\0key`) known to have no holder, as `absent` is for versions.
    unheld: RefCell<HashSet<String>>,
    /// Holders found in this batch: a claim several units share (an interchange's) is
    /// looked up once. Nothing else can change a holder while the batch holds the lock.
    held: RefCell<HashMap<String, Rc<Holder>>>,
    /// Keys taken and not yet written, as (entity, key, file_id, unit_seq).
    taken: RefCell<Vec<(String, String, i64, i64)>>,
    /// The versions this batch made, written as one row on commit (see made.rs).
    made: RefCell<super::made::MadeList>,
    /// The buffer [`BatchTx::with_key`] writes a key into.
    scratch: RefCell<String>,
}

/// A version waiting to be written with the next hundred.
struct OwnedVersion {
    entity: &'static str,
    key: String,
    version: i64,
    hash: StoredHash,
    data: Option<String>,
    file_id: i64,
    unit_seq: i64,
    ordinal: i64,
}

/// Rows per multi-row `INSERT` (17 columns at most: well under both databases' limits on
/// parameters per statement).
const ROWS_PER_INSERT: usize = 100;

fn opt(t: Option<&str>) -> Value<'_> {
    t.map_or(Value::Null, Value::Text)
}

/// Whether a rejected unit's reasons are its rejected lines' rows (reasons.rs), `lines`
/// being the batch's line rows in ordinal order.
fn told_by_lines(u: &UnitRow, lines: &[LineRow]) -> bool {
    let from = lines.partition_point(|l| l.ordinal < u.first_ordinal);
    let to = lines.partition_point(|l| l.ordinal < u.first_ordinal + u.line_count);
    u.status == crate::format::UnitStatus::Rejected
        && super::reasons::told_by_rows(&u.reasons, lines[from..to.max(from)].iter())
}

/// `entity\0key`, the form keys take in a batch's sets; built by hand, as it runs several
/// times per record on the committing thread (5% of its time with `format!`, X12).
fn key_of(entity: &str, key: &str) -> String {
    let mut k = String::with_capacity(entity.len() + 1 + key.len());
    push_key(&mut k, entity, key);
    k
}

/// Appends the key's [`key_of`] form to `buf`: the one place that form is written.
fn push_key(buf: &mut String, entity: &str, key: &str) {
    buf.push_str(entity);
    buf.push('\0');
    buf.push_str(key);
}

/// The versions and the holders among the keys a batch asks about, followed by the keys
/// as `VALUES` and [`ASKED_SQL`]. The keys are a subquery, not a bare list: SQLite 3.40
/// (Debian 12's) answers `(entity, key) IN (VALUES …)` by scanning the table, every
/// version and key the ledger ever made for every 200 keys of a batch. The bundled SQLite
/// searches the primary key for either form; a test pins that it does.
pub(super) const VERSIONS_OF_SQL: &str = "SELECT DISTINCT entity, key FROM versions \
     WHERE (entity, key) IN (SELECT column1, column2 FROM (";
pub(super) const HOLDERS_OF_SQL: &str =
    "SELECT entity, key FROM keys WHERE (entity, key) IN (SELECT column1, column2 FROM (";
pub(super) const ASKED_SQL: &str = ") AS asked)";

/// `head VALUES (?1, …), (…) tail` for `rows` rows of `width` values each.
pub(super) fn values_sql(head: &str, width: usize, rows: usize, tail: &str) -> String {
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
fn defer<T>(absent: &RefCell<HashSet<String>>, rows: &RefCell<Vec<T>>, key: &str, row: T) -> bool {
    absent.borrow_mut().remove(key);
    let mut rows = rows.borrow_mut();
    rows.push(row);
    rows.len() >= ROWS_PER_INSERT
}

/// Inserts `values` (rows of `width` values, in order) a hundred rows a statement.
pub(super) fn insert_many(
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

/// Where a file's chunks stand after a batch: `next` is the next chunk's number, and every
/// chunk numbered below `synced` is known to be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMarks {
    pub next: i64,
    pub synced: i64,
}

/// A record version to store with its batch.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// An entity's name ([`crate::canonical::Entity::as_str`]): kept as it is until the
    /// version is written, not copied.
    pub entity: &'static str,
    pub key: &'a str,
    pub version: i64,
    pub hash: &'a str,
    /// The record's data as JSON, kept when a target is sent it (the outbox has it
    /// otherwise, and the input can make it again).
    pub data: Option<&'a str>,
    pub file_id: i64,
    pub unit_seq: i64,
    /// Its place among the unit's records.
    pub ordinal: i64,
}

/// Who already holds a key.
#[derive(Debug, Clone)]
pub struct Holder {
    pub file_id: i64,
    pub fingerprint: String,
    pub name: String,
    pub unit_seq: i64,
    /// Its file is not decided yet (still read, or held for a person): it may still be
    /// rejected whole, and then it never held the key.
    pub pending: bool,
}

impl BatchTx<'_> {
    /// Whether a version of `entity` must keep its data: a remote target is sent it from
    /// the ledger. Other versions are in the outbox, and their input can make them again.
    pub fn keeps_data(&self, entity: &str) -> bool {
        self.routes
            .iter()
            .any(|(_, entities)| entities.iter().any(|e| e == entity))
    }

    /// Runs `f` on the key's `entity\0key` form written into a buffer the batch reuses: a
    /// lookup needs it only while it asks (a string of its own for each was four
    /// allocations per record on the committing thread). `f` must not call it again.
    fn with_key<R>(&self, entity: &str, key: &str, f: impl FnOnce(&str) -> R) -> R {
        let mut k = self.scratch.borrow_mut();
        k.clear();
        push_key(&mut k, entity, key);
        f(&k)
    }

    /// Who holds the key, shared: a claim every set of an interchange asks about is
    /// answered from the batch's cache without copying its holder's names.
    pub fn holder(&self, entity: &str, key: &str) -> Result<Option<Rc<Holder>>> {
        let known = self.with_key(entity, key, |k| match self.unheld.borrow().contains(k) {
            true => Some(None),
            false => self.held.borrow().get(k).map(|h| Some(h.clone())),
        });
        if let Some(known) = known {
            return Ok(known);
        }
        self.flush_keys()?;
        // Cached: this runs once per document, so re-parsing the SQL would dominate.
        let mut st = self.tx.prepare_cached(
            "SELECT k.file_id, f.fingerprint, f.name, k.unit_seq, f.state IN ('reading', 'held') \
             FROM keys k JOIN files f ON f.id = k.file_id WHERE k.entity=?1 AND k.key=?2",
        )?;
        let found = st
            .query_row(params![entity, key], |r| {
                Ok(Holder {
                    file_id: r.get(0)?,
                    fingerprint: r.get(1)?,
                    name: r.get(2)?,
                    unit_seq: r.get(3)?,
                    pending: r.get(4)?,
                })
            })
            .optional()?
            .map(Rc::new);
        if let Some(h) = &found {
            self.held
                .borrow_mut()
                .insert(key_of(entity, key), h.clone());
        }
        Ok(found)
    }

    /// The key's current (highest) version, with the file that set it.
    pub fn current_version(&self, entity: &str, key: &str) -> Result<Option<Current>> {
        if self.with_key(entity, key, |k| self.absent.borrow().contains(k)) {
            return Ok(None);
        }
        self.flush_versions()?;
        let mut st = self.tx.prepare_cached(
            "SELECT v.version, v.hash, v.data, v.file_id, f.fingerprint, f.name, v.unit_seq, \
             f.state IN ('reading', 'held') \
             FROM versions v JOIN files f ON f.id = v.file_id \
             WHERE v.entity=?1 AND v.key=?2 ORDER BY v.version DESC LIMIT 1",
        )?;
        let row = st
            .query_row(params![entity, key], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, HashHex>(1)?.0,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, bool>(7)?,
                ))
            })
            .optional()?;
        let Some((version, hash, data, file_id, fingerprint, file_name, unit_seq, pending)) = row
        else {
            return Ok(None);
        };
        Ok(Some(Current {
            version,
            hash,
            data: data.map(|d| serde_json::from_str(&d)).transpose()?,
            file_id,
            fingerprint,
            file_name,
            unit_seq,
            line: 0,
            pending,
        }))
    }

    /// The first line of a file's unit (0 if the ledger has no such unit): asked apart
    /// from [`BatchTx::current_version`] because only a conflict's message needs it, and
    /// an applied unit's is in a packed run.
    pub fn unit_line(&self, file_id: i64, seq: i64) -> Result<i64> {
        Ok(super::runs::unit_at(&self.tx, file_id, seq)?.map_or(0, |u| u.first.0))
    }

    /// Looks up which of `keys` (entity, key) have a version, a few hundred a statement, so
    /// that [`BatchTx::current_version`] need not ask for each key that has none.
    pub fn prefetch_versions<'k>(
        &self,
        keys: impl IntoIterator<Item = (&'k str, &'k str)>,
    ) -> Result<()> {
        self.flush_versions()?;
        *self.absent.borrow_mut() = self.without_rows(VERSIONS_OF_SQL, keys)?;
        Ok(())
    }

    /// Looks up which of `keys` (entity, key) have a holder, as
    /// [`BatchTx::prefetch_versions`] does for versions.
    pub fn prefetch_holders<'k>(
        &self,
        keys: impl IntoIterator<Item = (&'k str, &'k str)>,
    ) -> Result<()> {
        self.flush_keys()?;
        *self.unheld.borrow_mut() = self.without_rows(HOLDERS_OF_SQL, keys)?;
        Ok(())
    }

    /// Which of `keys` the table that `select_in` asks has no row for (`key_of` form),
    /// each key asked for once.
    fn without_rows<'k>(
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

    pub fn add_version(&self, v: &NewVersion) -> Result<()> {
        let row = OwnedVersion {
            entity: v.entity,
            key: v.key.to_owned(),
            version: v.version,
            hash: StoredHash::of(v.hash),
            data: v.data.map(str::to_owned),
            file_id: v.file_id,
            unit_seq: v.unit_seq,
            ordinal: v.ordinal,
        };
        let full = self.with_key(v.entity, v.key, |k| {
            defer(&self.absent, &self.pending, k, row)
        });
        if full {
            self.flush_versions()?;
        }
        Ok(())
    }

    /// Writes the versions added since the last write.
    fn flush_versions(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        if pending.is_empty() {
            return Ok(());
        }
        let mut made = self.made.borrow_mut();
        for v in &pending {
            made.push(
                v.file_id, v.entity, &v.key, v.version, v.unit_seq, v.ordinal,
            );
        }
        drop(made);
        let values: Vec<Value<'_>> = pending
            .iter()
            .flat_map(|v| {
                [
                    Value::Text(v.entity),
                    Value::Text(&v.key),
                    Value::Int(v.version),
                    v.hash.value(),
                    v.data.as_deref().map_or(Value::Null, Value::Text),
                    Value::Int(v.file_id),
                    Value::Int(v.unit_seq),
                    Value::Int(v.ordinal),
                ]
            })
            .collect();
        insert_many(
            &self.tx,
            "INSERT INTO versions(entity, key, version, hash, data, file_id, unit_seq, ordinal)",
            "ON CONFLICT (entity, key, version) DO UPDATE SET hash=excluded.hash, data=excluded.data, \
             file_id=excluded.file_id, unit_seq=excluded.unit_seq, ordinal=excluded.ordinal",
            8,
            &values,
        )
    }

    /// Takes a key for a unit (replacing an earlier holder only when `steal` — a forced
    /// re-apply of the same content).
    pub fn take_key(
        &self,
        entity: &str,
        key: &str,
        file_id: i64,
        unit_seq: i64,
        steal: bool,
    ) -> Result<()> {
        if !steal {
            // A key found held stays its holder's (`INSERT OR IGNORE`): every set of an
            // interchange takes the interchange's claim, and writing it again for each was
            // a row per set for SQLite to refuse.
            let full = self.with_key(entity, key, |k| {
                if self.held.borrow().contains_key(k) {
                    return false;
                }
                let row = (entity.to_owned(), key.to_owned(), file_id, unit_seq);
                defer(&self.unheld, &self.taken, k, row)
            });
            if full {
                self.flush_keys()?;
            }
            return Ok(());
        }
        self.flush_keys()?;
        self.with_key(entity, key, |k| {
            self.held.borrow_mut().remove(k);
            self.unheld.borrow_mut().remove(k);
        });
        self.tx
            .prepare_cached(
                "INSERT INTO keys(entity, key, file_id, unit_seq) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (entity, key) DO UPDATE SET file_id=excluded.file_id, unit_seq=excluded.unit_seq",
            )?
            .execute(params![entity, key, file_id, unit_seq])?;
        Ok(())
    }

    /// Writes the keys taken since the last write (a key already held stays its holder's).
    fn flush_keys(&self) -> Result<()> {
        let taken = std::mem::take(&mut *self.taken.borrow_mut());
        let values: Vec<Value<'_>> = taken
            .iter()
            .flat_map(|(e, k, f, u)| {
                [
                    Value::Text(e),
                    Value::Text(k),
                    Value::Int(*f),
                    Value::Int(*u),
                ]
            })
            .collect();
        insert_many(
            &self.tx,
            "INSERT OR IGNORE INTO keys(entity, key, file_id, unit_seq)",
            "",
            4,
            &values,
        )
    }

    pub fn write_lines(&self, file_id: i64, lines: &[LineRow]) -> Result<()> {
        let values: Vec<Value<'_>> = lines
            .iter()
            .flat_map(|l| {
                let r = l.reason.as_ref();
                [
                    Value::Int(file_id),
                    Value::Int(l.ordinal),
                    Value::Int(l.unit_seq),
                    Value::Int(l.pos.line as i64),
                    Value::Int(l.pos.byte as i64),
                    Value::Int(l.pos.record as i64),
                    opt(l.pos.locator.as_deref()),
                    Value::Text(l.status),
                    opt(l.key.as_deref()),
                    opt(r.map(|r| r.rule.as_str())),
                    opt(r.and_then(|r| r.field.as_deref())),
                    opt(r.and_then(|r| r.value.as_deref())),
                    opt(r.map(|r| r.message.as_str())),
                    opt(l.raw.as_deref()),
                ]
            })
            .collect();
        insert_many(
            &self.tx,
            "INSERT INTO lines(file_id, ordinal, unit_seq, line, byte, record, locator, status, key, rule, field, \
             value, message, raw)",
            "ON CONFLICT (file_id, ordinal) DO UPDATE SET unit_seq=excluded.unit_seq, line=excluded.line, \
             byte=excluded.byte, record=excluded.record, locator=excluded.locator, status=excluded.status, \
             key=excluded.key, rule=excluded.rule, field=excluded.field, value=excluded.value, \
             message=excluded.message, raw=excluded.raw",
            14,
            &values,
        )
    }

    /// Writes a batch's units: applied ones with nothing of their own to say as one packed
    /// run (see runs.rs `packable`), the rest as rows. `lines` are the batch's line rows.
    pub fn write_units(&self, file_id: i64, units: &[UnitRow], lines: &[LineRow]) -> Result<()> {
        // Each unit's line rows: how many, and whether all are skipped.
        let mut line_rows: HashMap<i64, (i64, bool)> = HashMap::new();
        for l in lines {
            let e = line_rows.entry(l.unit_seq).or_insert((0, true));
            *e = (e.0 + 1, e.1 && l.status == "skipped");
        }
        let mut packed = Vec::with_capacity(units.len());
        let mut rows = Vec::new();
        for u in units {
            let lr = line_rows.get(&u.seq).copied();
            match super::runs::packable(u, lr) {
                true => packed.push((u, lr.map_or(0, |(n, _)| n))),
                false => rows.push(u),
            }
        }
        super::runs::write_run(&self.tx, file_id, &packed)?;
        self.write_unit_rows(file_id, &rows, lines)
    }

    fn write_unit_rows(&self, file_id: i64, units: &[&UnitRow], lines: &[LineRow]) -> Result<()> {
        // The text each row binds, made first: the values borrow it.
        let mut texts = Vec::with_capacity(units.len());
        for u in units {
            let reasons = match u.reasons.is_empty() {
                true => None,
                false if told_by_lines(u, lines) => Some(super::reasons::FROM_LINES.to_owned()),
                false => Some(serde_json::to_string(&u.reasons)?),
            };
            let detail = match u.detail.is_null() {
                true => None,
                false => Some(serde_json::to_string(&u.detail)?),
            };
            let tolerated = (!u.tolerated.is_empty()).then(|| u.tolerated.join(","));
            texts.push((reasons, detail, tolerated));
        }
        let values: Vec<Value<'_>> = units
            .iter()
            .zip(&texts)
            .flat_map(|(u, (reasons, detail, tolerated))| {
                let headline = u.reasons.first().map(|(_, r)| r);
                [
                    Value::Int(file_id),
                    Value::Int(u.seq),
                    Value::Text(&u.label),
                    Value::Text(u.status.as_str()),
                    u.key.as_deref().map_or(Value::Null, Value::Text),
                    Value::Int(u.first_ordinal),
                    Value::Int(u.line_count),
                    opt(reasons.as_deref()),
                    opt(detail.as_deref()),
                    opt(tolerated.as_deref()),
                    Value::Int(u.pos.line as i64),
                    Value::Int(u.pos.byte as i64),
                    Value::Int(u.pos.record as i64),
                    u.pos.locator.as_deref().map_or(Value::Null, Value::Text),
                    headline.map_or(Value::Null, |r| Value::Text(r.rule.as_str())),
                    headline.map_or(Value::Null, |r| Value::Text(r.message.as_str())),
                    u.spans.as_deref().map_or(Value::Null, Value::Blob),
                ]
            })
            .collect();
        insert_many(
            &self.tx,
            "INSERT INTO units(file_id, seq, label, status, key, first_ordinal, line_count, reasons, detail, tolerated, \
             line, byte, record, locator, rule, message, spans)",
            "ON CONFLICT (file_id, seq) DO UPDATE SET label=excluded.label, status=excluded.status, key=excluded.key, \
             first_ordinal=excluded.first_ordinal, line_count=excluded.line_count, reasons=excluded.reasons, \
             detail=excluded.detail, tolerated=excluded.tolerated, line=excluded.line, byte=excluded.byte, \
             record=excluded.record, locator=excluded.locator, rule=excluded.rule, message=excluded.message, \
             spans=excluded.spans",
            17,
            &values,
        )
    }

    pub fn write_chunks(&self, file_id: i64, chunks: &[ChunkRow]) -> Result<()> {
        let mut st = self.tx.prepare_cached(
            "INSERT INTO chunks(file_id, chunk, entity, staged_path, outbox_path, records, first_seq, end_seq, bytes, crc) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (file_id, chunk, entity) DO UPDATE SET \
             staged_path=excluded.staged_path, outbox_path=excluded.outbox_path, records=excluded.records, first_seq=excluded.first_seq, end_seq=excluded.end_seq, \
             bytes=excluded.bytes, crc=excluded.crc",
        )?;
        for c in chunks {
            st.execute(params![
                file_id,
                c.chunk,
                c.entity,
                self.roots.store(&c.staged_path),
                self.roots.store(&c.outbox_path),
                c.records,
                c.units.map(|u| u.0),
                c.units.map(|u| u.1),
                c.check.map(|k| k.bytes as i64),
                c.check.map(|k| i64::from(k.crc))
            ])?;
        }
        Ok(())
    }

    /// Advances the file's resume mark and counters. The next unit read is new material at
    /// the new mark (see [`Ledger::arm`]). `chunks` is the next chunk's number and the
    /// number below which every chunk is known synced.
    pub fn advance(
        &self,
        file_id: i64,
        committed_seq: i64,
        committed_lines: i64,
        chunks: ChunkMarks,
        n: &Counts,
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE files SET committed_seq=?2, committed_lines=?3, next_chunk=?4, synced_chunk=?16, inflight_seq=?2, waiting_on=NULL, \
             lines_applied=lines_applied+?5, lines_rejected=lines_rejected+?6, lines_duplicate=lines_duplicate+?7, \
             lines_skipped=lines_skipped+?8, lines_unmapped=lines_unmapped+?9, \
             units_applied=units_applied+?10, units_rejected=units_rejected+?11, units_duplicate=units_duplicate+?12, \
             units_unmapped=units_unmapped+?13, lines_unchanged=lines_unchanged+?14, units_unchanged=units_unchanged+?15 \
             WHERE id=?1",
            params![
                file_id,
                committed_seq,
                committed_lines,
                chunks.next,
                n.lines_applied,
                n.lines_rejected,
                n.lines_duplicate,
                n.lines_skipped,
                n.lines_unmapped,
                n.units_applied,
                n.units_rejected,
                n.units_duplicate,
                n.units_unmapped,
                n.lines_unchanged,
                n.units_unchanged,
                chunks.synced
            ],
        )?;
        // The run committing is seen working (the lease age `status` shows).
        self.tx
            .prepare_cached(
                "UPDATE runs SET seen_at=?2 WHERE id=(SELECT run_id FROM files WHERE id=?1)",
            )?
            .execute(params![file_id, super::now()])?;
        Ok(())
    }

    /// Moves the file's restart point for its reader, in the transaction of the batch it
    /// follows (see [`crate::format::Mark`]).
    pub fn set_mark(&self, file_id: i64, mark: &crate::format::Mark) -> Result<()> {
        let text = serde_json::to_string(mark).unwrap_or_default();
        self.tx.execute(
            "UPDATE files SET resume_mark=?2 WHERE id=?1",
            params![file_id, text],
        )?;
        Ok(())
    }

    /// Records that a unit asks for its file to be held for a person before the decision
    /// (the first reason is kept).
    pub fn request_hold(&self, file_id: i64, reason: &str) -> Result<()> {
        self.tx.execute(
            "UPDATE files SET hold_reason=COALESCE(hold_reason, ?2) WHERE id=?1",
            params![file_id, reason],
        )?;
        Ok(())
    }

    pub fn commit(self) -> Result<()> {
        self.flush_versions()?;
        self.flush_keys()?;
        self.made.take().write(&self.tx)?;
        self.tx.commit()?;
        Ok(())
    }
}
