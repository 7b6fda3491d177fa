//! The segment reader on hand-made interchanges: delimiters and positions, hard-wrapped
//! segments, long elements, BIN payloads, the segment size limit and multi-byte delimiters
//! across read boundaries.

use super::*;

pub(super) const ISA: &str = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240131*1100*U*00401*000000001*0*P*>~";

fn all(input: &[u8]) -> Vec<Segment> {
    let mut r = SegmentReader::new(input, 1 << 20);
    r.skip_bom().unwrap();
    r.skip_ws(None).unwrap();
    let isa = r.read_isa().unwrap();
    let mut out = vec![isa.seg];
    while let Some(s) = r.read_segment(&isa.delims).unwrap() {
        out.push(s);
    }
    out
}

#[test]
fn reads_delimiters_and_positions() {
    let text = format!("\u{feff}{ISA}\nGS*PO*A*B~\r\nST*850*1~");
    let segs = all(text.as_bytes());
    assert_eq!(segs.len(), 3);
    assert_eq!(segs[0].el(6), "SENDER         ");
    assert_eq!(segs[0].pos.byte, 3);
    assert_eq!(segs[1].id(), "GS");
    assert_eq!(segs[1].pos.line, 2);
    assert_eq!(segs[2].pos.line, 3);
    assert_eq!(segs[2].pos.record, 3);
    assert_eq!(segs[2].el(2), "1");
}

#[test]
fn hard_wrapped_isa_and_elements_are_joined() {
    let wrapped = format!("{}\n{}GS*PO*A*B*2024\r\n0131~", &ISA[..80], &ISA[80..]);
    let segs = all(wrapped.as_bytes());
    assert_eq!(segs[0].elements().len(), 16);
    assert_eq!(segs[1].el(4), "20240131");
}

#[test]
fn newline_terminator_with_crlf() {
    let isa = ISA.replace('~', "\n");
    let segs = all(format!("{isa}GS*PO*A*B\r\nST*850*1\n").as_bytes());
    assert_eq!(segs[1].el(3), "B");
    assert_eq!(segs[2].id(), "ST");
}

/// A segment's text is kept inline up to 46 bytes and on the heap above: either way
/// it reads back whole, with its elements, multi-byte characters included.
#[test]
fn segments_either_side_of_the_inline_limit_read_back_whole() {
    let texts = [
        format!("N1*BY*{}", "x".repeat(40)),
        format!("N1*BY*{}", "x".repeat(41)),
        format!("N1*BY*{}*9", "é".repeat(19)),
        format!("N1*BY*{}*92*C-1", "Ö".repeat(30)),
    ];
    assert_eq!((texts[0].len(), texts[1].len()), (46, 47));
    let input: String = texts.iter().map(|t| format!("{t}~")).collect();
    let segs = all(format!("{ISA}{input}").as_bytes());
    for (seg, text) in segs[1..].iter().zip(&texts) {
        assert_eq!(seg.text(), text);
        assert_eq!(seg.id(), "N1");
        let els: Vec<&str> = text.split('*').skip(1).collect();
        assert_eq!(seg.elements().collect::<Vec<_>>(), els);
    }
}

/// Element ranges are kept inline for up to 11 elements of a text under 64 KiB and
/// move to the heap past either: a segment of many elements, and one whose elements
/// straddle the 64 KiB mark, read back every element.
#[test]
fn element_ranges_past_the_inline_slots_and_past_64_kib_read_back() {
    let many: Vec<String> = (1..=30).map(|i| format!("E{i}")).collect();
    let wide = [
        "A".repeat(40_000),
        "B".repeat(30_000),
        "C".into(),
        "D".into(),
    ];
    for els in [many, wide.to_vec()] {
        let text = format!("REF*{}", els.join("*"));
        let segs = all(format!("{ISA}{text}~").as_bytes());
        assert_eq!(segs[1].text(), text);
        assert_eq!(segs[1].elements().collect::<Vec<_>>(), els);
        assert_eq!(segs[1].el(els.len()), els[els.len() - 1]);
        assert_eq!(segs[1].el(els.len() + 1), "");
    }
}

#[test]
fn bin_payload_may_contain_delimiters() {
    let segs = all(format!("{ISA}BIN*5*a~b*c~SE*1*1~").as_bytes());
    assert_eq!(segs[1].el(2), "a~b*c");
    assert_eq!((segs[1].id(), segs[1].el(1)), ("BIN", "5"));
    assert_eq!(segs[1].text(), "BIN*5*[5 bytes]");
    assert_eq!(segs[2].id(), "SE");
}

#[test]
fn non_numeric_bin_length_is_an_error() {
    let text = format!("{ISA}BIN*5a*a~b*c~");
    let mut r = SegmentReader::new(text.as_bytes(), 1 << 20);
    let isa = r.read_isa().unwrap();
    assert!(matches!(
        r.read_segment(&isa.delims),
        Err(ReadError::Binary { .. })
    ));
}

#[test]
fn segment_longer_than_limit_is_refused() {
    let text = format!("{ISA}{}~", "A".repeat(5000));
    let mut r = SegmentReader::new(text.as_bytes(), 1000);
    let isa = r.read_isa().unwrap();
    assert!(matches!(
        r.read_segment(&isa.delims),
        Err(ReadError::TooLong { .. })
    ));
}

/// Hands out one byte per read, so every delimiter straddles a read boundary.
struct Trickle<'a>(&'a [u8]);
impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn multibyte_utf8_delimiters_across_read_boundaries() {
    let text = ISA.replace('*', "Ö").replace('~', "…") + "GSÖPOÖAÖB…\nSTÖ850Ö1…";
    let mut r = SegmentReader::new(Trickle(text.as_bytes()), 1 << 20);
    let isa = r.read_isa().unwrap();
    assert!(isa.fixed_width);
    assert_eq!(isa.delims.elem, Sep::new('Ö'));
    assert_eq!(isa.delims.term, Sep::new('…'));
    let gs = r.read_segment(&isa.delims).unwrap().unwrap();
    assert_eq!((gs.id(), gs.el(3)), ("GS", "B"));
    let st = r.read_segment(&isa.delims).unwrap().unwrap();
    assert_eq!((st.id(), st.el(2), st.pos.line), ("ST", "1", 2));
    assert!(r.read_segment(&isa.delims).unwrap().is_none());
}
