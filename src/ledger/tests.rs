//! The ledger on its own: schema, claims, the stall guard's counting, corruption.

use super::*;
use crate::format::UnitStatus;

mod claims;
mod late;
mod store;
mod units;

fn nf(fp: &str) -> NewFile<'_> {
    NewFile {
        fingerprint: fp,
        name: "a.csv",
        raw_name: None,
        source_path: "/x/a.csv",
        size: 3,
        forced: false,
    }
}

fn write_two_units(l: &mut Ledger, file: i64) {
    let tx = l.batch(file).unwrap();
    let mut n = Counts::default();
    for seq in 0..2i64 {
        tx.take_key("product", &format!("K{seq}"), file, seq, false)
            .unwrap();
        // Applied lines get no row: the unit is packed (see runs.rs) until it is lost.
        let unit = UnitRow {
            key: Some(format!("K{seq}")),
            ..unit_row(seq, UnitStatus::Applied)
        };
        tx.write_units(file, &[unit], &[]).unwrap();
        n.add_line("applied");
        n.add_unit(UnitStatus::Applied);
    }
    let marks = ChunkMarks { next: 1, synced: 1 };
    tx.advance(file, 2, 2, marks, &n).unwrap();
    tx.commit().unwrap();
}

fn unit_row(seq: i64, status: UnitStatus) -> UnitRow {
    UnitRow {
        seq,
        label: format!("u{seq}"),
        status,
        key: None,
        first_ordinal: seq,
        line_count: 1,
        pos: crate::unit::Position::new(seq as u64 + 1, 0, seq as u64 + 1),
        spans: None,
        reasons: vec![],
        detail: serde_json::Value::Null,
        tolerated: vec![],
    }
}
