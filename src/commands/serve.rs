//! `tallyman serve`: the console with the hooks that reach beyond the ledger wired in —
//! reconciling a target now, and taking an uploaded corrections file into the inbox.

use std::path::Path;

use anyhow::Result;

use crate::config::Config;
use crate::console::{self, Hooks};
use crate::review::reconcile::{self, Options};

/// Serves the console until SIGTERM/SIGINT.
pub fn serve(config_path: &Path, listen: &str) -> Result<i32> {
    let hooks = Hooks {
        upload_correction: console::save_into_inbox,
        reconcile: Some(reconcile_now),
    };
    console::serve_with(config_path, listen, hooks)
}

/// "Reconcile now" on the dashboard: one target, no repair, a sentence for the page.
fn reconcile_now(cfg: &Config, target: &str) -> Result<String> {
    let ledger = crate::ledger::Ledger::open_in(&cfg.paths)?;
    let actor = super::actor();
    let opts = Options {
        actor: &actor,
        ..Options::default()
    };
    let r = reconcile::reconcile_target(cfg, &ledger, target, &opts)?;
    Ok(format!(
        "{target}: {} records listed, {} missing, {} orphans, {} drifted (report: {})",
        r.remote_records,
        r.missing_count,
        r.orphan_count,
        r.drift_count,
        r.report_path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "-".into())
    ))
}
