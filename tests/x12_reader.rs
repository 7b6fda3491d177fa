//! Behaviour of the X12 format end to end through `format::testing::read_all`: units and
//! positions, envelope errors, tolerances, maps, acknowledgements and definition errors.

use std::path::PathBuf;
use std::sync::Arc;

use tallyman::format::testing::{read_all, ReadResult};
use tallyman::format::{defs::read_defs, Diagnostics, Format, Probe, UnitStatus};
use tallyman::unit::LineVerdict;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
    let sets: Vec<_> = r
        .units
        .iter()
        .filter(|u| u.label.starts_with("810"))
        .collect();
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
    let recs: Vec<_> = r
        .units
        .iter()
        .flat_map(|u| u.eval.records.clone())
        .collect();
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

/// What a group's sets share with their jobs (GS08 among it) is made per group: the second
/// group of an interchange, of a version without definitions, is read as that version.
#[test]
fn each_group_s_sets_are_read_as_their_own_group_s_version() {
    let text = format!(
        "{ISA_OK}GS*PO*PARTNER*US*20240131*1100*7*X*004010~\nST*850*0001~\n{PO_BODY}SE*4*0001~\nGE*1*7~\n\
         GS*PO*PARTNER*US*20240131*1100*8*X*009999~\nST*850*0002~\n{PO_BODY}SE*4*0002~\nGE*1*8~\n\
         GS*PO*PARTNER*US*20240131*1100*9*X*004010~\nST*850*0003~\n{PO_BODY}SE*4*0003~\nGE*1*9~\n\
         IEA*3*000000007~\n"
    );
    let r = read_text(format().as_ref(), &text);
    assert!(r.error.is_none(), "{:?}", r.error);
    let sets: Vec<_> = r
        .units
        .iter()
        .filter(|u| u.label.starts_with("850"))
        .collect();
    assert_eq!(sets.len(), 3);
    assert_eq!(sets[0].eval.records.len(), 1, "{:?}", sets[0].eval);
    assert!(sets[1].eval.unmapped, "{:?}", sets[1].eval);
    assert!(sets[1].eval.records.is_empty());
    assert_eq!(sets[2].eval.records.len(), 1, "{:?}", sets[2].eval);
}

#[test]
fn wrong_se01_is_rejected_unless_the_partner_tolerates_it() {
    let text = one_set(ISA_OK, PO_BODY, 9);
    let strict = read_text(format().as_ref(), &text);
    assert_eq!(rejected_fields(&strict)[0].0, "x12-se01-count");
    let (tolerant, d) = format_with(&[(
        "p.toml",
        "kind = \"x12-partner\"\nsenders = [\"PARTNER\"]\ntolerate = [\"se01-count\"]\n",
    )]);
    assert!(d.is_empty());
    let r = read_text(tolerant.as_ref(), &text);
    let set = r.units.iter().find(|u| u.label.starts_with("850")).unwrap();
    assert_eq!(set.status(), UnitStatus::Applied);
    assert_eq!(set.eval.tolerated, vec!["x12-se01-count".to_string()]);
}

#[test]
fn bad_isa_header_rejects_its_sets_and_answers_with_ta1() {
    let isa = ISA_OK.replace("*1100*U*", "*3399*U*");
    let r = read_text(format().as_ref(), &one_set(&isa, PO_BODY, 4));
    assert!(r.error.is_none());
    let isa_unit = &r.units[0];
    assert_eq!(isa_unit.status(), UnitStatus::Rejected);
    let set = r.units.iter().find(|u| u.label.starts_with("850")).unwrap();
    assert_eq!(set.eval.unit_errors[0].rule, "x12-interchange-rejected");
    assert!(ack_text(&r).contains("*R*015~"), "{}", ack_text(&r));
}

#[test]
fn trailer_count_mismatch_fails_the_file_with_ta1_and_group_code() {
    let text = one_set(ISA_OK, PO_BODY, 4).replace("IEA*1*", "IEA*2*");
    let r = read_text(format().as_ref(), &text);
    let err = r.error.as_ref().unwrap();
    assert_eq!(err.reason.rule, "x12-iea01-count");
    assert_eq!(err.pos.as_ref().unwrap().line, 8);
    let ack = ack_text(&r);
    assert!(ack.contains("TA1*000000007*240131*1100*R*021~"), "{ack}");
    // The whole file is rejected, so no set is acknowledged as accepted; the set itself
    // is fine (code 5, rejected with its interchange), the cause is in the TA1.
    assert!(
        ack.contains("AK5*R*5~") && ack.contains("AK9*R*1*1*0~"),
        "{ack}"
    );
}

#[test]
fn interchanges_with_different_delimiters_in_one_file() {
    let first = one_set(ISA_OK, PO_BODY, 4);
    let second = one_set(ISA_OK, PO_BODY, 4)
        .replace('*', "|")
        .replace('~', "!")
        .replace("|>!", "|^!")
        .replace("000000007", "000000008")
        .replace("PO1|1|2|EA|3||VN|X", "PO1|1|2|EA|3||VN|Y");
    let r = read_text(format().as_ref(), &format!("{first}\r\n{second}"));
    assert!(r.error.is_none(), "{:?}", r.error);
    let recs: Vec<_> = r
        .units
        .iter()
        .flat_map(|u| u.eval.records.clone())
        .collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].body()["lines"][0]["sku"], "Y");
    assert_eq!(r.acks.len(), 2);
}

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

/// Regression (hardening item 15): a set with no definition was recorded like an applied
/// one; nothing said it was only envelope-checked.
#[test]
fn regression_set_without_definition_was_not_marked_unmapped() {
    let r = read_text(format().as_ref(), &unmapped_940());
    let set = r.units.iter().find(|u| u.label.starts_with("940")).unwrap();
    assert!(set.eval.unmapped, "{:?}", set.eval);
    assert!(!set.eval.is_rejected());
    assert!(set.eval.records.is_empty());
    assert_eq!(set.eval.hold, None);
    assert_eq!(set.eval.detail["unmapped"], true);
    assert!(set.eval.detail["note"]
        .as_str()
        .unwrap()
        .contains("no definition for transaction set 940 version 004010"));
    // Still claims its interchange, so a resend is a duplicate.
    assert_eq!(
        set.eval.claims,
        vec!["x12-isa:PARTNER:US:000000007".to_string()]
    );
    assert!(ack_text(&r).contains("AK2*940*0001~\nAK5*A~\nAK9*A*1*1*1~"));
    // A mapped set is not unmapped.
    let r = read_text(format().as_ref(), &one_set(ISA_OK, PO_BODY, 4));
    let set = r.units.iter().find(|u| u.label.starts_with("850")).unwrap();
    assert!(!set.eval.unmapped);
    assert_eq!(set.eval.records.len(), 1);
}

#[test]
fn partner_may_hold_unmapped_sets_for_review() {
    let r = read_text(partner_unmapped("hold").as_ref(), &unmapped_940());
    let set = r.units.iter().find(|u| u.label.starts_with("940")).unwrap();
    assert!(set.eval.unmapped && !set.eval.is_rejected());
    assert_eq!(
        set.eval.hold.as_deref(),
        Some(
            "transaction set 940 has no definition; partner PARTNER holds unmapped sets for review"
        )
    );
    // Acknowledged as accepted once released (the pipeline records it as unmapped).
    assert!(ack_text(&r).contains("AK5*A~"));
    // A set that is rejected anyway asks for no review.
    let bad = unmapped_940().replace("SE*3*", "SE*9*");
    let r = read_text(partner_unmapped("hold").as_ref(), &bad);
    let set = r.units.iter().find(|u| u.label.starts_with("940")).unwrap();
    assert!(set.eval.is_rejected());
    assert!(!set.eval.unmapped && set.eval.hold.is_none());
}

#[test]
fn partner_may_reject_unmapped_sets_as_not_supported() {
    let r = read_text(partner_unmapped("reject").as_ref(), &unmapped_940());
    let set = r.units.iter().find(|u| u.label.starts_with("940")).unwrap();
    assert_eq!(set.status(), UnitStatus::Rejected);
    assert!(!set.eval.unmapped);
    let e = &set.eval.unit_errors[0];
    assert_eq!(e.rule, "x12-no-definition");
    assert_eq!(e.field.as_deref(), Some("ST01"));
    assert_eq!(e.value.as_deref(), Some("940"));
    let ack = ack_text(&r);
    assert!(
        ack.contains("AK2*940*0001~\nAK5*R*1~\nAK9*R*1*1*0~"),
        "{ack}"
    );
    // The 999 says the same in IK5.
    let five = unmapped_940()
        .replace("*U*00401*", "*^*00501*")
        .replace("*X*004010~", "*X*005010~");
    let ack = ack_text(&read_text(partner_unmapped("reject").as_ref(), &five));
    assert!(ack.contains("AK2*940*0001~\nIK5*R*1~"), "{ack}");
}

#[test]
fn unmapped_setting_of_the_star_file_applies_to_partner_files_that_do_not_set_it() {
    // The bundled definitions without their `*` partner file, plus a `*` file that rejects.
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "star.toml",
            "kind = \"x12-partner\"\nsenders = [\"*\"]\nunmapped = \"reject\"\n",
        ),
        (
            "p.toml",
            "kind = \"x12-partner\"\nsenders = [\"PARTNER\"]\ntolerate = [\"se01-count\"]\n",
        ),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut d = Diagnostics::default();
    let mut defs: Vec<_> = read_defs(&root().join("formats/x12"), &mut d)
        .into_iter()
        .filter(|def| !def.path.ends_with("partners.toml"))
        .collect();
    defs.extend(read_defs(dir.path(), &mut d));
    let refs: Vec<_> = defs.iter().collect();
    let f = tallyman::x12::load(&refs, &mut d).remove(0);
    assert!(d.is_empty(), "{:?}", d.errors);
    let r = read_text(f.as_ref(), &unmapped_940());
    let set = r.units.iter().find(|u| u.label.starts_with("940")).unwrap();
    assert_eq!(set.eval.unit_errors[0].rule, "x12-no-definition");
}

#[test]
fn unknown_unmapped_setting_is_a_definition_error_with_its_line() {
    let (_, d) = format_with(&[(
        "p.toml",
        "kind = \"x12-partner\"\nsenders = [\"A\"]\nunmapped = \"ignore\"\n",
    )]);
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    assert_eq!(d.errors[0].line, Some(3));
    assert!(d.errors[0].message.contains("accept, hold, reject"));
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
    let recs: Vec<_> = r
        .units
        .iter()
        .flat_map(|u| u.eval.records.clone())
        .collect();
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
    let recs: Vec<_> = r
        .units
        .iter()
        .flat_map(|u| u.eval.records.clone())
        .collect();
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

#[test]
fn all_or_nothing_partner_rejects_the_whole_group() {
    let (f, d) = format_with(&[(
        "globex.toml",
        "kind = \"x12-partner\"\nsenders = [\"GLOBEX\"]\natomic = \"group\"\n",
    )]);
    assert!(d.is_empty(), "{:?}", d.errors);
    let r = read_all(
        f.as_ref(),
        &root().join("samples/inbox/globex-invoices.x12"),
    );
    assert!(r.error.is_none());
    // ISA, the merged group (GS..GE), IEA.
    assert_eq!(
        r.units.len(),
        3,
        "{:?}",
        r.units.iter().map(|u| &u.label).collect::<Vec<_>>()
    );
    let group = &r.units[1];
    assert_eq!(group.lines.len(), 16);
    assert_eq!(group.status(), UnitStatus::Rejected);
    assert!(group.eval.records.is_empty());
    assert!(group
        .eval
        .unit_errors
        .iter()
        .any(|e| e.rule == "x12-all-or-nothing"));
    // Positions of the bad set's segments are kept.
    assert!(rejected_fields(&r).contains(&("x12-date".into(), "BIG01".into(), 13)));
    let ack = ack_text(&r);
    // The good set is rejected with its group: code 5, never a bare R.
    assert!(ack.contains("AK2*810*0001~\nAK5*R*5~"), "{ack}");
    assert!(
        ack.contains("AK5*R*4*5~") && ack.contains("AK9*R*2*2*0~"),
        "{ack}"
    );
    // Seqs stay contiguous for resume.
    assert_eq!(
        r.units.iter().map(|u| u.seq).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
}

#[test]
fn all_or_nothing_interchange_applies_everything_when_all_is_good() {
    let (f, _) = format_with(&[(
        "acme.toml",
        "kind = \"x12-partner\"\nsenders = [\"ACME\"]\natomic = \"interchange\"\n",
    )]);
    let r = read_all(f.as_ref(), &root().join("samples/inbox/acme-orders.x12"));
    assert_eq!(r.units.len(), 1);
    assert_eq!(r.units[0].status(), UnitStatus::Applied);
    assert_eq!(r.units[0].eval.records.len(), 2);
    assert!(ack_text(&r).contains("AK9*A*2*2*2~"));
}

#[test]
fn bad_gs_rejects_its_sets_and_the_ak9_says_so() {
    let text = one_set(ISA_OK, PO_BODY, 4)
        .replace("*7*X*004010~", "*7A*X*004010~")
        .replace("GE*1*7~", "GE*1*7A~");
    let r = read_text(format().as_ref(), &text);
    assert!(r.error.is_none(), "{:?}", r.error);
    let set = r.units.iter().find(|u| u.label.starts_with("850")).unwrap();
    assert_eq!(set.status(), UnitStatus::Rejected);
    assert_eq!(rejected_fields(&r)[0].1, "GS06");
    assert!(ack_text(&r).contains("AK9*R*1*1*0*6~"), "{}", ack_text(&r));
}

#[test]
fn file_policy_belongs_to_the_star_partner_only() {
    let (_, d) = format_with(&[(
        "p.toml",
        "kind = \"x12-partner\"\nsenders = [\"A\"]\npolicy = \"all-or-nothing\"\n",
    )]);
    assert_eq!(d.errors.len(), 1);
    assert_eq!(d.errors[0].line, Some(3));
    assert!(d.errors[0].message.contains("atomic"));
}

#[test]
fn oversized_set_is_rejected_not_buffered() {
    let body: String = (1..=8)
        .map(|i| format!("PO1*{i}*1*EA*1**VN*S{i}~\n"))
        .collect();
    let text = one_set(ISA_OK, &format!("BEG*00*SA*PO1**20240131~\n{body}"), 11);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.x12");
    std::fs::write(&p, text).unwrap();
    let mut ctx = tallyman::format::testing::ctx_for(&p);
    ctx.limits.max_unit_lines = 5;
    let r = tallyman::format::testing::read_all_with(format().as_ref(), &p, &ctx);
    let set = r.units.iter().find(|u| u.label.starts_with("850")).unwrap();
    assert_eq!(set.lines.len(), 6, "5 kept plus SE");
    let rules: Vec<&str> = set
        .eval
        .unit_errors
        .iter()
        .map(|e| e.rule.as_str())
        .collect();
    assert_eq!(
        rules,
        vec!["x12-set-too-large"],
        "SE01 still counts every segment"
    );
}

#[test]
fn element_errors_of_one_segment_share_one_ak3() {
    let r = read_all(
        format().as_ref(),
        &root().join("tests/corpus/x12/ediengine_850.SyntaxNotes.ERR.edi"),
    );
    let ack = ack_text(&r);
    assert!(
        ack.contains("AK3*PO1*13**8~\nAK4*7**2~\nAK3*PO4*30**8~\nAK4*6**2~\nAK4*6**2~\nAK5*R*5~"),
        "{ack}"
    );
}

/// Regression (hardening contract): a rejected set produced no record, so its reject rows
/// could not name the document (BIG02, BEG03...) the reviewer has to find.
#[test]
fn regression_rejected_set_did_not_name_its_document() {
    let r = read_all(
        format().as_ref(),
        &root().join("samples/inbox/globex-invoices.x12"),
    );
    let keys: Vec<(String, Option<String>)> = r
        .units
        .iter()
        .filter(|u| u.label.starts_with("810"))
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

#[test]
fn all_or_nothing_group_names_its_documents_and_is_unmapped_only_if_no_set_is_mapped() {
    let (f, _) = format_with(&[(
        "globex.toml",
        "kind = \"x12-partner\"\nsenders = [\"GLOBEX\"]\natomic = \"group\"\n",
    )]);
    let r = read_all(
        f.as_ref(),
        &root().join("samples/inbox/globex-invoices.x12"),
    );
    assert_eq!(r.units[1].eval.key.as_deref(), Some("INV-9001,INV-9002"));
    let (f, _) = format_with(&[(
        "p.toml",
        "kind = \"x12-partner\"\nsenders = [\"PARTNER\"]\natomic = \"group\"\nunmapped = \"hold\"\n",
    )]);
    let only_940 = read_text(f.as_ref(), &unmapped_940());
    let group = &only_940.units[1];
    assert!(
        group.eval.unmapped && group.eval.hold.is_some(),
        "{:?}",
        group.eval
    );
    let mixed = unmapped_940().replace(
        "GE*1*7~",
        "ST*850*0002~\nBEG*00*SA*PO1**20240131~\nPO1*1*2*EA*3**VN*X~\nSE*4*0002~\nGE*2*7~",
    );
    let r = read_text(f.as_ref(), &mixed);
    let group = &r.units[1];
    assert!(!group.eval.unmapped, "{:?}", group.eval);
    assert_eq!(group.eval.records.len(), 1);
    // The 940 still asks for the file to be held.
    assert!(group.eval.hold.is_some());
}

/// The restarts of `a_resumed_read_restarts_at_every_mark_as_if_read_through` (below),
/// with the reader keeping its restart snapshots, as the engine has it do: small files
/// take one at nearly every mark, so most restarts start from a snapshot and pass over the
/// sets after it, under all-or-nothing partners too. Then with the snapshots damaged
/// after the read (cut short, or a byte changed): a restart that cannot trust its
/// snapshot passes over everything from the top, and still returns the same.
#[test]
fn a_read_restarted_from_its_snapshots_returns_what_reading_through_returned() {
    use tallyman::format::testing::{assert_restarts_match_keeping_some, ctx_for};
    let mut with_snapshot = 0;
    let mut files = 0;
    for (f, p, _) in restart_inputs() {
        if read_all(f.as_ref(), &p).error.is_some() {
            continue;
        }
        files += 1;
        let damage: [&dyn Fn(&std::path::Path); 3] = [
            &|_| {},
            &|s| {
                let len = std::fs::metadata(s).map_or(0, |m| m.len());
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .open(s)
                    .and_then(|f| f.set_len(len / 2));
            },
            &|s| {
                if let Ok(mut b) = std::fs::read(s) {
                    let mid = b.len() / 2;
                    if let Some(x) = b.get_mut(mid) {
                        *x ^= 0x20;
                    }
                    std::fs::write(s, b).unwrap();
                }
            },
        ];
        // Every restart also appends snapshots of its own: a few dozen marks a file,
        // spread over it, and fewer with the snapshots damaged.
        for (d, most) in damage.iter().zip([40, 8, 8]) {
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("restart-state");
            let ctx = ctx_for(&p);
            let marks = assert_restarts_match_keeping_some(
                f.as_ref(),
                &p,
                &ctx,
                &state,
                &|| d(&state),
                most,
            );
            with_snapshot += marks.iter().filter(|m| !m.state.is_null()).count();
        }
    }
    assert!(files > 50, "{files} files");
    assert!(
        with_snapshot > 300,
        "{with_snapshot} marks named a snapshot"
    );
}

/// Every corpus interchange that reads without a file error, the bundled samples, and the
/// samples again under all-or-nothing partners (whose group or interchange is one unit):
/// a read restarted at any mark returns the units an uninterrupted read returned from
/// there, evaluated alike, and finishes with the same acknowledgements (which answer
/// every set of the file, those before the mark included).
#[test]
fn a_resumed_read_restarts_at_every_mark_as_if_read_through() {
    use tallyman::format::testing::{assert_restarts_match, ctx_for};
    let restarts = |f: &dyn Format, p: &std::path::Path| {
        if read_all(f, p).error.is_some() {
            return 0;
        }
        assert_restarts_match(f, p, &ctx_for(p))
    };
    let mut tried = 0;
    for (f, p, all_or_nothing) in restart_inputs() {
        match all_or_nothing {
            false => tried += restarts(f.as_ref(), &p),
            true => assert!(restarts(f.as_ref(), &p) >= 1, "{}", p.display()),
        }
    }
    assert!(tried > 300, "{tried} marks tried");
}

/// What the restart tests restart: every corpus interchange and bundled sample, then two
/// samples again under all-or-nothing partners (whose group or interchange is one unit),
/// those marked `true`.
fn restart_inputs() -> Vec<(Arc<dyn Format>, std::path::PathBuf, bool)> {
    let plain = format();
    let mut inputs = Vec::new();
    for dir in ["tests/corpus/x12", "samples/inbox"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "x12" || x == "edi") {
                inputs.push((plain.clone(), p, false));
            }
        }
    }
    for (partner, atomic, sample) in [
        ("GLOBEX", "group", "globex-invoices.x12"),
        ("ACME", "interchange", "acme-orders.x12"),
    ] {
        let def =
            format!("kind = \"x12-partner\"\nsenders = [\"{partner}\"]\natomic = \"{atomic}\"\n");
        let (f, _) = format_with(&[("p.toml", def.as_str())]);
        inputs.push((f, root().join("samples/inbox").join(sample), true));
    }
    inputs
}
