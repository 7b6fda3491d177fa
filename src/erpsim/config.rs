//! The simulator's switches: one struct that is at once the in-process configuration, the
//! JSON of `PUT /_sim/config` and what the command line fills in, so a test can break the ERP
//! and fix it again while tallyman runs against it, with the same words everywhere.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Every switch of the simulator. `Default` is a well-behaved ERP: no auth, no limits, no
/// faults, idempotency keys honoured, unique business keys, validation on.
///
/// Probabilities are per API request, drawn from one seeded generator, so a run with the same
/// seed and the same sequence of requests injects the same faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// When set, API requests need `Authorization: Bearer <token>` (else 401).
    pub token: Option<String>,
    /// Every API request is answered 403.
    pub forbidden: bool,
    /// API requests admitted per sliding 60-second window; over it → 429 with Retry-After.
    pub rate_limit_per_minute: Option<u32>,
    /// Honour `Idempotency-Key` on POST and PATCH; off, the header is ignored.
    pub idempotency: bool,
    /// How long a completed key is remembered.
    pub idempotency_ttl_secs: u64,
    /// A create whose `external_ref` exists in the collection → 409 with the existing id.
    pub unique_refs: bool,
    /// Required fields per collection → 422 when missing.
    pub validate: bool,
    /// With `validate`: an order's `customer_id` must name an existing customer.
    pub check_order_customer: bool,
    /// Fixed delay before each API request is processed (not holding any lock).
    pub latency_ms: u64,
    /// Seed of the fault generator (re-seeded whenever the configuration is set).
    pub seed: u64,
    /// Probability of a 429 with `Retry-After: 1`, request not applied.
    pub status_429: f64,
    /// Probability of a 500, request not applied.
    pub status_500: f64,
    /// Probability of a 503 with `Retry-After: 1`, request not applied.
    pub status_503: f64,
    /// Probability of closing the connection without answering, request not applied.
    pub reset_before: f64,
    /// Probability of applying the request, then closing the connection without answering.
    pub drop_after: f64,
    /// Probability of applying the request, then answering only after `slow_ms`.
    pub slow: f64,
    pub slow_ms: u64,
    /// Where the records live across restarts (`--data`); `None` keeps them in memory. Fixed
    /// at start: not part of the JSON, and `set_config` keeps the running value.
    #[serde(skip)]
    pub data_file: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            token: None,
            forbidden: false,
            rate_limit_per_minute: None,
            idempotency: true,
            idempotency_ttl_secs: 86_400,
            unique_refs: true,
            validate: true,
            check_order_customer: true,
            latency_ms: 0,
            seed: 0,
            status_429: 0.0,
            status_500: 0.0,
            status_503: 0.0,
            reset_before: 0.0,
            drop_after: 0.0,
            slow: 0.0,
            slow_ms: 5_000,
            data_file: None,
        }
    }
}

impl SimConfig {
    /// The fault probabilities in the order the generator tests them.
    pub(crate) fn fault_rates(&self) -> [(Fault, f64); 6] {
        [
            (Fault::Status429, self.status_429),
            (Fault::Status500, self.status_500),
            (Fault::Status503, self.status_503),
            (Fault::ResetBefore, self.reset_before),
            (Fault::DropAfter, self.drop_after),
            (Fault::Slow(None), self.slow),
        ]
    }

    /// Refuses settings that cannot mean anything, so a typo fails loudly instead of
    /// silently running a well-behaved ERP.
    pub fn check(&self) -> Result<(), String> {
        let mut sum = 0.0;
        for (fault, p) in self.fault_rates() {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!(
                    "{} must be a probability in 0..=1, not {p}",
                    fault.name()
                ));
            }
            sum += p;
        }
        if sum > 1.0 + 1e-9 {
            return Err(format!("fault probabilities add up to {sum}, more than 1"));
        }
        if self.rate_limit_per_minute == Some(0) {
            return Err("rate_limit_per_minute must be at least 1 (omit it for no limit)".into());
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err("token must not be empty (omit it for no auth)".into());
        }
        if self.idempotency_ttl_secs == 0 {
            return Err("idempotency_ttl_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// What the simulator does to one API request instead of (or besides) answering it normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally (a scripted pass-through).
    None,
    Status429,
    Status500,
    Status503,
    ResetBefore,
    DropAfter,
    /// Apply, then answer after this many ms (`None`: the configured `slow_ms`).
    Slow(Option<u64>),
    /// Claim the idempotency key, then wait before applying until `POST /_sim/release`, so a
    /// test can observe a request that is still being processed without racing a timer.
    Hold,
}

impl Fault {
    /// Parses the words of `PUT /_sim/faults`: `ok`, `429`, `500`, `503`, `reset_before`,
    /// `drop_after`, `slow`, `slow:MS`, `hold`.
    pub fn parse(s: &str) -> Option<Fault> {
        let f = match s {
            "ok" | "none" => Fault::None,
            "429" | "status_429" => Fault::Status429,
            "500" | "status_500" => Fault::Status500,
            "503" | "status_503" => Fault::Status503,
            "reset_before" => Fault::ResetBefore,
            "drop_after" => Fault::DropAfter,
            "slow" => Fault::Slow(None),
            "hold" => Fault::Hold,
            _ => {
                return s
                    .strip_prefix("slow:")?
                    .parse()
                    .ok()
                    .map(|ms| Fault::Slow(Some(ms)))
            }
        };
        Some(f)
    }

    /// The word used in stats and in `GET /_sim/faults`.
    pub fn name(self) -> String {
        match self {
            Fault::None => "ok".into(),
            Fault::Status429 => "status_429".into(),
            Fault::Status500 => "status_500".into(),
            Fault::Status503 => "status_503".into(),
            Fault::ResetBefore => "reset_before".into(),
            Fault::DropAfter => "drop_after".into(),
            Fault::Slow(None) => "slow".into(),
            Fault::Slow(Some(ms)) => format!("slow:{ms}"),
            Fault::Hold => "hold".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_well_behaved_and_valid() {
        let c = SimConfig::default();
        assert!(c.check().is_ok());
        assert!(c.idempotency && c.unique_refs && c.validate && c.check_order_customer);
        assert!(c.fault_rates().iter().all(|(_, p)| *p == 0.0));
    }

    #[test]
    fn partial_json_fills_defaults_and_typos_are_refused() {
        let c: SimConfig = serde_json::from_str(r#"{"status_503": 0.5}"#).unwrap();
        assert_eq!(c.status_503, 0.5);
        assert!(c.idempotency);
        assert!(serde_json::from_str::<SimConfig>(r#"{"status503": 0.5}"#).is_err());
    }

    #[test]
    fn nonsense_settings_are_refused() {
        let bad = |c: SimConfig| c.check().unwrap_err();
        assert!(bad(SimConfig {
            status_500: 1.5,
            ..Default::default()
        })
        .contains("status_500"));
        let sum = SimConfig {
            status_500: 0.6,
            reset_before: 0.6,
            ..Default::default()
        };
        assert!(bad(sum).contains("add up"));
        assert!(bad(SimConfig {
            rate_limit_per_minute: Some(0),
            ..Default::default()
        })
        .contains("rate_limit"));
        assert!(bad(SimConfig {
            token: Some(" ".into()),
            ..Default::default()
        })
        .contains("token"));
    }

    #[test]
    fn fault_words_round_trip() {
        for w in [
            "ok",
            "status_429",
            "status_500",
            "status_503",
            "reset_before",
            "drop_after",
        ] {
            assert_eq!(Fault::parse(w).unwrap().name(), w);
        }
        assert_eq!(Fault::parse("503"), Some(Fault::Status503));
        assert_eq!(Fault::parse("slow:250"), Some(Fault::Slow(Some(250))));
        assert_eq!(Fault::parse("slow:x"), None);
        assert_eq!(Fault::parse("boom"), None);
    }
}
