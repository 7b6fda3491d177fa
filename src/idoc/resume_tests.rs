//! Restarting an IDoc read from the state its mark holds: what follows the mark reads as
//! it did when read through, without reading what lies before it.

use std::path::{Path, PathBuf};

use crate::format::testing::{assert_restarts_match, assert_restarts_match_reading, ctx_for};
use crate::format::{FileError, Mark, UnitReader};
use crate::idoc::tests::{format, order, ORDER_BODY};

/// `n` ORDERS05 IDocs, each over several lines (its segments one a line) and with a
/// `NAME1` of `name`, joined by `sep`.
fn idocs(n: usize, name: &str, sep: &str) -> String {
    let body = ORDER_BODY.replace("<NAME1>Buyer</NAME1>", &format!("<NAME1>{name}</NAME1>"));
    let one = |k: usize| order(&format!("{:016}", 7000 + k), &body).replace("><E1", ">\n  <E1");
    (1..=n).map(one).collect::<Vec<_>>().join(sep)
}

/// Files whose restarts are hard on places and on the parser's knowledge of what is open:
/// lines and columns, a UTF-8 BOM, CRLF, a SOAP envelope whose start tags span lines and
/// carry namespaces, Latin-1 bytes (offsets in the file and in the parsed stream differ)
/// before and after the marks, envelope elements opened and closed between IDocs.
fn variants() -> Vec<(&'static str, Vec<u8>)> {
    let plain = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ORDERS05>\n{}\n</ORDERS05>\n",
        idocs(12, "Buyer", "\n")
    );
    let soap = format!(
        "\u{feff}<?xml version=\"1.0\"?>\r\n<soap:Envelope\r\n    xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\r\n\
         <soap:Body><ns0:ORDERS05\r\n xmlns:ns0=\"urn:sap-com:document:sap:idoc:soap:messages\">{}</ns0:ORDERS05>\
         </soap:Body>\r\n</soap:Envelope>",
        idocs(9, "Müller", "\r\n  ").replace('\n', "\r\n")
    );
    let latin1 = format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<ORDERS05><!-- \u{1}t\u{1} -->\n{}</ORDERS05>",
        idocs(10, "Caf\u{1}", "<!-- \u{1}\u{1} -->")
    );
    // Latin-1's bytes above 0x7F where the placeholders are.
    let latin1 = latin1
        .bytes()
        .map(|b| if b == 1 { 0xE9 } else { b })
        .collect();
    let nested = format!(
        "<ORDERS05><A x=\"1\">{}</A><Meta/><B>\n{}</B>\n<C><D>{}</D></C></ORDERS05>",
        idocs(3, "A", ""),
        idocs(4, "B", "<Meta/>"),
        idocs(3, "D", "\n")
    );
    vec![
        ("plain.xml", plain.into_bytes()),
        ("soap.xml", soap.into_bytes()),
        ("latin1.xml", latin1),
        ("nested.xml", nested.into_bytes()),
    ]
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Where the mark is in the file as stored, from the state it holds.
fn raw_of(mark: &Mark) -> usize {
    let raw = mark.state["raw"].as_u64();
    raw.unwrap_or_else(|| panic!("the mark holds no state: {mark:?}")) as usize
}

#[test]
fn every_variant_restarts_at_every_mark_as_if_read_through() {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in variants() {
        let p = write(dir.path(), name, &data);
        let tried = assert_restarts_match(format().as_ref(), &p, &ctx_for(&p));
        assert!(tried >= 9, "{name}: {tried} marks");
    }
}

/// Everything before a mark but the XML declaration (which names the encoding) and the
/// `>` that ends it is made unreadable in the file a restart reads — the envelope's start
/// tags, every IDoc before it — and the restart still returns what reading through
/// returned from there, with the same STATUS: it reads from the mark and takes the rest
/// from the state the mark holds.
#[test]
fn a_restart_does_not_read_what_lies_before_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in variants() {
        let p = write(dir.path(), name, &data);
        let copy = |mark: &Mark| {
            assert_eq!(data[raw_of(mark) - 1], b'>', "{name}: {mark:?}");
            write(
                dir.path(),
                &format!("blanked-{name}"),
                &blanked(&data, mark),
            )
        };
        let tried = assert_restarts_match_reading(format().as_ref(), &p, &ctx_for(&p), &copy);
        assert!(tried >= 9, "{name}: {tried} marks");
    }
}

/// `data` with everything after its XML declaration up to the `>` before `mark` made
/// unreadable.
fn blanked(data: &[u8], mark: &Mark) -> Vec<u8> {
    let mut out = data.to_vec();
    let decl = data
        .windows(2)
        .position(|w| w == b"?>")
        .map_or(0, |i| i + 2);
    out[decl..raw_of(mark) - 1].fill(b'#');
    out
}

/// A mark whose state is of another version, or names a place that does not follow a
/// tag, or open elements that could not be replayed as they were read (or none), or does
/// not parse, is read to from the top: the restart still lands there, and a file whose
/// part before the mark is unreadable does not get there.
#[test]
fn a_mark_whose_state_does_not_fit_is_read_to_from_the_top() {
    let (_, data) = variants().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "plain.xml", &data);
    let (f, ctx) = (format(), ctx_for(&p));
    let mut r = f.open(&p, &ctx).unwrap();
    let (mut whole, mut marks) = (Vec::new(), Vec::new());
    while let Some(mut u) = r.next_unit().unwrap() {
        whole.push(shown(&mut u));
        marks.extend(r.mark());
    }
    let k = marks.len() / 2;
    let mark = &marks[k];
    let unreadable = write(dir.path(), "blanked.xml", &blanked(&data, mark));
    let raw = raw_of(mark);
    let bent = [
        ("v", serde_json::json!(2)),
        ("raw", serde_json::json!(raw + 1)),
        ("open", serde_json::json!(["ORDERS05 x"])),
        ("open", serde_json::json!(["ORDERS05/"])),
        ("open", serde_json::json!([])),
        ("col", serde_json::json!("x")),
    ];
    for (field, value) in bent {
        let mut bad = mark.clone();
        bad.state[field] = value.clone();
        let mut again = f.open(&p, &ctx).unwrap();
        assert!(again.seek(&bad).unwrap(), "{field} {value}");
        assert_eq!(read_on(again.as_mut()).0, whole[k + 1..], "{field} {value}");
        let mut blind = f.open(&unreadable, &ctx).unwrap();
        assert!(!matches!(blind.seek(&bad), Ok(true)), "{field} {value}");
    }
    // The mark as it was restarts in the unreadable file.
    let mut fit = f.open(&unreadable, &ctx).unwrap();
    assert!(fit.seek(mark).unwrap());
    assert_eq!(read_on(fit.as_mut()).0, whole[k + 1..]);
}

/// A unit as the restart tests compare it: numbered, labelled, positioned, evaluated.
fn shown(u: &mut crate::unit::Unit) -> String {
    let eval = u.evaluate();
    format!("{} {} {:?} {:?}", u.seq, u.label, u.shown_lines(), eval)
}

/// Reads on to the end: the units shown, and the error that ended the file, if any.
fn read_on(r: &mut dyn UnitReader) -> (Vec<String>, Option<FileError>) {
    let mut units = Vec::new();
    loop {
        match r.next_unit() {
            Ok(Some(mut u)) => units.push(shown(&mut u)),
            Ok(None) => return (units, None),
            Err(e) => return (units, Some(e)),
        }
    }
}

/// A file that goes wrong after some IDocs — a mismatched end tag inside an IDoc, text
/// between segments, the envelope closed by the wrong name or not at all, a cut — ends a
/// restarted read with the error reading through ends with, at the same place: the
/// restarted parser knows the open envelope, and counts offsets, lines and columns alike.
#[test]
fn a_restarted_read_meets_a_later_error_where_reading_through_does() {
    let good = idocs(6, "Buyer", "\n");
    let bad_tag = order("9", ORDER_BODY).replace("</MENEE></E1EDP01>", "</MENEE></WRONG>");
    let text = order("9", ORDER_BODY).replace("</E1EDK01>", "</E1EDK01>loose");
    let cases = [
        format!("\u{feff}<ORDERS05>\n{good}\n{bad_tag}\n</ORDERS05>"),
        format!("<ORDERS05>\n{good}\n{text}\n</ORDERS05>"),
        format!("<ORDERS05>\r\n{good}\n</ORDERS06>\n"),
        format!("<x:ORDERS05 xmlns:x=\"urn:x\">\n{good}\n</ORDERS05>\n"),
        format!("<ORDERS05>\n{good}\n"),
        format!("<ORDERS05>\n{good}\n{}", &bad_tag[..200]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let f = format();
    for (i, data) in cases.iter().enumerate() {
        let p = write(dir.path(), &format!("bad-{i}.xml"), data.as_bytes());
        let ctx = ctx_for(&p);
        let mut r = f.open(&p, &ctx).unwrap();
        let (mut whole, mut marks) = (Vec::new(), Vec::new());
        let error = loop {
            match r.next_unit() {
                Ok(Some(mut u)) => {
                    whole.push(shown(&mut u));
                    marks.extend(r.mark());
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let error = error.unwrap_or_else(|| panic!("case {i} reads whole"));
        assert_eq!(marks.len(), 6, "case {i}");
        for (k, mark) in marks.iter().enumerate() {
            let mut again = f.open(&p, &ctx).unwrap();
            assert!(again.seek(mark).unwrap(), "case {i} at {mark:?}");
            let (units, e) = read_on(again.as_mut());
            assert_eq!(units, whole[k + 1..], "case {i} at {mark:?}");
            assert_eq!(
                format!("{e:?}"),
                format!("{:?}", Some(&error)),
                "case {i} at {mark:?}"
            );
        }
    }
}

/// quick-xml drops a UTF-8 BOM without counting it, and its offsets were taken as the
/// file's: an XML error after a BOM was placed three bytes before where it is.
#[test]
fn regression_an_xml_error_after_a_utf8_bom_was_placed_three_bytes_early() {
    let text = "<ORDERS05>\n<IDOC BEGIN=\"1\">\n  <EDI_DC40 SEGMENT=\"1\"></WRONG>\n";
    let at = |data: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "in.xml", data);
        let read = crate::format::testing::read_all(format().as_ref(), &p);
        read.error.and_then(|e| e.pos).expect("a positioned error")
    };
    let plain = at(text.as_bytes());
    let bom = at(&[&[0xEF, 0xBB, 0xBF], text.as_bytes()].concat());
    assert_eq!(
        (bom.byte, bom.line, &bom.locator),
        (plain.byte + 3, plain.line, &plain.locator)
    );
    // The error is at the end tag that does not match.
    assert_eq!(plain.byte as usize, text.find("</WRONG>").unwrap());
}
