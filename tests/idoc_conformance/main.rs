//! IDoc conformance: every file of the shared IDoc corpus (tests/corpus/idoc, see its
//! PROVENANCE.md) read through the shipped definitions with concrete expectations, the
//! samples in samples/inbox, and hostile XML generated here, each refused with a clear
//! error and bounded memory (measured in a child process through VmHWM).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tallyman::format::registry::load_formats;
use tallyman::format::testing::{ctx_for, read_all, read_all_with, ReadResult};
use tallyman::format::{Diagnostics, Format, Limits, UnitStatus};
use tallyman::unit::LineVerdict;

mod hostile;
mod suppliers;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn format() -> Arc<dyn Format> {
    let mut d = Diagnostics::default();
    let set = load_formats(&root().join("formats"), &mut d);
    assert!(
        d.is_empty(),
        "{:#?}",
        d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    set.by_name("idoc").expect("idoc format")
}

fn corpus(name: &str) -> ReadResult {
    read_all(
        format().as_ref(),
        &root().join("tests/corpus/idoc").join(name),
    )
}

/// The single record of a file holding one valid IDoc.
fn only_record(r: &ReadResult) -> Value {
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.units.len(), 1);
    let u = &r.units[0];
    assert_eq!(u.status(), UnitStatus::Applied, "{:#?}", u.eval);
    assert_eq!(u.eval.records.len(), 1);
    u.eval.records[0].body()
}

/// (rule, field) of every rejection in the first unit.
fn rejections(r: &ReadResult) -> Vec<(String, Option<String>)> {
    let u = &r.units[0];
    assert_eq!(u.status(), UnitStatus::Rejected);
    u.eval
        .verdicts
        .iter()
        .filter_map(|v| match v {
            LineVerdict::Rejected(r) => Some((r.rule.clone(), r.field.clone())),
            _ => None,
        })
        .chain(
            u.eval
                .unit_errors
                .iter()
                .map(|r| (r.rule.clone(), r.field.clone())),
        )
        .collect()
}

fn ack_text(r: &ReadResult) -> String {
    assert_eq!(r.acks.len(), 1, "{:?}", r.acks);
    String::from_utf8(r.acks[0].content.bytes().unwrap()).unwrap()
}

#[test]
fn orders05_purchase_order() {
    let r = corpus("sap_p2p_ORDERS05_ORDERS.xml");
    let o = only_record(&r);
    assert_eq!(
        r.units[0].eval.records[0].key,
        "Company_IDOC_SOA_ID/4500000670"
    );
    assert_eq!(o["order_no"], "4500000670");
    assert_eq!(o["order_date"], "2018-11-29");
    assert_eq!(o["order_type"], "NB");
    assert_eq!(o["currency"], "EUR");
    assert_eq!(o["customer_id"], "10100098");
    let lines = o["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line_no"], "00010");
    assert_eq!(lines[0]["quantity"], "1.000");
    assert_eq!(lines[0]["unit_price"], "50");
    assert_eq!(lines[0]["buyer_sku"], "TG0011");
    assert_eq!(lines[1]["line_no"], "00020");
    assert_eq!(
        r.units[0].eval.claims,
        vec!["idoc:Company_IDOC_SOA_ID:0000000000146002"]
    );
    // 27 segments including the control record (as the corpus manifest counts), one
    // ledger line each.
    assert_eq!(r.units[0].lines.len(), 27);
    let ack = ack_text(&r);
    assert!(ack.contains("<DOCNUM>0000000000146002</DOCNUM>"));
    assert!(ack.contains("<STATUS>53</STATUS>"));
    assert!(ack.contains("<RCVPRN>Company_IDOC_SOA_ID</RCVPRN>"));
    assert!(ack.contains("<SNDPRN>TP_IDOC_SOA_ID</SNDPRN>"));
}

#[test]
fn orders05_order_responses_map_to_order_acks() {
    let r = corpus("ordrsp-idoc.xml");
    let a = only_record(&r);
    assert_eq!(r.units[0].eval.records[0].entity.as_str(), "order_ack");
    assert_eq!(a["order_no"], "20231004");
    assert_eq!(a["ack_no"], "0000347163");
    assert_eq!(a["status"], "accepted");
    assert_eq!(a["currency"], "USD");
    let lines = a["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["sku"], "MZ-FG-S100");
    assert_eq!(lines[0]["quantity"], "8.000");
    assert_eq!(lines[0]["unit_price"], "5250.00");
    assert_eq!(lines[3]["delivery_date"], "2023-10-07");
    // DOCNUM "5220230" is not padded in the file; the claim is.
    assert_eq!(
        r.units[0].eval.claims,
        vec!["idoc:HE4CLNT400:0000000005220230"]
    );

    let r = corpus("sap_o2c_ORDERS05_ORDRSP.xml");
    let a = only_record(&r);
    assert_eq!(a["order_no"], "2C9YS43Z");
    assert_eq!(a["ack_no"], "2001319044");
    assert_eq!(a["status"], "accepted_with_changes");
    assert_eq!(a["lines"].as_array().unwrap().len(), 3);
    assert_eq!(a["lines"][0]["quantity"], "432.000");
    assert_eq!(a["lines"][0]["unit_price"], "479.62");

    let r = corpus("sap_o2c_soap_ORDERS05_ORDRSP.xml");
    let a = only_record(&r);
    assert_eq!(a["ack_no"], "0000001390");
    assert_eq!(a["order_no"], "xpm");
    assert_eq!(a["lines"].as_array().unwrap().len(), 2);
}

#[test]
fn orders05_with_empty_partner_segments_is_rejected_at_the_segments() {
    let r = corpus("sap_msgtrans_ORDERS05.xml");
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(
        rejections(&r),
        vec![
            ("required".to_string(), Some("PARVW".to_string())),
            ("required".to_string(), Some("SUMID".to_string())),
        ]
    );
    let u = &r.units[0];
    let lines: Vec<u64> = u
        .eval
        .verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| matches!(v, LineVerdict::Rejected(_)))
        .map(|(i, _)| u.lines[i].pos.line)
        .collect();
    assert_eq!(lines, vec![97, 142]);
    let ack = ack_text(&r);
    assert!(ack.contains("<STATUS>51</STATUS>"));
    assert!(ack.contains("<SEGFLD>PARVW</SEGFLD>"));
}

#[test]
fn invoic02_invoice() {
    let r = corpus("sap_o2c_INVOIC02.xml");
    let i = only_record(&r);
    assert_eq!(i["invoice_no"], "0123456789");
    assert_eq!(i["invoice_date"], "2023-09-07");
    assert_eq!(i["order_no"], "1DFYVN6W");
    assert_eq!(i["currency"], "GBP");
    assert_eq!(i["total"], "67574.40");
    assert_eq!(i["customer_id"], "0100115930");
    let lines = i["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["quantity"], "320.000");
    assert_eq!(lines[0]["unit_price"], "265.63");
    assert_eq!(lines[0]["amount"], "67574.40");
    assert_eq!(lines[0]["sku"], "000000889963020150");
    // Bank details are declared sensitive: masked in the ledger's raw text.
    let bank = r.units[0]
        .lines
        .iter()
        .find(|l| l.raw.starts_with("E1EDK28:"))
        .expect("E1EDK28 line");
    assert!(bank.raw.contains("ACNUM=***********10"), "{}", bank.raw);
    assert!(!bank.raw.contains("DMY9876543210"), "{}", bank.raw);
}

#[test]
fn invoic01_with_garbage_dates_is_rejected_with_the_field() {
    // The file keeps flat-file padding in EDI_DC40 (IDOCTYP "INVOIC01" + blanks): the type
    // is still recognised; it is the dummy date "3242342" that fails.
    let r = corpus("sap_msgtrans_INVOIC01.xml");
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(
        rejections(&r),
        vec![("type".to_string(), Some("invoice_date".to_string()))]
    );
    // The bad date is blamed on its E1EDK02 segment and DATUM field, not on the IDoc.
    let (line, reason) = rejected_lines(&r)[0].clone();
    assert_eq!(reason.value.as_deref(), Some("3242342"));
    assert_eq!(line, 117, "the E1EDK02 segment's line");
    assert_eq!(
        reason.place.map(|p| p.0),
        Some(120),
        "the DATUM element's line"
    );
    assert!(r.units[0].eval.unit_errors.is_empty());
}

/// (ledger line, reason) of every rejected line of the first unit.
fn rejected_lines(r: &ReadResult) -> Vec<(u64, tallyman::unit::Reason)> {
    let u = &r.units[0];
    u.eval
        .verdicts
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match v {
            LineVerdict::Rejected(reason) => Some((u.lines[i].pos.line, (**reason).clone())),
            _ => None,
        })
        .collect()
}

/// Regression (hardening item 20): a field error was positioned at its segment's start
/// tag, lines away from the field in pretty-printed XML. It now carries the field
/// element's own line and byte (`Reason::place`) and a locator naming the field.
#[test]
fn regression_field_errors_pointed_at_the_segment_start() {
    let path = root().join("tests/corpus/idoc/ballerina_DELVRY03_Avon.xml");
    let text = std::fs::read_to_string(&path).unwrap();
    let r = corpus("ballerina_DELVRY03_Avon.xml");
    let got = rejected_lines(&r);
    assert_eq!(got.len(), 2, "{got:?}");
    for ((segment_line, reason), (field, line, column)) in
        got.iter().zip([("DOCNUM", 6, 17), ("INCO1", 24, 17)])
    {
        assert_eq!(reason.field.as_deref(), Some(field));
        let byte = text.find(&format!("<{field}>")).unwrap() as u64;
        assert_eq!(reason.place, Some((line, byte)), "{reason:?}");
        assert!(*segment_line < line, "segment starts before its field");
        let loc = reason.locator.as_deref().unwrap();
        assert!(
            loc.ends_with(&format!("/ {field} (line {line}, column {column})")),
            "{loc}"
        );
        assert!(loc.starts_with("IDoc 1 / "), "{loc}");
    }
}

#[test]
fn delvry07_ship_notices() {
    let r = corpus("sap_o2c_DELVRY07_DESADV.xml");
    let s = only_record(&r);
    assert_eq!(s["shipment_id"], "8000579974");
    assert_eq!(s["ship_date"], "2023-10-05");
    assert_eq!(s["delivery_date"], "2023-10-06");
    assert_eq!(s["tracking_no"], "70050602");
    assert_eq!(s["carrier"], "Raben Trans European Hungary Kft.");
    assert_eq!(s["order_nos"], serde_json::json!(["3101097064"]));
    let lines = s["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["sku"], "000000883444030770");
    assert_eq!(lines[0]["quantity"], "4.000");
    assert_eq!(lines[0]["uom"], "H87");

    let r = corpus("sap_3pl_DELVRY07_customer_return.xml");
    let s = only_record(&r);
    assert_eq!(s["shipment_id"], "8400073803");
    assert_eq!(s["lines"].as_array().unwrap().len(), 3);
    assert_eq!(s["lines"][2]["quantity"], "1.000");
}

#[test]
fn delvry07_update_without_quantities_is_rejected_not_invented() {
    let r = corpus("sap_3pl_DELVRY07_delivery_update.xml");
    let rej = rejections(&r);
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0].0, "contract");
    assert!(r.units[0].eval.unit_errors[0].message.contains("quantity"));
    // DOCNUM is empty: tolerated, no IDoc claim, and no STATUS (nothing to refer to).
    assert_eq!(r.units[0].eval.tolerated, vec!["idoc-docnum-empty"]);
    assert!(r.units[0].eval.claims.is_empty());
    assert!(r.acks.is_empty());
}

#[test]
fn delvry03_with_text_docnum_is_invalid() {
    let r = corpus("ballerina_DELVRY03_Avon.xml");
    assert_eq!(
        rejections(&r),
        vec![
            ("idoc-docnum".to_string(), Some("DOCNUM".to_string())),
            ("idoc-field-length".to_string(), Some("INCO1".to_string())),
        ]
    );
}

/// Regression (hardening item 20): the STATUS copied the invalid DOCNUM `Avon` into the
/// NUMC 16 E1STATS-DOCNUM, which no SAP system can match (or even store). No status is
/// sent for an IDoc that has no IDoc number; the ledger detail says why.
#[test]
fn regression_status_copied_an_invalid_docnum() {
    let r = corpus("ballerina_DELVRY03_Avon.xml");
    assert_eq!(r.units[0].status(), UnitStatus::Rejected);
    for a in &r.acks {
        let x = a.content.text_lossy();
        assert!(!x.contains("Avon"), "{x}");
    }
    assert!(r.acks.is_empty(), "{:?}", r.acks);
    let note = r.units[0].eval.detail["status_ack"].as_str().unwrap();
    assert!(
        note.starts_with("not sent: DOCNUM 'Avon' is not an IDoc number"),
        "{note}"
    );
}

#[test]
fn status_names_the_idoc_by_its_sixteen_digit_number() {
    // The file says 5220230; SAP stores NUMC 16 zero-padded.
    let ack = ack_text(&corpus("ordrsp-idoc.xml"));
    let stats = ack.split("<E1STATS").nth(1).unwrap();
    assert!(stats.contains("<DOCNUM>0000000005220230</DOCNUM>"), "{ack}");
}

#[test]
fn matmas05_material() {
    let r = corpus("sap_3pl_MATMAS05.xml");
    let p = only_record(&r);
    assert_eq!(p["sku"], "000000000123456789");
    assert_eq!(p["description"], "DUMMY PRODUCT");
    assert_eq!(p["gtin"], "1234567891011");
    assert_eq!(p["uom"], "A12");
    assert_eq!(p["weight_kg"], "4.666");
}

#[test]
fn flat_idocs_are_refused_with_a_clear_error() {
    for name in [
        "bots_ORDERS01001.idoc",
        "bots_WP_PLU003.idoc",
        "sap_msgtrans_ORDERS05_flat.txt",
    ] {
        let r = corpus(name);
        let e = r.error.expect(name);
        assert_eq!(e.reason.rule, "idoc-flat-unsupported", "{name}");
        assert!(e.reason.message.contains("XML"));
        assert!(r.units.is_empty());
    }
}

#[test]
fn samples_in_the_inbox_read_cleanly() {
    let dir = root().join("samples/inbox");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("idoc-") && name.ends_with(".xml")) {
            continue;
        }
        seen += 1;
        let r = read_all(format().as_ref(), &e.path());
        assert!(r.error.is_none(), "{name}: {:?}", r.error);
        for u in &r.units {
            assert_eq!(u.status(), UnitStatus::Applied, "{name}: {:#?}", u.eval);
        }
        if name.contains("debmas07") {
            let c = &r.units[0].eval.records[0];
            assert_eq!(c.entity.as_str(), "customer");
            assert_eq!(c.body()["customer_id"], "0000100042");
            assert_eq!(c.body()["name"], "Müller Fahrradbau GmbH");
            assert_eq!(c.body()["vat_id"], "DE123456789");
            assert_eq!(c.body()["active"], true);
            assert_eq!(r.units[1].eval.records[0].body()["active"], false);
            // The phone number reaches the record, never the ledger's text of the line.
            assert_eq!(c.body()["phone"], "+49 911 555010");
            let general = &raw_of(&r, 0, "E1KNA1M")[0];
            assert!(!general.contains("555010"), "{general}");
        }
    }
    assert!(seen >= 3, "expected the IDoc samples in samples/inbox");
}

fn sample(name: &str) -> ReadResult {
    read_all(format().as_ref(), &root().join("samples/inbox").join(name))
}

/// The ledger line (raw text) of the first segment named `seg` in unit `u`.
fn raw_of<'a>(r: &'a ReadResult, u: usize, seg: &str) -> Vec<&'a str> {
    r.units[u]
        .lines
        .iter()
        .map(|l| l.raw.as_str())
        .filter(|raw| raw.starts_with(&format!("{seg}:")))
        .collect()
}

/// Truncations and byte flips of real files: errors are fine, panics are not.
#[test]
fn damaged_corpus_files_never_panic() {
    let f = format();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.xml");
    for name in [
        "tests/corpus/idoc/sap_p2p_ORDERS05_ORDERS.xml",
        "tests/corpus/idoc/sap_o2c_INVOIC02.xml",
        "samples/inbox/idoc-cremas06-suppliers.xml",
    ] {
        let data = std::fs::read(root().join(name)).unwrap();
        let step = (data.len() / 150).max(1);
        for cut in (0..data.len()).step_by(step) {
            std::fs::write(&p, &data[..cut]).unwrap();
            let _ = read_all(f.as_ref(), &p);
            let mut flipped = data.clone();
            flipped[cut] = match flipped[cut] {
                b'<' => b'>',
                b'>' => b'&',
                _ => b'<',
            };
            std::fs::write(&p, &flipped).unwrap();
            let _ = read_all(f.as_ref(), &p);
        }
    }
}
