//! Conformance of the X12 reader on the real-world corpus in `tests/corpus/x12` (203 files
//! from 30 public projects, labelled VALID/INVALID/UNLABELLED by their sources; see
//! `tests/corpus/x12/PROVENANCE.md`). Every file is read through the bundled `formats/`
//! plus the test partner settings in `tests/x12-partners/`, which declare the tolerated
//! defect classes the VALID files need.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    let tol: Vec<String> = r.units.iter().flat_map(|u| u.eval.tolerated.clone()).collect();
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

#[test]
fn explore() {
    let f = x12_format();
    let dir = root().join("tests/corpus/x12");
    let manifest: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    for e in manifest {
        let file = e["file"].as_str().unwrap().trim_start_matches("x12/");
        let r = read_all(f.as_ref(), &dir.join(file));
        println!("{} {} {}", &e["validity"].as_str().unwrap()[..3], file, summary(&r));
    }
    let _ = Path::new("");
    let _ = UnitStatus::Applied;
}

#[test]
fn explain() {
    let Ok(files) = std::env::var("X12_EXPLAIN") else { return };
    let f = x12_format();
    for file in files.split(',') {
        let r = read_all(f.as_ref(), &root().join("tests/corpus/x12").join(file));
        println!("== {file}: {:?}", r.error);
        for u in &r.units {
            for (i, v) in u.eval.verdicts.iter().enumerate() {
                if let LineVerdict::Rejected(reason) = v {
                    println!("  {} | {} | {:?}", u.lines[i].pos, u.lines[i].raw, reason);
                }
            }
            for e in &u.eval.unit_errors {
                println!("  unit {}: {:?}", u.label, e);
            }
            if !u.eval.records.is_empty() && std::env::var("X12_RECORDS").is_ok() {
                println!("  {}", serde_json::to_string(&u.eval.records[0].body).unwrap());
            }
        }
        if std::env::var("X12_ACKS").is_ok() {
            for a in &r.acks {
                println!("{}", String::from_utf8_lossy(&a.content));
            }
        }
    }
}
