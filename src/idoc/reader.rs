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

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::def::{Catalog, CONTROL};
use super::input::{CappedInput, Trip};
use crate::format::{
    AckContext, FileError, Limits, OpenContext, Outbound, UnitOutcomes, UnitReader,
};
use crate::tabular::cell_text::CellText;
use crate::unit::{capped, mask, Position, SourceLine, Unit};

/// How much of a segment the ledger keeps as its raw text.
const RAW_CAP: usize = 512;

/// One segment as read: its fields in document order and its parent segment. The fields'
/// names and values share one buffer: two strings per field were two allocations in the
/// reading thread, IDoc's slowest, and two frees on another thread.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Kept inline: names are short, and one allocation per segment was a fifth of the
    /// reading thread's allocations.
    pub name: CellText,
    /// Index of the parent segment in the IDoc, `None` for segments directly under `<IDOC>`.
    pub parent: Option<usize>,
    /// Each field's name then its value, one after another.
    text: String,
    slots: Vec<Slot>,
    /// The fields and text bytes its lists get at its first field (see
    /// [`Segment::with_room`]).
    room: (u16, u16),
    /// Its line, byte and record; no locator (see [`Segment::locator`]).
    pub pos: Position,
    bytes: u64,
    /// What its locator is made of: its IDoc's ordinal (0: not known, a segment made
    /// without a place), its occurrence among its IDoc's segments of that name, the
    /// column of its start tag.
    place: (u64, u64, u64),
}

/// Where a field's name and value are in its segment's text.
#[derive(Debug, Clone, Copy)]
struct Slot {
    name: (usize, usize),
    value: (usize, usize),
    at: Mark,
}

/// One field element of a segment, with where its start tag is: a field error points at
/// the field, not at the segment's first line (segments span many lines in pretty XML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub at: Mark,
}

/// What keeping one field costs beyond its text, counted against the IDoc's byte budget
/// so that thousands of tiny fields (`<A/>`) cannot cost far more memory than the budget.
pub const FIELD_OVERHEAD: u64 = std::mem::size_of::<Slot>() as u64;

impl Segment {
    pub fn new(name: &str, parent: Option<usize>, pos: Position) -> Segment {
        Segment::with_room(name, parent, pos, (0, 0))
    }

    /// A segment whose lists get room for `fields` fields of `text` bytes in all when
    /// its first field comes (as much as [`Segment::room`] tells of the last one of its
    /// name), up to [`ROOM_FIELDS`] and [`ROOM_TEXT`]: the IDoc's byte budget counts
    /// fields, not room, so one large segment must not make every later one of its name
    /// reserve as much, and a segment without fields takes none.
    pub fn with_room(
        name: &str,
        parent: Option<usize>,
        pos: Position,
        (fields, text): (usize, usize),
    ) -> Segment {
        Segment {
            name: CellText::new(name),
            parent,
            text: String::new(),
            slots: Vec::new(),
            room: (fields.min(ROOM_FIELDS) as u16, text.min(ROOM_TEXT) as u16),
            pos,
            bytes: 0,
            place: (0, 0, 0),
        }
    }

    /// Its fields and text bytes.
    pub fn room(&self) -> (usize, usize) {
        (self.slots.len(), self.text.len())
    }

    /// The segment's place among its IDoc's: IDoc `ordinal`, `n`th of its name, start tag
    /// at column `col`.
    pub fn placed(mut self, ordinal: u64, n: u64, col: u64) -> Segment {
        self.place = (ordinal, n, col);
        self
    }

    /// `IDoc 2 / E1EDP01 #2 (line 4, column 3)`, made when a line or a reason shows it
    /// rather than for every segment read; `None` without a place.
    pub fn locator(&self) -> Option<String> {
        let (ordinal, n, col) = self.place;
        (ordinal > 0).then(|| {
            let at = Mark {
                byte: self.pos.byte,
                line: self.pos.line,
                col,
            };
            segment_locator(ordinal, &self.name, n, at)
        })
    }

    /// Keeps a field (after those already kept).
    pub fn push_field(&mut self, name: &str, value: &str, at: Mark) {
        if self.slots.capacity() == 0 {
            // Room at once rather than growing through 8, 16, 32... bytes: the last
            // segment of this name's (a little more text: values differ in length), or a
            // usual segment's.
            let (fields, text) = match self.room {
                (0, _) => (6, 80),
                (f, t) => (usize::from(f), usize::from(t) * 9 / 8 + 8),
            };
            self.slots.reserve_exact(fields);
            self.text.reserve(text);
        }
        let start = self.text.len();
        self.text.push_str(name);
        let mid = self.text.len();
        self.text.push_str(value);
        self.slots.push(Slot {
            name: (start, mid),
            value: (mid, self.text.len()),
            at,
        });
    }

    /// The fields in document order.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = Field<'_>> + '_ {
        self.slots.iter().map(|s| Field {
            name: &self.text[s.name.0..s.name.1],
            value: &self.text[s.value.0..s.value.1],
            at: s.at,
        })
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.field_entry(name).map(|f| f.value)
    }

    pub fn field_entry(&self, name: &str) -> Option<Field<'_>> {
        self.fields().find(|f| f.name == name)
    }

    /// A reason about one of this segment's fields, placed at the field's element when it
    /// is present (a missing field stays at the segment): its line and byte, and a locator
    /// `IDoc 1 / E1EDL20 #1 / INCO1 (line 24, column 17)`.
    pub fn place(&self, name: &str, reason: crate::unit::Reason) -> crate::unit::Reason {
        let Some(f) = self.field_entry(name) else {
            return reason;
        };
        let seg = self.locator();
        let seg = seg.as_deref().unwrap_or(&self.name);
        let seg = seg.split(" (line ").next().unwrap_or(seg);
        reason
            .at(format!(
                "{seg} / {name} (line {}, column {})",
                f.at.line, f.at.col
            ))
            .placed(f.at.line, f.at.byte)
    }

    /// `E1EDP01: POSEX=000010 MENGE=5`, capped for the ledger, with the fields the type
    /// definition marks sensitive masked.
    pub fn raw(&self, sensitive: &[String]) -> String {
        let mut s = String::with_capacity(64);
        s.push_str(&self.name);
        s.push(':');
        for f in self.fields() {
            if s.len() > RAW_CAP {
                break;
            }
            s.push(' ');
            s.push_str(f.name);
            s.push('=');
            if sensitive.iter().any(|n| n == f.name) {
                s.push_str(&mask(f.value.trim()));
            } else {
                s.push_str(f.value.trim_end());
            }
        }
        capped(s, RAW_CAP)
    }
}

/// One IDoc as read from the file, handed to the unit's job.
#[derive(Debug, Clone, Default)]
pub struct RawIdoc {
    /// 1-based ordinal of the IDoc in the file.
    pub ordinal: u64,
    pub segments: Vec<Segment>,
    /// Segments past `max_unit_lines` that were counted but not kept.
    pub dropped: u64,
    pub max_segments: u64,
    /// Field bytes kept so far, and the cap (see [`SEGMENT_BUDGET`]).
    pub bytes: u64,
    pub max_bytes: u64,
    /// The byte cap was hit: the rest of the IDoc is skipped, not buffered.
    pub over_bytes: bool,
}

/// Average bytes one segment may hold when sizing an IDoc's byte cap: SAP segment data is
/// at most 1000 characters (SDATA); the rest leaves room for XML field names. Together
/// with `max_unit_lines` this bounds one IDoc's memory even when every segment is large.
pub const SEGMENT_BUDGET: u64 = 2048;

/// The most fields and text bytes a segment is given room for at its first field (see
/// [`Segment::with_room`]): about a segment's share of the IDoc's byte budget
/// ([`SEGMENT_BUDGET`]) with its fields' slots, far above a usual segment's.
pub const ROOM_FIELDS: usize = 16;
pub const ROOM_TEXT: usize = 1024;

/// Segment names, and bytes of them, past which [`IdocReader::names`] starts again at the
/// next IDoc: far more than any IDoc type defines (SAP's names have at most 30
/// characters), so only a file inventing names reaches them.
const MAX_NAMES: usize = 4096;
const MAX_NAME_BYTES: usize = 256 * 1024;

/// The most segments an IDoc's list gets room for before its first: one huge IDoc does not
/// make every IDoc after it take that much (the list grows past it as needed).
const LEN_HINT_CAP: usize = 1024;

/// One segment name as the reader has seen it.
#[derive(Debug, Default)]
struct NameSeen {
    /// The IDoc `count` is of (its ordinal).
    idoc: u64,
    /// Segments of this name in that IDoc so far, for locators (`E1EDP01 #2`).
    count: u64,
    /// The fields and text bytes the last segment of this name held: the room the next
    /// one is given at its first field, within [`ROOM_FIELDS`] and [`ROOM_TEXT`]. A
    /// segment's lists grew step by step, several allocations a segment on IDoc's busiest
    /// thread; and each name was allocated again per IDoc.
    room: (usize, usize),
}

pub(super) enum Frame {
    /// An element around the IDocs, by its qualified name: what a restarted parser must be
    /// told is open there (see `super::resume`).
    Envelope(Box<str>),
    Idoc,
    /// A segment kept at index `kept`, or `None` when the IDoc overflowed, and its name's
    /// entry in [`IdocReader::seen`] (its end updates the entry without looking it up).
    Segment {
        kept: Option<usize>,
        name: usize,
    },
    /// A field of the kept segment `seg` (`None`: of a segment not kept), its name and
    /// text so far in the reader's `field_name` and `field_value` (fields do not nest).
    Field {
        seg: Option<usize>,
        at: Mark,
    },
}

/// Where an XML event starts: 0-based byte, 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub byte: u64,
    pub line: u64,
    pub col: u64,
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
    /// Each segment name's entry in `seen`: looked up once a segment (a lookup for its
    /// count, another for its entry and one at its end hashed each name three times).
    names: HashMap<String, usize>,
    /// What the reader knows of each segment name: see [`NameSeen`].
    seen: Vec<NameSeen>,
    /// The bytes of `names`' keys.
    name_bytes: usize,
    pub(super) idocs: u64,
    /// How many segments the last IDoc kept: the next one's list gets that room at once
    /// instead of growing through 4, 8, 16... (IDocs of a file are alike).
    last_len: usize,
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
            names: HashMap::new(),
            seen: Vec::new(),
            name_bytes: 0,
            idocs: 0,
            last_len: 0,
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

    fn pos(&self, m: Mark) -> Position {
        Position::new(m.line, m.byte, self.segments_in_file)
            .with_locator(format!("line {}, column {}", m.line, m.col))
    }

    fn fail(&mut self, m: Mark, rule: &str, msg: impl Into<String>) -> FileError {
        self.done = true;
        FileError::at(self.pos(m), rule, msg)
    }

    /// Turns a quick-xml error into a positioned file error, naming the cap that tripped.
    fn xml_error(&mut self, m: Mark, e: quick_xml::Error, buf: &[u8]) -> FileError {
        self.done = true;
        let tripped = self.xml.get_ref().tripped;
        match tripped {
            Some(Trip::EventTooLarge) => FileError::at(
                self.pos(m),
                "xml-too-large",
                format!(
                    "a text node, tag, comment or DOCTYPE starting here is longer than {} bytes \
                     (limits.max_record_bytes)",
                    self.limits.max_record_bytes
                ),
            ),
            Some(Trip::FileTooLarge) => FileError::at(
                self.pos(m),
                "file-too-large",
                format!(
                    "file is over the limit of {} bytes (limits.max_file_bytes)",
                    self.limits.max_file_bytes
                ),
            ),
            None => {
                let at = self.xml.error_position() + self.xml_shift;
                // Errors are reported inside the event that started at `m`: count the
                // newlines of the bytes buffered so far up to the error offset.
                let upto = (at.saturating_sub(m.byte) as usize).min(buf.len());
                let prefix = &buf[..upto];
                let nl = memchr::memchr_iter(b'\n', prefix).count() as u64;
                let (line, col) = if nl == 0 {
                    (m.line, m.col + at.saturating_sub(m.byte))
                } else {
                    let last = memchr::memrchr(b'\n', prefix).unwrap_or(0);
                    (m.line + nl, (upto - last) as u64)
                };
                let msg = match &e {
                    quick_xml::Error::Io(io) => format!("I/O error: {io}"),
                    other => format!("malformed XML: {other}"),
                };
                FileError::at(
                    Position::new(line, at, self.segments_in_file)
                        .with_locator(format!("line {line}, column {col}")),
                    if matches!(e, quick_xml::Error::Io(_)) {
                        "io"
                    } else {
                        "xml-syntax"
                    },
                    msg,
                )
            }
        }
    }

    fn start_element(&mut self, e: &BytesStart, m: Mark) -> Result<(), FileError> {
        if self.stack.len() as u64 >= self.limits.max_depth as u64 {
            let max = self.limits.max_depth;
            return Err(self.fail(
                m,
                "xml-depth",
                format!("XML nesting deeper than {max} levels (limits.max_depth)"),
            ));
        }
        let qname = e.name();
        let local = qname.local_name();
        let name: &str = local.as_ref();
        let frame = match self.stack.last() {
            None | Some(Frame::Envelope(_)) => {
                if name == "IDOC" {
                    self.idocs += 1;
                    // Counts are per IDoc (`NameSeen::idoc`); the names stay, unless a
                    // file makes up more than any catalog holds.
                    if self.names.len() > MAX_NAMES || self.name_bytes > MAX_NAME_BYTES {
                        self.names.clear();
                        self.seen.clear();
                        self.name_bytes = 0;
                    }
                    self.current = Some(RawIdoc {
                        ordinal: self.idocs,
                        segments: Vec::with_capacity(self.last_len.min(LEN_HINT_CAP)),
                        dropped: 0,
                        max_segments: self.limits.max_unit_lines,
                        bytes: 0,
                        max_bytes: self.limits.max_unit_lines.saturating_mul(SEGMENT_BUDGET),
                        over_bytes: false,
                    });
                    Frame::Idoc
                } else {
                    Frame::Envelope(Box::from(qname.into_inner()))
                }
            }
            Some(Frame::Idoc) | Some(Frame::Segment { .. }) => {
                let parent_kept = match self.stack.last() {
                    Some(Frame::Segment { kept, .. }) => Some(*kept),
                    _ => None,
                };
                // Most elements are fields, without attributes: looking at the raw text
                // first spares them the attribute iterator. A segment's attributes are not
                // checked for duplicates (a list of the names seen, allocated for every
                // segment): one named SEGMENT is all this asks.
                let is_segment = name == CONTROL
                    || (!e.attributes_raw().trim_ascii().is_empty()
                        && e.attributes()
                            .with_checks(false)
                            .flatten()
                            .any(|a| a.key.local_name().as_ref() == "SEGMENT"));
                if is_segment {
                    self.segments_in_file += 1;
                    let ordinal = self.idocs;
                    let entry = self.seen(name);
                    let (n, room) = (self.seen[entry].count, self.seen[entry].room);
                    let pos = Position::new(m.line, m.byte, self.segments_in_file);
                    let Some(idoc) = self.current.as_mut() else {
                        return Err(self.fail(m, "idoc-structure", "segment outside <IDOC>"));
                    };
                    // A parent that overflowed drops its children too.
                    let parent = match parent_kept {
                        Some(None) => {
                            idoc.dropped += 1;
                            self.stack.push(Frame::Segment {
                                kept: None,
                                name: entry,
                            });
                            return Ok(());
                        }
                        Some(Some(i)) => Some(i),
                        None => None,
                    };
                    if idoc.segments.len() as u64 >= idoc.max_segments || idoc.over_bytes {
                        idoc.dropped += 1;
                        Frame::Segment {
                            kept: None,
                            name: entry,
                        }
                    } else {
                        let seg = Segment::with_room(name, parent, pos, room);
                        idoc.segments.push(seg.placed(ordinal, n, m.col));
                        Frame::Segment {
                            kept: Some(idoc.segments.len() - 1),
                            name: entry,
                        }
                    }
                } else {
                    match parent_kept {
                        Some(seg) => {
                            self.field_name.clear();
                            self.field_name.push_str(name);
                            self.field_value.clear();
                            Frame::Field { seg, at: m }
                        }
                        None => {
                            return Err(self.fail(
                                m,
                                "idoc-structure",
                                format!(
                                    "element <{name}> directly under <IDOC> is not a segment \
                                     (segments carry SEGMENT=\"1\")"
                                ),
                            ))
                        }
                    }
                }
            }
            Some(Frame::Field { .. }) => {
                let field = &self.field_name;
                let msg = format!(
                    "element <{name}> inside field <{field}>: fields hold text only; a nested \
                     segment needs SEGMENT=\"1\""
                );
                return Err(self.fail(m, "idoc-structure", msg));
            }
        };
        self.stack.push(frame);
        Ok(())
    }

    /// Closes the innermost element; returns a finished IDoc when `</IDOC>` closes.
    fn end_element(&mut self, m: Mark) -> Result<Option<RawIdoc>, FileError> {
        match self.stack.pop() {
            Some(Frame::Field { seg, at }) => {
                let (name, value) = (&self.field_name, &self.field_value);
                if let (Some(i), Some(idoc)) = (seg, self.current.as_mut()) {
                    let s = &mut idoc.segments[i];
                    s.bytes += (name.len() + value.len()) as u64;
                    if s.bytes > self.limits.max_record_bytes {
                        let seg_name = s.name.clone();
                        let max = self.limits.max_record_bytes;
                        return Err(self.fail(
                            m,
                            "idoc-segment-too-large",
                            format!(
                                "segment {seg_name} holds more than {max} bytes of fields \
                                 (limits.max_record_bytes)"
                            ),
                        ));
                    }
                    let len = (name.len() + value.len()) as u64 + FIELD_OVERHEAD;
                    idoc.bytes += len;
                    if idoc.bytes > idoc.max_bytes {
                        idoc.over_bytes = true;
                    }
                    if !idoc.over_bytes {
                        idoc.segments[i].push_field(name, value, at);
                    }
                }
                Ok(None)
            }
            Some(Frame::Idoc) => {
                let idoc = self.current.take();
                self.last_len = idoc.as_ref().map_or(0, |i| i.segments.len());
                Ok(idoc)
            }
            Some(Frame::Segment {
                kept: Some(i),
                name,
            }) => {
                if let Some(seg) = self.current.as_ref().and_then(|c| c.segments.get(i)) {
                    self.seen[name].room = seg.room();
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// The index of the name's entry in `seen`, its count in the current IDoc taken one up.
    fn seen(&mut self, name: &str) -> usize {
        let idoc = self.idocs;
        let entry = match self.names.get(name) {
            Some(&entry) => entry,
            None => {
                self.names.insert(name.to_string(), self.seen.len());
                self.seen.push(NameSeen::default());
                self.name_bytes += name.len();
                self.seen.len() - 1
            }
        };
        let seen = &mut self.seen[entry];
        if seen.idoc != idoc {
            (seen.idoc, seen.count) = (idoc, 0);
        }
        seen.count += 1;
        entry
    }

    fn append_text(&mut self, text: &str, m: Mark) -> Result<(), FileError> {
        match self.stack.last_mut() {
            Some(Frame::Field { .. }) => {
                let value = &mut self.field_value;
                if (value.len() + text.len()) as u64 > self.limits.max_record_bytes {
                    let max = self.limits.max_record_bytes;
                    return Err(self.fail(
                        m,
                        "xml-too-large",
                        format!("field text longer than {max} bytes (limits.max_record_bytes)"),
                    ));
                }
                value.push_str(text);
                Ok(())
            }
            Some(Frame::Idoc) | Some(Frame::Segment { .. }) if !text.trim().is_empty() => {
                let snippet: String = text.trim().chars().take(40).collect();
                Err(self.fail(
                    m,
                    "idoc-structure",
                    format!("text '{snippet}' between segments: IDoc data belongs in fields"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Reads the next complete IDoc, or `None` at the end of the file.
    fn next_idoc(&mut self) -> Result<Option<RawIdoc>, FileError> {
        if self.done {
            return Ok(None);
        }
        loop {
            // The event borrows the buffer, and handling it needs `&mut self`: move the
            // buffer out for the step and back in after, so it is reused, never reallocated.
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            self.xml.get_mut().reset_budget();
            let m = self.here();
            let step = match self.xml.read_event_into(&mut buf) {
                Ok(ev) => self.handle(ev, m),
                Err(e) => Err(self.xml_error(m, e, &buf)),
            };
            self.buf = buf;
            match step? {
                Step::More => {}
                Step::Idoc(idoc) => return Ok(Some(idoc)),
                Step::End => return Ok(None),
            }
        }
    }

    fn handle(&mut self, ev: Event<'_>, m: Mark) -> Result<Step, FileError> {
        match ev {
            Event::Start(e) => self.start_element(&e, m)?,
            Event::Empty(e) => {
                self.start_element(&e, m)?;
                if let Some(idoc) = self.end_element(m)? {
                    return Ok(Step::Idoc(idoc));
                }
            }
            Event::End(_) => {
                if let Some(idoc) = self.end_element(m)? {
                    return Ok(Step::Idoc(idoc));
                }
            }
            // Indentation between elements, nothing but ASCII whitespace outside a field,
            // is what `append_text` lets pass: let it pass without normalizing its line
            // ends first (in a pretty-printed file it is every other event).
            Event::Text(t)
                if !matches!(self.stack.last(), Some(Frame::Field { .. }))
                    && t.bytes().all(|b| b.is_ascii_whitespace()) => {}
            Event::Text(t) => self.append_text(&t.xml10_content(), m)?,
            Event::CData(t) => self.append_text(&t.xml10_content(), m)?,
            Event::GeneralRef(r) => {
                let name: &str = &r;
                let Some(resolved) = resolve_ref(name) else {
                    let shown: String = name.chars().take(40).collect();
                    return Err(self.fail(
                        m,
                        "xml-entity",
                        format!(
                            "undefined entity '&{shown};': only the five predefined XML \
                             entities and character references are allowed (no DTD)"
                        ),
                    ));
                };
                let mut tmp = [0u8; 4];
                self.append_text(resolved.encode_utf8(&mut tmp), m)?;
            }
            Event::DocType(_) => {
                // The DOCTYPE text is deliberately not echoed: it may name local files.
                return Err(self.fail(
                    m,
                    "xml-doctype",
                    "DOCTYPE declarations are refused: DTDs and entity definitions are never \
                     expanded (billion laughs, external entities); send the IDoc without one",
                ));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => {
                if !self.stack.is_empty() {
                    return Err(self.fail(
                        m,
                        "xml-syntax",
                        "unexpected end of file: elements left open (truncated file?)",
                    ));
                }
                if self.idocs == 0 {
                    return Err(self.fail(
                        m,
                        "idoc-empty",
                        "no <IDOC> element found: not an IDoc XML file",
                    ));
                }
                self.done = true;
                return Ok(Step::End);
            }
        }
        Ok(Step::More)
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
        let s = &self.idoc.segments[i];
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

/// `IDoc 3 / E1EDP01 #2 (line 40, column 5)`, built by hand: when it was made for every
/// segment read, `format!` was a sixth of the reading thread's time.
fn segment_locator(ordinal: u64, name: &str, n: u64, m: Mark) -> String {
    let mut b = itoa::Buffer::new();
    let mut s = String::with_capacity(40 + name.len());
    s.push_str("IDoc ");
    s.push_str(b.format(ordinal));
    s.push_str(" / ");
    s.push_str(name);
    s.push_str(" #");
    s.push_str(b.format(n));
    s.push_str(" (line ");
    s.push_str(b.format(m.line));
    s.push_str(", column ");
    s.push_str(b.format(m.col));
    s.push(')');
    s
}

/// What one XML event amounted to.
enum Step {
    More,
    Idoc(RawIdoc),
    End,
}

/// The five predefined entities and numeric character references.
fn resolve_ref(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse::<u32>().ok()?,
            };
            char::from_u32(code).filter(|&c| c != '\0')
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
        let dc = idoc.segments.first().filter(|s| s.name == CONTROL);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The room a segment takes from the last one of its name is capped: a segment with a
    /// megabyte of fields must not make every later one of its name reserve a megabyte
    /// (the IDoc's byte budget counts fields, not room), and one without fields takes none.
    #[test]
    fn regression_a_large_segment_made_every_later_one_of_its_name_reserve_as_much() {
        let at = Mark {
            byte: 0,
            line: 1,
            col: 1,
        };
        let mut big = Segment::new("E1X", None, Position::new(1, 0, 1));
        for i in 0..1000 {
            big.push_field(&format!("F{i}"), &"v".repeat(1000), at);
        }
        let room = big.room();
        assert_eq!(room.0, 1000);
        assert!(room.1 > 1_000_000);
        let mut small = Segment::with_room("E1X", None, Position::new(2, 0, 2), room);
        assert_eq!((small.slots.capacity(), small.text.capacity()), (0, 0));
        small.push_field("F0", "v", at);
        assert!(
            small.slots.capacity() <= ROOM_FIELDS,
            "{}",
            small.slots.capacity()
        );
        assert!(
            small.text.capacity() <= ROOM_TEXT * 9 / 8 + 8,
            "{}",
            small.text.capacity()
        );
        // A usual segment's room is taken as it was.
        let mut usual = Segment::with_room("E1Y", None, Position::new(3, 0, 3), (3, 40));
        usual.push_field("A", "1", at);
        assert_eq!(usual.slots.capacity(), 3);
        assert!(usual.text.capacity() >= 40);
        assert_eq!(usual.field("A"), Some("1"));
    }
}
