//! What a person does from the console, each a POST whose form carries the CSRF token
//! (read through [`Act`]) and each written to the audit trail with the actor, the note or
//! reason, and what it affected: resolving rejected documents, releasing or rejecting a held
//! file, retrying a group of dead letters, uploading a corrections file, reconciling a
//! target — and logging in and out.

use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::app::{forbidden, with_ledger, Act, AppError, AppState, Csrf, Page};
use super::auth::{self, Sess};
use super::html::{bare, name};
use crate::ledger::{DeadGroupSel, FileState};

macro_rules! csrf_form {
    ($t:ty) => {
        impl Csrf for $t {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        }
    };
}

fn note_required(note: &str) -> Result<String, AppError> {
    let n = note.trim();
    if n.is_empty() {
        return Err(AppError::bad("a note is required: say what was done"));
    }
    Ok(n.to_string())
}

fn reason_of(r: &Option<String>) -> Option<String> {
    r.as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(String::from)
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[derive(Deserialize)]
pub struct ResolveFileForm {
    #[serde(default)]
    csrf: String,
    note: String,
    /// One document; without it (and without `file_error`), every open one of the file.
    seq: Option<i64>,
    file_error: Option<String>,
}
csrf_form!(ResolveFileForm);

pub async fn resolve_file(
    State(st): State<Arc<AppState>>,
    Path(id): Path<i64>,
    Act(sess, f): Act<ResolveFileForm>,
) -> Page {
    let note = note_required(&f.note)?;
    with_ledger(&st, move |l, _| {
        let file = l.file_opt(id)?.ok_or_else(|| AppError::not_found("file"))?;
        let (n, what) = if f.file_error.is_some() {
            (
                l.resolve_file_error(id, &sess.actor, &note)?,
                "file-level error",
            )
        } else {
            let seqs: Vec<i64> = f.seq.into_iter().collect();
            (l.resolve_units(id, &seqs, &sess.actor, &note)?, "documents")
        };
        l.audit(
            &sess.actor,
            "resolve",
            Some(&note),
            Some(&file.name),
            &json!({"file": id, "what": what, "seq": f.seq, "resolved": n}),
        )?;
        Ok(())
    })
    .await?;
    Ok(see_other(&format!("/files/{id}")))
}

#[derive(Deserialize)]
pub struct ResolveRuleForm {
    #[serde(default)]
    csrf: String,
    rule: String,
    note: String,
}
csrf_form!(ResolveRuleForm);

pub async fn resolve_rule(
    State(st): State<Arc<AppState>>,
    Act(sess, f): Act<ResolveRuleForm>,
) -> Page {
    let note = note_required(&f.note)?;
    let actor = sess.actor.clone();
    let n = with_ledger(&st, move |l, _| {
        let units = l.open_reject_units_of_rule(&f.rule)?;
        let mut by_file: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
        for (file, seq) in units {
            by_file.entry(file).or_default().push(seq);
        }
        let mut n = 0;
        for (file, seqs) in &by_file {
            n += l.resolve_units(*file, seqs, &actor, &note)?;
        }
        let files: Vec<i64> = by_file.keys().copied().collect();
        l.audit(
            &actor,
            "resolve",
            Some(&note),
            Some(&format!("rule {}", f.rule)),
            &json!({"rule": f.rule, "resolved": n, "files": files}),
        )?;
        Ok(n)
    })
    .await?;
    let body = html! {
        p.note.good { (n) " document(s) marked resolved." }
        p { a href="/exceptions" { "Back to the exceptions" } }
    };
    Ok(super::html::page("Resolved", &sess, "/exceptions", body))
}

#[derive(Deserialize)]
pub struct ReleaseForm {
    #[serde(default)]
    csrf: String,
    reason: Option<String>,
    decision: String,
}
csrf_form!(ReleaseForm);

pub async fn release(
    State(st): State<Arc<AppState>>,
    Path(id): Path<i64>,
    Act(sess, f): Act<ReleaseForm>,
) -> Page {
    let reject = f.decision == "reject";
    let reason = reason_of(&f.reason);
    with_ledger(&st, move |l, _| {
        let file = l.file_opt(id)?.ok_or_else(|| AppError::not_found("file"))?;
        if file.state != FileState::Held {
            return Err(AppError::new(
                StatusCode::CONFLICT,
                "this file is not held (any more)",
            ));
        }
        let why = reason.as_deref().unwrap_or("no reason given");
        let decision = reject.then(|| format!("rejected at review by {}: {why}", sess.actor));
        l.release(id, decision.as_deref().map(|m| ("rejected-at-review", m)))?;
        let action = if reject {
            "release --reject"
        } else {
            "release"
        };
        l.audit(
            &sess.actor,
            action,
            reason.as_deref(),
            Some(&file.name),
            &json!({"file": id, "fingerprint": file.fingerprint}),
        )?;
        Ok(())
    })
    .await?;
    Ok(see_other(&format!("/files/{id}")))
}

#[derive(Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    csrf: String,
    target: String,
    entity: String,
    status: Option<i64>,
    #[serde(default)]
    cause: String,
    reason: Option<String>,
}
csrf_form!(RetryForm);

pub async fn retry(State(st): State<Arc<AppState>>, Act(sess, f): Act<RetryForm>) -> Page {
    let reason = reason_of(&f.reason);
    let sel = DeadGroupSel {
        target: f.target,
        entity: f.entity,
        status: f.status,
        cause: f.cause,
    };
    let audit = with_ledger(&st, move |l, _| {
        let ids = l.retry_dead_group(&sel, false)?;
        let detail = json!({"queued": ids.len(), "ids": ids, "selection": sel});
        Ok(l.audit(
            &sess.actor,
            "retry",
            reason.as_deref(),
            Some(&sel.target),
            &detail,
        )?)
    })
    .await?;
    Ok(see_other(&format!("/retries/{audit}")))
}

pub async fn upload(
    State(st): State<Arc<AppState>>,
    Extension(sess): Extension<Sess>,
    Path(id): Path<i64>,
    mut mp: Multipart,
) -> Page {
    let (mut token, mut file) = (None, None);
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| AppError::bad(e.to_string()))?
    {
        match field.name() {
            Some("csrf") => {
                token = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| AppError::bad(e.to_string()))?,
                )
            }
            Some("file") => {
                let fname = field.file_name().unwrap_or("").to_string();
                file = Some((
                    fname,
                    field
                        .bytes()
                        .await
                        .map_err(|e| AppError::bad(e.to_string()))?,
                ));
            }
            _ => {}
        }
    }
    if !token.is_some_and(|t| auth::ct_eq(&t, &sess.csrf)) {
        return Ok(forbidden("the form's security token is missing or stale"));
    }
    let (uploaded, bytes) = file.ok_or_else(|| AppError::bad("no file was uploaded"))?;
    let hook = st.hooks.upload_correction;
    let actor = sess.actor.clone();
    let said = with_ledger(&st, move |l, cfg| {
        let original = l.file_opt(id)?.ok_or_else(|| AppError::not_found("file"))?;
        let said =
            hook(cfg, &original, &uploaded, &bytes).map_err(|e| AppError::bad(format!("{e:#}")))?;
        l.audit(
            &actor,
            "upload-correction",
            None,
            Some(&original.name),
            &json!({"file": id, "uploaded": uploaded, "bytes": bytes.len(), "result": said}),
        )?;
        Ok(said)
    })
    .await?;
    let body = html! {
        p.note.good { "Corrections file accepted: " (name(&said)) }
        p { a href={ "/files/" (id) } { "Back to the file" } }
    };
    Ok(super::html::page(
        "Corrections uploaded",
        &sess,
        "/files",
        body,
    ))
}

#[derive(Deserialize)]
pub struct ReconcileForm {
    #[serde(default)]
    csrf: String,
    target: String,
}
csrf_form!(ReconcileForm);

pub async fn reconcile(State(st): State<Arc<AppState>>, Act(sess, f): Act<ReconcileForm>) -> Page {
    let Some(hook) = st.hooks.reconcile else {
        return Err(AppError::new(
            StatusCode::NOT_IMPLEMENTED,
            "reconciling from the console is not set up",
        ));
    };
    let actor = sess.actor.clone();
    let said = with_ledger(&st, move |l, cfg| {
        if !cfg.remote_targets().any(|t| t.name == f.target) {
            return Err(AppError::not_found("target"));
        }
        let said = hook(cfg, &f.target)?;
        l.audit(
            &actor,
            "reconcile",
            None,
            Some(&f.target),
            &json!({"target": f.target, "result": said}),
        )?;
        Ok(said)
    })
    .await?;
    let body = html! { p.note { (name(&said)) } p { a href="/" { "Back to the dashboard" } } };
    Ok(super::html::page("Reconciled", &sess, "/", body))
}

#[derive(Deserialize)]
pub struct LoginQ {
    next: Option<String>,
}

/// Only a path on this console: never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".into(),
    }
}

fn login_page(next: &str, failed: bool) -> Html<String> {
    Html(
        bare(
            "Log in to the console",
            html! {
                @if failed { p.error { "That token is not right." } }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    p { label { "Console token " input type="password" name="token" autocomplete="current-password" autofocus required; } }
                    p { button type="submit" { "Log in" } }
                }
                p.muted { "The secret part of " code { (auth::TOKEN_ENV) } " (name:secret)." }
            },
        )
        .into_string(),
    )
}

pub async fn login_form(State(st): State<Arc<AppState>>, Query(q): Query<LoginQ>) -> Response {
    if st.token.is_none() {
        return see_other("/");
    }
    login_page(&safe_next(q.next.as_deref()), false).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

pub async fn login(State(st): State<Arc<AppState>>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    let Some(token) = &st.token else {
        return see_other("/");
    };
    if !token.matches(&f.token) {
        // Slows guessing down; the secret's length makes guessing hopeless anyway.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        return (StatusCode::UNAUTHORIZED, login_page(&next, true)).into_response();
    }
    let (id, _) = st.sessions.create(&token.name);
    let mut resp = see_other(&next);
    resp.headers_mut()
        .append(header::SET_COOKIE, auth::set_cookie(&id));
    resp
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}
csrf_form!(LogoutForm);

pub async fn logout(
    State(st): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Act(_, _f): Act<LogoutForm>,
) -> Response {
    if let Some(id) = auth::session_id(&headers) {
        st.sessions.remove(&id);
    }
    let to = if st.token.is_some() { "/login" } else { "/" };
    let mut resp = see_other(to);
    resp.headers_mut()
        .append(header::SET_COOKIE, auth::clear_cookie());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_login_only_a_path_of_this_console() {
        assert_eq!(safe_next(Some("/files/3?from=200")), "/files/3?from=200");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn a_resolution_needs_a_note() {
        assert!(note_required("  ").is_err());
        assert_eq!(
            note_required(" fixed at source ").unwrap(),
            "fixed at source"
        );
    }
}
