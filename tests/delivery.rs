//! Delivery into an ERP, end to end: the real binary in a scratch directory, the project's
//! ERP simulator on a loopback port, started by the test itself.

mod common;

use common::*;
use tallyman::erpsim::{SimConfig, Simulator};

const TOKEN: &str = "test-token-1";

/// A working directory whose config delivers every entity to the simulator.
fn work_for(sim: &Simulator, extra: &str) -> Work {
    let w = Work::new(100);
    let text = std::fs::read_to_string(w.config()).unwrap();
    let target = format!(
        "\n[[targets]]\nname = \"erp\"\nkind = \"http\"\nbase_url = \"{}\"\ntoken_env = \"ERP_TOKEN\"\ntimeout_seconds = 5\nbackoff_base_ms = 50\nbackoff_cap_seconds = 1\n{extra}\n",
        sim.base_url()
    );
    std::fs::write(w.config(), text + &target).unwrap();
    w
}

fn run(w: &Work, args: &[&str]) -> std::process::Output {
    w.cmd().args(args).env("ERP_TOKEN", TOKEN).output().unwrap()
}

fn sim(cfg: SimConfig) -> Simulator {
    Simulator::start(
        "127.0.0.1:0",
        SimConfig {
            token: Some(TOKEN.into()),
            check_order_customer: false,
            ..cfg
        },
    )
    .unwrap()
}

const CUSTOMERS: &str = "customer_id,name,email,phone,city,postal_code,country,vat_id,active\n\
C-1,Acme GmbH,a@acme.example,,Berlin,10115,DE,,yes\n\
C-2,Globex,g@globex.example,,Paris,75001,FR,,yes\n";

#[test]
fn records_are_delivered_once_and_status_says_so() {
    let s = sim(SimConfig::default());
    let w = work_for(&s, "");
    w.drop_file("customers-1.csv", CUSTOMERS.as_bytes());
    w.drop_file("orders-1.csv", &orders_csv(5, 0, "D"));
    let out = run(&w, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let st = s.stats();
    assert_eq!(st.creates.get("customers"), Some(&2), "{st:?}");
    assert_eq!(st.creates.get("orders"), Some(&5), "{st:?}");
    assert!(st.duplicates.is_empty());
    let status = run(&w, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["targets"]["erp"]["delivered"], 7, "{v}");
    assert_eq!(v["targets"]["erp"]["pending"], 0);
    // Nothing is sent twice by a second run.
    assert_eq!(run(&w, &["run"]).status.code(), Some(0));
    assert_eq!(s.stats().requests_total, st.requests_total);
}
