//! The PostgreSQL ledger under the failures a shared database brings: a worker killed -9
//! mid-file is finished by another, and a database restarted mid-run costs a wait, not a
//! file — each ending byte for byte as one uninterrupted run. The servers are real, started
//! by the tests (see common/pg.rs).

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::pg::PgServer;
use common::{committed, customers_csv, erp_sim, ledger_counts, orders_csv, text, Work};
use tallyman::erpsim::SimConfig;

const TOKEN: &str = "pg-token";

/// Starts `run` in the background with its output kept.
fn spawn_run(w: &Work) -> Child {
    w.spawn(&["run"], TOKEN)
}

/// Waits until `child` committed a batch of its file (it must still be running).
fn wait_for_a_commit(w: &Work, child: &mut Child) {
    let start = Instant::now();
    while committed(w) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no batch committed"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts that `w` ended exactly as `one`, a run that was never disturbed.
fn assert_same_outputs(w: &Work, one: &Work) {
    for sub in ["outbox", "archive", "reports"] {
        assert_eq!(w.snapshot(sub), one.snapshot(sub), "{sub} differs");
    }
    assert_eq!(ledger_counts(w), ledger_counts(one));
    assert_eq!(
        w.query(
            "SELECT name, state, outcome, lines_applied, lines_rejected FROM files ORDER BY name"
        ),
        one.query(
            "SELECT name, state, outcome, lines_applied, lines_rejected FROM files ORDER BY name"
        )
    );
}

#[test]
fn a_worker_killed_mid_file_is_finished_by_another_byte_for_byte() {
    let input = orders_csv(12_000, 40, "K");
    let w = Work::on_postgres(300);
    w.drop_file("orders-kill.csv", &input);
    let mut first = spawn_run(&w);
    wait_for_a_commit(&w, &mut first);
    first.kill().unwrap();
    first.wait().unwrap();

    // The next worker finds the dead run's file and finishes it from the last commit.
    let second = w.run(&["run"]);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second)); // rejects: exit 1
    assert!(
        text(&second).contains("applied_with_rejects"),
        "{}",
        text(&second)
    );

    let one = Work::on_postgres(300);
    one.drop_file("orders-kill.csv", &input);
    assert_eq!(one.run(&["run"]).status.code(), Some(1));
    assert_same_outputs(&w, &one);
}

#[test]
fn a_database_restarted_mid_run_costs_a_wait_not_a_file() {
    // A server of its own: the test restarts it.
    let server = PgServer::start();
    let input = orders_csv(2_500, 40, "R");
    let sim = erp_sim(TOKEN, SimConfig::default());
    let w = Work::plain(300);
    w.use_postgres(&server.create_database());
    w.add_erp_target(
        &sim.base_url(),
        "timeout_seconds = 5\nbackoff_base_ms = 50\nbackoff_cap_seconds = 1",
    );
    w.drop_file("customers-r.csv", &customers_csv(50, "RC"));
    w.drop_file("orders-restart.csv", &input);

    let mut worker = spawn_run(&w);
    wait_for_a_commit(&w, &mut worker);
    server.stop();
    std::thread::sleep(Duration::from_millis(1500));
    server.start_again();
    let out = worker.wait_with_output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}"); // rejects: exit 1
    assert!(shown.contains("applied_with_rejects"), "{shown}");

    // Nothing lost or doubled: the same outputs as a run the database never left, and
    // every record created once in the ERP.
    let sim_one = erp_sim(TOKEN, SimConfig::default());
    let one = Work::on_postgres(300);
    one.add_erp_target(
        &sim_one.base_url(),
        "timeout_seconds = 5\nbackoff_base_ms = 50\nbackoff_cap_seconds = 1",
    );
    one.drop_file("customers-r.csv", &customers_csv(50, "RC"));
    one.drop_file("orders-restart.csv", &input);
    let out = one
        .cmd()
        .arg("run")
        .env("ERP_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_same_outputs(&w, &one);
    let (st, st_one) = (sim.stats(), sim_one.stats());
    assert_eq!(st.creates, st_one.creates, "{st:?}");
    assert!(st.duplicates.is_empty(), "{st:?}");
    assert_eq!(
        w.query_i64("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'"),
        one.query_i64("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'")
    );
}
