//! `Idempotency-Key` semantics after draft-ietf-httpapi-idempotency-key-header and Stripe:
//! the first completed answer for a key is kept and replayed for a retry of the same request;
//! the same key with another request is a client error (422); a retry while the first attempt
//! is still being processed is a conflict (409). Only successful answers are kept: a request
//! refused before it did anything (validation, a conflict, an injected 5xx) leaves no trace,
//! so its retry is executed afresh, as Stripe does.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest key accepted (Stripe's limit); longer ones are a 400.
pub const MAX_KEY_LEN: usize = 255;

/// What identifies "the same request": method, path and the JSON body. Bodies compare as JSON
/// values, so key order and whitespace do not make a retry a different request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub method: String,
    pub path: String,
    pub body: Value,
}

/// A completed answer, kept until `expires` (Unix seconds, so it survives a restart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub key: String,
    pub fingerprint: Fingerprint,
    pub status: u16,
    pub body: Value,
    pub expires: u64,
}

#[derive(Debug)]
enum Entry {
    InFlight(Fingerprint),
    Done(Stored),
}

#[derive(Debug, PartialEq)]
pub enum Claim {
    /// First sight of the key: it is now in flight and the caller must `complete` or `release`.
    Fresh,
    Replay {
        status: u16,
        body: Value,
    },
    /// Same key, different request.
    Mismatch,
    /// Same key, first attempt not finished.
    InFlight,
}

#[derive(Debug, Default)]
pub struct IdempotencyStore {
    entries: HashMap<String, Entry>,
    last_sweep: u64,
}

impl IdempotencyStore {
    pub fn claim(&mut self, key: &str, fp: &Fingerprint, now: u64) -> Claim {
        self.sweep(now);
        match self.entries.get(key) {
            Some(Entry::InFlight(_)) => Claim::InFlight,
            Some(Entry::Done(s)) if s.expires > now => {
                if &s.fingerprint == fp {
                    Claim::Replay {
                        status: s.status,
                        body: s.body.clone(),
                    }
                } else {
                    Claim::Mismatch
                }
            }
            _ => {
                self.entries
                    .insert(key.to_owned(), Entry::InFlight(fp.clone()));
                Claim::Fresh
            }
        }
    }

    /// Keeps a successful answer for replay; anything else frees the key for a fresh attempt.
    pub fn complete(&mut self, key: &str, status: u16, body: &Value, expires: u64) {
        let Some(Entry::InFlight(fp)) = self.entries.remove(key) else {
            return;
        };
        if (200..300).contains(&status) {
            let stored = Stored {
                key: key.to_owned(),
                fingerprint: fp,
                status,
                body: body.clone(),
                expires,
            };
            self.entries.insert(key.to_owned(), Entry::Done(stored));
        }
    }

    /// Forgets an in-flight claim whose request ended without an answer to keep.
    pub fn release(&mut self, key: &str) {
        if matches!(self.entries.get(key), Some(Entry::InFlight(_))) {
            self.entries.remove(key);
        }
    }

    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e, Entry::InFlight(_)))
            .count()
    }

    /// The completed answers, for persistence.
    pub fn stored(&self) -> Vec<Stored> {
        let mut v: Vec<Stored> = self
            .entries
            .values()
            .filter_map(|e| match e {
                Entry::Done(s) => Some(s.clone()),
                Entry::InFlight(_) => None,
            })
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    pub fn restore(stored: Vec<Stored>) -> IdempotencyStore {
        let entries = stored
            .into_iter()
            .map(|s| (s.key.clone(), Entry::Done(s)))
            .collect();
        IdempotencyStore {
            entries,
            last_sweep: 0,
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Drops expired answers, at most once a second: the scan is linear in the keys held.
    fn sweep(&mut self, now: u64) {
        if now > self.last_sweep {
            self.last_sweep = now;
            self.entries.retain(|_, e| match e {
                Entry::Done(s) => s.expires > now,
                Entry::InFlight(_) => true,
            });
        }
    }
}

/// A key must be visible ASCII and not too long; anything else is a malformed request.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} characters"
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("Idempotency-Key must be visible ASCII".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fp(body: Value) -> Fingerprint {
        Fingerprint {
            method: "POST".into(),
            path: "/api/v1/orders".into(),
            body,
        }
    }

    #[test]
    fn replay_after_success_and_mismatch_for_another_body() {
        let mut s = IdempotencyStore::default();
        let a = fp(json!({"order_no": "1", "x": 1}));
        assert_eq!(s.claim("k", &a, 100), Claim::Fresh);
        assert_eq!(s.claim("k", &a, 100), Claim::InFlight);
        s.complete("k", 201, &json!({"id": "ord_1"}), 200);
        let same_other_order = fp(json!({"x": 1, "order_no": "1"}));
        assert_eq!(
            s.claim("k", &same_other_order, 150),
            Claim::Replay {
                status: 201,
                body: json!({"id": "ord_1"})
            }
        );
        assert_eq!(
            s.claim("k", &fp(json!({"order_no": "2"})), 150),
            Claim::Mismatch
        );
    }

    #[test]
    fn failures_are_not_kept_and_keys_expire() {
        let mut s = IdempotencyStore::default();
        let a = fp(json!({}));
        assert_eq!(s.claim("k", &a, 1), Claim::Fresh);
        s.complete("k", 422, &json!({"error": "x"}), 100);
        assert_eq!(s.claim("k", &a, 2), Claim::Fresh);
        s.complete("k", 201, &json!({}), 10);
        assert!(matches!(s.claim("k", &a, 9), Claim::Replay { .. }));
        assert_eq!(s.claim("k", &a, 10), Claim::Fresh);
    }

    #[test]
    fn release_frees_only_in_flight_and_restore_keeps_answers() {
        let mut s = IdempotencyStore::default();
        let a = fp(json!({}));
        s.claim("k", &a, 1);
        assert_eq!(s.in_flight(), 1);
        s.release("k");
        assert_eq!(s.in_flight(), 0);
        s.claim("k", &a, 1);
        s.complete("k", 200, &json!({"ok": true}), 50);
        s.release("k");
        let mut back = IdempotencyStore::restore(s.stored());
        assert!(matches!(
            back.claim("k", &a, 2),
            Claim::Replay { status: 200, .. }
        ));
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(check_key("order-PO-1001-v1").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("a b").is_err());
        assert!(check_key(&"k".repeat(256)).is_err());
    }
}
