//! Streaming IDoc XML into units: one [`Unit`] per `<IDOC>`, its lines the IDoc's segments.
//!
//! The file is read event by event with one reused buffer, so memory is bounded by the
//! largest IDoc (itself capped at `max_unit_lines` segments of at most `max_record_bytes`
//! each), never by the file. Anything outside `<IDOC>` elements is envelope (the basic-type
//! root such as `<ORDERS05>`, SOAP `Envelope`/`Body`) and is only checked for
//! well-formedness. Hostile XML is refused before it can cost anything: a DOCTYPE is never
//! expanded, entities other than the five predefined ones and character references are
//! errors, and depth, event size and file size are capped (see [`super::input`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use quick_xml::Reader;

use super::def::{Catalog, CONTROL};
use super::input::CappedInput;
use crate::format::{
    AckContext, FileError, Limits, OpenContext, Outbound, UnitOutcomes, UnitReader,
};
use crate::unit::{Position, SourceLine, Unit};

mod events;
mod segment;

pub use segment::{Field, Mark, RawIdoc, Seg, Segment, FIELD_OVERHEAD, SEGMENT_BUDGET};

/// One segment name as the reader has seen it.
#[derive(Debug, Default)]
struct NameSeen {
    /// The IDoc `count` is of (its ordinal).
    idoc: u64,
    /// Segments of this name in that IDoc so far, for locators (`E1EDP01 #2`).
    count: u64,
}

pub(super) enum Frame {
    /// An element around the IDocs, by its qualified name: what a restarted parser must be
    /// told is open there (see `super::resume`).
    Envelope(Box<str>),
    Idoc,
    /// A segment kept at index `kept`, or `None` when the IDoc overflowed.
    Segment {
        kept: Option<usize>,
    },
    /// A field of the kept segment `seg` (`None`: of a segment not kept), its name and
    /// text so far in the reader's `field_name` and `field_value` (fields do not nest).
    Field {
        seg: Option<usize>,
        at: Mark,
    },
}

/// Detects the declared encoding from the head of the file: `Ok(true)` for Latin-1.
pub fn detect_latin1(head: &[u8]) -> Result<bool, FileError> {
    if head.starts_with(&[0xFE, 0xFF]) || head.starts_with(&[0xFF, 0xFE]) {
        return Err(FileError::at(
            Position::new(1, 0, 0),
            "xml-encoding",
            "UTF-16 IDoc XML is not supported: send UTF-8 or ISO-8859-1",
        ));
    }
    let head = head.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(head);
    if !head.starts_with(b"<?xml") {
        return Ok(false);
    }
    let end = memchr::memmem::find(head, b"?>").unwrap_or(head.len());
    let decl = String::from_utf8_lossy(&head[..end]);
    let Some(i) = decl.find("encoding") else {
        return Ok(false);
    };
    let rest = decl[i + "encoding".len()..].trim_start();
    let Some(rest) = rest.strip_prefix('=') else {
        return Ok(false);
    };
    let rest = rest.trim_start();
    let quote = rest.chars().next().unwrap_or('"');
    let name: String = rest
        .chars()
        .skip(1)
        .take_while(|&c| c != quote)
        .take(40)
        .collect();
    match name.to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" | "us-ascii" | "ascii" => Ok(false),
        "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "latin1" | "latin-1" | "l1" => Ok(true),
        other => Err(FileError::at(
            Position::new(1, 0, 0),
            "xml-encoding",
            format!(
                "declared encoding '{other}' is not supported: IDoc XML must be UTF-8 or ISO-8859-1"
            ),
        )),
    }
}

pub struct IdocReader {
    pub(super) xml: Reader<CappedInput<File>>,
    buf: Vec<u8>,
    catalog: Arc<Catalog>,
    limits: Limits,
    pub(super) stack: Vec<Frame>,
    pub(super) current: Option<RawIdoc>,
    /// What makes the parser's offsets (`Reader::error_position`) the stream's: the UTF-8
    /// BOM it drops without counting, or where a restarted read's prelude begins.
    pub(super) xml_shift: u64,
    /// What the reader knows of each segment name, looked up once a segment. foldhash,
    /// not SipHash: the look-up is on the reading thread, an IDoc run's slowest, and the
    /// map is bounded (`MAX_NAMES`), which is what keeps hostile names cheap.
    names: HashMap<String, NameSeen, foldhash::fast::RandomState>,
    /// The bytes of `names`' keys.
    name_bytes: usize,
    pub(super) idocs: u64,
    /// The lists the last IDoc was read into, emptied: the next is read into them, so
    /// they grow only past the largest IDoc so far (see [`RawIdoc::take_exact`]).
    spare: RawIdoc,
    pub(super) segments_in_file: u64,
    pub(super) next_seq: u64,
    done: bool,
    pub(super) acks: super::ack::AckState,
    /// While `seek` reads its way to a mark, IDocs below this seq are parsed for what they
    /// leave (their seq, for the acknowledgement) and dropped: no lines, no job.
    pub(super) skim_below: u64,
    /// The unit at the mark, read by `seek`, returned first.
    pub(super) at_mark: Option<Unit>,
    /// The open field's name and text (see [`Frame::Field`]), reused from field to field.
    field_name: String,
    field_value: String,
}

impl IdocReader {
    pub fn open(
        path: &std::path::Path,
        ctx: &OpenContext,
        catalog: Arc<Catalog>,
    ) -> Result<IdocReader, FileError> {
        let limits = ctx.limits.clone();
        let mut file = File::open(path).map_err(|e| FileError::io(&e))?;
        let len = file.metadata().map_err(|e| FileError::io(&e))?.len();
        if len > limits.max_file_bytes {
            return Err(FileError::new(
                "file-too-large",
                format!(
                    "file is {len} bytes, over the limit of {} bytes (limits.max_file_bytes)",
                    limits.max_file_bytes
                ),
            ));
        }
        let mut head = [0u8; 512];
        let mut n = 0;
        while n < head.len() {
            match file.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FileError::io(&e)),
            }
        }
        let head = &head[..n];
        if is_flat_idoc(head) {
            return Err(FileError::at(
                Position::new(1, 0, 1),
                "idoc-flat-unsupported",
                "this is a flat (fixed-width) IDoc: tallyman reads IDoc XML only; have the \
                 sender's port (or the SAP XML file port) send the IDoc as XML",
            ));
        }
        let latin1 = detect_latin1(head)?;
        let bom = !latin1 && head.starts_with(&[0xEF, 0xBB, 0xBF]);
        file.seek(SeekFrom::Start(0))
            .map_err(|e| FileError::io(&e))?;
        let input = CappedInput::new(file, latin1, limits.max_file_bytes, limits.max_record_bytes);
        let catalog_for_acks = catalog.clone();
        let mut xml = Reader::from_reader(input);
        // Keep whitespace text events: they make every event start where the previous one
        // ended, which is how segments get exact byte/line/column positions.
        let cfg = xml.config_mut();
        cfg.trim_text(false);
        cfg.check_end_names = true;
        cfg.expand_empty_elements = false;
        Ok(IdocReader {
            xml,
            buf: Vec::with_capacity(8 * 1024),
            catalog,
            limits,
            stack: Vec::new(),
            current: None,
            xml_shift: if bom { 3 } else { 0 },
            names: HashMap::default(),
            name_bytes: 0,
            idocs: 0,
            spare: RawIdoc::default(),
            segments_in_file: 0,
            next_seq: 0,
            done: false,
            acks: super::ack::AckState::new(catalog_for_acks),
            skim_below: 0,
            at_mark: None,
            field_name: String::new(),
            field_value: String::new(),
        })
    }

    pub(super) fn here(&self) -> Mark {
        let inp = self.xml.get_ref();
        let (line, col) = inp.line_col();
        Mark {
            byte: inp.consumed,
            line,
            col,
        }
    }
}

/// An IDoc's segments as lines are shown: each with its locator, and its text with the
/// fields its type's definition marks sensitive masked.
struct IdocLines {
    catalog: Arc<Catalog>,
    typ: String,
    idoc: Arc<RawIdoc>,
}

impl crate::unit::ShowLines for IdocLines {
    fn line(&self, i: usize) -> SourceLine {
        let s = self.idoc.seg(i);
        let sensitive = self
            .catalog
            .get(&self.typ)
            .and_then(|t| t.segments.get(s.name.as_str()))
            .map_or(&[][..], |d| d.sensitive.as_slice());
        SourceLine {
            pos: self.pos(i),
            raw: s.raw(sensitive),
        }
    }

    fn pos(&self, i: usize) -> Position {
        let s = &self.idoc.segments[i];
        match s.locator() {
            Some(l) => s.pos.clone().with_locator(l),
            None => s.pos.clone(),
        }
    }
}

impl UnitReader for IdocReader {
    fn next_unit(&mut self) -> Result<Option<Unit>, FileError> {
        if let Some(u) = self.at_mark.take() {
            return Ok(Some(u));
        }
        let Some(idoc) = self.next_idoc()? else {
            return Ok(None);
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        if seq < self.skim_below {
            self.acks.seen(seq);
            return Ok(Some(Unit {
                seq,
                label: String::new(),
                lines: Vec::new(),
                job: None,
                show: None,
            }));
        }
        let dc = idoc.get(0).filter(|s| s.name == CONTROL);
        let typ = dc
            .and_then(|d| d.field("IDOCTYP"))
            .map(str::trim)
            .unwrap_or("?");
        let docnum = dc
            .and_then(|d| d.field("DOCNUM"))
            .map(str::trim)
            .unwrap_or("");
        let label = format!("IDoc {} ({typ} {docnum})", idoc.ordinal);
        let typ = typ.to_string();
        let lines = idoc
            .segments
            .iter()
            .map(|s| SourceLine {
                pos: s.pos.clone(),
                raw: String::new(),
            })
            .collect();
        self.acks.seen(seq);
        let idoc = Arc::new(idoc);
        let (catalog, shown) = (self.catalog.clone(), idoc.clone());
        let show_catalog = self.catalog.clone();
        Ok(Some(Unit {
            seq,
            label,
            lines,
            job: Some(Box::new(move |_: &str| {
                super::eval::evaluate(&catalog, &idoc)
            })),
            show: Some(Arc::new(IdocLines {
                catalog: show_catalog,
                typ,
                idoc: shown,
            })),
        }))
    }

    /// See `super::resume`.
    fn mark(&mut self) -> Option<crate::format::Mark> {
        Some(self.restart_mark())
    }

    /// See `super::resume`.
    fn seek(&mut self, mark: &crate::format::Mark) -> Result<bool, FileError> {
        let at_mark = self.restart_at(mark)?;
        if at_mark && self.acks.restore(mark.seq) {
            tracing::info!(
                "the STATUS takes up the answers kept before IDoc {}",
                mark.seq
            );
        }
        Ok(at_mark)
    }

    /// The STATUS keeps what it answered there (see `super::ack`).
    fn keep_state_in(&mut self, file: std::path::PathBuf) {
        self.acks.keep_in(file);
    }

    /// The STATUS answers committed IDocs as batches commit (see `super::ack`).
    fn answering(&mut self) -> Option<Box<dyn crate::format::Answering>> {
        Some(Box::new(self.acks.answering()))
    }

    fn finish(
        &mut self,
        outcomes: &dyn UnitOutcomes,
        acks: &mut dyn AckContext,
        error: Option<&FileError>,
    ) -> Result<Vec<Outbound>, FileError> {
        self.acks.build(outcomes, acks, error)
    }
}

/// Is this the start of a flat IDoc (a control record line beginning `EDI_DC40`)?
pub fn is_flat_idoc(head: &[u8]) -> bool {
    let head = head.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(head);
    head.starts_with(b"EDI_DC40")
}
