//! The simulator's faults over real HTTP: scripted status answers, resets before and after
//! applying, slow answers against a client timeout, seeded random faults that repeat, and
//! concurrent keep-alive clients — including the case delivery must survive: retrying with
//! one Idempotency-Key through resets and dropped answers leaves exactly one record per key.

mod erp_sim_support;

use std::time::Duration;

use erp_sim_support::*;
use serde_json::json;
use tallyman::erpsim::SimConfig;

/// The connection died: no HTTP status reached the client.
fn assert_transport_error(r: Result<Reply, ureq::Error>) {
    match r {
        Err(ureq::Error::Io(e)) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::BrokenPipe
            ),
            "{e:?}"
        ),
        Err(e) => panic!("expected a reset, got {e:?}"),
        Ok(r) => panic!("expected a reset, got HTTP {} {}", r.status, r.body),
    }
}

#[test]
fn scripted_status_faults_answer_without_applying() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    c.script(&["503", "500", "429"]);
    let statuses: Vec<(u16, Option<String>)> = (0..3)
        .map(|_| {
            let r = c.post("/api/v1/products", &product("S1"));
            (r.status, r.header("retry-after").map(str::to_owned))
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (503, Some("1".into())),
            (500, None),
            (429, Some("1".into()))
        ]
    );
    assert!(c.lookup("products", "S1").is_empty());
    assert_eq!(c.post("/api/v1/products", &product("S1")).status, 201);
    let s = sim.stats();
    assert_eq!(
        (
            s.faults["status_503"],
            s.faults["status_500"],
            s.faults["status_429"]
        ),
        (1, 1, 1)
    );
    assert_eq!((s.status_429_sent, s.rate_limited), (1, 0));
}

#[test]
fn reset_before_does_not_apply() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    c.script(&["reset_before"]);
    assert_transport_error(c.try_send(
        "POST",
        "/api/v1/products",
        Some(&product("S1").to_string()),
        &[],
    ));
    assert!(c.lookup("products", "S1").is_empty());
    let s = sim.stats();
    assert_eq!(
        (s.count("POST", "aborted"), s.faults["reset_before"]),
        (1, 1)
    );
    assert!(s.creates.is_empty());
}

#[test]
fn drop_after_applies_and_a_keyed_retry_gets_the_same_record() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    c.script(&["drop_after"]);
    let body = product("S1").to_string();
    let key = [("idempotency-key", "product/S1")];
    assert_transport_error(c.try_send("POST", "/api/v1/products", Some(&body), &key));
    let found = c.lookup("products", "S1");
    assert_eq!(found.len(), 1, "applied although unanswered");
    let retry = c
        .try_send("POST", "/api/v1/products", Some(&body), &key)
        .unwrap();
    assert_eq!(
        (retry.status, retry.body["id"].clone()),
        (200, found[0]["id"].clone())
    );
    // Without the key, a retry meets the unique business key instead.
    let plain = c.post("/api/v1/products", &product("S1"));
    assert_eq!(
        (plain.status, plain.body["id"].clone()),
        (409, found[0]["id"].clone())
    );
    assert_eq!(sim.stats().creates["products"], 1);
}

#[test]
fn drop_after_on_a_patch_applies_it() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    let id = c.post("/api/v1/customers", &customer("C1")).id();
    c.script(&["drop_after"]);
    let path = format!("/api/v1/customers/{id}");
    assert_transport_error(c.try_send("PATCH", &path, Some(r#"{"city": "Basel"}"#), &[]));
    let got = c.get(&path);
    assert_eq!(
        (got.body["city"].clone(), got.body["version"].clone()),
        (json!("Basel"), json!(2))
    );
}

#[test]
fn slow_answer_times_out_the_client_after_applying() {
    let sim = start(SimConfig::default());
    let c = Client::new(&sim);
    c.script(&["slow:60000"]);
    let impatient = Client::with_timeout(&sim, Duration::from_millis(1500));
    match impatient.try_send(
        "POST",
        "/api/v1/products",
        Some(&product("S1").to_string()),
        &[],
    ) {
        Err(ureq::Error::Timeout(_)) => {}
        other => panic!(
            "expected a client timeout, got {:?}",
            other.map(|r| r.status)
        ),
    }
    // Applied before the delay; the client gave up on the answer.
    assert_eq!(c.lookup("products", "S1").len(), 1);
    assert_eq!(sim.stats().faults["slow"], 1);
    wait_for("the abandoned request to be counted", || {
        sim.stats().count("POST", "client_closed") == 1
    });
    assert_eq!(sim.stats().in_flight, 0);
}

#[test]
fn configured_slow_and_latency_still_answer() {
    let sim = start(SimConfig {
        slow: 1.0,
        slow_ms: 20,
        latency_ms: 20,
        ..Default::default()
    });
    let c = Client::new(&sim);
    assert_eq!(c.post("/api/v1/products", &product("S1")).status, 201);
    assert_eq!(c.lookup("products", "S1").len(), 1);
    assert_eq!(sim.stats().faults["slow"], 2);
}

/// Each request's outcome: its status, or 0 for a dead connection.
fn outcomes(c: &Client, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| {
            c.try_send("GET", "/api/v1/orders", None, &[])
                .map(|r| r.status)
                .unwrap_or(0)
        })
        .collect()
}

#[test]
fn seeded_random_faults_repeat_and_are_counted() {
    let cfg = SimConfig {
        seed: 42,
        status_429: 0.1,
        status_500: 0.1,
        status_503: 0.1,
        reset_before: 0.1,
        drop_after: 0.1,
        ..Default::default()
    };
    let sim = start(cfg);
    let c = Client::new(&sim);
    let first = outcomes(&c, 60);
    let s = sim.stats();
    for (status, fault) in [
        (429, "status_429"),
        (500, "status_500"),
        (503, "status_503"),
    ] {
        let seen = first.iter().filter(|x| **x == status).count() as u64;
        assert!(seen > 0, "{fault} never drawn in 60 requests");
        assert_eq!(s.faults[fault], seen);
    }
    let dead = first.iter().filter(|x| **x == 0).count() as u64;
    assert_eq!(dead, s.faults["reset_before"] + s.faults["drop_after"]);
    assert_eq!(s.count("GET", "aborted"), dead);
    // A reset re-seeds: the same requests meet the same faults.
    assert_eq!(c.post("/_sim/reset", &json!({})).status, 200);
    assert_eq!(outcomes(&c, 60), first);
}

#[test]
fn concurrent_keep_alive_clients_create_every_record_once() {
    let sim = start(SimConfig {
        latency_ms: 5,
        ..Default::default()
    });
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let base = sim.base_url();
            std::thread::spawn(move || {
                let c = Client {
                    agent: agent(None),
                    base,
                    headers: vec![],
                };
                (0..25)
                    .map(|i| {
                        c.post("/api/v1/products", &product(&format!("T{t}-{i}")))
                            .status
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap().iter().all(|s| *s == 201));
    }
    let s = sim.stats();
    assert_eq!(
        (s.creates["products"], s.records["products"], s.in_flight),
        (200, 200, 0)
    );
    assert!(s.duplicates.is_empty());
    let c = Client::new(&sim);
    let page = c.get("/api/v1/products?per_page=500").body;
    assert_eq!(page.as_array().unwrap().len(), 200);
}

/// What delivery has to do, in miniature: retry every create with the same key until it gets
/// an answer. With idempotency on and unique keys off, only the keys prevent duplicates.
fn deliver(c: &Client, key: &str) -> u16 {
    let body = product(key).to_string();
    for _ in 0..50 {
        match c.try_send(
            "POST",
            "/api/v1/products",
            Some(&body),
            &[("idempotency-key", key)],
        ) {
            Ok(r) if r.status < 500 && r.status != 429 && r.status != 409 => return r.status,
            _ => {}
        }
    }
    panic!("{key}: no answer in 50 tries");
}

#[test]
fn keyed_retries_through_random_faults_create_each_key_once() {
    let cfg = SimConfig {
        unique_refs: false,
        seed: 7,
        status_503: 0.1,
        reset_before: 0.1,
        drop_after: 0.2,
        ..Default::default()
    };
    let sim = start(cfg);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let base = sim.base_url();
            std::thread::spawn(move || {
                let c = Client {
                    agent: agent(None),
                    base,
                    headers: vec![],
                };
                (0..10)
                    .map(|i| deliver(&c, &format!("K{t}-{i}")))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        answers.iter().all(|s| *s == 201 || *s == 200),
        "{answers:?}"
    );
    let s = sim.stats();
    assert!(s.faults["drop_after"] > 0 && s.idempotent_replays > 0);
    assert_eq!((s.records["products"], s.creates["products"]), (80, 80));
    assert!(s.duplicates.is_empty(), "{:?}", s.duplicates);
    assert_eq!(s.duplicate_creates, 0);
}
