//! Setting up and looking after a working directory: `init`, `check`, `release`,
//! `backup` and the `demo`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{load_config, open_ledger, EXIT_FAILED, EXIT_OK, EXIT_REVIEW};
use crate::bundled;
use crate::config::{self, Config};
use crate::display;
use crate::engine::workdir;
use crate::format::{defs, registry, Diagnostics};
use crate::ledger::{self, FileState};
use crate::say;

/// How many definition files a formats folder holds and how many formats they make.
fn format_counts(dir: &Path) -> (usize, usize, Vec<String>) {
    let mut diags = Diagnostics::default();
    let files = defs::read_defs(dir, &mut diags).len();
    let set = registry::load_formats(dir, &mut diags);
    let errors = diags.errors.iter().map(|e| e.to_string()).collect();
    (files, set.formats.len(), errors)
}

/// `tallyman init DIR`: writes a working directory; on an existing one, creates only the
/// folders that are missing and never touches the config.
pub fn init(dir: &Path) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cfg_path = dir.join("tallyman.toml");
    let existed = cfg_path.exists();
    if !existed {
        crate::fsutil::write_atomic(&cfg_path, config::DEFAULT_CONFIG.as_bytes())?;
    }
    let cfg = match load_config(&cfg_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let made = workdir::create(&cfg.paths)?;
    let laid = if existed {
        0
    } else {
        bundled::lay_out(bundled::FORMATS, &cfg.paths.formats)?
    };
    if existed {
        say!("{} already exists; left as it is.", cfg_path.display());
        if made.is_empty() {
            say!("Every configured folder exists; nothing to do.");
        }
        for m in &made {
            say!("  created missing folder: {m}");
        }
        return Ok(EXIT_OK);
    }
    let (files, formats, _) = format_counts(&cfg.paths.formats);
    say!("Initialised {}:", dir.display());
    say!("  config   {}", cfg_path.display());
    say!(
        "  formats  {} ({laid} definition files laid out; {files} files make {formats} formats)",
        cfg.paths.formats.display()
    );
    say!("  inbox    {}", cfg.paths.inbox.display());
    say!(
        "Next: drop files into the inbox and run `tallyman --config {} run`.",
        cfg_path.display()
    );
    Ok(EXIT_OK)
}

/// `tallyman check [--ledger]`: every config, folder and format error at once; with
/// `--ledger`, also a full integrity check of the ledger. Touches no inbox file.
pub fn check(config_path: &Path, ledger_too: bool) -> Result<i32> {
    let mut errors = Vec::new();
    let text = match std::fs::read_to_string(config_path) {
        Ok(t) => t,
        Err(e) => {
            say!("{}: cannot read config: {e}", config_path.display());
            return Ok(EXIT_FAILED);
        }
    };
    // Lenient: a broken config still names the formats folder, so its errors are shown too.
    let (cfg, config_errors) = Config::parse_lenient(config_path, &text);
    errors.extend(config_errors.iter().map(|e| e.to_string()));
    errors.extend(workdir::problems(&cfg.paths));
    let (files, formats, format_errors) = format_counts(&cfg.paths.formats);
    errors.extend(format_errors);
    if ledger_too {
        errors.extend(match &cfg.paths.ledger_at {
            ledger::Location::Sqlite(path) => check_ledger(path),
            at => check_shared_ledger(at),
        });
    }
    if errors.is_empty() {
        say!(
            "ok: {} and {formats} format(s) from {files} definition file(s) are valid",
            config_path.display()
        );
        Ok(EXIT_OK)
    } else {
        for e in &errors {
            say!("{e}");
        }
        say!("{} error(s)", errors.len());
        Ok(EXIT_FAILED)
    }
}

/// A PostgreSQL ledger is checked by opening it (which brings its tables up to date); the
/// integrity of its pages is the server's to keep.
fn check_shared_ledger(at: &ledger::Location) -> Vec<String> {
    match ledger::Ledger::open_at(at.clone()) {
        Ok(_) => {
            say!("ledger {}: reachable, tables current", at.shown());
            Vec::new()
        }
        Err(e) => vec![format!("ledger {}: {e}", at.shown())],
    }
}

fn check_ledger(path: &Path) -> Vec<String> {
    if !path.exists() {
        say!("ledger {}: none yet (nothing processed)", path.display());
        return Vec::new();
    }
    let found = ledger::open_for_check(path).and_then(|l| l.check_integrity(true));
    match found {
        Ok(p) if p.is_empty() => {
            say!("ledger {}: integrity check ok", path.display());
            Vec::new()
        }
        Ok(p) => p
            .into_iter()
            .map(|e| format!("ledger {}: {e}", path.display()))
            .chain(std::iter::once(format!(
                "ledger {} is damaged: stop every tallyman run and restore the latest backup (README: Backups)",
                path.display()
            )))
            .collect(),
        Err(e) => vec![format!("ledger {}: {e}", path.display())],
    }
}

/// `tallyman release FILE [--reject] [--reason TEXT]`: lets a held file go on, or rejects
/// it whole by a person's decision. Recorded in the ledger with who and why.
pub fn release(config_path: &Path, file: &str, reject: bool, reason: Option<&str>) -> Result<i32> {
    let mut ledger = match open_ledger(config_path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let held: Vec<_> = ledger
        .find_files(file)?
        .into_iter()
        .filter(|f| f.state == FileState::Held)
        .collect();
    let Some(f) = held.first() else {
        crate::complain!(
            "no held file matches '{}'; held files: {}",
            display::name(file),
            held_list(&ledger)?
        );
        return Ok(EXIT_REVIEW);
    };
    let who = super::actor();
    let why = reason.unwrap_or("no reason given");
    let decision = reject.then(|| format!("rejected at review by {who}: {why}"));
    ledger.release(f.id, decision.as_deref().map(|m| ("rejected-at-review", m)))?;
    let what = if reject { "rejected" } else { "released" };
    ledger.audit(
        &who,
        if reject {
            "release --reject"
        } else {
            "release"
        },
        reason,
        Some(&f.name),
        &serde_json::json!({"file": f.id, "fingerprint": f.fingerprint}),
    )?;
    say!(
        "{what} #{} {}: the next run {}",
        f.id,
        display::name(&f.name),
        if reject {
            "rejects it whole"
        } else {
            "continues it"
        }
    );
    Ok(EXIT_OK)
}

fn held_list(ledger: &ledger::Ledger) -> Result<String> {
    let held = ledger.held_files()?;
    if held.is_empty() {
        return Ok("none".into());
    }
    Ok(held
        .iter()
        .map(|f| format!("#{} {}", f.id, display::name(&f.name)))
        .collect::<Vec<_>>()
        .join(", "))
}

/// `tallyman backup DEST`: a consistent copy of the ledger while runs go on. DEST may be a
/// folder (a timestamped file is made in it).
pub fn backup(config_path: &Path, dest: &Path) -> Result<i32> {
    let ledger = match open_ledger(config_path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let dest: PathBuf = if dest.is_dir() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        dest.join(format!("ledger-{stamp}.sqlite"))
    } else {
        dest.to_path_buf()
    };
    match ledger.backup(&dest) {
        Ok(pages) => {
            say!(
                "backed up {} to {} ({pages} pages, integrity check ok)",
                ledger.path().display(),
                dest.display()
            );
            Ok(EXIT_OK)
        }
        Err(e) => {
            crate::complain!("backup to {} failed: {e}", dest.display());
            Ok(EXIT_FAILED)
        }
    }
}
