//! SAP IDoc XML: ORDERS05, INVOIC01/02, DELVRY03/07, MATMAS05, DEBMAS07, CREMAS05/06 and
//! whatever other basic types `formats/idoc/*.toml` define, read into canonical records
//! and acknowledged with SYSTAT01 STATUS IDocs.
//!
//! All IDoc type definitions (kind `idoc-type`) load into one [`Format`] named `idoc`:
//! a file may hold IDocs of several types, so the type is chosen per IDoc from its control
//! record (IDOCTYP, then MESTYP for the mapping), not per file. One IDoc is one unit.
//! Flat (fixed-width) IDocs are recognised only to be refused with a clear error: their
//! record layouts depend on the SAP release's segment definitions, which we don't have.

// FileError carries its position and reason by value; it is built only on the cold path
// of bad input (main allows this lint crate-wide for the same reason).
#![allow(clippy::result_large_err)]

pub mod ack;
pub mod def;
pub mod eval;
pub mod input;
pub mod map;
pub mod reader;
mod resume;

use std::path::Path;
use std::sync::Arc;

use crate::format::{
    DefFile, Diagnostics, FileError, Format, OpenContext, Policy, Probe, UnitReader,
};

pub use def::Catalog;

/// The registry entry point: every `idoc-type` definition becomes part of one format.
pub fn load(defs: &[&DefFile], diags: &mut Diagnostics) -> Vec<Arc<dyn Format>> {
    let catalog = def::load_catalog(defs, diags);
    if catalog.by_type.is_empty() {
        return Vec::new();
    }
    vec![Arc::new(IdocFormat {
        catalog: Arc::new(catalog),
    })]
}

pub struct IdocFormat {
    catalog: Arc<Catalog>,
}

impl IdocFormat {
    pub fn new(catalog: Catalog) -> Self {
        IdocFormat {
            catalog: Arc::new(catalog),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

/// Score for XML that is clearly IDoc XML: beats generic XML or name globs.
const SNIFF_XML: u32 = 100;
/// Flat IDocs are claimed so they get our explicit refusal, not "no format matches".
const SNIFF_FLAT: u32 = 50;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Does `<NAME` appear followed by a name-ending character (not `<NAMEX`)?
fn has_tag(head: &[u8], name: &str) -> bool {
    let pat = format!("<{name}");
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&head[from..], pat.as_bytes()) {
        let end = from + i + pat.len();
        match head.get(end) {
            Some(b' ' | b'>' | b'/' | b'\t' | b'\r' | b'\n') | None => return true,
            _ => from = end,
        }
    }
    false
}

/// Also finds `<ns:ORDERS05` (SOAP-wrapped IDocs are often namespace-prefixed).
fn has_prefixed_tag(head: &[u8], name: &str) -> bool {
    if has_tag(head, name) {
        return true;
    }
    let pat = format!(":{name}");
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&head[from..], pat.as_bytes()) {
        let at = from + i;
        let end = at + pat.len();
        let ends = matches!(
            head.get(end),
            Some(b' ' | b'>' | b'/' | b'\t' | b'\r' | b'\n') | None
        );
        // Walk back over the prefix to the `<`.
        let mut j = at;
        while j > 0 && (head[j - 1].is_ascii_alphanumeric() || head[j - 1] == b'_') {
            j -= 1;
        }
        if ends && j > 0 && head[j - 1] == b'<' {
            return true;
        }
        from = end;
    }
    false
}

impl Format for IdocFormat {
    fn name(&self) -> &str {
        "idoc"
    }

    fn kind(&self) -> &str {
        "idoc"
    }

    fn sniff(&self, probe: &Probe) -> Option<u32> {
        let head = probe.head;
        if reader::is_flat_idoc(head) {
            return Some(SNIFF_FLAT);
        }
        if !contains(head, b"<") {
            return None;
        }
        if has_prefixed_tag(head, "IDOC") || contains(head, b"<EDI_DC40") {
            return Some(SNIFF_XML);
        }
        self.catalog
            .by_type
            .keys()
            .any(|t| has_prefixed_tag(head, t))
            .then_some(SNIFF_XML)
    }

    /// Each IDoc stands alone in SAP (it gets its own status), so valid IDocs are applied
    /// and rejected ones reported, never dragged down by their neighbours.
    fn policy(&self) -> Policy {
        Policy::AcceptValid {
            max_reject_ratio: 1.0,
        }
    }

    fn open<'a>(
        &'a self,
        path: &Path,
        ctx: &OpenContext,
    ) -> Result<Box<dyn UnitReader + 'a>, FileError> {
        Ok(Box::new(reader::IdocReader::open(
            path,
            ctx,
            self.catalog.clone(),
        )?))
    }
}

#[cfg(test)]
mod tests;
