//! The reader over small files: a group whose key comes back after it closed, a group cut
//! at `max_unit_lines`, the corrections file's error column wherever it stands, fields bound
//! in the file's column order or not, over-long records, and a header lacking a column.

use super::super::tests::{format, run, v, DEF};
use crate::format::testing::{ctx_for, read_all_with};
use crate::format::UnitStatus;

#[test]
fn a_reappearing_group_is_rejected_as_split() {
    let got = run(
        "order_no,qty,cur\nA,1,EUR\nA,2,EUR\nB,1,USD\nA,3,EUR\n",
        None,
    );
    use UnitStatus::*;
    assert_eq!(
        got,
        vec![
            ("header".into(), Skipped, v(&["skip:header"])),
            ("order A".into(), Applied, v(&["ok", "ok"])),
            ("order B".into(), Applied, v(&["ok"])),
            ("order A".into(), Rejected, v(&["group-split"])),
        ]
    );
}

#[test]
fn an_oversized_group_is_rejected_in_bounded_chunks() {
    let limits = crate::format::Limits {
        max_unit_lines: 2,
        ..Default::default()
    };
    let got = run(
        "order_no,qty,cur\nA,1,EUR\nA,1,EUR\nA,1,EUR\nA,1,EUR\nA,1,EUR\nB,1,EUR\n",
        Some(limits),
    );
    let shape: Vec<(String, usize, Vec<String>)> =
        got.into_iter().map(|(l, _, r)| (l, r.len(), r)).collect();
    let big = v(&["group-too-large", "group-too-large"]);
    assert_eq!(
        shape,
        vec![
            ("header".into(), 1, v(&["skip:header"])),
            ("order A".into(), 2, big.clone()),
            ("order A".into(), 2, big),
            ("order A".into(), 1, v(&["group-too-large"])),
            ("order B".into(), 1, v(&["ok"])),
        ]
    );
}

#[test]
fn corrections_error_column_is_never_data_wherever_it_stands() {
    // Appended (as written), moved to the front, and short rows: the column is dropped
    // before binding and column counting, so "-1" in it is not a quantity.
    let got = run(
        "order_no,qty,cur,tallyman_error\nA,1,EUR,\"min: qty -1\"\nB,2,USD,\"x,y\"\n",
        None,
    );
    use UnitStatus::*;
    assert_eq!(got[1], ("order A".into(), Applied, v(&["ok"])));
    assert_eq!(got[2], ("order B".into(), Applied, v(&["ok"])));
    let got = run(
        "TALLYMAN_ERROR ,order_no,qty,cur\n-1,A,1,EUR\n,B,2,USD\nC,3,EUR\n",
        None,
    );
    assert_eq!(got[1].1, Applied);
    assert_eq!(got[2].1, Applied);
    // A row that lacks the column entirely is one column short, as it would be anyway.
    assert_eq!(got[3].2, v(&["column-count"]));
}

/// Cells move straight from row to job where the fields are the file's columns in
/// order, and are picked out by name otherwise: both read the same documents, and a
/// row of too few or too many columns is rejected the same way.
#[test]
fn fields_in_the_files_column_order_or_not_read_alike() {
    let read = |data: &str| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, data).unwrap();
        let r = read_all_with(&format(DEF), &p, &ctx_for(&p));
        assert!(r.error.is_none(), "{:?}", r.error);
        r.units
            .iter()
            .map(|u| format!("{:?} {:?}", u.eval.verdicts, u.eval.records))
            .collect::<Vec<_>>()
    };
    let in_order = read("order_no,qty,cur\nA,1,EUR\nA,2,EUR\nB,3,USD\nC,4\nD,5,EUR,x\n");
    let shuffled = read("cur,qty,order_no\nEUR,1,A\nEUR,2,A\nUSD,3,B\nEUR,4\nEUR,5,D,x\n");
    assert_eq!(in_order.len(), 5, "{in_order:?}");
    assert!(in_order[1].contains("quantity") && in_order[2].contains("USD"));
    assert!(in_order[3].contains("column-count"), "{}", in_order[3]);
    assert!(in_order[4].contains("column-count"), "{}", in_order[4]);
    assert_eq!(in_order, shuffled);
}

#[test]
fn over_long_records_are_refused() {
    let limits = crate::format::Limits {
        max_record_bytes: 64,
        ..Default::default()
    };
    let long = "x".repeat(500);
    let got = run(
        &format!("order_no,qty,cur\nA,1,EUR\n{long},1,EUR\nC,1,EUR\n"),
        Some(limits),
    );
    assert_eq!(got[2].2, v(&["record-too-long"]));
    assert_eq!(got[3].1, UnitStatus::Applied);
}

#[test]
fn missing_header_column_is_a_positioned_file_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.csv");
    std::fs::write(&p, "\norder_no,quantity\nA,1\n").unwrap();
    let f = format(DEF);
    let r = read_all_with(&f, &p, &ctx_for(&p));
    let e = r.error.unwrap();
    assert_eq!(e.reason.rule, "header");
    assert_eq!(e.pos.map(|p| (p.line, p.byte)), Some((2, 1)));
    assert!(
        e.reason.message.contains("'qty', 'cur'"),
        "{}",
        e.reason.message
    );
}
