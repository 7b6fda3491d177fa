//! Applied documents kept as one packed row per batch instead of a row each.
//!
//! Nearly every document of a day's files ends applied with nothing to say about it: no
//! reason, no tolerance, no line with a row of its own but skipped ones (an IDoc's control
//! record). Its row in `units` (label, key, first line's position and locator, spans) was
//! still two thirds of the ledger, one B-tree entry each, and a third of the committing
//! thread's instructions. Such units of a batch are written as one `unit_runs` row: their
//! fields as varints and length-prefixed texts, each number the difference from the unit
//! before, deflated (the labels, keys and locators of one batch differ in a few digits).
//! Every other unit keeps its row in `units`.
//!
//! Readers ask through [`units_between`], [`unit_at`] and [`UnitReader`], which merge both
//! in seq order (a unit with a row wins over a packed copy of itself, should both exist).
//! Statements that change units in place (a file rejected whole after its batches were
//! committed) first [`unpack`] the runs they touch back into rows, so they work on `units`
//! alone.

use std::io::{Read, Write};

use flate2::write::DeflateEncoder;

use super::db::{params, Connection, OptionalExtension, Transaction, Value};
use super::model::UnitRow;
use super::spans::{put, put_unsigned, take, take_unsigned};
use super::{LedgerError, Result};

/// A unit as the ledger keeps it, from its row or from a run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StoredUnit {
    pub seq: i64,
    pub label: String,
    pub status: String,
    pub key: Option<String>,
    pub first_ordinal: i64,
    pub line_count: i64,
    /// Its first line's `(line, byte, record)`.
    pub first: (i64, i64, i64),
    pub locator: Option<String>,
    pub spans: Option<Vec<u8>>,
    /// The headline reason's rule and message.
    pub rule: Option<String>,
    pub message: Option<String>,
    /// Every reason and the detail, as JSON.
    pub reasons: Option<String>,
    pub detail: Option<String>,
}

impl StoredUnit {
    fn packed(p: Packed) -> StoredUnit {
        StoredUnit {
            seq: p.seq,
            label: p.label,
            status: "applied".into(),
            key: p.key,
            first_ordinal: p.first_ordinal,
            line_count: p.line_count,
            first: p.first,
            locator: p.locator,
            spans: p.spans,
            rule: None,
            message: None,
            reasons: None,
            detail: p.detail,
        }
    }
}

/// Whether a unit goes into its batch's run: applied, with no reason or tolerance of its
/// own, and no line with a row but skipped ones (`line_rows`: how many, and whether all
/// are skipped). An IDoc's control record is such a line; its detail (the control
/// record's fields, for the acknowledgement) is packed with it.
pub(super) fn packable(u: &UnitRow, line_rows: Option<(i64, bool)>) -> bool {
    u.status == crate::format::UnitStatus::Applied
        && u.reasons.is_empty()
        && u.tolerated.is_empty()
        && line_rows.is_none_or(|(_, skipped)| skipped)
}

/// Writes `units` (in seq order, all [`packable`], each with how many of its lines have
/// rows) as one run.
pub(super) fn write_run(tx: &Transaction, file_id: i64, units: &[(&UnitRow, i64)]) -> Result<()> {
    let (Some((first, _)), Some((last, _))) = (units.first(), units.last()) else {
        return Ok(());
    };
    let lines: i64 = units.iter().map(|(u, _)| u.line_count).sum();
    let row_lines: i64 = units.iter().map(|(_, rows)| rows).sum();
    let details = units.iter().filter(|(u, _)| !u.detail.is_null()).count() as i64;
    let packed = pack(units.iter().map(|(u, _)| *u))?;
    tx.prepare_cached(
        "INSERT INTO unit_runs(file_id, first_seq, end_seq, first_ordinal, end_ordinal, units, lines, row_lines, packed, details) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        file_id,
        first.seq,
        last.seq + 1,
        first.first_ordinal,
        last.first_ordinal + last.line_count,
        units.len() as i64,
        lines,
        row_lines,
        packed,
        details
    ])?;
    Ok(())
}

/// The units of a file with `from <= seq < to`, in seq order, at most `limit`.
pub(super) fn units_between(
    conn: &Connection,
    file_id: i64,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<StoredUnit>> {
    units_decoded(conn, file_id, from, to, limit, Decode::Whole, None)
}

/// What of a packed unit is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decode {
    Whole,
    /// Its numbers (seq, first ordinal, line count, first line's place) and detail: what
    /// its outcome needs (status and reasons are those of every packed unit), and where it
    /// starts. Its label is left empty, and its key, locator and spans out: an
    /// acknowledgement asks the outcome of every unit of a file, and decoding them whole,
    /// the 997 of a 100,000-set interchange made 400,000 texts it never read.
    Outcome,
}

/// The outcomes of a window of units, for acknowledgements (see [`outcomes_between`]).
pub(super) struct Outcomes {
    /// The units with a row, and those of runs that had to be inflated (decoded as
    /// [`Decode::Outcome`] says), in seq order.
    pub units: Vec<StoredUnit>,
    /// The seqs, in order, of the units a run without details tells are applied with
    /// nothing to say (see [`applied_seqs`]).
    pub applied: Vec<i64>,
}

/// The outcomes of units `from <= seq < to` of a file: a 997 asks the outcome of every
/// set, and inflating and decoding every run, then making a unit of each set, was most of
/// writing it. A run none of whose units has a detail (`details` 0) is not inflated: its
/// units are applied, with nothing to say, and only their seqs are given.
pub(super) fn outcomes_between(
    conn: &Connection,
    file_id: i64,
    from: i64,
    to: i64,
) -> Result<Outcomes> {
    let mut applied = Vec::new();
    let units = units_decoded(
        conn,
        file_id,
        from,
        to,
        usize::MAX,
        Decode::Outcome,
        Some(&mut applied),
    )?;
    Ok(Outcomes { units, applied })
}

/// Where a window of units starting before `seq` had best end: the end of the run that
/// holds `seq`, so the window inflates each run it reads once, not again for the next
/// window; `seq` itself when no run holds it.
pub(super) fn window_end(conn: &Connection, file_id: i64, seq: i64) -> Result<i64> {
    let end: Option<i64> = conn
        .prepare_cached(
            "SELECT end_seq FROM unit_runs WHERE file_id=?1 AND first_seq <= ?2 \
             ORDER BY first_seq DESC LIMIT 1",
        )?
        .query_row(params![file_id, seq], |r| r.get(0))
        .optional()?;
    Ok(end.filter(|&e| e > seq).unwrap_or(seq))
}

fn units_decoded(
    conn: &Connection,
    file_id: i64,
    from: i64,
    to: i64,
    limit: usize,
    decode: Decode,
    mut applied: Option<&mut Vec<i64>>,
) -> Result<Vec<StoredUnit>> {
    let rows = row_units(conn, file_id, from, to, limit)?;
    let mut packed = Vec::new();
    let mut st = conn.prepare_cached(
        &format!("SELECT first_seq, end_seq, packed, units, details FROM unit_runs WHERE file_id=?1 AND {FROM_RUN} AND end_seq > ?2 AND first_seq < ?3 ORDER BY first_seq"),
    )?;
    // Every row of the window is at hand only when no limit cut them.
    let whole = limit == usize::MAX;
    let mut q = st.query(params![file_id, from, to])?;
    while let Some(r) = q.next()? {
        let (first, end): (i64, i64) = (r.get(0)?, r.get(1)?);
        if let Some(applied) = applied.as_deref_mut().filter(|_| whole) {
            let (units, details) = (r.get(3)?, r.get(4)?);
            if let Some(seqs) = applied_seqs(&rows, first..end, from..to, units, details) {
                applied.extend(seqs);
                continue;
            }
        }
        let blob: Vec<u8> = r.get(2)?;
        let run = RunIndex::new(file_id, first, end, &blob)?;
        run.between(
            from,
            to,
            limit - packed.len().min(limit),
            decode,
            &mut packed,
        )?;
        if packed.len() >= limit {
            break;
        }
    }
    Ok(merge(rows, packed, limit))
}

/// The seqs of a run's units (`count` of them in `run`), when none of them has a detail
/// (`details` 0) and the window asked (`window`, whose unit rows are `rows`) holds the
/// whole run: a run's units are the seqs of its range that have no row (its batch wrote
/// every unit one way or the other). `None` when that cannot be told (units with a detail,
/// a run written before `details` was kept, a run reaching out of the window, a count that
/// does not add up): the run is inflated instead.
fn applied_seqs<'r>(
    rows: &'r [StoredUnit],
    run: std::ops::Range<i64>,
    window: std::ops::Range<i64>,
    count: i64,
    details: Option<i64>,
) -> Option<impl Iterator<Item = i64> + 'r> {
    if details != Some(0) || run.start < window.start || run.end > window.end {
        return None;
    }
    let from = rows.partition_point(|u| u.seq < run.start);
    let to = rows.partition_point(|u| u.seq < run.end);
    let with_rows = &rows[from..to.max(from)];
    if run.end - run.start - with_rows.len() as i64 != count {
        return None;
    }
    let mut next_row = with_rows.iter().map(|u| u.seq).peekable();
    Some(run.filter(move |&seq| match next_row.peek() {
        Some(&r) if r == seq => {
            next_row.next();
            false
        }
        _ => true,
    }))
}

/// The unit `seq` of a file, if the ledger has it.
pub(super) fn unit_at(conn: &Connection, file_id: i64, seq: i64) -> Result<Option<StoredUnit>> {
    UnitReader::new(conn).get(file_id, seq)
}

/// Looks up single units, keeping the last run it inflated (a [`RunIndex`]): asked in file
/// order (a page of dead letters, a chunk's records), each run is inflated once, not once a
/// unit, and only the units asked are decoded.
pub(super) struct UnitReader<'c> {
    conn: &'c Connection,
    /// The run looked at last.
    run: Option<RunIndex>,
}

impl<'c> UnitReader<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        UnitReader { conn, run: None }
    }

    pub fn get(&mut self, file_id: i64, seq: i64) -> Result<Option<StoredUnit>> {
        if let Some(u) = row_units(self.conn, file_id, seq, seq + 1, 1)?.pop() {
            return Ok(Some(u));
        }
        self.get_packed(file_id, seq, Decode::Whole)
    }

    /// The packed copy of unit `seq`, if a run holds one, decoded as `decode` says: for a
    /// caller that knows the unit has no row.
    pub fn get_packed(
        &mut self,
        file_id: i64,
        seq: i64,
        decode: Decode,
    ) -> Result<Option<StoredUnit>> {
        if !self.run.as_ref().is_some_and(|r| r.holds(file_id, seq)) {
            self.run = None;
            let mut st = self.conn.prepare_cached(
                "SELECT first_seq, end_seq, packed FROM unit_runs WHERE file_id=?1 AND first_seq <= ?2 \
                 ORDER BY first_seq DESC LIMIT 1",
            )?;
            let mut q = st.query(params![file_id, seq])?;
            if let Some(r) = q.next()? {
                let blob: Vec<u8> = r.get(2)?;
                self.run = Some(RunIndex::new(file_id, r.get(0)?, r.get(1)?, &blob)?);
            }
        }
        match &self.run {
            Some(run) if run.holds(file_id, seq) => run.get(seq, decode),
            _ => Ok(None),
        }
    }
}

/// Runs from the one that holds seq `?2` on (or, if none does, from `?2` on): a seek in
/// the primary key, where `end_seq > ?2` alone walks every earlier run of the file.
const FROM_RUN: &str = "first_seq >= COALESCE((SELECT MAX(r.first_seq) FROM unit_runs r \
     WHERE r.file_id = ?1 AND r.first_seq <= ?2), ?2)";

/// The highest seq of a file's units (`None` when it has none).
pub(super) fn max_seq(conn: &Connection, file_id: i64) -> Result<Option<i64>> {
    let row: Option<i64> = conn.query_row(
        "SELECT MAX(seq) FROM units WHERE file_id=?1",
        params![file_id],
        |r| r.get(0),
    )?;
    let run: Option<i64> = conn
        .prepare_cached(
            "SELECT end_seq - 1 FROM unit_runs WHERE file_id=?1 ORDER BY first_seq DESC LIMIT 1",
        )?
        .query_row(params![file_id], |r| r.get(0))
        .optional()?;
    Ok(row.max(run))
}

/// Turns the runs of a file that hold a unit with `from <= seq < to` back into rows of
/// `units` (all their units, not only those in range), so statements on `units` see them.
pub(super) fn unpack(tx: &Transaction, file_id: i64, from: i64, to: i64) -> Result<()> {
    loop {
        // A run at a time: a file rejected whole may have millions of units.
        let run: Option<(i64, Vec<u8>)> = {
            let mut st = tx.prepare_cached(
                &format!("SELECT first_seq, packed FROM unit_runs WHERE file_id=?1 AND {FROM_RUN} AND end_seq > ?2 \
                 AND first_seq < ?3 ORDER BY first_seq LIMIT 1"),
            )?;
            let mut q = st.query(params![file_id, from, to])?;
            match q.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?)),
                None => None,
            }
        };
        let Some((first_seq, blob)) = run else {
            return Ok(());
        };
        let units = unpack_blob(&blob)?;
        let values: Vec<Value<'_>> = units
            .iter()
            .flat_map(|u| {
                [
                    Value::Int(file_id),
                    Value::Int(u.seq),
                    Value::Text(&u.label),
                    Value::Text("applied"),
                    u.key.as_deref().map_or(Value::Null, Value::Text),
                    Value::Int(u.first_ordinal),
                    Value::Int(u.line_count),
                    Value::Int(u.first.0),
                    Value::Int(u.first.1),
                    Value::Int(u.first.2),
                    u.locator.as_deref().map_or(Value::Null, Value::Text),
                    u.spans.as_deref().map_or(Value::Null, Value::Blob),
                    u.detail.as_deref().map_or(Value::Null, Value::Text),
                ]
            })
            .collect();
        super::batch::insert_many(
            tx,
            "INSERT OR IGNORE INTO units(file_id, seq, label, status, key, first_ordinal, line_count, \
             line, byte, record, locator, spans, detail)",
            "",
            13,
            &values,
        )?;
        tx.execute(
            "DELETE FROM unit_runs WHERE file_id=?1 AND first_seq=?2",
            params![file_id, first_seq],
        )?;
    }
}

/// A file's units with a row of their own, `from <= seq < to`, at most `limit`.
fn row_units(
    conn: &Connection,
    file_id: i64,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<StoredUnit>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {UNIT_COLS} FROM units WHERE file_id=?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq LIMIT ?4"
    ))?;
    let limit = limit.min(i64::MAX as usize) as i64;
    let rows = st
        .query_map(params![file_id, from, to, limit], stored_unit)?
        .collect::<super::db::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The columns of `units` [`stored_unit`] reads, in its order.
pub(super) const UNIT_COLS: &str =
    "seq, label, status, key, first_ordinal, line_count, line, byte, \
     record, locator, spans, rule, message, reasons, detail";

/// A `units` row selected as [`UNIT_COLS`].
pub(super) fn stored_unit(r: &super::db::Row<'_>) -> super::db::Result<StoredUnit> {
    Ok(StoredUnit {
        seq: r.get(0)?,
        label: r.get(1)?,
        status: r.get(2)?,
        key: r.get(3)?,
        first_ordinal: r.get(4)?,
        line_count: r.get(5)?,
        first: (r.get(6)?, r.get(7)?, r.get(8)?),
        locator: r.get(9)?,
        spans: r.get(10)?,
        rule: r.get(11)?,
        message: r.get(12)?,
        reasons: r.get(13)?,
        detail: r.get(14)?,
    })
}

/// Both lists (each in seq order) as one, in seq order, at most `limit`; a seq in both
/// comes from `rows`.
fn merge(rows: Vec<StoredUnit>, packed: Vec<StoredUnit>, limit: usize) -> Vec<StoredUnit> {
    let mut out = Vec::with_capacity((rows.len() + packed.len()).min(limit));
    let mut a = rows.into_iter().peekable();
    let mut b = packed.into_iter().peekable();
    while out.len() < limit {
        let take_row = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.seq <= y.seq,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let u = if take_row { a.next() } else { b.next() };
        let Some(u) = u else { break };
        if take_row && b.peek().is_some_and(|y| y.seq == u.seq) {
            b.next();
        }
        out.push(u);
    }
    out
}

/// One unit of a run.
struct Packed {
    seq: i64,
    label: String,
    key: Option<String>,
    first_ordinal: i64,
    line_count: i64,
    first: (i64, i64, i64),
    locator: Option<String>,
    spans: Option<Vec<u8>>,
    detail: Option<String>,
}

/// Starts every run's bytes, so another layout can follow.
const LAYOUT: u8 = 1;

fn pack<'u>(units: impl ExactSizeIterator<Item = &'u UnitRow>) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(64 * units.len());
    raw.push(LAYOUT);
    put_unsigned(&mut raw, units.len() as u64);
    let mut steps = Steps::default();
    for u in units {
        let pos = (u.pos.line as i64, u.pos.byte as i64, u.pos.record as i64);
        put_steps(
            &mut raw,
            &mut steps,
            u.seq,
            u.first_ordinal,
            u.line_count,
            pos,
        );
        put_bytes(&mut raw, Some(u.label.as_bytes()));
        put_bytes(&mut raw, u.key.as_deref().map(str::as_bytes));
        put_bytes(&mut raw, u.pos.locator.as_deref().map(str::as_bytes));
        put_bytes(&mut raw, u.spans.as_deref());
        let detail = match u.detail.is_null() {
            true => None,
            false => Some(serde_json::to_string(&u.detail)?),
        };
        put_bytes(&mut raw, detail.as_deref().map(str::as_bytes));
    }
    deflate(&[&raw], "units")
}

fn unpack_blob(blob: &[u8]) -> Result<Vec<StoredUnit>> {
    let raw = inflate(blob, "a packed run of units")?;
    read_units(&raw).ok_or_else(|| corrupt("a packed run of units is cut short"))
}

/// How hard stored blobs (runs, lists of versions) are deflated; acknowledgements are
/// deflated at the same level as they are written (`format::ack_body`). flate2 runs on
/// zlib-rs here (a dependency turns it on), whose level 1 is zlib-ng's "quick" strategy:
/// on a CSV's runs it left them 1.6 times the size level 2 does (unit runs of 100 MB of
/// orders, 4.1 MB against 2.6 MB), and level 2 took 1.3 times as long, a few milliseconds
/// a batch. Levels above 2 gained under 2% for twice the time.
fn packing() -> flate2::Compression {
    flate2::Compression::new(2)
}

thread_local! {
    /// The committing thread's compressor, reset for each blob: a new one allocated and
    /// zeroed its tables (a few hundred KiB) for every run and list of versions, two per
    /// batch, and cost three times the instructions of a reset.
    static PACKER: std::cell::RefCell<Option<DeflateEncoder<Vec<u8>>>> =
        const { std::cell::RefCell::new(None) };
}

/// `parts`, one after the other, deflated: how runs and lists of versions are stored.
pub(super) fn deflate(parts: &[&[u8]], what: &str) -> Result<Vec<u8>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let out = Vec::with_capacity(len / 4);
    let packed = PACKER.with(|packer| -> std::io::Result<Vec<u8>> {
        let mut packer = packer.borrow_mut();
        let z = match packer.as_mut() {
            Some(z) => {
                z.reset(out)?;
                z
            }
            None => packer.insert(DeflateEncoder::new(out, packing())),
        };
        for p in parts {
            z.write_all(p)?;
        }
        z.try_finish()?;
        Ok(std::mem::take(z.get_mut()))
    });
    packed.map_err(|e| corrupt(&format!("packing {what}: {e}")))
}

/// A stored blob inflated again (`what` names it in the error).
pub(super) fn inflate(blob: &[u8], what: &str) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(blob.len() * 4);
    flate2::read::DeflateDecoder::new(blob)
        .read_to_end(&mut raw)
        .map_err(|e| corrupt(&format!("{what} does not inflate: {e}")))?;
    Ok(raw)
}

/// The count of entries `raw` holds after its `layout` byte, and the entries' bytes;
/// `None` for another layout or a count cut short.
pub(super) fn counted(raw: &[u8], layout: u8) -> Option<(usize, &[u8])> {
    let (&l, mut buf) = raw.split_first()?;
    if l != layout {
        return None;
    }
    let count = take_unsigned(&mut buf)? as usize;
    Some((count, buf))
}

fn read_units(raw: &[u8]) -> Option<Vec<StoredUnit>> {
    let (count, mut buf) = counted(raw, LAYOUT)?;
    // A count is no allocation promise: a damaged run must not ask for gigabytes.
    let mut out = Vec::with_capacity(count.min(buf.len()));
    let mut steps = Steps::default();
    for _ in 0..count {
        out.push(read_unit(&mut buf, &mut steps, Decode::Whole)?);
    }
    Some(out)
}

/// The running values a run's numbers are steps from: the unit before's seq, the line
/// after its lines, and its first line's `(line, byte, record)`.
#[derive(Debug, Clone, Copy, Default)]
struct Steps {
    seq: i64,
    ordinal: i64,
    first: (i64, i64, i64),
}

/// Writes one unit's numbers as steps from the unit before ([`take_steps`] reads them).
fn put_steps(
    raw: &mut Vec<u8>,
    steps: &mut Steps,
    seq: i64,
    first_ordinal: i64,
    line_count: i64,
    first: (i64, i64, i64),
) {
    let f = steps.first;
    for n in [seq - steps.seq, first_ordinal - steps.ordinal, line_count] {
        put(raw, n);
    }
    for n in [first.0 - f.0, first.1 - f.1, first.2 - f.2] {
        put(raw, n);
    }
    *steps = Steps {
        seq,
        ordinal: first_ordinal + line_count,
        first,
    };
}

/// Takes one unit's numbers off `buf`: its first ordinal and line count; `steps` moves on.
fn take_steps(buf: &mut &[u8], steps: &mut Steps) -> Option<(i64, i64)> {
    steps.seq += take(buf)?;
    let first_ordinal = steps.ordinal + take(buf)?;
    let line_count = take(buf)?;
    let f = &mut steps.first;
    *f = (f.0 + take(buf)?, f.1 + take(buf)?, f.2 + take(buf)?);
    steps.ordinal = first_ordinal + line_count;
    Some((first_ordinal, line_count))
}

fn read_unit(buf: &mut &[u8], steps: &mut Steps, decode: Decode) -> Option<StoredUnit> {
    let (first_ordinal, line_count) = take_steps(buf, steps)?;
    let text = |b: Option<Vec<u8>>| match b {
        None => Some(None),
        Some(b) => String::from_utf8(b).ok().map(Some),
    };
    let (label, key, locator, spans) = match decode {
        Decode::Whole => (
            text(take_bytes(buf)?)??,
            text(take_bytes(buf)?)?,
            text(take_bytes(buf)?)?,
            take_bytes(buf)?,
        ),
        Decode::Outcome => {
            for _ in 0..4 {
                skip_bytes(buf)?;
            }
            (String::new(), None, None, None)
        }
    };
    let detail = text(take_bytes(buf)?)?;
    Some(StoredUnit::packed(Packed {
        seq: steps.seq,
        label,
        key,
        first_ordinal,
        line_count,
        first: steps.first,
        locator,
        spans,
        detail,
    }))
}

/// A run inflated, with where each of its units starts: [`UnitReader`] keeps one and
/// decodes only the units it is asked for (decoding every unit of a run, five texts each,
/// was most of the corrections file's cost, which asks one unit in a few thousand).
struct RunIndex {
    file_id: i64,
    first_seq: i64,
    end_seq: i64,
    raw: Vec<u8>,
    /// Each unit's seq, the offset of its bytes in `raw`, and the steps before it.
    at: Vec<(i64, usize, Steps)>,
}

impl RunIndex {
    fn new(file_id: i64, first_seq: i64, end_seq: i64, blob: &[u8]) -> Result<RunIndex> {
        let raw = inflate(blob, "a packed run of units")?;
        let at = index_units(&raw).ok_or_else(|| corrupt("a packed run of units is cut short"))?;
        Ok(RunIndex {
            file_id,
            first_seq,
            end_seq,
            raw,
            at,
        })
    }

    fn holds(&self, file_id: i64, seq: i64) -> bool {
        self.file_id == file_id && (self.first_seq..self.end_seq).contains(&seq)
    }

    fn get(&self, seq: i64, decode: Decode) -> Result<Option<StoredUnit>> {
        let Ok(i) = self.at.binary_search_by_key(&seq, |a| a.0) else {
            return Ok(None);
        };
        self.decode(i, decode).map(Some)
    }

    /// Adds its units with `from <= seq < to` to `out`, at most `limit` of them.
    fn between(
        &self,
        from: i64,
        to: i64,
        limit: usize,
        decode: Decode,
        out: &mut Vec<StoredUnit>,
    ) -> Result<()> {
        let start = self.at.partition_point(|a| a.0 < from);
        let end = self
            .at
            .partition_point(|a| a.0 < to)
            .min(start.saturating_add(limit));
        for i in start..end.max(start) {
            out.push(self.decode(i, decode)?);
        }
        Ok(())
    }

    fn decode(&self, i: usize, decode: Decode) -> Result<StoredUnit> {
        let (_, offset, mut steps) = self.at[i];
        let mut buf = &self.raw[offset..];
        read_unit(&mut buf, &mut steps, decode)
            .ok_or_else(|| corrupt("a packed run of units is cut short"))
    }
}

/// Where each unit of an inflated run starts (see [`RunIndex`]), passing over its texts.
fn index_units(raw: &[u8]) -> Option<Vec<(i64, usize, Steps)>> {
    let (count, mut buf) = counted(raw, LAYOUT)?;
    let mut out = Vec::with_capacity(count.min(buf.len()));
    let mut steps = Steps::default();
    for _ in 0..count {
        let (offset, before) = (raw.len() - buf.len(), steps);
        take_steps(&mut buf, &mut steps)?;
        for _ in 0..5 {
            skip_bytes(&mut buf)?;
        }
        out.push((steps.seq, offset, before));
    }
    Some(out)
}

pub(super) fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(what.to_string())
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(0),
        Some(b) => {
            put_unsigned(out, b.len() as u64 + 1);
            out.extend_from_slice(b);
        }
    }
}

/// `None` when cut short; `Some(None)` for an absent value.
fn take_bytes(buf: &mut &[u8]) -> Option<Option<Vec<u8>>> {
    let n = take_unsigned(buf)? as usize;
    if n == 0 {
        return Some(None);
    }
    let (b, rest) = (buf.get(..n - 1)?, &buf[n - 1..]);
    *buf = rest;
    Some(Some(b.to_vec()))
}

/// [`take_bytes`] without the copy.
fn skip_bytes(buf: &mut &[u8]) -> Option<()> {
    let n = take_unsigned(buf)? as usize;
    *buf = buf.get(n.saturating_sub(1)..)?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::Position;

    /// The reused compressor packs each blob as a fresh one does, whatever it packed
    /// before (a long blob, an empty one, one in parts), and each inflates back.
    #[test]
    fn a_reused_compressor_packs_as_a_fresh_one() {
        let fresh = |parts: &[&[u8]]| {
            let mut z = DeflateEncoder::new(Vec::new(), packing());
            parts.iter().for_each(|p| z.write_all(p).unwrap());
            z.finish().unwrap()
        };
        let long: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let blobs: [&[&[u8]]; 5] = [
            &[b"first run"],
            &[&long],
            &[],
            &[b"in ", b"three ", b"parts"],
            &[&long[..777], b"tail"],
        ];
        for parts in blobs.iter().chain(blobs.iter().rev()) {
            let packed = deflate(parts, "test").unwrap();
            assert_eq!(packed, fresh(parts));
            assert_eq!(inflate(&packed, "test").unwrap(), parts.concat());
        }
    }

    fn unit(seq: i64, ordinal: i64, lines: i64, key: Option<&str>) -> UnitRow {
        let mut pos = Position::new(ordinal as u64 + 2, 100 * ordinal as u64, ordinal as u64 + 1);
        pos.locator = key.map(|k| format!("ISA 1 / GS 2 / ST {k}, segment 1 of set"));
        UnitRow {
            seq,
            label: format!("order {}", key.unwrap_or("?")),
            status: crate::format::UnitStatus::Applied,
            key: key.map(String::from),
            first_ordinal: ordinal,
            line_count: lines,
            pos,
            spans: (lines > 1).then(|| vec![0x80, 0, 2, 2, 33, 34]),
            reasons: Vec::new(),
            detail: serde_json::Value::Null,
            tolerated: Vec::new(),
        }
    }

    /// Units with seq gaps, an absent and an empty key, a non-ASCII key, and a detail.
    fn sample_units() -> [UnitRow; 4] {
        let mut units = [
            unit(7, 20, 3, Some("B0001")),
            unit(8, 23, 1, None),
            unit(11, 40, 4, Some("B0004 ünï")),
            unit(12, 44, 2, Some("")),
        ];
        units[2].detail = serde_json::json!({"DOCNUM": "0000000000000001", "MANDT": "715"});
        units
    }

    #[test]
    fn a_run_gives_back_every_unit_it_was_given_with_gaps_and_absent_fields() {
        let units = sample_units();
        let back = unpack_blob(&pack(units.iter()).unwrap()).unwrap();
        assert_eq!(back.len(), units.len());
        for (b, u) in back.iter().zip(&units) {
            assert_eq!(b.seq, u.seq);
            assert_eq!(b.label, u.label);
            assert_eq!(b.status, "applied");
            assert_eq!(b.key, u.key);
            assert_eq!(
                (b.first_ordinal, b.line_count),
                (u.first_ordinal, u.line_count)
            );
            let p = &u.pos;
            assert_eq!(b.first, (p.line as i64, p.byte as i64, p.record as i64));
            assert_eq!(b.locator, p.locator);
            assert_eq!(b.spans, u.spans);
            let detail: Option<serde_json::Value> = b
                .detail
                .as_deref()
                .map(|d| serde_json::from_str(d).unwrap());
            assert_eq!(detail.unwrap_or_default(), u.detail);
        }
    }

    /// Decoded for its outcome, a unit has the same numbers, place and detail, and no texts.
    #[test]
    fn an_indexed_run_decodes_the_unit_asked_as_the_whole_run_does() {
        let blob = pack(sample_units().iter()).unwrap();
        let whole = unpack_blob(&blob).unwrap();
        let run = RunIndex::new(5, 7, 13, &blob).unwrap();
        for seq in 0..15 {
            let expected = whole.iter().find(|u| u.seq == seq).cloned();
            assert_eq!(run.get(seq, Decode::Whole).unwrap(), expected, "seq {seq}");
            let outcome = expected.map(|u| StoredUnit {
                label: String::new(),
                key: None,
                locator: None,
                spans: None,
                ..u
            });
            assert_eq!(run.get(seq, Decode::Outcome).unwrap(), outcome, "seq {seq}");
        }
        assert!(run.holds(5, 12) && !run.holds(5, 13) && !run.holds(6, 8));
    }

    #[test]
    fn a_damaged_run_is_an_error_not_a_panic() {
        let units = [unit(0, 0, 3, Some("B1")), unit(1, 3, 3, Some("B2"))];
        let mut raw = Vec::new();
        flate2::read::DeflateDecoder::new(&pack(units.iter()).unwrap()[..])
            .read_to_end(&mut raw)
            .unwrap();
        for cut in 0..raw.len() {
            assert!(read_units(&raw[..cut]).is_none(), "cut at {cut}");
            assert!(index_units(&raw[..cut]).is_none(), "cut at {cut}");
        }
        assert!(unpack_blob(b"not deflate at all").is_err());
        // A count of a billion units in a few bytes allocates nothing much.
        assert!(read_units(&[LAYOUT, 0x80, 0x94, 0xeb, 0xdc, 0x03]).is_none());
    }

    #[test]
    fn merged_units_come_in_seq_order_and_a_row_wins_over_its_packed_copy() {
        let s = |seq: i64, status: &str| StoredUnit {
            seq,
            status: status.into(),
            ..StoredUnit::packed(Packed {
                seq,
                label: String::new(),
                key: None,
                first_ordinal: seq,
                line_count: 1,
                first: (0, 0, 0),
                locator: None,
                spans: None,
                detail: None,
            })
        };
        let rows = vec![s(1, "rejected"), s(4, "rejected"), s(5, "duplicate")];
        let packed = vec![
            s(0, "applied"),
            s(2, "applied"),
            s(4, "applied"),
            s(6, "applied"),
        ];
        let got: Vec<(i64, String)> = merge(rows, packed, 10)
            .into_iter()
            .map(|u| (u.seq, u.status))
            .collect();
        let want = [
            (0, "applied"),
            (1, "rejected"),
            (2, "applied"),
            (4, "rejected"),
            (5, "duplicate"),
            (6, "applied"),
        ];
        assert_eq!(got, want.map(|(s, t)| (s, t.to_string())));
        assert_eq!(
            merge(
                vec![s(3, "rejected")],
                vec![s(0, "applied"), s(1, "applied")],
                2
            )
            .len(),
            2
        );
    }
}
