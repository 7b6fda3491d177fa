//! Conformance of the X12 reader on the real-world corpus in `tests/corpus/x12` (203 files
//! from 30 public projects, labelled VALID/INVALID/UNLABELLED by their sources; see
//! `tests/corpus/x12/PROVENANCE.md`). Every file is read through the bundled `formats/`
//! plus the test partner settings in `tests/x12-partners/`, which declare the tolerated
//! defect classes the VALID files need.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tallyman::format::testing::{read_all, ReadResult};
use tallyman::format::{defs::read_defs, Diagnostics, Format, UnitStatus};
use tallyman::unit::LineVerdict;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn x12_format() -> std::sync::Arc<dyn Format> {
    let mut d = Diagnostics::default();
    let mut defs = read_defs(&root().join("formats/x12"), &mut d);
    defs.extend(read_defs(&root().join("tests/x12-partners"), &mut d));
    assert!(d.is_empty(), "{:?}", d.errors);
    let refs: Vec<_> = defs.iter().collect();
    let mut f = tallyman::x12::load(&refs, &mut d);
    assert!(d.is_empty(), "{:?}", d.errors);
    f.remove(0)
}

/// Every rule that rejected something in the file (file error first).
fn rules(r: &ReadResult) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = &r.error {
        out.push(e.reason.rule.clone());
    }
    for u in &r.units {
        for v in &u.eval.verdicts {
            if let LineVerdict::Rejected(reason) = v {
                out.push(reason.rule.clone());
            }
        }
        out.extend(u.eval.unit_errors.iter().map(|e| e.rule.clone()));
    }
    out
}

fn summary(r: &ReadResult) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for u in &r.units {
        *counts.entry(u.status().as_str()).or_default() += 1;
    }
    let tol: Vec<String> = r
        .units
        .iter()
        .flat_map(|u| u.eval.tolerated.clone())
        .collect();
    let mut rs = rules(r);
    rs.dedup();
    format!(
        "{:?} err={} rules={:?} tol={:?} acks={}",
        counts,
        r.error.as_ref().map(|e| e.to_string()).unwrap_or_default(),
        rs,
        tol,
        r.acks.len()
    )
}

/// What a file must do. `Reject` lists rules that must ALL appear (file error or any
/// rejected segment/set); `Tolerated` lists the tolerances that must be recorded.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Tolerated(&'static [&'static str]),
    Reject(&'static [&'static str]),
    /// A source-labelled defect we do not detect, with why; the file is accepted.
    Undetected(&'static str),
    /// A VALID file we reject on purpose, with why.
    Disagree(&'static [&'static str], &'static str),
}

use Expect::*;

const NO_DEF: &str = "defect inside a set we have no definition for (HIPAA/other sets are envelope- and SE-checked only)";

/// Per-file expectations; VALID files not listed must be accepted with no tolerance.
const TABLE: &[(&str, Expect)] = &[
    // VALID under a declared tolerance (tests/x12-partners/*.toml)
    ("stupidedi_003010_RA820_pass_1.edi", Tolerated(&["x12-isa-width"])),
    ("stupidedi_004010_FA997_pass_1.edi", Tolerated(&["x12-isa-width"])),
    ("stupidedi_004010_SQ866_pass_1.edi", Tolerated(&["x12-isa-width"])),
    ("moov_example_stp_820.txt", Tolerated(&["x12-isa-width"])),
    ("stupidedi_X217_HI278_pass_se_mismatch.edi", Tolerated(&["x12-se01-count"])),
    ("lfh_subscriber-health-benefit-check-error.271", Tolerated(&["x12-se02-control"])),
    ("imsweb_x12_valid.txt", Tolerated(&["x12-se01-count"])),
    ("imsweb_x12_valid_different_separators.txt", Tolerated(&["x12-se01-count"])),
    ("imsweb_x12_multiple_gs.txt", Tolerated(&["x12-se01-count", "x12-iea01-count"])),
    ("imsweb_x12_multiple_isa.txt", Tolerated(&["x12-se01-count"])),
    ("imsweb_x12_multiple_st.txt", Tolerated(&["x12-se01-count", "x12-ge01-count"])),
    ("imsweb_x12_999_accepted.txt", Tolerated(&["x12-iea02-control"])),
    ("imsweb_x270.txt", Tolerated(&["x12-se01-count", "x12-control-padding", "x12-iea02-control"])),
    ("imsweb_x271.txt", Tolerated(&["x12-se01-count", "x12-iea02-control"])),
    ("ediengine_MultipleInterchangesAndGroups.edi", Tolerated(&["x12-control-padding"])),
    // VALID files we reject on purpose
    ("staedi_empty997.edi", Disagree(&["x12-missing-segment"], "a 997 with only ST/SE lacks the mandatory AK1 and AK9 (StAEDI used it as a structure test only)")),
    // INVALID: rejected for the source's reason
    ("pyx12_fail_no_IEA.txt", Reject(&["x12-missing-iea", "x12-se01-count"])),
    ("pyx12_trailer_errors.txt", Reject(&["x12-se01-count", "x12-ge02-control"])),
    ("pyx12_explicit_missing.txt", Reject(&["x12-missing-se"])),
    ("pyx12_ele.txt", Reject(&["x12-isa"])),
    ("pyx12_bad_elements.txt", Reject(&["x12-se01-count"])),
    ("pyx12_bad_header_looping.txt", Reject(&["x12-se01-count"])),
    ("stupidedi_003010_PO850_fail_1.edi", Reject(&["x12-isa-width"])),
    ("stupidedi_004010_PR855_fail_2.edi", Reject(&["x12-isa-width"])),
    ("stupidedi_004010_SC832_fail_1.edi", Reject(&["x12-isa-width"])),
    ("stupidedi_004010_SC832_fail_2.edi", Reject(&["x12-isa-width"])),
    ("stupidedi_004010_SH856_fail_2.edi", Reject(&["x12-se01-count"])),
    ("staedi_extraDelimiter997.edi", Reject(&["x12-type"])),
    ("staedi_invalid997.edi", Reject(&["x12-length", "x12-type"])),
    ("staedi_invalid997_min.edi", Reject(&["x12-ge02-control"])),
    ("staedi_invalid999.edi", Reject(&["x12-unexpected-segment", "x12-too-many-elements"])),
    ("staedi_nonnumeric_BIN01.edi", Reject(&["x12-binary"])),
    ("staedi_sample275_with_HL7_invalid_BIN01.edi", Reject(&["x12-binary"])),
    ("imsweb_x12_bad_first_line.txt", Reject(&["x12-isa-width"])),
    ("imsweb_x12_no_isa_line.txt", Reject(&["x12-no-isa"])),
    ("nodex12_271.edi", Reject(&["x12-missing-ge"])),
    ("ediengine_850.SyntaxNotes.ERR.edi", Reject(&["x12-syntax-note"])),
    ("ediengine_940_Failed_SE01.edi", Reject(&["x12-se01-count"])),
    ("ediengine_ControlNumbersMismatch.edi", Reject(&["x12-ge02-control", "x12-se02-control"])),
    ("ediengine_WrongGroupsAndTranCount.edi", Reject(&["x12-ge01-count"])),
    ("ediengine_NonEdi.edi", Reject(&["x12-no-isa"])),
    ("ryanco_example835NoISA.txt", Reject(&["x12-no-isa"])),
    ("gtl_empty-edi.edi", Reject(&["x12-no-isa"])),
    ("gtl_trimmed-isa-heading.edi", Reject(&["x12-isa-width"])),
    ("gtl_inconsistent-element-separator-isa-heading.edi", Reject(&["x12-isa"])),
    ("gtl_release-not-exist.edi", Reject(&["x12-isa"])),
    ("gtl_no-isa-heading.edi", Reject(&["x12-junk-after-iea"])),
    ("gtl_no-iea-trailer.edi", Reject(&["x12-missing-iea"])),
    ("gtl_no-gs-heading.edi", Reject(&["x12-ge-without-gs"])),
    ("gtl_no-ge-trailer.edi", Reject(&["x12-missing-ge"])),
    ("gtl_no-st-heading.edi", Reject(&["x12-se-without-st"])),
    ("gtl_no-se-trailer.edi", Reject(&["x12-missing-se"])),
    ("gtl_no-matching-gs-count.edi", Reject(&["x12-iea01-count"])),
    ("gtl_no-matching-st-count.edi", Reject(&["x12-ge01-count"])),
    ("gtl_no-matching-segment-count.edi", Reject(&["x12-se01-count"])),
    ("vscode_odd-separator.edi", Reject(&["x12-missing-se"])),
    ("vscode_bad-header.edi", Reject(&["x12-isa-width"])),
    // INVALID: the defect is not detected
    ("pyx12_mult_isa.txt", Undetected(NO_DEF)),
    ("pyx12_trailing_terms.txt", Undetected(NO_DEF)),
    ("pyx12_per_repeat.txt", Undetected(NO_DEF)),
    ("pyx12_blank1.txt", Undetected(NO_DEF)),
    ("pyx12_loop_counting.txt", Undetected(NO_DEF)),
    ("staedi_837-header-ref-only.edi", Undetected(NO_DEF)),
    ("imsweb_x12_bad_segment_identifier.txt", Undetected(NO_DEF)),
    ("imsweb_x12_bad_valid_code.txt", Undetected(NO_DEF)),
    ("imsweb_x12_segment_errors.txt", Undetected(NO_DEF)),
    ("imsweb_x12_missing_elements.txt", Undetected(NO_DEF)),
    ("imsweb_x12_loop_errors1_exceeds_max_1_parent.txt", Undetected(NO_DEF)),
    ("imsweb_x12_loop_errors3_missing_loops.txt", Undetected(NO_DEF)),
    ("imsweb_x12_segments_out_of_order.txt", Undetected(NO_DEF)),
    ("stupidedi_002001_PO830_fail_1.edi", Undetected("stupidedi has no 002001 grammar; we have no 830 definition and its sender is tolerated for the unpadded ISA")),
    ("stupidedi_002001_SH856_fail_1.edi", Undetected("stupidedi has no 002001 grammar; our 856 definition covers 004010/004060/005010 only")),
    ("stupidedi_004010_SS862_fail_1.edi", Undetected("wrapped ISA is read as a hard-wrapped file; no 862 definition")),
];

fn accepted(r: &ReadResult) -> bool {
    r.error.is_none() && r.units.iter().all(|u| u.status() != UnitStatus::Rejected)
}

/// Some set was accepted only envelope- and SE-checked: no definition could map it.
fn has_undefined_set(r: &ReadResult) -> bool {
    r.units.iter().any(|u| {
        u.eval.unmapped
            && u.eval.detail["note"]
                .as_str()
                .is_some_and(|n| n.starts_with("no definition"))
    })
}

/// The accepted outcome class, telling sets that were only checked from mapped ones.
fn accepted_class(r: &ReadResult, plain: &'static str, unmapped: &'static str) -> &'static str {
    if has_undefined_set(r) {
        unmapped
    } else {
        plain
    }
}

fn tolerated(r: &ReadResult) -> Vec<String> {
    let mut t: Vec<String> = r
        .units
        .iter()
        .flat_map(|u| u.eval.tolerated.clone())
        .collect();
    t.sort();
    t.dedup();
    t
}

/// Checks one file against its expectation; returns the outcome class for the summary.
fn check(file: &str, label: &str, r: &ReadResult) -> Result<&'static str, String> {
    let expect = TABLE.iter().find(|(f, _)| *f == file).map(|(_, e)| *e);
    let rs = rules(r);
    let tol = tolerated(r);
    let missing = |want: &[&str], have: &[String]| -> Vec<String> {
        want.iter()
            .filter(|w| !have.iter().any(|h| h == *w))
            .map(|w| w.to_string())
            .collect()
    };
    match (label, expect) {
        ("UNLABELLED", None) => Ok(if accepted(r) {
            accepted_class(r, "accepted", "accepted unmapped")
        } else {
            "rejected"
        }),
        ("VALID", None) => {
            if accepted(r) && tol.is_empty() {
                Ok(accepted_class(r, "accepted", "accepted unmapped"))
            } else {
                Err(format!("expected clean accept, got {}", summary(r)))
            }
        }
        (_, Some(Tolerated(want))) => {
            let m = missing(want, &tol);
            if accepted(r) && m.is_empty() {
                Ok(accepted_class(
                    r,
                    "accepted (tolerance)",
                    "accepted unmapped (tolerance)",
                ))
            } else {
                Err(format!("expected accept with {want:?}, got {}", summary(r)))
            }
        }
        (_, Some(Reject(want))) | (_, Some(Disagree(want, _))) => {
            let m = missing(want, &rs);
            let why = match expect {
                Some(Disagree(_, why)) => {
                    format!(" (we disagree with the label on purpose: {why})")
                }
                _ => String::new(),
            };
            if !accepted(r) && m.is_empty() {
                Ok(if label == "VALID" {
                    "rejected (disagree)"
                } else {
                    "rejected"
                })
            } else {
                Err(format!(
                    "expected rejection by {want:?}{why} (missing {m:?}), got {}",
                    summary(r)
                ))
            }
        }
        (_, Some(Undetected(why))) => {
            if accepted(r) {
                Ok(accepted_class(
                    r,
                    "accepted (undetected)",
                    "accepted unmapped (undetected)",
                ))
            } else {
                Err(format!(
                    "listed as undetected ({why}) but now rejected: {} — update the table",
                    summary(r)
                ))
            }
        }
        ("INVALID", None) => Err(format!("INVALID file has no expectation: {}", summary(r))),
        _ => Err(format!("unknown label {label}")),
    }
}

#[test]
fn corpus_conformance() {
    let f = x12_format();
    let dir = root().join("tests/corpus/x12");
    let manifest: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest.len(), 203);
    let mut table: BTreeMap<(String, &str), usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for e in &manifest {
        let file = e["file"].as_str().unwrap().trim_start_matches("x12/");
        let label = e["validity"].as_str().unwrap();
        let path = dir.join(file);
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_all(f.as_ref(), &path)));
        let r = match r {
            Ok(r) => r,
            Err(_) => {
                failures.push(format!("{file}: PANIC"));
                continue;
            }
        };
        // Every ack we produce is a complete interchange.
        for a in &r.acks {
            let text = a.content.text_lossy();
            if !text.starts_with("ISA*")
                || !text.trim_end().ends_with('~')
                || !text.contains("\nIEA*")
            {
                failures.push(format!("{file}: malformed ack {}", a.file_name));
            }
        }
        match check(file, label, &r) {
            Ok(class) => *table.entry((label.to_string(), class)).or_default() += 1,
            Err(msg) => failures.push(format!("{file} ({label}): {msg}")),
        }
    }
    println!("| label | outcome | files |\n|---|---|---|");
    for ((label, class), n) in &table {
        println!("| {label} | {class} | {n} |");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every table entry names a corpus file.
    for (f, _) in TABLE {
        assert!(dir.join(f).exists(), "table names a missing file {f}");
    }
}

/// pyx12's expected acks (`*.997.base`) as oracles for our AK5/AK9 verdicts, on the files
/// where our reading of the defect matches pyx12's.
#[test]
fn ack_verdicts_match_pyx12_oracles() {
    let f = x12_format();
    let dir = root().join("tests/corpus/x12");
    for (input, oracle) in [
        ("pyx12_simple_837p.txt", "pyx12_simple_837p.997.base"),
        ("pyx12_fail_no_IEA.txt", "pyx12_fail_no_IEA.997.base"),
        ("pyx12_bad_elements.txt", "pyx12_bad_elements.997.base"),
    ] {
        let r = read_all(f.as_ref(), &dir.join(input));
        let ours: String = r.acks.iter().map(|a| a.content.text_lossy()).collect();
        let theirs = std::fs::read_to_string(dir.join(oracle)).unwrap();
        let verdicts = |t: &str, seg: &str| -> Vec<String> {
            t.split('~')
                .map(str::trim)
                .filter(|s| s.starts_with(seg))
                .map(|s| s.split('*').nth(1).unwrap_or("").to_string())
                .collect()
        };
        for seg in ["AK5*", "AK9*", "TA1*"] {
            let (o, t) = (verdicts(&ours, seg), verdicts(&theirs, seg));
            if seg == "TA1*" && t.is_empty() {
                continue;
            }
            let (o, t) = if seg == "TA1*" {
                (
                    verdicts(&ours, seg)
                        .iter()
                        .map(|_| String::new())
                        .collect::<Vec<_>>(),
                    t.iter().map(|_| String::new()).collect(),
                )
            } else {
                (o, t)
            };
            assert_eq!(
                o, t,
                "{input}: {seg} verdicts differ\nours:\n{ours}\npyx12:\n{theirs}"
            );
        }
    }
}
