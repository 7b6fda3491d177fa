//! What our 997/999 acknowledgements tell the partner: a reason code on every rejected set
//! and on every group whose own envelope is at fault, the corpus file of each cause, and the
//! version each group is answered in.

use std::path::PathBuf;
use std::sync::Arc;

use tallyman::format::testing::{read_all, ReadResult};
use tallyman::format::{defs::read_defs, Diagnostics, Format};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled definitions plus the corpus partner settings, as `x12_conformance` reads.
fn format() -> Arc<dyn Format> {
    let mut d = Diagnostics::default();
    let mut defs = read_defs(&root().join("formats/x12"), &mut d);
    defs.extend(read_defs(&root().join("tests/x12-partners"), &mut d));
    let refs: Vec<_> = defs.iter().collect();
    let f = tallyman::x12::load(&refs, &mut d).remove(0);
    assert!(d.is_empty(), "{:?}", d.errors);
    f
}

fn ack_text(r: &ReadResult) -> String {
    r.acks.iter().map(|a| a.content.text_lossy()).collect()
}

fn corpus_ack(f: &dyn Format, name: &str) -> String {
    ack_text(&read_all(f, &root().join("tests/corpus/x12").join(name)))
}

fn read_text(f: &dyn Format, text: &str) -> ReadResult {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.x12");
    std::fs::write(&p, text).unwrap();
    read_all(f, &p)
}

/// The segments of an ack starting with one of `ids`, in order, without terminators.
fn segs(ack: &str, ids: &[&str]) -> Vec<String> {
    ack.split('~')
        .map(str::trim)
        .filter(|s| ids.iter().any(|id| s.starts_with(&format!("{id}*"))))
        .map(str::to_string)
        .collect()
}

/// Regression (hardening item 20): a set or group rejected because of an envelope or
/// trailer defect was acknowledged `AK5*R` / `IK5*R` with no reason code. One corpus file
/// per cause, with the codes it must now carry.
#[test]
fn regression_rejected_sets_carried_no_reason_code() {
    let f = format();
    let cases: &[(&str, &[&str])] = &[
        // SE missing: set 2 "trailer missing"; when the file ends inside it the group has
        // no GE either (3), when its GE follows the group itself is fine.
        ("pyx12_explicit_missing.txt", &["AK5*R*2", "AK9*R*1*1*0*3"]),
        ("gtl_no-se-trailer.edi", &["AK5*R*2", "AK9*R*1*1*0"]),
        // A segment that cannot be read (BIN01 not a number) inside a set: 5; TA1 024.
        (
            "staedi_nonnumeric_BIN01.edi",
            &["IK5*R*5", "AK9*R*1*1*0", "TA1*508121953*050812*1953*R*024"],
        ),
        // GE missing: the set is fine, rejected with its group (5); group 3.
        ("nodex12_271.edi", &["IK5*R*5", "AK9*R*1*1*0*3"]),
        ("gtl_no-ge-trailer.edi", &["AK9*R*0*0*0*3"]),
        // SE01 count: 4. SE02/ST02 and GE02/GS06: 3 and group 4.
        ("gtl_no-matching-segment-count.edi", &["AK5*R*4"]),
        (
            "ediengine_ControlNumbersMismatch.edi",
            &["AK5*R*3", "AK9*R*1*1*0*4"],
        ),
        ("staedi_invalid997_min.edi", &["IK5*R*5", "AK9*R*1*1*0*4"]),
        // GE01 count: sets rejected with the group (5); group 5.
        (
            "ediengine_WrongGroupsAndTranCount.edi",
            &["AK5*R*5", "AK9*R*2*1*0*5"],
        ),
        ("gtl_no-matching-st-count.edi", &["AK9*R*1*0*0*5"]),
        // IEA missing: the set's own SE01 error (4); the TA1 says 023.
        (
            "pyx12_fail_no_IEA.txt",
            &["AK5*R*4", "AK9*R*1*1*0", "TA1*000010121*030828*1128*R*023"],
        ),
    ];
    for (file, want) in cases {
        let ack = corpus_ack(f.as_ref(), file);
        let got = segs(&ack, &["AK5", "IK5", "AK9", "TA1"]);
        for w in *want {
            assert!(got.iter().any(|g| g == w), "{file}: want {w}, got {got:?}");
        }
    }
}

/// A clean set under an invalid ISA (TA1 015) is rejected with its interchange: code 5,
/// the cause in the TA1.
#[test]
fn set_under_a_rejected_interchange_gets_a_code() {
    let text = "ISA*00*          *00*          *ZZ*PARTNER        *ZZ*US             *240131*3399*U*00401*000000007*0*P*>~\nGS*PO*PARTNER*US*20240131*1100*7*X*004010~\nST*850*0001~\nBEG*00*SA*PO1**20240131~\nPO1*1*2*EA*3**VN*X~\nSE*4*0001~\nGE*1*7~\nIEA*1*000000007~\n";
    let ack = ack_text(&read_text(format().as_ref(), text));
    assert_eq!(
        segs(&ack, &["AK5", "AK9", "TA1"]),
        vec!["AK5*R*5", "AK9*R*1*1*0", "TA1*000000007*240131*3399*R*015"],
        "{ack}"
    );
}

/// A GS without GS08 is answered AK905 2 "version not supported", not 6.
#[test]
fn missing_gs08_is_version_not_supported() {
    let text = "ISA*00*          *00*          *ZZ*PARTNER        *ZZ*US             *240131*1100*U*00401*000000007*0*P*>~\nGS*PO*PARTNER*US*20240131*1100*7*X*~\nST*850*0001~\nBEG*00*SA*PO1**20240131~\nSE*3*0001~\nGE*1*7~\nIEA*1*000000007~\n";
    let ack = ack_text(&read_text(format().as_ref(), text));
    assert_eq!(
        segs(&ack, &["AK5", "AK9"]),
        vec!["AK5*R*5", "AK9*R*1*1*0*2"],
        "{ack}"
    );
}

/// Over the whole corpus: every rejected set carries a code, and every rejected or partly
/// accepted group either carries one itself or holds a rejected set that does, or its
/// interchange's TA1 rejects with a note code.
#[test]
fn every_rejection_in_every_corpus_ack_carries_a_reason() {
    let f = format();
    let dir = root().join("tests/corpus/x12");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") || name.ends_with(".json") {
            continue;
        }
        let r = read_all(f.as_ref(), &e.path());
        for a in &r.acks {
            let text = a.content.text_lossy();
            let ta1_rejects = segs(&text, &["TA1"])
                .iter()
                .any(|t| t.split('*').nth(4) == Some("R"));
            for group in text.split("\nGS*").skip(1) {
                checked += 1;
                let set_acks = segs(group, &["AK5", "IK5"]);
                for s in &set_acks {
                    assert!(
                        s != "AK5*R" && s != "IK5*R",
                        "{name}: {s} without a code\n{text}"
                    );
                }
                let ak9 = &segs(group, &["AK9"])[0];
                let fields: Vec<&str> = ak9.split('*').collect();
                if fields[1] != "A" && fields.len() < 6 {
                    let coded_set = set_acks
                        .iter()
                        .any(|s| s.starts_with("AK5*R*") || s.starts_with("IK5*R*"));
                    assert!(
                        coded_set || ta1_rejects,
                        "{name}: {ak9} with no reason anywhere\n{text}"
                    );
                }
            }
        }
    }
    assert!(checked > 200, "{checked}");
}

/// Regression (hardening item 20): a 997 answering a 003050 group was sent as 004010.
#[test]
fn regression_997_for_a_003050_group_was_sent_as_004010() {
    let text = "ISA*00*          *00*          *ZZ*PARTNER        *ZZ*US             *240131*1100*U*00305*000000007*0*P*>~\nGS*PO*PARTNER*US*20240131*1100*7*X*003050~\nST*850*0001~\nBEG*00*SA*PO1**20240131~\nSE*3*0001~\nGE*1*7~\nIEA*1*000000007~\n";
    let ack = ack_text(&read_text(format().as_ref(), text));
    assert!(ack.contains("*U*00305*"), "{ack}");
    let gs = &segs(&ack, &["GS"])[0];
    assert!(gs.ends_with("*X*003050"), "{gs}");
    assert!(ack.contains("ST*997*0001~"), "{ack}");
}

#[test]
fn corpus_groups_are_answered_in_their_release() {
    let f = format();
    for (file, gs08, kind) in [
        // 003010 is older than every 997 whose code lists we can fill: nearest is 003040.
        ("stupidedi_003010_RA820_pass_1.edi", "003040", "997"),
        ("oboe_5-850.x12", "003040", "997"),
        ("bots_850-004010VICS-01.x12", "004010", "997"),
        ("pyx12_simple_837p.txt", "004010", "997"),
        ("lfh_demo.example1.837", "005010X231A1", "999"),
    ] {
        let path = root().join("tests/corpus/x12").join(file);
        if !path.exists() {
            panic!("missing corpus file {file}");
        }
        let ack = corpus_ack(f.as_ref(), file);
        let gs = segs(&ack, &["GS"]);
        assert!(!gs.is_empty(), "{file}: no group acknowledged\n{ack}");
        assert!(
            gs.iter().all(|g| g.ends_with(&format!("*X*{gs08}"))),
            "{file}: {gs:?}"
        );
        assert!(ack.contains(&format!("ST*{kind}*0001")), "{file}\n{ack}");
    }
}
