//! The vocabulary every format reader speaks to the pipeline.
//!
//! A reader turns a file into a stream of [`Unit`]s: the smallest piece of input that is
//! accepted or rejected as a whole (a CSV order with its lines, an X12 transaction set, one
//! IDoc, one spreadsheet row group). Each unit carries the [`SourceLine`]s it covers, with
//! their positions, and a pure [`UnitJob`] that validates and maps it. Keeping the job pure
//! and `Send` is what lets the pipeline run jobs in parallel (rayon) while reading, ledger
//! writes and sink writes stay sequential and in file order.

use serde::{Deserialize, Serialize};

use crate::canonical::Record;

/// Where a piece of input sits in its file. Every error and every ledger row carries one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// 1-based physical line of the first byte; for a spreadsheet row, its row number as
    /// the spreadsheet shows it.
    pub line: u64,
    /// 0-based byte offset of the first byte in the original file (for UTF-16 input: in the
    /// UTF-8 transcoding, see the README). Meaningless, and 0, for a spreadsheet cell
    /// ([`Position::has_byte`]).
    pub byte: u64,
    /// 1-based ordinal of the record in the file: CSV record, X12 segment, IDoc segment,
    /// spreadsheet row.
    pub record: u64,
    /// Human locator beyond line/byte: `Orders!C12`, `ISA 000000001 / GS 17 / ST 0001`,
    /// `IDoc 3 E1EDP01`. Optional.
    pub locator: Option<String>,
}

impl Position {
    pub fn new(line: u64, byte: u64, record: u64) -> Self {
        Position {
            line,
            byte,
            record,
            locator: None,
        }
    }

    pub fn with_locator(mut self, locator: impl Into<String>) -> Self {
        self.locator = Some(locator.into());
        self
    }

    /// Whether `byte` means something: not for a spreadsheet cell (`Orders!C12`), whose
    /// file is a zip of XML.
    pub fn has_byte(&self) -> bool {
        !self.locator.as_deref().is_some_and(is_cell_locator)
    }
}

/// Whether a locator names a spreadsheet cell: `Sheet!C12` (the sheet name may itself
/// contain `!`).
pub fn is_cell_locator(locator: &str) -> bool {
    let Some((sheet, cell)) = locator.rsplit_once('!') else {
        return false;
    };
    let letters = cell.bytes().take_while(u8::is_ascii_uppercase).count();
    let digits = &cell[letters..];
    !sheet.is_empty()
        && (1..=3).contains(&letters)
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.has_byte() {
            // A sheet row: "row 12 (Orders!C12)", never a byte offset.
            return write!(
                f,
                "row {} ({})",
                self.line,
                self.locator.as_deref().unwrap_or_default()
            );
        }
        write!(
            f,
            "line {}, record {}, byte {}",
            self.line, self.record, self.byte
        )?;
        if let Some(loc) = &self.locator {
            write!(f, " ({loc})")?;
        }
        Ok(())
    }
}

/// One input line (CSV record, X12 segment, IDoc segment, sheet row) as the ledger sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLine {
    pub pos: Position,
    /// The original text of the line, already masked where the format declares sensitive
    /// fields, and capped in length by the reader (reports must stay readable). Readers may
    /// leave it empty for lines that can never be rejected (e.g. envelope segments) to keep
    /// the ledger small; the pipeline stores it only for rejected lines.
    pub raw: String,
}

/// Why a line was rejected or skipped. `value` is already masked if the field is sensitive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Machine-readable rule id: `required`, `type`, `min`, `regex`, `code-list`,
    /// `x12-se01-count`, `idoc-depth`, `rejected-with-document`, ...
    pub rule: String,
    pub field: Option<String>,
    pub value: Option<String>,
    pub message: String,
    /// A finer position than the line's, when the format knows one: the cell of a
    /// spreadsheet row (`Prices!E8`). Replaces the line's locator in the ledger and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locator: Option<String>,
    /// The 1-based line and 0-based byte offset of the offending value, when the format
    /// knows a finer place than the line's start: the field element inside an IDoc segment
    /// that spans several physical lines. Replace the line's `line` and `byte` in the ledger
    /// and reports, as `locator` replaces its locator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<(u64, u64)>,
}

impl Reason {
    pub fn new(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Reason {
            rule: rule.into(),
            field: None,
            value: None,
            message: message.into(),
            locator: None,
            place: None,
        }
    }
    pub fn at(mut self, locator: impl Into<String>) -> Self {
        self.locator = Some(locator.into());
        self
    }
    /// The offending value's own line and byte offset (see [`Reason::at`] for its locator).
    pub fn placed(mut self, line: u64, byte: u64) -> Self {
        self.place = Some((line, byte));
        self
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }
}

/// The verdict of a unit's job on one of its lines, by index into `Unit::lines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineVerdict {
    /// The line is good; it is applied if its whole unit is.
    Ok,
    /// The line breaks a rule; its unit is rejected whole. Boxed: a verdict is made for
    /// every line and read again on the committing thread, and nearly every one is `Ok`;
    /// at a `Reason`'s 144 bytes an 850's verdicts were 2 KB that thread first touched
    /// (5% of its time in perf, scanning them for a rejection), now 24 bytes a line.
    Rejected(Box<Reason>),
    /// Not data: header row, blank line, envelope segment, comment. Never rejected.
    Skipped(String),
}

/// What a unit's job returns. The unit is accepted iff no line verdict is `Rejected` and
/// `unit_errors` is empty.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// One verdict per line of the unit, same order. A shorter vector means `Ok` for the rest.
    pub verdicts: Vec<LineVerdict>,
    /// Errors that belong to the unit, not one line (a missing required segment, a bad
    /// group count). Reported against the unit's first line.
    pub unit_errors: Vec<Reason>,
    /// Canonical records produced; ignored if the unit is rejected.
    pub records: Vec<Record>,
    /// Format-specific detail kept in the ledger and handed back to the reader when the file
    /// finishes (X12 keeps AK3/AK4 error codes here to build the 997/999). JSON null if none.
    pub detail: serde_json::Value,
    /// Tolerances used to accept this unit (e.g. `x12-se01-count`): recorded in the ledger.
    pub tolerated: Vec<String>,
    /// Extra idempotency keys beyond the records' business keys, e.g.
    /// `x12-isa:SENDER:RECEIVER:000000123` or `idoc:SNDPRN:0000000001234567`. If any claim
    /// was already taken by a *different* file, the unit is a duplicate and is not applied.
    /// Units of the same file may share a claim (all sets of one interchange do).
    pub claims: Vec<String>,
    /// The document's business key as the input states it (an order number, an invoice
    /// number), known even when the unit is rejected and produces no record, so a reject
    /// row can name the document a reviewer has to find. `None` when the input has none.
    pub key: Option<String>,
    /// The unit was only checked, not mapped: no definition exists for it (an X12 set type
    /// without a definition) and its partner accepts such units. Recorded as *accepted
    /// unmapped*, never as applied, and shown as such everywhere an outcome appears.
    pub unmapped: bool,
    /// The unit asks for its whole file to be held for a person before the file's
    /// decision (a partner that wants unmapped sets reviewed), with the reason.
    pub hold: Option<String>,
}

impl LineVerdict {
    pub fn rejected(reason: Reason) -> LineVerdict {
        LineVerdict::Rejected(Box::new(reason))
    }
}

impl Evaluation {
    pub fn is_rejected(&self) -> bool {
        !self.unit_errors.is_empty()
            || self
                .verdicts
                .iter()
                .any(|v| matches!(v, LineVerdict::Rejected(_)))
    }
}

/// The pure validate-and-map step of one unit. Runs on a rayon worker.
pub trait UnitJob: Send {
    /// Evaluates the unit labelled `label` (passed in, not kept by the job: one copy of
    /// the label per unit, not two).
    fn run(self: Box<Self>, label: &str) -> Evaluation;
}

impl<F> UnitJob for F
where
    F: FnOnce(&str) -> Evaluation + Send,
{
    fn run(self: Box<Self>, label: &str) -> Evaluation {
        (*self)(label)
    }
}

/// A unit of atomicity as read from the file.
pub struct Unit {
    /// 0-based ordinal of the unit in the file. Readers must number units deterministically:
    /// resume skips every unit whose seq is below the ledger's committed mark.
    pub seq: u64,
    /// Short label for reports: `order 4711`, `850 ST 0001`, `IDoc 3 (ORDERS05 0000000123)`.
    pub label: String,
    /// The lines the unit covers, in file order.
    pub lines: Vec<SourceLine>,
    /// The validation and mapping to run. `None` for units made only of skipped lines.
    pub job: Option<Box<dyn UnitJob>>,
    /// Makes line `i` as it is shown, with its locator and text, when `lines` hold only
    /// positions (see [`Unit::shown`]). `None`: `lines` are complete.
    pub show: Option<ShowLine>,
}

/// Makes a unit's line `i` in full. A reader whose lines' locators and text take building
/// (an IDoc segment rendered as `E1EDP01: POSEX=… MENGE=…`, its locator) hands this over
/// instead: most lines end as their unit does and are never shown one by one, and the
/// reading thread, where every line was built, is one thread for the whole file (IDoc's
/// slowest stage). Called on the committing thread, for the lines it writes a row for and
/// each unit's first line.
pub type ShowLine = std::sync::Arc<dyn ShowLines>;

/// What a [`ShowLine`] makes of line `i`: the line in full, or its position alone — the
/// position of a unit's first line goes into the unit's row, its text only if the line is
/// rejected or skipped.
pub trait ShowLines: Send + Sync {
    fn line(&self, i: usize) -> SourceLine;
    fn pos(&self, i: usize) -> Position;
}

impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unit")
            .field("seq", &self.seq)
            .field("label", &self.label)
            .field("lines", &self.lines.len())
            .field("job", &self.job.is_some())
            .field("show", &self.show.is_some())
            .finish()
    }
}

impl Unit {
    /// A unit of lines that are never data (a header row, blank lines, an envelope).
    pub fn skipped(seq: u64, label: impl Into<String>, lines: Vec<SourceLine>) -> Self {
        Unit {
            seq,
            label: label.into(),
            lines,
            job: None,
            show: None,
        }
    }

    /// Line `i` as the ledger, reports and acknowledgements show it: with its locator and
    /// text, made now when the reader left them to [`Unit::show`].
    pub fn shown(&self, i: usize) -> std::borrow::Cow<'_, SourceLine> {
        match &self.show {
            Some(show) => std::borrow::Cow::Owned(show.line(i)),
            None => std::borrow::Cow::Borrowed(&self.lines[i]),
        }
    }

    /// The position of line `i` as [`Unit::shown`] gives it, without making its text.
    pub fn shown_pos(&self, i: usize) -> std::borrow::Cow<'_, Position> {
        match &self.show {
            Some(show) => std::borrow::Cow::Owned(show.pos(i)),
            None => std::borrow::Cow::Borrowed(&self.lines[i].pos),
        }
    }

    /// Every line as [`Unit::shown`] makes it (for tests and tools that list a unit whole).
    pub fn shown_lines(&self) -> Vec<SourceLine> {
        (0..self.lines.len())
            .map(|i| self.shown(i).into_owned())
            .collect()
    }

    /// Runs the job (or marks every line skipped when there is none).
    pub fn evaluate(&mut self) -> Evaluation {
        match self.job.take() {
            Some(job) => job.run(&self.label),
            None => Evaluation {
                verdicts: vec![LineVerdict::Skipped(self.label.clone()); self.lines.len()],
                ..Evaluation::default()
            },
        }
    }
}

/// Masks a sensitive value for logs and reports: keeps the length class and the last two
/// characters so a reviewer can still tell values apart.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 4 {
        return "*".repeat(chars.len());
    }
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{}{}", "*".repeat(chars.len() - 2), tail)
}

/// `parts` one after another in one allocation of their size: `format!` guesses a size
/// and grows, two allocations for a label made per document.
pub fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    parts.iter().for_each(|p| s.push_str(p));
    s
}

/// `str::trim`, answered from the end bytes when both are ASCII and not white space or
/// control, as nearly every cell's and element's are: then neither end has anything to
/// trim (an ASCII byte is a whole character, and the last byte of a longer one is not
/// ASCII). Cells are trimmed where they are checked and where a blank row is told, X12
/// values where they are mapped and segment ids where they are cut; `str::trim` decoding
/// characters from both ends was 4% of a CSV run.
pub fn trim(s: &str) -> &str {
    let plain = |b: Option<&u8>| b.is_some_and(|&b| b > b' ' && b.is_ascii());
    let b = s.as_bytes();
    if plain(b.first()) && plain(b.last()) {
        s
    } else {
        s.trim()
    }
}

/// Bytes as text, invalid UTF-8 replaced (`String::from_utf8_lossy`), borrowed when they
/// are valid. `from_utf8` is tried first: it checks ASCII a word at a time, where the
/// lossy decoder's chunk iterator goes byte by byte, and nearly every cell and segment
/// is valid.
pub fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.into(),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// [`cap_raw`] of text the caller may own: owned text that fits is kept as it is instead
/// of copied, and text too long is copied only as far as the cap, owned or not.
pub fn capped<'a>(raw: impl Into<std::borrow::Cow<'a, str>>, max: usize) -> String {
    let raw = raw.into();
    if raw.len() <= max {
        return raw.into_owned();
    }
    cap_raw(&raw, max)
}

/// Caps a raw line for the ledger and reports so a 100 MB line cannot bloat either.
pub fn cap_raw(raw: &str, max: usize) -> String {
    if raw.len() <= max {
        return raw.to_string();
    }
    let mut end = max;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes]", &raw[..end], raw.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_is_str_trim() {
        let ends = [
            "", "a", " ", "\t", "\n", "\r", "\u{b}", "\u{c}", "\u{1c}", "\u{1f}", "\u{7f}", "!",
            "~", "\u{85}", "\u{a0}", "\u{3000}", "\u{2028}", "\u{feff}", "é", "0",
        ];
        for a in ends {
            for b in ends {
                for mid in ["", "x", " y ", "\u{a0}"] {
                    let s = format!("{a}{mid}{b}");
                    assert_eq!(trim(&s), s.trim(), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn concat_is_the_parts_in_one_allocation_of_their_size() {
        let s = concat(&["850", " ST ", "", "0001"]);
        assert_eq!(s, "850 ST 0001");
        assert_eq!(s.capacity(), s.len());
        assert_eq!(concat(&[]), "");
    }

    #[test]
    fn lossy_reads_as_from_utf8_lossy_and_borrows_valid_text() {
        for bytes in [
            &b"BEG*00*SA*PO-1**20260101"[..],
            "Ädler & Söhne, 東京".as_bytes(),
            b"caf\xe9",
            b"\xff\xfe\x00a",
            b"",
            b"ab\xe2\x82",
        ] {
            assert_eq!(lossy(bytes), String::from_utf8_lossy(bytes), "{bytes:?}");
        }
        assert!(matches!(lossy(b"ok"), std::borrow::Cow::Borrowed("ok")));
    }

    #[test]
    fn sheet_positions_show_no_byte_offset() {
        let p = Position::new(12, 0, 12).with_locator("Price list!C12");
        assert!(!p.has_byte());
        assert_eq!(p.to_string(), "row 12 (Price list!C12)");
        let x12 = Position::new(3, 120, 7).with_locator("ISA 1 / GS 2 / ST 0001, segment 3 of set");
        assert!(x12.has_byte());
        assert!(is_cell_locator("A!B!XFD1048576"));
        assert!(!is_cell_locator("IDoc 3 E1EDP01"));
        assert!(!is_cell_locator("x!12"));
    }

    #[test]
    fn mask_keeps_only_last_two() {
        assert_eq!(mask("4111111111111111"), "**************11");
        assert_eq!(mask("abc"), "***");
    }

    #[test]
    fn cap_raw_respects_char_boundaries() {
        let s = "ééééé";
        let c = cap_raw(s, 3);
        assert!(c.starts_with('é'));
        assert!(c.contains("[10 bytes]"));
    }

    #[test]
    fn capped_keeps_owned_text_that_fits_and_caps_the_rest_as_cap_raw_does() {
        let short = String::from("E1EDK01: BELNR=4711");
        let at = short.as_ptr();
        let kept = capped(short, 100);
        assert_eq!(kept, "E1EDK01: BELNR=4711");
        assert_eq!(kept.as_ptr(), at, "not copied");
        assert_eq!(capped("ééééé".to_string(), 3), cap_raw("ééééé", 3));
        assert_eq!(capped("ééééé", 3), cap_raw("ééééé", 3));
        assert_eq!(capped("short", 100), "short");
    }

    #[test]
    fn evaluation_rejected_when_any_line_rejected() {
        let e = Evaluation {
            verdicts: vec![
                LineVerdict::Ok,
                LineVerdict::rejected(Reason::new("x", "y")),
            ],
            ..Default::default()
        };
        assert!(e.is_rejected());
    }
}
