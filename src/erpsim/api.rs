//! The ERP's REST API, `/api/v1/{collection}[/{id}]`, as one request pipeline, because the
//! order of the steps is the behaviour under test: count the arrival → 403 → 401 → rate limit
//! → injected fault → parse → idempotency key → latency/hold → apply → fault after applying
//! (drop or slow) → answer. The state lock is taken only for the short steps in between.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Query, State as AxState};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::config::{Fault, SimConfig};
use super::conn::Conn;
use super::idempotency::{self, Claim, Fingerprint};
use super::ops::{self, Op, Outcome};
use super::reply::{self, error, with_header};
use super::state::{unix_now, Shared, State};
use super::store::Coll;

/// A forgotten `hold` must not keep a request (and its idempotency key) forever.
const MAX_HOLD: Duration = Duration::from_secs(300);
const MAX_PER_PAGE: usize = 500;
const DEFAULT_PER_PAGE: usize = 100;

type Step<T> = Result<T, Response>;

pub async fn handle(
    AxState(sh): AxState<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut tally = Tally {
        sh: &sh,
        method: method.as_str(),
        status: None,
    };
    let resp = match run(&sh, &conn, &method, &uri, &headers, body).await {
        Ok(r) | Err(r) => r,
    };
    let status = if conn.is_aborted() {
        "aborted".into()
    } else {
        resp.status().as_u16().to_string()
    };
    tally.status = Some(status);
    resp
}

/// Counts the request when it ends — also when hyper drops the handler because the client
/// hung up first (a client timeout during a delay), which shows as `client_closed`.
struct Tally<'a> {
    sh: &'a Shared,
    method: &'a str,
    status: Option<String>,
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        let status = self.status.as_deref().unwrap_or("client_closed");
        self.sh.lock().stats.count_request(self.method, status);
    }
}

async fn run(
    sh: &Arc<Shared>,
    conn: &Conn,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Step<Response> {
    let (cfg, fault) = sh.lock().admit(headers, Instant::now())?;
    before_applying(fault, conn)?;
    let (coll, op) = parse(method, uri, body)?;
    let _busy = Busy::enter(sh, |s| &mut s.stats.in_flight);
    let key = claim_key(sh, &cfg, method, uri, headers, &op)?;
    if cfg.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(cfg.latency_ms)).await;
    }
    if fault == Fault::Hold {
        hold(sh).await;
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (out, snapshot) = {
        let mut st = sh.lock();
        let out = ops::execute(&mut st, coll, op, &now);
        // The remembered answer goes to disk with the change it answers.
        key.complete(&mut st, &out, cfg.idempotency_ttl_secs);
        let snapshot = if out.changed { st.changed() } else { None };
        (out, snapshot)
    };
    sh.persist(snapshot).await;
    match fault {
        Fault::DropAfter => conn.abort(),
        Fault::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms.unwrap_or(cfg.slow_ms))).await;
        }
        _ => {}
    }
    Ok(respond(out))
}

impl State {
    /// Counts the arrival and applies the gates that refuse a request before it is read.
    fn admit(&mut self, headers: &HeaderMap, now: Instant) -> Step<(SimConfig, Fault)> {
        self.arrivals.record(now);
        if self.cfg.forbidden {
            return Err(error(StatusCode::FORBIDDEN, "forbidden"));
        }
        if let Some(token) = &self.cfg.token {
            let sent = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if sent.and_then(bearer) != Some(token.as_str()) {
                let r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
                return Err(with_header(r, "www-authenticate", "Bearer"));
            }
        }
        if let Some(limit) = self.cfg.rate_limit_per_minute {
            if let Err(wait) = self.limiter.admit(now, limit) {
                self.stats.rate_limited += 1;
                let r = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
                return Err(with_header(r, "retry-after", wait));
            }
        }
        let fault = self.faults.next(&self.cfg);
        if fault != Fault::None {
            let name = match fault {
                Fault::Slow(_) => "slow".to_string(),
                f => f.name(),
            };
            self.stats.count_fault(&name);
        }
        Ok((self.cfg.clone(), fault))
    }
}

/// The token of `Authorization: Bearer TOKEN` (the scheme is case-insensitive, RFC 7235).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Faults that end the request before it does anything.
fn before_applying(fault: Fault, conn: &Conn) -> Step<()> {
    let injected = |status, msg| with_header(error(status, msg), "retry-after", 1);
    match fault {
        Fault::Status429 => Err(injected(
            StatusCode::TOO_MANY_REQUESTS,
            "injected: too many requests",
        )),
        Fault::Status503 => Err(injected(
            StatusCode::SERVICE_UNAVAILABLE,
            "injected: unavailable",
        )),
        Fault::Status500 => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected: internal error",
        )),
        Fault::ResetBefore => {
            conn.abort();
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, "never sent"))
        }
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    external_ref: Option<String>,
    page: Option<usize>,
    per_page: Option<usize>,
}

/// Route, query and body into an operation, or the 4xx that says what is wrong.
fn parse(method: &Method, uri: &Uri, body: Result<Bytes, BytesRejection>) -> Step<(Coll, Op)> {
    let rest = uri.path().strip_prefix("/api/v1/").unwrap_or_default();
    let mut parts = rest.split('/');
    let (name, id) = (parts.next().unwrap_or_default(), parts.next());
    let coll = Coll::parse(name).filter(|_| parts.next().is_none() && id != Some(""));
    let coll = coll.ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("no such endpoint {}", uri.path()),
        )
    })?;
    let op = match (method.as_str(), id) {
        ("GET", None) => query(uri)?,
        ("POST", None) => Op::Create(record_body(body)?),
        ("GET", Some(id)) => Op::Get(id.into()),
        ("PATCH", Some(id)) => Op::Patch(id.into(), record_body(body)?),
        ("DELETE", Some(id)) => Op::Delete(id.into()),
        (_, None) => return Err(not_allowed("GET, POST")),
        (_, Some(_)) => return Err(not_allowed("GET, PATCH, DELETE")),
    };
    Ok((coll, op))
}

fn not_allowed(allow: &str) -> Response {
    with_header(
        error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here"),
        "allow",
        allow,
    )
}

fn query(uri: &Uri) -> Step<Op> {
    let bad = |m: String| error(StatusCode::BAD_REQUEST, m);
    let Query(q) = Query::<ListQuery>::try_from_uri(uri).map_err(|e| bad(e.body_text()))?;
    let (page, per_page) = (q.page.unwrap_or(1), q.per_page.unwrap_or(DEFAULT_PER_PAGE));
    if page == 0 {
        return Err(bad("page is 1-based".into()));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(bad(format!("per_page must be 1 to {MAX_PER_PAGE}")));
    }
    Ok(Op::Query {
        external_ref: q.external_ref,
        page,
        per_page,
    })
}

/// A create or patch body: a JSON object whose `external_ref`, if any, is a string.
fn record_body(body: Result<Bytes, BytesRejection>) -> Step<serde_json::Map<String, Value>> {
    let Value::Object(obj) = reply::body_json(body)? else {
        return Err(error(StatusCode::BAD_REQUEST, "body must be a JSON object"));
    };
    if obj
        .get("external_ref")
        .is_some_and(|r| !r.is_string() && !r.is_null())
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "external_ref must be a string",
        ));
    }
    Ok(obj)
}

fn respond(out: Outcome) -> Response {
    let mut r = match &out.body {
        Some(b) => reply::json(out.status, b),
        None => axum::response::IntoResponse::into_response(out.status),
    };
    if let Some(loc) = out.location {
        r = with_header(r, "location", loc);
    }
    r
}

/// An idempotency key this request holds in flight; released if the request never completes
/// (the client went away mid-delay and the handler was dropped), so a retry is not refused
/// as "in flight" forever.
struct KeyClaim<'a> {
    sh: &'a Shared,
    key: Option<String>,
}

impl KeyClaim<'_> {
    fn complete(mut self, st: &mut State, out: &Outcome, ttl: u64) {
        if let Some(k) = self.key.take() {
            let body = out.body.clone().unwrap_or(Value::Null);
            st.idem.complete(
                &k,
                out.status.as_u16(),
                &body,
                unix_now().saturating_add(ttl),
            );
        }
    }
}

impl Drop for KeyClaim<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.sh.lock().idem.release(&k);
        }
    }
}

/// Claims the request's `Idempotency-Key`, or answers a replay, a mismatch or a conflict.
fn claim_key<'a>(
    sh: &'a Shared,
    cfg: &SimConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    op: &Op,
) -> Step<KeyClaim<'a>> {
    let none = KeyClaim { sh, key: None };
    let body = match op {
        Op::Create(b) | Op::Patch(_, b) => b,
        _ => return Ok(none),
    };
    let Some(raw) = headers.get("idempotency-key").filter(|_| cfg.idempotency) else {
        return Ok(none);
    };
    let key = raw
        .to_str()
        .map_err(|_| error(StatusCode::BAD_REQUEST, "Idempotency-Key must be ASCII"))?;
    idempotency::check_key(key).map_err(|m| error(StatusCode::BAD_REQUEST, m))?;
    let fp = Fingerprint {
        method: method.as_str().into(),
        path: uri.path().into(),
        body: Value::Object(body.clone()),
    };
    let mut st = sh.lock();
    match st.idem.claim(key, &fp, unix_now()) {
        Claim::Fresh => Ok(KeyClaim {
            sh,
            key: Some(key.into()),
        }),
        Claim::Replay { status, body } => {
            st.stats.idempotent_replays += 1;
            // A replayed create says 200: the record was not created by this request.
            let status = if status == 201 {
                StatusCode::OK
            } else {
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
            };
            Err(with_header(
                reply::json(status, &body),
                "idempotent-replayed",
                "true",
            ))
        }
        Claim::Mismatch => {
            st.stats.idempotency_mismatches += 1;
            let msg = "Idempotency-Key was used for a different request";
            Err(error(StatusCode::UNPROCESSABLE_ENTITY, msg))
        }
        Claim::InFlight => {
            st.stats.idempotency_in_flight_conflicts += 1;
            let msg = "a request with this Idempotency-Key is still being processed";
            Err(with_header(
                error(StatusCode::CONFLICT, msg),
                "retry-after",
                1,
            ))
        }
    }
}

/// Keeps a gauge in the stats up for as long as it lives.
struct Busy<'a> {
    sh: &'a Shared,
    gauge: fn(&mut State) -> &mut u64,
}

impl<'a> Busy<'a> {
    fn enter(sh: &'a Shared, gauge: fn(&mut State) -> &mut u64) -> Busy<'a> {
        *gauge(&mut sh.lock()) += 1;
        Busy { sh, gauge }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut st = self.sh.lock();
        let g = (self.gauge)(&mut st);
        *g = g.saturating_sub(1);
    }
}

/// Waits for `POST /_sim/release` (or stop, or `MAX_HOLD`). Subscribes before it shows up as
/// held, so a test that sees it held and releases it cannot miss it.
async fn hold(sh: &Shared) {
    let mut signal = sh.release_signal();
    let _held = Busy::enter(sh, |s| &mut s.stats.held);
    let _ = tokio::time::timeout(MAX_HOLD, signal.changed()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, uri: &str, body: &str) -> Result<(Coll, Op), u16> {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let body = Ok(Bytes::from(body.to_owned()));
        parse(&m, &uri.parse().unwrap(), body).map_err(|r| r.status().as_u16())
    }

    #[test]
    fn routes_map_to_operations() {
        let (c, op) = route("GET", "/api/v1/order-acks?external_ref=A%2F1&page=2", "").unwrap();
        assert_eq!(c, Coll::OrderAcks);
        assert!(
            matches!(op, Op::Query { external_ref: Some(k), page: 2, per_page: 100 } if k == "A/1")
        );
        assert!(matches!(
            route("POST", "/api/v1/orders", "{}").unwrap().1,
            Op::Create(_)
        ));
        assert!(
            matches!(route("PATCH", "/api/v1/orders/ord_1", "{}").unwrap().1, Op::Patch(id, _) if id == "ord_1")
        );
        assert!(matches!(
            route("DELETE", "/api/v1/orders/ord_1", "").unwrap().1,
            Op::Delete(_)
        ));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn bad_routes_and_bodies_are_refused_with_their_status() {
        assert_eq!(route("GET", "/api/v1/orders/", "").unwrap_err(), 404);
        assert_eq!(route("GET", "/api/v1/orders/ord_1/x", "").unwrap_err(), 404);
        assert_eq!(route("GET", "/api/v1/order_acks", "").unwrap_err(), 404);
        assert_eq!(route("PUT", "/api/v1/orders", "{}").unwrap_err(), 405);
        assert_eq!(route("POST", "/api/v1/orders", "null").unwrap_err(), 400);
        assert_eq!(
            route("POST", "/api/v1/orders", r#"{"external_ref": []}"#).unwrap_err(),
            400
        );
        assert_eq!(
            route("GET", "/api/v1/orders?per_page=-1", "").unwrap_err(),
            400
        );
    }
}
