//! The reader side of the tabular engine: the one sequential pass over a file's rows. It
//! classifies each row (skipped, header, blank, data), binds fields to columns, counts
//! columns and cuts the stream into numbered units, giving each unit's job only the cells
//! it needs. It is a module of its own because it holds all the state that must follow the
//! file in order — the open group, the closed group keys, pending blank lines, the restart
//! marks (`resume`) — none of which a job ever sees.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use super::evaluate::{evaluate, Flags};
use super::{trimmed_text, TabularFormat, RAW_CAP};
use crate::format::{FileError, OpenContext, UnitReader};
use crate::tabular::csv_rows::{CsvItem, CsvRows};
use crate::tabular::def::{Source, TabularDef};
use crate::tabular::key_log::KeyLog;
use crate::tabular::{Cell, Row, RowSource};
use crate::unit::{cap_raw, capped, mask, Position, Reason, SourceLine, Unit};

/// How many closed group keys are remembered for `group-split` (16-byte hashes; about
/// 32 MiB with the set's overhead at the cap).
const MAX_CLOSED_KEYS: usize = 1 << 20;

/// The closed group keys' hashes. They are blake3 of the key, but an unkeyed hash the
/// input chooses keys for, so the set still places them by a per-process random seed;
/// foldhash does that for a `u128` several times faster than the standard SipHash (which
/// was 3% of a resumed CSV run's instructions).
type ClosedKeys = HashSet<u128, foldhash::fast::RandomState>;

mod header;
#[path = "resume.rs"]
mod resume;

use header::positional_binding;

// Here rather than beside `TabularFormat`: it sets every part of the reader's state.
impl TabularFormat {
    pub(super) fn reader<'a>(&'a self, src: RowsIn, ctx: &OpenContext) -> Box<dyn UnitReader + 'a> {
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

pub(super) enum RowsIn {
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
pub(super) struct JobRow {
    pub(super) pos: Position,
    pub(super) sheet: Option<String>,
    pub(super) row_number: u64,
    /// Cell per field (field order), `Cell::Empty` when the column is absent.
    pub(super) cells: Vec<Cell>,
    /// Boxed, as a verdict's reason is: nearly every row has none, and a row moves from
    /// the reading thread through a group to a worker.
    pub(super) problem: Option<Box<Reason>>,
    pub(super) blank: bool,
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
    /// Header columns named [`crate::tabular::ERROR_COLUMN`] (a corrections file's "what was
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
    /// `closed` as it grows, kept for a resume (see `crate::tabular::key_log`; CSV only).
    keys: KeyLog,
    /// Units cut and numbered, not yet returned; each says whether it continues the
    /// group before it (cut at `max_unit_lines`), where no reader may restart.
    out: VecDeque<(Unit, bool)>,
    done: bool,
}

/// Removes the columns at `ascending` positions that the row has.
fn drop_columns<T>(cells: &mut Vec<T>, ascending: &[usize]) {
    for &i in ascending.iter().rev() {
        if i < cells.len() {
            cells.remove(i);
        }
    }
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

    /// Takes one item of the file: a blank line, a skipped row, the header, or a data row,
    /// which joins the open group, starts a new one, or is a unit of its own.
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
            return self.take_header(&row, problem);
        }
        if self.binding.is_empty() {
            self.set_binding(positional_binding(&self.def));
        }
        let problem = problem.or_else(|| self.width_problem(&row));
        let line = self.take_source_line(&mut row);
        let jr = self.take_job_row(&mut row, problem);
        let key = self
            .def
            .group_by
            .and_then(|g| jr.cells.get(g))
            .map(trimmed_text);
        match key {
            Some(key) if !key.is_empty() => {
                if self.group.as_ref().is_some_and(|g| g.key == *key) {
                    self.continue_group(jr, line);
                } else {
                    let key = key.into_owned();
                    self.start_group(key, jr, line, false);
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

    /// The first row after the skipped ones: the header, bound to the fields, or the error
    /// that it cannot be read.
    fn take_header(&mut self, row: &Row, problem: Option<Box<Reason>>) -> Result<(), FileError> {
        self.header_done = true;
        if let Some(p) = problem {
            return Err(FileError {
                pos: Some(row.pos.clone()),
                reason: Reason::new(
                    "header",
                    format!("header row unreadable ({}): {}", p.rule, p.message),
                ),
            });
        }
        self.bind_header(row)?;
        let line = self.source_line(row);
        self.flush_blanks();
        self.skipped("header", vec![line]);
        Ok(())
    }

    /// A CSV row with more or fewer columns than the header (or the first row) has; the
    /// first data row of a headerless file sets the width.
    fn width_problem(&mut self, row: &Row) -> Option<Box<Reason>> {
        if !matches!(self.src, RowsIn::Csv(_)) {
            return None;
        }
        let width = *self.width.get_or_insert(row.cells.len());
        (row.cells.len() != width).then(|| {
            Box::new(
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
            )
        })
    }

    /// A row of the open group's key: it joins the group with the blank lines before it,
    /// unless the group is at the unit size limit, when the group is cut there and goes on
    /// as a new unit under the same key.
    fn continue_group(&mut self, jr: JobRow, line: SourceLine) {
        let Some(g) = self.group.as_mut() else {
            return;
        };
        if g.rows.len() + self.blanks.len() >= self.max_unit_lines {
            g.oversize = true;
            let key = g.key.clone();
            self.start_group(key, jr, line, true);
            return;
        }
        for (r, l) in std::mem::take(&mut self.blanks) {
            g.rows.push(r);
            g.lines.push(l);
        }
        g.rows.push(jr);
        g.lines.push(line);
    }

    /// Closes the open group and opens one for `key` with this row. A group opened because
    /// the one before reached the size limit (`continuing`) is that group going on; any
    /// other is split when its key was closed before.
    fn start_group(&mut self, key: String, jr: JobRow, line: SourceLine, continuing: bool) {
        self.flush_group();
        self.flush_blanks();
        let hash = key_hash(&key);
        let split = !continuing && self.closed.contains(&hash);
        let (rows, lines) = self.group_lists(jr, line);
        self.group = Some(Group {
            hash,
            key,
            rows,
            lines,
            split,
            oversize: continuing,
            continues: continuing,
        });
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

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
