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

#[test]
fn cremas06_suppliers_carry_bank_details_masked_in_the_ledger() {
    let r = sample("idoc-cremas06-suppliers.xml");
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.units.len(), 2);
    let de = &r.units[0].eval.records[0];
    assert_eq!(de.entity.as_str(), "supplier");
    assert_eq!(de.key, "PRDCLNT100/0000300101");
    let expected = serde_json::json!({
        "supplier_id": "0000300101",
        "name": "Brightwater Components GmbH",
        "address": "Industriestraße 7",
        "city": "Stuttgart",
        "region": "08",
        "postal_code": "70565",
        "country": "DE",
        "vat_id": "DE123456789",
        "phone": "+49 711 5550100",
        "payment_terms": "NT30",
        "currency": "EUR",
        // The first E1LFBKM, whole: the second account (CH) is not mixed in.
        "iban": "DE89370400440532013000",
        "bic": "COBADEFFXXX",
        "bank_account": "0532013000",
        "bank_code": "37040044",
        "bank_country": "DE",
        "account_holder": "Brightwater Components GmbH",
        "active": true
    });
    assert_eq!(de.body(), expected);
    assert_eq!(
        r.units[0].eval.claims,
        vec!["idoc:PRDCLNT100:0000000004200001"]
    );
    // In the ledger every account identifier is masked, in both bank segments.
    let banks = raw_of(&r, 0, "E1LFBKM");
    assert_eq!(banks.len(), 2);
    for clear in [
        "DE89370400440532013000",
        "0532013000",
        "Brightwater Components GmbH",
        "CH9300762011623852957",
        "0762011623852957",
        "Brightwater Schweiz AG",
    ] {
        assert!(
            !banks.iter().any(|b| b.contains(clear)),
            "{clear}: {banks:?}"
        );
    }
    assert!(
        banks[0].contains("IBAN=********************00"),
        "{}",
        banks[0]
    );
    assert!(banks[0].contains("SWIFT=COBADEFFXXX"), "{}", banks[0]);
    // ...and the general data is kept as sent, but for how to reach a person.
    let general = &raw_of(&r, 0, "E1LFA1M")[0];
    assert!(general.contains("NAME1=Brightwater Components GmbH"));
    assert!(!general.contains("+49 711 5550100"), "{general}");
    assert!(general.contains("TELF1=*************00"), "{general}");

    let us = &r.units[1].eval.records[0].body();
    assert_eq!(us["bank_account"], "000123456789");
    assert_eq!(us["bank_code"], "021000021");
    assert!(us.get("iban").is_none(), "{us}");
    assert_eq!(
        us["payment_terms"], "NT45",
        "from purchasing: no company code"
    );
    assert_eq!(us["currency"], "USD");
    assert_eq!(us["active"], false, "blocked for purchasing (SPERM)");
    let ack = ack_text(&r);
    assert_eq!(ack.matches("<STATUS>53</STATUS>").count(), 2, "{ack}");
}

/// A bank segment that breaks its definition: the reject names the field with the value
/// masked, and neither the reason nor the STATUS sent back shows the account.
#[test]
fn cremas_bank_field_errors_never_show_the_account() {
    let text = std::fs::read_to_string(root().join("samples/inbox/idoc-cremas06-suppliers.xml"))
        .unwrap()
        .replace(
            "<BANKN>0532013000</BANKN>",
            "<BANKN>05320130001234567890</BANKN>",
        )
        .replace(
            "<IBAN>CH9300762011623852957</IBAN>",
            "<IBAN>CH9300762011623852957000000000000000</IBAN>",
        );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cremas-bad.xml");
    std::fs::write(&p, &text).unwrap();
    let r = read_all(format().as_ref(), &p);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.units[0].status(), UnitStatus::Rejected);
    assert_eq!(r.units[1].status(), UnitStatus::Applied);
    let got: Vec<(u64, String, Option<String>, Option<String>)> = r.units[0]
        .eval
        .verdicts
        .iter()
        .zip(&r.units[0].lines)
        .filter_map(|(v, l)| match v {
            LineVerdict::Rejected(x) => Some((
                x.place.map_or(l.pos.line, |(line, _)| line),
                x.rule.clone(),
                x.field.clone(),
                x.value.clone(),
            )),
            _ => None,
        })
        .collect();
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        got,
        [
            (
                49,
                "idoc-field-length".into(),
                s("BANKN"),
                Some(format!("{}90", "*".repeat(18)))
            ),
            (
                63,
                "idoc-field-length".into(),
                s("IBAN"),
                Some(format!("{}00", "*".repeat(34)))
            ),
        ]
    );
    let ack = ack_text(&r);
    for clear in ["0532013000", "CH930076"] {
        assert!(!ack.contains(clear), "{clear} in {ack}");
        for l in &r.units[0].lines {
            assert!(!l.raw.contains(clear), "{clear} in {}", l.raw);
        }
    }
    assert!(ack.contains("<STAPA2>BANKN</STAPA2>"), "{ack}");
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

// ---------------------------------------------------------------------------------------
// Hostile XML. Each case is read in a child process (this test binary re-run on
// `hostile_child`) so its peak memory (VmHWM) can be measured in isolation.

const DC: &str = "<EDI_DC40 SEGMENT=\"1\"><DOCNUM>1</DOCNUM><IDOCTYP>ORDERS05</IDOCTYP>\
<MESTYP>ORDERS</MESTYP><SNDPRN>EVIL</SNDPRN></EDI_DC40>";

struct ChildResult {
    rule: String,
    message: String,
    units: u64,
    hwm_kb: u64,
    stdout: String,
}

/// Reads `path` in a child process with `limits`; returns what it saw.
fn read_in_child(path: &Path, max_file_bytes: Option<u64>) -> ChildResult {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "hostile_child",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("IDOC_HOSTILE_FILE", path);
    if let Some(m) = max_file_bytes {
        cmd.env("IDOC_HOSTILE_MAX_FILE", m.to_string());
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The harness prints "test hostile_child ... " on the same line before our output.
    let line = stdout
        .lines()
        .find_map(|l| l.find("RESULT\t").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no RESULT in {stdout}"));
    let parts: Vec<&str> = line.split('\t').collect();
    eprintln!("{}: peak {} kB", path.display(), parts[3]);
    ChildResult {
        rule: parts[1].to_string(),
        units: parts[2].parse().unwrap(),
        hwm_kb: parts[3].parse().unwrap(),
        message: parts[4].to_string(),
        stdout,
    }
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The child side: streams the file unit by unit (dropping each, like the pipeline does
/// once a unit is in the ledger), then prints rule, units, peak memory and message.
#[test]
fn hostile_child() {
    let Ok(path) = std::env::var("IDOC_HOSTILE_FILE") else {
        return; // only meaningful when spawned by read_in_child
    };
    let f = format();
    let mut ctx = ctx_for(Path::new(&path));
    if let Ok(m) = std::env::var("IDOC_HOSTILE_MAX_FILE") {
        ctx.limits.max_file_bytes = m.parse().unwrap();
    }
    let mut units = 0u64;
    let mut rule = String::from("none");
    let mut message = String::new();
    match f.open(Path::new(&path), &ctx) {
        Err(e) => {
            rule = e.reason.rule.clone();
            message = e.to_string();
        }
        Ok(mut r) => loop {
            match r.next_unit() {
                Ok(Some(mut u)) => {
                    let ev = u.evaluate();
                    assert!(!ev.is_rejected(), "{:?}", ev);
                    units += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    rule = e.reason.rule.clone();
                    message = e.to_string();
                    break;
                }
            }
        },
    }
    println!(
        "RESULT\t{rule}\t{units}\t{}\t{}",
        vm_hwm_kb(),
        message.replace(['\t', '\n'], " ")
    );
}

/// Peak memory allowed for a child reading a hostile file (the test harness itself uses a
/// few MB; every hostile file here is ≥ 50 MB or expands to gigabytes).
const HWM_LIMIT_KB: u64 = 40 * 1024;

fn assert_bounded(c: &ChildResult) {
    if cfg!(target_os = "linux") {
        assert!(c.hwm_kb > 0, "VmHWM not readable: {}", c.stdout);
    }
    assert!(c.hwm_kb < HWM_LIMIT_KB, "peak {} kB", c.hwm_kb);
}

fn write_file(dir: &Path, name: &str, parts: &mut dyn FnMut(&mut dyn Write)) -> PathBuf {
    let p = dir.join(name);
    let mut w = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    parts(&mut w);
    w.flush().unwrap();
    p
}

#[test]
fn billion_laughs_is_refused_unexpanded() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "lol.xml", &mut |w| {
        writeln!(
            w,
            "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">"
        )
        .unwrap();
        for i in 1..10 {
            let prev = if i == 1 {
                "lol".to_string()
            } else {
                format!("lol{}", i - 1)
            };
            writeln!(
                w,
                " <!ENTITY lol{i} \"{}\">",
                format!("&{prev};").repeat(10)
            )
            .unwrap();
        }
        writeln!(
            w,
            "]>\n<ORDERS05><IDOC BEGIN=\"1\">{DC}<E1EDK01 SEGMENT=\"1\"><BELNR>&lol9;</BELNR></E1EDK01></IDOC></ORDERS05>"
        )
        .unwrap();
    });
    let c = read_in_child(&p, None);
    assert_eq!(c.rule, "xml-doctype", "{}", c.stdout);
    assert!(c.message.contains("line 2"), "{}", c.message);
    assert_bounded(&c);
}

#[test]
fn external_entity_never_leaks_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    let token = "TOP-SECRET-7f3a9c-do-not-leak";
    std::fs::write(&secret, token).unwrap();
    let with_dtd = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file://{}\">]>\n\
         <ORDERS05><IDOC BEGIN=\"1\">{DC}<E1EDK01 SEGMENT=\"1\"><BELNR>&xxe;</BELNR></E1EDK01>\
         </IDOC></ORDERS05>",
        secret.display()
    );
    // Without the DTD the reference is just undefined; also refused.
    let without_dtd = format!(
        "<ORDERS05><IDOC BEGIN=\"1\">{DC}<E1EDK01 SEGMENT=\"1\"><BELNR>&xxe;</BELNR></E1EDK01>\
         </IDOC></ORDERS05>"
    );
    for (text, rule) in [(with_dtd, "xml-doctype"), (without_dtd, "xml-entity")] {
        let p = dir.path().join("xxe.xml");
        std::fs::write(&p, &text).unwrap();
        let r: ReadResult = read_all(format().as_ref(), &p);
        let e = r.error.as_ref().expect("refused");
        assert_eq!(e.reason.rule, rule);
        let everything = format!("{r:?} {e}");
        assert!(!everything.contains(token), "secret leaked: {everything}");
        for a in &r.acks {
            assert!(!a.content.text_lossy().contains(token));
        }
    }
}

#[test]
fn ten_thousand_deep_nesting_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "deep.xml", &mut |w| {
        write!(w, "<ORDERS05><IDOC BEGIN=\"1\">{DC}").unwrap();
        for _ in 0..10_000 {
            w.write_all(b"<E1EDK01 SEGMENT=\"1\">").unwrap();
        }
        for _ in 0..10_000 {
            w.write_all(b"</E1EDK01>").unwrap();
        }
        w.write_all(b"</IDOC></ORDERS05>").unwrap();
    });
    let c = read_in_child(&p, None);
    assert_eq!(c.rule, "xml-depth", "{}", c.stdout);
    assert!(c.message.contains("64"), "{}", c.message);
    assert_bounded(&c);
}

#[test]
fn fifty_megabyte_text_node_is_refused_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "big.xml", &mut |w| {
        write!(
            w,
            "<ORDERS05><IDOC BEGIN=\"1\">{DC}<E1EDK01 SEGMENT=\"1\"><BELNR>"
        )
        .unwrap();
        let chunk = vec![b'A'; 1 << 20];
        for _ in 0..50 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(b"</BELNR></E1EDK01></IDOC></ORDERS05>")
            .unwrap();
    });
    let c = read_in_child(&p, None);
    assert_eq!(c.rule, "xml-too-large", "{}", c.stdout);
    assert!(c.message.contains("max_record_bytes"), "{}", c.message);
    assert_bounded(&c);
}

#[test]
fn file_over_the_size_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let idoc =
        format!("<IDOC BEGIN=\"1\">{DC}<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR></E1EDK01></IDOC>\n");
    let p = write_file(dir.path(), "huge.xml", &mut |w| {
        w.write_all(b"<ORDERS05>\n").unwrap();
        while_size(w, &idoc, 60 << 20);
        w.write_all(b"</ORDERS05>\n").unwrap();
    });
    let c = read_in_child(&p, Some(50 << 20));
    assert_eq!(c.rule, "file-too-large", "{}", c.stdout);
    assert!(c.message.contains("max_file_bytes"));
    assert_eq!(c.units, 0, "refused before reading");
}

/// Thousands of IDocs stream in flat memory: the same 60 MB file without the cap is read
/// unit by unit without holding the file.
#[test]
fn thousands_of_idocs_stream_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0u64;
    let p = write_file(dir.path(), "many.xml", &mut |w| {
        w.write_all(b"<ORDERS05>\n").unwrap();
        for i in 1..=20_000u64 {
            writeln!(
                w,
                "<IDOC BEGIN=\"1\"><EDI_DC40 SEGMENT=\"1\"><DOCNUM>{i}</DOCNUM><IDOCTYP>ORDERS05</IDOCTYP>\
                 <MESTYP>ORDERS</MESTYP><SNDPRN>BULK</SNDPRN></EDI_DC40>\
                 <E1EDK01 SEGMENT=\"1\"><BELNR>PO{i}</BELNR></E1EDK01>\
                 <E1EDP01 SEGMENT=\"1\"><POSEX>10</POSEX><MENGE>{i}</MENGE><KTEXT>{}</KTEXT></E1EDP01></IDOC>",
                "padding ".repeat(300)
            )
            .unwrap();
            n += 1;
        }
        w.write_all(b"</ORDERS05>\n").unwrap();
    });
    let size = std::fs::metadata(&p).unwrap().len();
    assert!(size > 45 << 20, "{size}");
    let c = read_in_child(&p, None);
    assert_eq!(c.rule, "none", "{}", c.stdout);
    assert_eq!(c.units, n);
    assert_bounded(&c);
}

fn while_size(w: &mut dyn Write, unit: &str, total: u64) {
    let mut written = 0u64;
    while written < total {
        w.write_all(unit.as_bytes()).unwrap();
        written += unit.len() as u64;
    }
}

/// `limits` passed by value still reach the reader (guards `read_all_with`'s contract).
#[test]
fn limits_from_the_context_are_honoured() {
    let p = root().join("tests/corpus/idoc/sap_o2c_INVOIC02.xml");
    let mut ctx = ctx_for(&p);
    ctx.limits = Limits {
        max_file_bytes: 100,
        ..Limits::default()
    };
    let r = read_all_with(format().as_ref(), &p, &ctx);
    assert_eq!(r.error.unwrap().reason.rule, "file-too-large");
}
