//! The reference ERP simulator over real HTTP on a loopback port: the REST API tallyman's
//! delivery speaks, auth, the rate limit, unique business keys, validation, the control
//! routes, persistence across a restart and the binary. Idempotency keys are in
//! `erp_sim_idempotency.rs`, faults and concurrency in `erp_sim_faults.rs`.

mod erp_sim_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use erp_sim_support::*;
use serde_json::json;
use tallyman::erpsim::{SimConfig, Simulator};

#[test]
fn create_lookup_get_patch_delete() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    let r = c.post("/api/v1/customers", &customer("C-17"));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.id();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/customers/{id}").as_str())
    );
    assert_eq!(
        (r.body["external_ref"].clone(), r.body["version"].clone()),
        (json!("C-17"), json!(1))
    );
    assert_eq!(r.body["created_at"], r.body["updated_at"]);

    let found = c.lookup("customers", "C-17");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], id.as_str());
    assert!(c.lookup("customers", "C-99").is_empty());

    let got = c.get(&format!("/api/v1/customers/{id}"));
    assert_eq!((got.status, got.body.clone()), (200, r.body.clone()));

    let p = c.patch(
        &format!("/api/v1/customers/{id}"),
        &json!({"email": "a@b.example", "name": "Renamed"}),
    );
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(
        (p.body["name"].clone(), p.body["version"].clone()),
        (json!("Renamed"), json!(2))
    );
    assert_eq!(
        (p.body["email"].clone(), p.body["customer_id"].clone()),
        (json!("a@b.example"), json!("C-17"))
    );
    assert_eq!(p.body["created_at"], r.body["created_at"]);
    assert_eq!(sim.stats().updates["customers"][&id], 1);

    assert_eq!(c.delete(&format!("/api/v1/customers/{id}")).status, 204);
    assert_eq!(c.get(&format!("/api/v1/customers/{id}")).status, 404);
    assert_eq!(
        c.patch(&format!("/api/v1/customers/{id}"), &json!({"name": "x"}))
            .status,
        404
    );
    assert_eq!(c.delete(&format!("/api/v1/customers/{id}")).status, 404);
    assert!(c.lookup("customers", "C-17").is_empty());
    let s = sim.stats();
    assert_eq!(
        (
            s.creates["customers"],
            s.deletes["customers"],
            s.records["customers"]
        ),
        (1, 1, 0)
    );
}

#[test]
fn list_pages_in_creation_order_until_an_empty_page() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    let keys: Vec<String> = (1..=7).map(|i| format!("SKU-{i}")).collect();
    for k in &keys {
        assert_eq!(c.post("/api/v1/products", &product(k)).status, 201);
    }
    let mut seen = vec![];
    for page in 1.. {
        let r = c.get(&format!("/api/v1/products?page={page}&per_page=3"));
        assert_eq!(r.status, 200);
        let items = r.body.as_array().unwrap().clone();
        if items.is_empty() {
            assert_eq!(page, 4);
            break;
        }
        seen.extend(
            items
                .iter()
                .map(|i| i["external_ref"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(seen, keys);
    for bad in [
        "page=0",
        "per_page=501",
        "per_page=0",
        "page=x",
        "colour=red",
    ] {
        let r = c.get(&format!("/api/v1/products?{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body["error"].is_string());
    }
    assert_eq!(
        c.get("/api/v1/products?per_page=500")
            .body
            .as_array()
            .unwrap()
            .len(),
        7
    );
}

#[test]
fn token_gives_401_and_forbidden_gives_403() {
    let sim = start(SimConfig {
        token: Some("s3cret".into()),
        ..Default::default()
    });
    let anon = Client::new(&sim);
    let r = anon.get("/api/v1/orders");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let wrong = Client::new(&sim).header("authorization", "Bearer nope");
    assert_eq!(wrong.post("/api/v1/customers", &customer("C1")).status, 401);
    let ok = Client::new(&sim).header("authorization", "Bearer s3cret");
    assert_eq!(ok.post("/api/v1/customers", &customer("C1")).status, 201);
    // Control routes stay open, so a test can always repair the ERP.
    assert_eq!(anon.get("/_sim/stats").status, 200);

    let forbidden = json!({"token": "s3cret", "forbidden": true});
    assert_eq!(anon.put("/_sim/config", &forbidden).status, 200);
    assert_eq!(ok.get("/api/v1/customers").status, 403);
    assert_eq!(ok.post("/api/v1/customers", &customer("C2")).status, 403);
    assert_eq!(anon.put("/_sim/config", &json!({})).status, 200);
    assert_eq!(anon.get("/api/v1/customers").status, 200);
    assert_eq!(anon.lookup("customers", "C2").len(), 0);
    let s = sim.stats();
    assert_eq!(
        (
            s.count("GET", "401"),
            s.count("POST", "401"),
            s.count("POST", "403")
        ),
        (1, 1, 1)
    );
}

#[test]
fn rate_limit_refuses_with_retry_after_and_counts_the_busiest_minute() {
    let sim = start(SimConfig {
        rate_limit_per_minute: Some(3),
        ..Default::default()
    });
    let c = Client::new(&sim);
    for i in 0..3 {
        assert_eq!(
            c.post("/api/v1/products", &product(&format!("P{i}")))
                .status,
            201
        );
    }
    let r = c.post("/api/v1/products", &product("P3"));
    assert_eq!(r.status, 429);
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(c.get("/api/v1/products").status, 429);
    // The refused create did nothing; /_sim is neither limited nor counted.
    assert_eq!(sim.records()["products"].as_array().unwrap().len(), 3);
    let s: tallyman::erpsim::Stats = serde_json::from_value(c.get("/_sim/stats").body).unwrap();
    assert_eq!(
        (s.rate_limited, s.status_429_sent, s.requests_total),
        (2, 2, 5)
    );
    assert_eq!(
        s.max_requests_in_60s, 5,
        "refused requests count: the client sent 5"
    );
    assert_eq!(s, sim.stats());
}

#[test]
fn busiest_window_counts_every_api_request_without_a_limit() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    for i in 0..6 {
        c.get(&format!("/api/v1/orders?page={}", i + 1));
    }
    c.get("/api/v1/nowhere");
    let s = sim.stats();
    assert_eq!(
        (s.max_requests_in_60s, s.requests_total, s.rate_limited),
        (7, 7, 0)
    );
    assert_eq!(s.count("GET", "404"), 1);
}

#[test]
fn unique_refs_answer_409_with_the_existing_id() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    let id = c.post("/api/v1/orders", &order("PO-1", "")).id();
    let r = c.post("/api/v1/orders", &order("PO-1", ""));
    assert_eq!(r.status, 409);
    assert_eq!(r.body["id"], id.as_str());
    assert!(r.body["error"].is_string());
    // Renaming another record onto a taken key is refused too.
    let other = c.post("/api/v1/orders", &order("PO-2", "")).id();
    let p = c.patch(
        &format!("/api/v1/orders/{other}"),
        &json!({"external_ref": "PO-1"}),
    );
    assert_eq!((p.status, p.body["id"].clone()), (409, json!(id)));
    let s = sim.stats();
    assert!(s.duplicates.is_empty());
    assert_eq!((s.duplicate_creates, s.creates["orders"]), (0, 2));
}

#[test]
fn without_unique_refs_duplicates_are_created_and_listed() {
    let sim = start(SimConfig {
        unique_refs: false,
        ..Default::default()
    });
    let c = Client::new(&sim);
    let a = c.post(
        "/api/v1/invoices",
        &json!({"external_ref": "INV-1", "invoice_no": "INV-1", "lines": []}),
    );
    let b = c.post(
        "/api/v1/invoices",
        &json!({"external_ref": "INV-1", "invoice_no": "INV-1", "lines": []}),
    );
    assert_eq!((a.status, b.status), (201, 201));
    assert_eq!(c.lookup("invoices", "INV-1").len(), 2);
    let s = sim.stats();
    assert_eq!(s.duplicate_creates, 1);
    assert_eq!(s.duplicates.len(), 1);
    let d = &s.duplicates[0];
    assert_eq!(
        (d.collection.as_str(), d.external_ref.as_str()),
        ("invoices", "INV-1")
    );
    assert_eq!(d.ids, vec![a.id(), b.id()]);
}

#[test]
fn validation_answers_422_with_the_field() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    let cases = [
        (
            "customers",
            json!({"external_ref": "C1", "customer_id": "C1"}),
            "name",
        ),
        (
            "customers",
            json!({"customer_id": "C1", "name": "A"}),
            "external_ref",
        ),
        ("products", json!({"external_ref": "S1", "sku": ""}), "sku"),
        (
            "suppliers",
            json!({"external_ref": "V1", "name": "A"}),
            "supplier_id",
        ),
        (
            "orders",
            json!({"external_ref": "O1", "order_no": "O1", "lines": []}),
            "lines",
        ),
        (
            "invoices",
            json!({"external_ref": "I1", "invoice_no": "I1"}),
            "lines",
        ),
        ("shipments", json!({"external_ref": "SH1"}), "shipment_id"),
        (
            "order-acks",
            json!({"external_ref": "A1", "order_no": "O1"}),
            "status",
        ),
    ];
    for (coll, body, field) in cases {
        let r = c.post(&format!("/api/v1/{coll}"), &body);
        assert_eq!(r.status, 422, "{coll} {body}");
        assert_eq!(r.body["field"], field, "{coll}: {}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains(field));
    }
    let r = c.post("/api/v1/orders", &order("O1", "C-9"));
    assert_eq!(
        (r.status, r.body["field"].clone()),
        (422, json!("customer_id"))
    );
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("unknown customer"),
        "{}",
        r.body
    );
    assert_eq!(c.post("/api/v1/customers", &customer("C-9")).status, 201);
    assert_eq!(c.post("/api/v1/orders", &order("O1", "C-9")).status, 201);
    // A patch that empties a required field is refused and changes nothing.
    let id = c.lookup("customers", "C-9")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = c.patch(&format!("/api/v1/customers/{id}"), &json!({"name": null}));
    assert_eq!((p.status, p.body["field"].clone()), (422, json!("name")));
    assert_eq!(c.get(&format!("/api/v1/customers/{id}")).body["version"], 1);
    assert_eq!(sim.stats().records.values().sum::<u64>(), 2);
}

#[test]
fn validation_switches_turn_the_checks_off() {
    let sim = start(SimConfig {
        check_order_customer: false,
        ..Default::default()
    });
    let c = Client::new(&sim);
    assert_eq!(c.post("/api/v1/orders", &order("O1", "nobody")).status, 201);
    assert_eq!(
        c.post("/api/v1/customers", &json!({"external_ref": "C1"}))
            .status,
        422
    );
    sim.set_config(SimConfig {
        validate: false,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        c.post("/api/v1/customers", &json!({"external_ref": "C1"}))
            .status,
        201
    );
    assert_eq!(c.post("/api/v1/orders", &order("O2", "nobody")).status, 201);
    assert_eq!(
        c.post("/api/v1/shipments", &json!({"note": "no key at all"}))
            .status,
        201
    );
}

#[test]
fn bad_requests_are_json_errors_never_crashes() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    let raw = |m: &str, p: &str, b: Option<&str>| c.try_send(m, p, b, &[]).unwrap();
    let cases = [
        ("POST", "/api/v1/orders", Some("{not json"), 400),
        ("POST", "/api/v1/orders", Some("[1,2]"), 400),
        (
            "POST",
            "/api/v1/orders",
            Some(r#"{"external_ref": 7}"#),
            400,
        ),
        ("POST", "/api/v1/widgets", Some("{}"), 404),
        ("GET", "/api/v1/orders/ord_1/lines", None, 404),
        ("PUT", "/api/v1/orders/ord_1", Some("{}"), 405),
        ("DELETE", "/api/v1/orders", None, 405),
        ("GET", "/nowhere", None, 404),
        ("DELETE", "/_sim/stats", None, 405),
    ];
    for (m, p, b, want) in cases {
        let r = raw(m, p, b);
        assert_eq!(r.status, want, "{m} {p}: {}", r.body);
        assert!(r.body["error"].is_string(), "{m} {p}: {}", r.body);
    }
    let big = format!(
        r#"{{"external_ref": "X", "pad": "{}"}}"#,
        "x".repeat(tallyman::erpsim::MAX_BODY_BYTES)
    );
    let r = c.try_send("POST", "/api/v1/products", Some(&big), &[]);
    // hyper may close the connection while the client is still sending the body.
    if let Ok(r) = r {
        assert_eq!(r.status, 413);
        assert!(r.body["error"].is_string());
    }
    assert!(c.lookup("products", "X").is_empty());
    assert_eq!(c.get("/api/v1/orders").status, 200, "still serving");
}

#[test]
fn control_routes_change_config_list_records_and_reset() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    let r = c.send(
        "PATCH",
        "/_sim/config",
        Some(&json!({"unique_refs": false, "latency_ms": 1})),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body["unique_refs"].clone(), r.body["validate"].clone()),
        (json!(false), json!(true))
    );
    assert!(!sim.config().unique_refs);
    for bad in [
        json!({"status_500": 2.0}),
        json!({"unique_ref": false}),
        json!({"rate_limit_per_minute": 0}),
    ] {
        let r = c.put("/_sim/config", &bad);
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.body["error"].is_string());
    }
    assert!(
        !sim.config().unique_refs,
        "a refused config changes nothing"
    );
    assert!(sim
        .set_config(SimConfig {
            drop_after: -1.0,
            ..Default::default()
        })
        .is_err());
    assert_eq!(
        c.put("/_sim/faults", &json!(["503", "explode"])).status,
        400
    );
    assert_eq!(c.put("/_sim/faults", &json!({"a": 1})).status, 400);
    c.script(&["503", "slow:5", "ok"]);
    assert_eq!(
        c.get("/_sim/faults").body,
        json!(["status_503", "slow:5", "ok"])
    );
    c.script(&[]);

    c.post("/api/v1/customers", &customer("C1"));
    c.post("/api/v1/products", &product("S1"));
    let all = c.get("/_sim/records").body;
    assert_eq!(all.as_object().unwrap().len(), 7);
    assert_eq!(
        (
            all["customers"][0]["external_ref"].clone(),
            all["orders"].clone()
        ),
        (json!("C1"), json!([]))
    );
    assert_eq!(c.post("/_sim/reset", &json!({})).status, 200);
    assert_eq!(c.get("/_sim/records").body["customers"], json!([]));
    assert_eq!(sim.stats().requests_total, 0);
    assert!(!sim.config().unique_refs, "reset keeps the configuration");
}

#[test]
fn records_persist_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("erp.json");
    let cfg = SimConfig {
        data_file: Some(file.clone()),
        ..Default::default()
    };
    let (cid, oid) = {
        let sim = start(cfg.clone());
        let c = Client::new(&sim);
        let cid = c.post("/api/v1/customers", &customer("C1")).id();
        c.patch(
            &format!("/api/v1/customers/{cid}"),
            &json!({"city": "Basel"}),
        );
        let gone = c.post("/api/v1/products", &product("S1")).id();
        c.delete(&format!("/api/v1/products/{gone}"));
        // Last, so its remembered answer must be on disk with the record itself.
        let oid = c
            .post_key("/api/v1/orders", &order("PO-1", "C1"), "k-PO-1")
            .id();
        sim.stop();
        (cid, oid)
    };
    let sim = start(cfg.clone());
    let c = Client::new(&sim);
    let got = c.get(&format!("/api/v1/customers/{cid}"));
    assert_eq!(
        (got.body["city"].clone(), got.body["version"].clone()),
        (json!("Basel"), json!(2))
    );
    assert_eq!(c.lookup("orders", "PO-1")[0]["id"], oid.as_str());
    assert!(c.lookup("products", "S1").is_empty());
    // The idempotent answer survived, and ids are not reused after the restart.
    let replay = c.post_key("/api/v1/orders", &order("PO-1", "C1"), "k-PO-1");
    assert_eq!((replay.status, replay.id()), (200, oid));
    assert_eq!(c.post("/api/v1/products", &product("S2")).id(), "prd_2");
    assert_eq!(
        c.post("/api/v1/customers", &customer("C1")).status,
        409,
        "index rebuilt"
    );
    drop(sim);

    std::fs::write(
        &file,
        b"{\"format\": \"tallyman-erp-sim/1\", \"collections\": 5}",
    )
    .unwrap();
    let err = Simulator::start("127.0.0.1:0", cfg)
        .err()
        .expect("a damaged file is refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn binary_help_lists_the_switches() {
    let out = Command::new(env!("CARGO_BIN_EXE_tallyman-erp-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--data",
        "--token",
        "--rate-limit",
        "--no-idempotency",
        "--drop-after",
        "--slow-ms",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_tallyman-erp-sim"))
        .args(["--status-500", "3"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("status_500"));
}

#[test]
fn binary_prints_its_address_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tallyman-erp-sim"))
        .args(["--listen", "127.0.0.1:0", "--token", "t"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    let c = Client {
        agent: agent(None),
        base,
        headers: vec![],
    };
    let r = c.get("/api/v1/orders");
    let stats = c.get("/_sim/stats");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.status, 401);
    assert_eq!(stats.body["requests"]["GET"]["401"], 1);
}
