//! Paths in the ledger are relative to the configured folders: a workspace moved (or a
//! share mounted elsewhere by another host) still finds its archived inputs, reports and
//! corrections files through the ledger.

mod common;

use std::process::Command;

use common::{bin, orders_csv, text, Work};

#[test]
fn a_moved_workspace_still_finds_its_archive_reports_and_corrections() {
    let w = Work::new(100);
    w.drop_file("orders-moved.csv", &orders_csv(30, 7, "M"));
    let out = w.run(&["run"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejects ask for a person: {}",
        text(&out)
    );

    // Written relative to the folder each is in.
    let row = w.query("SELECT source_path, final_path, report_path, corrections_path FROM files");
    let col = |i: usize| row[0][i].clone().unwrap();
    let (source, fin, report, corrections) = (col(0), col(1), col(2), col(3));
    assert_eq!(source, "inbox:orders-moved.csv");
    assert!(fin.starts_with("archive:"), "{fin}");
    assert!(report.starts_with("reports:"), "{report}");
    assert!(corrections.starts_with("reports:"), "{corrections}");
    let staged = w.query("SELECT staged_path FROM chunks LIMIT 1")[0][0]
        .clone()
        .unwrap();
    assert!(staged.starts_with("work:"), "{staged}");

    // The whole workspace moves; the old place is gone.
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("moved");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&w.dir)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::remove_dir_all(&w.dir).unwrap();
    let config = moved.join("tallyman.toml");

    let ledger = {
        let cfg = tallyman::config::Config::load(&config).unwrap();
        tallyman::ledger::Ledger::open_in(&cfg.paths).unwrap()
    };
    let f = ledger.find_files("orders-moved.csv").unwrap().remove(0);
    for p in [
        f.final_path.clone().unwrap(),
        f.report_path.clone().unwrap(),
        f.corrections_path.clone().unwrap(),
    ] {
        assert!(p.starts_with(moved.to_str().unwrap()), "{p}");
        assert!(std::path::Path::new(&p).is_file(), "{p} is there");
    }
    assert_eq!(
        f.source_path,
        moved.join("inbox/orders-moved.csv").display().to_string()
    );
    // A file is found by where it is now, and its rejects name the report there.
    let found = ledger.find_files(f.final_path.as_deref().unwrap()).unwrap();
    assert_eq!(found.len(), 1);
    let out = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .args(["rejects", "orders-moved.csv"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!("report: {}", f.report_path.as_deref().unwrap())),
        "{}",
        text(&out)
    );
}
