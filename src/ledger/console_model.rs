//! The rows the console's ledger questions hand out (`console.rs` asks them): plain data,
//! serializable, with masked values where the ledger keeps them masked — except a record
//! version's `data`, which is what targets were sent and must be masked by whoever shows it.

use serde::Serialize;

use super::model::FileRow;

/// Counts over a time window, for the error rates and the delivered figure.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct WindowTotals {
    /// Documents (data units) of files decided in the window.
    pub documents: i64,
    pub rejected_documents: i64,
    /// Deliveries queued in the window (superseded ones left out: they were never due).
    pub deliveries: i64,
    /// Of those, how many are dead letters now.
    pub dead_letters: i64,
    /// Records confirmed by a target in the window.
    pub delivered: i64,
}

/// One bucket (an hour or a day, as the prefix of an ISO time) of a count series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub at: String,
    pub total: i64,
    pub part: i64,
}

/// The latest reconciliation of a target.
#[derive(Debug, Clone, Serialize)]
pub struct ReconRow {
    pub id: i64,
    pub target: String,
    pub at: String,
    pub remote_records: i64,
    pub missing: i64,
    pub orphans: i64,
    pub drift: i64,
    pub report_path: Option<String>,
}

/// A file as the console lists it: the ledger row plus the acknowledgements it produced.
#[derive(Debug, Clone, Serialize)]
pub struct FileListRow {
    pub file: FileRow,
    pub acks: i64,
    /// Partners the acknowledgements went to, comma-separated.
    pub partners: Option<String>,
}

/// One input line as the file page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LineView {
    pub ordinal: i64,
    pub unit_seq: i64,
    pub line: i64,
    pub byte: i64,
    pub record: i64,
    pub locator: Option<String>,
    pub status: String,
    pub key: Option<String>,
    pub rule: Option<String>,
    pub field: Option<String>,
    /// Masked where the field is sensitive.
    pub value: Option<String>,
    pub message: Option<String>,
    /// The original line, kept for rejected lines only (sensitive cells masked).
    pub raw: Option<String>,
}

/// A rejected document and how it was resolved, if it was.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedDoc {
    pub file_id: i64,
    pub file_name: String,
    pub seq: i64,
    pub label: String,
    pub key: Option<String>,
    /// The first line that broke a rule (not one rejected only with its document).
    pub ordinal: Option<i64>,
    pub line: Option<i64>,
    pub locator: Option<String>,
    pub rule: Option<String>,
    pub field: Option<String>,
    pub message: Option<String>,
    pub resolution: Option<Resolution>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub at: String,
    /// `resolved` (a person) or `corrected` (a correction file applied it).
    pub how: String,
    pub actor: Option<String>,
    pub note: Option<String>,
    pub by_file_id: Option<i64>,
}

/// Open rejected documents sharing one cause.
#[derive(Debug, Clone, Serialize)]
pub struct RejectGroup {
    pub rule: String,
    pub documents: i64,
    pub files: i64,
    pub oldest: String,
}

/// Files rejected whole by a file-level error nobody has resolved yet.
#[derive(Debug, Clone, Serialize)]
pub struct FileErrorRow {
    pub file_id: i64,
    pub name: String,
    pub rule: String,
    pub message: Option<String>,
    pub position: Option<String>,
    pub at: String,
}

/// Dead letters sharing a target, entity, status and cause.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadGroup {
    pub target: String,
    pub entity: String,
    pub status: Option<i64>,
    /// The target's message with its particulars (quoted values, numbers) taken out.
    pub cause: String,
    /// One message of the group as the target wrote it (masked where sensitive).
    pub example: Option<String>,
    pub count: i64,
    pub oldest: String,
}

/// Which dead letters a group means.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DeadGroupSel {
    pub target: String,
    pub entity: String,
    pub status: Option<i64>,
    /// As in [`DeadGroup::cause`]; empty for dead letters without a message.
    #[serde(default)]
    pub cause: String,
}

/// A delivery row, for a file's or a key's page.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    pub id: i64,
    pub target: String,
    pub entity: String,
    pub key: String,
    pub version: i64,
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// File settled → delivered.
    pub latency_seconds: Option<f64>,
}

/// One attempt of a delivery, with its times.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub n: i64,
    pub started_at: String,
    pub operation: String,
    pub status: Option<i64>,
    pub outcome: Option<String>,
    pub latency_ms: Option<i64>,
    /// Masked by the relay before it was stored.
    pub response: Option<String>,
}

/// A version of a business key. `data` is what targets were sent: unmasked, so callers
/// mask sensitive fields before showing it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    pub entity: String,
    pub key: String,
    pub version: i64,
    pub hash: String,
    pub data: Option<serde_json::Value>,
    pub file_id: i64,
    pub file_name: Option<String>,
    pub unit_seq: i64,
    pub ordinal: i64,
    pub created_at: String,
}

/// Where an input line's original bytes are: the file as archived and the byte range.
#[derive(Debug, Clone, Serialize)]
pub struct LineSource {
    pub path: Option<String>,
    pub byte: i64,
    /// The next line's offset (the end of this one), if it is known.
    pub end: Option<i64>,
    pub has_byte: bool,
    pub format: Option<String>,
}

/// How many deliveries of a file are in one state at one target.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StateCount {
    pub target: String,
    pub state: String,
    pub count: i64,
}

/// A document (of any file, in any status) that carries a business key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyDocument {
    pub file_id: i64,
    pub file_name: String,
    pub seq: i64,
    pub label: String,
    pub status: String,
}
