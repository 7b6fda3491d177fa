//! The commands behind the CLI, as library functions that return an exit code.
//!
//! `main.rs` only parses arguments and calls these; these only load config, call the
//! [`Engine`](crate::engine::Engine) and print. Exit codes (documented in the README):
//! 0 = everything applied, 1 = the run worked but something needs review (rejected lines
//! or files, duplicate files), 2 = the run itself failed (config, formats, ledger, I/O).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bundled;
use crate::config::{self, Config};
use crate::engine::{self, Engine, FileReport};
use crate::format::{registry, Diagnostics};
use crate::ledger::{FileRow, Ledger};
use crate::report;

pub const EXIT_OK: i32 = 0;
pub const EXIT_REVIEW: i32 = 1;
pub const EXIT_FAILED: i32 = 2;

/// Loads the config or prints every error.
fn load_config(path: &Path) -> Result<Config, i32> {
    Config::load(path).map_err(|errs| {
        eprintln!(
            "tallyman: config {} has {} error(s):",
            path.display(),
            errs.len()
        );
        for e in errs {
            eprintln!("  {e}");
        }
        EXIT_FAILED
    })
}

/// `tallyman init DIR`
pub fn init(dir: &Path) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cfg_path = dir.join("tallyman.toml");
    if cfg_path.exists() {
        eprintln!(
            "tallyman: {} already exists; not overwriting it",
            cfg_path.display()
        );
        return Ok(EXIT_FAILED);
    }
    crate::fsutil::write_atomic(&cfg_path, config::DEFAULT_CONFIG.as_bytes())?;
    let cfg =
        load_config(&cfg_path).map_err(|_| anyhow::anyhow!("the default config does not load"))?;
    std::fs::create_dir_all(&cfg.paths.formats)?;
    let n = bundled::lay_out(bundled::FORMATS, &cfg.paths.formats)?;
    for (_, d) in cfg.paths.dirs() {
        std::fs::create_dir_all(d)?;
    }
    println!("Initialised {}:", dir.display());
    println!("  config   {}", cfg_path.display());
    println!(
        "  formats  {} ({n} definitions)",
        cfg.paths.formats.display()
    );
    println!("  inbox    {}", cfg.paths.inbox.display());
    println!(
        "Next: drop files into the inbox and run `tallyman --config {} run`.",
        cfg_path.display()
    );
    Ok(EXIT_OK)
}

/// `tallyman check`: every config and format error at once, no inbox I/O.
pub fn check(config_path: &Path) -> Result<i32> {
    let mut errors = Vec::new();
    let text = match std::fs::read_to_string(config_path) {
        Ok(t) => t,
        Err(e) => {
            println!("{}: cannot read config: {e}", config_path.display());
            return Ok(EXIT_FAILED);
        }
    };
    // Lenient: a broken config still names the formats folder, so its errors are shown too.
    let (cfg, config_errors) = Config::parse_lenient(config_path, &text);
    errors.extend(config_errors);
    let mut diags = Diagnostics::default();
    let set = registry::load_formats(&cfg.paths.formats, &mut diags);
    let n_formats = set.formats.len();
    errors.extend(diags.errors);
    if errors.is_empty() {
        println!(
            "ok: {} and {n_formats} format(s) are valid",
            config_path.display()
        );
        Ok(EXIT_OK)
    } else {
        for e in &errors {
            println!("{e}");
        }
        println!("{} error(s)", errors.len());
        Ok(EXIT_FAILED)
    }
}

fn print_file(r: &FileReport) {
    let counts = format!(
        "{} applied, {} rejected, {} duplicate, {} skipped lines",
        r.counts.lines_applied,
        r.counts.lines_rejected,
        r.counts.lines_duplicate,
        r.counts.lines_skipped
    );
    println!(
        "{:<22} {}  [{}]  {}",
        r.outcome,
        r.name,
        r.format.as_deref().unwrap_or("-"),
        if r.file_id.is_some() {
            counts
        } else {
            String::new()
        }
    );
    if let Some(e) = &r.error {
        println!("    why:    {e}");
    }
    if let Some(p) = &r.report_path {
        println!("    report: {p}");
    }
    for a in &r.acks {
        println!("    ack:    {a}");
    }
}

fn exit_for(reports: &[FileReport]) -> i32 {
    if reports.iter().any(|r| r.needs_review()) {
        EXIT_REVIEW
    } else {
        EXIT_OK
    }
}

fn open_engine(config_path: &Path) -> Result<Engine, i32> {
    let cfg = load_config(config_path)?;
    Engine::open(cfg).map_err(|e| {
        eprintln!("tallyman: {e}");
        EXIT_FAILED
    })
}

/// Runs one pass inside a ledger run record, printing each file.
fn pass(engine: &mut Engine, command: &str) -> Result<(i64, Vec<FileReport>), engine::EngineError> {
    let run = engine.ledger.begin_run(command)?;
    match engine.run_pass(run) {
        Ok(reports) => {
            let review = reports.iter().filter(|r| r.needs_review()).count() as u64;
            engine
                .ledger
                .finish_run(run, "ok", reports.len() as u64, review, None)?;
            Ok((run, reports))
        }
        Err(e) => {
            let _ = engine
                .ledger
                .finish_run(run, "failed", 0, 0, Some(&e.to_string()));
            Err(e)
        }
    }
}

/// `tallyman run`
pub fn run(config_path: &Path) -> Result<i32> {
    let mut engine = match open_engine(config_path) {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    match pass(&mut engine, "run") {
        Ok((run, reports)) => {
            if reports.is_empty() {
                println!("run {run}: nothing to do");
            }
            for r in &reports {
                print_file(r);
            }
            Ok(exit_for(&reports))
        }
        Err(e) => {
            eprintln!("tallyman: run failed: {e}");
            Ok(EXIT_FAILED)
        }
    }
}

/// `tallyman watch`: the same pass, woken by file events, with a periodic full rescan as
/// the source of truth.
pub fn watch(config_path: &Path) -> Result<i32> {
    use notify::{RecursiveMode, Watcher};
    let mut engine = match open_engine(config_path) {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let _ = tx.send(ev.is_ok());
    })
    .context("starting the file watcher")?;
    watcher
        .watch(&engine.cfg.paths.inbox, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", engine.cfg.paths.inbox.display()))?;
    let rescan = Duration::from_secs(engine.cfg.watch.rescan_seconds.max(1));
    println!(
        "watching {} (rescan every {}s); Ctrl-C to stop",
        engine.cfg.paths.inbox.display(),
        rescan.as_secs()
    );
    loop {
        match pass(&mut engine, "watch") {
            Ok((_, reports)) => {
                for r in &reports {
                    print_file(r);
                }
                let _ = std::io::stdout().flush();
            }
            Err(e) => {
                // A failed pass (disk full, ledger locked too long) is retried, not fatal.
                eprintln!("tallyman: pass failed, retrying after the rescan interval: {e}");
                std::thread::sleep(rescan);
                continue;
            }
        }
        match rx.recv_timeout(rescan) {
            Ok(_) => {
                // Let a burst of events settle, then drain them.
                std::thread::sleep(Duration::from_millis(300));
                while rx.try_recv().is_ok() {}
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                eprintln!("tallyman: file watcher stopped; falling back to rescans only");
                std::thread::sleep(rescan);
            }
        }
    }
}

/// `tallyman process FILE [--force]`
pub fn process(config_path: &Path, file: &Path, force: bool) -> Result<i32> {
    let mut engine = match open_engine(config_path) {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    if !file.is_file() {
        eprintln!("tallyman: {} is not a readable file", file.display());
        return Ok(EXIT_FAILED);
    }
    let run = engine
        .ledger
        .begin_run(if force { "process --force" } else { "process" })?;
    let result = engine.process_path(run, file, force);
    match result {
        Ok(r) => {
            let review = u64::from(r.needs_review());
            engine.ledger.finish_run(run, "ok", 1, review, None)?;
            print_file(&r);
            Ok(exit_for(std::slice::from_ref(&r)))
        }
        Err(e) => {
            let _ = engine
                .ledger
                .finish_run(run, "failed", 0, 0, Some(&e.to_string()));
            eprintln!("tallyman: {e}");
            Ok(EXIT_FAILED)
        }
    }
}

fn open_ledger(config_path: &Path) -> Result<Ledger, i32> {
    let cfg = load_config(config_path)?;
    if !cfg.paths.ledger.exists() {
        eprintln!(
            "tallyman: no ledger at {} yet (nothing processed)",
            cfg.paths.ledger.display()
        );
        return Err(EXIT_FAILED);
    }
    Ledger::open(&cfg.paths.ledger).map_err(|e| {
        eprintln!("tallyman: {e}");
        EXIT_FAILED
    })
}

/// `tallyman rejects [FILE] [--json]`
pub fn rejects(config_path: &Path, file: Option<&str>, json: bool) -> Result<i32> {
    let ledger = match open_ledger(config_path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let files: Vec<FileRow> = match file {
        Some(needle) => match ledger.find_files(needle)?.into_iter().next() {
            Some(f) => vec![f],
            None => {
                eprintln!("tallyman: no file in the ledger matches '{needle}' (name, path or fingerprint prefix)");
                return Ok(EXIT_FAILED);
            }
        },
        None => match ledger.latest_run_with_files()? {
            Some(run) => ledger.files_of_run(run)?,
            None => Vec::new(),
        },
    };
    let mut all = Vec::new();
    for f in &files {
        let rows = report::file_rejects(&ledger, f)?;
        if json {
            all.push(serde_json::json!({ "file": f.name, "fingerprint": f.fingerprint, "outcome": f.outcome, "rejects": rows }));
        } else if !rows.is_empty() || file.is_some() {
            println!(
                "== {} ({}, {} rejected line(s)){}",
                f.name,
                f.outcome.as_deref().unwrap_or("unfinished"),
                f.counts.lines_rejected,
                f.report_path
                    .as_deref()
                    .map(|p| format!("  report: {p}"))
                    .unwrap_or_default()
            );
            print!("{}", report::to_table(&rows));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else if files.is_empty() {
        println!("no files processed yet");
    }
    Ok(EXIT_OK)
}

/// `tallyman status [--json]`
pub fn status(config_path: &Path, json: bool) -> Result<i32> {
    let ledger = match open_ledger(config_path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let c = ledger.conn();
    let mut by_outcome = Vec::new();
    {
        let mut st = c.prepare(
            "SELECT COALESCE(outcome, 'in_progress'), COUNT(*), SUM(lines_applied), SUM(lines_rejected), SUM(lines_duplicate), SUM(lines_skipped) \
             FROM files GROUP BY 1 ORDER BY 1",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                r.get::<_, Option<i64>>(5)?.unwrap_or(0),
            ))
        })?;
        for r in rows {
            by_outcome.push(r?);
        }
    }
    let mut runs = Vec::new();
    {
        let mut st = c.prepare(
            "SELECT id, command, started_at, COALESCE(finished_at, ''), status, files_done, files_review, COALESCE(error, '') FROM runs ORDER BY id DESC LIMIT 10",
        )?;
        let rows = st.query_map([], |r| {
            Ok(serde_json::json!({
                "run": r.get::<_, i64>(0)?, "command": r.get::<_, String>(1)?, "started_at": r.get::<_, String>(2)?,
                "finished_at": r.get::<_, String>(3)?, "status": r.get::<_, String>(4)?, "files": r.get::<_, i64>(5)?,
                "needs_review": r.get::<_, i64>(6)?, "error": r.get::<_, String>(7)?,
            }))
        })?;
        for r in rows {
            runs.push(r?);
        }
    }
    let recent = ledger.recent_files(10)?;
    if json {
        let outcomes: Vec<_> = by_outcome
            .iter()
            .map(|(o, n, a, r, d, s)| serde_json::json!({"outcome": o, "files": n, "lines_applied": a, "lines_rejected": r, "lines_duplicate": d, "lines_skipped": s}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "files_by_outcome": outcomes, "recent_runs": runs, "recent_files": recent })
            )?
        );
        return Ok(EXIT_OK);
    }
    println!("Files by outcome:");
    println!(
        "  {:<22} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "OUTCOME", "FILES", "APPLIED", "REJECTED", "DUPLICATE", "SKIPPED"
    );
    for (o, n, a, r, d, s) in &by_outcome {
        println!("  {o:<22} {n:>6} {a:>10} {r:>10} {d:>10} {s:>10}");
    }
    println!("Recent runs:");
    for r in &runs {
        println!(
            "  #{:<5} {:<16} {}  {:<7} files={} review={} {}",
            r["run"],
            r["command"].as_str().unwrap_or(""),
            r["started_at"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or(""),
            r["files"],
            r["needs_review"],
            r["error"].as_str().unwrap_or("")
        );
    }
    println!("Recent files:");
    for f in &recent {
        println!(
            "  #{:<5} {:<22} {:<36} applied={} rejected={} duplicate={}",
            f.id,
            f.outcome.as_deref().unwrap_or("in_progress"),
            f.name,
            f.counts.lines_applied,
            f.counts.lines_rejected,
            f.counts.lines_duplicate
        );
    }
    Ok(EXIT_OK)
}

/// `tallyman demo [--dir DIR]`: lays out a scratch working directory from the bundled
/// samples, runs one pass and shows what happened. Safe to run again and again: the
/// directory is recreated each time (only if it is a previous demo's).
pub fn demo(dir: &Path) -> Result<i32> {
    let marker = dir.join(".tallyman-demo");
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !marker.exists() && !empty {
            eprintln!(
                "tallyman: {} exists and is not a tallyman demo directory; choose another with --dir",
                dir.display()
            );
            return Ok(EXIT_FAILED);
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(&marker, b"created by `tallyman demo`; safe to delete\n")?;
    let cfg_text = config::DEFAULT_CONFIG.replace("settle_seconds = 10", "settle_seconds = 0");
    let cfg_path = dir.join("tallyman.toml");
    std::fs::write(&cfg_path, cfg_text)?;
    let cfg = match load_config(&cfg_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    bundled::lay_out(bundled::FORMATS, &cfg.paths.formats)?;
    let n = bundled::lay_out(bundled::SAMPLES, &cfg.paths.inbox)?;
    println!(
        "tallyman demo: {} sample file(s) in {}\n",
        n,
        cfg.paths.inbox.display()
    );
    let mut engine = match Engine::open(cfg.clone()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tallyman: {e}");
            return Ok(EXIT_FAILED);
        }
    };
    let (run, reports) = match pass(&mut engine, "demo") {
        Ok(v) => v,
        Err(e) => {
            eprintln!("tallyman: demo run failed: {e}");
            return Ok(EXIT_FAILED);
        }
    };
    println!("run {run}: {} file(s)", reports.len());
    for r in &reports {
        print_file(r);
    }
    let with_rejects: Vec<&FileReport> = reports
        .iter()
        .filter(|r| r.counts.lines_rejected > 0 || r.error.is_some())
        .collect();
    for r in with_rejects {
        if let Some(id) = r.file_id {
            let row = engine.ledger.file(id)?;
            let rows = report::file_rejects(&engine.ledger, &row)?;
            println!("\nRejects of {}:", r.name);
            print!(
                "{}",
                report::to_table(&rows.into_iter().take(15).collect::<Vec<_>>())
            );
        }
    }
    let outbox_files = count_files(&cfg.paths.outbox);
    println!("\nWhere things are:");
    println!(
        "  outbox   {}  ({outbox_files} JSON Lines file(s), one folder per entity)",
        cfg.paths.outbox.display()
    );
    println!("  reports  {}", cfg.paths.reports.display());
    println!("  acks     {}", cfg.paths.acks.display());
    println!("  archive  {}", cfg.paths.archive.display());
    println!("  rejected {}", cfg.paths.rejected.display());
    println!("  ledger   {}", cfg.paths.ledger.display());
    println!(
        "\nTry: tallyman --config {} status   |   tallyman --config {} rejects",
        cfg_path.display(),
        cfg_path.display()
    );
    Ok(EXIT_OK)
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p: PathBuf = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                n += 1;
            }
        }
    }
    n
}

/// Resolves `--config` / `TALLYMAN_CONFIG` / `./tallyman.toml`.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    config::resolve_config_path(flag)
}
