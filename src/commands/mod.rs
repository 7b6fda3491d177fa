//! The commands behind the CLI, as library functions that return an exit code.
//!
//! `main.rs` only parses arguments and calls these; these only load config, call the
//! [`Engine`] or the ledger's query methods, and print. Exit codes
//! (documented in the README): 0 = everything applied, 1 = the run worked but something
//! needs a person (rejects, held or failed files, duplicate files), 2 = the run itself
//! failed (config, folders, formats, ledger, I/O), 3 = stopped by SIGTERM/SIGINT after the
//! batch in progress committed (the next run resumes).

mod deliver;
mod demo;
mod inspect;
mod reconcile;
mod resubmit;
mod run;
mod serve;
mod setup;

use std::path::{Path, PathBuf};

use crate::config::{self, Config};
use crate::engine::{Engine, EngineError};
use crate::ledger::Ledger;

pub use deliver::{deadletters, deliver, fields, replay, retry};
pub use demo::demo;
pub use inspect::{audit, rejects, status};
pub use reconcile::{reconcile, reconcile_scheduled};
pub use resubmit::resubmit;
pub use run::{process, run, watch};
pub use serve::serve;
pub use setup::{backup, check, init, release};

pub const EXIT_OK: i32 = 0;
pub const EXIT_REVIEW: i32 = 1;
pub const EXIT_FAILED: i32 = 2;
pub const EXIT_INTERRUPTED: i32 = 3;

/// Loads the config or prints every error.
fn load_config(path: &Path) -> Result<Config, i32> {
    Config::load(path).map_err(|errs| {
        crate::complain!("config {} has {} error(s):", path.display(), errs.len());
        for e in errs {
            crate::logging::error_detail(&e.to_string());
        }
        EXIT_FAILED
    })
}

/// Prints why the engine could not start or a run failed, naming the ledger's path when
/// the ledger is the cause.
fn report_failure(what: &str, e: &EngineError, cfg: &Config) {
    match e {
        EngineError::Ledger(l) => {
            crate::complain!("{what}: ledger {}: {}", cfg.paths.ledger_at.shown(), l)
        }
        other => crate::complain!("{what}: {other}"),
    }
}

fn open_engine(config_path: &Path) -> Result<Engine, i32> {
    let cfg = load_config(config_path)?;
    Engine::open(cfg.clone()).map_err(|e| {
        report_failure("cannot start", &e, &cfg);
        EXIT_FAILED
    })
}

/// Opens an existing ledger for the read-only commands.
fn open_ledger(config_path: &Path) -> Result<Ledger, i32> {
    open_ledger_with_config(config_path).map(|(l, _)| l)
}

/// Opens an existing ledger, with the config that names it.
fn open_ledger_with_config(config_path: &Path) -> Result<(Ledger, Config), i32> {
    let cfg = load_config(config_path)?;
    if matches!(&cfg.paths.ledger_at, crate::ledger::Location::Sqlite(p) if !p.exists()) {
        crate::complain!(
            "no ledger at {} yet (nothing processed)",
            cfg.paths.ledger.display()
        );
        return Err(EXIT_FAILED);
    }
    let ledger = Ledger::open_in(&cfg.paths).map_err(|e| {
        crate::complain!("ledger {}: {e}", cfg.paths.ledger_at.shown());
        EXIT_FAILED
    })?;
    Ok((ledger, cfg))
}

/// Who is acting, for the audit trail (the OS user).
fn actor() -> String {
    crate::console::auth::os_user()
}

/// Resolves `--config` / `TALLYMAN_CONFIG` / `./tallyman.toml`.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    config::resolve_config_path(flag)
}
