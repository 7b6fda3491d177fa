//! The XML a file brings: declared encodings, malformed XML, DTDs and entities, depth,
//! text and byte caps, flat and empty IDoc files, structure errors, and token soup that
//! must not panic.

use super::*;

#[test]
fn latin1_declared_file_is_decoded() {
    let mut data = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><ORDERS05>".to_vec();
    data.extend_from_slice(
        order("1", ORDER_BODY)
            .replace("<NAME1>Buyer</NAME1>", "<NAME1>Caf\u{1}</NAME1>")
            .as_bytes(),
    );
    data.extend_from_slice(b"</ORDERS05>");
    // Put a real Latin-1 byte where the placeholder is.
    let i = data.iter().position(|&b| b == 1).unwrap();
    data[i] = 0xE9;
    let r = read_bytes(&data, Limits::default());
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(
        r.units[0].eval.records[0].body()["parties"][0]["name"],
        "Café"
    );
}

#[test]
fn other_encodings_are_refused_clearly() {
    let r = read("<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><ORDERS05/>");
    let e = r.error.unwrap();
    assert_eq!(e.reason.rule, "xml-encoding");
    assert!(e
        .reason
        .message
        .contains("Shift_JIS".to_ascii_lowercase().as_str()));
    let r = read_bytes(b"\xFF\xFE<\0O\0", Limits::default());
    assert_eq!(r.error.unwrap().reason.rule, "xml-encoding");
}

#[test]
fn malformed_xml_is_a_positioned_file_error() {
    let r = read("<ORDERS05>\n<IDOC BEGIN=\"1\">\n  <EDI_DC40 SEGMENT=\"1\"></WRONG>\n");
    let e = r.error.unwrap();
    assert_eq!(e.reason.rule, "xml-syntax");
    let pos = e.pos.unwrap();
    assert_eq!(pos.line, 3, "{pos:?}");
    assert!(pos.locator.unwrap().starts_with("line 3, column "));
    // Truncated after a complete IDoc: the IDoc was read, then the file fails.
    let full = wrap(&[order("1", ORDER_BODY)]);
    let cut = &full[..full.len() - 13];
    let r = read(cut);
    assert_eq!(r.units.len(), 1);
    assert_eq!(r.error.unwrap().reason.rule, "xml-syntax");
}

#[test]
fn doctype_and_undefined_entities_are_refused() {
    let r = read("<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><ORDERS05/>");
    assert_eq!(r.error.unwrap().reason.rule, "xml-doctype");
    let r = read(&wrap(&[order(
        "1",
        &ORDER_BODY.replace("Buyer", "&secret;"),
    )]));
    assert_eq!(r.error.unwrap().reason.rule, "xml-entity");
    // Predefined and character references are fine.
    let r = read(&wrap(&[order(
        "1",
        &ORDER_BODY.replace("Buyer", "A&amp;B &#233;&#x41;"),
    )]));
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(
        r.units[0].eval.records[0].body()["parties"][0]["name"],
        "A&B éA"
    );
}

#[test]
fn depth_and_text_caps_are_enforced() {
    let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
    let r = read(&deep);
    assert_eq!(r.error.unwrap().reason.rule, "xml-depth");
    let limits = Limits {
        max_record_bytes: 1000,
        ..Limits::default()
    };
    let big = wrap(&[order(
        "1",
        &ORDER_BODY.replace("Buyer", &"x".repeat(50_000)),
    )]);
    let r = read_bytes(big.as_bytes(), limits);
    assert_eq!(r.error.unwrap().reason.rule, "xml-too-large");
}

#[test]
fn oversized_idoc_is_rejected_without_stopping_the_file() {
    let limits = Limits {
        max_unit_lines: 5,
        ..Limits::default()
    };
    let small = order("2", "<E1EDK01 SEGMENT=\"1\"><BELNR>9</BELNR></E1EDK01>");
    let r = read_bytes(wrap(&[order("1", ORDER_BODY), small]).as_bytes(), limits);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.units[0].lines.len(), 5);
    assert_eq!(rejected_rules(&r, 0), vec!["idoc-too-large"]);
    assert_eq!(r.units[1].status(), UnitStatus::Applied);
}

/// Regression: the IDoc byte budget counted only field text, so an IDoc of empty fields
/// (`<A/>`, 1 byte of name each) could keep ~80 bytes of memory per byte of budget. Every
/// kept field now costs its in-memory size too.
#[test]
fn regression_tiny_fields_escaped_the_idoc_byte_budget() {
    // 10 segments allowed → 20 KiB budget; 1,000 one-letter fields are 1,000 bytes of text
    // but ~70 KiB kept.
    let limits = Limits {
        max_unit_lines: 10,
        ..Limits::default()
    };
    let fields = "<A/>".repeat(1000);
    let body = format!("<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR>{fields}</E1EDK01>");
    let r = read_bytes(wrap(&[order("1", &body)]).as_bytes(), limits);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(rejected_rules(&r, 0), vec!["idoc-too-large"]);
    let kept: usize = r.units[0].lines.len();
    assert!(kept <= 2, "{kept}");
}

#[test]
fn idoc_byte_cap_bounds_an_idoc_of_large_segments() {
    // 4 segments allowed → 8 KiB of field data; three 3 KiB segments exceed it.
    let limits = Limits {
        max_unit_lines: 4,
        ..Limits::default()
    };
    let big = "x".repeat(3000);
    let body = format!(
        "<E1EDK01 SEGMENT=\"1\"><BELNR>{big}</BELNR></E1EDK01>\
         <E1EDKA1 SEGMENT=\"1\"><NAME1>{big}</NAME1></E1EDKA1>\
         <E1EDKA1 SEGMENT=\"1\"><NAME1>{big}</NAME1></E1EDKA1>"
    );
    let small = order("2", "<E1EDK01 SEGMENT=\"1\"><BELNR>9</BELNR></E1EDK01>");
    let r = read_bytes(wrap(&[order("1", &body), small]).as_bytes(), limits);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(rejected_rules(&r, 0), vec!["idoc-too-large"]);
    assert!(r.units[0].eval.unit_errors[0]
        .message
        .contains("8192 bytes"));
    assert_eq!(r.units[1].status(), UnitStatus::Applied);
}

#[test]
fn flat_idoc_is_refused_with_an_explanation() {
    let r = read("EDI_DC40  0320000000000887330620 3012  ORDERS01\nE2EDK01003 ...\n");
    let e = r.error.unwrap();
    assert_eq!(e.reason.rule, "idoc-flat-unsupported");
    assert!(e.reason.message.contains("XML"));
}

#[test]
fn no_idoc_in_xml_is_a_clear_error() {
    let r = read("<ORDERS05></ORDERS05>");
    assert_eq!(r.error.unwrap().reason.rule, "idoc-empty");
}

#[test]
fn structure_errors_in_the_idoc_are_positioned() {
    let r = read("<ORDERS05><IDOC BEGIN=\"1\"><BELNR>1</BELNR></IDOC></ORDERS05>");
    assert_eq!(r.error.unwrap().reason.rule, "idoc-structure");
    let r = read(&wrap(&[order(
        "1",
        "<E1EDK01 SEGMENT=\"1\"><BELNR><X>1</X></BELNR></E1EDK01>",
    )]));
    assert_eq!(r.error.unwrap().reason.rule, "idoc-structure");
}

/// Token soup from IDoc and XML fragments (deterministic LCG): errors are fine, panics and
/// hangs are not.
#[test]
fn random_token_soup_never_panics() {
    const TOKENS: &[&[u8]] = &[
        b"<ORDERS05>",
        b"</ORDERS05>",
        b"<IDOC BEGIN=\"1\">",
        b"</IDOC>",
        b"<EDI_DC40 SEGMENT=\"1\">",
        b"</EDI_DC40>",
        b"<DOCNUM>12</DOCNUM>",
        b"<IDOCTYP>ORDERS05</IDOCTYP>",
        b"<MESTYP>ORDERS</MESTYP>",
        b"<MESTYP>ORDRSP</MESTYP>",
        b"<E1EDK01 SEGMENT=\"1\">",
        b"</E1EDK01>",
        b"<BELNR>",
        b"</BELNR>",
        b"<E1EDP01 SEGMENT=\"1\"/>",
        b"<E1EDP01 SEGMENT=\"1\">",
        b"</E1EDP01>",
        b"<POSEX>1</POSEX><MENGE>1-</MENGE>",
        b"&amp;",
        b"&#0;",
        b"&#x110000;",
        b"&bogus;",
        b"<!-- c -->",
        b"<![CDATA[x]]>",
        b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>",
        b"<!DOCTYPE x>",
        b"\xff\xfe",
        b"\xc3",
        b"\n",
        b"text",
        b"<",
        b">",
        b"</",
        b"/>",
        b"=\"",
    ];
    let mut seed: u64 = 0x1dd0c;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let limits = Limits {
        max_depth: 16,
        max_unit_lines: 8,
        max_record_bytes: 256,
        ..Limits::default()
    };
    for _ in 0..400 {
        let n = next() % 60;
        let mut doc = Vec::new();
        for _ in 0..n {
            doc.extend_from_slice(TOKENS[next() % TOKENS.len()]);
        }
        let _ = read_bytes(&doc, limits.clone());
    }
}
