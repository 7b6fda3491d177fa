//! The delivery commands — `deliver`, `deadletters`, `retry`, `replay`, `fields` — and
//! how a run's deliveries are shown and turned into an exit code.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{
    load_config, open_engine, open_ledger, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REVIEW,
};
use crate::config::{Config, TargetKind};
use crate::delivery::RelayReport;
use crate::engine::{Engine, Pass};
use crate::ledger::{Selection, TargetCounts};
use crate::say;

/// Every remote target's queue.
pub(super) fn queues(engine: &Engine) -> Result<Vec<(String, TargetCounts)>> {
    let mut out = Vec::new();
    for t in engine.cfg.remote_targets() {
        out.push((t.name.clone(), engine.ledger.target_counts(&t.name)?));
    }
    Ok(out)
}

pub(super) fn print_delivery(reports: &[RelayReport], queues: &[(String, TargetCounts)]) {
    for (name, q) in queues {
        let r = reports.iter().find(|r| &r.target == name);
        let sent = r.map_or(0, |r| r.delivered);
        say!(
            "{name}: {sent} delivered now; {} waiting ({} to be retried later), {} dead letter(s), {} delivered in all",
            q.pending + q.retry_wait + q.in_flight,
            q.retry_wait,
            q.dead,
            q.delivered
        );
        if let Some(why) = r.and_then(|r| r.blocked.as_ref()).or(q.blocked.as_ref()) {
            say!("    blocked: {}", crate::display::name(why));
            say!("    action: fix the target's credentials or permissions; the next run delivers again (nothing was dead-lettered)");
        }
        if r.is_some_and(|r| r.busy) {
            say!("    another tallyman is delivering to {name} right now");
        }
        if q.dead > 0 {
            say!("    action: `tallyman deadletters` says why; after fixing the cause, `tallyman retry --target {name}`");
        }
    }
}

/// 2 when a target is blocked, 1 when dead letters wait for a person, else 0; a stop wins.
pub(super) fn exit_for_delivery(
    reports: &[RelayReport],
    queues: &[(String, TargetCounts)],
    pass: &Pass,
) -> i32 {
    if pass.interrupted {
        EXIT_INTERRUPTED
    } else if reports.iter().any(|r| r.blocked.is_some())
        || queues.iter().any(|(_, q)| q.blocked.is_some())
    {
        EXIT_FAILED
    } else if queues.iter().any(|(_, q)| q.dead > 0) {
        EXIT_REVIEW
    } else {
        EXIT_OK
    }
}

/// `tallyman deliver`: delivery only, for up to the time budget.
pub fn deliver(config_path: &Path) -> Result<i32> {
    let mut engine = match open_engine(config_path) {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    super::run::install_stop_handler(&engine.stop_flag())?;
    let run = engine.ledger.begin_run("deliver")?;
    let deadline = Instant::now() + Duration::from_secs(engine.cfg.delivery.budget_seconds);
    let reports = match engine.deliver(deadline) {
        Ok(r) => r,
        Err(e) => {
            let _ = engine
                .ledger
                .finish_run(run, "failed", Some(&e.to_string()));
            super::report_failure("delivery failed", &e, &engine.cfg);
            return Ok(EXIT_FAILED);
        }
    };
    let interrupted = engine.stop_flag().load(Ordering::Relaxed);
    engine
        .ledger
        .finish_run(run, if interrupted { "interrupted" } else { "ok" }, None)?;
    let _ = crate::metrics::sample(&engine.ledger, &engine.cfg);
    let queues = queues(&engine)?;
    if queues.is_empty() {
        say!("no remote targets are configured ([[targets]] of kind \"http\")");
    }
    print_delivery(&reports, &queues);
    let pass = Pass {
        interrupted,
        ..Pass::default()
    };
    Ok(exit_for_delivery(&reports, &queues, &pass))
}

/// `tallyman deadletters [--json]`
pub fn deadletters(config_path: &Path, sel: &Selection, json: bool) -> Result<i32> {
    let ledger = match open_ledger(config_path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let dead = ledger.dead_letters(sel)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&dead)?);
        return Ok(EXIT_OK);
    }
    if dead.is_empty() {
        say!("no dead letters");
        return Ok(EXIT_OK);
    }
    say!(
        "{:<8} {:<10} {:<24} {:>8} {:>6}  {:<28} MESSAGE",
        "TARGET",
        "ENTITY",
        "KEY",
        "ATTEMPTS",
        "STATUS",
        "SOURCE"
    );
    for d in &dead {
        let source = format!(
            "{}:{}",
            crate::display::name(d.file.as_deref().unwrap_or("?")),
            d.line.unwrap_or(0)
        );
        say!(
            "{:<8} {:<10} {:<24} {:>8} {:>6}  {:<28} {}",
            d.target,
            d.entity,
            crate::display::name(&d.key),
            d.attempts,
            d.last_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            source,
            crate::display::name(d.message.as_deref().unwrap_or(""))
        );
        if crate::out::closed() {
            break;
        }
    }
    say!("{} dead letter(s); after fixing the cause: tallyman retry [--target T] [--entity E] [--key K]", dead.len());
    Ok(EXIT_OK)
}

/// `tallyman retry [filters] [--dry-run]`: dead letters back into the queue.
pub fn retry(
    config_path: &Path,
    sel: &Selection,
    dry_run: bool,
    reason: Option<&str>,
) -> Result<i32> {
    requeue(config_path, sel, dry_run, reason, Requeue::Retry)
}

/// `tallyman replay --target T --since DATE [--dry-run]`: delivered records sent again.
pub fn replay(
    config_path: &Path,
    sel: &Selection,
    dry_run: bool,
    reason: Option<&str>,
) -> Result<i32> {
    requeue(config_path, sel, dry_run, reason, Requeue::Replay)
}

#[derive(Clone, Copy, PartialEq)]
enum Requeue {
    Retry,
    Replay,
}

/// Puts deliveries back in the queue (or counts them with `dry_run`), as an audited action.
fn requeue(
    config_path: &Path,
    sel: &Selection,
    dry_run: bool,
    reason: Option<&str>,
    kind: Requeue,
) -> Result<i32> {
    let ledger = match open_ledger(config_path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let n = match kind {
        Requeue::Retry => ledger.retry_dead(sel, dry_run)?,
        Requeue::Replay => ledger.replay(sel, dry_run)?,
    };
    let (what, action, next) = match kind {
        Requeue::Retry => (
            "dead letter(s)",
            "retry",
            "the next run (or `tallyman deliver`) sends them",
        ),
        Requeue::Replay => (
            "delivered record(s)",
            "replay",
            "each is looked up, created if missing, and its owned fields sent",
        ),
    };
    if dry_run {
        say!("{n} {what} would be queued again (dry run; nothing changed)");
        return Ok(EXIT_OK);
    }
    ledger.audit(
        &super::actor(),
        action,
        reason,
        sel.target.as_deref(),
        &serde_json::json!({"queued": n, "selection": selection_json(sel)}),
    )?;
    say!("{n} {what} queued again; {next}");
    Ok(EXIT_OK)
}

fn selection_json(sel: &Selection) -> serde_json::Value {
    serde_json::json!({
        "target": sel.target, "entity": sel.entity, "key": sel.key, "since": sel.since,
    })
}

/// `tallyman fields`: which system is the source of truth for each field, per target.
pub fn fields(config_path: &Path) -> Result<i32> {
    let cfg = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    print_fields(&cfg);
    Ok(EXIT_OK)
}

fn print_fields(cfg: &Config) {
    say!(
        "{:<10} {:<10} {:<20} {:<14} DIRECTION",
        "TARGET",
        "ENTITY",
        "FIELD",
        "SOURCE OF TRUTH"
    );
    for t in &cfg.targets {
        for e in &t.entities {
            let owned = t.owned.get(e);
            for f in crate::records::fields_of(*e) {
                let create_once = e.identity() == crate::canonical::Identity::CreateOnce;
                let (truth, direction) = match (&t.kind, owned) {
                    (TargetKind::Outbox, _) => ("tallyman", "written to the outbox"),
                    (_, _) if create_once => (
                        t.name.as_str(),
                        "created by tallyman; the ERP's after creation",
                    ),
                    (_, None) => ("tallyman", "created and updated by tallyman"),
                    (_, Some(list)) if list.iter().any(|o| o == f) => {
                        ("tallyman", "created and updated by tallyman")
                    }
                    (_, Some(_)) => (t.name.as_str(), "sent on create only; never updated"),
                };
                say!(
                    "{:<10} {:<10} {:<20} {:<14} {direction}",
                    t.name,
                    e.as_str(),
                    f,
                    truth
                );
            }
        }
    }
}
