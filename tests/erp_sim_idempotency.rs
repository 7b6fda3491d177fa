//! `Idempotency-Key` in the simulator over real HTTP: a completed answer is replayed for a
//! retry (also after the key order of the JSON changed), another request under the same key is
//! a 422, a retry while the first is still being processed a 409, a refused first attempt
//! leaves no trace, and with the switch off the header means nothing.

mod erp_sim_support;

use erp_sim_support::*;
use serde_json::json;
use tallyman::erpsim::SimConfig;

#[test]
fn idempotency_key_replays_and_refuses_another_payload() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    let body = order("PO-1", "C-1");
    let _ = c.post("/api/v1/customers", &customer("C-1"));
    let first = c.post_key("/api/v1/orders", &body, "order/PO-1");
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    // The same request, its keys in another order: replayed, not created again.
    let mut reordered = serde_json::Map::new();
    for (k, v) in body.as_object().unwrap().iter().rev() {
        reordered.insert(k.clone(), v.clone());
    }
    let text = serde_json::to_string(&reordered)
        .unwrap()
        .replace(',', ", ");
    let again = c
        .try_send(
            "POST",
            "/api/v1/orders",
            Some(&text),
            &[("idempotency-key", "order/PO-1")],
        )
        .unwrap();
    assert_eq!((again.status, &again.body), (200, &first.body));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    let mut other = body.clone();
    other["currency"] = json!("USD");
    let r = c.post_key("/api/v1/orders", &other, "order/PO-1");
    assert_eq!(r.status, 422, "{}", r.body);
    let s = sim.stats();
    assert_eq!(
        (
            s.creates["orders"],
            s.idempotent_replays,
            s.idempotency_mismatches
        ),
        (1, 1, 1)
    );
    assert_eq!(c.lookup("orders", "PO-1").len(), 1);
}

#[test]
fn idempotent_patch_is_applied_once() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    let id = c.post("/api/v1/products", &product("S1")).id();
    let path = format!("/api/v1/products/{id}");
    let change = json!({"price": "2.00"});
    let a = c.send("PATCH", &path, Some(&change), &[("idempotency-key", "p1")]);
    let b = c.send("PATCH", &path, Some(&change), &[("idempotency-key", "p1")]);
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.body, b.body);
    assert_eq!(c.get(&path).body["version"], 2);
    assert_eq!(sim.stats().updates["products"][&id], 1);
}

#[test]
fn a_retry_while_the_first_is_in_flight_is_a_conflict() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    c.script(&["hold"]);
    let base = sim.base_url();
    let first = std::thread::spawn(move || {
        let c = Client {
            agent: agent(None),
            base,
            headers: vec![],
        };
        c.post_key("/api/v1/products", &product("S1"), "k-1")
    });
    wait_for("the first request to be held", || sim.stats().held == 1);
    let retry = c.post_key("/api/v1/products", &product("S1"), "k-1");
    assert_eq!(retry.status, 409, "{}", retry.body);
    assert!(
        c.lookup("products", "S1").is_empty(),
        "held before applying"
    );
    assert_eq!(sim.release(), 1);
    let first = first.join().unwrap();
    assert_eq!(first.status, 201);
    let later = c.post_key("/api/v1/products", &product("S1"), "k-1");
    assert_eq!((later.status, later.id()), (200, first.id()));
    let s = sim.stats();
    assert_eq!(
        (
            s.idempotency_in_flight_conflicts,
            s.creates["products"],
            s.held
        ),
        (1, 1, 0)
    );
}

#[test]
fn a_refused_first_attempt_leaves_the_key_free() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    c.script(&["503"]);
    let r = c.post_key("/api/v1/products", &product("S1"), "k");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    let bad = c.post_key("/api/v1/products", &json!({"external_ref": "S1"}), "k2");
    assert_eq!(bad.status, 422);
    assert_eq!(
        c.post_key("/api/v1/products", &product("S1"), "k").status,
        201
    );
    assert_eq!(
        c.post_key("/api/v1/products", &product("S2"), "k2").status,
        201,
        "k2 was not kept"
    );
    assert_eq!(sim.stats().idempotent_replays, 0);
}

#[test]
fn without_idempotency_the_header_is_ignored() {
    let sim = start(SimConfig {
        idempotency: false,
        unique_refs: false,
        ..Default::default()
    });
    let c = Client::new(&sim);
    let a = c.post_key("/api/v1/products", &product("S1"), "k");
    let b = c.post_key("/api/v1/products", &product("S1"), "k");
    assert_eq!((a.status, b.status), (201, 201));
    assert_ne!(a.id(), b.id());
    assert_eq!(
        c.post_key("/api/v1/products", &product("S2"), "k").status,
        201
    );
    assert_eq!(sim.stats().idempotent_replays, 0);
}

#[test]
fn malformed_idempotency_keys_are_refused() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    let long = "k".repeat(256);
    let r = c.post_key("/api/v1/products", &product("S1"), &long);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(c.lookup("products", "S1").is_empty());
}
