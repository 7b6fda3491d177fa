//! The exceptions queue: everything that needs a person — rejected documents (key
//! conflicts among them), files rejected by a file-level error, held files, dead letters —
//! grouped by cause (the rule broken, the target and its message) with counts, each group
//! linking to its documents and they to the original line. Retrying dead letters shows the
//! count first (a dry run), then acts, then follows the retried records' progress.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::app::{with_ledger, AppError, AppState, Page};
use super::auth::Sess;
use super::files::{delivery_table, doc_line_link, release_form};
use super::html::{badge, csrf, enc, name, when};
use crate::ledger::{DeadGroup, DeadGroupSel, FileErrorRow, FileRow, RejectGroup, RejectedDoc};

struct Queue {
    rejects: Vec<RejectGroup>,
    file_errors: Vec<FileErrorRow>,
    held: Vec<FileRow>,
    dead: Vec<DeadGroup>,
}

pub async fn queue(State(st): State<Arc<AppState>>, Extension(sess): Extension<Sess>) -> Page {
    let q = with_ledger(&st, |l, _| {
        Ok(Queue {
            rejects: l.reject_groups()?,
            file_errors: l.open_file_errors()?,
            held: l.held_files()?,
            dead: l.dead_groups()?,
        })
    })
    .await?;
    let docs: i64 = q.rejects.iter().map(|g| g.documents).sum();
    let dead: i64 = q.dead.iter().map(|g| g.count).sum();
    let body = html! {
        p {
            (docs) " rejected document(s) in " (q.rejects.len()) " group(s) · " (q.file_errors.len()) " file(s) rejected whole · "
            (q.held.len()) " held file(s) · " (dead) " dead letter(s) in " (q.dead.len()) " group(s)"
        }
        h2 #rejects { "Rejected documents, by the rule they broke" }
        @if q.rejects.is_empty() { p.ok { "None open." } } @else {
            table {
                tr { th { "cause" } th.num { "documents" } th.num { "files" } th { "oldest (UTC)" } }
                @for g in &q.rejects {
                    tr {
                        td {
                            a href={ "/exceptions/rule?rule=" (enc(&g.rule)) } { (g.rule) }
                            @if g.rule == "key-conflict" { " " span.badge.bad { "key conflict: same key, other content" } }
                        }
                        td.num { (g.documents) } td.num { (g.files) } td { (when(&g.oldest)) }
                    }
                }
            }
        }
        (file_errors(&q.file_errors, &sess))
        h2 #held { "Held files" }
        @if q.held.is_empty() { p.ok { "None." } }
        @for f in &q.held {
            div.note.bad {
                a href={ "/files/" (f.id) } { "#" (f.id) " " (name(&f.name)) } ": " (f.hold_reason.as_deref().unwrap_or(""))
                (release_form(f.id, &sess))
            }
        }
        (dead_groups(&q.dead))
    };
    Ok(super::html::page("Exceptions", &sess, "/exceptions", body))
}

fn file_errors(rows: &[FileErrorRow], sess: &Sess) -> Markup {
    html! {
        h2 #files { "Files rejected whole" }
        @if rows.is_empty() { p.ok { "None open." } } @else {
            table {
                tr { th { "file" } th { "rule" } th { "message" } th { "when (UTC)" } th.noprint { "" } }
                @for r in rows {
                    tr {
                        td { a href={ "/files/" (r.file_id) } { "#" (r.file_id) " " (name(&r.name)) } }
                        td { (r.rule) } td { (name(r.message.as_deref().unwrap_or(""))) } td { (when(&r.at)) }
                        td.noprint {
                            form.inline method="post" action={ "/files/" (r.file_id) "/resolve" } {
                                (csrf(sess))
                                input type="hidden" name="file_error" value="1";
                                input type="text" name="note" required placeholder="note";
                                " " button.secondary type="submit" { "Mark resolved" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A cause as shown.
fn cause_label(cause: &str) -> String {
    if cause.is_empty() {
        "(no message)".into()
    } else {
        name(cause)
    }
}

/// The query of a dead-letter group's pages.
pub fn group_query(g: &DeadGroupSel) -> String {
    let mut q = format!("target={}&entity={}", enc(&g.target), enc(&g.entity));
    if let Some(s) = g.status {
        q.push_str(&format!("&status={s}"));
    }
    q.push_str(&format!("&cause={}", enc(&g.cause)));
    q
}

fn dead_groups(groups: &[DeadGroup]) -> Markup {
    html! {
        h2 #dead { "Dead letters, by target and cause" }
        @if groups.is_empty() { p.ok { "None." } } @else {
            table {
                tr { th { "target" } th { "entity" } th.num { "status" } th { "cause: the target's message (masked), particulars taken out" } th.num { "records" } th { "oldest (UTC)" } th.noprint { "" } }
                @for g in groups {
                    @let q = group_query(&DeadGroupSel { target: g.target.clone(), entity: g.entity.clone(), status: g.status, cause: g.cause.clone() });
                    tr {
                        td { (g.target) } td { (g.entity) } td.num { (g.status.map(|s| s.to_string()).unwrap_or_default()) }
                        td {
                            a href={ "/deadletters?" (q) } { (cause_label(&g.cause)) }
                            @if let Some(e) = g.example.as_ref().filter(|_| g.count > 1) { br; span.muted { "e.g. " (name(e)) } }
                        }
                        td.num { (g.count) } td { (when(&g.oldest)) }
                        td.noprint { a href={ "/deadletters/retry?" (q) } { "retry…" } }
                    }
                }
            }
        }
    }
}

/// Rejected documents with their first broken line and resolution; `per_file` offers a
/// resolve form per open document (on a file's page).
pub fn docs_table(docs: &[RejectedDoc], sess: &Sess, per_file: bool) -> Markup {
    html! {
        @if !docs.is_empty() {
            h2 #docs { "Rejected documents (" (docs.len()) ")" }
            table {
                tr {
                    @if !per_file { th { "file" } }
                    th { "document" } th { "key" } th { "first broken line" } th { "rule · field" } th { "message" } th { "resolution" }
                }
                @for d in docs {
                    tr {
                        @if !per_file { td { a href={ "/files/" (d.file_id) } { "#" (d.file_id) " " (name(&d.file_name)) } } }
                        td { (name(&d.label)) }
                        td { @if let Some(k) = &d.key { a href={ "/records?key=" (enc(k)) } { (name(k)) } } }
                        td { (doc_line_link(d)) }
                        td { (d.rule.as_deref().unwrap_or("")) @if let Some(f) = &d.field { " · " (name(f)) } }
                        td { (name(d.message.as_deref().unwrap_or(""))) }
                        td { (resolution_cell(d, sess, per_file)) }
                    }
                }
            }
        }
    }
}

fn resolution_cell(d: &RejectedDoc, sess: &Sess, per_file: bool) -> Markup {
    html! {
        @match &d.resolution {
            Some(r) if r.how == "corrected" => {
                (badge("corrected")) " by "
                @if let Some(c) = r.by_file_id { a href={ "/files/" (c) } { "file #" (c) } }
                " " (when(&r.at))
            }
            Some(r) => { (badge("resolved")) " " (r.actor.as_deref().unwrap_or("")) ": " (r.note.as_deref().unwrap_or("")) }
            None if per_file => {
                form.inline.noprint method="post" action={ "/files/" (d.file_id) "/resolve" } {
                    (csrf(sess))
                    input type="hidden" name="seq" value=(d.seq);
                    input type="text" name="note" required placeholder="note" size="14";
                    " " button.secondary type="submit" { "Resolve" }
                }
            }
            None => span.muted { "open" },
        }
    }
}

#[derive(Deserialize)]
pub struct RuleQ {
    rule: String,
}

pub async fn rule_group(
    State(st): State<Arc<AppState>>,
    Extension(sess): Extension<Sess>,
    Query(q): Query<RuleQ>,
) -> Page {
    let rule = q.rule.clone();
    let docs = with_ledger(&st, move |l, _| Ok(l.open_rejects_of_rule(&rule, 1000)?)).await?;
    let body = html! {
        p { (docs.len()) " open document(s) rejected for rule " strong { (q.rule) } ". Follow a line to see it beside its reject, fix it at the source or upload a corrections file from the file's page." }
        (docs_table(&docs, &sess, false))
        @if !docs.is_empty() {
            form.box method="post" action="/exceptions/rule/resolve" {
                (csrf(&sess))
                input type="hidden" name="rule" value=(q.rule);
                label { "Note " input type="text" name="note" required placeholder="what was done (for the audit trail)"; }
                " " button type="submit" { "Mark all " (docs.len()) " resolved" }
            }
        }
    };
    Ok(super::html::page(
        &format!("Rejected for {}", q.rule),
        &sess,
        "/exceptions",
        body,
    ))
}

pub async fn dead_group(
    State(st): State<Arc<AppState>>,
    Extension(sess): Extension<Sess>,
    Query(g): Query<DeadGroupSel>,
) -> Page {
    let sel = g.clone();
    let rows = with_ledger(&st, move |l, _| Ok(l.dead_of_group(&sel, 1000)?)).await?;
    let body = html! {
        p { (rows.len()) " dead letter(s) for " (g.target) ", " (g.entity) ": " strong { (cause_label(&g.cause)) } }
        p.noprint { a href={ "/deadletters/retry?" (group_query(&g)) } { "Retry this group…" } " (shows the count first)" }
        (delivery_table(&rows))
    };
    Ok(super::html::page(
        "Dead letters",
        &sess,
        "/exceptions",
        body,
    ))
}

pub async fn retry_preview(
    State(st): State<Arc<AppState>>,
    Extension(sess): Extension<Sess>,
    Query(g): Query<DeadGroupSel>,
) -> Page {
    let sel = g.clone();
    let n = with_ledger(&st, move |l, _| Ok(l.retry_dead_group(&sel, true)?.len())).await?;
    let body = html! {
        p.note { strong { (n) " dead letter(s)" } " of " (g.target) ", " (g.entity) " with the cause "
            em { (cause_label(&g.cause)) } " would be queued again. Nothing has changed yet." }
        @if n > 0 {
            form.box method="post" action="/deadletters/retry" {
                (csrf(&sess))
                input type="hidden" name="target" value=(g.target);
                input type="hidden" name="entity" value=(g.entity);
                @if let Some(s) = g.status { input type="hidden" name="status" value=(s); }
                input type="hidden" name="cause" value=(g.cause);
                label { "Reason " input type="text" name="reason" placeholder="what was fixed (for the audit trail)"; }
                " " button type="submit" { "Queue " (n) " again" }
            }
        }
    };
    Ok(super::html::page(
        "Retry dead letters",
        &sess,
        "/exceptions",
        body,
    ))
}

pub async fn retry_progress(
    State(st): State<Arc<AppState>>,
    Extension(sess): Extension<Sess>,
    Path(audit): Path<i64>,
) -> Page {
    let (row, states) = with_ledger(&st, move |l, _| {
        let row = l
            .audit_entry(audit)?
            .filter(|a| a.action == "retry")
            .ok_or_else(|| AppError::not_found("retry"))?;
        let ids: Vec<i64> = row
            .detail
            .as_ref()
            .and_then(|d| serde_json::from_value(d["ids"].clone()).ok())
            .unwrap_or_default();
        let states = l.delivery_states(&ids)?;
        Ok((row, states))
    })
    .await?;
    let queued = row
        .detail
        .as_ref()
        .and_then(|d| d["queued"].as_i64())
        .unwrap_or(0);
    let delivered = states
        .iter()
        .find(|(s, _)| s == "delivered")
        .map_or(0, |(_, n)| *n);
    let body = html! {
        p.note.good { strong { (queued) " queued" } " by " (row.actor) " at " (when(&row.at)) " UTC; they are delivered by the next run (or " code { "tallyman deliver" } ")." }
        p { "Now: " strong { (delivered) " of " (queued) " delivered" } ". "
            @for (s, n) in &states { (n) " " (badge(s)) " " }
            a.noprint href={ "/retries/" (audit) } { "refresh" } }
        @if let Some(r) = &row.reason { p { "Reason: " (r) } }
    };
    Ok(super::html::page(
        "Retry progress",
        &sess,
        "/exceptions",
        body,
    ))
}
