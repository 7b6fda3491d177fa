//! Reconciliation, end to end: records delivered by the real binary into the project's ERP
//! simulator, then deleted, added and changed behind tallyman's back through the ERP's own
//! API; `tallyman reconcile` must find each one, `--repair` must put the missing and
//! drifted ones right, and the next reconciliation must be clean.

mod common;

use common::*;
use serde_json::{json, Value};
use tallyman::erpsim::{SimConfig, Simulator};

const TOKEN: &str = "reconcile-token-1";

fn sim() -> Simulator {
    Simulator::start(
        "127.0.0.1:0",
        SimConfig {
            token: Some(TOKEN.into()),
            check_order_customer: false,
            ..SimConfig::default()
        },
    )
    .unwrap()
}

/// A working directory delivering customers and products to the simulator, with owned
/// product fields, customers in scope only with a `C-` reference, and pages of 3 records.
fn work_for(s: &Simulator) -> Work {
    let w = Work::new(100);
    let text = std::fs::read_to_string(w.config()).unwrap();
    let target = format!(
        r#"
[[targets]]
name = "erp"
kind = "http"
base_url = "{}"
token_env = "ERP_TOKEN"
entities = ["customer", "product"]
owned = {{ product = ["description", "price", "currency"] }}
timeout_seconds = 5
backoff_base_ms = 50
backoff_cap_seconds = 1
reconcile_scope = {{ customer = "^C-" }}
reconcile_page_size = 3
"#,
        s.base_url()
    );
    std::fs::write(w.config(), text + &target).unwrap();
    w
}

fn run(w: &Work, args: &[&str]) -> std::process::Output {
    w.cmd().args(args).env("ERP_TOKEN", TOKEN).output().unwrap()
}

fn customers(n: usize) -> String {
    let mut s =
        String::from("customer_id,name,email,phone,city,postal_code,country,vat_id,active\n");
    for i in 1..=n {
        s.push_str(&format!(
            "C-{i},Customer {i},c{i}@example.com,,Berlin,0{i}115,DE,,yes\n"
        ));
    }
    s
}

fn products(n: usize) -> String {
    let mut s = String::from("sku,description,gtin,uom,price,currency,weight_kg,active\n");
    for i in 1..=n {
        s.push_str(&format!("SKU-{i},Widget {i},,EA,{i}.50,EUR,0.100,true\n"));
    }
    s
}

/// The ERP's API, used behind tallyman's back.
fn api(s: &Simulator, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}/api/v1/{path}", s.base_url());
    let auth = format!("Bearer {TOKEN}");
    let result = match (method, body) {
        ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
        ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
        (m, Some(b)) => {
            let req = if m == "PATCH" {
                agent.patch(&url)
            } else {
                agent.post(&url)
            };
            req.header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string().as_bytes())
        }
        (m, None) => panic!("{m} needs a body"),
    };
    let mut resp = result.unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The ERP's id of a record.
fn id_of(s: &Simulator, collection: &str, key: &str) -> String {
    let (status, found) = api(s, "GET", &format!("{collection}?external_ref={key}"), None);
    assert_eq!(status, 200);
    let id = &found[0]["id"];
    id.as_str()
        .map(String::from)
        .unwrap_or_else(|| id.to_string())
}

fn record(s: &Simulator, collection: &str, key: &str) -> Value {
    let (_, found) = api(s, "GET", &format!("{collection}?external_ref={key}"), None);
    found[0].clone()
}

fn gets(s: &Simulator) -> u64 {
    s.stats()
        .requests
        .get("GET")
        .map(|m| m.values().sum())
        .unwrap_or(0)
}

/// `(entity, external_ref)` of a JSON list of findings, sorted.
fn refs(list: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["entity"].as_str().unwrap().to_string(),
                f["external_ref"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pair(e: &str, k: &str) -> (String, String) {
    (e.to_string(), k.to_string())
}

#[test]
fn reconciliation_finds_what_changed_behind_tallymans_back_and_repairs_it() {
    let s = sim();
    let w = work_for(&s);
    w.drop_file("customers-1.csv", customers(10).as_bytes());
    w.drop_file("products-1.csv", products(10).as_bytes());
    let out = run(&w, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.stats().records.values().sum::<u64>(), 20);

    // Clean at first.
    let out = run(&w, &["reconcile", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Behind tallyman's back: two deleted, three created (one outside the scope), one
    // owned field changed, one ERP-owned field changed, and one amount written the
    // ERP's way (the same value).
    for (c, k) in [("customers", "C-3"), ("products", "SKU-4")] {
        let (status, _) = api(&s, "DELETE", &format!("{c}/{}", id_of(&s, c, k)), None);
        assert_eq!(status, 204);
    }
    for (c, body) in [
        (
            "customers",
            json!({"external_ref": "C-90", "customer_id": "C-90", "name": "Made in the ERP"}),
        ),
        (
            "customers",
            json!({"external_ref": "WEB-1", "customer_id": "WEB-1", "name": "The web shop's"}),
        ),
        (
            "products",
            json!({"external_ref": "SKU-90", "sku": "SKU-90", "description": "Made in the ERP"}),
        ),
    ] {
        assert_eq!(api(&s, "POST", c, Some(body)).0, 201);
    }
    for (k, patch) in [
        ("SKU-2", json!({"price": "9.99"})),
        ("SKU-5", json!({"weight_kg": "5.000"})),
        ("SKU-6", json!({"price": "6.5"})),
    ] {
        let path = format!("products/{}", id_of(&s, "products", k));
        assert_eq!(api(&s, "PATCH", &path, Some(patch)).0, 200);
    }

    let before = gets(&s);
    let out = run(&w, &["reconcile", "--target", "erp", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["target"], "erp");
    assert_eq!(
        refs(&r["missing"]),
        vec![pair("customer", "C-3"), pair("product", "SKU-4")]
    );
    assert_eq!(
        refs(&r["orphans"]),
        vec![pair("customer", "C-90"), pair("product", "SKU-90")],
        "WEB-1 is outside the scope"
    );
    assert_eq!(refs(&r["drift"]), vec![pair("product", "SKU-2")], "{r}");
    let d = &r["drift"][0];
    assert_eq!(
        (
            d["field"].as_str(),
            d["ledger_value"].as_str(),
            d["erp_value"].as_str()
        ),
        (Some("price"), Some("2.50"), Some("9.99"))
    );
    assert_eq!(r["remote_records"], 21);
    assert_eq!(r["in_scope"], 20);
    assert_eq!(r["orphan_ratio"], 0.1);
    // 11 customers and 10 products in pages of 3, each list ended by an empty page.
    assert_eq!(gets(&s) - before, 5 + 5, "paged, not fetched whole");

    // The report, the ledger's record, and the dashboard's figures.
    let report = std::path::PathBuf::from(r["report_path"].as_str().unwrap());
    let bytes = std::fs::read(&report).unwrap();
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]));
    let csv = String::from_utf8_lossy(&bytes[3..]).to_string();
    assert_eq!(
        csv.matches("\r\n").count(),
        6,
        "a header and five findings: {csv}"
    );
    for want in [
        "missing,customer,C-3",
        "orphan,product,SKU-90",
        "drift,product,SKU-2",
    ] {
        assert!(csv.contains(want), "{want} in {csv}");
    }
    assert!(report.starts_with(w.dir.join("reports")));
    let found =
        w.query("SELECT missing, orphans, drift FROM reconciliations ORDER BY id DESC LIMIT 1");
    let n = |i: usize| found[0][i].as_deref().unwrap().parse::<i64>().unwrap();
    assert_eq!((n(0), n(1), n(2)), (2, 2, 1));
    let ratio: f64 = w
        .query("SELECT value FROM metric_samples WHERE name='tallyman_reconcile_orphan_ratio' AND labels='target=erp' ORDER BY at DESC LIMIT 1")[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ratio, 0.1);

    // The person repairs; the next delivery puts the ERP right.
    let out = run(
        &w,
        &["reconcile", "--repair", "--reason", "ERP cleanup on 2 Nov"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("repaired: 2 missing record(s) and 1 drifted record(s) queued again"),
        "{stdout}"
    );
    let out = run(&w, &["deliver"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(record(&s, "customers", "C-3")["name"], "Customer 3");
    assert_eq!(record(&s, "products", "SKU-4")["price"], "4.50");
    assert_eq!(record(&s, "products", "SKU-2")["price"], "2.50");
    assert_eq!(
        record(&s, "products", "SKU-5")["weight_kg"],
        "5.000",
        "the ERP's field is left alone"
    );
    let audit = run(&w, &["audit", "--json"]);
    let a = String::from_utf8_lossy(&audit.stdout);
    assert!(
        a.contains("reconcile-repair")
            && a.contains("ERP cleanup on 2 Nov")
            && a.contains("customer:C-3"),
        "{a}"
    );

    // The orphans are the ERP's to judge: its people remove them. Then all is clean.
    for (c, k) in [("customers", "C-90"), ("products", "SKU-90")] {
        api(&s, "DELETE", &format!("{c}/{}", id_of(&s, c, k)), None);
    }
    let out = run(&w, &["reconcile", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    for list in ["missing", "orphans", "drift"] {
        assert_eq!(r[list], json!([]), "{list}: {r}");
    }
    assert_eq!(r["orphan_ratio"], 0.0);
}

#[test]
fn refused_credentials_fail_the_reconciliation_with_the_reason() {
    let s = sim();
    let w = work_for(&s);
    w.drop_file("customers-1.csv", customers(2).as_bytes());
    assert_eq!(run(&w, &["run"]).status.code(), Some(0));
    let out = w
        .cmd()
        .args(["reconcile", "--json"])
        .env("ERP_TOKEN", "not-the-token-4711")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("blocked") && err.contains("HTTP 401"), "{err}");
    assert!(!err.contains("4711"), "the token never shows: {err}");
    assert!(out.stdout.is_empty(), "no half report on stdout");
    let out = w
        .cmd()
        .args(["reconcile"])
        .env_remove("ERP_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERP_TOKEN"));
    let n = w.query_i64("SELECT COUNT(*) FROM reconciliations");
    assert_eq!(n, 0, "a failed reconciliation records no findings");
}

#[test]
fn the_schedule_reconciles_once_per_interval() {
    let s = sim();
    let w = work_for(&s);
    w.set(
        "reconcile_page_size = 3",
        "reconcile_page_size = 3\nreconcile_every_hours = 24",
    );
    w.drop_file("products-1.csv", products(2).as_bytes());
    // `run` reconciles at the end of its pass when the target is due.
    assert_eq!(run(&w, &["run"]).status.code(), Some(0));
    let count = || w.query_i64("SELECT COUNT(*) FROM reconciliations");
    assert_eq!(count(), 1, "the first run reconciled");
    let cfg = tallyman::config::Config::load(&w.config()).unwrap();
    let ledger = tallyman::ledger::Ledger::open_in(&cfg.paths).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    assert!(
        tallyman::review::reconcile::reconcile_due(&cfg, &ledger)
            .unwrap()
            .is_empty(),
        "not due again for 24 hours"
    );
    assert!(tallyman::review::reconcile::run_due(&cfg, &ledger, &stop)
        .unwrap()
        .is_empty());
    assert_eq!(run(&w, &["run"]).status.code(), Some(0));
    assert_eq!(count(), 1, "the next run does not reconcile again");
    let rows = ledger.reconciliations(Some("erp"), 10).unwrap();
    assert!(rows[0].remote_records == 2, "{rows:?}");
}

#[test]
fn a_listing_rides_out_passing_failures_and_gives_up_on_lasting_ones() {
    let s = sim();
    let w = work_for(&s);
    w.drop_file("customers-1.csv", customers(4).as_bytes());
    assert_eq!(run(&w, &["run"]).status.code(), Some(0));
    s.set_faults(&["503", "429", "500", "reset_before"])
        .unwrap();
    let out = run(&w, &["reconcile", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            r["remote_records"].as_u64(),
            r["missing"].as_array().map(Vec::len)
        ),
        (Some(4), Some(0))
    );
    let st = s.stats();
    assert_eq!(
        st.faults.values().sum::<u64>(),
        4,
        "every fault was met: {st:?}"
    );
    // A page that keeps failing ends the reconciliation, with nothing recorded as found.
    s.set_faults(&["500"; 8]).unwrap();
    let out = run(&w, &["reconcile"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listing failed")
            && err.contains("HTTP 500")
            && err.contains("gave up after 8 attempts"),
        "{err}"
    );
    let n = w.query_i64("SELECT COUNT(*) FROM reconciliations");
    assert_eq!(n, 1, "only the run that worked");
    let leftovers = std::fs::read_dir(w.dir.join("reports"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0, "no half report left behind");
}
