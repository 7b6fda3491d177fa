//! `rejects` and `status`: reading the ledger for people and tools. Output tolerates a
//! closed pipe (`| head`), and every file name is escaped before it reaches the terminal.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::{open_ledger, EXIT_OK, EXIT_REVIEW};
use crate::config::Config;
use crate::display;
use crate::ledger::{
    FileRow, FileState, Ledger, OutcomeTotal, RejectTally, RunRow, TargetCounts, WaitingFile,
};
use crate::report;
use crate::say;

/// `tallyman rejects [FILE] [--json]`: exit 0, 1 when no file in the ledger matches FILE,
/// 2 when there is no ledger.
pub fn rejects(config_path: &Path, file: Option<&str>, json: bool) -> Result<i32> {
    let ledger = match open_ledger(config_path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let files: Vec<FileRow> = match file {
        Some(needle) => match ledger.find_files(needle)?.into_iter().next() {
            Some(f) => vec![f],
            None => {
                crate::complain!(
                    "no file in the ledger matches '{}' (name, path, #id or fingerprint prefix)",
                    display::name(needle)
                );
                return Ok(EXIT_REVIEW);
            }
        },
        None => match ledger.latest_run_with_files()? {
            Some(run) => ledger.files_of_run(run)?,
            None => Vec::new(),
        },
    };
    let mut all = Vec::new();
    for f in &files {
        if crate::out::closed() {
            break;
        }
        let rows = report::file_rejects(&ledger, f)?;
        if json {
            all.push(serde_json::json!({
                "file": f.name, "fingerprint": f.fingerprint, "outcome": f.outcome,
                "counts": f.counts, "rejects": report::to_json(&rows),
            }));
        } else if !rows.is_empty() || file.is_some() {
            let unmapped = match f.counts.units_unmapped {
                0 => String::new(),
                n => format!(", {n} document(s) accepted unmapped"),
            };
            say!(
                "== {} ({}, {} rejected line(s){unmapped}){}",
                display::name(&f.name),
                f.outcome.as_deref().unwrap_or("unfinished"),
                f.counts.lines_rejected,
                f.report_path
                    .as_deref()
                    .map(|p| format!("  report: {p}"))
                    .unwrap_or_default()
            );
            crate::out::text(&report::to_table(&rows));
        }
    }
    if json {
        say!("{}", serde_json::to_string_pretty(&all)?);
    } else if files.is_empty() {
        say!("no files processed yet");
    }
    Ok(EXIT_OK)
}

/// Who is working, what each holds and how long since each was seen working.
fn show_workers(workers: &[crate::ledger::WorkerRow]) {
    if workers.is_empty() {
        return;
    }
    say!("Workers ({}):", workers.len());
    say!(
        "  {:<6} {:<9} {:<16} {:>8} {:>10} {:>12}  HOLDING",
        "RUN",
        "COMMAND",
        "HOST",
        "PID",
        "SEEN",
        "LEASE"
    );
    for w in workers {
        let seen = w
            .seen_secs_ago
            .map_or_else(|| "-".into(), |s| format!("{s:.0}s ago"));
        let holding = match (&w.file_name, w.file_id) {
            (Some(n), Some(id)) => format!("#{id} {}", display::name(n)),
            _ => "-".into(),
        };
        let gone = match w.alive {
            Some(false) => "  (process gone)",
            _ => "",
        };
        let lease = w.lease_secs_left.map_or_else(
            || "-".into(),
            |s| {
                if s >= 0.0 {
                    format!("{s:.0}s left")
                } else {
                    "ran out".into()
                }
            },
        );
        say!(
            "  {:<6} {:<9} {:<16} {:>8} {:>10} {:>12}  {holding}{gone}",
            w.run,
            w.command,
            w.host.as_deref().unwrap_or("?"),
            w.pid,
            seen,
            lease
        );
    }
}

/// `tallyman status [--json]`
pub fn status(config_path: &Path, json: bool) -> Result<i32> {
    let (ledger, cfg) = match super::open_ledger_with_config(config_path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let targets = target_counts(&ledger, &cfg)?;
    let totals = ledger.outcome_totals()?;
    let runs = ledger.recent_runs(10)?;
    let recent = ledger.recent_files(10)?;
    let held = ledger.held_files()?;
    let waiting = ledger.waiting_files()?;
    let tally = ledger.reject_tally(None)?;
    let workers = ledger.workers()?;
    if json {
        let v = serde_json::json!({
            "workers": workers,
            "targets": targets,
            "rejects": tally,
            "files_by_outcome": totals,
            "held": held,
            "waiting": waiting,
            "recent_runs": runs,
            "recent_files": recent,
        });
        say!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(EXIT_OK);
    }
    show_held(&held);
    show_waiting(&waiting);
    show_workers(&workers);
    show_targets(&targets);
    show_outcomes(&tally, &totals);
    show_recent_runs(&runs);
    show_recent_files(&recent);
    Ok(EXIT_OK)
}

/// Each remote target's delivery counts, by name.
fn target_counts(ledger: &Ledger, cfg: &Config) -> Result<BTreeMap<String, TargetCounts>> {
    let mut targets = BTreeMap::new();
    for t in cfg.remote_targets() {
        targets.insert(t.name.clone(), ledger.target_counts(&t.name)?);
    }
    Ok(targets)
}

/// The files held for a person, each with the command that releases it.
fn show_held(held: &[FileRow]) {
    if !held.is_empty() {
        say!("Held for a person ({}):", held.len());
        for f in held {
            say!(
                "  #{:<5} {}: {}",
                f.id,
                display::name(&f.name),
                f.hold_reason.as_deref().unwrap_or("")
            );
            say!(
                "         release: tallyman release '#{}'   (or --reject to reject it whole)",
                f.id
            );
        }
    }
}

/// The files waiting on another file's decision, and why.
fn show_waiting(waiting: &[WaitingFile]) {
    if !waiting.is_empty() {
        say!(
            "Waiting for another file's decision ({}; each goes on by itself once that file is decided):",
            waiting.len()
        );
        for f in waiting {
            say!("  #{:<5} {}: {}", f.id, display::name(&f.name), f.why);
        }
    }
}

/// The delivery table: one row of counts and latencies per remote target.
fn show_targets(targets: &BTreeMap<String, TargetCounts>) {
    if !targets.is_empty() {
        say!("Targets:");
        say!(
            "  {:<12} {:>8} {:>10} {:>9} {:>10} {:>6} {:>12} {:>10} {:>10}",
            "TARGET",
            "PENDING",
            "RETRY_WAIT",
            "IN_FLIGHT",
            "DELIVERED",
            "DEAD",
            "OLDEST_WAIT",
            "P50_SYNC",
            "P95_SYNC"
        );
        for (name, c) in targets {
            let secs = |s: Option<f64>| s.map_or_else(|| "-".into(), |s| format!("{s:.1}s"));
            say!(
                "  {:<12} {:>8} {:>10} {:>9} {:>10} {:>6} {:>12} {:>10} {:>10}",
                name,
                c.pending,
                c.retry_wait,
                c.in_flight,
                c.delivered,
                c.dead,
                secs(c.oldest_waiting_seconds.map(|s| s as f64)),
                secs(c.sync_latency_p50_seconds),
                secs(c.sync_latency_p95_seconds)
            );
            if let Some(b) = &c.blocked {
                say!("  {:<12} BLOCKED: {}", "", display::name(b));
            }
        }
    }
}

/// The reject tally, then the files and line counts for each outcome.
fn show_outcomes(tally: &RejectTally, totals: &[OutcomeTotal]) {
    say!(
        "Rejected documents: {} open, {} resolved (by a correction or a person)",
        tally.open,
        tally.resolved
    );
    say!("Files by outcome:");
    say!(
        "  {:<22} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "OUTCOME",
        "FILES",
        "APPLIED",
        "REJECTED",
        "DUPLICATE",
        "SKIPPED",
        "UNMAPPED"
    );
    for t in totals {
        say!(
            "  {:<22} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}",
            t.outcome,
            t.files,
            t.lines_applied,
            t.lines_rejected,
            t.lines_duplicate,
            t.lines_skipped,
            t.lines_unmapped
        );
    }
}

/// The latest runs, newest first, with any error they ended on.
fn show_recent_runs(runs: &[RunRow]) {
    say!("Recent runs:");
    for r in runs {
        say!(
            "  #{:<5} {:<16} {}  {:<11} files={} review={} {}",
            r.run,
            r.command,
            r.started_at,
            r.status,
            r.files,
            r.needs_review,
            display::name(r.error.as_deref().unwrap_or(""))
        );
    }
}

/// The latest files, newest first, with their outcome and line counts.
fn show_recent_files(recent: &[FileRow]) {
    say!("Recent files:");
    for f in recent {
        let outcome = match f.state {
            FileState::Held => "held",
            _ => f.outcome.as_deref().unwrap_or("in_progress"),
        };
        say!(
            "  #{:<5} {:<22} {:<36} applied={} rejected={} duplicate={} unmapped={}",
            f.id,
            outcome,
            display::name(&f.name),
            f.counts.lines_applied,
            f.counts.lines_rejected,
            f.counts.lines_duplicate,
            f.counts.lines_unmapped
        );
        if crate::out::closed() {
            break;
        }
    }
}

/// `tallyman audit [--json]`: who did what, when and why.
pub fn audit(config_path: &Path, json: bool, limit: i64) -> Result<i32> {
    let ledger = match open_ledger(config_path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let rows = ledger.audit_log(limit)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(EXIT_OK);
    }
    if rows.is_empty() {
        say!("no actions recorded yet");
    }
    for r in &rows {
        say!(
            "{}  {:<12} {:<18} {}  {}{}",
            r.at,
            display::name(&r.actor),
            r.action,
            display::name(r.subject.as_deref().unwrap_or("-")),
            r.detail.as_ref().map(|d| d.to_string()).unwrap_or_default(),
            r.reason
                .as_deref()
                .map(|w| format!("  why: {}", display::name(w)))
                .unwrap_or_default()
        );
        if crate::out::closed() {
            break;
        }
    }
    Ok(EXIT_OK)
}
