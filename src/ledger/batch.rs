//! The write transaction of one batch: duplicate checks, key claims, line and unit rows,
//! staged chunk names and the resume mark, committed together or not at all.
//!
//! Its parts are children so they share the transaction's private state: the record
//! versions a batch adds (versions.rs), the key claims it takes (keys.rs), its unit and
//! line rows (units.rs), and the many-rows-a-statement helpers they all write and look
//! up through (rows.rs).

mod keys;
mod rows;
mod units;
mod versions;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::db::{params, Transaction, TransactionBehavior};

use super::model::{ChunkRow, Counts};
use super::{Ledger, Result};

pub use keys::Holder;
pub(super) use rows::insert_many;
#[cfg(test)]
pub(super) use rows::{values_sql, ASKED_SQL, HOLDERS_OF_SQL, VERSIONS_OF_SQL};
pub use versions::NewVersion;
use versions::OwnedVersion;

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

/// Where a file's chunks stand after a batch: `next` is the next chunk's number, and every
/// chunk numbered below `synced` is known to be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMarks {
    pub next: i64,
    pub synced: i64,
}

impl BatchTx<'_> {
    /// Runs `f` on the key's `entity\0key` form written into a buffer the batch reuses: a
    /// lookup needs it only while it asks (a string of its own for each was four
    /// allocations per record on the committing thread). `f` must not call it again.
    fn with_key<R>(&self, entity: &str, key: &str, f: impl FnOnce(&str) -> R) -> R {
        let mut k = self.scratch.borrow_mut();
        k.clear();
        push_key(&mut k, entity, key);
        f(&k)
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
