//! `status` shows who is working: each run's host and pid, the file it holds, how long
//! since it was last seen working, and whether its process is gone.

mod common;

use common::{orders_csv, stop_mid_file, text, Work};

fn workers(w: &Work) -> Vec<serde_json::Value> {
    let out = w.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["workers"].as_array().unwrap().clone()
}

#[test]
fn status_shows_the_worker_holding_a_file_and_one_whose_process_is_gone() {
    let w = Work::new(300);
    // Big enough that the run is still reading it when the poll below sees its first
    // commit: 6,000 orders were read whole first under load, and 30,000 once, with a
    // release build and valgrind busy on both cores.
    w.drop_file("orders-held.csv", &orders_csv(60_000, 0, "W"));
    let mut child = w.cmd().arg("run").spawn().unwrap();
    // Stopped once it has committed a batch of the file, so it holds it for certain.
    stop_mid_file(&w, &mut child, |_| true);
    let ws = workers(&w);
    assert_eq!(ws.len(), 1, "{ws:?}");
    assert_eq!(ws[0]["command"], "run");
    assert_eq!(ws[0]["pid"], child.id());
    assert_eq!(ws[0]["file_name"], "orders-held.csv");
    assert_eq!(ws[0]["alive"], true);
    assert!(ws[0]["seen_secs_ago"].as_f64().unwrap() < 30.0, "{ws:?}");
    let lease = ws[0]["lease_secs_left"].as_f64().unwrap();
    assert!(lease > 0.0 && lease <= 60.0, "{ws:?}");
    let shown = String::from_utf8_lossy(&w.run(&["status"]).stdout).into_owned();
    assert!(
        shown.contains("Workers (1):") && shown.contains("orders-held.csv"),
        "{shown}"
    );

    // Killed: still listed, as gone, until the next run takes over.
    child.kill().unwrap();
    child.wait().unwrap();
    let ws = workers(&w);
    assert_eq!(ws[0]["alive"], false, "{ws:?}");
    assert!(String::from_utf8_lossy(&w.run(&["status"]).stdout).contains("(process gone)"));
    let out = w.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        workers(&w).is_empty(),
        "the dead run is buried, the new one finished"
    );
}
