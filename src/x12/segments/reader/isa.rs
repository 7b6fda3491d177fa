//! Reading the ISA, the one segment that says how to read the others.
//!
//! An interchange declares its delimiters in its fixed-width ISA: the element separator
//! is the character after `ISA`, and the component separator and terminator close it.
//! Until it is read no other segment can be cut, so it is read character by character
//! rather than by terminator, hard wraps and multi-byte delimiters included, and checked
//! hard: a wrong delimiter would misread everything after it.

use std::io::Read;

use super::{ReadError, SegmentReader};
use crate::unit::Position;
use crate::x12::segments::{Delims, Segment, Sep};

/// The parsed ISA: its elements, delimiters and whether it had the standard fixed widths.
#[derive(Debug, Clone)]
pub struct IsaRead {
    pub seg: Segment,
    pub delims: Delims,
    /// Every element had its fixed width (106 characters in all).
    pub fixed_width: bool,
}

/// Fixed widths of ISA01..ISA16.
pub const ISA_WIDTHS: [usize; 16] = [2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1];

impl<R: Read> SegmentReader<R> {
    /// True when the next bytes are `ISA`.
    pub fn at_isa(&mut self) -> Result<bool, ReadError> {
        Ok(self.get(0)? == Some(b'I') && self.get(1)? == Some(b'S') && self.get(2)? == Some(b'A'))
    }

    /// Reads one UTF-8 character `i` bytes ahead: (char, byte length).
    fn char_at(&mut self, i: usize) -> Result<Option<(char, usize)>, ReadError> {
        let Some(b0) = self.get(i)? else {
            return Ok(None);
        };
        let n = match b0 {
            0x00..=0x7F => 1,
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return Ok(Some((char::REPLACEMENT_CHARACTER, 1))),
        };
        let mut bytes = [0u8; 4];
        for (k, slot) in bytes.iter_mut().enumerate().take(n) {
            match self.get(i + k)? {
                Some(b) => *slot = b,
                None => return Ok(None),
            }
        }
        Ok(Some(
            std::str::from_utf8(&bytes[..n])
                .ok()
                .and_then(|s| s.chars().next())
                .map(|c| (c, n))
                .unwrap_or((char::REPLACEMENT_CHARACTER, 1)),
        ))
    }

    /// Reads an ISA at the cursor. The element separator is the character after `ISA`;
    /// ISA16 is the character after the 16th separator and the terminator the character
    /// after that. CR/LF inside the ISA are hard-wrap artefacts and skipped, unless one is
    /// the terminator.
    pub fn read_isa(&mut self) -> Result<IsaRead, ReadError> {
        let pos = self.here();
        let (ec, en) = self.char_at(3)?.ok_or_else(|| isa_eof(&pos))?;
        if ec.is_ascii_alphanumeric() || ec.is_whitespace() || ec == char::REPLACEMENT_CHARACTER {
            return Err(isa_err(
                &pos,
                format!(
                    "ISA element separator must be a non-alphanumeric, non-space character, found {}",
                    show_char(ec)
                ),
            ));
        }
        let elem = Sep::new(ec);
        let (logical, i) = self.isa_up_to_isa16(&elem, 3 + en, &pos)?;
        let (cc, tc, i) = self.isa_closing_delims(ec, i, &pos)?;
        let (comp, term) = (Sep::new(cc), Sep::new(tc));
        // The text ends with the 16th separator: ISA16 is the character after it.
        let text = format!("{}{cc}", String::from_utf8_lossy(&logical));
        self.advance(i);
        self.record += 1;
        let seg = Segment::split(
            text.into(),
            elem.bytes(),
            Position::new(pos.line, pos.byte, self.record),
        );
        let fixed_width = seg.elements().len() == 16
            && seg
                .elements()
                .zip(ISA_WIDTHS)
                .all(|(e, w)| e.chars().count() == w);
        let rep = repetition_sep(&seg, ec, cc, tc);
        Ok(IsaRead {
            seg,
            delims: Delims {
                elem,
                comp,
                rep,
                term,
            },
            fixed_width,
        })
    }

    /// The ISA's text through its 16th separator, hard wraps dropped, and the offset after it.
    fn isa_up_to_isa16(
        &mut self,
        elem: &Sep,
        mut i: usize,
        pos: &Position,
    ) -> Result<(Vec<u8>, usize), ReadError> {
        let mut logical: Vec<u8> = b"ISA".to_vec();
        logical.extend_from_slice(elem.bytes());
        let mut seps = 1usize;
        while seps < 16 {
            let b = self.get(i)?.ok_or_else(|| isa_eof(pos))?;
            if b == b'\r' || b == b'\n' {
                i += 1;
                continue;
            }
            if self.at_sep(i, elem)? {
                seps += 1;
                logical.extend_from_slice(elem.bytes());
                i += elem.bytes().len();
                continue;
            }
            if logical.len() > 300 {
                return Err(isa_err(pos, "ISA header has fewer than 16 elements".into()));
            }
            logical.push(b);
            i += 1;
        }
        Ok((logical, i))
    }

    /// ISA16 and the segment terminator, checked usable, and the offset after the terminator.
    fn isa_closing_delims(
        &mut self,
        ec: char,
        mut i: usize,
        pos: &Position,
    ) -> Result<(char, char, usize), ReadError> {
        while matches!(self.get(i)?, Some(b'\r' | b'\n')) {
            i += 1;
        }
        let (cc, cn) = self.char_at(i)?.ok_or_else(|| isa_eof(pos))?;
        i += cn;
        let (tc, tn) = self.char_at(i)?.ok_or_else(|| isa_eof(pos))?;
        i += tn;
        for (what, c) in [("component separator", cc), ("segment terminator", tc)] {
            let newline_term = what == "segment terminator" && (c == '\r' || c == '\n');
            if c.is_ascii_alphanumeric()
                || (c.is_whitespace() && !newline_term)
                || c == ec
                || c == char::REPLACEMENT_CHARACTER
            {
                return Err(isa_err(
                    pos,
                    format!(
                        "ISA {what} {} is not usable (alphanumeric, space, invalid or equal to the element separator)",
                        show_char(c)
                    ),
                ));
            }
        }
        if tc == cc {
            return Err(isa_err(
                pos,
                "ISA16 component separator equals the segment terminator".into(),
            ));
        }
        Ok((cc, tc, i))
    }
}

/// ISA11's repetition separator (version 00402 on), if it is one character unlike the others.
fn repetition_sep(seg: &Segment, ec: char, cc: char, tc: char) -> Option<Sep> {
    (seg.elements().len() > 10)
        .then(|| seg.el(11))
        .and_then(|r| {
            let mut chars = r.chars();
            let c = chars.next()?;
            let version_402 = seg.elements().len() > 11 && seg.el(12) >= "00402";
            (chars.next().is_none()
                && version_402
                && !c.is_ascii_alphanumeric()
                && !c.is_whitespace()
                && c != ec
                && c != cc
                && c != tc)
                .then(|| Sep::new(c))
        })
}

/// An error in the ISA that starts at `pos`.
fn isa_err(pos: &Position, msg: String) -> ReadError {
    ReadError::Isa {
        pos: pos.clone(),
        msg,
    }
}

/// The error of a file that ends inside the ISA starting at `pos`.
fn isa_eof(pos: &Position) -> ReadError {
    isa_err(pos, "file ends inside the ISA header".into())
}

/// A delimiter for a message: printable as itself, otherwise as its code point.
pub fn show_char(c: char) -> String {
    if c.is_ascii_graphic()
        || (!c.is_ascii() && !c.is_control() && c != char::REPLACEMENT_CHARACTER)
    {
        format!("'{c}'")
    } else {
        format!("U+{:04X}", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_isa_is_read_but_not_fixed_width() {
        let mut r = SegmentReader::new(
            &b"ISA*00**00**ZZ*S*ZZ*R*240131*1100*U*00401*1*0*P*:~"[..],
            1 << 20,
        );
        let isa = r.read_isa().unwrap();
        assert!(!isa.fixed_width);
        assert_eq!(isa.delims.comp, Sep::new(':'));
    }
}
