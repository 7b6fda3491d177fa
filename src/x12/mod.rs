//! ANSI ASC X12 interchanges: streaming reader, envelope and syntax validation, declarative
//! maps and 997/999/TA1 acknowledgements.
//!
//! One [`Format`] named `x12` covers every transaction set: the definitions under
//! `formats/x12/` say which sets are known (structure, elements, map) and which partners may
//! send which defects. The unit of atomicity is the transaction set (ST..SE); envelope
//! segments are skipped units so the ledger still has one outcome per segment. A bad
//! envelope trailer or a truncated file ends the file with a [`FileError`] (the whole file
//! is rejected: sets were streamed before the trailer could be checked, so nothing may be
//! half-applied), while a bad ISA header rejects its interchange's sets. Sets with no
//! definition are envelope- and SE-checked only; the partner's `unmapped` setting accepts
//! them *unmapped* (no record, `Evaluation::unmapped`), holds their file for a person, or
//! rejects them. See `docs/x12.md`.

// FileError is the shared trait's error type; its size is not ours to change here.
#![allow(clippy::result_large_err)]

pub mod ack;
mod atomic;
pub mod defs;
mod envelope;
mod job;
pub mod map;
mod reader;
mod resume;
pub mod segments;
mod sets;
mod snapshot;
pub mod validate;

pub use reader::X12Reader;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use crate::format::{
    DefFile, Diagnostics, FileError, Format, OpenContext, Policy, Probe, UnitReader,
};
use crate::unit::Reason;

use defs::{Atomic, PartnerDef, Registry};
use segments::{Delims, SegmentReader};
use sets::SetList;

/// The `KINDS` loader: every X12 definition file becomes part of the one `x12` format.
pub fn load(defs: &[&DefFile], diags: &mut Diagnostics) -> Vec<Arc<dyn Format>> {
    let reg = Registry::load(defs, diags);
    let policy = reg
        .partners
        .iter()
        .find(|p| p.senders.iter().any(|s| s == "*"))
        .and_then(|p| p.policy)
        .unwrap_or(Policy::AcceptValid {
            max_reject_ratio: 1.0,
        });
    vec![Arc::new(X12Format {
        reg: Arc::new(reg),
        policy,
    })]
}

pub struct X12Format {
    reg: Arc<Registry>,
    policy: Policy,
}

impl X12Format {
    pub fn registry(&self) -> &Registry {
        &self.reg
    }
}

impl Format for X12Format {
    fn name(&self) -> &str {
        "x12"
    }
    fn kind(&self) -> &str {
        "x12"
    }
    fn sniff(&self, probe: &Probe) -> Option<u32> {
        let head = probe
            .head
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(probe.head);
        let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
        head[start..].starts_with(b"ISA").then_some(100)
    }
    fn policy(&self) -> Policy {
        self.policy
    }
    fn open<'a>(
        &'a self,
        path: &Path,
        ctx: &OpenContext,
    ) -> Result<Box<dyn UnitReader + 'a>, FileError> {
        let file = File::open(path).map_err(|e| FileError::io(&e))?;
        let input_bytes = file.metadata().map_or(0, |m| m.len());
        let max = usize::try_from(ctx.limits.max_record_bytes).unwrap_or(usize::MAX);
        Ok(Box::new(X12Reader {
            src: SegmentReader::new(BufReader::new(file), max),
            reg: self.reg.clone(),
            max_unit_lines: usize::try_from(ctx.limits.max_unit_lines).unwrap_or(usize::MAX),
            max_set_bytes: max.saturating_mul(256),
            seq: 0,
            started: false,
            cur: None,
            done: Vec::new(),
            held: Vec::new(),
            atomic: Atomic::Set,
            set_len: 0,
            group_shared: None,
            skim_below: 0,
            at_mark: None,
            snaps: snapshot::Snapshots::new(input_bytes),
        }))
    }
}

/// What the reader learned from an ISA.
#[derive(Debug, Clone)]
pub(crate) struct IsaInfo {
    pub sender_q: String,
    pub sender: String,
    pub receiver_q: String,
    pub receiver: String,
    pub date: String,
    pub time: String,
    pub version: String,
    pub control: String,
    pub ack_requested: bool,
    pub usage: String,
    pub delims: Delims,
    pub partner: PartnerDef,
}

#[derive(Debug, Clone)]
pub(crate) struct GroupRec {
    pub gs01: String,
    pub gs02: String,
    pub gs03: String,
    pub gs06: String,
    pub gs08: String,
    pub sets: SetList,
    /// A set that reading stopped inside (no SE, or a segment that could not be read).
    pub open_set: Option<OpenSet>,
    pub declared_sets: Option<String>,
    pub closed: bool,
    /// Reading showed the group has no GE at all (the file, or its interchange, ended
    /// inside it): the AK9 says code 3.
    pub ge_missing: bool,
    /// A bad GS: its sets are rejected and the AK9 says code 6 (or 2 for GS08).
    pub header_error: Option<Reason>,
}

/// A set reading stopped inside, acknowledged `AK5*R` with `code`: 2 when its SE is
/// missing, 5 when one of its segments could not be read.
#[derive(Debug, Clone)]
pub(crate) struct OpenSet {
    pub st01: String,
    pub st02: String,
    pub code: u8,
}

#[derive(Debug, Clone)]
pub(crate) struct Interchange {
    pub isa: IsaInfo,
    pub groups: Vec<GroupRec>,
    /// TA1 note code and reason when the header itself is bad.
    pub header_error: Option<(&'static str, Reason)>,
    pub closed: bool,
    /// TA1 code for a file error found inside this interchange.
    pub trailer_error: Option<&'static str>,
}
