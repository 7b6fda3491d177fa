//! Exactly once in effect, tested for real: `tallyman deliver` is SIGKILLed at many points
//! while the ERP simulator injects faults (503s, 429s, connections reset before and after
//! applying, answers slower than the client's timeout), in each combination of the ERP's
//! idempotency-key support and unique business keys. Then delivery finishes, and the ERP
//! must hold every record exactly once.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use tallyman::erpsim::{SimConfig, Simulator};

const TOKEN: &str = "kill-test-token";
const ORDERS: usize = 400;
const CUSTOMERS: usize = 30;

fn faulty(idempotency: bool, unique_refs: bool, seed: u64) -> Simulator {
    Simulator::start(
        "127.0.0.1:0",
        SimConfig {
            token: Some(TOKEN.into()),
            idempotency,
            unique_refs,
            check_order_customer: false,
            seed,
            latency_ms: 10,
            status_503: 0.04,
            status_429: 0.02,
            reset_before: 0.03,
            drop_after: 0.05,
            slow: 0.02,
            slow_ms: 1500,
            ..SimConfig::default()
        },
    )
    .unwrap()
}

fn status(w: &Work) -> serde_json::Value {
    let out = w.cmd().args(["status", "--json"]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn kill_during_delivery(idempotency: bool, unique_refs: bool, seed: u64) {
    let sim = faulty(idempotency, unique_refs, seed);
    let w = Work::new(100);
    w.set("budget_seconds = 240", "budget_seconds = 0");
    let text_cfg = std::fs::read_to_string(w.config()).unwrap();
    std::fs::write(
        w.config(),
        text_cfg
            + &format!(
                "\n[[targets]]\nname = \"erp\"\nkind = \"http\"\nbase_url = \"{}\"\ntoken_env = \"ERP_TOKEN\"\n\
                 timeout_seconds = 1\nconcurrency = 2\nbackoff_base_ms = 20\nbackoff_cap_seconds = 1\nmax_attempts = 1000\n",
                sim.base_url()
            ),
    )
    .unwrap();
    w.drop_file("customers-k.csv", &customers_csv(CUSTOMERS, "KC"));
    w.drop_file("orders-k.csv", &orders_csv(ORDERS, 0, "KO"));
    // Process first (a budget of 0 delivers nothing), then deliver under fire.
    let out = w.cmd().arg("run").env("ERP_TOKEN", TOKEN).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.set("budget_seconds = 0", "budget_seconds = 240");
    let mut kills = 0;
    for i in 0..80u64 {
        let mut child = w
            .cmd()
            .arg("deliver")
            .env("ERP_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(30 + (i * 53) % 220);
        let start = Instant::now();
        let mut exited = false;
        while start.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        if !exited {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        if kills >= 24 {
            break;
        }
    }
    assert!(
        kills >= 20,
        "delivery must be killed at 20 points at least ({kills})"
    );
    // Finish: deliver until nothing waits (retries back off up to a second).
    let total = (ORDERS + CUSTOMERS) as i64;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = w
            .cmd()
            .arg("deliver")
            .env("ERP_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "{}",
            text(&out)
        );
        let v = status(&w);
        if v["targets"]["erp"]["delivered"] == total {
            break;
        }
        assert!(Instant::now() < deadline, "not all delivered: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = sim.stats();
    assert!(st.duplicates.is_empty(), "{:?}", st.duplicates);
    assert_eq!(st.records.get("orders"), Some(&(ORDERS as u64)), "{st:?}");
    assert_eq!(
        st.records.get("customers"),
        Some(&(CUSTOMERS as u64)),
        "{st:?}"
    );
    let faults: u64 = st.faults.values().sum();
    assert!(faults > 0, "faults were injected: {st:?}");
    let v = status(&w);
    assert_eq!(v["targets"]["erp"]["dead"], 0, "{v}");
    eprintln!(
        "idempotency={idempotency} unique_refs={unique_refs}: killed {kills} times, {faults} faults, {} requests, each record once",
        st.requests_total
    );
}

#[test]
fn killed_during_delivery_without_idempotency_or_unique_refs_each_record_is_created_once() {
    kill_during_delivery(false, false, 11);
}

#[test]
fn killed_during_delivery_with_idempotency_keys_each_record_is_created_once() {
    kill_during_delivery(true, false, 12);
}

#[test]
fn killed_during_delivery_with_unique_refs_each_record_is_created_once() {
    kill_during_delivery(false, true, 13);
}

#[test]
fn killed_during_delivery_with_both_each_record_is_created_once() {
    kill_during_delivery(true, true, 14);
}
