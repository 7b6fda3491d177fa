//! The tabular engine: one [`Format`] per tabular definition, running over any row source
//! (the CSV reader, or a spreadsheet through `crate::sheet::open_rows`).
//!
//! The reader side is sequential and cheap: it classifies rows (skipped leading rows,
//! header, blank, data), binds header names to columns, checks the column count, and cuts
//! the stream into units — one per row, or one per contiguous `group_by` run. Everything
//! that costs CPU (typing, constraints, mapping, the contract check) happens in the unit's
//! job, which owns copies of just the cells it needs, so jobs run in parallel. Groups must
//! be contiguous: holding every open group until the end of a 1 GB file would break the
//! flat-memory promise, so a key that reappears after its group closed is rejected
//! (`group-split`); the closed keys are remembered as 128-bit hashes, up to
//! `MAX_CLOSED_KEYS` (past that, the ledger's business keys still stop a double apply).

// `FileError` is the shared error type of every format; its size is a cross-module
// decision (reported to the lead), not something to work around here.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};

/// How many closed group keys are remembered for `group-split` (16-byte hashes; about
/// 32 MiB with the set's overhead at the cap).
const MAX_CLOSED_KEYS: usize = 1 << 20;

/// The closed group keys' hashes. They are blake3 of the key, but an unkeyed hash the
/// input chooses keys for, so the set still places them by a per-process random seed;
/// foldhash does that for a `u128` several times faster than the standard SipHash (which
/// was 3% of a resumed CSV run's instructions).
type ClosedKeys = HashSet<u128, foldhash::fast::RandomState>;

#[path = "resume.rs"]
mod resume;
use std::path::Path;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::charset::{self, Encoding};
use super::csv_rows::{CsvItem, CsvRows, HeadThenFile};
use super::def::{Bound, ColumnRef, FieldType, MapValue, Piece, Source, TabularDef, Template};
use super::key_log::KeyLog;
use super::{column_letters, Cell, Row, RowSource};
use crate::canonical::{Body, Record};
use crate::format::{FileError, Format, NearMiss, OpenContext, Policy, Probe, UnitReader};
use crate::unit::{
    cap_raw, capped, mask, Evaluation, LineVerdict, Position, Reason, SourceLine, Unit,
};

/// How much of a file `encoding = "auto"` looks at before deciding.
pub(crate) const AUTO_SAMPLE: u64 = 64 * 1024;
/// Longest raw line kept for the ledger and reports.
pub const RAW_CAP: usize = 2048;
/// Sniff scores: a header match is more specific than a file name match.
pub const SCORE_NAME: u32 = 10;
pub const SCORE_HEADER: u32 = 20;

/// A loaded tabular definition.
pub struct TabularFormat {
    def: Arc<TabularDef>,
}

impl TabularFormat {
    pub fn new(def: TabularDef) -> Self {
        TabularFormat { def: Arc::new(def) }
    }

    pub fn def(&self) -> &TabularDef {
        &self.def
    }
}

impl Format for TabularFormat {
    fn identity_overrides(&self) -> Vec<(crate::canonical::Entity, crate::canonical::Identity)> {
        self.def
            .identity
            .map(|i| vec![(self.def.map.entity, i)])
            .unwrap_or_default()
    }

    fn name(&self) -> &str {
        &self.def.name
    }

    fn tabular(&self) -> Option<&TabularDef> {
        Some(&self.def)
    }

    fn kind(&self) -> &str {
        &self.def.kind
    }

    fn sniff(&self, probe: &Probe) -> Option<u32> {
        let mut score = 0;
        if !self.def.filename_globs.is_empty() {
            if !self.def.name_matches(probe.name) {
                return None;
            }
            score += SCORE_NAME;
        }
        // A spreadsheet's header sits inside a zip: it is checked when the file is opened.
        if !self.def.match_header.is_empty() && matches!(self.def.source, Source::Csv(_)) {
            let Source::Csv(dialect) = &self.def.source else {
                return None;
            };
            if !super::sniff::header_matches(&self.def, dialect, probe.head) {
                return None;
            }
            score += SCORE_HEADER;
        }
        (score > 0).then_some(score)
    }

    fn near_miss(&self, probe: &Probe) -> Option<NearMiss> {
        super::sniff::near_miss(&self.def, probe)
    }

    fn policy(&self) -> Policy {
        self.def.policy
    }

    fn open<'a>(
        &'a self,
        path: &Path,
        ctx: &OpenContext,
    ) -> Result<Box<dyn UnitReader + 'a>, FileError> {
        let src = match &self.def.source {
            Source::Csv(dialect) => {
                let mut file = std::fs::File::open(path).map_err(|e| FileError::io(&e))?;
                let len = file.metadata().map_err(|e| FileError::io(&e))?.len();
                if len > ctx.limits.max_file_bytes {
                    return Err(FileError::new(
                        "file-too-large",
                        format!(
                            "file is {len} bytes, over the limit of {} (max_file_bytes)",
                            ctx.limits.max_file_bytes
                        ),
                    ));
                }
                let mut head = Vec::with_capacity(AUTO_SAMPLE as usize);
                std::io::Read::by_ref(&mut file)
                    .take(AUTO_SAMPLE)
                    .read_to_end(&mut head)
                    .map_err(|e| FileError::io(&e))?;
                let decoding =
                    csv_decoding(&self.def.name, dialect, &head, head.len() as u64 == len)?;
                RowsIn::Csv(Box::new(CsvRows::from_input(
                    Box::new(HeadThenFile::new(head, file)),
                    decoding,
                    dialect,
                    ctx.limits.max_record_bytes,
                )))
            }
            Source::Sheet(sel) => RowsIn::Sheet(crate::sheet::open_rows(path, ctx, sel)?),
        };
        Ok(self.reader(src, ctx))
    }
}

use std::io::Read as _;

/// How a CSV file's bytes become text, decided from its first bytes (`complete`: they are
/// the whole file). Shared with the corrections writer, which must find rows at the byte
/// offsets this decision gave the ledger.
pub(crate) fn csv_decoding(
    format: &str,
    dialect: &super::def::CsvDialect,
    head: &[u8],
    complete: bool,
) -> Result<charset::Decoding, FileError> {
    match dialect.encoding {
        Encoding::Auto => {
            charset::plan_auto(head, complete).map_err(|r| r.into_error(head, format))
        }
        e => Ok(charset::plan_fixed(e, dialect.delimiter, dialect.quote)),
    }
}

impl TabularFormat {
    /// Runs the definition over rows from any source (the spreadsheet reader, or a test's
    /// in-memory rows). The rows are treated like a sheet's: no column-count check.
    pub fn read_rows<'a>(
        &'a self,
        rows: Box<dyn RowSource>,
        ctx: &OpenContext,
    ) -> Box<dyn UnitReader + 'a> {
        self.reader(RowsIn::Sheet(rows), ctx)
    }

    fn reader<'a>(&'a self, src: RowsIn, ctx: &OpenContext) -> Box<dyn UnitReader + 'a> {
        let (delimiter, quote) = match &self.def.source {
            Source::Csv(d) => (d.delimiter, d.quote),
            Source::Sheet(_) => (b',', Some(b'"')),
        };
        Box::new(TabularReader {
            def: self.def.clone(),
            src,
            delimiter,
            quote,
            seq: 0,
            max_unit_lines: usize::try_from(ctx.limits.max_unit_lines)
                .unwrap_or(usize::MAX)
                .max(1),
            rows_seen: 0,
            header_done: !self.def.header,
            binding: Arc::new(Vec::new()),
            binding_in_order: false,
            dropped: Vec::new(),
            width: None,
            blanks: Vec::new(),
            group: None,
            group_rows: 1,
            closed: ClosedKeys::default(),
            keys: KeyLog::default(),
            out: VecDeque::new(),
            done: false,
        })
    }
}

enum RowsIn {
    Csv(Box<CsvRows>),
    Sheet(Box<dyn RowSource>),
}

impl RowsIn {
    fn next(&mut self) -> Result<Option<CsvItem>, FileError> {
        match self {
            RowsIn::Csv(c) => c.next_item(),
            RowsIn::Sheet(s) => Ok(s.next_row()?.map(|r| CsvItem::Row(r, None))),
        }
    }
}

/// One row as handed to a job: only the bound cells, plus what the reader found.
#[derive(Debug, Clone)]
struct JobRow {
    pos: Position,
    sheet: Option<String>,
    row_number: u64,
    /// Cell per field (field order), `Cell::Empty` when the column is absent.
    cells: Vec<Cell>,
    /// Boxed, as a verdict's reason is: nearly every row has none, and a row moves from
    /// the reading thread through a group to a worker.
    problem: Option<Box<Reason>>,
    blank: bool,
}

struct Group {
    key: String,
    /// `key_hash(key)`, made once per group.
    hash: u128,
    rows: Vec<JobRow>,
    lines: Vec<SourceLine>,
    split: bool,
    oversize: bool,
    /// Continues a group of the same key cut at `max_unit_lines`.
    continues: bool,
}

struct TabularReader {
    def: Arc<TabularDef>,
    src: RowsIn,
    delimiter: u8,
    quote: Option<u8>,
    seq: u64,
    max_unit_lines: usize,
    /// Non-blank rows read so far (for `skip_rows` and the header).
    rows_seen: u64,
    header_done: bool,
    /// Column index of each field.
    binding: Arc<Vec<usize>>,
    /// Field `k` is column `k` for every field, as where the definition lists the columns
    /// in the file's order: a row's cells are then the job's, moved without a copy.
    binding_in_order: bool,
    /// Header columns named [`super::ERROR_COLUMN`] (a corrections file's "what was
    /// wrong"), ascending: removed from every row before anything looks at it.
    dropped: Vec<usize>,
    /// Expected number of columns (CSV only).
    width: Option<usize>,
    blanks: Vec<(JobRow, SourceLine)>,
    group: Option<Group>,
    /// Rows of the last group closed (at most [`GROUP_ROOM`]): the room a new group's
    /// lists get at once, rather than growing from one row.
    group_rows: usize,
    closed: ClosedKeys,
    /// `closed` as it grows, kept for a resume (see `super::key_log`; CSV only).
    keys: KeyLog,
    /// Units cut and numbered, not yet returned; each says whether it continues the
    /// group before it (cut at `max_unit_lines`), where no reader may restart.
    out: VecDeque<(Unit, bool)>,
    done: bool,
}

/// Positions of the corrections file's "what was wrong" columns among header names
/// (trimmed, lower-cased): a reviewer may have moved the column, or a correction of a
/// correction may carry it twice.
fn error_columns(names: &[String]) -> Vec<usize> {
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.as_str() == super::ERROR_COLUMN)
        .map(|(i, _)| i)
        .collect()
}

/// Removes the columns at `ascending` positions that the row has.
fn drop_columns<T>(cells: &mut Vec<T>, ascending: &[usize]) {
    for &i in ascending.iter().rev() {
        if i < cells.len() {
            cells.remove(i);
        }
    }
}

/// A cell's text trimmed, borrowed where the cell holds text (the group key of every row).
fn trimmed_text(cell: &Cell) -> std::borrow::Cow<'_, str> {
    match cell {
        Cell::Text(s) => std::borrow::Cow::Borrowed(crate::unit::trim(s)),
        other => std::borrow::Cow::Owned(other.to_text().trim().to_string()),
    }
}

/// Without a header, fields are bound by position.
fn positional_binding(def: &TabularDef) -> Vec<usize> {
    def.fields
        .iter()
        .map(|f| match f.column {
            ColumnRef::Index(i) => i,
            ColumnRef::Name(_) => usize::MAX,
        })
        .collect()
}

/// The most rows a new group is given room for before it holds them (see
/// `TabularReader::group_rows`): room for a long group is not made for every one after it.
const GROUP_ROOM: usize = 16;

fn key_hash(key: &str) -> u128 {
    let h = blake3::hash(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    u128::from_le_bytes(b)
}

impl TabularReader {
    fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq += 1;
        s
    }

    fn skipped(&mut self, label: &str, lines: Vec<SourceLine>) {
        let seq = self.next_seq();
        self.out
            .push_back((Unit::skipped(seq, label, lines), false));
    }

    fn flush_blanks(&mut self) {
        if !self.blanks.is_empty() {
            let lines = std::mem::take(&mut self.blanks)
                .into_iter()
                .map(|(_, l)| l)
                .collect();
            self.skipped("blank line", lines);
        }
    }

    fn source_line(&self, row: &Row) -> SourceLine {
        let raw = if self.def.has_sensitive() && !self.binding.is_empty() {
            let mut cells: Vec<String> = row.cells.iter().map(Cell::to_text).collect();
            for (f, &col) in self.def.fields.iter().zip(self.binding.iter()) {
                if f.sensitive {
                    if let Some(c) = cells.get_mut(col) {
                        *c = mask(c);
                    }
                }
            }
            CsvRows::join(&cells, self.delimiter, self.quote)
        } else {
            row.raw.clone()
        };
        SourceLine {
            pos: row.pos.clone(),
            raw: capped(raw, RAW_CAP),
        }
    }

    /// [`Self::source_line`] for a row not needed afterwards: its raw text is moved, not
    /// copied, unless sensitive cells must be masked in it.
    fn take_source_line(&self, row: &mut Row) -> SourceLine {
        if self.def.has_sensitive() && !self.binding.is_empty() {
            return self.source_line(row);
        }
        SourceLine {
            pos: row.pos.clone(),
            raw: capped(std::mem::take(&mut row.raw), RAW_CAP),
        }
    }

    fn set_binding(&mut self, binding: Vec<usize>) {
        self.binding_in_order = binding.iter().enumerate().all(|(k, &c)| k == c);
        self.binding = Arc::new(binding);
    }

    /// The row as a job gets it: the bound cells in field order, moved out of the row.
    fn take_job_row(&self, row: &mut Row, problem: Option<Box<Reason>>) -> JobRow {
        let mut from = std::mem::take(&mut row.cells);
        let n = self.binding.len();
        if self.binding_in_order {
            from.truncate(n);
            from.resize(n, Cell::Empty);
            return self.job_row(row, from, problem);
        }
        let mut cells: Vec<Cell> = Vec::with_capacity(n);
        for (k, &c) in self.binding.iter().enumerate() {
            // A column bound to two fields is copied from the first one that took it.
            let cell = match self.binding[..k].iter().position(|&p| p == c) {
                Some(j) => cells[j].clone(),
                None => from
                    .get_mut(c)
                    .map_or(Cell::Empty, |x| std::mem::replace(x, Cell::Empty)),
            };
            cells.push(cell);
        }
        self.job_row(row, cells, problem)
    }

    fn job_row(&self, row: &Row, cells: Vec<Cell>, problem: Option<Box<Reason>>) -> JobRow {
        JobRow {
            pos: row.pos.clone(),
            sheet: row.sheet.clone(),
            row_number: row.row_number,
            cells,
            problem,
            blank: false,
        }
    }

    fn bind_header(&mut self, row: &Row) -> Result<(), FileError> {
        let mut names: Vec<String> = row
            .cells
            .iter()
            .map(|c| c.to_text().trim().to_lowercase())
            .collect();
        self.dropped = error_columns(&names);
        drop_columns(&mut names, &self.dropped);
        let mut missing = Vec::new();
        let mut errors = Vec::new();
        let mut binding = Vec::new();
        for f in &self.def.fields {
            match &f.column {
                ColumnRef::Index(i) => binding.push(*i),
                ColumnRef::Name(n) => {
                    let want = n.to_lowercase();
                    let hits: Vec<usize> = names
                        .iter()
                        .enumerate()
                        .filter(|(_, h)| **h == want)
                        .map(|(i, _)| i)
                        .collect();
                    match hits.as_slice() {
                        [] => {
                            missing.push(n.clone());
                            binding.push(usize::MAX);
                        }
                        [i] => binding.push(*i),
                        [i, j, ..] => {
                            errors.push(format!(
                                "column '{n}' appears more than once in the header (positions {} and {}), so field '{}' is ambiguous",
                                i + 1,
                                j + 1,
                                f.name
                            ));
                            binding.push(*i);
                        }
                    }
                }
            }
        }
        for h in &self.def.match_header {
            if !names.contains(&h.to_lowercase()) && !missing.contains(h) {
                missing.push(h.clone());
            }
        }
        if !missing.is_empty() {
            errors.insert(
                0,
                format!(
                    "header lacks column(s) {} (found: {})",
                    missing
                        .iter()
                        .map(|m| format!("'{m}'"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    row.cells
                        .iter()
                        .map(Cell::to_text)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if !errors.is_empty() {
            return Err(FileError::at(row.pos.clone(), "header", errors.join("; ")));
        }
        self.set_binding(binding);
        if matches!(self.src, RowsIn::Csv(_)) {
            self.width = Some(names.len());
        }
        Ok(())
    }

    fn handle(&mut self, item: CsvItem) -> Result<(), FileError> {
        let (mut row, problem) = match item {
            CsvItem::Blank(positions) => {
                for p in positions {
                    self.blank_line(p, String::new());
                }
                return Ok(());
            }
            CsvItem::Row(mut row, problem) => {
                if self.header_done {
                    drop_columns(&mut row.cells, &self.dropped);
                }
                (row, problem)
            }
        };
        if problem.is_none() && row.cells.iter().all(Cell::is_empty) {
            let raw = cap_raw(&row.raw, RAW_CAP);
            self.blank_line(row.pos, raw);
            return Ok(());
        }
        self.rows_seen += 1;
        if self.rows_seen <= self.def.skip_rows {
            let line = self.source_line(&row);
            self.flush_group();
            self.flush_blanks();
            self.skipped("skipped row", vec![line]);
            return Ok(());
        }
        if !self.header_done {
            self.header_done = true;
            if let Some(p) = problem {
                return Err(FileError {
                    pos: Some(row.pos),
                    reason: Reason::new(
                        "header",
                        format!("header row unreadable ({}): {}", p.rule, p.message),
                    ),
                });
            }
            self.bind_header(&row)?;
            let line = self.source_line(&row);
            self.flush_blanks();
            self.skipped("header", vec![line]);
            return Ok(());
        }
        if self.binding.is_empty() {
            self.set_binding(positional_binding(&self.def));
        }
        let mut problem = problem;
        if matches!(self.src, RowsIn::Csv(_)) && problem.is_none() {
            let width = *self.width.get_or_insert(row.cells.len());
            if row.cells.len() != width {
                problem = Some(Box::new(
                    Reason::new(
                        "column-count",
                        format!(
                            "row has {} columns, expected {} ({})",
                            row.cells.len(),
                            width,
                            if self.def.header {
                                "as many as the header"
                            } else {
                                "as many as the first row"
                            }
                        ),
                    )
                    .value(row.cells.len().to_string()),
                ));
            }
        }
        let line = self.take_source_line(&mut row);
        let jr = self.take_job_row(&mut row, problem);
        let key = self
            .def
            .group_by
            .and_then(|g| jr.cells.get(g))
            .map(trimmed_text);
        match key {
            Some(key) if !key.is_empty() => {
                let continues = self.group.as_ref().is_some_and(|g| g.key == *key);
                if continues {
                    let too_big = self
                        .group
                        .as_ref()
                        .is_some_and(|g| g.rows.len() + self.blanks.len() >= self.max_unit_lines);
                    if too_big {
                        if let Some(g) = self.group.as_mut() {
                            g.oversize = true;
                        }
                        self.flush_group();
                        self.flush_blanks();
                        let key = key.into_owned();
                        let (rows, lines) = self.group_lists(jr, line);
                        self.group = Some(Group {
                            hash: key_hash(&key),
                            key,
                            rows,
                            lines,
                            split: false,
                            oversize: true,
                            continues: true,
                        });
                    } else {
                        let blanks = std::mem::take(&mut self.blanks);
                        if let Some(g) = self.group.as_mut() {
                            for (r, l) in blanks {
                                g.rows.push(r);
                                g.lines.push(l);
                            }
                            g.rows.push(jr);
                            g.lines.push(line);
                        }
                    }
                } else {
                    self.flush_group();
                    self.flush_blanks();
                    let key = key.into_owned();
                    let hash = key_hash(&key);
                    let split = self.closed.contains(&hash);
                    let (rows, lines) = self.group_lists(jr, line);
                    self.group = Some(Group {
                        hash,
                        key,
                        rows,
                        lines,
                        split,
                        oversize: false,
                        continues: false,
                    });
                }
            }
            _ => {
                self.flush_group();
                self.flush_blanks();
                let label = match &row.sheet {
                    Some(_) => format!("row {}", row.row_number),
                    None => format!("line {}", row.pos.line),
                };
                self.emit(label, vec![jr], vec![line], false, false);
            }
        }
        Ok(())
    }

    fn blank_line(&mut self, pos: Position, raw: String) {
        let jr = JobRow {
            pos: pos.clone(),
            sheet: None,
            row_number: pos.record,
            cells: Vec::new(),
            problem: None,
            blank: true,
        };
        self.blanks.push((jr, SourceLine { pos, raw }));
        // A run of blank lines must not grow without bound either. Inside a group, that
        // many blank lines close the group: rows of the same key after them are split.
        if self.blanks.len() >= self.max_unit_lines {
            self.flush_group();
            self.flush_blanks();
        }
    }

    /// A new group's lists, holding its first row.
    fn group_lists(&self, row: JobRow, line: SourceLine) -> (Vec<JobRow>, Vec<SourceLine>) {
        let (mut rows, mut lines) = (
            Vec::with_capacity(self.group_rows),
            Vec::with_capacity(self.group_rows),
        );
        rows.push(row);
        lines.push(line);
        (rows, lines)
    }

    fn flush_group(&mut self) {
        if let Some(g) = self.group.take() {
            self.group_rows = g.rows.len().clamp(1, GROUP_ROOM);
            // Bounded, so memory stays flat on files of millions of documents: past the
            // cap a reappearing key is still never applied twice (the ledger holds every
            // business key) but is reported as a duplicate instead of `group-split`.
            if self.closed.len() < MAX_CLOSED_KEYS && self.closed.insert(g.hash) {
                // The seq `emit` gives the group's unit below.
                self.keys.note(self.seq, g.hash);
            }
            let masked;
            let shown = match self.def.group_by {
                Some(i) if self.def.fields[i].sensitive => {
                    masked = mask(&g.key);
                    &masked
                }
                _ => &g.key,
            };
            let entity = self.def.map.entity.as_str();
            let mut label = String::with_capacity(entity.len() + 1 + shown.len());
            label.push_str(entity);
            label.push(' ');
            label.push_str(shown);
            self.emit(label, g.rows, g.lines, g.split, g.oversize);
            if let Some(last) = self.out.back_mut() {
                last.1 = g.continues;
            }
        }
    }

    fn emit(
        &mut self,
        label: String,
        rows: Vec<JobRow>,
        lines: Vec<SourceLine>,
        split: bool,
        oversize: bool,
    ) {
        let seq = self.next_seq();
        let def = self.def.clone();
        let binding = self.binding.clone();
        let max = self.max_unit_lines;
        let job = move |label: &str| {
            evaluate(
                &def,
                &binding,
                label,
                &rows,
                Flags {
                    split,
                    oversize,
                    max,
                },
            )
        };
        let unit = Unit {
            seq,
            label,
            lines,
            job: Some(Box::new(job)),
            show: None,
        };
        self.out.push_back((unit, false));
    }
}

impl UnitReader for TabularReader {
    fn mark(&mut self) -> Option<crate::format::Mark> {
        self.restart_mark()
    }

    fn keep_state_in(&mut self, file: std::path::PathBuf) {
        if matches!(self.src, RowsIn::Csv(_)) {
            self.keys.keep_in(file);
        }
    }

    fn seek(&mut self, mark: &crate::format::Mark) -> Result<bool, FileError> {
        self.restart_at(mark)
    }

    fn next_unit(&mut self) -> Result<Option<Unit>, FileError> {
        loop {
            if let Some((u, _)) = self.out.pop_front() {
                return Ok(Some(u));
            }
            if self.done {
                return Ok(None);
            }
            match self.src.next()? {
                Some(item) => self.handle(item)?,
                None => {
                    self.done = true;
                    self.flush_group();
                    self.flush_blanks();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The job: validation and mapping
// ---------------------------------------------------------------------------------------

struct Flags {
    split: bool,
    oversize: bool,
    max: usize,
}

/// A field's checked value: its text (for templates, translations and the record), and
/// whether the record gets it as a JSON boolean instead of a string. One string, not a
/// JSON copy beside the text: a value is made for every cell.
#[derive(Debug, Clone, PartialEq)]
struct Val<'r> {
    /// Borrowed from the cell (or the definition) when the checked value reads exactly
    /// as the cell does, as nearly every value does.
    text: Cow<'r, str>,
    boolean: bool,
}

impl Val<'_> {
    fn body(&self) -> Body<'_> {
        if self.boolean {
            Body::Bool(self.text == "true")
        } else {
            Body::Str(Cow::Borrowed(&self.text))
        }
    }
}

fn cell_ref(def: &TabularDef, binding: &[usize], row: &JobRow, field: usize) -> String {
    match &row.sheet {
        Some(sheet) => {
            let col = binding.get(field).copied().unwrap_or(usize::MAX);
            if col == usize::MAX {
                format!("{sheet}!{}: ", row.row_number)
            } else {
                format!("{sheet}!{}{}: ", column_letters(col), row.row_number)
            }
        }
        None => match &def.fields[field].column {
            ColumnRef::Name(n) => format!("column '{n}': "),
            ColumnRef::Index(i) => format!("column {}: ", i + 1),
        },
    }
}

fn fail(
    def: &TabularDef,
    binding: &[usize],
    row: &JobRow,
    field: usize,
    rule: &str,
    shown: &str,
    msg: String,
) -> Reason {
    let f = &def.fields[field];
    let reason = Reason::new(
        rule,
        format!("{}{}: {msg}", cell_ref(def, binding, row, field), f.name),
    )
    .field(f.name.clone())
    .value(shown.to_string());
    // A spreadsheet error points at its cell, not just its row.
    match (&row.sheet, binding.get(field).copied()) {
        (Some(sheet), Some(col)) if col != usize::MAX => {
            reason.at(format!("{sheet}!{}{}", column_letters(col), row.row_number))
        }
        _ => reason,
    }
}

fn decimal_of(cell: &Cell, text: &str, dsep: char, tsep: Option<char>) -> Option<Decimal> {
    match cell {
        Cell::Int(i) => Some(Decimal::from(*i)),
        Cell::Float(f) if f.is_finite() => Decimal::from_str_exact(&format!("{f}"))
            .ok()
            .or_else(|| Decimal::from_scientific(&format!("{f:e}")).ok()),
        _ => {
            if let Some(t) = tsep {
                // Thousands separators only between groups of three digits of the integer
                // part: "12.5" with "." as separator is an error, not 125.
                let int_part = text.split(dsep).next().unwrap_or("");
                let int_part = int_part.trim_start_matches(['+', '-']);
                let mut groups = int_part.split(t);
                let first_ok = groups.next().is_some_and(|g| (1..=3).contains(&g.len()));
                if int_part.contains(t) && (!first_ok || groups.any(|g| g.len() != 3)) {
                    return None;
                }
                if text.split(dsep).skip(1).any(|frac| frac.contains(t)) {
                    return None;
                }
            }
            // Plain numbers (no separators to rewrite) are read in place, without a copy.
            let s: std::borrow::Cow<str> = if tsep.is_none() && dsep == '.' {
                std::borrow::Cow::Borrowed(text)
            } else {
                let mut s: String = text.chars().filter(|c| Some(*c) != tsep).collect();
                if dsep != '.' {
                    if s.contains('.') {
                        return None;
                    }
                    s = s.replace(dsep, ".");
                }
                std::borrow::Cow::Owned(s)
            };
            let s = s.strip_prefix('+').unwrap_or(&s);
            if s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            {
                return None;
            }
            Decimal::from_str_exact(s).ok()
        }
    }
}

fn check_bounds(f: &super::def::Field, v: &Bound) -> Option<(&'static str, String)> {
    let cmp = |b: &Bound| -> Option<std::cmp::Ordering> {
        match (v, b) {
            (Bound::Number(a), Bound::Number(b)) => Some(a.cmp(b)),
            (Bound::Date(a), Bound::Date(b)) => Some(a.cmp(b)),
            (Bound::DateTime(a), Bound::DateTime(b)) => Some(a.cmp(b)),
            _ => None,
        }
    };
    let show = |b: &Bound| match b {
        Bound::Number(d) => d.to_string(),
        Bound::Date(d) => d.to_string(),
        Bound::DateTime(d) => super::datetime::iso(d),
    };
    use std::cmp::Ordering::*;
    if let Some(b) = &f.min {
        if cmp(b) == Some(Less) {
            return Some(("min", format!("must be at least {}", show(b))));
        }
    }
    if let Some(b) = &f.exclusive_min {
        if matches!(cmp(b), Some(Less | Equal)) {
            return Some(("min", format!("must be greater than {}", show(b))));
        }
    }
    if let Some(b) = &f.max {
        if cmp(b) == Some(Greater) {
            return Some(("max", format!("must be at most {}", show(b))));
        }
    }
    if let Some(b) = &f.exclusive_max {
        if matches!(cmp(b), Some(Greater | Equal)) {
            return Some(("max", format!("must be less than {}", show(b))));
        }
    }
    None
}

/// Types and checks one field of one row.
fn check_cell<'r>(
    def: &'r TabularDef,
    binding: &[usize],
    row: &'r JobRow,
    i: usize,
) -> Result<Option<Val<'r>>, Reason> {
    let f = &def.fields[i];
    let cell = row.cells.get(i).unwrap_or(&Cell::Empty);
    let full = cell.as_text();
    let text = if f.trim {
        crate::unit::trim(&full)
    } else {
        &full
    };
    // The cell's own text for the value when it already reads as the value would be
    // written (no copy), else the value as written.
    let same = |canonical: bool, written: &dyn Fn() -> String| -> Cow<'r, str> {
        match &full {
            Cow::Borrowed(b) if canonical => {
                Cow::Borrowed(if f.trim { crate::unit::trim(b) } else { b })
            }
            _ => Cow::Owned(written()),
        }
    };
    // The shown value is made only for a rejected cell: most cells pass.
    let err = |rule: &str, msg: String| {
        let shown = if f.sensitive {
            mask(text)
        } else {
            text.to_string()
        };
        fail(def, binding, row, i, rule, &shown, msg)
    };
    if let Cell::Error(e) = cell {
        return Err(err("type", format!("spreadsheet error value {e}")));
    }
    if text.is_empty() {
        return if f.required {
            Err(err("required", "is required but empty".into()))
        } else {
            Ok(None)
        };
    }
    // Counted only where a length is checked; ASCII text (nearly all) has one per byte.
    let n = match (f.min_length, f.max_length) {
        (None, None) => 0,
        _ if text.is_ascii() => text.len(),
        _ => text.chars().count(),
    };
    if let Some(m) = f.min_length {
        if n < m {
            return Err(err(
                "min-length",
                format!("must be at least {m} characters, has {n}"),
            ));
        }
    }
    if let Some(m) = f.max_length {
        if n > m {
            return Err(err(
                "max-length",
                format!("must be at most {m} characters, has {n}"),
            ));
        }
    }
    if let Some(re) = &f.regex {
        if !re.is_match(text) {
            return Err(err(
                "regex",
                format!("does not match the pattern {}", re.as_str()),
            ));
        }
    }
    if let Some(ck) = f.checksum {
        ck.verify(text).map_err(|msg| err("checksum", msg))?;
    }
    let (checked, bound): (Cow<'r, str>, Option<Bound>) = match &f.ty {
        FieldType::String => (same(true, &|| text.to_string()), None),
        FieldType::Integer => {
            let v = match cell {
                Cell::Int(i) => Some(*i),
                Cell::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Some(*x as i64),
                _ => text.strip_prefix('+').unwrap_or(text).parse::<i64>().ok(),
            };
            match v {
                Some(v) => (
                    same(
                        plain_integer(text) && matches!(cell, Cell::Text(_)),
                        &|| v.to_string(),
                    ),
                    Some(Bound::Number(v.into())),
                ),
                None => return Err(err("type", "is not a whole number".into())),
            }
        }
        FieldType::Decimal {
            decimal_sep,
            thousands_sep,
        } => match decimal_of(cell, text, *decimal_sep, *thousands_sep) {
            Some(d) => (
                same(
                    *decimal_sep == '.' && plain_decimal(text) && matches!(cell, Cell::Text(_)),
                    &|| d.to_string(),
                ),
                Some(Bound::Number(d)),
            ),
            None => return Err(err("type", "is not a decimal number".into())),
        },
        FieldType::Date { format } => {
            let parsed = match cell {
                Cell::DateTime(s) => s.get(..10).and_then(crate::canonical::parse_iso_date),
                _ if format == "%Y-%m-%d" => crate::canonical::parse_iso_date(text),
                _ => chrono::NaiveDate::parse_from_str(text, format).ok(),
            };
            match parsed {
                Some(d) => (
                    same(
                        format == "%Y-%m-%d" && matches!(cell, Cell::Text(_)) && iso_shaped(text),
                        &|| crate::canonical::format_iso_date(d),
                    ),
                    Some(Bound::Date(d)),
                ),
                None => {
                    return Err(err(
                        "type",
                        format!("is not a valid date in the format {format}"),
                    ))
                }
            }
        }
        FieldType::DateTime(spec) => {
            let parsed = match cell {
                Cell::DateTime(s) => spec.from_cell(s),
                _ => spec.parse(text),
            };
            match parsed {
                Some(d) => (
                    Cow::Owned(super::datetime::iso(&d)),
                    Some(Bound::DateTime(d)),
                ),
                None => {
                    return Err(err(
                        "type",
                        format!("is not a valid date-time {}", spec.describe()),
                    ))
                }
            }
        }
        FieldType::Boolean {
            true_words,
            false_words,
        } => {
            let b = match cell {
                Cell::Bool(b) => Some(*b),
                _ => {
                    let l = text.to_lowercase();
                    if true_words.contains(&l) {
                        Some(true)
                    } else if false_words.contains(&l) {
                        Some(false)
                    } else {
                        None
                    }
                }
            };
            match b {
                Some(b) => {
                    return Ok(Some(Val {
                        text: Cow::Borrowed(if b { "true" } else { "false" }),
                        boolean: true,
                    }))
                }
                None => {
                    return Err(err(
                        "type",
                        format!(
                            "is not a yes/no value (true: {}; false: {})",
                            true_words.join(", "),
                            false_words.join(", ")
                        ),
                    ))
                }
            }
        }
        FieldType::Code { table } => match table.get(text) {
            Some(out) => (Cow::Borrowed(out), None),
            None => {
                let mut codes: Vec<&str> = table.codes().take(12).collect();
                if table.codes().len() > 12 {
                    codes.push("…");
                }
                return Err(err(
                    "code-list",
                    format!("is not an allowed code ({})", codes.join(", ")),
                ));
            }
        },
    };
    if let Some(b) = &bound {
        if let Some((rule, msg)) = check_bounds(f, b) {
            return Err(err(rule, msg));
        }
    }
    Ok(Some(Val {
        text: checked,
        boolean: false,
    }))
}

/// Whether `i64`'s `to_string` writes `text` back as it is: digits without a sign, `+`
/// or leading zero.
fn plain_integer(text: &str) -> bool {
    let b = text.as_bytes();
    !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1)
}

/// Whether a `Decimal` read from `text` writes it back as it is: unsigned digits, one
/// `.` with digits after it, no leading zero, short enough that nothing is rounded.
fn plain_decimal(text: &str) -> bool {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    plain_integer(int)
        && (frac.is_empty() || frac.bytes().all(|c| c.is_ascii_digit()))
        && !text.ends_with('.')
        && text.len() <= 20
}

/// `DDDD-DD-DD`: the text of a `%Y-%m-%d` date that `format_iso_date` writes back as it
/// is once it has been read as a real day.
fn iso_shaped(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn render(t: &Template, vals: &[Option<Val>]) -> String {
    let mut out = String::new();
    for p in &t.0 {
        match p {
            Piece::Text(s) => out.push_str(s),
            Piece::Field(i) => {
                if let Some(Some(v)) = vals.get(*i) {
                    out.push_str(&v.text);
                }
            }
        }
    }
    out
}

/// Produces one mapped value; `Ok(None)` leaves the target out (empty source).
fn map_value<'a>(
    def: &'a TabularDef,
    mv: &'a MapValue,
    vals: &'a [Option<Val>],
) -> Result<Option<Body<'a>>, Reason> {
    let val = |i: &usize| vals.get(*i).and_then(Option::as_ref);
    Ok(match mv {
        MapValue::Const(v) => Some(Body::Json(v)),
        MapValue::Field(i) => val(i).map(Val::body),
        MapValue::DateOf(i) => val(i).map(|v| {
            let day = v.text.split('T').next().unwrap_or_default();
            Body::Str(Cow::Borrowed(day))
        }),
        MapValue::Template(t) => {
            let s = render(t, vals);
            (!s.is_empty()).then_some(Body::Str(Cow::Owned(s)))
        }
        MapValue::Translate {
            field,
            table,
            default,
        } => match val(field) {
            None => default.as_deref().map(|d| Body::Str(Cow::Borrowed(d))),
            Some(v) => match table.get(v.text.as_ref()).or(default.as_ref()) {
                Some(s) => Some(Body::Str(Cow::Borrowed(s))),
                None => {
                    let f = &def.fields[*field];
                    let shown = if f.sensitive {
                        mask(&v.text)
                    } else {
                        v.text.to_string()
                    };
                    return Err(Reason::new(
                        "translate",
                        format!("{}: no translation for '{shown}'", f.name),
                    )
                    .field(f.name.clone())
                    .value(shown));
                }
            },
        },
    })
}

fn map_object<'a>(
    def: &'a TabularDef,
    entries: &'a [(String, MapValue)],
    vals: &'a [Option<Val>],
) -> Result<Vec<(&'a str, Body<'a>)>, Reason> {
    let mut obj = Vec::with_capacity(entries.len() + 1);
    for (target, mv) in entries {
        if let Some(v) = map_value(def, mv, vals)? {
            obj.push((target.as_str(), v));
        }
    }
    Ok(obj)
}

fn evaluate(
    def: &TabularDef,
    binding: &[usize],
    label: &str,
    rows: &[JobRow],
    flags: Flags,
) -> Evaluation {
    let mut verdicts = Vec::with_capacity(rows.len());
    let mut values: Vec<Option<Vec<Option<Val>>>> = Vec::with_capacity(rows.len());
    let head_fields = &def.head_fields;
    let mut first: Option<usize> = None;
    for (r, row) in rows.iter().enumerate() {
        if row.blank {
            verdicts.push(LineVerdict::Skipped("blank line".into()));
            values.push(None);
            continue;
        }
        let verdict = if let Some(p) = &row.problem {
            Err((**p).clone())
        } else if flags.oversize {
            Err(Reason::new(
                "group-too-large",
                format!(
                    "{label} has more than {} lines (max_unit_lines); rejected without being buffered",
                    flags.max
                ),
            ))
        } else if flags.split {
            Err(Reason::new(
                "group-split",
                format!(
                    "{label} appeared earlier in the file and its group was already closed: rows of one group must be contiguous"
                ),
            ))
        } else {
            let mut vals = Vec::with_capacity(def.fields.len());
            let mut bad = None;
            for i in 0..def.fields.len() {
                match check_cell(def, binding, row, i) {
                    Ok(v) => vals.push(v),
                    Err(e) => {
                        bad = Some(e);
                        break;
                    }
                }
            }
            match bad {
                Some(e) => Err(e),
                None => {
                    // Fields that feed the record header must agree across the group.
                    let clash = first.and_then(|f0| {
                        let v0 = values[f0].as_ref()?;
                        head_fields.iter().find(|&&i| v0[i] != vals[i]).copied()
                    });
                    match clash {
                        Some(i) => {
                            let shown = vals[i]
                                .as_ref()
                                .map(|v| v.text.to_string())
                                .unwrap_or_default();
                            let shown = if def.fields[i].sensitive {
                                mask(&shown)
                            } else {
                                shown
                            };
                            Err(fail(
                                def,
                                binding,
                                row,
                                i,
                                "group-inconsistent",
                                &shown,
                                format!(
                                    "differs from the first line of {label} (line {})",
                                    rows[first.unwrap_or(0)].pos.line
                                ),
                            ))
                        }
                        None => Ok(vals),
                    }
                }
            }
        };
        match verdict {
            Ok(vals) => {
                first.get_or_insert(r);
                values.push(Some(vals));
                verdicts.push(LineVerdict::Ok);
            }
            Err(e) => {
                values.push(None);
                verdicts.push(LineVerdict::rejected(e));
            }
        }
    }

    // Mapping of the lines (per row) can still fail on a missing translation.
    let mut lines = Vec::new();
    if let Some(lmap) = &def.map.lines {
        for (r, vals) in values.iter().enumerate() {
            if let Some(vals) = vals {
                match map_object(def, lmap, vals) {
                    Ok(o) => lines.push(Body::Map(o)),
                    Err(e) => verdicts[r] = LineVerdict::rejected(e),
                }
            }
        }
    }
    // The record header comes from the first good row; a failed translation there is
    // that row's fault.
    let mut header = None;
    if let Some(f0) = first {
        if !verdicts
            .iter()
            .any(|v| matches!(v, LineVerdict::Rejected(_)))
        {
            match map_object(def, &def.map.header, values[f0].as_deref().unwrap_or(&[])) {
                Ok(obj) => header = Some(obj),
                Err(e) => verdicts[f0] = LineVerdict::rejected(e),
            }
        }
    }
    let mut unit_errors = Vec::new();
    let mut records = Vec::new();
    if let Some(f0) = verdicts
        .iter()
        .position(|v| matches!(v, LineVerdict::Rejected(_)))
    {
        let rule = match &verdicts[f0] {
            LineVerdict::Rejected(r) => r.rule.clone(),
            _ => String::new(),
        };
        let line = rows[f0].pos.line;
        let at = if rows[f0].sheet.is_some() {
            format!("row {}", rows[f0].row_number)
        } else {
            format!("line {line}")
        };
        for v in verdicts.iter_mut() {
            if matches!(v, LineVerdict::Ok) {
                *v = LineVerdict::rejected(Reason::new(
                    "rejected-with-document",
                    format!("{label} is rejected as a whole: {at} broke rule '{rule}'"),
                ));
            }
        }
    } else if let (Some(f0), Some(mut obj)) = (first, header) {
        let vals = values[f0].as_deref().unwrap_or(&[]);
        if def.map.lines.is_some() {
            obj.push(("lines", Body::List(lines)));
        }
        let key = render(&def.key, vals);
        match Record::build_body(def.map.entity, key, Body::Map(obj)) {
            Ok(r) => records.push(r),
            Err(e) => unit_errors.push(e),
        }
    }
    Evaluation {
        key: document_key(def, rows, &values),
        verdicts,
        unit_errors,
        records,
        ..Evaluation::default()
    }
}

/// The document's business key as its rows state it, for every line of the unit, rejected
/// or not: from the first row that gives it, using a field's checked value where the row
/// passed its checks and the cell's own text where it did not. Sensitive parts are masked
/// (the key is shown in reject reports).
fn document_key(
    def: &TabularDef,
    rows: &[JobRow],
    values: &[Option<Vec<Option<Val>>>],
) -> Option<String> {
    rows.iter().zip(values).find_map(|(row, vals)| {
        if row.blank {
            return None;
        }
        let mut key = String::new();
        let mut any = false;
        for piece in &def.key.0 {
            match piece {
                Piece::Text(t) => key.push_str(t),
                Piece::Field(i) => {
                    // Borrowed: the key being built is the one copy made of it.
                    let text: Cow<str> = match vals {
                        Some(v) => v
                            .get(*i)
                            .and_then(Option::as_ref)
                            .map_or(Cow::Borrowed(""), |v| Cow::Borrowed(&*v.text)),
                        None => row.cells.get(*i).map_or(Cow::Borrowed(""), trimmed_text),
                    };
                    any |= !text.is_empty();
                    if def.fields[*i].sensitive {
                        key.push_str(&mask(&text));
                    } else {
                        key.push_str(&text);
                    }
                }
            }
        }
        any.then_some(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testing::{ctx_for, read_all_with};
    use crate::format::{DefFile, Diagnostics, UnitStatus};

    /// A cell's text is kept as the checked value only where writing the value gives the
    /// same text back; everything else is written afresh.
    #[test]
    fn cells_kept_as_their_value_are_the_ones_that_write_back_the_same() {
        let texts = [
            "0",
            "7",
            "10",
            "007",
            "+5",
            "-3",
            "-0",
            "",
            "1.5",
            "2.50",
            "0.001",
            ".5",
            "5.",
            "1,000",
            "1e3",
            "12345678901234567890",
            "123456789012345678901.5",
            "2026-11-02",
            "2026-1-02",
            "0999-12-31",
            "20261102",
        ];
        for t in texts {
            // (A text that does not parse is refused before it could be kept.)
            if let Some(v) = t.parse::<i64>().ok().filter(|_| plain_integer(t)) {
                assert_eq!(v.to_string(), t, "integer {t}");
            }
            if let Some(d) = t.parse::<Decimal>().ok().filter(|_| plain_decimal(t)) {
                assert_eq!(d.to_string(), t, "decimal {t}");
            }
            if let Some(d) = iso_shaped(t)
                .then(|| crate::canonical::parse_iso_date(t))
                .flatten()
            {
                assert_eq!(crate::canonical::format_iso_date(d), t, "date {t}");
            }
        }
        assert!(plain_integer("10") && !plain_integer("007") && !plain_integer("+5"));
        assert!(plain_decimal("2.50") && !plain_decimal(".5") && !plain_decimal("5."));
        assert!(iso_shaped("2026-11-02") && !iso_shaped("2026-1-02"));
    }

    pub(super) const DEF: &str = r#"
kind = "csv"
name = "t"
key = "{order_no}"
group_by = "order_no"
policy = "accept-valid"
[match]
filename = "t*.csv"
header = ["order_no", "qty"]
[[fields]]
name = "order_no"
required = true
[[fields]]
name = "qty"
type = "decimal"
exclusive_min = 0
[[fields]]
name = "cur"
type = "code"
values = ["EUR", "USD"]
[map]
entity = "order"
[map.header]
order_no = "{order_no}"
currency = "{cur}"
[map.lines]
line_no = "{qty}"
quantity = "{qty}"
"#;

    pub(super) fn format(text: &str) -> TabularFormat {
        let table: toml::Table = toml::from_str(text).unwrap();
        let def = DefFile {
            path: "t.toml".into(),
            kind: table["kind"].as_str().unwrap().to_string(),
            text: text.into(),
            table,
        };
        let mut d = Diagnostics::default();
        let t = super::super::def::check(&def, &mut d);
        assert!(d.is_empty(), "{:?}", d.errors);
        TabularFormat::new(t.unwrap())
    }

    fn run(
        data: &str,
        limits: Option<crate::format::Limits>,
    ) -> Vec<(String, UnitStatus, Vec<String>)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, data).unwrap();
        let mut ctx = ctx_for(&p);
        if let Some(l) = limits {
            ctx.limits = l;
        }
        let f = format(DEF);
        let r = read_all_with(&f, &p, &ctx);
        assert!(r.error.is_none(), "{:?}", r.error);
        r.units
            .iter()
            .map(|u| {
                let rules = u
                    .eval
                    .verdicts
                    .iter()
                    .map(|v| match v {
                        LineVerdict::Ok => "ok".to_string(),
                        LineVerdict::Rejected(r) => r.rule.clone(),
                        LineVerdict::Skipped(s) => format!("skip:{s}"),
                    })
                    .collect();
                (u.label.clone(), u.status(), rules)
            })
            .collect()
    }

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_reappearing_group_is_rejected_as_split() {
        let got = run(
            "order_no,qty,cur\nA,1,EUR\nA,2,EUR\nB,1,USD\nA,3,EUR\n",
            None,
        );
        use UnitStatus::*;
        assert_eq!(
            got,
            vec![
                ("header".into(), Skipped, v(&["skip:header"])),
                ("order A".into(), Applied, v(&["ok", "ok"])),
                ("order B".into(), Applied, v(&["ok"])),
                ("order A".into(), Rejected, v(&["group-split"])),
            ]
        );
    }

    #[test]
    fn an_oversized_group_is_rejected_in_bounded_chunks() {
        let limits = crate::format::Limits {
            max_unit_lines: 2,
            ..Default::default()
        };
        let got = run(
            "order_no,qty,cur\nA,1,EUR\nA,1,EUR\nA,1,EUR\nA,1,EUR\nA,1,EUR\nB,1,EUR\n",
            Some(limits),
        );
        let shape: Vec<(String, usize, Vec<String>)> =
            got.into_iter().map(|(l, _, r)| (l, r.len(), r)).collect();
        let big = v(&["group-too-large", "group-too-large"]);
        assert_eq!(
            shape,
            vec![
                ("header".into(), 1, v(&["skip:header"])),
                ("order A".into(), 2, big.clone()),
                ("order A".into(), 2, big),
                ("order A".into(), 1, v(&["group-too-large"])),
                ("order B".into(), 1, v(&["ok"])),
            ]
        );
    }

    #[test]
    fn corrections_error_column_is_never_data_wherever_it_stands() {
        // Appended (as written), moved to the front, and short rows: the column is dropped
        // before binding and column counting, so "-1" in it is not a quantity.
        let got = run(
            "order_no,qty,cur,tallyman_error\nA,1,EUR,\"min: qty -1\"\nB,2,USD,\"x,y\"\n",
            None,
        );
        use UnitStatus::*;
        assert_eq!(got[1], ("order A".into(), Applied, v(&["ok"])));
        assert_eq!(got[2], ("order B".into(), Applied, v(&["ok"])));
        let got = run(
            "TALLYMAN_ERROR ,order_no,qty,cur\n-1,A,1,EUR\n,B,2,USD\nC,3,EUR\n",
            None,
        );
        assert_eq!(got[1].1, Applied);
        assert_eq!(got[2].1, Applied);
        // A row that lacks the column entirely is one column short, as it would be anyway.
        assert_eq!(got[3].2, v(&["column-count"]));
    }

    /// Cells move straight from row to job where the fields are the file's columns in
    /// order, and are picked out by name otherwise: both read the same documents, and a
    /// row of too few or too many columns is rejected the same way.
    #[test]
    fn fields_in_the_files_column_order_or_not_read_alike() {
        let read = |data: &str| {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("t.csv");
            std::fs::write(&p, data).unwrap();
            let r = read_all_with(&format(DEF), &p, &ctx_for(&p));
            assert!(r.error.is_none(), "{:?}", r.error);
            r.units
                .iter()
                .map(|u| format!("{:?} {:?}", u.eval.verdicts, u.eval.records))
                .collect::<Vec<_>>()
        };
        let in_order = read("order_no,qty,cur\nA,1,EUR\nA,2,EUR\nB,3,USD\nC,4\nD,5,EUR,x\n");
        let shuffled = read("cur,qty,order_no\nEUR,1,A\nEUR,2,A\nUSD,3,B\nEUR,4\nEUR,5,D,x\n");
        assert_eq!(in_order.len(), 5, "{in_order:?}");
        assert!(in_order[1].contains("quantity") && in_order[2].contains("USD"));
        assert!(in_order[3].contains("column-count"), "{}", in_order[3]);
        assert!(in_order[4].contains("column-count"), "{}", in_order[4]);
        assert_eq!(in_order, shuffled);
    }

    #[test]
    fn siblings_and_inconsistent_headers_reject_the_group() {
        let got = run(
            "order_no,qty,cur\nA,1,EUR\nA,-1,EUR\nB,1,EUR\nB,2,USD\nC,1,EUR\n",
            None,
        );
        assert_eq!(got[1].2, v(&["rejected-with-document", "min"]));
        assert_eq!(
            got[2].2,
            v(&["rejected-with-document", "group-inconsistent"])
        );
        assert_eq!(got[3].1, UnitStatus::Applied);
    }

    #[test]
    fn regression_rejected_documents_had_no_business_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "order_no,qty,cur\nA,1,EUR\nA,-1,EUR\nB,x,EUR\n,1,EUR\n").unwrap();
        let f = format(DEF);
        let r = read_all_with(&f, &p, &ctx_for(&p));
        let keys: Vec<(UnitStatus, Option<&str>)> = r
            .units
            .iter()
            .map(|u| (u.status(), u.eval.key.as_deref()))
            .collect();
        use UnitStatus::*;
        assert_eq!(
            keys,
            vec![
                (Skipped, None),
                (Rejected, Some("A")),
                // The key comes from the cell even when its row fails another check.
                (Rejected, Some("B")),
                (Rejected, None),
            ]
        );
    }

    #[test]
    fn over_long_records_are_refused() {
        let limits = crate::format::Limits {
            max_record_bytes: 64,
            ..Default::default()
        };
        let long = "x".repeat(500);
        let got = run(
            &format!("order_no,qty,cur\nA,1,EUR\n{long},1,EUR\nC,1,EUR\n"),
            Some(limits),
        );
        assert_eq!(got[2].2, v(&["record-too-long"]));
        assert_eq!(got[3].1, UnitStatus::Applied);
    }

    #[test]
    fn missing_header_column_is_a_positioned_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "\norder_no,quantity\nA,1\n").unwrap();
        let f = format(DEF);
        let r = read_all_with(&f, &p, &ctx_for(&p));
        let e = r.error.unwrap();
        assert_eq!(e.reason.rule, "header");
        assert_eq!(e.pos.map(|p| (p.line, p.byte)), Some((2, 1)));
        assert!(
            e.reason.message.contains("'qty', 'cur'"),
            "{}",
            e.reason.message
        );
    }

    struct MemRows(std::vec::IntoIter<Row>);
    impl RowSource for MemRows {
        fn next_row(&mut self) -> Result<Option<Row>, FileError> {
            Ok(self.0.next())
        }
    }

    fn sheet_row(n: u64, cells: Vec<Cell>) -> Row {
        Row {
            pos: Position::new(n, 0, n).with_locator(format!("Orders!A{n}")),
            sheet: Some("Orders".into()),
            row_number: n,
            raw: cells
                .iter()
                .map(Cell::to_text)
                .collect::<Vec<_>>()
                .join(","),
            cells,
        }
    }

    #[test]
    fn sheet_cells_are_located_and_typed_cells_accepted() {
        let f = format(&DEF.replace("kind = \"csv\"", "kind = \"sheet\""));
        let t = |s: &str| Cell::Text(s.into());
        let rows = vec![
            sheet_row(1, vec![t("order_no"), t("qty"), t("cur")]),
            sheet_row(2, vec![t("A"), Cell::Float(2.5), t("EUR")]),
            sheet_row(3, vec![t("B"), Cell::Int(-4), t("EUR")]),
            sheet_row(4, vec![Cell::Empty, Cell::Empty]),
            sheet_row(5, vec![t("C"), Cell::Error("#DIV/0!".into()), t("EUR")]),
        ];
        let p = Path::new("orders.xlsx");
        let mut rd = f.read_rows(Box::new(MemRows(rows.into_iter())), &ctx_for(p));
        let mut units = Vec::new();
        while let Some(mut u) = rd.next_unit().unwrap() {
            let e = u.evaluate();
            units.push((u, e));
        }
        assert_eq!(units.len(), 5);
        assert_eq!(units[1].1.records[0].body()["lines"][0]["quantity"], "2.5");
        let LineVerdict::Rejected(why) = &units[2].1.verdicts[0] else {
            panic!("{:?}", units[2].1)
        };
        assert_eq!(why.message, "Orders!B3: qty: must be greater than 0");
        assert_eq!(
            units[2].0.lines[0].pos.locator.as_deref(),
            Some("Orders!A3")
        );
        assert_eq!(units[3].0.label, "blank line");
        let LineVerdict::Rejected(why) = &units[4].1.verdicts[0] else {
            panic!()
        };
        assert_eq!(
            (why.rule.as_str(), why.message.as_str()),
            ("type", "Orders!B5: qty: spreadsheet error value #DIV/0!")
        );
    }

    #[test]
    fn sniff_scores_header_above_name() {
        let f = format(DEF);
        let head = b"order_no,qty,cur\nA,1,EUR\n";
        assert_eq!(
            f.sniff(&Probe {
                name: "t1.csv",
                head
            }),
            Some(SCORE_NAME + SCORE_HEADER)
        );
        assert_eq!(
            f.sniff(&Probe {
                name: "x.csv",
                head
            }),
            None
        );
        assert_eq!(
            f.sniff(&Probe {
                name: "t1.csv",
                head: b"a,b\n"
            }),
            None
        );
        let only_header = format(&DEF.replace("filename = \"t*.csv\"\n", ""));
        assert_eq!(
            only_header.sniff(&Probe {
                name: "x.csv",
                head
            }),
            Some(SCORE_HEADER)
        );
    }

    #[test]
    fn regression_date_values_with_a_time_were_unreadable() {
        // `5/19/2006 0:00:00` and `2012/09/26 12:00:00` are how real exports write them.
        let f = format(
            r#"
kind = "csv"
name = "dt"
key = "{order_no}"
policy = "accept-valid"
[match]
filename = "dt*.csv"
[[fields]]
name = "order_no"
[[fields]]
name = "ordered"
type = "date"
format = "%m/%d/%Y %H:%M:%S"
[[fields]]
name = "changed"
type = "datetime"
format = "%Y/%m/%d %H:%M:%S"
timezone = "+01:00"
min = "2010-01-01T00:00:00Z"
[map]
entity = "order"
[map.header]
order_no = "{order_no}"
order_date = "{ordered}"
[map.lines]
line_no = "1"
quantity = "1"
requested_date = "{changed}"
description = "changed {changed}"
"#,
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dt.csv");
        std::fs::write(
            &p,
            "order_no,ordered,changed\nA,5/19/2006 0:00:00,2012/09/26 12:00:00\nB,5/19/2006 0:00:00,2006/05/19 00:00:00\nC,5/32/2006 0:00:00,2012/09/26 12:00:00\n",
        )
        .unwrap();
        let r = read_all_with(&f, &p, &ctx_for(&p));
        assert!(r.error.is_none(), "{:?}", r.error);
        let body = &r.units[1].eval.records[0].body();
        assert_eq!(body["order_date"], "2006-05-19");
        assert_eq!(body["lines"][0]["requested_date"], "2012-09-26");
        assert_eq!(
            body["lines"][0]["description"],
            "changed 2012-09-26T12:00:00+01:00"
        );
        let why = |u: usize| match &r.units[u].eval.verdicts[0] {
            LineVerdict::Rejected(x) => x.message.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            why(2),
            "column 'changed': changed: must be at least 2010-01-01T00:00:00Z"
        );
        assert_eq!(
            why(3),
            "column 'ordered': ordered: is not a valid date in the format %m/%d/%Y %H:%M:%S"
        );
    }

    #[test]
    fn european_numbers_dates_booleans_and_translations() {
        let f = format(
            r#"
kind = "csv"
name = "eu"
key = "P-{sku}"
[match]
filename = "eu*.csv"
[csv]
delimiter = ";"
encoding = "windows-1252"
[[fields]]
name = "sku"
column = "Artikel"
[[fields]]
name = "price"
column = "Preis"
type = "decimal"
decimal_separator = ","
thousands_separator = "."
[[fields]]
name = "from"
column = "Gültig ab"
type = "date"
format = "%d.%m.%Y"
[[fields]]
name = "active"
column = "Aktiv"
type = "boolean"
true_values = ["ja"]
false_values = ["nein"]
[[fields]]
name = "unit"
column = "Einheit"
[map]
entity = "product"
[map.header]
sku = "{sku}"
price = "{price}"
valid_from = "{from}"
active = "{active}"
uom = { field = "unit", translate = { Stk = "EA" } }
description = "{sku} ab {from}"
"#,
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eu.csv");
        std::fs::write(
            &p,
            b"Artikel;Preis;G\xfcltig ab;Aktiv;Einheit\nA1;1.234,50;31.01.2026;ja;Stk\nA2;12.5;01.02.2026;nein;Stk\nA3;1;01.02.2026;vielleicht;Stk\nA4;1;01.02.2026;ja;Kiste\n",
        )
        .unwrap();
        let r = read_all_with(&f, &p, &ctx_for(&p));
        assert!(r.error.is_none(), "{:?}", r.error);
        let body = &r.units[1].eval.records[0];
        assert_eq!(body.key, "P-A1");
        assert_eq!(
            body.body(),
            serde_json::json!({"sku": "A1", "price": "1234.50", "valid_from": "2026-01-31",
                "active": true, "uom": "EA", "description": "A1 ab 2026-01-31"})
        );
        let rule = |u: usize| match &r.units[u].eval.verdicts[0] {
            LineVerdict::Rejected(x) => (x.rule.clone(), x.message.clone()),
            other => panic!("{other:?}"),
        };
        // "12.5" has a dot where the decimal separator is a comma: not silently 125.
        assert_eq!(rule(2).0, "type");
        assert_eq!(
            rule(3),
            (
                "type".into(),
                "column 'Aktiv': active: is not a yes/no value (true: ja; false: nein)".into()
            )
        );
        assert_eq!(
            rule(4),
            (
                "translate".into(),
                "unit: no translation for 'Kiste'".into()
            )
        );
    }
}
