//! Passing over segments without making them: what a resume reads committed sets with.
//!
//! A resumed file is read again up to where it stopped, and every segment before that
//! point belongs to a set already committed: only its id and where it ends matter. A
//! `Segment` made of each would be work thrown away, so these passes find terminators (in
//! bulk where they can) and make an id only to see whether to stop there.

use std::io::Read;

use super::{between_segments, ReadError, SegmentReader};
use crate::x12::segments::{Delims, SegId};

/// The id of a skipped segment, given its bytes: what comes before the first element
/// separator, line breaks left out (as `read_segment` leaves them out); 16 bytes without
/// one make no id compared. A one-byte separator found before any line break, as in
/// nearly every segment, ends the id where it is.
fn skipped_id(seg: &[u8], d: &Delims) -> SegId {
    let sep = d.elem.bytes();
    if let [e] = sep {
        let head = &seg[..seg.len().min(16)];
        let plain = head
            .iter()
            .position(|&b| b == *e || b == b'\r' || b == b'\n');
        if let Some(k) = plain.filter(|&k| head[k] == *e) {
            return SegId::of(head[..k].trim_ascii());
        }
    }
    let mut head = [0u8; 16];
    let mut n = 0;
    for &b in seg {
        if n == head.len() {
            break;
        }
        if b != b'\r' && b != b'\n' {
            head[n] = b;
            n += 1;
        }
    }
    let head = &head[..n];
    let id = memchr::memmem::find(head, sep).map_or(head, |k| &head[..k]);
    SegId::of(id.trim_ascii())
}

impl<R: Read> SegmentReader<R> {
    /// Passes over the next segment as [`Self::read_segment`] does (the same position,
    /// line and record counts after it), making no [`Segment`] of it: its id is all it
    /// tells. What a resumed file's committed sets are read with (see `X12Reader::seek`).
    ///
    /// [`Segment`]: crate::x12::segments::Segment
    pub fn skip_segment(&mut self, d: &Delims) -> Result<Option<SegId>, ReadError> {
        self.skip_ws(Some(d))?;
        if self.get(0)?.is_none() {
            return Ok(None);
        }
        if self.at_bin(d)? {
            // Its length-prefixed data decides where it ends: read as usual.
            return Ok(self.read_segment(d)?.map(|s| SegId::of(s.id().as_bytes())));
        }
        let tb = d.term.bytes();
        let len = self.extent(tb)?;
        let id = skipped_id(&self.buf[self.at..self.at + len], d);
        self.pass(len, tb);
        Ok(Some(id))
    }

    /// Passes over the whole segments in the window, as [`Self::skip_segment`] would one by
    /// one, up to the first whose id is one of `stops`, one not whole in the window, or the
    /// end of the window, where the cursor is left for `skip_segment`. Only with one-byte
    /// terminator and element separator, as nearly every interchange has; otherwise it
    /// passes nothing. A resume passes over every committed segment: with `skip_segment`
    /// alone, each checking for the end of the window and a BIN byte by byte and making an
    /// id, a 30 MB interchange killed at 92% spent 708 M instructions there (458 M now).
    pub fn skip_ordinary(&mut self, d: &Delims, stops: &[SegId]) {
        let ([t], [_]) = (d.term.bytes(), d.elem.bytes()) else {
            return;
        };
        let t = *t;
        // The first letters of the stops: a segment starting with another capital is none
        // of them, and its id need not be made (most of this pass's work when it was).
        let letters = stops
            .iter()
            .filter(|s| s.first().is_ascii_uppercase())
            .fold(0u32, |m, s| m | 1 << (s.first() - b'A'));
        let buf = &self.buf;
        let mut at = self.at;
        let mut passed = 0;
        // The terminators in one sweep: a search per segment of a few dozen bytes cost
        // more in setting up its wide search than in searching.
        for k in memchr::memchr_iter(t, &buf[self.at..]) {
            let end = self.at + k;
            // The whitespace `skip_ws` passes first (never a delimiter, so never `t`).
            let seg = &buf[at..end];
            let lead = seg
                .iter()
                .position(|&b| !between_segments(b, d))
                .unwrap_or(seg.len());
            let seg = &seg[lead..];
            let first = seg.first().copied().unwrap_or(0);
            let other = first.is_ascii_uppercase() && letters & 1 << (first - b'A') == 0;
            // A BIN is among the stops: its data, not its first terminator, ends it.
            if seg.len() > self.max_record || (!other && stops.contains(&skipped_id(seg, d))) {
                break;
            }
            at = end + 1;
            passed += 1;
        }
        self.at = at;
        self.record += passed;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{tests::ISA, CHUNK};
    use super::*;

    /// Segments passed over with `skip_segment` leave the reader where `read_segment`
    /// leaves it (byte, line, record) and tell the same id: wrapped lines, CRLF and
    /// newline terminators, a BIN whose data holds delimiters, an id too long to name one.
    #[test]
    fn skipping_a_segment_leaves_the_reader_where_reading_it_does() {
        let isa_nl = ISA.replace('~', "\n");
        let texts = [
            format!("{ISA}\nGS*PO*A*B~\r\nST*850*1~\nBEG*00\r\n*SA~ S\nE*2*1~"),
            format!("{isa_nl}GS*PO*A*B\r\nST*850*1\nSE*2*1\n"),
            format!("{ISA}BIN*5*a~b*c~SE*1*1~TOOLONGID*1~SE~"),
            format!("{ISA}GS *PO~ N1*BY~N3~FOURTEENCHARID*1~SIXTEENCHARS_IDS*1~PO1\r*1~SE*1~"),
        ];
        for text in &texts {
            let (mut read, mut skip) = (
                SegmentReader::new(text.as_bytes(), 1 << 20),
                SegmentReader::new(text.as_bytes(), 1 << 20),
            );
            let d = read.read_isa().unwrap().delims;
            skip.read_isa().unwrap();
            while let Some(seg) = read.read_segment(&d).unwrap() {
                let id = skip.skip_segment(&d).unwrap().expect("a segment");
                let long = seg.id().len() > SegId::MAX;
                assert_eq!((id.is(seg.id()), long), (!long, long), "{}", seg.id());
                assert_eq!(skip.position(), read.position(), "after {}", seg.id());
            }
            assert!(skip.skip_segment(&d).unwrap().is_none());
        }
    }

    /// Passing segments in bulk leaves the reader where reading them one by one does,
    /// wherever it stops: at a stop id (a BIN whose data holds terminators), at the end of a
    /// window, at whitespace and wrapped lines, at a segment too long; and it passes most
    /// segments itself.
    #[test]
    fn skipping_in_bulk_stops_where_reading_does() {
        let mut long = format!("{ISA}\r\n");
        for i in 0..20_000 {
            match i % 997 {
                0 => long.push_str("BIN*5*a~b*c~"),
                1 => long.push_str(" \t\r\nSE*1*1~\n"),
                2 => long.push_str(&format!("N9\r\n*{}~", "x".repeat(70))),
                _ => long.push_str(&format!("PO1*{i}*2*EA\r\n*9.5~\r\n")),
            }
        }
        long.push_str(&format!("N9*{}~", "x".repeat(300)));
        let isa_nl = ISA.replace('~', "\n");
        let texts = [
            long,
            format!("{ISA}\nGS*PO*A*B~\r\nST*850*1~\nBEG*00\r\n*SA~ S\nE*2*1~"),
            format!("{isa_nl}GS*PO*A*B\r\nST*850*1\nSE*2*1\n"),
            format!("{ISA}GS *PO~ N1*BY~N3~FOURTEENCHARID*1~SIXTEENCHARS_IDS*1~PO1\r*1~SE*1~"),
        ];
        let stops = [SegId::of(b"SE"), SegId::of(b"BIN")];
        for text in &texts {
            let (mut read, mut skip) = (
                SegmentReader::new(text.as_bytes(), 256),
                SegmentReader::new(text.as_bytes(), 256),
            );
            let d = read.read_isa().unwrap().delims;
            skip.read_isa().unwrap();
            let isa = skip.record as usize;
            // Where reading leaves the reader after each segment, by segments read.
            let mut after = vec![read.position()];
            let read_end = loop {
                match read.read_segment(&d) {
                    Ok(Some(_)) => after.push(read.position()),
                    Ok(None) => break None,
                    Err(e) => break Some(e.to_string()),
                }
            };
            let mut one_by_one = 0;
            let skip_end = loop {
                skip.skip_ordinary(&d, &stops);
                assert_eq!(skip.position(), after[skip.record as usize - isa]);
                one_by_one += 1;
                match skip.skip_segment(&d) {
                    Ok(Some(_)) => assert_eq!(skip.position(), after[skip.record as usize - isa]),
                    Ok(None) => break None,
                    Err(e) => break Some(e.to_string()),
                }
            };
            assert_eq!(skip_end, read_end);
            assert_eq!(skip.record as usize - isa, after.len() - 1);
            if text.len() > 4 * CHUNK {
                assert!(read_end.is_some(), "the last segment is too long");
                assert!(one_by_one < 200, "{one_by_one} segments skipped one by one");
            }
        }
    }

    /// Skipping counts the line breaks it passes only when a position is asked for or the
    /// window moves on: across several windows, asked only at the end, and at a segment
    /// too long, where the error is told, skipping and reading still agree.
    #[test]
    fn skipped_line_breaks_are_counted_across_windows_when_asked() {
        let mut text = format!("{ISA}\n");
        for i in 0..20_000 {
            text.push_str(&format!("PO1*{i}*2*EA\r\n*9.5~\n"));
        }
        text.push_str(&format!("N9*{}~", "x".repeat(300)));
        assert!(text.len() > 4 * CHUNK);
        let (mut read, mut skip) = (
            SegmentReader::new(text.as_bytes(), 256),
            SegmentReader::new(text.as_bytes(), 256),
        );
        let d = read.read_isa().unwrap().delims;
        skip.read_isa().unwrap();
        for _ in 0..20_000 {
            read.read_segment(&d).unwrap().expect("a segment");
            skip.skip_segment(&d).unwrap().expect("a segment");
        }
        // Up to the last terminator: the line break after it is passed with the next.
        assert_eq!(skip.position(), read.position());
        assert_eq!(read.position().line, 1 + 2 * 20_000);
        let (Err(r), Err(s)) = (read.read_segment(&d), skip.skip_segment(&d)) else {
            panic!("a segment over the limit is an error");
        };
        assert_eq!(s.to_string(), r.to_string());
        assert_eq!(s.pos().map(|p| p.line), Some(2 + 2 * 20_000));
    }
}
