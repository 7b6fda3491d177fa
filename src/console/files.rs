//! Files: the list of every file with outcome, counts, format, partner and acks, and one
//! file's page — its facts and hold or error, its rejected documents with how each was
//! resolved, its lines with outcome and position (the reject beside the original line, the
//! offending value marked), the acknowledgements it produced and what was delivered where.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::app::{with_ledger, AppError, AppState, Page};
use super::auth::Sess;
use super::html::{badge, csrf, line_href, marked_line, name, record_href, when};
use crate::format::Outbound;
use crate::ledger::{
    DeliveryView, FileListRow, FileRow, FileState, LineView, RejectedDoc, Resolution, StateCount,
};

pub const LINES_PER_PAGE: i64 = 200;
const FILES_PER_PAGE: i64 = 50;

/// The list's filters: label and the value of `?outcome=`.
const FILTERS: [(&str, &str); 8] = [
    ("all", ""),
    ("held", "held"),
    ("in progress", "in_progress"),
    ("with rejects", "applied_with_rejects"),
    ("rejected", "rejected"),
    ("failed", "failed"),
    ("applied", "applied"),
    ("duplicate", "duplicate"),
];

#[derive(Deserialize)]
pub struct ListQ {
    outcome: Option<String>,
    page: Option<i64>,
}

pub async fn list(
    State(st): State<Arc<AppState>>,
    Extension(sess): Extension<Sess>,
    Query(q): Query<ListQ>,
) -> Page {
    let outcome = q.outcome.filter(|o| !o.is_empty());
    let page = q.page.unwrap_or(0).max(0);
    let o2 = outcome.clone();
    let rows = with_ledger(&st, move |l, _| {
        Ok(l.file_list(o2.as_deref(), page * FILES_PER_PAGE, FILES_PER_PAGE + 1)?)
    })
    .await?;
    let more = rows.len() as i64 > FILES_PER_PAGE;
    let current = outcome.clone().unwrap_or_default();
    let body = html! {
        p.tabs {
            @for (label, value) in FILTERS {
                a href={ "/files?outcome=" (value) } class=[(value == current).then_some("on")] { (label) }
            }
        }
        table {
            tr {
                th { "#" } th { "file" } th { "outcome" } th { "format" } th { "partner" } th.num { "applied" }
                th.num { "rejected" } th.num { "duplicate" } th.num { "skipped" } th.num { "acks" } th { "finished (UTC)" }
            }
            @for r in rows.iter().take(FILES_PER_PAGE as usize) { (file_row(r)) }
        }
        p {
            @if page > 0 { a href={ "/files?outcome=" (current) "&page=" (page - 1) } { "← newer" } " " }
            @if more { a href={ "/files?outcome=" (current) "&page=" (page + 1) } { "older →" } }
        }
    };
    Ok(super::html::page("Files", &sess, "/files", body))
}

/// A file's outcome, or where it stands when it has none yet.
pub fn standing(f: &FileRow) -> &str {
    match (f.state, f.outcome.as_deref()) {
        (FileState::Held, _) => "held",
        (_, Some(o)) => o,
        _ => "in_progress",
    }
}

fn file_row(r: &FileListRow) -> Markup {
    let f = &r.file;
    let c = &f.counts;
    html! {
        tr {
            td.num { (f.id) }
            td { a href={ "/files/" (f.id) } { (name(&f.name)) } }
            td { (badge(standing(f))) }
            td { (f.format.as_deref().unwrap_or("–")) }
            td { (r.partners.as_deref().unwrap_or("–")) }
            td.num { (c.lines_applied) } td.num { (c.lines_rejected) } td.num { (c.lines_duplicate) } td.num { (c.lines_skipped) }
            td.num { (r.acks) }
            td { (f.finished_at.as_deref().map(when).unwrap_or_default()) }
        }
    }
}

#[derive(Deserialize)]
pub struct PageQ {
    from: Option<i64>,
    rejected: Option<String>,
}

struct FileData {
    f: FileRow,
    original: Option<FileRow>,
    corrections: Vec<FileRow>,
    docs: Vec<RejectedDoc>,
    error_resolution: Option<Resolution>,
    lines: Vec<LineView>,
    line_count: i64,
    acks: Vec<Outbound>,
    deliveries: Vec<DeliveryView>,
    delivery_counts: Vec<StateCount>,
}

pub async fn page(
    State(st): State<Arc<AppState>>,
    Extension(sess): Extension<Sess>,
    Path(id): Path<i64>,
    Query(q): Query<PageQ>,
) -> Page {
    let from = q.from.unwrap_or(0).max(0);
    let rejected_only = q.rejected.is_some_and(|r| r == "1");
    let d = with_ledger(&st, move |l, _| {
        let f = l.file_opt(id)?.ok_or_else(|| AppError::not_found("file"))?;
        Ok(FileData {
            original: f
                .correction_of
                .map(|o| l.file_opt(o))
                .transpose()?
                .flatten(),
            corrections: l.corrections_of(id)?,
            docs: l.rejected_docs_of_file(id)?,
            error_resolution: l.file_error_resolution(id)?,
            lines: l.file_lines(id, from, LINES_PER_PAGE + 1, rejected_only)?,
            line_count: l.line_count(id)?,
            acks: l.acks(id)?,
            deliveries: l.file_deliveries(id, 500)?,
            delivery_counts: l.file_delivery_counts(id)?,
            f,
        })
    })
    .await?;
    let body = html! {
        (facts(&d))
        (hold_and_error(&d, &sess))
        (super::exceptions::docs_table(&d.docs, &sess, true))
        (upload_form(&d, &sess))
        (lines_table(&d, from, rejected_only, &sess))
        (acks_table(&d.acks))
        (deliveries(&d))
    };
    Ok(super::html::page(
        &format!("File #{} {}", d.f.id, name(&d.f.name)),
        &sess,
        "/files",
        body,
    ))
}

fn facts(d: &FileData) -> Markup {
    let f = &d.f;
    let c = &f.counts;
    html! {
        dl.facts {
            dt { "outcome" } dd { (badge(standing(f))) }
            dt { "format" } dd { (f.format.as_deref().unwrap_or("–")) }
            dt { "lines" } dd { (c.lines_applied) " applied, " (c.lines_rejected) " rejected, " (c.lines_duplicate) " duplicate, " (c.lines_unchanged) " unchanged, " (c.lines_unmapped) " unmapped, " (c.lines_skipped) " skipped" }
            dt { "documents" } dd { (c.units_applied) " applied, " (c.units_rejected) " rejected, " (c.units_duplicate) " duplicate, " (c.units_unchanged) " unchanged" }
            dt { "size" } dd { (f.size) " bytes" }
            dt { "fingerprint" } dd { code { (f.fingerprint) } @if f.attempt > 1 { " (attempt " (f.attempt) ")" } @if f.forced { " — forced" } }
            dt { "claimed / finished" } dd { (when(&f.claimed_at)) " / " (f.finished_at.as_deref().map(when).unwrap_or_else(|| "–".into())) " UTC" }
            dt { "now at" } dd { code { (name(f.final_path.as_deref().or(f.work_path.as_deref()).unwrap_or(&f.source_path))) } }
            @if let Some(r) = &f.report_path { dt { "reject report" } dd { code { (name(r)) } } }
            @if let Some(o) = &d.original {
                dt { "corrects" } dd { a href={ "/files/" (o.id) } { "#" (o.id) " " (name(&o.name)) } }
            }
            @if !d.corrections.is_empty() {
                dt { "corrected by" } dd {
                    @for c in &d.corrections { a href={ "/files/" (c.id) } { "#" (c.id) " " (name(&c.name)) } " (" (standing(c).replace('_', " ")) ") " }
                }
            }
        }
    }
}

fn hold_and_error(d: &FileData, sess: &Sess) -> Markup {
    let f = &d.f;
    html! {
        @if f.state == FileState::Held {
            div.note.bad {
                strong { "Held for a person: " } (f.hold_reason.as_deref().unwrap_or(""))
                (release_form(f.id, sess))
            }
        }
        @if let Some(rule) = &f.error_rule {
            div class={ "note " (if d.error_resolution.is_some() { "good" } else { "bad" }) } {
                strong { "File-level error (" (rule) "): " } (f.error_message.as_deref().unwrap_or(""))
                @if let Some(p) = &f.error_position { " at " (p) }
                @match &d.error_resolution {
                    Some(r) => p.ok { "Resolved by " (r.actor.as_deref().unwrap_or("?")) " at " (when(&r.at)) " UTC: " (r.note.as_deref().unwrap_or("")) },
                    None => form.box method="post" action={ "/files/" (f.id) "/resolve" } {
                        (csrf(sess))
                        input type="hidden" name="file_error" value="1";
                        label { "Note " input type="text" name="note" required placeholder="what was done about it"; }
                        " " button type="submit" { "Mark resolved" }
                    },
                }
            }
        }
    }
}

/// Release or reject a held file, with a reason for the audit trail.
pub fn release_form(id: i64, sess: &Sess) -> Markup {
    html! {
        form.box method="post" action={ "/files/" (id) "/release" } {
            (csrf(sess))
            label { "Reason " input type="text" name="reason" placeholder="why (for the audit trail)"; }
            " " button type="submit" name="decision" value="release" { "Release (the next run continues it)" }
            " " button.danger type="submit" name="decision" value="reject" { "Reject it whole" }
        }
    }
}

fn upload_form(d: &FileData, sess: &Sess) -> Markup {
    let open = d.docs.iter().any(|x| x.resolution.is_none());
    html! {
        @if open {
            form.box method="post" action={ "/files/" (d.f.id) "/corrections" } enctype="multipart/form-data" {
                (csrf(sess))
                strong { "Upload a corrections file " }
                span.muted { "(the rejected documents, fixed, as CSV or XLSX; the next run applies it and resolves what it fixes) " }
                input type="file" name="file" accept=".csv,.xlsx" required;
                " " button type="submit" { "Upload" }
            }
        }
    }
}

fn lines_table(d: &FileData, from: i64, rejected_only: bool, sess: &Sess) -> Markup {
    let id = d.f.id;
    let shown = d.lines.iter().take(LINES_PER_PAGE as usize);
    let next = d.lines.get(LINES_PER_PAGE as usize).map(|l| l.ordinal);
    let filter = if rejected_only { "&rejected=1" } else { "" };
    html! {
        h2 #lines { "Lines (" (d.line_count) ")" }
        p.tabs.noprint {
            a href={ "/files/" (id) "#lines" } class=[(!rejected_only).then_some("on")] { "all lines" }
            a href={ "/files/" (id) "?rejected=1#lines" } class=[rejected_only.then_some("on")] { "rejected only" }
        }
        table {
            tr { th.num { "line" } th { "position" } th { "outcome" } th { "key" } th { "reject" } th { "original line (offending value marked)" } }
            @for l in shown { (line_row(id, l, sess)) }
        }
        p {
            @if from > 0 { a href={ "/files/" (id) "?from=" ((from - LINES_PER_PAGE).max(0)) (filter) "#lines" } { "← earlier lines" } " " }
            @if let Some(n) = next { a href={ "/files/" (id) "?from=" (n) (filter) "#lines" } { "later lines →" } }
        }
    }
}

fn position(l: &LineView) -> String {
    match (&l.locator, l.byte) {
        (Some(loc), _) if crate::unit::is_cell_locator(loc) => loc.clone(),
        (Some(loc), b) => format!("byte {b}, {loc}"),
        (None, b) => format!("byte {b}"),
    }
}

fn line_row(file_id: i64, l: &LineView, sess: &Sess) -> Markup {
    let rejected = l.status == "rejected";
    html! {
        tr id={ "l" (l.ordinal) } class=[rejected.then_some("rejected")] {
            td.num { (l.line) }
            td.pos { (name(&position(l))) }
            td { (badge(&l.status)) }
            td { @if let Some(k) = &l.key { (name(k)) } }
            td {
                @if let Some(rule) = &l.rule {
                    strong { (rule) } @if let Some(fld) = &l.field { " · " mark { (name(fld)) } }
                    br; (name(l.message.as_deref().unwrap_or("")))
                }
            }
            td {
                @if let Some(raw) = &l.raw {
                    (marked_line(raw, l.value.as_deref()))
                    @if rejected {
                        form.inline.noprint method="post" action={ "/files/" (file_id) "/reveal" } {
                            (csrf(sess))
                            input type="hidden" name="ordinal" value=(l.ordinal);
                            " " button.secondary type="submit" title="shows the line as received, masked values included; recorded in the audit trail" { "reveal original" }
                        }
                    }
                }
            }
        }
    }
}

/// Bytes of an acknowledgement the file page shows: a 997 for a whole day's orders can be
/// tens of megabytes, more than a page should carry.
const SHOWN_ACK_BYTES: usize = 64 * 1024;

fn acks_table(acks: &[Outbound]) -> Markup {
    html! {
        @if !acks.is_empty() {
            h2 { "Acknowledgements sent (" (acks.len()) ")" }
            table {
                tr { th { "kind" } th { "partner" } th.num { "control number" } th { "file" } th { "content" } }
                @for a in acks {
                    tr {
                        td { (a.kind) } td { (name(&a.partner)) } td.num { (a.control_no.map(|n| n.to_string()).unwrap_or_default()) }
                        td { (name(&a.file_name)) }
                        @let (text, total) = a.content.head(SHOWN_ACK_BYTES);
                        td { details { summary { (total) " bytes" } pre {
                            (text)
                            @if total > text.len() as u64 {
                                "\n… and " (total - text.len() as u64) " bytes more: the whole acknowledgement is "
                                (name(&a.file_name)) " in the acks folder"
                            }
                        } } }
                    }
                }
            }
        }
    }
}

fn deliveries(d: &FileData) -> Markup {
    html! {
        @if !d.delivery_counts.is_empty() {
            h2 { "Delivered where" }
            p { @for c in &d.delivery_counts { (c.target) ": " (c.count) " " (badge(&c.state)) " " } }
            (delivery_table(&d.deliveries))
        }
    }
}

/// Deliveries with their state, latency and the target's last word, linking each key's
/// history.
pub fn delivery_table(rows: &[DeliveryView]) -> Markup {
    html! {
        table {
            tr { th { "target" } th { "entity" } th { "key" } th.num { "version" } th { "state" } th.num { "attempts" } th.num { "status" } th { "sync latency" } th { "last message (masked)" } }
            @for r in rows {
                tr {
                    td { (r.target) } td { (r.entity) }
                    td { a href=(record_href(&r.entity, &r.key)) { (name(&r.key)) } }
                    td.num { (r.version) } td { (badge(&r.state)) } td.num { (r.attempts) }
                    td.num { (r.last_status.map(|s| s.to_string()).unwrap_or_default()) }
                    td { (r.latency_seconds.map(super::html::duration).unwrap_or_default()) }
                    td { (name(r.last_error.as_deref().unwrap_or(""))) }
                }
            }
        }
    }
}

/// A link to the first rejected line of a document, if it has one.
pub fn doc_line_link(d: &RejectedDoc) -> Markup {
    html! {
        @match (d.ordinal, d.line) {
            (Some(o), Some(n)) => a href=(line_href(d.file_id, o)) { "line " (n) @if let Some(loc) = &d.locator { " (" (name(loc)) ")" } },
            _ => span.muted { "–" },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::AckBody;

    fn ack(text: &str) -> Outbound {
        Outbound {
            file_name: "ACME-997-000000001.x12".into(),
            kind: "997".into(),
            partner: "ACME".into(),
            control_no: Some(1),
            content: AckBody::from_text(text.as_bytes()),
        }
    }

    /// A short acknowledgement is shown whole; a long one up to `SHOWN_ACK_BYTES`, with
    /// what is left and where the whole file is.
    #[test]
    fn a_long_acknowledgement_is_shown_in_part_with_where_the_rest_is() {
        let short_text = "ISA*00~\nIEA*1*000000001~\n";
        let short = acks_table(&[ack(short_text)]).into_string();
        assert!(
            short.contains(&format!("{} bytes", short_text.len())),
            "{short}"
        );
        assert!(short.contains("IEA*1*000000001~"), "{short}");
        assert!(!short.contains("bytes more"));
        let long_text = "AK2*850*000000001~\nAK5*A~\n".repeat(10_000);
        let long = acks_table(&[ack(&long_text)]).into_string();
        let left = long_text.len() - SHOWN_ACK_BYTES;
        assert!(
            long.contains(&format!("{} bytes", long_text.len())),
            "{long:.300}"
        );
        assert!(
            long.contains(&format!("and {left} bytes more")),
            "{long:.300}"
        );
        assert!(long.contains("ACME-997-000000001.x12 in the acks folder"));
        assert!(long.len() < SHOWN_ACK_BYTES + 2_000, "{}", long.len());
    }
}
