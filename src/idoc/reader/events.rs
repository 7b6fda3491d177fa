//! The XML events of an IDoc file, turned into IDocs one event at a time.
//!
//! Here elements become segments and fields, each IDoc's segments and bytes are counted
//! against its caps (what is past them is dropped), and what the reader refuses is refused
//! as it comes: nesting too deep, text between segments, elements inside fields, a segment
//! over its byte limit, a DOCTYPE, entities other than the five predefined ones, and
//! malformed XML, placed at its line and column. The state it works on is `IdocReader`'s,
//! declared with the reader, which only asks it for the next IDoc.

use quick_xml::events::{BytesStart, Event};

use super::{Frame, IdocReader, Mark, NameSeen, RawIdoc, Segment, FIELD_OVERHEAD, SEGMENT_BUDGET};
use crate::format::FileError;
use crate::idoc::def::CONTROL;
use crate::idoc::input::Trip;
use crate::unit::Position;

/// Segment names, and bytes of them, past which [`IdocReader::names`] starts again at the
/// next IDoc: far more than any IDoc type defines (SAP's names have at most 30
/// characters), so only a file inventing names reaches them.
const MAX_NAMES: usize = 4096;
const MAX_NAME_BYTES: usize = 256 * 1024;

impl IdocReader {
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
                    self.open_idoc();
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
                    self.open_segment(name, parent_kept, m)?
                } else {
                    self.open_field(name, parent_kept, m)?
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

    /// Starts the next IDoc in the lists the last one was read into: its ordinal, its caps.
    fn open_idoc(&mut self) {
        self.idocs += 1;
        // Counts are per IDoc (`NameSeen::idoc`); the names stay, unless a
        // file makes up more than any catalog holds.
        if self.names.len() > MAX_NAMES || self.name_bytes > MAX_NAME_BYTES {
            self.names.clear();
            self.name_bytes = 0;
        }
        let mut idoc = std::mem::take(&mut self.spare);
        idoc.restart(self.idocs);
        idoc.max_segments = self.limits.max_unit_lines;
        idoc.max_bytes = self.limits.max_unit_lines.saturating_mul(SEGMENT_BUDGET);
        self.current = Some(idoc);
    }

    /// The frame of a segment element under `parent_kept` (`None`: directly under
    /// `<IDOC>`), which keeps it, or counts it dropped when its IDoc or parent overflowed.
    fn open_segment(
        &mut self,
        name: &str,
        parent_kept: Option<Option<usize>>,
        m: Mark,
    ) -> Result<Frame, FileError> {
        self.segments_in_file += 1;
        let ordinal = self.idocs;
        let n = self.seen(name);
        let pos = Position::new(m.line, m.byte, self.segments_in_file);
        let Some(idoc) = self.current.as_mut() else {
            return Err(self.fail(m, "idoc-structure", "segment outside <IDOC>"));
        };
        // A parent that overflowed drops its children too.
        let parent = match parent_kept {
            Some(None) => {
                idoc.dropped += 1;
                return Ok(Frame::Segment { kept: None });
            }
            Some(Some(i)) => Some(i),
            None => None,
        };
        if idoc.segments.len() as u64 >= idoc.max_segments || idoc.over_bytes {
            idoc.dropped += 1;
            Ok(Frame::Segment { kept: None })
        } else {
            let seg = Segment::new(name, parent, pos);
            idoc.segments.push(seg.placed(ordinal, n, m.col));
            Ok(Frame::Segment {
                kept: Some(idoc.segments.len() - 1),
            })
        }
    }

    /// The frame of a field element of the segment `parent_kept` names, its name and text
    /// started afresh; refused directly under `<IDOC>`.
    fn open_field(
        &mut self,
        name: &str,
        parent_kept: Option<Option<usize>>,
        m: Mark,
    ) -> Result<Frame, FileError> {
        match parent_kept {
            Some(seg) => {
                self.field_name.clear();
                self.field_name.push_str(name);
                self.field_value.clear();
                Ok(Frame::Field { seg, at: m })
            }
            None => Err(self.fail(
                m,
                "idoc-structure",
                format!(
                    "element <{name}> directly under <IDOC> is not a segment \
                     (segments carry SEGMENT=\"1\")"
                ),
            )),
        }
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
                        idoc.push_field(i, name, value, at);
                    }
                }
                Ok(None)
            }
            Some(Frame::Idoc) => {
                let Some(mut open) = self.current.take() else {
                    return Ok(None);
                };
                let idoc = open.take_exact();
                self.spare = open;
                Ok(Some(idoc))
            }
            _ => Ok(None),
        }
    }

    /// The name's count in the current IDoc, taken one up.
    fn seen(&mut self, name: &str) -> u64 {
        let idoc = self.idocs;
        let count = |seen: &mut NameSeen| {
            if seen.idoc != idoc {
                (seen.idoc, seen.count) = (idoc, 0);
            }
            seen.count += 1;
            seen.count
        };
        if let Some(seen) = self.names.get_mut(name) {
            return count(seen);
        }
        self.name_bytes += name.len();
        count(self.names.entry(name.to_string()).or_default())
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
    pub(super) fn next_idoc(&mut self) -> Result<Option<RawIdoc>, FileError> {
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
