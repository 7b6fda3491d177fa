//! Format plug-ins: how a file is recognised, read into units and acknowledged.
//!
//! A *kind* (csv, sheet, x12, idoc) is one module implementing [`Format`] and one line in
//! [`registry::KINDS`]; a *definition* is a TOML file under `formats/` naming its kind.
//! Adding a partner layout or a transaction set's rules is a new definition file; adding a
//! new kind (say EDIFACT) is a new module plus one registry line. Nothing else in the
//! pipeline knows about formats.

pub mod ack_body;
pub mod content;
pub mod defs;
pub mod keys;
pub mod registry;
pub(crate) mod skim;
pub mod testing;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::unit::{Position, Reason, Unit};

pub use ack_body::AckBody;
pub use defs::{ConfigError, DefFile, Diagnostics};

/// What a file is allowed to end as when some of its units are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Policy {
    /// Any rejected unit rejects the whole file.
    AllOrNothing,
    /// Valid units are applied and rejected ones listed, unless more than `max_reject_ratio`
    /// (0.0..=1.0) of the data units are rejected, in which case the whole file is rejected.
    AcceptValid { max_reject_ratio: f64 },
}

impl Policy {
    /// Parses `all-or-nothing` / `accept-valid` with an optional ratio.
    pub fn parse(name: &str, max_reject_ratio: Option<f64>) -> Result<Policy, String> {
        match name {
            "all-or-nothing" => Ok(Policy::AllOrNothing),
            "accept-valid" => {
                let r = max_reject_ratio.unwrap_or(1.0);
                if !(0.0..=1.0).contains(&r) {
                    return Err(format!("max_reject_ratio must be between 0 and 1, got {r}"));
                }
                Ok(Policy::AcceptValid {
                    max_reject_ratio: r,
                })
            }
            other => Err(format!(
                "unknown policy '{other}' (expected 'all-or-nothing' or 'accept-valid')"
            )),
        }
    }
}

/// A fatal problem with a file as a whole (unreadable, not this format, truncated
/// envelope, hostile XML). The file is rejected whole; the position says where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}", .pos.as_ref().map(|p| format!("{p}: ")).unwrap_or_default(), .reason.message)]
pub struct FileError {
    pub pos: Option<Position>,
    pub reason: Reason,
}

impl FileError {
    pub fn new(rule: impl Into<String>, message: impl Into<String>) -> Self {
        FileError {
            pos: None,
            reason: Reason::new(rule, message),
        }
    }
    pub fn at(pos: Position, rule: impl Into<String>, message: impl Into<String>) -> Self {
        FileError {
            pos: Some(pos),
            reason: Reason::new(rule, message),
        }
    }
    pub fn io(err: &std::io::Error) -> Self {
        FileError::new("io", format!("I/O error: {err}"))
    }
}

/// The start of a file, for recognising its format without reading it whole.
pub struct Probe<'a> {
    /// File name only (no directory).
    pub name: &'a str,
    /// Up to the first 64 KiB.
    pub head: &'a [u8],
}

/// What a reader gets when a file is opened.
#[derive(Debug, Clone)]
pub struct OpenContext {
    /// blake3 hex of the content: part of every record's source.
    pub fingerprint: String,
    /// The file name as received (for acks and reports).
    pub name: String,
    /// The safety limits in force (config `[limits]`).
    pub limits: Limits,
}

/// Hard caps that protect the process from hostile input. Readers refuse with a clear
/// `FileError` instead of allocating past them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest input file accepted at all (bytes).
    pub max_file_bytes: u64,
    /// Longest single line / segment / text node / cell (bytes).
    pub max_record_bytes: u64,
    /// Deepest XML nesting.
    pub max_depth: u32,
    /// Largest uncompressed zip entry in a spreadsheet (bytes).
    pub max_zip_entry_bytes: u64,
    /// Largest compression ratio of a zip entry.
    pub max_zip_ratio: u64,
    /// Most lines one unit may hold (a document larger than this is rejected, not buffered).
    pub max_unit_lines: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 8 << 30,
            max_record_bytes: 1 << 20,
            max_depth: 64,
            max_zip_entry_bytes: 512 << 20,
            max_zip_ratio: 200,
            max_unit_lines: 100_000,
        }
    }
}

/// The outcome of one unit as the ledger recorded it, handed back to the reader when the
/// file finishes so it can acknowledge (997/999, IDoc STATUS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitSummary {
    pub seq: u64,
    pub status: UnitStatus,
    /// Reasons of the unit's rejected lines and unit errors, with their positions.
    pub reasons: Vec<(Position, Reason)>,
    /// `Evaluation::detail` as the job returned it.
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Valid and applied (or staged for applying; the file decision comes last).
    Applied,
    /// Rejected by a rule.
    Rejected,
    /// Valid, but its business key was already applied: not applied again.
    Duplicate,
    /// Only skipped lines (header, blank, envelope).
    Skipped,
    /// Accepted, but only checked: no definition maps it, so it produced no record
    /// (`Evaluation::unmapped`). Acknowledged as accepted.
    Unmapped,
    /// Valid master data identical to the version already applied: nothing to send.
    Unchanged,
}

impl UnitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Applied => "applied",
            UnitStatus::Rejected => "rejected",
            UnitStatus::Duplicate => "duplicate",
            UnitStatus::Skipped => "skipped",
            UnitStatus::Unmapped => "unmapped",
            UnitStatus::Unchanged => "unchanged",
        }
    }

    /// The status [`Self::as_str`] wrote (anything else was a rejection).
    pub fn parse(s: &str) -> Self {
        match s {
            "applied" => UnitStatus::Applied,
            "duplicate" => UnitStatus::Duplicate,
            "skipped" => UnitStatus::Skipped,
            "unmapped" => UnitStatus::Unmapped,
            "unchanged" => UnitStatus::Unchanged,
            _ => UnitStatus::Rejected,
        }
    }
}

/// A place a reader can restart at: the start of a unit, with what the reader needs to
/// know there (the CSV header, the X12 envelope open around it). Small and of bounded
/// size whatever the file's size: it is written with every committed batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The seq of the unit that starts here.
    pub seq: u64,
    /// Byte offset of that unit in the file as stored (before any transcoding).
    pub byte: u64,
    /// Its 1-based physical line and 1-based record ordinal (see [`Position`]).
    pub line: u64,
    pub record: u64,
    /// What else the format must know to continue there, as it chooses to write it.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub state: serde_json::Value,
}

/// Looks up the recorded outcome of a unit by seq (backed by the ledger).
pub trait UnitOutcomes {
    fn get(&self, seq: u64) -> Option<UnitSummary>;

    /// [`Self::get`] for a caller that asks for each unit once, in order (an IDoc STATUS):
    /// a reader ahead may hand its copy over instead of cloning it.
    fn take(&self, seq: u64) -> Option<UnitSummary> {
        self.get(seq)
    }
}

/// What a reader's [`UnitReader::finish`] makes of every unit's outcome, made for the
/// units already committed while the rest is read: the committing thread hands each
/// batch's outcomes over after its commit, between batches, where it would otherwise wait
/// for the reading thread; the end of a file then answers only its last units.
pub trait Answering: Send {
    /// Units before `upto` are committed: their outcomes are in `outcomes`.
    fn committed(&mut self, outcomes: &dyn UnitOutcomes, upto: u64);
}

/// Allocates our own control numbers for outbound acknowledgements. Numbers are committed
/// in the ledger before they are handed out, so a crash can waste one but never reuse one.
pub trait AckContext {
    fn next_control_number(&mut self, partner: &str, kind: &str) -> Result<u64, FileError>;
}

/// An outbound document (997, 999, TA1, IDoc STATUS) to write to the acks directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    /// File name inside the acks directory; must be unique (include the control number).
    pub file_name: String,
    /// `997`, `999`, `TA1`, `STATUS`...
    pub kind: String,
    /// Who it goes to (the original sender).
    pub partner: String,
    pub control_no: Option<u64>,
    pub content: AckBody,
}

/// A loaded format: one partner layout, or a whole family (all X12 transaction sets).
pub trait Format: Send + Sync {
    /// Unique name, shown in the ledger and reports (`orders-csv`, `x12`, `idoc`).
    fn name(&self) -> &str;
    /// The kind it was loaded by (`csv`, `sheet`, `x12`, `idoc`).
    fn kind(&self) -> &str;
    /// How strongly this format claims the file: `None` for no, higher is more specific
    /// (a header match beats a name glob). The pipeline picks the highest; a tie is an error.
    fn sniff(&self, probe: &Probe) -> Option<u32>;
    /// For a file this format does not claim (`sniff` said `None`): how close it came and
    /// why not, so "no format matches" can name the closest definition and its reason.
    /// `None` when nothing about the file fits, or the kind cannot tell.
    fn near_miss(&self, _probe: &Probe) -> Option<NearMiss> {
        None
    }
    /// The partial-file policy.
    fn policy(&self) -> Policy;
    /// Identity rules this format sets instead of the entities' defaults (a partner whose
    /// product list must never change a product: `identity = "create-once"`).
    fn identity_overrides(&self) -> Vec<(crate::canonical::Entity, crate::canonical::Identity)> {
        Vec::new()
    }
    /// The definition behind a `csv` or `sheet` format (the corrections writer copies
    /// rejected rows in its layout); `None` for every other kind.
    fn tabular(&self) -> Option<&crate::tabular::def::TabularDef> {
        None
    }
    /// Opens the file for streaming. Must not read it whole.
    fn open<'a>(
        &'a self,
        path: &Path,
        ctx: &OpenContext,
    ) -> Result<Box<dyn UnitReader + 'a>, FileError>;
}

/// Streams a file as units, in file order.
pub trait UnitReader: Send {
    /// The next unit, `Ok(None)` at the end. An `Err` ends the file: it is rejected whole
    /// (after `finish` is still called, so an envelope error can be acknowledged).
    fn next_unit(&mut self) -> Result<Option<Unit>, FileError>;

    /// Where reading can start again just after the unit `next_unit` returned last, if
    /// this reader can restart mid-file (the default cannot). The engine stores the mark
    /// of every committed batch, so a resumed file is not read again from its start.
    fn mark(&mut self) -> Option<Mark> {
        None
    }

    /// A file where the reader may keep what a restart needs and a mark is too small to
    /// hold (the CSV reader's closed group keys), removed with the file's staged output.
    /// Called right after `open`, before `seek`; the default keeps nothing there.
    fn keep_state_in(&mut self, _file: std::path::PathBuf) {}

    /// Continues from a mark that a reader of the same file and format gave, called right
    /// after `open` and before the first `next_unit`: the next unit returned must be the
    /// one whose `seq` is `mark.seq`, numbered, positioned and evaluated exactly as on an
    /// uninterrupted read, and `finish` must still see the whole file. `Ok(false)` when
    /// it cannot (the engine then reads from the start and skips committed units).
    fn seek(&mut self, _mark: &Mark) -> Result<bool, FileError> {
        Ok(false)
    }

    /// A handle that answers committed units ahead of [`Self::finish`] (see
    /// [`Answering`]), asked for once before reading starts; `None` for a reader whose
    /// `finish` does not go over every unit.
    fn answering(&mut self) -> Option<Box<dyn Answering>> {
        None
    }

    /// Called once after the last unit (or after `next_unit` failed, with that error), when
    /// every unit's outcome is in the ledger. Returns the acknowledgements to send.
    fn finish(
        &mut self,
        _outcomes: &dyn UnitOutcomes,
        _acks: &mut dyn AckContext,
        _error: Option<&FileError>,
    ) -> Result<Vec<Outbound>, FileError> {
        Ok(Vec::new())
    }
}

/// Every loaded format, in definition order.
#[derive(Clone, Default)]
pub struct FormatSet {
    pub formats: Vec<Arc<dyn Format>>,
}

/// How close a format came to claiming a file, and why it did not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NearMiss {
    /// Higher is closer; only compared between the formats of one file.
    pub closeness: u32,
    /// What fitted: `name matches 'orders*.csv'`.
    pub matched: Vec<String>,
    /// What did not: `the header lacks 'quantity' and has unexpected 'qty'`.
    pub why_not: Vec<String>,
}

/// Why no format claimed a file: what its bytes look like, and the closest definition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoMatch {
    /// From [`content::observations`]: `it looks like UTF-16LE text without a BOM`.
    pub observations: Vec<String>,
    /// The format that came closest, by name.
    pub closest: Option<(String, NearMiss)>,
}

impl std::fmt::Display for NoMatch {
    /// One line, for a run summary: `no format definition matches this file: closest is
    /// 'orders-csv' (name matches 'orders*.csv'), but the header lacks 'quantity'`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no format definition matches this file")?;
        let mut sep = ": ";
        for o in &self.observations {
            write!(f, "{sep}{o}")?;
            sep = "; ";
        }
        if let Some((name, miss)) = &self.closest {
            write!(f, "{sep}closest is '{name}'")?;
            if !miss.matched.is_empty() {
                write!(f, " ({})", miss.matched.join(", "))?;
            }
            if !miss.why_not.is_empty() {
                write!(f, ", but {}", miss.why_not.join(", and "))?;
            }
        }
        Ok(())
    }
}

/// Why no single format was chosen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SniffError {
    #[error("{0}")]
    NoMatch(Box<NoMatch>),
    #[error("ambiguous: formats {0:?} match equally well")]
    Ambiguous(Vec<String>),
}

impl FormatSet {
    /// Picks the format that claims the file most strongly.
    pub fn detect(&self, probe: &Probe) -> Result<Arc<dyn Format>, SniffError> {
        let mut best: Vec<(u32, &Arc<dyn Format>)> = Vec::new();
        for f in &self.formats {
            if let Some(score) = f.sniff(probe) {
                match best.first() {
                    Some((s, _)) if *s > score => {}
                    Some((s, _)) if *s == score => best.push((score, f)),
                    _ => best = vec![(score, f)],
                }
            }
        }
        match best.len() {
            0 => Err(SniffError::NoMatch(Box::new(self.explain(probe)))),
            1 => Ok(best[0].1.clone()),
            _ => Err(SniffError::Ambiguous(
                best.iter().map(|(_, f)| f.name().to_string()).collect(),
            )),
        }
    }

    /// Why nothing claimed `probe`: the content observations and the closest near miss
    /// (the first defined wins a tie).
    pub fn explain(&self, probe: &Probe) -> NoMatch {
        let mut closest: Option<(String, NearMiss)> = None;
        for f in &self.formats {
            if let Some(m) = f.near_miss(probe) {
                if closest
                    .as_ref()
                    .is_none_or(|(_, c)| m.closeness > c.closeness)
                {
                    closest = Some((f.name().to_string(), m));
                }
            }
        }
        NoMatch {
            observations: content::observations(probe.head),
            closest,
        }
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<dyn Format>> {
        self.formats.iter().find(|f| f.name() == name).cloned()
    }
}

/// Case-sensitive glob match on a file name: `*` any run, `?` one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative wildcard match with backtracking to the last star: linear-ish, no recursion.
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob_match("orders*.csv", "orders_2024.csv"));
        assert!(glob_match("orders*.csv", "orders.csv"));
        assert!(!glob_match("orders*.csv", "orders.csv.tmp"));
        assert!(glob_match("*.x12", "a.b.x12"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
    }

    #[test]
    fn policy_parse_checks_ratio() {
        assert!(Policy::parse("accept-valid", Some(1.5)).is_err());
        assert_eq!(
            Policy::parse("accept-valid", Some(0.1)).unwrap(),
            Policy::AcceptValid {
                max_reject_ratio: 0.1
            }
        );
        assert!(Policy::parse("yolo", None).is_err());
    }
}
