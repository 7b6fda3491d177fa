//! The dashboard: the numbers integration owners are told to watch, each as a figure and a
//! chart over the last 24 hours or 30 days, and `/metrics` with the same numbers for
//! Prometheus. Rates and latencies come from the ledger's rows; queue depth and dead letters
//! over time from the samples `metrics::sample` stores after each run.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::app::{with_ledger, AppState, Page};
use super::auth::Sess;
use super::charts::{align, bars, last_per_bucket, with_now, Window};
use super::html::{duration, percent, when};
use crate::ledger::{Bucket, ReconRow, WindowTotals, WorkerRow};
use crate::metrics::{self, Figures, ERROR_OBJECTIVE};

#[derive(Deserialize)]
pub struct Q {
    window: Option<String>,
}

/// What the dashboard shows, read in one go.
struct Dash {
    w: Window,
    f: Figures,
    totals: WindowTotals,
    docs: Vec<Bucket>,
    delivered: Vec<Bucket>,
    deliveries: Vec<Bucket>,
    latency: Vec<(String, f64)>,
    retry_depth: Vec<(String, f64)>,
    dead: Vec<(String, f64)>,
    recon: Vec<ReconRow>,
    workers: Vec<WorkerRow>,
    can_reconcile: bool,
}

pub async fn page(
    State(st): State<Arc<AppState>>,
    Extension(sess): Extension<Sess>,
    Query(q): Query<Q>,
) -> Page {
    let w = Window::parse(q.window.as_deref());
    let can_reconcile = st.hooks.reconcile.is_some();
    let d = with_ledger(&st, move |l, cfg| {
        let since = metrics::iso_ago(w.seconds());
        Ok(Dash {
            w,
            f: metrics::figures(l, cfg)?,
            totals: l.window_totals(&since)?,
            docs: l.documents_by_bucket(&since, w.prefix())?,
            delivered: l.delivered_by_bucket(&since, w.prefix())?,
            deliveries: l.deliveries_by_bucket(&since, w.prefix())?,
            latency: l.sync_latencies(None, &since, 100_000)?,
            retry_depth: l.metric_series("tallyman_retry_queue_depth", "", &since)?,
            dead: l.metric_series("tallyman_dead_letters", "", &since)?,
            recon: l.reconciliations_since(&since)?,
            workers: l.workers()?,
            can_reconcile,
        })
    })
    .await?;
    let body = html! {
        p.tabs.noprint {
            "Window: "
            @for win in [Window::Day, Window::Month] {
                a href={ "/?window=" (win.as_str()) } class=[(win == d.w).then_some("on")] { (win.label()) }
            }
            span.muted { (last_run(&d.f)) }
        }
        @for t in d.f.targets.iter().filter(|t| t.counts.blocked.is_some()) {
            p.note.bad { strong { "Target " (t.name) " is blocked: " } (t.counts.blocked.as_deref().unwrap_or("")) " — nothing is sent until its credentials are fixed." }
        }
        div.cards {
            (latency_card(&d))
            (rate_card("Error rate: rejected documents", d.totals.rejected_documents, d.totals.documents, "documents", &d.docs, d.w))
            (rate_card("Error rate: dead letters", d.totals.dead_letters, d.totals.deliveries, "deliveries", &d.deliveries, d.w))
            (delivered_card(&d))
            (dead_card(&d))
            (queue_card(&d))
            (orphans_card(&d, &sess))
            (files_card(&d.f))
        }
        (targets_table(&d.f))
        (workers_table(&d.workers))
    };
    Ok(super::html::page("Integrations health", &sess, "/", body))
}

fn last_run(f: &Figures) -> String {
    match &f.last_run {
        Some((at, status)) => format!(" · newest run started {} UTC ({status})", when(at)),
        None => " · no run yet".into(),
    }
}

fn card(title: &str, class: &str, fig: &str, sub: Markup, chart: Markup) -> Markup {
    html! {
        section class={ "card " (class) } {
            h3 { (title) }
            div.fig { (fig) }
            div.sub { (sub) }
            (chart)
        }
    }
}

fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

fn latency_card(d: &Dash) -> Markup {
    let mut all: Vec<f64> = d.latency.iter().map(|(_, s)| *s).collect();
    all.sort_by(|a, b| a.total_cmp(b));
    let fig = match (quantile(&all, 0.5), quantile(&all, 0.95)) {
        (Some(a), Some(b)) => format!("{} / {}", duration(a), duration(b)),
        _ => "–".into(),
    };
    let mut by: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for (at, s) in &d.latency {
        if let Some(b) = at.get(..d.w.prefix()) {
            by.entry(b.to_string()).or_default().push(*s);
        }
    }
    let p95 = by.into_iter().filter_map(|(b, mut v)| {
        v.sort_by(|a, b| a.total_cmp(b));
        quantile(&v, 0.95).map(|q| (b, q))
    });
    let sub = html! { "p50 / p95, file settled → confirmed by the target, " (all.len()) " deliveries; bars: p95 per " (if d.w == Window::Day { "hour" } else { "day" }) };
    card(
        "Sync latency",
        "",
        &fig,
        sub,
        bars("sync latency p95", &align(d.w, p95), None, &duration),
    )
}

fn rate_card(title: &str, bad: i64, all: i64, what: &str, buckets: &[Bucket], w: Window) -> Markup {
    let rate = (all > 0).then(|| bad as f64 / all as f64);
    let class = match rate {
        Some(r) if r > ERROR_OBJECTIVE => "bad",
        Some(_) => "good",
        None => "",
    };
    let series = buckets
        .iter()
        .filter(|b| b.total > 0)
        .map(|b| (b.at.clone(), b.part as f64 / b.total as f64));
    let sub = html! { (bad) " of " (all) " " (what) "; objective ≤ " (percent(ERROR_OBJECTIVE)) " (dashed line)" };
    card(
        title,
        class,
        &rate.map_or("–".into(), percent),
        sub,
        bars(title, &align(w, series), Some(ERROR_OBJECTIVE), &percent),
    )
}

fn delivered_card(d: &Dash) -> Markup {
    let ever = d.f.sum(|c| c.delivered);
    let series = d.delivered.iter().map(|b| (b.at.clone(), b.total as f64));
    let sub = html! { (ever) " delivered in all" };
    card(
        "Records delivered",
        "",
        &d.totals.delivered.to_string(),
        sub,
        bars("records delivered", &align(d.w, series), None, &|v| {
            format!("{v:.0}")
        }),
    )
}

fn dead_card(d: &Dash) -> Markup {
    let now = d.f.sum(|c| c.dead);
    let sub = html! { "waiting for a person now · " a href="/exceptions#dead" { "see them" } };
    let series = align(d.w, with_now(d.w, &d.dead, now as f64));
    card(
        "Dead letters",
        if now > 0 { "bad" } else { "good" },
        &now.to_string(),
        sub,
        bars("dead letters", &series, None, &|v| format!("{v:.0}")),
    )
}

fn queue_card(d: &Dash) -> Markup {
    let retry = d.f.sum(|c| c.retry_wait);
    let waiting = d.f.sum(|c| c.pending + c.retry_wait + c.in_flight);
    let oldest =
        d.f.targets
            .iter()
            .filter_map(|t| t.counts.oldest_waiting_seconds)
            .max();
    let sub = html! {
        "to be retried; " (waiting) " waiting in all"
        @if let Some(o) = oldest { ", the oldest for " (duration(o as f64)) }
    };
    let series = align(d.w, with_now(d.w, &d.retry_depth, retry as f64));
    card(
        "Retry queue depth",
        if retry > 0 { "warn" } else { "" },
        &retry.to_string(),
        sub,
        bars("retry queue depth", &series, None, &|v| format!("{v:.0}")),
    )
}

fn orphans_card(d: &Dash, sess: &Sess) -> Markup {
    let latest = &d.f.reconciliations;
    let orphans: i64 = latest.iter().map(|r| r.orphans).sum();
    let fig = if latest.is_empty() {
        "–".into()
    } else {
        orphans.to_string()
    };
    let sub = html! {
        @if latest.is_empty() { "no reconciliation yet" }
        @for r in latest {
            (r.target) ": " (r.orphans) " orphan(s), " (r.missing) " missing, " (r.drift) " drifted, " (when(&r.at)) " UTC. "
        }
        @if d.can_reconcile {
            @for t in &d.f.targets {
                form.inline method="post" action="/reconcile" {
                    (super::html::csrf(sess))
                    input type="hidden" name="target" value=(t.name);
                    button.secondary type="submit" { "Reconcile " (t.name) " now" }
                }
            }
        }
    };
    let series = d
        .recon
        .iter()
        .map(|r| (r.at.clone(), r.orphans as f64))
        .collect::<Vec<_>>();
    let chart = bars(
        "orphans per reconciliation",
        &align(d.w, last_per_bucket(d.w, &series)),
        None,
        &|v| format!("{v:.0}"),
    );
    card(
        "Orphan records (last reconciliation)",
        if orphans > 0 { "warn" } else { "" },
        &fig,
        sub,
        chart,
    )
}

fn files_card(f: &Figures) -> Markup {
    let rows = [
        ("waiting in the inbox", f.files_waiting, None),
        ("held for a person", f.files_in("held"), Some("held")),
        ("failed", f.files_in("failed"), Some("failed")),
        ("rejected whole", f.files_in("rejected"), Some("rejected")),
        (
            "in progress",
            f.files_in("in_progress"),
            Some("in_progress"),
        ),
    ];
    let needs = f.files_in("held") + f.files_in("failed");
    html! {
        section class={ "card " (if needs > 0 { "bad" } else { "" }) } {
            h3 { "Files" }
            table {
                @for (label, n, filter) in rows {
                    tr {
                        td { @if let Some(o) = filter { a href={ "/files?outcome=" (o) } { (label) } } @else { (label) } }
                        td.num { (n) }
                    }
                }
            }
            div.sub { (f.rejects.open) " rejected document(s) open, " (f.rejects.resolved) " resolved · " a href="/exceptions" { "exceptions" } }
        }
    }
}

fn targets_table(f: &Figures) -> Markup {
    html! {
        @if !f.targets.is_empty() {
            h2 { "Targets" }
            table {
                tr { th { "target" } th.num { "pending" } th.num { "retry" } th.num { "in flight" } th.num { "delivered" } th.num { "dead" } th.num { "p50 sync" } th.num { "p95 sync" } th { "state" } }
                @for t in &f.targets {
                    @let c = &t.counts;
                    tr {
                        td { (t.name) } td.num { (c.pending) } td.num { (c.retry_wait) } td.num { (c.in_flight) }
                        td.num { (c.delivered) } td.num { (c.dead) }
                        td.num { (c.sync_latency_p50_seconds.map_or("–".into(), duration)) }
                        td.num { (c.sync_latency_p95_seconds.map_or("–".into(), duration)) }
                        td { (super::html::badge(if c.blocked.is_some() { "blocked" } else { "ok" })) }
                    }
                }
            }
        }
    }
}

/// Who is working now: each run's host and pid, the file it holds, and how long since it
/// was last seen working (a run whose process is gone is marked so).
fn workers_table(workers: &[WorkerRow]) -> Markup {
    html! {
        @if !workers.is_empty() {
            h2 { "Workers" }
            table {
                tr { th { "run" } th { "command" } th { "host" } th.num { "pid" } th { "holding" } th.num { "last seen" } th.num { "lease" } th { "state" } }
                @for w in workers {
                    tr {
                        td { (w.run) } td { (w.command) } td { (w.host.as_deref().unwrap_or("?")) } td.num { (w.pid) }
                        td {
                            @if let (Some(id), Some(n)) = (w.file_id, &w.file_name) {
                                a href={ "/files/" (id) } { (crate::display::name(n)) }
                            } @else { "–" }
                        }
                        td.num { (w.seen_secs_ago.map_or("–".into(), |s| format!("{} ago", duration(s)))) }
                        td.num { (w.lease_secs_left.map_or("–".into(), |s| if s >= 0.0 { format!("{} left", duration(s)) } else { "ran out".into() })) }
                        td { (super::html::badge(if w.alive == Some(false) { "gone" } else { "running" })) }
                    }
                }
            }
        }
    }
}

/// `/metrics`: the dashboard's numbers in the OpenMetrics text format.
pub async fn metrics(State(st): State<Arc<AppState>>) -> Page {
    let text = with_ledger(&st, |l, cfg| {
        Ok(metrics::openmetrics(&metrics::figures(l, cfg)?))
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(file: Option<(i64, &str)>, alive: Option<bool>) -> WorkerRow {
        WorkerRow {
            run: 7,
            command: "run".into(),
            host: Some("edi-1".into()),
            pid: 4242,
            started_at: "2026-12-02T10:00:00.000Z".into(),
            seen_at: Some("2026-12-02T10:00:05.000Z".into()),
            seen_secs_ago: Some(3.0),
            file_id: file.map(|f| f.0),
            file_name: file.map(|f| f.1.to_string()),
            alive,
            lease_secs_left: file.map(|_| 41.0),
        }
    }

    #[test]
    fn workers_show_what_each_holds_and_which_process_is_gone() {
        let html = workers_table(&[
            worker(Some((12, "orders.csv")), Some(true)),
            worker(None, Some(false)),
        ])
        .into_string();
        assert!(
            html.contains(r#"<a href="/files/12">orders.csv</a>"#),
            "{html}"
        );
        assert!(html.contains("edi-1") && html.contains("4242"), "{html}");
        assert!(html.contains("3.0 s ago"), "{html}");
        assert!(html.contains("41.0 s left"), "{html}");
        assert!(html.contains(r#"badge bad">gone"#), "{html}");
        assert!(
            workers_table(&[]).into_string().is_empty(),
            "no workers, no table"
        );
    }
}
