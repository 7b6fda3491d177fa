//! Several workers over one inbox and one ledger, each with a `work/` folder of its own (its
//! OS locks, claimed inputs and staged output are its own, as on another host): files keep
//! arriving while three workers take them, and every record is applied and delivered
//! exactly once, every input archived once. Once with the embedded SQLite ledger, once
//! with a PostgreSQL ledger the workers share (a real server the test starts).

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{customers_csv, erp_sim, orders_csv, text, Work};
use tallyman::erpsim::SimConfig;

const TOKEN: &str = "workers-token";
const FILES_EACH: usize = 20;

/// An interchange of two 850s with its own control number and purchase order numbers.
fn x12_850(i: usize) -> Vec<u8> {
    let mut s = format!(
        "ISA*00*          *00*          *ZZ*ACME           *ZZ*TALLYMAN       *261101*0930*U*00401*{:09}*0*P*>~\n\
         GS*PO*ACME*TALLYMAN*20261101*0930*{i}*X*004010~\n",
        500 + i
    );
    for n in 1..=2 {
        s.push_str(&format!(
            "ST*850*{n:04}~\nBEG*00*SA*MPO-{i:02}-{n}**20261101~\nN1*BY*ACME Retail*92*C-100~\n\
             PO1*1*3*EA*2.50**VN*SKU-1~\nCTT*1~\nSE*6*{n:04}~\n"
        ));
    }
    s.push_str(&format!("GE*2*{i}~\nIEA*1*{:09}~\n", 500 + i));
    s.into_bytes()
}

/// Writes a file into the inbox the way a sender should: under a temporary name, renamed.
fn arrive(inbox: &Path, name: &str, bytes: &[u8]) {
    let tmp = inbox.join(format!("{name}.part"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, inbox.join(name)).unwrap();
}

#[test]
fn three_workers_with_work_folders_of_their_own_apply_and_deliver_every_record_once() {
    three_workers("sqlite");
}

#[test]
fn three_workers_sharing_a_postgresql_ledger_apply_and_deliver_every_record_once() {
    three_workers("postgres");
}

fn three_workers(backend: &str) {
    let sim = erp_sim(TOKEN, SimConfig::default());
    let w = Work::on(backend, 20);
    w.set("lease_seconds = 60", "lease_seconds = 5");
    w.add_erp_target(
        &sim.base_url(),
        "timeout_seconds = 5\nbackoff_base_ms = 50\nbackoff_cap_seconds = 1",
    );
    let configs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| w.other_worker(n)).collect();

    // The workers: each runs pass after pass until the files stopped coming and a pass of
    // its found nothing left.
    let arriving = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = configs
        .iter()
        .cloned()
        .map(|cfg| {
            let arriving = Arc::clone(&arriving);
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let start = Instant::now();
                loop {
                    assert!(start.elapsed() < Duration::from_secs(240), "never done");
                    let done = !arriving.load(Ordering::SeqCst);
                    let out = std::process::Command::new(common::bin())
                        .arg("--config")
                        .arg(&cfg)
                        .arg("run")
                        .env("ERP_TOKEN", TOKEN)
                        .output()
                        .unwrap();
                    if out.status.code() != Some(0) {
                        failures.push(text(&out));
                    }
                    if done {
                        return failures;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();

    // 60 files of three kinds arrive while they work.
    let inbox = w.dir.join("inbox");
    let mut expected = 0i64;
    for i in 0..FILES_EACH {
        arrive(
            &inbox,
            &format!("orders-m{i:02}.csv"),
            &orders_csv(15, 0, &format!("M{i:02}-")),
        );
        arrive(
            &inbox,
            &format!("customers-m{i:02}.csv"),
            &customers_csv(10, &format!("MC{i:02}")),
        );
        arrive(&inbox, &format!("acme-m{i:02}.x12"), &x12_850(i));
        expected += 15 + 10 + 2;
        std::thread::sleep(Duration::from_millis(30));
    }
    arriving.store(false, Ordering::SeqCst);
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "runs that did not end with 0:\n{}",
        failures.join("\n---\n")
    );

    // A last pass delivers what the workers' time budgets left.
    let out = w.cmd().arg("run").env("ERP_TOKEN", TOKEN).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Every input archived once, every file applied by exactly one attempt.
    let archived = w.snapshot("archive");
    assert_eq!(archived.len(), 3 * FILES_EACH, "{:?}", archived.keys());
    assert!(
        w.snapshot("rejected").is_empty(),
        "{:?}",
        w.snapshot("rejected").keys()
    );
    let outcomes =
        w.query("SELECT state || ' ' || COALESCE(outcome, '-'), COUNT(*) FROM files GROUP BY 1");
    let total = (3 * FILES_EACH).to_string();
    assert_eq!(
        outcomes,
        vec![vec![Some("done applied".to_string()), Some(total)]]
    );

    // The work was shared: files were taken by more than one of the workers.
    let takers =
        w.query_i64("SELECT COUNT(DISTINCT r.work) FROM files f JOIN runs r ON r.id = f.run_id");
    eprintln!("files were taken by {takers} of 3 workers");
    assert!(takers >= 2, "one worker took every file");

    // Every record applied once (the target takes every entity, so the ledger's versions
    // are the records), delivered once, and created once in the ERP.
    let versions = w.query_i64("SELECT COUNT(*) FROM versions");
    let distinct = w.query_i64("SELECT COUNT(DISTINCT entity || ' ' || key) FROM versions");
    let delivered = w.query_i64("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'");
    assert_eq!(
        (versions, distinct, delivered),
        (expected, expected, expected)
    );
    let st = sim.stats();
    let created: u64 = st.creates.values().sum();
    assert_eq!(created as i64, expected, "{st:?}");
    assert!(st.duplicates.is_empty(), "{st:?}");
    for (name, _) in [("work-a", 0), ("work-b", 0), ("work-c", 0)] {
        let left: Vec<String> = common::snapshot(&w.dir.join(name))
            .into_keys()
            .filter(|k| !k.starts_with("locks/") && !k.starts_with("ratelimit/"))
            .collect();
        assert!(left.is_empty(), "{name} still holds {left:?}");
    }
}
