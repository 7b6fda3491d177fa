//! The command line as an operator uses it: the real binary in scratch directories.

mod common;

use common::*;

const HEADER: &str =
    "order_no,line_no,order_date,customer_id,sku,description,quantity,unit_price,currency\n";

#[test]
fn init_then_check_is_clean() {
    let w = Work::new(100);
    let out = w.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok:"));
    // Again on an existing directory: the config is left alone, missing folders return.
    w.set("settle_seconds = 0", "settle_seconds = 7");
    let before = std::fs::read(w.config()).unwrap();
    std::fs::remove_dir(w.dir.join("acks")).unwrap();
    let again = std::process::Command::new(bin())
        .arg("init")
        .arg(&w.dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(
        std::fs::read(w.config()).unwrap(),
        before,
        "never overwrites a config"
    );
    assert!(w.dir.join("acks").is_dir());
    assert!(String::from_utf8_lossy(&again.stdout).contains("created missing folder: acks"));
}

#[test]
fn check_reports_every_error_in_config_and_formats_at_once() {
    let w = Work::new(100);
    std::fs::write(
        w.config(),
        "[paths]\ninbox = \"a\"\narchive = \"a\"\n[processing]\nbatch_lines = 0\n",
    )
    .unwrap();
    std::fs::create_dir_all(w.dir.join("formats")).unwrap();
    std::fs::write(
        w.dir.join("formats/broken.toml"),
        "kind = \"csv\"\nname = [\n",
    )
    .unwrap();
    std::fs::write(w.dir.join("formats/unknown.toml"), "kind = \"edifact\"\n").unwrap();
    let out = w.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("tallyman.toml:3:") && s.contains("same folder"),
        "{s}"
    );
    assert!(s.contains("batch_lines"), "{s}");
    assert!(s.contains("broken.toml:"), "{s}");
    assert!(s.contains("unknown kind 'edifact'"), "{s}");
}

#[test]
fn run_exit_codes_follow_the_outcome() {
    let w = Work::new(100);
    let empty = w.run(&["run"]);
    assert_eq!(empty.status.code(), Some(0), "{}", text(&empty));
    assert!(String::from_utf8_lossy(&empty.stdout).contains("nothing to do"));

    w.drop_file("orders-good.csv", &orders_csv(5, 0, "G"));
    let good = w.run(&["run"]);
    assert_eq!(good.status.code(), Some(0), "{}", text(&good));
    assert!(
        String::from_utf8_lossy(&good.stdout).contains("applied"),
        "{}",
        text(&good)
    );

    w.drop_file("orders-mixed.csv", &orders_csv(10, 5, "M"));
    let mixed = w.run(&["run"]);
    assert_eq!(mixed.status.code(), Some(1), "{}", text(&mixed));
    assert!(
        String::from_utf8_lossy(&mixed.stdout).contains("applied_with_rejects"),
        "{}",
        text(&mixed)
    );

    // Broken config: the run itself fails.
    std::fs::write(w.config(), "[processing]\nbatch_lines = 0\n").unwrap();
    assert_eq!(w.run(&["run"]).status.code(), Some(2));
}

#[test]
fn rejects_lists_the_bad_line_and_its_siblings() {
    let w = Work::new(100);
    let body = format!(
        "{HEADER}A1,1,2026-11-01,C1,S1,ok,1,2.00,EUR\nA1,2,2026-11-01,C1,S2,bad qty,-3,2.00,EUR\nA2,1,2026-11-02,C2,S1,fine,4,1.50,USD\n{}",
        // Enough good orders to stay under the layout's 25% reject ratio.
        (3..=6).map(|i| format!("A{i},1,2026-11-02,C2,S1,fine,4,1.50,USD\n")).collect::<String>()
    );
    w.drop_file("orders-r.csv", body.as_bytes());
    assert_eq!(w.run(&["run"]).status.code(), Some(1));
    let out = w.run(&["rejects", "orders-r.csv", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rejects = v[0]["rejects"].as_array().unwrap();
    assert_eq!(rejects.len(), 2, "{v:#}");
    let bad = rejects
        .iter()
        .find(|r| r["line"] == 3)
        .expect("line 3 rejected");
    assert_eq!(bad["field"], "quantity");
    assert_eq!(bad["value"], "-3");
    assert!(bad["byte"].as_i64().unwrap() > 0);
    let sibling = rejects
        .iter()
        .find(|r| r["line"] == 2)
        .expect("sibling line 2 rejected with its order");
    assert_eq!(sibling["rule"], "rejected-with-document");
    // The CSV report opens in Excel: BOM first.
    let reports = w.snapshot("reports");
    let (_, csv) = reports
        .iter()
        .find(|(n, _)| n.ends_with(".rejects.csv"))
        .expect("a report was written");
    assert!(csv.starts_with(&[0xEF, 0xBB, 0xBF]));
    // And A2 made it to the outbox.
    let outbox = w.snapshot("outbox");
    let all: String = outbox
        .values()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(all.contains("\"A2\"") && !all.contains("\"A1\""), "{all}");
    let table = w.run(&["rejects"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("rejected-with-document"),
        "{}",
        text(&table)
    );
}

#[test]
fn intake_ignores_partial_files_and_honours_done_markers_and_settle_time() {
    let w = Work::new(100);
    let cfg = std::fs::read_to_string(w.config())
        .unwrap()
        .replace("settle_seconds = 0", "settle_seconds = 3600");
    std::fs::write(w.config(), cfg).unwrap();
    w.drop_file("orders-a.csv.part", &orders_csv(1, 0, "P"));
    w.drop_file(".orders-b.csv", &orders_csv(1, 0, "H"));
    w.drop_file("orders-c.csv.tmp", &orders_csv(1, 0, "T"));
    w.drop_file("orders-fresh.csv", &orders_csv(1, 0, "F"));
    w.drop_file("orders-marked.csv", &orders_csv(1, 0, "D"));
    w.drop_file("orders-marked.csv.done", b"");
    let out = w.run(&["run"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("orders-marked.csv") && !s.contains("orders-fresh.csv"),
        "{}",
        text(&out)
    );
    let inbox = w.snapshot("inbox");
    assert!(inbox.contains_key("orders-fresh.csv") && inbox.contains_key("orders-a.csv.part"));
    assert!(
        !inbox.contains_key("orders-marked.csv.done"),
        "marker consumed"
    );
}

#[test]
fn process_reports_duplicates_unless_forced_and_status_counts_them() {
    let w = Work::new(100);
    let f = w.dir.join("orders-manual.csv");
    std::fs::write(&f, orders_csv(3, 0, "X")).unwrap();
    let fs = f.to_str().unwrap();
    assert_eq!(w.run(&["process", fs]).status.code(), Some(0));
    let dup = w.run(&["process", fs]);
    assert_eq!(dup.status.code(), Some(1), "{}", text(&dup));
    assert!(String::from_utf8_lossy(&dup.stdout).contains("duplicate_file"));
    // The same bytes under another name in the inbox are a duplicate too.
    w.drop_file("orders-renamed.csv", &orders_csv(3, 0, "X"));
    let run = w.run(&["run"]);
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("duplicate_file"),
        "{}",
        text(&run)
    );
    assert!(w.dir.join("rejected/orders-renamed.csv").exists());
    let forced = w.run(&["process", fs, "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    let status = w.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let applied = v["files_by_outcome"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["outcome"] == "applied")
        .unwrap();
    assert_eq!(applied["files"], 2, "{v:#}");
    assert!(f.exists(), "process never moves the operator's file");
}

#[test]
fn demo_runs_twice_and_shows_where_things_are() {
    let tmp = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = std::process::Command::new(bin())
            .current_dir(tmp.path())
            .arg("demo")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(
            s.contains("applied") && s.contains("Where things are"),
            "{s}"
        );
        assert!(
            s.contains("rejected"),
            "the samples include rejected lines: {s}"
        );
        // Intake to ERP: the records reach the simulated ERP, each once.
        assert!(
            s.contains("erp: 44 delivered now; 0 waiting") && s.contains("duplicates: 0"),
            "{s}"
        );
    }
    // It refuses to wipe a folder that is not a demo.
    let other = tmp.path().join("precious");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "x").unwrap();
    let out = std::process::Command::new(bin())
        .arg("demo")
        .arg("--dir")
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(other.join("keep.txt").exists());
}

#[test]
fn watch_picks_up_a_file_dropped_while_it_runs() {
    let w = Work::new(100);
    let mut child = w
        .cmd()
        .arg("watch")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Written under a temporary name, then renamed in: the way partners should deliver.
    let tmp = w.dir.join("inbox/orders-w.csv.part");
    std::fs::write(&tmp, orders_csv(2, 0, "W")).unwrap();
    std::fs::rename(&tmp, w.dir.join("inbox/orders-w.csv")).unwrap();
    let start = std::time::Instant::now();
    let archived = w.dir.join("archive/orders-w.csv");
    while !archived.exists() && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(archived.exists(), "watch processed the file");
}

#[test]
fn spreadsheet_rejects_name_the_cell_and_row() {
    let w = Work::new(100);
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples/inbox/pricelist-acme-2026-11.xlsx");
    let out = w.run(&["process", sample.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json = w.run(&["rejects", "pricelist-acme-2026-11.xlsx", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let rejects = v[0]["rejects"].as_array().unwrap();
    let price = rejects
        .iter()
        .find(|r| r["field"] == "price")
        .expect("negative price rejected");
    assert_eq!(price["locator"], "Prices!E8", "{price:#}");
    assert_eq!(price["record"], 8, "sheet row number");
    assert_eq!(price["value"], "-5.2");
    let table = String::from_utf8_lossy(&w.run(&["rejects", "pricelist-acme-2026-11.xlsx"]).stdout)
        .into_owned();
    assert!(table.contains("Prices!E8"), "{table}");
}
