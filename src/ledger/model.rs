//! The ledger's vocabulary: the rows it stores and hands out, and the states and outcomes
//! of a file, each with its one text spelling in the database.

use serde::Serialize;

use crate::format::UnitStatus;
use crate::unit::{Position, Reason};

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Claimed; the content is being read, validated and staged batch by batch.
    Reading,
    /// Read, but set aside for a person before its decision (the process kept dying at
    /// the same place, or a partner holds unmapped documents for review). Nothing of it is
    /// published; `tallyman release` lets it go on.
    Held,
    /// Decision taken and acks stored; outbox chunks, acks and report being published.
    Publishing,
    Done,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Reading => "reading",
            FileState::Held => "held",
            FileState::Publishing => "publishing",
            FileState::Done => "done",
        }
    }
    pub(super) fn parse(s: &str) -> FileState {
        match s {
            "held" => FileState::Held,
            "publishing" => FileState::Publishing,
            "done" => FileState::Done,
            _ => FileState::Reading,
        }
    }
}

/// How a file ended. Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every data unit applied.
    Applied,
    /// Applied except the listed rejects (policy accept-valid).
    AppliedWithRejects,
    /// Nothing mapped: every data unit was accepted unmapped (no definition maps it).
    AcceptedUnmapped,
    /// Rejected whole: nothing applied.
    Rejected,
    /// Nothing new: every data unit was a duplicate.
    Duplicate,
    /// Master data identical to what was applied before: nothing to send.
    Unchanged,
    /// The attempt was abandoned because the file changed while it was processed; the
    /// input went back to the inbox for a later pass. Nothing applied.
    Returned,
    /// The file's state could not be recovered (its staged output or input was lost);
    /// what was published, if anything, is listed; a person must act.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::AppliedWithRejects => "applied_with_rejects",
            Outcome::AcceptedUnmapped => "accepted_unmapped",
            Outcome::Rejected => "rejected",
            Outcome::Duplicate => "duplicate",
            Outcome::Unchanged => "unchanged",
            Outcome::Returned => "returned",
            Outcome::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Applied,
            Outcome::AppliedWithRejects,
            Outcome::AcceptedUnmapped,
            Outcome::Rejected,
            Outcome::Duplicate,
            Outcome::Unchanged,
            Outcome::Returned,
            Outcome::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
    /// Whether nothing of the file's content stays applied, so sending the same content
    /// again is a new attempt rather than a duplicate.
    pub fn applied_nothing(self) -> bool {
        matches!(
            self,
            Outcome::Rejected | Outcome::Returned | Outcome::Failed
        )
    }
}

/// Line and document counts of a file, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub lines_applied: i64,
    pub lines_rejected: i64,
    pub lines_duplicate: i64,
    pub lines_skipped: i64,
    pub lines_unmapped: i64,
    pub lines_unchanged: i64,
    pub units_applied: i64,
    pub units_rejected: i64,
    pub units_duplicate: i64,
    pub units_unmapped: i64,
    pub units_unchanged: i64,
}

impl Counts {
    /// Counts one line of the given ledger status (`applied`, `rejected`, ...).
    pub fn add_line(&mut self, status: &str) {
        match status {
            "applied" => self.lines_applied += 1,
            "rejected" => self.lines_rejected += 1,
            "duplicate" => self.lines_duplicate += 1,
            "unmapped" => self.lines_unmapped += 1,
            "unchanged" => self.lines_unchanged += 1,
            _ => self.lines_skipped += 1,
        }
    }
    pub fn add_unit(&mut self, status: UnitStatus) {
        match status {
            UnitStatus::Applied => self.units_applied += 1,
            UnitStatus::Rejected => self.units_rejected += 1,
            UnitStatus::Duplicate => self.units_duplicate += 1,
            UnitStatus::Unmapped => self.units_unmapped += 1,
            UnitStatus::Unchanged => self.units_unchanged += 1,
            UnitStatus::Skipped => {}
        }
    }
    /// Units that carry data (everything but skipped ones).
    pub fn data_units(&self) -> i64 {
        self.units_applied
            + self.units_rejected
            + self.units_duplicate
            + self.units_unmapped
            + self.units_unchanged
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub id: i64,
    pub fingerprint: String,
    pub attempt: i64,
    pub name: String,
    /// The name's original bytes when they are not UTF-8 (`name` is then a lossy copy).
    #[serde(skip)]
    pub raw_name: Option<Vec<u8>>,
    pub source_path: String,
    pub work_path: Option<String>,
    #[serde(skip)]
    pub work_mtime_ns: Option<i64>,
    pub size: i64,
    pub format: Option<String>,
    pub state: FileState,
    pub outcome: Option<String>,
    pub committed_seq: i64,
    pub committed_lines: i64,
    pub next_chunk: i64,
    /// Its chunks numbered below this are known synced to disk; those from here to
    /// `next_chunk` were committed while their sync was under way (`None`: written by a
    /// version that synced every chunk before its batch committed).
    #[serde(skip)]
    pub synced_chunk: Option<i64>,
    #[serde(flatten)]
    pub counts: Counts,
    pub error_rule: Option<String>,
    pub error_message: Option<String>,
    pub error_position: Option<String>,
    pub run_id: Option<i64>,
    pub claimed_at: String,
    pub finished_at: Option<String>,
    pub final_path: Option<String>,
    pub report_path: Option<String>,
    pub hold_reason: Option<String>,
    /// Why it is held: `stalled` (the process kept dying in it; reading never finished)
    /// or `review` (a unit asked for a person; reading finished).
    pub hold_kind: Option<String>,
    #[serde(skip)]
    pub released: bool,
    /// Applied again on purpose (`process --force`): it takes over the keys that earlier
    /// attempts of the same content hold.
    pub forced: bool,
    /// The file this one corrects (its rejected documents, fixed and sent again).
    pub correction_of: Option<i64>,
    /// The corrections file written for this file's rejected documents.
    pub corrections_path: Option<String>,
    /// A person's decision at review: reject the held file with this rule and message.
    #[serde(skip)]
    pub review: Option<(String, String)>,
}

impl FileRow {
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome.as_deref().and_then(Outcome::parse)
    }

    /// The name as received, with its original bytes where it was not UTF-8.
    pub fn os_name(&self) -> std::ffi::OsString {
        #[cfg(unix)]
        if let Some(raw) = &self.raw_name {
            use std::os::unix::ffi::OsStringExt;
            return std::ffi::OsString::from_vec(raw.clone());
        }
        std::ffi::OsString::from(&self.name)
    }
}

pub(super) const FILE_COLS: &str = "id, fingerprint, attempt, name, raw_name, source_path, work_path, work_mtime_ns, size, \
    format, state, outcome, committed_seq, committed_lines, next_chunk, \
    lines_applied, lines_rejected, lines_duplicate, lines_skipped, lines_unmapped, \
    units_applied, units_rejected, units_duplicate, units_unmapped, \
    error_rule, error_message, error_position, run_id, claimed_at, finished_at, final_path, report_path, \
    hold_reason, released, review_rule, review_message, hold_kind, forced, lines_unchanged, units_unchanged, \
    correction_of, corrections_path, synced_chunk";

/// How many columns `FILE_COLS` selects (a query adding its own columns starts after).
pub(super) const FILE_COL_COUNT: usize = 43;

pub(super) fn file_row(r: &super::db::Row<'_>) -> super::db::Result<FileRow> {
    let review_rule: Option<String> = r.get(34)?;
    let review_message: Option<String> = r.get(35)?;
    Ok(FileRow {
        id: r.get(0)?,
        fingerprint: r.get(1)?,
        attempt: r.get(2)?,
        name: r.get(3)?,
        raw_name: r.get(4)?,
        source_path: r.get(5)?,
        work_path: r.get(6)?,
        work_mtime_ns: r.get(7)?,
        size: r.get(8)?,
        format: r.get(9)?,
        state: FileState::parse(&r.get::<_, String>(10)?),
        outcome: r.get(11)?,
        committed_seq: r.get(12)?,
        committed_lines: r.get(13)?,
        next_chunk: r.get(14)?,
        counts: Counts {
            lines_applied: r.get(15)?,
            lines_rejected: r.get(16)?,
            lines_duplicate: r.get(17)?,
            lines_skipped: r.get(18)?,
            lines_unmapped: r.get(19)?,
            units_applied: r.get(20)?,
            units_rejected: r.get(21)?,
            units_duplicate: r.get(22)?,
            units_unmapped: r.get(23)?,
            lines_unchanged: r.get(38)?,
            units_unchanged: r.get(39)?,
        },
        error_rule: r.get(24)?,
        error_message: r.get(25)?,
        error_position: r.get(26)?,
        run_id: r.get(27)?,
        claimed_at: r.get(28)?,
        finished_at: r.get(29)?,
        final_path: r.get(30)?,
        report_path: r.get(31)?,
        hold_reason: r.get(32)?,
        released: r.get::<_, i64>(33)? != 0,
        review: review_rule.map(|rule| (rule, review_message.unwrap_or_default())),
        hold_kind: r.get(36)?,
        forced: r.get::<_, i64>(37)? != 0,
        correction_of: r.get(40)?,
        corrections_path: r.get(41)?,
        synced_chunk: r.get(42)?,
    })
}

/// One line's outcome, as written in a batch.
#[derive(Debug, Clone)]
pub struct LineRow {
    pub ordinal: i64,
    pub unit_seq: i64,
    pub pos: Position,
    pub status: &'static str,
    pub key: Option<String>,
    pub reason: Option<Reason>,
    pub raw: Option<String>,
}

/// One unit's outcome, as written in a batch.
#[derive(Debug, Clone)]
pub struct UnitRow {
    pub seq: i64,
    pub label: String,
    pub status: UnitStatus,
    pub key: Option<String>,
    pub first_ordinal: i64,
    pub line_count: i64,
    /// Its first line's position.
    pub pos: Position,
    /// Where its other lines are (see `spans`): lines without a reason get no row.
    pub spans: Option<Vec<u8>>,
    pub reasons: Vec<(Position, Reason)>,
    pub detail: serde_json::Value,
    pub tolerated: Vec<String>,
}

/// A staged outbox chunk, committed with its batch.
#[derive(Debug, Clone)]
pub struct ChunkRow {
    pub chunk: i64,
    pub entity: String,
    pub staged_path: String,
    pub outbox_path: String,
    pub records: i64,
    /// The units whose records the chunk holds: `first_seq..end_seq` (unknown for chunks
    /// written before these were recorded).
    pub units: Option<(i64, i64)>,
    /// Its length and CRC-32 as staged, to tell a chunk a power loss cut or zeroed before
    /// it was synced (unknown for chunks written before these were recorded).
    pub check: Option<ChunkCheck>,
}

/// What a staged chunk's bytes must add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkCheck {
    pub bytes: u64,
    pub crc: u32,
}

/// A rejected line for reports.
#[derive(Debug, Clone, Serialize)]
pub struct RejectRow {
    pub file: String,
    pub fingerprint: String,
    pub line: i64,
    pub byte: i64,
    pub record: i64,
    pub locator: Option<String>,
    pub unit: String,
    pub key: Option<String>,
    pub field: Option<String>,
    pub rule: Option<String>,
    pub value: Option<String>,
    pub message: Option<String>,
    pub original: Option<String>,
}

/// One row of `runs`, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run: i64,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub files: i64,
    pub needs_review: i64,
    pub error: Option<String>,
}

/// Files and line totals of one outcome, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeTotal {
    pub outcome: String,
    pub files: i64,
    pub lines_applied: i64,
    pub lines_rejected: i64,
    pub lines_duplicate: i64,
    pub lines_skipped: i64,
    pub lines_unmapped: i64,
    pub lines_unchanged: i64,
}

/// A record's content hash as the ledger stores it: the first 8 of the 16 bytes its 32
/// hex digits spell, or the text itself when it is not such a hash (an unknown hash, '',
/// kept from older ledgers). Every record version has this in its row, where the 16
/// bytes were over a third of a CSV order's; 64 bits still tell changed content from
/// unchanged for a key (a change goes unseen with a chance of 2^-64; `records::same_hash`
/// compares them, and the 16 bytes older ledgers kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StoredHash {
    Bytes([u8; STORED_HASH_BYTES]),
    Text(String),
}

/// How many bytes of a content hash the ledger keeps.
pub(super) const STORED_HASH_BYTES: usize = 8;

impl StoredHash {
    pub(super) fn of(hex: &str) -> Self {
        let mut bytes = [0u8; STORED_HASH_BYTES];
        let digits = hex.as_bytes();
        let hex_only = digits.len() == 32 && digits.iter().all(|&c| hex_digit(c).is_some());
        let ok = hex_only
            && bytes.iter_mut().enumerate().all(|(i, b)| {
                match (hex_digit(digits[2 * i]), hex_digit(digits[2 * i + 1])) {
                    (Some(hi), Some(lo)) => {
                        *b = hi << 4 | lo;
                        true
                    }
                    _ => false,
                }
            });
        match ok {
            true => StoredHash::Bytes(bytes),
            false => StoredHash::Text(hex.to_owned()),
        }
    }

    pub(super) fn value(&self) -> super::db::Value<'_> {
        match self {
            StoredHash::Bytes(b) => super::db::Value::Blob(b),
            StoredHash::Text(t) => super::db::Value::Text(t),
        }
    }
}

/// Lower-case hex digits only: the spelling `canonical::content_hash` writes, so the
/// text read back is the text stored.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// A content hash read back in its hex spelling, whichever way it was stored.
pub(super) struct HashHex(pub String);

impl super::db::FromSql for HashHex {
    fn from_value(v: super::db::Value<'_>) -> std::result::Result<Self, String> {
        use std::fmt::Write;
        match v {
            super::db::Value::Blob(b) => {
                let mut s = String::with_capacity(b.len() * 2);
                for byte in b {
                    let _ = write!(s, "{byte:02x}");
                }
                Ok(HashHex(s))
            }
            super::db::Value::Text(t) => Ok(HashHex(t.to_owned())),
            other => Err(format!("{other:?} where a content hash was expected")),
        }
    }
}

#[cfg(test)]
mod hash_tests {
    use super::{HashHex, StoredHash};
    use crate::ledger::db::{FromSql, Value};

    #[test]
    fn a_content_hash_is_stored_as_its_first_bytes_and_read_back_as_their_hex() {
        let hex = crate::canonical::content_hash("{\"a\":1}");
        let stored = StoredHash::of(&hex);
        let Value::Blob(b) = stored.value() else {
            panic!("{stored:?}")
        };
        assert_eq!(b.len(), 8);
        let back = HashHex::from_value(Value::Blob(b)).unwrap().0;
        assert_eq!(back, hex[..16]);
        assert!(crate::records::same_hash(&back, &hex));
    }

    #[test]
    fn what_is_not_a_content_hash_is_kept_as_text() {
        let upper_late = format!("{}ABCDEF0123456789", "0".repeat(16));
        for odd in [
            "",
            "h",
            "ABCDEF0123456789ABCDEF0123456789",
            &"0".repeat(31),
            &upper_late,
        ] {
            assert_eq!(StoredHash::of(odd), StoredHash::Text(odd.to_owned()));
            assert_eq!(HashHex::from_value(Value::Text(odd)).unwrap().0, odd);
        }
    }
}
