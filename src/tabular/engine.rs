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

mod evaluate;
mod reader;

use std::path::Path;
use std::sync::Arc;

use super::charset::{self, Encoding};
use super::csv_rows::{CsvRows, HeadThenFile};
use super::def::{Source, TabularDef};
use super::{Cell, RowSource};
use crate::format::{FileError, Format, NearMiss, OpenContext, Policy, Probe, UnitReader};
use reader::RowsIn;

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
}

// Here because both sides use it: the reader for every row's group key, the job for the
// business key of a row that failed its checks.
/// A cell's text trimmed, borrowed where the cell holds text (the group key of every row).
fn trimmed_text(cell: &Cell) -> std::borrow::Cow<'_, str> {
    match cell {
        Cell::Text(s) => std::borrow::Cow::Borrowed(crate::unit::trim(s)),
        other => std::borrow::Cow::Owned(other.to_text().trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testing::{ctx_for, read_all_with};
    use crate::format::{DefFile, Diagnostics, UnitStatus};
    use crate::unit::LineVerdict;

    // The definition and the helpers up to `v` serve the reader's, the job's and the
    // resume tests as well: they run the whole engine over a small file.
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

    pub(super) fn run(
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

    pub(super) fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
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
}
