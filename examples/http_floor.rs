//! The floor for the delivery benchmark: how fast a bare client creates records in the ERP
//! simulator over loopback — the same HTTP client (ureq), the same concurrency and request
//! bodies, but no ledger, no queue and no rate limit. `scripts/bench-delivery.sh` reports
//! tallyman's delivery rate as a ratio of this.
//!
//!     cargo run --release --example http_floor -- URL TOKEN RECORDS CONCURRENCY

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, token) = (args[1].clone(), args[2].clone());
    let n: usize = args[3].parse().unwrap();
    let concurrency: usize = args[4].parse().unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let next = AtomicUsize::new(0);
    let ok = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..concurrency {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = format!(
                    "{{\"customer_id\":\"F-{i:07}\",\"name\":\"Floor {i}\",\"city\":\"Berlin\",\"country\":\"DE\",\"external_ref\":\"F-{i:07}\"}}"
                );
                let resp = agent
                    .post(format!("{url}/api/v1/customers"))
                    .header("Authorization", &format!("Bearer {token}"))
                    .header("Content-Type", "application/json")
                    .send(body.as_bytes());
                if resp.is_ok_and(|r| r.status().is_success()) {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} {:.3} {:.0}",
        ok.load(Ordering::Relaxed),
        secs,
        ok.load(Ordering::Relaxed) as f64 / secs
    );
}
