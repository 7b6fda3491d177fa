//! Listing what an HTTP target holds, page by page, for reconciliation.
//!
//! An ERP may hold millions of records, so a collection is never fetched whole: each page
//! (`GET {collection}?page=N&per_page=M`, 1-based, until an empty page) is handed to the
//! caller and dropped before the next is asked for. The requests go through the target's
//! own client — its token, timeouts and the rate limit it shares with the relay — so a
//! reconciliation never pushes the ERP past the limit delivery keeps to. A page that fails
//! for a passing reason (408, 429, 5xx, a reset) is asked for again after a backoff;
//! refused credentials (401/403) end the listing with a reason a person can act on.

use std::time::Duration;

use serde_json::{Map, Value};

use super::http::{HttpTarget, Reply};
use super::{after_failure, Jitter, Next, Target};
use crate::canonical::Entity;
use crate::config::RetryPolicy;

/// One record as the target listed it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteRecord {
    /// The target's id for it.
    pub id: Option<String>,
    /// The business key it carries (the endpoint's `key_field`).
    pub external_ref: Option<String>,
    /// Every field as the target returned it, in the target's field names.
    pub fields: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ListError {
    /// The target refused the credentials (401/403).
    #[error("{0}")]
    Blocked(String),
    #[error("{0}")]
    Failed(String),
    #[error("stopped before the listing was complete")]
    Stopped,
}

/// Pages through a target's collections.
pub struct Lister<'a> {
    target: &'a HttpTarget,
    retry: RetryPolicy,
    per_page: u32,
}

impl<'a> Lister<'a> {
    /// `retry` is the target's policy: its backoff is kept, but a page is given up on
    /// after at most 8 tries and waits of a minute at most — a listing is run by a person
    /// or a pass waiting for it, not a queue that can come back tomorrow.
    pub fn new(target: &'a HttpTarget, retry: &RetryPolicy, per_page: u32) -> Lister<'a> {
        let retry = RetryPolicy {
            max_attempts: retry.max_attempts.clamp(1, 8),
            max_age: Duration::MAX,
            backoff_base: retry.backoff_base,
            backoff_cap: retry.backoff_cap.min(Duration::from_secs(60)),
        };
        Lister {
            target,
            retry,
            per_page: per_page.max(1),
        }
    }

    /// Hands every page of `e`'s collection to `each`, in order; returns how many records
    /// were listed.
    pub fn for_each_page<E: From<ListError>>(
        &self,
        e: Entity,
        stop: &dyn Fn() -> bool,
        mut each: impl FnMut(Vec<RemoteRecord>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut listed = 0u64;
        let mut previous_first: Option<Value> = None;
        for n in 1u64.. {
            let page = self.page(e, n, stop)?;
            let Some(first) = page.first() else { break };
            let first = Value::Object(first.fields.clone());
            if previous_first.as_ref() == Some(&first) {
                return Err(ListError::Failed(format!(
                    "{} answered page {n} of {} with the records of page {}: it does not page with ?page=N&per_page=M",
                    self.target.name(),
                    self.target.collection_url(e),
                    n - 1
                ))
                .into());
            }
            previous_first = Some(first);
            listed += page.len() as u64;
            each(page)?;
        }
        Ok(listed)
    }

    /// One page, asked for again after passing failures.
    fn page(
        &self,
        e: Entity,
        n: u64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<RemoteRecord>, ListError> {
        let url = self.page_url(e, n);
        let mut jitter = Jitter::seeded(n ^ 0x5eed);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if stop() {
                return Err(ListError::Stopped);
            }
            let (why, after) = match self.target.send("GET", &url, None, None, stop) {
                Reply::Answer { status, body, .. } if (200..300).contains(&status) => {
                    return parse_page(&body, &self.key_field(e))
                        .map_err(|why| ListError::Failed(format!("{url}: {why}")));
                }
                Reply::Answer {
                    status,
                    body,
                    retry_after,
                } => {
                    let msg = format!(
                        "{url}: HTTP {status}: {}",
                        super::http::error_message(&body, e)
                    );
                    match status {
                        401 | 403 => return Err(ListError::Blocked(msg)),
                        408 | 425 | 429 | 500..=599 => (msg, retry_after),
                        _ => return Err(ListError::Failed(msg)),
                    }
                }
                Reply::Failed { why, .. } => (format!("{url}: {why}"), None),
                Reply::NotSent => return Err(ListError::Stopped),
            };
            match after_failure(&self.retry, attempt, Duration::ZERO, after, jitter.draw()) {
                Next::RetryIn(wait) => pause(wait, stop),
                Next::Dead(limit) => return Err(ListError::Failed(format!("{why}; {limit}"))),
            }
        }
    }

    fn page_url(&self, e: Entity, n: u64) -> String {
        let base = self.target.collection_url(e);
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}page={n}&per_page={}", self.per_page)
    }

    fn key_field(&self, e: Entity) -> String {
        self.target
            .endpoint(e)
            .key_field
            .unwrap_or_else(|| "external_ref".into())
    }
}

/// Sleeps `d`, waking early when `stop` says so.
fn pause(d: Duration, stop: &dyn Fn() -> bool) {
    let end = std::time::Instant::now() + d;
    while !stop() {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(250)));
    }
}

/// A page's records: a JSON array, or an object holding it under `items` or `data`.
pub fn parse_page(body: &str, key_field: &str) -> Result<Vec<RemoteRecord>, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| {
        format!(
            "the answer is not JSON ({e}); a page over 1 MiB is cut off: lower reconcile_page_size"
        )
    })?;
    let items = match v {
        Value::Array(items) => items,
        Value::Object(mut o) => match o.remove("items").or_else(|| o.remove("data")) {
            Some(Value::Array(items)) => items,
            _ => return Err("the answer holds no list of records (an array, or one under \"items\" or \"data\")".into()),
        },
        _ => return Err("the answer is not a list of records".into()),
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(fields) => Ok(RemoteRecord {
                id: fields.get("id").and_then(scalar),
                external_ref: fields.get(key_field).and_then(scalar),
                fields,
            }),
            other => Err(format!(
                "a listed record is not an object: {}",
                crate::unit::cap_raw(&other.to_string(), 80)
            )),
        })
        .collect()
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_arrays_or_wrapped_arrays() {
        let body =
            r#"[{"id": 7, "external_ref": "C-1", "name": "Acme"}, {"id": "x", "number": "C-2"}]"#;
        let recs = parse_page(body, "external_ref").unwrap();
        assert_eq!(recs[0].id.as_deref(), Some("7"));
        assert_eq!(recs[0].external_ref.as_deref(), Some("C-1"));
        assert_eq!(
            recs[1].external_ref, None,
            "no key field: not ours to match"
        );
        let recs = parse_page(
            r#"{"items": [{"id": 1, "number": "C-2"}], "total": 1}"#,
            "number",
        )
        .unwrap();
        assert_eq!(recs[0].external_ref.as_deref(), Some("C-2"));
        assert!(parse_page("[]", "external_ref").unwrap().is_empty());
    }

    #[test]
    fn what_is_not_a_page_is_said() {
        assert!(parse_page("", "k")
            .unwrap_err()
            .contains("reconcile_page_size"));
        assert!(parse_page(r#"{"error": "x"}"#, "k")
            .unwrap_err()
            .contains("no list"));
        assert!(parse_page("[1]", "k")
            .unwrap_err()
            .contains("not an object"));
    }
}
