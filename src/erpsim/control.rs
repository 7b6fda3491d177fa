//! The `/_sim` control routes a test or a person uses while tallyman runs: read the stats and
//! records, change the switches, script the next faults, release held requests, reset. None
//! of them is subject to the token, the rate limit or the faults, and none is counted in the
//! stats, so controlling the simulator never disturbs what it measures.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::config::{Fault, SimConfig};
use super::faults::MAX_SCRIPT;
use super::reply::{self, error};
use super::state::Shared;
use super::store::merge_patch;

type Sh = State<Arc<Shared>>;
type Body = Result<Bytes, BytesRejection>;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/stats", get(stats))
        .route("/_sim/records", get(records))
        .route(
            "/_sim/config",
            get(config).put(put_config).patch(patch_config),
        )
        .route("/_sim/faults", get(faults).put(put_faults))
        .route("/_sim/release", post(release))
        .route("/_sim/reset", post(reset))
}

async fn stats(State(sh): Sh) -> Response {
    reply::json(
        StatusCode::OK,
        &serde_json::to_value(sh.stats()).unwrap_or_default(),
    )
}

async fn records(State(sh): Sh) -> Response {
    reply::json(StatusCode::OK, &sh.lock().dump())
}

fn config_json(sh: &Shared) -> Response {
    reply::json(
        StatusCode::OK,
        &serde_json::to_value(sh.config()).unwrap_or_default(),
    )
}

async fn config(State(sh): Sh) -> Response {
    config_json(&sh)
}

/// Replaces the switches: what the body leaves out takes its default, so `{}` restores a
/// well-behaved ERP.
async fn put_config(State(sh): Sh, body: Body) -> Response {
    apply_config(&sh, reply::body_json(body))
}

/// Changes only the switches named in the body.
async fn patch_config(State(sh): Sh, body: Body) -> Response {
    let merged = reply::body_json(body).map(|patch| {
        let mut cur = serde_json::to_value(sh.config()).unwrap_or_default();
        merge_patch(&mut cur, &patch);
        cur
    });
    apply_config(&sh, merged)
}

fn apply_config(sh: &Shared, body: Result<Value, Response>) -> Response {
    let value = match body {
        Ok(v) => v,
        Err(r) => return r,
    };
    let cfg = match serde_json::from_value::<SimConfig>(value) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad config: {e}")),
    };
    match sh.set_config(cfg) {
        Ok(()) => config_json(sh),
        Err(m) => error(StatusCode::BAD_REQUEST, m),
    }
}

fn script_json(script: &[Fault]) -> Response {
    let names: Vec<String> = script.iter().map(|f| f.name()).collect();
    reply::json(StatusCode::OK, &json!(names))
}

async fn faults(State(sh): Sh) -> Response {
    script_json(&sh.lock().faults.script())
}

/// Replaces the queue of scripted faults, one per coming API request.
async fn put_faults(State(sh): Sh, body: Body) -> Response {
    let words: Vec<String> = match reply::body_json(body).map(serde_json::from_value) {
        Ok(Ok(w)) => w,
        Ok(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "body must be an array of fault names",
            )
        }
        Err(r) => return r,
    };
    if words.len() > MAX_SCRIPT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_SCRIPT} scripted faults"),
        );
    }
    let mut script = Vec::with_capacity(words.len());
    for w in &words {
        match Fault::parse(w) {
            Some(f) => script.push(f),
            None => return error(StatusCode::BAD_REQUEST, format!("unknown fault {w:?}")),
        }
    }
    sh.lock().faults.set_script(script.clone());
    script_json(&script)
}

async fn release(State(sh): Sh) -> Response {
    reply::json(StatusCode::OK, &json!({ "released": sh.release_held() }))
}

async fn reset(State(sh): Sh) -> Response {
    sh.reset().await;
    reply::json(StatusCode::OK, &json!({ "reset": true }))
}
