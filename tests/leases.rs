//! Leases and fencing with real processes: a run stopped (SIGSTOP) past its lease has its
//! file taken over by another run, which finishes it; when the stopped one goes on, the
//! ledger refuses its writes and it lets go of the file cleanly. The outputs are the bytes
//! of one uninterrupted run.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{ledger_counts, orders_csv, text, Work};

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn committed(w: &Work) -> i64 {
    rusqlite::Connection::open(w.dir.join("ledger.sqlite"))
        .ok()
        .and_then(|c| {
            c.query_row(
                "SELECT COALESCE(MAX(committed_seq), 0) FROM files",
                [],
                |r| r.get(0),
            )
            .ok()
        })
        .unwrap_or(0)
}

/// Whether the ledger's write lock is free (the stopped process is not inside a write).
fn write_lock_free(w: &Work) -> bool {
    let c = rusqlite::Connection::open(w.dir.join("ledger.sqlite")).unwrap();
    c.busy_timeout(Duration::ZERO).unwrap();
    let free = c.execute_batch("BEGIN IMMEDIATE").is_ok();
    let _ = c.execute_batch("ROLLBACK");
    free
}

/// Stops `child` once it has committed a batch, outside any write transaction: with SQLite,
/// a process stopped inside one keeps every other writer out until it goes on.
fn stop_between_writes(w: &Work, child: &mut Child) {
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(60), "never stopped");
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        if committed(w) > 0 {
            signal(child.id(), "-STOP");
            if write_lock_free(w) {
                return;
            }
            signal(child.id(), "-CONT");
        }
        std::thread::sleep(Duration::from_millis(3));
    }
}

#[test]
fn a_run_stopped_past_its_lease_is_taken_over_and_its_late_writes_are_refused() {
    let input = orders_csv(12_000, 40, "L");
    let w = Work::new(300);
    w.set("lease_seconds = 60", "lease_seconds = 1");
    w.drop_file("orders-lease.csv", &input);

    let mut stopped = w
        .cmd()
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    stop_between_writes(&w, &mut stopped);
    std::thread::sleep(Duration::from_millis(1500));

    // The other run takes the file over from the stopped one and finishes it.
    let taker = w.run(&["run"]);
    assert_eq!(taker.status.code(), Some(1), "{}", text(&taker)); // rejects: exit 1
    let shown = text(&taker);
    assert!(shown.contains("taking the file over from run 1"), "{shown}");
    assert!(shown.contains("applied_with_rejects"), "{shown}");

    // The stopped one goes on: its next write is refused, and it lets go cleanly.
    signal(stopped.id(), "-CONT");
    let out = stopped.wait_with_output().unwrap();
    let late = text(&out);
    assert_eq!(out.status.code(), Some(0), "{late}");
    assert!(late.contains("taken over by run 2"), "{late}");
    assert!(late.contains("taken_over"), "{late}");

    // The same bytes as one run that was never stopped.
    let one = Work::new(300);
    one.drop_file("orders-lease.csv", &input);
    let out = one.run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for sub in ["outbox", "archive", "reports"] {
        assert_eq!(w.snapshot(sub), one.snapshot(sub), "{sub} differs");
    }
    assert_eq!(ledger_counts(&w), ledger_counts(&one));
    // Nothing the stopped run staged late is left behind.
    assert_eq!(
        w.snapshot("work").keys().collect::<Vec<_>>(),
        one.snapshot("work").keys().collect::<Vec<_>>()
    );
    let again = w.run(&["run"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("nothing to do"), "{}", text(&again));
}
