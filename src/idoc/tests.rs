//! Unit tests of the IDoc format against the shipped definitions in `formats/idoc/`.

use std::path::Path;
use std::sync::Arc;

use crate::format::registry::load_formats;
use crate::format::testing::{ctx_for, read_all_with, ReadResult};
use crate::format::{Diagnostics, Format, Limits, Probe, UnitStatus};
use crate::unit::LineVerdict;

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

#[test]
fn order_maps_to_canonical_record_with_claim_and_detail() {
    let r = read(&wrap(&[order("5220230", ORDER_BODY)]));
    assert!(r.error.is_none(), "{:?}", r.error);
    let u = &r.units[0];
    assert_eq!(u.status(), UnitStatus::Applied, "{:?}", u.eval);
    let rec = &u.eval.records[0];
    assert_eq!(rec.key, "PRDCLNT100/4711");
    assert_eq!(rec.body()["order_no"], "4711");
    assert_eq!(rec.body()["order_date"], "2024-01-31");
    assert_eq!(rec.body()["customer_id"], "C100");
    assert_eq!(rec.body()["purpose"], "original");
    assert_eq!(rec.body()["lines"][0]["quantity"], "5.000");
    assert_eq!(rec.body()["lines"][0]["unit_price"], "2.50");
    assert_eq!(rec.body()["lines"][0]["sku"], "SKU-1");
    assert_eq!(rec.body()["lines"][1]["line_no"], "000020");
    assert_eq!(rec.body()["parties"][0]["role"], "buyer");
    // DOCNUM is NUMC 16: the claim uses the padded form so both spellings collide.
    assert_eq!(u.eval.claims, vec!["idoc:PRDCLNT100:0000000005220230"]);
    assert_eq!(u.eval.detail["SNDPRN"], "PRDCLNT100");
    assert_eq!(u.eval.detail["DOCNUM"], "5220230");
    // Only what the STATUS acknowledgement reads is kept.
    assert_eq!(u.eval.detail.get("MESTYP"), None);
    assert!(matches!(u.eval.verdicts[0], LineVerdict::Skipped(_)));
}

fn vendor(typ: &str, banks: &str) -> String {
    format!(
        "<{typ}><IDOC BEGIN=\"1\">{}<E1LFA1M SEGMENT=\"1\"><LIFNR>V1</LIFNR><NAME1>Vendor</NAME1>\
         {banks}</E1LFA1M></IDOC></{typ}>",
        dc("7", typ, "CREMAS")
    )
}

#[test]
fn vendor_bank_fields_come_from_one_account_only() {
    // The first account has no IBAN, the second has one: taking each field's first
    // non-blank value would pair account 1's number with account 2's IBAN.
    let banks = "<E1LFBKM SEGMENT=\"1\"><BANKS>US</BANKS><BANKL>021000021</BANKL>\
        <BANKN>000123456789</BANKN></E1LFBKM>\
        <E1LFBKM SEGMENT=\"1\"><BANKS>DE</BANKS><SWIFT>COBADEFFXXX</SWIFT>\
        <IBAN>DE89370400440532013000</IBAN><KOINH>Other GmbH</KOINH></E1LFBKM>";
    for typ in ["CREMAS05", "CREMAS06"] {
        let r = read(&vendor(typ, banks));
        assert_eq!(
            r.units[0].status(),
            UnitStatus::Applied,
            "{:?}",
            r.units[0].eval
        );
        let b = &r.units[0].eval.records[0].body();
        assert_eq!(
            b,
            &serde_json::json!({"supplier_id":"V1","name":"Vendor","bank_country":"US",
                "bank_code":"021000021","bank_account":"000123456789","active":true}),
            "{typ}"
        );
    }
    // No bank segment at all: no bank fields, nothing invented.
    let r = read(&vendor("CREMAS06", ""));
    let b = &r.units[0].eval.records[0].body();
    assert_eq!(
        b,
        &serde_json::json!({"supplier_id":"V1","name":"Vendor","active":true})
    );
}

#[test]
fn vendor_without_name_is_a_contract_reject() {
    let r = read(&vendor("CREMAS06", "").replace("<NAME1>Vendor</NAME1>", ""));
    assert_eq!(rejected_rules(&r, 0), ["contract"]);
    assert!(r.units[0].eval.unit_errors[0].message.contains("name"));
}

#[test]
fn many_idocs_in_one_file_get_sequential_units_and_exact_positions() {
    let file = wrap(&[
        order("1", ORDER_BODY),
        order("2", ORDER_BODY),
        order("3", ORDER_BODY),
    ]);
    let r = read(&file);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.units.len(), 3);
    assert_eq!(
        r.units.iter().map(|u| u.seq).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let u = &r.units[1];
    assert_eq!(u.label, "IDoc 2 (ORDERS05 2)");
    // 7 segments per IDoc: records continue across IDocs.
    assert_eq!(u.lines.len(), 7);
    assert_eq!(u.lines[0].pos.record, 8);
    let second_p01 = &u.lines[6];
    let loc = second_p01.pos.locator.as_deref().unwrap();
    assert!(
        loc.starts_with("IDoc 2 / E1EDP01 #2 (line 4, column "),
        "{loc}"
    );
    // The byte offset points at the segment's start tag.
    let at = second_p01.pos.byte as usize;
    assert!(file[at..].starts_with("<E1EDP01"), "{}", &file[at..at + 20]);
    assert!(second_p01.raw.starts_with("E1EDP01: POSEX=000020 MENGE=1"));
}

#[test]
fn soap_wrapped_idoc_is_sniffed_and_read() {
    let body = format!(
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soapenv:Header><x>ignored text</x></soapenv:Header><soapenv:Body>\
         <ns0:ORDERS05 xmlns:ns0=\"urn:sap-com:document:sap:idoc:soap:messages\">{}\
         </ns0:ORDERS05></soapenv:Body></soapenv:Envelope>",
        order("42", ORDER_BODY)
    );
    let f = format();
    let probe = Probe {
        name: "x.xml",
        head: body.as_bytes(),
    };
    assert_eq!(f.sniff(&probe), Some(100));
    let r = read(&body);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.units.len(), 1);
    assert_eq!(r.units[0].status(), UnitStatus::Applied);
}

#[test]
fn sniff_claims_type_roots_and_flat_idocs_only() {
    let f = format();
    let s = |head: &str| {
        f.sniff(&Probe {
            name: "f",
            head: head.as_bytes(),
        })
    };
    assert_eq!(
        s("<?xml version=\"1.0\"?><INVOIC02><IDOC BEGIN=\"1\">"),
        Some(100)
    );
    assert_eq!(s("<MATMAS05>"), Some(100));
    assert_eq!(s("EDI_DC40  0320000000000887330620 3012"), Some(50));
    assert_eq!(s("<ORDERS05X>"), None);
    assert_eq!(s("<catalog><item/></catalog>"), None);
    assert_eq!(s("a,b,c\n1,2,3\n"), None);
}

/// They reject the control record's line at the field; as unit errors they used to land on
/// the first data segment (the control record is otherwise a skipped line).
#[test]
fn unknown_type_and_message_reject_the_control_record_at_the_field() {
    let r = read(&format!(
        "<X><IDOC BEGIN=\"1\">{}</IDOC><IDOC BEGIN=\"1\">{}{ORDER_BODY}</IDOC></X>",
        dc("1", "FOOBAR01", "FOO"),
        dc("2", "ORDERS05", "NOPE")
    ));
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(rejected_rules(&r, 0), vec!["idoc-unknown-type"]);
    let LineVerdict::Rejected(reason) = &r.units[0].eval.verdicts[0] else {
        panic!("{:?}", r.units[0].eval)
    };
    assert!(reason.message.contains("ORDERS05"));
    assert!(
        reason
            .locator
            .as_deref()
            .unwrap()
            .starts_with("IDoc 1 / EDI_DC40 #1 / IDOCTYP (line 1, column "),
        "{reason:?}"
    );
    assert_eq!(rejected_rules(&r, 1), vec!["idoc-unknown-message"]);
    assert!(matches!(
        &r.units[1].eval.verdicts[0],
        LineVerdict::Rejected(r) if r.field.as_deref() == Some("MESTYP")
    ));
}

#[test]
fn structural_rules_reject_the_offending_segment() {
    let cases: &[(&str, &str)] = &[
        (
            "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR></E1EDK01><E1XXX99 SEGMENT=\"1\"/>",
            "idoc-unknown-segment",
        ),
        (
            "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR></E1EDK01><E1EDP20 SEGMENT=\"1\"/>",
            "idoc-segment-hierarchy",
        ),
        (
            "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR></E1EDK01>\
             <E1EDK01 SEGMENT=\"1\"><BELNR>2</BELNR></E1EDK01>",
            "idoc-occurrence",
        ),
        (
            "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR></E1EDK01><E1EDP01 SEGMENT=\"1\"><MENGE>1</MENGE></E1EDP01>",
            "required",
        ),
        (
            "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR><CURCY>EURO</CURCY></E1EDK01>",
            "idoc-field-length",
        ),
        ("<E1EDKA1 SEGMENT=\"1\"><PARVW>AG</PARVW></E1EDKA1>", "idoc-missing-segment"),
    ];
    for (body, rule) in cases {
        let r = read(&wrap(&[order("1", body)]));
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(&rejected_rules(&r, 0), &[rule.to_string()], "{body}");
    }
    // Customer segments are accepted anywhere, with their children.
    let r = read(&wrap(&[order(
        "1",
        &format!("{ORDER_BODY}<Z1MINE SEGMENT=\"1\"><X>1</X><Z1SUB SEGMENT=\"1\"/></Z1MINE>"),
    )]));
    assert_eq!(r.units[0].status(), UnitStatus::Applied);
}

/// Regression (hardening contract): a rejected IDoc produced no record, so its reject rows
/// could not name the order, invoice or delivery a reviewer has to find.
#[test]
fn regression_rejected_idoc_did_not_name_its_document() {
    let r = read(&wrap(&[
        order(
            "1",
            "<E1EDK01 SEGMENT=\"1\"><BELNR>4711</BELNR><CURCY>EURO</CURCY></E1EDK01>",
        ),
        order("2", ORDER_BODY),
        order("3", "<E1EDK01 SEGMENT=\"1\"><CURCY>EUR</CURCY></E1EDK01>"),
    ]));
    assert_eq!(r.units[0].status(), UnitStatus::Rejected);
    assert_eq!(r.units[0].eval.key.as_deref(), Some("4711"));
    // The key as stated, without the sender prefix of the record key.
    assert_eq!(r.units[1].eval.key.as_deref(), Some("4711"));
    assert_eq!(r.units[1].eval.records[0].key, "PRDCLNT100/4711");
    assert_eq!(r.units[2].eval.key, None);
}

#[test]
fn rejected_segment_reason_names_field_and_value() {
    let r = read(&wrap(&[order(
        "1",
        "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR><CURCY>EURO</CURCY></E1EDK01>",
    )]));
    let LineVerdict::Rejected(reason) = &r.units[0].eval.verdicts[1] else {
        panic!("{:?}", r.units[0].eval.verdicts)
    };
    assert_eq!(reason.field.as_deref(), Some("CURCY"));
    assert_eq!(reason.value.as_deref(), Some("EURO"));
    assert!(reason.message.contains("max 3"));
}

#[test]
fn bad_docnum_rejects_and_empty_docnum_is_tolerated() {
    let r = read(&wrap(&[order("Avon", ORDER_BODY), order("", ORDER_BODY)]));
    assert_eq!(rejected_rules(&r, 0), vec!["idoc-docnum"]);
    assert_eq!(r.units[1].status(), UnitStatus::Applied);
    assert!(r.units[1].eval.claims.is_empty());
    assert_eq!(r.units[1].eval.tolerated, vec!["idoc-docnum-empty"]);
}

#[test]
fn sap_trailing_minus_and_zero_dates_are_normalised() {
    let body = ORDER_BODY
        .replace("<VPREI>2.50</VPREI>", "<VPREI>2.50-</VPREI>")
        .replace(
            "<E1EDK03 SEGMENT=\"1\"><IDDAT>012</IDDAT><DATUM>20240131</DATUM></E1EDK03>",
            "<E1EDK03 SEGMENT=\"1\"><IDDAT>012</IDDAT><DATUM>00000000</DATUM></E1EDK03>\
             <E1EDK03 SEGMENT=\"1\"><IDDAT>011</IDDAT><DATUM>20240201</DATUM></E1EDK03>",
        );
    let r = read(&wrap(&[order("1", &body)]));
    let rec = &r.units[0].eval.records[0];
    assert_eq!(rec.body()["lines"][0]["unit_price"], "-2.50");
    assert_eq!(rec.body()["order_date"], "2024-02-01");
}

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
fn status_ack_reports_each_idoc_to_its_sender() {
    let bad = order(
        "0000000000000002",
        "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR><CURCY>EURO</CURCY></E1EDK01>",
    );
    let r = read(&wrap(&[order("0000000000000001", ORDER_BODY), bad]));
    assert_eq!(r.acks.len(), 1);
    let a = &r.acks[0];
    assert_eq!(a.kind, "STATUS");
    assert_eq!(a.partner, "PRDCLNT100");
    assert_eq!(a.control_no, Some(1));
    assert_eq!(a.file_name, "STATUS_PRDCLNT100_0000000000000001.xml");
    let x = String::from_utf8(a.content.bytes().unwrap()).unwrap();
    assert!(x.contains("<IDOCTYP>SYSTAT01</IDOCTYP>"));
    assert!(x.contains("<MESTYP>STATUS</MESTYP>"));
    // Sender and receiver swapped.
    assert!(x.contains("<SNDPRN>TALLYMAN</SNDPRN>"), "{x}");
    assert!(x.contains("<RCVPRN>PRDCLNT100</RCVPRN>"));
    assert!(x.contains("<RCVPOR>SAPPRD</RCVPOR>"));
    let stats: Vec<&str> = x.split("<E1STATS SEGMENT=\"1\">").skip(1).collect();
    assert_eq!(stats.len(), 2);
    assert!(stats[0].contains("<DOCNUM>0000000000000001</DOCNUM>"));
    assert!(stats[0].contains("<STATUS>53</STATUS>"));
    assert!(stats[1].contains("<DOCNUM>0000000000000002</DOCNUM>"));
    assert!(stats[1].contains("<STATUS>51</STATUS>"));
    assert!(stats[1].contains("<STAPA1>idoc-field-length</STAPA1>"));
    assert!(stats[1].contains("<SEGFLD>CURCY</SEGFLD>"));
    // The ack is itself well-formed IDoc XML our reader can stream.
    let back = read(&x);
    assert!(back.error.is_none(), "{:?}", back.error);
    assert_eq!(back.units.len(), 1);
    assert_eq!(rejected_rules(&back, 0), vec!["idoc-unknown-type"]);
}

#[test]
fn status_skips_only_the_idoc_without_a_usable_number() {
    let r = read(&wrap(&[
        order("Avon", ORDER_BODY),
        order("", ORDER_BODY),
        order("42", ORDER_BODY),
        order("12345678901234567", ORDER_BODY),
    ]));
    assert_eq!(r.acks.len(), 1);
    let x = String::from_utf8(r.acks[0].content.bytes().unwrap()).unwrap();
    let docnums: Vec<&str> = x
        .split("<E1STATS SEGMENT=\"1\">")
        .skip(1)
        .map(|e| {
            e.split("<DOCNUM>")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(docnums, vec!["0000000000000042"]);
    for u in [0, 1, 3] {
        let note = r.units[u].eval.detail["status_ack"].as_str().unwrap();
        assert!(note.starts_with("not sent: DOCNUM"), "{note}");
    }
    assert!(r.units[2].eval.detail.get("status_ack").is_none());
}

#[test]
fn file_error_acks_every_idoc_read_as_not_posted() {
    let full = wrap(&[order("7", ORDER_BODY)]);
    let r = read(&format!("{}<broken", &full[..full.len() - 12]));
    assert!(r.error.is_some());
    let x = String::from_utf8(r.acks[0].content.bytes().unwrap()).unwrap();
    assert!(x.contains("<STATUS>51</STATUS>"));
    assert!(x.contains("File rejected"));
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

#[test]
fn status_codes_are_configurable_per_type() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("formats/idoc/orders05.toml"),
    )
    .unwrap()
    .replace(
        "customer_segments = true",
        "customer_segments = true\nstatus_applied = \"41\"\nstatus_rejected = \"40\"",
    );
    std::fs::write(dir.path().join("orders05.toml"), text).unwrap();
    let mut d = Diagnostics::default();
    let set = load_formats(dir.path(), &mut d);
    assert!(d.is_empty(), "{:?}", d.errors);
    let f = set.by_name("idoc").unwrap();
    let p = dir.path().join("in.xml");
    let bad = order(
        "2",
        "<E1EDK01 SEGMENT=\"1\"><CURCY>EURO</CURCY><BELNR>1</BELNR></E1EDK01>",
    );
    std::fs::write(&p, wrap(&[order("1", ORDER_BODY), bad])).unwrap();
    let r = read_all_with(f.as_ref(), &p, &ctx_for(&p));
    let x = String::from_utf8(r.acks[0].content.bytes().unwrap()).unwrap();
    assert!(x.contains("<STATUS>41</STATUS>"), "{x}");
    assert!(x.contains("<STATUS>40</STATUS>"), "{x}");
    assert!(!x.contains("<STATUS>5"), "{x}");

    std::fs::write(
        dir.path().join("orders05.toml"),
        "kind = \"idoc-type\"\ntypes = [\"X1\"]\nstatus_applied = \"posted\"\n",
    )
    .unwrap();
    let mut d = Diagnostics::default();
    load_formats(dir.path(), &mut d);
    assert!(
        d.errors
            .iter()
            .any(|e| e.line == Some(3) && e.message.contains("two-digit")),
        "{:?}",
        d.errors
    );
}

/// Every corpus and sample IDoc file that reads without a file error: a read restarted at
/// any mark returns the IDocs an uninterrupted read returned from there, evaluated alike,
/// and finishes with the same STATUS acknowledgement (which answers every IDoc).
#[test]
fn a_resumed_read_restarts_at_every_mark_as_if_read_through() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let f = format();
    let mut tried = 0;
    for dir in ["tests/corpus/idoc", "samples/inbox"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            let ctx = ctx_for(&p);
            let readable = p.extension().is_some_and(|x| x == "xml" || x == "idoc")
                && read_all_with(f.as_ref(), &p, &ctx).error.is_none();
            if readable {
                tried += crate::format::testing::assert_restarts_match(f.as_ref(), &p, &ctx);
            }
        }
    }
    assert!(tried >= 15, "{tried} marks tried");
}

/// The files the STATUS answering tests go over: many IDocs from three senders, some
/// rejected and one not answerable (no DOCNUM), written into `dir`; then every corpus and
/// sample IDoc file.
fn answering_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let many = dir.join("many.xml");
    let idocs: Vec<String> = (1..=40)
        .map(|i| {
            let body = match i % 7 {
                0 => ORDER_BODY.replace("5.000", "five"),
                _ => ORDER_BODY.to_string(),
            };
            let docnum = if i == 13 {
                String::new()
            } else {
                i.to_string()
            };
            order(&docnum, &body).replace("PRDCLNT100", &format!("PRD{}", i % 3))
        })
        .collect();
    std::fs::write(&many, wrap(&idocs)).unwrap();
    let mut files = vec![many];
    for dir in ["tests/corpus/idoc", "samples/inbox"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    files.retain(|p| p.extension().is_some_and(|x| x == "xml" || x == "idoc"));
    files
}

/// A STATUS made while batches commit (each batch's IDocs answered after its commit) is
/// the one made at the end, for every corpus and sample file, with the file's own outcome
/// and with the file rejected whole at its end (every answer made before is made again).
#[test]
fn a_status_answered_as_batches_commit_is_the_one_answered_at_the_end() {
    let f = format();
    let rejected = crate::format::FileError::new("review", "held for review and refused");
    let dir = tempfile::tempdir().unwrap();
    let files = answering_files(dir.path());
    let mut handed = 0;
    for p in files {
        for step in [1, 2, 5] {
            handed += crate::format::testing::assert_answering_matches(f.as_ref(), &p, step, None);
            crate::format::testing::assert_answering_matches(f.as_ref(), &p, step, Some(&rejected));
        }
    }
    assert!(handed >= 80, "{handed} hand-overs");
}

/// A resumed file's STATUS takes up the answers its stopped read kept (see
/// `super::ack::keep`) instead of answering every IDoc before its mark again, and answers
/// as a read through does whether the kept file is whole, cut short anywhere or damaged:
/// every corpus and sample file and 40 IDocs from three senders, restarted at marks over
/// each, answered every 1, 3 and 7 IDocs.
#[test]
fn a_resumed_status_takes_up_the_answers_kept_and_answers_as_read_through() {
    let f = format();
    let dir = tempfile::tempdir().unwrap();
    let files = answering_files(dir.path());
    let mut restarts = 0;
    for p in files {
        for step in [1, 3, 7] {
            restarts += crate::format::testing::assert_answers_kept_across_restarts(
                f.as_ref(),
                &p,
                step,
                4,
            );
        }
    }
    assert!(restarts >= 100, "{restarts} restarts");
}

/// A segment keeps its fields in one buffer: each reads back as pushed, in order, at its
/// own mark; the first of a repeated name is the one asked for; `raw` masks what it must.
#[test]
fn a_segment_reads_back_its_fields_as_kept() {
    use super::reader::{Mark, Segment};
    let mut seg = Segment::new("E1EDKA1", None, crate::unit::Position::new(3, 40, 2));
    let at = |line| Mark {
        byte: line * 10,
        line,
        col: 5,
    };
    seg.push_field("PARVW", "AG", at(4));
    seg.push_field("NAME1", "Ädler & Söhne", at(5));
    seg.push_field("EMPTY", "", at(6));
    seg.push_field("PARVW", "WE", at(7));
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
