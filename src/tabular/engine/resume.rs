//! Restarting a CSV read mid-file, so a resumed file does not parse its committed part
//! again.
//!
//! A mark is the start of the next unit and what the reader cannot find again from there:
//! the column count of a file without a header, and the records before it. What it also
//! needs — the closed group keys that make a reappearing key a `group-split` — may be a
//! million hashes, too many for a mark. They are appended to the keys log at every mark
//! (`crate::tabular::key_log`), and the mark counts them: a restarted reader reads the header
//! as usual, loads the keys and passes over the committed part unread. Without a usable log
//! (none kept, or damaged) it passes over that part picking out only the group column
//! ([`CsvRows::skip_to`]: memchr jumps where they find what csv-core would, csv-core
//! elsewhere), which rebuilds exactly the set an uninterrupted read had at the mark: every
//! data row's key closes its group before any later unit starts. Where that equivalence
//! would not hold — spreadsheets (their rows are not a byte stream), a unit that continues
//! a group cut at `max_unit_lines` (its group is open across the mark) — no mark is given,
//! and the engine skips committed units as before.
//!
//! [`CsvRows::skip_to`]: crate::tabular::csv_rows::CsvRows::skip_to

// `FileError` is the shared error type of every format (see the engine's module).
#![allow(clippy::result_large_err)]

use super::{key_hash, positional_binding, RowsIn, TabularReader, MAX_CLOSED_KEYS};
use crate::format::{FileError, Mark};
use crate::tabular::key_log::LogMark;
use crate::unit::Position;

impl TabularReader {
    /// The mark just after the unit `next_unit` returned last (see `UnitReader::mark`),
    /// with the closed group keys before it written to the keys log (see
    /// `crate::tabular::key_log`) when one is kept.
    pub(super) fn restart_mark(&mut self) -> Option<Mark> {
        let RowsIn::Csv(rows) = &self.src else {
            return None;
        };
        if self.done || !self.past_header() {
            return None;
        }
        // Units wait in `out`, then in the open group (whose rows come before any blank
        // lines read after them), then in blank lines; else nothing of the next unit is read.
        // With the place, the records before it where that is known: a row's ordinal less
        // one (a blank line's position has no ordinal).
        let (seq, pos, continues) = match self.out.front() {
            Some((u, c)) => (u.seq, u.lines.first()?.pos.clone(), *c),
            None => match (&self.group, self.blanks.first()) {
                (Some(g), _) => (self.seq, g.lines.first()?.pos.clone(), g.continues),
                (None, Some((_, l))) => (self.seq, l.pos.clone(), false),
                (None, None) => {
                    let p = rows.position();
                    (self.seq, Position::new(p.line, p.byte, p.record + 1), false)
                }
            },
        };
        if continues {
            return None;
        }
        let mut state = serde_json::Map::new();
        if let (Some(w), false) = (self.width, self.def.header) {
            state.insert("width".into(), w.into());
        }
        if let Some(before) = pos.record.checked_sub(1) {
            if let Some(log) = self.keys.mark_before(seq) {
                state.insert("records".into(), before.into());
                state.insert("keys".into(), log.count.into());
                state.insert("keys_sum".into(), log.sum.into());
            }
        }
        Some(Mark {
            seq,
            byte: pos.byte,
            line: pos.line,
            record: pos.record,
            state: if state.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::Value::Object(state)
            },
        })
    }

    /// Continues at `mark` (see `UnitReader::seek`). `Ok(false)` leaves the reader used:
    /// the caller opens the file again.
    pub(super) fn restart_at(&mut self, mark: &Mark) -> Result<bool, FileError> {
        if !matches!(self.src, RowsIn::Csv(_)) {
            return Ok(false);
        }
        // The header (and rows skipped before it) are read as usual: they bind the columns.
        while !self.past_header() {
            match self.src.next()? {
                Some(item) => self.handle(item)?,
                None => return Ok(false),
            }
        }
        if mark.seq < self.seq || self.group.is_some() || !self.blanks.is_empty() {
            return Ok(false);
        }
        if self.binding.is_empty() {
            self.set_binding(positional_binding(&self.def));
        }
        let landed = match self.load_keys(mark) {
            Some((keys, records)) => self.pass_unread(mark, records, keys)?,
            None => self.pass_scanning(mark)?,
        };
        if !landed {
            return Ok(false);
        }
        if let Some(w) = mark.state.get("width").and_then(serde_json::Value::as_u64) {
            self.width = usize::try_from(w).ok();
        }
        self.out.clear();
        self.seq = mark.seq;
        Ok(true)
    }

    /// The closed group keys before `mark` from the keys log, with the records before the
    /// mark, if the mark counts on a log that still holds them as they were.
    fn load_keys(&mut self, mark: &Mark) -> Option<(Vec<u128>, u64)> {
        let count = mark.state.get("keys")?.as_u64()?;
        let sum = mark.state.get("keys_sum")?.as_str()?.to_string();
        let records = mark.state.get("records")?.as_u64()?;
        let keys = self
            .keys
            .load(&LogMark { count, sum }, MAX_CLOSED_KEYS as u64)?;
        Some((keys, records))
    }

    /// Takes the closed keys from the log and passes over the committed part unread.
    fn pass_unread(
        &mut self,
        mark: &Mark,
        records: u64,
        keys: Vec<u128>,
    ) -> Result<bool, FileError> {
        let RowsIn::Csv(rows) = &mut self.src else {
            return Ok(false);
        };
        if !rows.discard_to(mark.byte, mark.line, records)? {
            return Ok(false);
        }
        tracing::info!(
            "the {} closed group keys before the mark are taken from the keys log; the committed part is not read again",
            keys.len()
        );
        self.closed.extend(keys);
        Ok(true)
    }

    /// Passes over the committed part picking out the group column, which rebuilds the
    /// closed keys (the log, if one is kept, is given them all again).
    fn pass_scanning(&mut self, mark: &Mark) -> Result<bool, FileError> {
        let col = self.group_column();
        let RowsIn::Csv(rows) = &mut self.src else {
            return Ok(false);
        };
        if col.is_some() {
            tracing::info!("no usable keys log: the committed part is scanned for its group keys");
        }
        let (closed, log) = (&mut self.closed, &mut self.keys);
        // Rows of one group follow each other: hash a key once per run, not once per row.
        let mut last = String::new();
        let landed = rows.skip_to(mark.byte, col, |key| {
            if key != last && closed.len() < MAX_CLOSED_KEYS {
                let hash = key_hash(key);
                if closed.insert(hash) {
                    log.note(0, hash);
                }
                key.clone_into(&mut last);
            }
        })?;
        Ok(landed && rows.position().line == mark.line)
    }

    /// Whether the header and the rows skipped before it are read.
    fn past_header(&self) -> bool {
        self.header_done && self.rows_seen >= self.def.skip_rows
    }

    /// The group key's column in the file's own numbering (before the corrections file's
    /// "what was wrong" columns are dropped), if the definition groups rows.
    fn group_column(&self) -> Option<usize> {
        let c = *self.binding.get(self.def.group_by?)?;
        if c == usize::MAX {
            return None;
        }
        Some(
            self.dropped
                .iter()
                .fold(c, |r, &d| if d <= r { r + 1 } else { r }),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::format::testing::{
        assert_restarts_match, assert_restarts_match_keeping, ctx_for, read_all_with,
    };
    use crate::format::{Limits, OpenContext};
    use crate::tabular::engine::tests::{format, DEF};

    fn restarts(def: &str, data: &[u8], limits: Option<Limits>) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, data).unwrap();
        let mut ctx: OpenContext = ctx_for(&p);
        if let Some(l) = limits {
            ctx.limits = l;
        }
        let f = format(def);
        assert!(read_all_with(&f, &p, &ctx).error.is_none());
        let scanned = assert_restarts_match(&f, &p, &ctx);
        // Again with the keys log, and with it damaged after the uninterrupted read: the
        // same restarts, through the log or (damaged) by scanning.
        let state = dir.path().join("staging").join("restart-state");
        let logged = assert_restarts_match_keeping(&f, &p, &ctx, &state, &|| {});
        assert_eq!(logged.len(), scanned);
        let flip = || {
            let mut b = std::fs::read(&state).unwrap_or_default();
            if let Some(x) = b.first_mut() {
                *x ^= 1;
            }
            std::fs::write(&state, b).unwrap();
        };
        let damaged = assert_restarts_match_keeping(&f, &p, &ctx, &state, &flip);
        assert_eq!(damaged, logged, "the same marks");
        scanned
    }

    /// The marks of a read that keeps the keys log, and the keys each counts on.
    fn logged_marks(def: &str, data: &[u8]) -> Vec<(u64, Option<u64>)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, data).unwrap();
        let state = dir.path().join("restart-state");
        let marks = assert_restarts_match_keeping(&format(def), &p, &ctx_for(&p), &state, &|| {});
        marks
            .iter()
            .map(|m| (m.seq, m.state.get("keys").and_then(|k| k.as_u64())))
            .collect()
    }

    #[test]
    fn a_restart_takes_the_closed_keys_from_the_log_not_from_the_file() {
        // Seqs 0..=7: A, B, C (with a quoted line break), D (short row), E, A (split),
        // the keyless row, F, C (split).
        let marks = logged_marks(DEF, GROUPED);
        let counted: Vec<(u64, u64)> = marks
            .iter()
            .filter_map(|&(seq, keys)| Some((seq, keys?)))
            .collect();
        // Before each unit, the distinct keys closed before it; blank-line units give none.
        assert!(counted.len() >= 6, "{marks:?}");
        for w in counted.windows(2) {
            assert!(w[0].1 <= w[1].1, "{counted:?}");
        }
        let last = counted.last().unwrap();
        assert_eq!(last.1, 6, "A B C D E F, each once: {counted:?}");
    }

    /// Groups, a key that comes back after its group closed (split) on either side of
    /// every mark, blank lines inside and between groups, CRLF and CR-only line ends, a
    /// quoted line break, a row of the wrong width, a BOM.
    const GROUPED: &[u8] = b"\xEF\xBB\xBForder_no,qty,cur\r\n\
        A,1,EUR\r\nA,2,EUR\r\n\r\nB,1,USD\r\n\nC,\"1\r\n\",EUR\rD,1\r\n\
        E,1,EUR\r\n\r\n\r\nE,2,EUR\r\nA,3,EUR\r\n,1,EUR\r\nF,1,EUR\r\nC,9,EUR\r\n\r\n";

    #[test]
    fn a_grouped_file_restarts_at_every_mark_as_if_read_through() {
        assert!(restarts(DEF, GROUPED, None) >= 8);
    }

    #[test]
    fn groups_cut_at_max_unit_lines_give_no_mark_inside_them() {
        let limits = Limits {
            max_unit_lines: 2,
            ..Limits::default()
        };
        let data = b"order_no,qty,cur\nA,1,EUR\nA,2,EUR\nA,3,EUR\nB,1,EUR\nA,4,EUR\n";
        // A|A (cut) A(continues) B A(split): no mark may fall on the continuation.
        assert_eq!(restarts(DEF, data, Some(limits)), 3);
    }

    #[test]
    fn a_file_without_header_restarts_with_its_width_and_skipped_rows() {
        let def = DEF
            .replace(
                "policy = \"accept-valid\"\n",
                "policy = \"accept-valid\"\n[csv]\nheader = false\nskip_rows = 1\n",
            )
            .replace("header = [\"order_no\", \"qty\"]\n", "")
            .replace("name = \"order_no\"\n", "name = \"order_no\"\ncolumn = 0\n")
            .replace("name = \"qty\"\n", "name = \"qty\"\ncolumn = 1\n")
            .replace("name = \"cur\"\n", "name = \"cur\"\ncolumn = 2\n");
        let data = b"exported 2026-12-01\nA,1,EUR\nA,2,EUR\nB,1\nB,2,EUR\nC,1,EUR\nA,5,EUR\n";
        assert!(restarts(&def, data, None) >= 3);
    }

    #[test]
    fn a_corrections_file_restarts_with_its_error_column_dropped() {
        let data =
            b"tallyman_error,order_no,qty,cur\nbad qty,A,1,EUR\n,A,2,EUR\nx,B,1,EUR\n,A,1,EUR\n";
        assert!(restarts(DEF, data, None) >= 2);
    }
}
