//! Behaviour of the X12 format end to end through `format::testing::read_all`: units and
//! positions, envelope errors, tolerances, maps, acknowledgements and definition errors.

use std::path::PathBuf;
use std::sync::Arc;

use tallyman::format::testing::{read_all, ReadResult, ReadUnit};
use tallyman::format::{defs::read_defs, Diagnostics, Format, Probe, UnitStatus};
use tallyman::unit::LineVerdict;

mod envelope;
mod partners;
mod resume;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every record a read's units gave, in order.
fn records(r: &ReadResult) -> Vec<tallyman::canonical::Record> {
    r.units
        .iter()
        .flat_map(|u| u.eval.records.clone())
        .collect()
}

/// The transaction sets of one id (`810`, `850`) a read gave, in order.
fn sets<'r>(r: &'r ReadResult, id: &str) -> Vec<&'r ReadUnit> {
    r.units.iter().filter(|u| u.label.starts_with(id)).collect()
}

/// The bundled definitions plus extra definition files (name, text).
fn format_with(extra: &[(&str, &str)]) -> (Arc<dyn Format>, Diagnostics) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in extra {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut d = Diagnostics::default();
    let mut defs = read_defs(&root().join("formats/x12"), &mut d);
    defs.extend(read_defs(dir.path(), &mut d));
    let refs: Vec<_> = defs.iter().collect();
    let mut f = tallyman::x12::load(&refs, &mut d);
    (f.remove(0), d)
}

fn format() -> Arc<dyn Format> {
    let (f, d) = format_with(&[]);
    assert!(d.is_empty(), "{:?}", d.errors);
    f
}

fn read_text(f: &dyn Format, text: &str) -> ReadResult {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.x12");
    std::fs::write(&p, text).unwrap();
    read_all(f, &p)
}

fn ack_text(r: &ReadResult) -> String {
    r.acks.iter().map(|a| a.content.text_lossy()).collect()
}

fn rejected_fields(r: &ReadResult) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for u in &r.units {
        for (i, v) in u.eval.verdicts.iter().enumerate() {
            if let LineVerdict::Rejected(reason) = v {
                out.push((
                    reason.rule.clone(),
                    reason.field.clone().unwrap_or_default(),
                    u.lines[i].pos.line,
                ));
            }
        }
    }
    out
}

#[test]
fn good_set_applied_bad_set_rejected_with_positions() {
    let f = format();
    let r = read_all(
        f.as_ref(),
        &root().join("samples/inbox/globex-invoices.x12"),
    );
    assert!(r.error.is_none(), "{:?}", r.error);
    let sets = sets(&r, "810");
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].status(), UnitStatus::Applied);
    assert_eq!(sets[0].eval.records[0].key, "GLOBEX/INV-9001");
    assert_eq!(sets[0].eval.records[0].body()["total"], "73.00");
    assert_eq!(sets[1].status(), UnitStatus::Rejected);
    let bad = rejected_fields(&r);
    assert!(
        bad.contains(&("x12-date".into(), "BIG01".into(), 13)),
        "{bad:?}"
    );
    assert!(
        bad.contains(&("x12-type".into(), "IT102".into(), 14)),
        "{bad:?}"
    );
    assert!(
        bad.contains(&("x12-se01-count".into(), "SE01".into(), 16)),
        "{bad:?}"
    );
    // The locator names the envelope and the segment's place in its set.
    let big = &sets[1].lines[1].pos;
    assert_eq!(
        big.locator.as_deref(),
        Some("ISA 000000202 / GS 202 / ST 0002, segment 2 of set")
    );
    assert_eq!(big.record, 13);
    let ack = ack_text(&r);
    assert!(ack.contains("AK2*810*0001~\nAK5*A~"), "{ack}");
    assert!(ack.contains("AK3*BIG*2**8~\nAK4*1**8*20241131~"), "{ack}");
    assert!(ack.contains("AK5*R*4*5~"), "{ack}");
    assert!(ack.contains("AK9*P*2*2*1~"), "{ack}");
    // Sender and receiver swapped.
    assert!(
        ack.starts_with("ISA*00*          *00*          *ZZ*TALLYMAN       *ZZ*GLOBEX         *")
    );
    assert_eq!(r.acks[0].partner, "GLOBEX");
}

#[test]
fn clean_850_maps_header_parties_and_lines() {
    let f = format();
    let r = read_all(f.as_ref(), &root().join("samples/inbox/acme-orders.x12"));
    assert!(r.error.is_none());
    let recs = records(&r);
    assert_eq!(recs.len(), 2);
    let o = &recs[0].body();
    assert_eq!(recs[0].key, "ACME/PO-4711");
    assert_eq!(o["order_date"], "2024-11-05");
    assert_eq!(o["purpose"], "original");
    assert_eq!(o["currency"], "EUR");
    assert_eq!(o["parties"][0]["role"], "buyer");
    assert_eq!(o["parties"][0]["city"], "Springfield");
    assert_eq!(o["parties"][1]["role"], "ship_to");
    assert_eq!(o["lines"][0]["sku"], "SKU-1");
    assert_eq!(o["lines"][0]["buyer_sku"], "A-1");
    assert_eq!(o["lines"][0]["quantity"], "10");
    assert_eq!(o["lines"][0]["unit_price"], "2.50");
    assert_eq!(o["lines"][1]["description"], "Widget case");
    assert_eq!(recs[1].body()["lines"][0]["requested_date"], "2024-11-20");
    // ISA14 = 1 asks for a TA1.
    assert!(ack_text(&r).contains("TA1*000000101*241105*0930*A*000~"));
}

#[test]
fn every_segment_belongs_to_exactly_one_unit_and_seqs_are_deterministic() {
    let f = format();
    let path = root().join("tests/corpus/x12/bots_850-004010-02.x12");
    let a = read_all(f.as_ref(), &path);
    let b = read_all(f.as_ref(), &path);
    let records: Vec<u64> = a
        .units
        .iter()
        .flat_map(|u| u.lines.iter().map(|l| l.pos.record))
        .collect();
    let expected: Vec<u64> = (1..=records.len() as u64).collect();
    assert_eq!(records, expected);
    let seqs = |r: &ReadResult| {
        r.units
            .iter()
            .map(|u| (u.seq, u.label.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&a), seqs(&b));
    assert!(a.units.iter().enumerate().all(|(i, u)| u.seq == i as u64));
}

/// Regression: a file cut anywhere before its IEA must never be accepted.
#[test]
fn truncated_file_is_never_accepted() {
    let f = format();
    let text = std::fs::read_to_string(root().join("samples/inbox/acme-orders.x12")).unwrap();
    let ends: Vec<usize> = text.match_indices("~\n").map(|(i, _)| i + 2).collect();
    for &end in &ends[..ends.len() - 1] {
        let r = read_text(f.as_ref(), &text[..end]);
        let err = r.error.expect("truncated file accepted");
        assert!(
            ["x12-missing-iea", "x12-missing-ge", "x12-missing-se"]
                .contains(&err.reason.rule.as_str()),
            "{err:?}"
        );
    }
    // Cut inside a segment too.
    let r = read_text(f.as_ref(), &text[..text.len() - 8]);
    assert!(r.error.is_some());
}

/// The ledger keeps no detail for a set the acknowledgement has nothing to say about: the
/// AK2 takes ST01/ST02 from what the reader knows of every set.
#[test]
fn a_set_with_nothing_to_tell_the_ack_keeps_no_detail() {
    let f = format();
    let r = read_all(f.as_ref(), &root().join("samples/inbox/acme-orders.x12"));
    let set = r.units.iter().find(|u| u.label == "850 ST 0002").unwrap();
    assert_eq!(set.eval.detail, serde_json::Value::Null);
    let ack = ack_text(&r);
    assert!(ack.contains("AK2*850*0002~\nAK5*A~"), "{ack}");
}

#[test]
fn claims_name_the_interchange() {
    let f = format();
    let r = read_all(f.as_ref(), &root().join("samples/inbox/acme-orders.x12"));
    let set = r.units.iter().find(|u| u.label == "850 ST 0002").unwrap();
    assert_eq!(
        set.eval.claims,
        vec!["x12-isa:ACME:TALLYMAN:000000101".to_string()]
    );
}

const ISA_OK: &str = "ISA*00*          *00*          *ZZ*PARTNER        *ZZ*US             *240131*1100*U*00401*000000007*0*P*>~\n";

fn one_set(isa: &str, body: &str, se01: usize) -> String {
    format!(
        "{isa}GS*PO*PARTNER*US*20240131*1100*7*X*004010~\nST*850*0001~\n{body}SE*{se01}*0001~\nGE*1*7~\nIEA*1*000000007~\n"
    )
}

const PO_BODY: &str = "BEG*00*SA*PO1**20240131~\nPO1*1*2*EA*3**VN*X~\n";

/// A 940 (no definition bundled) in one interchange from PARTNER.
fn unmapped_940() -> String {
    one_set(ISA_OK, "W05*N*1*2~\n", 3).replace("ST*850", "ST*940")
}

fn partner_unmapped(setting: &str) -> Arc<dyn Format> {
    let (f, d) = format_with(&[(
        "p.toml",
        &format!("kind = \"x12-partner\"\nsenders = [\"PARTNER\"]\nunmapped = \"{setting}\"\n"),
    )]);
    assert!(d.is_empty(), "{:?}", d.errors);
    f
}

#[test]
fn inbound_997_keeps_the_acknowledged_statuses() {
    let r = read_all(
        format().as_ref(),
        &root().join("tests/corpus/x12/pyx12_bad_elements.997.base"),
    );
    let set = r.units.iter().find(|u| u.label.starts_with("997")).unwrap();
    // Validated in full, but no canonical record: the pipeline says accepted unmapped.
    assert_eq!(set.status(), UnitStatus::Unmapped);
    let ack = &set.eval.detail["acknowledged"];
    assert_eq!(ack["group"]["status"], "R");
    assert_eq!(ack["sets"][0]["status"], "R");
}

#[test]
fn hl_hierarchy_maps_order_and_package_from_ancestors() {
    let body = "BSN*00*SHIP1*20240131*1200~\nDTM*011*20240131~\nHL*1**S~\nTD5*B*2*UPSN~\nREF*CN*1Z999~\nN1*ST*Store 9*92*S9~\nHL*2*1*O~\nPRF*PO-77~\nHL*3*2*P~\nMAN*GM*00012345~\nHL*4*3*I~\nLIN**VN*SKU-1~\nSN1**5*EA~\nHL*5*3*I~\nLIN**VN*SKU-2~\nSN1**1*CS~\nCTT*5~\n";
    let text = one_set(ISA_OK, body, 19)
        .replace("ST*850", "ST*856")
        .replace("GS*PO", "GS*SH");
    let r = read_text(format().as_ref(), &text);
    let recs = records(&r);
    assert_eq!(recs.len(), 1, "{:?}", rejected_fields(&r));
    let s = &recs[0].body();
    assert_eq!(recs[0].key, "PARTNER/SHIP1");
    assert_eq!(s["ship_date"], "2024-01-31");
    assert_eq!(s["carrier"], "UPSN");
    assert_eq!(s["tracking_no"], "1Z999");
    assert_eq!(s["order_nos"][0], "PO-77");
    assert_eq!(s["lines"][1]["sku"], "SKU-2");
    assert_eq!(s["lines"][1]["order_no"], "PO-77");
    assert_eq!(s["lines"][1]["package_id"], "00012345");
    assert_eq!(s["lines"][0]["quantity"], "5");
}

#[test]
fn po_ack_855_maps_status_per_line() {
    let r = read_all(
        format().as_ref(),
        &root().join("tests/corpus/x12/nodex12_855.edi"),
    );
    let recs = records(&r);
    let b = &recs[0].body();
    assert_eq!(b["order_no"], "POTEST1112");
    assert_eq!(b["status"], "accepted");
    assert_eq!(b["lines"][0]["status"], "accepted");
    assert_eq!(b["lines"][1]["status"], "rejected");
}

#[test]
fn sniff_claims_isa_after_bom_and_whitespace_only() {
    let f = format();
    let probe = |head: &[u8]| {
        f.sniff(&Probe {
            name: "x.txt",
            head,
        })
    };
    assert_eq!(probe(b"\xEF\xBB\xBF\r\n  ISA*00"), Some(100));
    assert_eq!(probe(b"GS*PO"), None);
    assert_eq!(probe(b""), None);
}

#[test]
fn definition_errors_are_all_reported_with_lines() {
    let (_, d) = format_with(&[
        (
            "bad-set.toml",
            "kind = \"x12-transaction-set\"\nid = \"850\"\nname = \"x\"\nversions = [\"009\"]\nstructure = \"\"\"\nST M 1\nLOOP A O 1\nSE M 1\n\"\"\"\n",
        ),
        (
            "bad-partner.toml",
            "kind = \"x12-partner\"\nsenders = [\"A\"]\ntolerate = [\"se01-count\", \"everything\"]\n",
        ),
        (
            "bad-segs.toml",
            "kind = \"x12-segments\"\n[segments.ZZZ]\nelements = [\"M QQ 1/2\"]\n",
        ),
    ]);
    let msgs: Vec<String> = d.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(d.errors.len(), 3, "{msgs:?}");
    assert!(d.errors.iter().all(|e| e.line.is_some()), "{msgs:?}");
    assert!(
        msgs.iter()
            .any(|m| m.contains("bad-set.toml:7") && m.contains("no END")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("bad-partner.toml:3") && m.contains("everything")),
        "{msgs:?}"
    );
}

#[test]
fn overlong_segment_is_a_file_error_not_an_allocation() {
    let text = one_set(ISA_OK, &format!("BEG*00*SA*{}~\n", "9".repeat(2 << 20)), 4);
    let r = read_text(format().as_ref(), &text);
    assert_eq!(r.error.unwrap().reason.rule, "x12-segment-too-long");
}

/// Runs pyx12's validator on our acks when it is installed (`pip install pyx12`).
#[test]
fn acks_pass_pyx12_when_available() {
    if std::process::Command::new("x12valid")
        .arg("--help")
        .output()
        .is_err()
    {
        println!("pyx12 (x12valid) not installed: skipping independent ack validation");
        return;
    }
    let f = format();
    let dir = tempfile::tempdir().unwrap();
    for input in [
        "pyx12_simple_837p.txt",
        "pyx12_trailer_errors.txt",
        "lfh_demo.example1.837",
    ] {
        let r = read_all(f.as_ref(), &root().join("tests/corpus/x12").join(input));
        for a in &r.acks {
            let p = dir.path().join(&a.file_name);
            std::fs::write(&p, a.content.bytes().unwrap()).unwrap();
            let out = std::process::Command::new("x12valid")
                .arg(&p)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.trim_end().ends_with(": OK") && !text.contains("ERROR"),
                "{input}: pyx12 rejects our ack:\n{text}\n{}",
                a.content.text_lossy()
            );
        }
    }
}

/// Regression (hardening contract): a rejected set produced no record, so its reject rows
/// could not name the document (BIG02, BEG03...) the reviewer has to find.
#[test]
fn regression_rejected_set_did_not_name_its_document() {
    let r = read_all(
        format().as_ref(),
        &root().join("samples/inbox/globex-invoices.x12"),
    );
    let keys: Vec<(String, Option<String>)> = sets(&r, "810")
        .into_iter()
        .map(|u| (u.status().as_str().to_string(), u.eval.key.clone()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("applied".to_string(), Some("INV-9001".to_string())),
            ("rejected".to_string(), Some("INV-9002".to_string())),
        ]
    );
    // A set without a definition has no key to state.
    let r = read_text(format().as_ref(), &unmapped_940());
    let set = r.units.iter().find(|u| u.label.starts_with("940")).unwrap();
    assert_eq!(set.eval.key, None);
}
