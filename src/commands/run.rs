//! `run`, `watch` and `process`: the commands that do the work, and how a pass is printed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{
    load_config, open_engine, report_failure, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REVIEW,
};
use crate::display;
use crate::engine::{Engine, FileReport, Pass};
use crate::say;

/// SIGTERM/SIGINT ask the engine to stop after the batch in progress commits; a second one
/// exits at once (still crash-safe: the next run resumes from the last commit).
pub(super) fn install_stop_handler(flag: &Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(flag))
            .context("installing a signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(flag))
            .context("installing a signal handler")?;
    }
    Ok(())
}

pub(super) fn print_file(r: &FileReport) {
    let c = &r.counts;
    let mut counts = format!(
        "{} applied, {} rejected, {} duplicate, {} skipped lines",
        c.lines_applied, c.lines_rejected, c.lines_duplicate, c.lines_skipped
    );
    if c.lines_unchanged > 0 {
        counts.push_str(&format!(", {} unchanged", c.lines_unchanged));
    }
    if c.lines_unmapped > 0 {
        counts.push_str(&format!(
            "; {} lines in {} document(s) accepted unmapped (no definition maps them)",
            c.lines_unmapped, c.units_unmapped
        ));
    }
    say!(
        "{:<22} {}  [{}]  {}",
        r.outcome,
        display::name(&r.name),
        r.format.as_deref().unwrap_or("-"),
        if r.file_id.is_some() {
            counts
        } else {
            String::new()
        }
    );
    if let Some(e) = &r.error {
        say!("    why:    {}", display::name(e));
    }
    if let Some(a) = &r.action {
        say!("    action: {a}");
    }
    if let Some(p) = &r.report_path {
        say!("    report: {p}");
    }
    if let Some(p) = &r.corrections_path {
        say!("    fix:    {p}");
    }
    for a in &r.acks {
        say!("    ack:    {}", display::name(a));
    }
}

/// The exit code of a pass: a stop wins, then failures, then anything for a person.
fn exit_for(pass: &Pass, held: &[FileReport]) -> i32 {
    if pass.interrupted {
        EXIT_INTERRUPTED
    } else if pass.errors > 0 {
        EXIT_FAILED
    } else if pass.files.iter().any(|r| r.needs_review()) || !held.is_empty() {
        EXIT_REVIEW
    } else {
        EXIT_OK
    }
}

/// Runs one pass inside a ledger run record.
fn pass(engine: &mut Engine, run: i64) -> Result<Pass, crate::engine::EngineError> {
    let result = engine.run_pass(run);
    if let Some(p) = result.as_ref().ok().filter(|p| !p.files.is_empty()) {
        let review = p.files.iter().filter(|r| r.needs_review()).count() as u64;
        engine
            .ledger
            .add_to_run(run, p.files.len() as u64, review)?;
    }
    result
}

fn finish(engine: &Engine, run: i64, result: &Result<Pass, crate::engine::EngineError>) {
    let (status, error) = match result {
        Ok(p) if p.interrupted => ("interrupted", None),
        Ok(p) if p.errors > 0 => ("failed", Some(format!("{} file(s) hit an error", p.errors))),
        Ok(_) => ("ok", None),
        Err(e) => ("failed", Some(e.to_string())),
    };
    let _ = engine.ledger.finish_run(run, status, error.as_deref());
    // The dashboard's trend charts need the queue's depth as it was, run by run.
    let _ = crate::metrics::sample(&engine.ledger, &engine.cfg);
}

fn print_pass(p: &Pass) {
    for r in &p.files {
        print_file(r);
    }
    for n in &p.notes {
        say!("note: {}", display::name(n));
    }
    if p.interrupted {
        say!("stopped by a signal after the last batch committed; the next run resumes");
    }
}

/// `tallyman run`: one pass of intake and processing, then delivery of what is due
/// within the time budget.
pub fn run(config_path: &Path) -> Result<i32> {
    let started = Instant::now();
    let mut engine = match open_engine(config_path) {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    install_stop_handler(&engine.stop_flag())?;
    let run = engine.ledger.begin_run("run")?;
    let result = pass(&mut engine, run);
    let p = match result {
        Ok(p) => p,
        Err(e) => {
            report_failure("run failed", &e, &engine.cfg);
            finish(&engine, run, &Err(e));
            return Ok(EXIT_FAILED);
        }
    };
    let deadline = started + Duration::from_secs(engine.cfg.delivery.budget_seconds);
    let delivered = match p.interrupted {
        true => Vec::new(),
        false => match engine.deliver(deadline) {
            Ok(d) => d,
            Err(e) => {
                report_failure("delivery failed", &e, &engine.cfg);
                finish(&engine, run, &Err(e));
                return Ok(EXIT_FAILED);
            }
        },
    };
    finish(
        &engine,
        run,
        &Ok(Pass {
            interrupted: p.interrupted || engine.stop_flag().load(Ordering::Relaxed),
            errors: p.errors,
            ..Pass::default()
        }),
    );
    if !p.interrupted {
        // Findings are shown in this pass; a blocked target already exits 2 through delivery.
        super::reconcile_scheduled(&engine.cfg, &engine.ledger, &engine.stop_flag());
    }
    let held = engine.held()?;
    let queues = super::deliver::queues(&engine)?;
    if p.files.is_empty()
        && held.is_empty()
        && !p.interrupted
        && delivered
            .iter()
            .all(|r| r.delivered + r.retried + r.dead == 0)
    {
        say!("run {run}: nothing to do");
    }
    print_pass(&p);
    for h in &held {
        print_file(h);
    }
    super::deliver::print_delivery(&delivered, &queues);
    Ok(exit_for(&p, &held).max(super::deliver::exit_for_delivery(&delivered, &queues, &p)))
}

/// `tallyman watch`: the same pass, woken by file events that can bring a new file, with
/// a periodic full rescan as the source of truth. One ledger run records the session.
pub fn watch(config_path: &Path) -> Result<i32> {
    use notify::{RecursiveMode, Watcher};
    let mut engine = match open_engine(config_path) {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    let stop = engine.stop_flag();
    install_stop_handler(&stop)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok_and(|e| may_bring_a_file(&e.kind)) {
            let _ = tx.send(());
        }
    })
    .context("starting the file watcher")?;
    watcher
        .watch(&engine.cfg.paths.inbox, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", engine.cfg.paths.inbox.display()))?;
    let rescan = Duration::from_secs(engine.cfg.watch.rescan_seconds.max(1));
    say!(
        "watching {} (rescan every {}s); Ctrl-C or SIGTERM to stop",
        engine.cfg.paths.inbox.display(),
        rescan.as_secs()
    );
    let run = engine.ledger.begin_run("watch")?;
    for h in engine.held()? {
        print_file(&h);
    }
    while !stop.load(Ordering::Relaxed) {
        match pass(&mut engine, run) {
            Ok(p) => {
                print_pass(&p);
                crate::out::flush();
            }
            // A failed pass (disk full, ledger locked too long) is retried, not fatal.
            Err(e) => report_failure(
                "pass failed, retrying after the rescan interval",
                &e,
                &engine.cfg,
            ),
        }
        deliver_due(&mut engine, rescan);
        let _ = crate::metrics::sample(&engine.ledger, &engine.cfg);
        if !stop.load(Ordering::Relaxed) {
            super::reconcile_scheduled(&engine.cfg, &engine.ledger, &stop);
        }
        wait_for_work(&rx, next_wake(&engine, rescan), &stop);
    }
    let _ = engine.ledger.finish_run(run, "interrupted", None);
    say!("stopped");
    Ok(EXIT_INTERRUPTED)
}

/// Delivers what is due now (for at most one rescan interval, so new files are not kept
/// waiting), printing what was sent.
fn deliver_due(engine: &mut Engine, rescan: Duration) {
    match engine.deliver(Instant::now() + rescan) {
        Ok(reports)
            if reports
                .iter()
                .any(|r| r.delivered + r.retried + r.dead > 0 || r.blocked.is_some()) =>
        {
            if let Ok(queues) = super::deliver::queues(engine) {
                super::deliver::print_delivery(&reports, &queues);
                crate::out::flush();
            }
        }
        Ok(_) => {}
        Err(e) => report_failure("delivery failed, retrying later", &e, &engine.cfg),
    }
}

/// How long to sleep: until the next delivery is due, at most the rescan interval.
fn next_wake(engine: &Engine, rescan: Duration) -> Duration {
    match engine.next_delivery_due() {
        Ok(Some(at)) => (at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default()
            .clamp(Duration::from_millis(200), rescan),
        _ => rescan,
    }
}

/// Events that can make a file appear or complete. Everything else — above all our own
/// reads of the inbox (open, read, close) — must not wake a pass, or watch never idles.
fn may_bring_a_file(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    use notify::EventKind;
    match kind {
        EventKind::Create(_) => true,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => true,
        EventKind::Modify(ModifyKind::Name(m)) => !matches!(m, RenameMode::From),
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

/// Sleeps until an event (then lets a burst settle), the rescan interval, or a stop.
fn wait_for_work(rx: &std::sync::mpsc::Receiver<()>, rescan: Duration, stop: &AtomicBool) {
    use std::sync::mpsc::RecvTimeoutError;
    let until = Instant::now() + rescan;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(250))) {
            Ok(()) => {
                std::thread::sleep(Duration::from_millis(300));
                while rx.try_recv().is_ok() {}
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                crate::complain!("file watcher stopped; falling back to rescans only");
                std::thread::sleep(left.min(Duration::from_millis(250)));
            }
        }
    }
}

/// `tallyman process FILE [--force]`
pub fn process(config_path: &Path, file: &Path, force: bool) -> Result<i32> {
    let cfg = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if !file.is_file() {
        crate::complain!("{} is not a readable file", file.display());
        return Ok(EXIT_FAILED);
    }
    let mut engine = match Engine::open(cfg.clone()) {
        Ok(e) => e,
        Err(e) => {
            report_failure("cannot start", &e, &cfg);
            return Ok(EXIT_FAILED);
        }
    };
    install_stop_handler(&engine.stop_flag())?;
    let command = if force { "process --force" } else { "process" };
    let run = engine.ledger.begin_run(command)?;
    engine.ledger.audit(
        &super::actor(),
        command,
        None,
        Some(&file.display().to_string()),
        &serde_json::json!({"run": run}),
    )?;
    match engine.process_path(run, file, force) {
        Ok(r) => {
            engine
                .ledger
                .add_to_run(run, 1, u64::from(r.needs_review()))?;
            let interrupted = r.outcome == "interrupted";
            engine
                .ledger
                .finish_run(run, if interrupted { "interrupted" } else { "ok" }, None)?;
            print_file(&r);
            let p = Pass {
                interrupted,
                files: vec![r],
                ..Pass::default()
            };
            Ok(exit_for(&p, &[]))
        }
        Err(e) => {
            let _ = engine
                .ledger
                .finish_run(run, "failed", Some(&e.to_string()));
            report_failure("process failed", &e, &engine.cfg);
            Ok(EXIT_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
    use notify::EventKind;

    #[test]
    fn regression_watch_is_not_woken_by_its_own_reads_of_the_inbox() {
        assert!(!may_bring_a_file(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!may_bring_a_file(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!may_bring_a_file(&EventKind::Modify(ModifyKind::Name(
            RenameMode::From
        ))));
        assert!(may_bring_a_file(&EventKind::Create(CreateKind::File)));
        assert!(may_bring_a_file(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(may_bring_a_file(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
    }
}
