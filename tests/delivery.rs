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
    let timeout = if extra.contains("timeout_seconds") {
        ""
    } else {
        "timeout_seconds = 5\n"
    };
    let target = format!(
        "\n[[targets]]\nname = \"erp\"\nkind = \"http\"\nbase_url = \"{}\"\ntoken_env = \"ERP_TOKEN\"\n{timeout}backoff_base_ms = 50\nbackoff_cap_seconds = 1\n{extra}\n",
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

const PRODUCTS_NOV: &str = "sku,description,gtin,uom,price,currency,weight_kg,active\n\
SKU-1,Widget,,EA,2.50,EUR,0.100,true\n\
SKU-2,Gadget,,EA,12.00,EUR,0.400,true\n\
SKU-3,Cable,,EA,3.99,EUR,0.080,true\n";

const PRODUCTS_DEC: &str = "sku,description,gtin,uom,price,currency,weight_kg,active\n\
SKU-1,Widget,,EA,2.75,EUR,0.100,true\n\
SKU-2,Gadget,,EA,12.00,EUR,0.999,true\n\
SKU-3,Cable,,EA,3.99,EUR,0.080,true\n";

fn record(s: &Simulator, collection: &str, key: &str) -> serde_json::Value {
    let all = s.records();
    all[collection]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["external_ref"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("no {collection} {key} in {all}"))
}

#[test]
fn regression_next_months_price_list_updates_owned_fields_and_sends_nothing_unchanged() {
    let s = sim(SimConfig::default());
    let w = work_for(
        &s,
        "owned = { product = [\"description\", \"price\", \"currency\"] }",
    );
    w.drop_file("products-2026-11.csv", PRODUCTS_NOV.as_bytes());
    assert_eq!(run(&w, &["run"]).status.code(), Some(0));
    let before = s.stats();
    w.drop_file("products-2026-12.csv", PRODUCTS_DEC.as_bytes());
    let out = run(&w, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 applied") && stdout.contains("1 unchanged"),
        "{stdout}"
    );
    let after = s.stats();
    let patches = after
        .requests
        .get("PATCH")
        .map(|m| m.values().sum::<u64>())
        .unwrap_or(0);
    assert_eq!(
        patches, 1,
        "only SKU-1's price changed among the owned fields: {after:?}"
    );
    assert_eq!(after.creates, before.creates, "no record created again");
    let sku1 = record(&s, "products", "SKU-1");
    assert_eq!(sku1["price"], "2.75");
    let sku2 = record(&s, "products", "SKU-2");
    assert_eq!(
        sku2["weight_kg"], "0.400",
        "weight_kg is the ERP's: never updated"
    );
    // The same list again (other bytes, same records): unchanged, nothing sent.
    w.drop_file(
        "products-2026-12-again.csv",
        PRODUCTS_DEC.replace('\n', "\r\n").as_bytes(),
    );
    let n = s.stats().requests_total;
    run(&w, &["run"]);
    assert_eq!(s.stats().requests_total, n);
}

#[test]
fn an_order_number_sent_again_with_other_content_is_a_conflict_held_for_review() {
    let s = sim(SimConfig::default());
    let w = work_for(&s, "");
    let first = orders_csv(2, 0, "K");
    w.drop_file("orders-1.csv", &first);
    assert_eq!(run(&w, &["run"]).status.code(), Some(0));
    let changed = String::from_utf8(first)
        .unwrap()
        .replace(",2.5,19.99,", ",3,19.99,");
    w.drop_file("orders-2.csv", changed.as_bytes());
    let out = run(&w, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rejects = run(&w, &["rejects", "orders-2.csv", "--json"]);
    let r = String::from_utf8_lossy(&rejects.stdout);
    assert!(
        r.contains("key-conflict") && r.contains("lines[0].quantity '2.5' → '3'"),
        "{r}"
    );
    assert_eq!(
        s.stats().creates.get("orders"),
        Some(&2),
        "the ERP was never sent the changed order"
    );
}

#[test]
fn regression_401_blocks_the_target_without_dead_letters_and_delivery_resumes_once_fixed() {
    let s = sim(SimConfig::default());
    let w = work_for(&s, "");
    w.drop_file("customers-1.csv", CUSTOMERS.as_bytes());
    let out = w
        .cmd()
        .arg("run")
        .env("ERP_TOKEN", "wrong-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("blocked: HTTP 401"),
        "{}",
        text(&out)
    );
    let dead = run(&w, &["deadletters", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&dead.stdout).unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        0,
        "nothing dead-lettered for a credential problem"
    );
    let status = run(&w, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(v["targets"]["erp"]["blocked"]
        .as_str()
        .unwrap()
        .contains("401"));
    assert_eq!(v["targets"]["erp"]["pending"], 2);
    // A missing token is named, not guessed.
    let out = w
        .cmd()
        .arg("deliver")
        .env_remove("ERP_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Fixed credentials: the next delivery (after the one-minute probe pause) goes through.
    w.query("UPDATE target_state SET blocked_at = '2000-01-01T00:00:00.000Z'");
    let out = run(&w, &["deliver"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.stats().creates.get("customers"), Some(&2));
}

#[test]
fn regression_422_dead_letters_with_the_erps_message_and_retry_delivers_after_the_fix() {
    let s = Simulator::start(
        "127.0.0.1:0",
        SimConfig {
            token: Some(TOKEN.into()),
            check_order_customer: true,
            ..SimConfig::default()
        },
    )
    .unwrap();
    let w = work_for(&s, "entities = [\"order\", \"customer\"]");
    w.drop_file("orders-1.csv", &orders_csv(1, 0, "U"));
    let out = run(&w, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let dead = run(&w, &["deadletters", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&dead.stdout).unwrap();
    let d = &v[0];
    assert_eq!(
        (d["entity"].as_str(), d["key"].as_str()),
        (Some("order"), Some("U0000000"))
    );
    assert_eq!(d["last_status"], 422);
    assert!(
        d["message"].as_str().unwrap().contains("unknown customer"),
        "{d}"
    );
    assert_eq!(d["file"], "orders-1.csv");
    assert_eq!(
        d["line"], 2,
        "its document's first line, from a packed unit: {d}"
    );
    // The person fixes the cause (the customer arrives), then retries the dead letter.
    w.drop_file(
        "customers-1.csv",
        b"customer_id,name,email,phone,city,postal_code,country,vat_id,active\nC0000,Acme,a@b.example,,Berlin,10115,DE,,yes\n",
    );
    assert_eq!(
        run(&w, &["run"]).status.code(),
        Some(1),
        "the dead letter still waits"
    );
    let dry = run(&w, &["retry", "--target", "erp", "--dry-run"]);
    assert!(String::from_utf8_lossy(&dry.stdout).starts_with("1 dead letter"));
    assert_eq!(
        run(&w, &["retry", "--target", "erp"]).status.code(),
        Some(0)
    );
    let out = run(&w, &["deliver"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.stats().creates.get("orders"), Some(&1));
    // Regression: a retried delivery's new attempts no longer overwrite the old ones.
    let outcomes: Vec<String> = w
        .query("SELECT a.outcome FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.entity = 'order' ORDER BY a.n")
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec!["permanent", "delivered"],
        "the whole history is kept"
    );
}

#[test]
fn regression_an_ambiguous_attempt_never_creates_a_duplicate() {
    // The worst ERP: no idempotency keys, no unique references. The create is applied and
    // its answer lost; a timeout on a slow answer likewise.
    let s = sim(SimConfig {
        idempotency: false,
        unique_refs: false,
        slow_ms: 3000,
        ..SimConfig::default()
    });
    s.set_faults(&["drop_after", "ok", "slow"]).unwrap();
    let w = work_for(&s, "timeout_seconds = 1");
    w.drop_file("customers-1.csv", CUSTOMERS.as_bytes());
    w.drop_file("orders-1.csv", &orders_csv(2, 0, "A"));
    for _ in 0..10 {
        let out = run(&w, &["run"]);
        let status = run(&w, &["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&status.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&status), text(&out)));
        if v["targets"]["erp"]["delivered"] == 4 {
            break;
        }
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "{}",
            text(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let st = s.stats();
    assert!(
        st.faults.get("drop_after").copied().unwrap_or(0) >= 1,
        "{st:?}"
    );
    assert!(st.duplicates.is_empty(), "{:?}", st.duplicates);
    assert_eq!(st.records.values().sum::<u64>(), 4, "{st:?}");
}

#[test]
fn a_format_may_override_an_entitys_identity_rule() {
    // Products are master data (upsert) by default; this partner's list must never change
    // a product silently.
    let w = Work::new(100);
    let defs = w.dir.join("formats/products.toml");
    let def = std::fs::read_to_string(&defs).unwrap().replacen(
        "max_reject_ratio = 0.5\n",
        "max_reject_ratio = 0.5\nidentity = \"create-once\"\n",
        1,
    );
    std::fs::write(&defs, def).unwrap();
    w.drop_file("products-2026-11.csv", PRODUCTS_NOV.as_bytes());
    assert_eq!(w.run(&["run"]).status.code(), Some(0));
    w.drop_file("products-2026-12.csv", PRODUCTS_DEC.as_bytes());
    let out = w.run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rejects = w.run(&["rejects", "products-2026-12.csv", "--json"]);
    let r = String::from_utf8_lossy(&rejects.stdout);
    assert!(
        r.contains("key-conflict") && r.contains("a create-once record"),
        "{r}"
    );
    // And a typo in the rule is a definition error with its line.
    let bad = std::fs::read_to_string(&defs)
        .unwrap()
        .replace("\"create-once\"", "\"once\"");
    std::fs::write(&defs, bad).unwrap();
    let check = w.run(&["check"]);
    assert!(String::from_utf8_lossy(&check.stdout).contains("identity 'once' is not a rule"));
}

#[test]
fn a_record_goes_to_every_target_that_takes_it_each_with_its_own_state() {
    let a = sim(SimConfig::default());
    let b = sim(SimConfig::default());
    let w = work_for(&a, "entities = [\"customer\"]");
    let cfg = std::fs::read_to_string(w.config()).unwrap();
    let second = format!(
        "\n[[targets]]\nname = \"crm\"\nkind = \"http\"\nbase_url = \"{}\"\ntoken_env = \"ERP_TOKEN\"\nentities = [\"customer\", \"order\"]\n",
        b.base_url()
    );
    std::fs::write(w.config(), cfg + &second).unwrap();
    w.drop_file("customers-1.csv", CUSTOMERS.as_bytes());
    w.drop_file("orders-1.csv", &orders_csv(2, 0, "M"));
    assert_eq!(run(&w, &["run"]).status.code(), Some(0));
    assert_eq!(a.stats().records.get("customers"), Some(&2));
    assert_eq!(
        a.stats().records.get("orders"),
        None,
        "erp does not take orders"
    );
    assert_eq!(b.stats().records.get("customers"), Some(&2));
    assert_eq!(b.stats().records.get("orders"), Some(&2));
    let v: serde_json::Value =
        serde_json::from_slice(&run(&w, &["status", "--json"]).stdout).unwrap();
    assert_eq!(v["targets"]["erp"]["delivered"], 2);
    assert_eq!(v["targets"]["crm"]["delivered"], 4);
}

#[test]
fn watch_delivers_continuously_and_stops_cleanly() {
    let s = sim(SimConfig::default());
    let w = work_for(&s, "");
    let mut child = w
        .cmd()
        .arg("watch")
        .env("ERP_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    w.drop_file("customers-1.csv", CUSTOMERS.as_bytes());
    let mut delivered = false;
    for _ in 0..100 {
        if s.stats().records.get("customers") == Some(&2) {
            delivered = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let code = child.wait().unwrap().code();
    assert!(
        delivered,
        "watch delivered the file's records without another command"
    );
    assert_eq!(code, Some(3));
}
