//! The HTTP target: an ERP's REST API, spoken as the reference API (`docs` in the README)
//! with per-entity overrides.
//!
//! One attempt may take several requests: a lookup by business key when an earlier
//! attempt may have reached the ERP (or the key is a forced re-apply), then a create
//! (`POST` with the whole record and a deterministic `Idempotency-Key`) or an update
//! (`PATCH` of the owned fields that changed). Answers are classified once, here: 2xx
//! delivered; 408/429/5xx and transport failures retried (a timeout or reset after the
//! request went out is *ambiguous*); 401/403 block the whole target; other 4xx are
//! permanent. `Retry-After` is honoured and pauses the shared rate limit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::payload;
use super::ratelimit::RateLimiter;
use super::{Outcome, Target};
use crate::canonical::{Entity, Identity};
use crate::config::{self, Endpoint};
use crate::ledger::{AttemptLog, Due};

pub struct HttpTarget {
    name: String,
    agent: ureq::Agent,
    base: String,
    token: String,
    endpoints: BTreeMap<Entity, Endpoint>,
    owned: BTreeMap<Entity, Vec<String>>,
    concurrency: usize,
    limiter: Option<RateLimiter>,
}

/// What one request came back with.
pub(crate) enum Reply {
    Answer {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// No answer. `ambiguous`: the request may have been received (timeout, reset).
    Failed { ambiguous: bool, why: String },
    /// Never sent: the run ended while waiting for the rate limit.
    NotSent,
}

impl HttpTarget {
    /// Builds the target. Fails (with the reason a person should read) when its token is
    /// not in the environment.
    pub fn new(
        t: &config::Target,
        http: &config::HttpTarget,
        buckets: &super::ratelimit::BucketPlace,
    ) -> Result<HttpTarget, String> {
        let token = std::env::var(&http.token_env)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                format!(
                    "the environment variable {} (token_env of target '{}') is not set",
                    http.token_env, t.name
                )
            })?;
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(http.timeout))
            .max_idle_connections_per_host(http.concurrency.max(2))
            .tls_config(tls)
            .user_agent(concat!("tallyman/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let limiter = http
            .rate_limit_per_minute
            .map(|n| RateLimiter::at(buckets, &t.name, n))
            .transpose()
            .map_err(|e| format!("rate limit state in {buckets}: {e}"))?;
        Ok(HttpTarget {
            name: t.name.clone(),
            agent,
            base: http.base_url.clone(),
            token,
            endpoints: http.endpoints.clone(),
            owned: t.owned.clone(),
            concurrency: http.concurrency,
            limiter,
        })
    }

    pub(crate) fn endpoint(&self, e: Entity) -> Endpoint {
        self.endpoints.get(&e).cloned().unwrap_or_default()
    }

    pub(crate) fn collection_url(&self, e: Entity) -> String {
        match self.endpoint(e).path {
            Some(p) => format!("{}{}", self.base, p),
            None => format!("{}/api/v1/{}", self.base, collection(e)),
        }
    }

    /// One request, within the rate limit.
    pub(crate) fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        idem: Option<&str>,
        stop: &dyn Fn() -> bool,
    ) -> Reply {
        if let Some(l) = &self.limiter {
            match l.acquire(stop) {
                Ok(true) => {}
                Ok(false) => return Reply::NotSent,
                Err(e) => {
                    return Reply::Failed {
                        ambiguous: false,
                        why: format!("rate limit state: {e}"),
                    }
                }
            }
        }
        // Nothing starts once the run is over or its relay no longer surely holds its role
        // (a relay stopped between two requests of one attempt, a lookup and its create,
        // must not send the create after another relay took over): checked as late as it
        // can be, after any wait for the rate limit.
        if stop() {
            return Reply::NotSent;
        }
        let auth = format!("Bearer {}", self.token);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(url).header("Authorization", &auth).call(),
            (m, Some(b)) => {
                let mut req = match m {
                    "PATCH" => self.agent.patch(url),
                    "PUT" => self.agent.put(url),
                    _ => self.agent.post(url),
                }
                .header("Authorization", &auth);
                if let Some(k) = idem {
                    req = req.header("Idempotency-Key", k);
                }
                let bytes = serde_json::to_vec(b).unwrap_or_default();
                req.header("Content-Type", "application/json")
                    .send(&bytes[..])
            }
            (_, None) => self.agent.delete(url).header("Authorization", &auth).call(),
        };
        match result {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_string()
                    .unwrap_or_default();
                if let (Some(l), Some(d)) = (&self.limiter, retry_after) {
                    if status == 429 || status == 503 {
                        let _ = l.pause(d);
                    }
                }
                Reply::Answer {
                    status,
                    body,
                    retry_after,
                }
            }
            Err(e) => transport_failure(e),
        }
    }

    /// The target's id for a business key, `None` when it has no such record.
    fn lookup(
        &self,
        e: Entity,
        key: &str,
        log: &mut Ops,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<String>, Outcome> {
        let param = self
            .endpoint(e)
            .lookup_param
            .unwrap_or_else(|| "external_ref".into());
        let url = format!("{}?{}={}", self.collection_url(e), param, urlencode(key));
        match log.record("lookup", self.send("GET", &url, None, None, stop)) {
            Reply::Answer { status: 404, .. } => Ok(None),
            Reply::Answer { status, body, .. } if (200..300).contains(&status) => {
                Ok(first_id(&body))
            }
            other => Err(classify(other, e)),
        }
    }

    fn create(&self, d: &Due, e: Entity, log: &mut Ops, stop: &dyn Fn() -> bool) -> Outcome {
        let ep = self.endpoint(e);
        let key_field = ep.key_field.unwrap_or_else(|| "external_ref".into());
        let body = payload::adapt(
            payload::create_body(&d.data, &d.key, &key_field),
            &ep.rename,
            &ep.extra,
        );
        let method = ep.create_method.unwrap_or_else(|| "POST".into());
        let idem = idempotency_key(&self.name, d, "create");
        let url = self.collection_url(e);
        match log.record("create", self.send(&method, &url, Some(&body), Some(&idem), stop)) {
            Reply::Answer { status, body, .. } if (200..300).contains(&status) => Outcome::Delivered {
                remote_id: id_of(&body),
            },
            // The key exists already (an ERP enforcing unique references) or the same
            // idempotency key is still being processed: find the record.
            Reply::Answer { status: 409, .. } => match self.lookup(e, &d.key, log, stop) {
                Ok(Some(id)) => Outcome::Delivered { remote_id: Some(id) },
                Ok(None) => Outcome::RetryAfter {
                    after: Some(Duration::from_secs(2)),
                    why: "409 conflict on create, and the record is not there yet (the first request may still be in flight)".into(),
                    ambiguous: true,
                },
                Err(o) => o,
            },
            other => classify(other, e),
        }
    }

    fn update(
        &self,
        d: &Due,
        e: Entity,
        id: &str,
        log: &mut Ops,
        stop: &dyn Fn() -> bool,
    ) -> Outcome {
        let owned: Vec<String> = match self.owned.get(&e) {
            Some(f) => f.clone(),
            None => d
                .data
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default(),
        };
        let held = if d.replay {
            None
        } else {
            d.remote_data.as_ref()
        };
        let Some(body) = payload::update_body(&d.data, held, &owned, d.replay) else {
            log.ops.push("none".into());
            return Outcome::Delivered {
                remote_id: Some(id.to_string()),
            };
        };
        let ep = self.endpoint(e);
        let body = payload::adapt(body, &ep.rename, &Default::default());
        let method = ep.update_method.unwrap_or_else(|| "PATCH".into());
        let url = format!("{}/{}", self.collection_url(e), urlencode(id));
        let idem = idempotency_key(&self.name, d, "update");
        match log.record(
            "update",
            self.send(&method, &url, Some(&body), Some(&idem), stop),
        ) {
            Reply::Answer { status, .. } if (200..300).contains(&status) => Outcome::Delivered {
                remote_id: Some(id.to_string()),
            },
            // The id moved (the record was recreated): find it again, or create it anew.
            Reply::Answer { status: 404, .. } => match self.lookup(e, &d.key, log, stop) {
                Ok(Some(new_id)) if new_id != id => self.update(d, e, &new_id, log, stop),
                Ok(_) => self.create(d, e, log, stop),
                Err(o) => o,
            },
            other => classify(other, e),
        }
    }
}

impl Target for HttpTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn deliver(&self, d: &Due, log: &mut AttemptLog, stop: &dyn Fn() -> bool) -> Outcome {
        let start = Instant::now();
        let mut ops = Ops::default();
        let outcome = self.attempt(d, &mut ops, stop);
        log.operation = ops.ops.join("→");
        log.status = ops.last_status;
        log.latency_ms = start.elapsed().as_millis() as i64;
        log.response = ops.last_body.map(|b| mask_response(&b, &d.entity));
        outcome
    }
}

impl HttpTarget {
    fn attempt(&self, d: &Due, ops: &mut Ops, stop: &dyn Fn() -> bool) -> Outcome {
        let Some(e) = Entity::parse(&d.entity) else {
            return Outcome::Permanent {
                why: format!("unknown entity '{}'", d.entity),
            };
        };
        let mut remote_id = d.remote.as_ref().map(|r| r.0.clone());
        let create_once = e.identity() == Identity::CreateOnce;
        // After an attempt that may have reached the ERP, on a replay, and for a key the ERP
        // may know from an earlier version we never heard back about: look first.
        let look = d.ambiguous || d.replay || (remote_id.is_none() && d.version > 1);
        if look {
            match self.lookup(e, &d.key, ops, stop) {
                Ok(Some(id)) => {
                    if create_once && !d.replay {
                        return Outcome::Delivered {
                            remote_id: Some(id),
                        };
                    }
                    remote_id = Some(id);
                }
                Ok(None) => remote_id = None,
                Err(o) => return o,
            }
        }
        match (remote_id, create_once) {
            (Some(id), true) => Outcome::Delivered {
                remote_id: Some(id),
            },
            (Some(id), false) => self.update(d, e, &id, ops, stop),
            (None, _) => self.create(d, e, ops, stop),
        }
    }
}

/// The requests of one attempt, for its ledger row.
#[derive(Default)]
struct Ops {
    ops: Vec<String>,
    last_status: Option<u16>,
    last_body: Option<String>,
}

impl Ops {
    fn record(&mut self, op: &str, sent: Reply) -> Reply {
        match &sent {
            Reply::Answer { status, body, .. } => {
                self.ops.push(format!("{op} {status}"));
                self.last_status = Some(*status);
                self.last_body = Some(body.chars().take(2000).collect());
            }
            Reply::Failed { why, .. } => {
                self.ops.push(format!("{op} failed"));
                self.last_body = Some(why.clone());
            }
            Reply::NotSent => {}
        }
        sent
    }
}

/// What an answer that is not a success means.
fn classify(sent: Reply, e: Entity) -> Outcome {
    match sent {
        // Nothing went out in this attempt's last step: whatever an earlier step learned
        // (a lookup) is simply learned again next time.
        Reply::NotSent => Outcome::NotSent,
        Reply::Failed { ambiguous, why } => Outcome::RetryAfter {
            after: None,
            why,
            ambiguous,
        },
        Reply::Answer {
            status,
            body,
            retry_after,
        } => {
            let msg = format!("HTTP {status}: {}", error_message(&body, e));
            match status {
                200..=299 => Outcome::Delivered {
                    remote_id: id_of(&body),
                },
                401 | 403 => Outcome::Blocked { why: msg },
                408 | 425 | 429 | 500 | 502 | 503 | 504 => Outcome::RetryAfter {
                    after: retry_after,
                    why: msg,
                    // A 5xx may come after the ERP applied the request.
                    ambiguous: status >= 500,
                },
                _ => Outcome::Permanent { why: msg },
            }
        }
    }
}

fn transport_failure(e: ureq::Error) -> Reply {
    let ambiguous = !matches!(
        e,
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound | ureq::Error::BadUri(_)
    );
    Reply::Failed {
        ambiguous,
        why: format!("transport: {e}"),
    }
}

/// The REST collection of an entity in the reference API.
pub fn collection(e: Entity) -> &'static str {
    match e {
        Entity::Order => "orders",
        Entity::OrderAck => "order-acks",
        Entity::Invoice => "invoices",
        Entity::Shipment => "shipments",
        Entity::Customer => "customers",
        Entity::Product => "products",
        Entity::Supplier => "suppliers",
    }
}

/// Deterministic per target, record and version: a retry of the same payload reuses it, a
/// corrected record (a new version) gets a new one. A record sent again on purpose (a
/// replay, a reconciliation's repair, each re-queued with its own time) gets a key of its
/// own too: under the first one an ERP that honours keys would answer with the record it
/// created back then — deleted since — or refuse the fuller body as another payload.
pub fn idempotency_key(target: &str, d: &Due, op: &str) -> String {
    let mut input = format!("{target}\0{}\0{}\0{}\0{op}", d.entity, d.key, d.version);
    if d.replay {
        input.push_str(&format!("\0replay\0{}", d.created_at));
    }
    format!(
        "tallyman-{}",
        &blake3::hash(input.as_bytes()).to_hex()[..32]
    )
}

fn id_of(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    scalar(v.get("id")?)
}

fn first_id(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let first = match &v {
        Value::Array(items) => items.first()?,
        Value::Object(o) => o.get("items").or(o.get("data"))?.as_array()?.first()?,
        _ => return None,
    };
    scalar(first.get("id")?)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The ERP's own words for an error, masked where they echo sensitive values.
pub(crate) fn error_message(body: &str, e: Entity) -> String {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(v) => v
            .get("error")
            .or(v.get("message"))
            .and_then(|m| m.as_str().map(String::from))
            .unwrap_or_else(|| mask_value(v, e).to_string()),
        Err(_) => body.to_string(),
    };
    crate::unit::cap_raw(text.trim(), 300)
}

/// A response body for the ledger: sensitive fields masked, capped.
pub fn mask_response(body: &str, entity: &str) -> String {
    let masked = match (serde_json::from_str::<Value>(body), Entity::parse(entity)) {
        (Ok(v), Some(e)) => mask_value(v, e).to_string(),
        _ => body.to_string(),
    };
    crate::unit::cap_raw(&masked, 1000)
}

fn mask_value(v: Value, e: Entity) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) if e.sensitive_fields().contains(&k.as_str()) => {
                            Value::String(crate::unit::mask(&s))
                        }
                        other => mask_value(other, e),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| mask_value(v, e)).collect()),
        other => other,
    }
}

fn urlencode(s: &str) -> String {
    crate::display::url_component(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_once() {
        let a = |status, retry_after| Reply::Answer {
            status,
            body: r#"{"error":"unknown customer C-9"}"#.into(),
            retry_after,
        };
        assert!(matches!(
            classify(a(401, None), Entity::Order),
            Outcome::Blocked { .. }
        ));
        assert!(matches!(
            classify(a(422, None), Entity::Order),
            Outcome::Permanent { why } if why == "HTTP 422: unknown customer C-9"
        ));
        assert!(matches!(
            classify(a(429, Some(Duration::from_secs(7))), Entity::Order),
            Outcome::RetryAfter { after: Some(d), ambiguous: false, .. } if d.as_secs() == 7
        ));
        assert!(matches!(
            classify(a(503, None), Entity::Order),
            Outcome::RetryAfter {
                ambiguous: true,
                ..
            }
        ));
    }

    #[test]
    fn idempotency_keys_are_per_version() {
        let d = |version| Due {
            id: 1,
            target: "erp".into(),
            entity: "product".into(),
            key: "S1".into(),
            version,
            attempt: 1,
            log_n: 1,
            ambiguous: false,
            replay: false,
            created_at: String::new(),
            data: Value::Null,
            remote: None,
            remote_data: None,
        };
        assert_eq!(
            idempotency_key("erp", &d(1), "create"),
            idempotency_key("erp", &d(1), "create")
        );
        assert_ne!(
            idempotency_key("erp", &d(1), "create"),
            idempotency_key("erp", &d(2), "create")
        );
        let again = |at: &str| Due {
            replay: true,
            created_at: at.into(),
            ..d(1)
        };
        let first = idempotency_key("erp", &d(1), "create");
        let repair = idempotency_key("erp", &again("2026-11-02T10:00:00.000Z"), "create");
        assert_ne!(first, repair, "a record sent again is not the first send");
        assert_eq!(
            repair,
            idempotency_key("erp", &again("2026-11-02T10:00:00.000Z"), "create"),
            "retries of one re-send share its key"
        );
        assert_ne!(
            repair,
            idempotency_key("erp", &again("2026-11-03T10:00:00.000Z"), "create")
        );
    }

    #[test]
    fn responses_are_masked_before_the_ledger_sees_them() {
        let body = r#"{"id":"sup_1","supplier_id":"S1","iban":"DE89370400440532013000"}"#;
        let m = mask_response(body, "supplier");
        assert!(!m.contains("0532013000"), "{m}");
        assert!(m.contains("sup_1"));
    }

    #[test]
    fn keys_are_url_encoded() {
        assert_eq!(urlencode("ACME/PO 1&2"), "ACME%2FPO%201%262");
    }
}
