//! Unit tests of the IDoc format against the shipped definitions in `formats/idoc/`.

use std::path::Path;
use std::sync::Arc;

use crate::format::registry::load_formats;
use crate::format::testing::{ctx_for, read_all_with, ReadResult};
use crate::format::{Diagnostics, Format, Limits, Probe, UnitStatus};
use crate::unit::LineVerdict;

mod records;
mod status;
mod xml;

pub(super) fn format() -> Arc<dyn Format> {
    static FORMAT: std::sync::OnceLock<Arc<dyn Format>> = std::sync::OnceLock::new();
    FORMAT
        .get_or_init(|| {
            let mut d = Diagnostics::default();
            let set = load_formats(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("formats"),
                &mut d,
            );
            assert!(d.is_empty(), "{:?}", d.errors);
            set.by_name("idoc").expect("idoc format loaded")
        })
        .clone()
}

fn read_bytes(data: &[u8], limits: Limits) -> ReadResult {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.xml");
    std::fs::write(&p, data).unwrap();
    let mut ctx = ctx_for(&p);
    ctx.limits = limits;
    read_all_with(format().as_ref(), &p, &ctx)
}

fn read(data: &str) -> ReadResult {
    read_bytes(data.as_bytes(), Limits::default())
}

pub(super) fn dc(docnum: &str, typ: &str, mestyp: &str) -> String {
    format!(
        "<EDI_DC40 SEGMENT=\"1\"><TABNAM>EDI_DC40</TABNAM><MANDT>100</MANDT>\
         <DOCNUM>{docnum}</DOCNUM><IDOCTYP>{typ}</IDOCTYP><MESTYP>{mestyp}</MESTYP>\
         <SNDPOR>SAPPRD</SNDPOR><SNDPRT>LS</SNDPRT><SNDPRN>PRDCLNT100</SNDPRN>\
         <RCVPOR>TALLY</RCVPOR><RCVPRT>LS</RCVPRT><RCVPRN>TALLYMAN</RCVPRN></EDI_DC40>"
    )
}

pub(super) const ORDER_BODY: &str = "<E1EDK01 SEGMENT=\"1\"><CURCY>EUR</CURCY><BELNR>4711</BELNR></E1EDK01>\
<E1EDK03 SEGMENT=\"1\"><IDDAT>012</IDDAT><DATUM>20240131</DATUM></E1EDK03>\
<E1EDKA1 SEGMENT=\"1\"><PARVW>AG</PARVW><PARTN>C100</PARTN><NAME1>Buyer</NAME1></E1EDKA1>\
<E1EDP01 SEGMENT=\"1\"><POSEX>000010</POSEX><MENGE>5.000</MENGE><MENEE>PCE</MENEE><VPREI>2.50</VPREI>\
<E1EDP19 SEGMENT=\"1\"><QUALF>002</QUALF><IDTNR>SKU-1</IDTNR></E1EDP19></E1EDP01>\
<E1EDP01 SEGMENT=\"1\"><POSEX>000020</POSEX><MENGE>1</MENGE><MENEE>PCE</MENEE></E1EDP01>";

pub(super) fn order(docnum: &str, body: &str) -> String {
    format!(
        "<IDOC BEGIN=\"1\">{}{body}</IDOC>",
        dc(docnum, "ORDERS05", "ORDERS")
    )
}

fn wrap(idocs: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ORDERS05>\n{}\n</ORDERS05>\n",
        idocs.join("\n")
    )
}

fn rejected_rules(r: &ReadResult, unit: usize) -> Vec<String> {
    let u = &r.units[unit];
    u.eval
        .verdicts
        .iter()
        .filter_map(|v| match v {
            LineVerdict::Rejected(r) => Some(r.rule.clone()),
            _ => None,
        })
        .chain(u.eval.unit_errors.iter().map(|r| r.rule.clone()))
        .collect()
}

/// A segment keeps its fields in its IDoc's buffer: each reads back as pushed, in order, at
/// its own mark; the first of a repeated name is the one asked for; `raw` masks what it must.
#[test]
fn a_segment_reads_back_its_fields_as_kept() {
    use super::reader::{Mark, RawIdoc, Segment};
    let mut idoc = RawIdoc::default();
    let pos = crate::unit::Position::new(3, 40, 2);
    idoc.segments.push(Segment::new("E1EDKA1", None, pos));
    let at = |line| Mark {
        byte: line * 10,
        line,
        col: 5,
    };
    idoc.push_field(0, "PARVW", "AG", at(4));
    idoc.push_field(0, "NAME1", "Ädler & Söhne", at(5));
    idoc.push_field(0, "EMPTY", "", at(6));
    idoc.push_field(0, "PARVW", "WE", at(7));
    let seg = idoc.seg(0);
    let got: Vec<_> = seg.fields().map(|f| (f.name, f.value, f.at.line)).collect();
    assert_eq!(
        got,
        [
            ("PARVW", "AG", 4),
            ("NAME1", "Ädler & Söhne", 5),
            ("EMPTY", "", 6),
            ("PARVW", "WE", 7)
        ]
    );
    assert_eq!(seg.field("PARVW"), Some("AG"));
    assert_eq!(seg.field_entry("EMPTY").map(|f| f.at), Some(at(6)));
    assert_eq!(seg.field("MISSING"), None);
    let raw = seg.raw(&["NAME1".to_string()]);
    assert!(raw.starts_with("E1EDKA1: PARVW=AG NAME1="), "{raw}");
    assert!(!raw.contains("Söhne"), "{raw}");
}
