//! What the simulator saw, for tests to assert on: requests by method and status, creates,
//! duplicates of business keys, idempotent replays, rate-limit refusals, the busiest
//! 60 seconds and updates per record. The same struct is `GET /_sim/stats` and
//! `Simulator::stats()`, so a test can use either and compare like with like.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A business key held by more than one record of a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    pub collection: String,
    pub external_ref: String,
    /// In creation order.
    pub ids: Vec<String>,
}

/// Counters since start (or the last `POST /_sim/reset`). API requests only; `/_sim` is not
/// counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub requests_total: u64,
    /// Method → status → count. A connection the simulator closed without an answer (a
    /// `reset_before` or `drop_after` fault) counts as status `"aborted"`; a request whose
    /// client hung up before the answer (e.g. timed out during a delay) as `"client_closed"`.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Records created per collection (idempotent replays not included).
    pub creates: BTreeMap<String, u64>,
    /// Creates that added a second record for an existing business key (`unique_refs` off).
    pub duplicate_creates: u64,
    /// Business keys held by more than one record now.
    pub duplicates: Vec<Duplicate>,
    /// Answers replayed for a repeated `Idempotency-Key`.
    pub idempotent_replays: u64,
    /// 422s for a key reused with another request.
    pub idempotency_mismatches: u64,
    /// 409s for a key whose first request was still being processed.
    pub idempotency_in_flight_conflicts: u64,
    /// Requests refused by `rate_limit_per_minute`.
    pub rate_limited: u64,
    /// Every 429 sent, by the limiter or injected.
    pub status_429_sent: u64,
    /// Most API requests received in any sliding 60 seconds, refused ones included.
    pub max_requests_in_60s: u64,
    /// Faults injected, by name (`status_503`, `reset_before`, `drop_after`, `slow`, ...).
    pub faults: BTreeMap<String, u64>,
    /// Collection → id → number of updates applied.
    pub updates: BTreeMap<String, BTreeMap<String, u64>>,
    pub deletes: BTreeMap<String, u64>,
    /// Records per collection now.
    pub records: BTreeMap<String, u64>,
    /// API requests being processed now, and of those, held by a `hold` fault.
    pub in_flight: u64,
    pub held: u64,
}

impl Stats {
    pub fn count_request(&mut self, method: &str, status: &str) {
        self.requests_total += 1;
        let by_status = self.requests.entry(method.to_owned()).or_default();
        *by_status.entry(status.to_owned()).or_default() += 1;
        if status == "429" {
            self.status_429_sent += 1;
        }
    }

    pub fn count_fault(&mut self, name: &str) {
        *self.faults.entry(name.to_owned()).or_default() += 1;
    }

    pub fn count_update(&mut self, collection: &str, id: &str) {
        let per_id = self.updates.entry(collection.to_owned()).or_default();
        *per_id.entry(id.to_owned()).or_default() += 1;
    }

    /// How many requests of this method got this status (0 if none).
    pub fn count(&self, method: &str, status: &str) -> u64 {
        self.requests
            .get(method)
            .and_then(|m| m.get(status))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_method_and_status_and_429s_apart() {
        let mut s = Stats::default();
        s.count_request("POST", "201");
        s.count_request("POST", "201");
        s.count_request("GET", "429");
        assert_eq!(
            (
                s.count("POST", "201"),
                s.count("GET", "429"),
                s.count("GET", "200")
            ),
            (2, 1, 0)
        );
        assert_eq!((s.requests_total, s.status_429_sent), (3, 1));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["requests"]["POST"]["201"], 2);
        assert_eq!(serde_json::from_value::<Stats>(json).unwrap(), s);
    }
}
