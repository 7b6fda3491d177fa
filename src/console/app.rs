//! The console's plumbing: shared state, the routes, errors as pages, the ledger opened per
//! request on a blocking thread, and the one way an action's form is read — [`Act`], which
//! refuses a form whose CSRF token is missing or wrong before the handler sees it, so no
//! action can forget the check.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::de::DeserializeOwned;

use super::auth::{self, Sess, Sessions, Token};
use super::{actions, dashboard, exceptions, files, html, records, reveal, Hooks, Options};
use crate::config::Config;
use crate::ledger::{Ledger, LedgerError};

/// Uploaded corrections files may be workbooks of a few MB; other forms are small.
const UPLOAD_LIMIT: usize = 64 << 20;

pub struct AppState {
    pub cfg: Config,
    pub token: Option<Token>,
    pub os_user: String,
    pub sessions: Sessions,
    pub hooks: Hooks,
    /// Idle ledger connections: opening one runs the migration check in a write
    /// transaction, which a page view should not cost.
    idle: std::sync::Mutex<Vec<Ledger>>,
}

/// Idle connections kept for the next requests.
const IDLE_LEDGERS: usize = 4;

impl AppState {
    pub fn new(cfg: Config, opts: Options) -> AppState {
        AppState {
            cfg,
            token: opts.token,
            os_user: opts.os_user,
            sessions: Sessions::default(),
            hooks: opts.hooks,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/files", get(files::list))
        .route("/files/{id}", get(files::page))
        .route("/files/{id}/release", post(actions::release))
        .route("/files/{id}/resolve", post(actions::resolve_file))
        .route("/files/{id}/reveal", post(reveal::line))
        .route(
            "/files/{id}/corrections",
            post(actions::upload).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        )
        .route("/exceptions", get(exceptions::queue))
        .route("/exceptions/rule", get(exceptions::rule_group))
        .route("/exceptions/rule/resolve", post(actions::resolve_rule))
        .route("/deadletters", get(exceptions::dead_group))
        .route(
            "/deadletters/retry",
            get(exceptions::retry_preview).post(actions::retry),
        )
        .route("/retries/{audit}", get(exceptions::retry_progress))
        .route("/records", get(records::page))
        .route("/records/reveal", post(reveal::version))
        .route("/reconcile", post(actions::reconcile))
        .route("/audit", get(records::audit))
        .route("/login", get(actions::login_form).post(actions::login))
        .route("/logout", post(actions::logout))
        .route("/metrics", get(dashboard::metrics))
        .route("/static/console.css", get(html::css))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::guard,
        ))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::new(StatusCode::NOT_FOUND, "no such page")
}

/// Pages hold business data and masked personal data: never cached, never framed, no
/// script or outside resource of any kind. The referrer policy is `same-origin`, not
/// `no-referrer`: with the latter browsers send `Origin: null` on form posts, which the
/// origin check must refuse.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// An error shown as a page.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub message: String,
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> AppError {
        AppError {
            status,
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(what: &str) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, format!("no such {what}"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!("console: {}", self.message);
        }
        (self.status, html::error_page(self.status, &self.message)).into_response()
    }
}

impl From<LedgerError> for AppError {
    fn from(e: LedgerError) -> Self {
        AppError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("ledger: {e}"))
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        AppError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

pub type Page = Result<Response, AppError>;

/// Runs `f` with a ledger connection of its own on a blocking thread. A connection goes
/// back to the idle ones only after a request that went well.
pub async fn with_ledger<T, F>(st: &Arc<AppState>, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut Ledger, &Config) -> Result<T, AppError> + Send + 'static,
{
    let st = Arc::clone(st);
    tokio::task::spawn_blocking(move || {
        let idle = st.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut ledger = match idle {
            Some(l) => l,
            None => Ledger::open_in(&st.cfg.paths)?,
        };
        let out = f(&mut ledger, &st.cfg);
        if out.is_ok() {
            let mut idle = st.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_LEDGERS {
                idle.push(ledger);
            }
        }
        out
    })
    .await
    .map_err(|e| AppError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// A form that carries the session's CSRF token.
pub trait Csrf {
    fn csrf(&self) -> &str;
}

/// An action's form, read only when its CSRF token is the session's: the session and the
/// form.
pub struct Act<T>(pub Sess, pub T);

impl<S, T> FromRequest<S> for Act<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Csrf + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Some(sess) = req.extensions().get::<Sess>().cloned() else {
            return Err(forbidden("no session"));
        };
        let Form(form) = Form::<T>::from_request(req, state).await.map_err(|e| {
            AppError::bad(format!("the form could not be read: {e}")).into_response()
        })?;
        if !auth::ct_eq(form.csrf(), &sess.csrf) {
            return Err(forbidden("the form's security token is missing or stale"));
        }
        Ok(Act(sess, form))
    }
}

pub fn forbidden(why: &str) -> Response {
    AppError::new(
        StatusCode::FORBIDDEN,
        format!("{why}: open the page again and repeat the action"),
    )
    .into_response()
}
