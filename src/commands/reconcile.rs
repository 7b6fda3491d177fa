//! `tallyman reconcile`: does the ERP still hold what was delivered? A person's view of
//! [`crate::review::reconcile`] — the findings as a table (or JSON for tools), the CSV
//! report's path, and what to do — and the same reconciliation run on a schedule at the
//! end of `run` and `watch` passes.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;

use super::{open_ledger_with_config, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REVIEW};
use crate::config::Config;
use crate::display::name as shown;
use crate::ledger::Ledger;
use crate::review::reconcile::{self, Options, ReconcileError, ReconcileReport};
use crate::say;

/// The orphan ratio above which the ERP needs a look (the target is 0).
const ACCEPTABLE_ORPHAN_RATIO: f64 = 0.005;
/// Findings shown on the terminal; the CSV report has them all.
const SHOWN: usize = 50;

/// `tallyman reconcile [--target T] [--json] [--repair [--reason TEXT]]`: 0 when the ERP
/// holds exactly what was delivered, 1 when differences were found (and, with `--repair`,
/// queued again), 2 when the reconciliation failed or the target refused the credentials,
/// 3 when stopped by a signal.
pub fn reconcile(
    config_path: &Path,
    target: Option<&str>,
    json: bool,
    repair: bool,
    reason: Option<&str>,
) -> Result<i32> {
    let (ledger, cfg) = match open_ledger_with_config(config_path) {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    let Some(name) = pick_target(&cfg, target) else {
        return Ok(EXIT_FAILED);
    };
    let stop = Arc::new(AtomicBool::new(false));
    super::run::install_stop_handler(&stop)?;
    let actor = super::actor();
    let opts = Options {
        repair,
        actor: &actor,
        reason,
        stop: Some(&stop),
    };
    match reconcile::reconcile_target(&cfg, &ledger, &name, &opts) {
        Ok(r) if json => {
            say!("{}", serde_json::to_string_pretty(&r)?);
            Ok(exit_for(&r))
        }
        Ok(r) => {
            print_report(&r);
            Ok(exit_for(&r))
        }
        Err(ReconcileError::Stopped) => {
            crate::complain!("reconcile {name}: stopped by a signal; nothing was recorded");
            Ok(EXIT_INTERRUPTED)
        }
        Err(e) => {
            crate::complain!("reconcile {name}: {e}");
            Ok(EXIT_FAILED)
        }
    }
}

/// The target named, or the only remote one.
fn pick_target(cfg: &Config, target: Option<&str>) -> Option<String> {
    if let Some(t) = target {
        return Some(t.to_string());
    }
    let remote: Vec<&str> = cfg.remote_targets().map(|t| t.name.as_str()).collect();
    match remote.as_slice() {
        [one] => Some(one.to_string()),
        [] => {
            crate::complain!("no remote targets are configured ([[targets]] of kind \"http\"): nothing to reconcile");
            None
        }
        many => {
            crate::complain!(
                "name the target to reconcile with --target ({})",
                many.join(", ")
            );
            None
        }
    }
}

fn exit_for(r: &ReconcileReport) -> i32 {
    if r.differences() > 0 {
        EXIT_REVIEW
    } else {
        EXIT_OK
    }
}

fn print_report(r: &ReconcileReport) {
    say!(
        "{}: {} record(s) listed in {} ({} in scope: {}); {} missing, {} orphan(s), {} drifted field(s)",
        r.target,
        r.remote_records,
        r.entities.join(", "),
        r.in_scope,
        shown(&r.scope),
        r.missing_count,
        r.orphan_count,
        r.drift_count
    );
    say!("    orphan ratio: {}", ratio_text(r.orphan_ratio));
    if r.unsettled > 0 {
        say!(
            "    {} listed record(s) were being delivered meanwhile and were not compared",
            r.unsettled
        );
    }
    if r.differences() > 0 {
        print_findings(r);
    }
    if let Some(p) = &r.report_path {
        say!("    report: {}", shown(&p.display().to_string()));
    }
    print_action(r);
}

fn ratio_text(ratio: f64) -> String {
    let pct = ratio * 100.0;
    match ratio {
        0.0 => "0% (as it should be)".into(),
        r if r <= ACCEPTABLE_ORPHAN_RATIO => format!("{pct:.2}% (under the acceptable 0.5%)"),
        _ => format!("{pct:.2}% (above the acceptable 0.5%: look at the orphans in the ERP, or narrow reconcile_scope)"),
    }
}

/// The first findings as a table.
fn print_findings(r: &ReconcileReport) {
    say!(
        "    {:<8} {:<10} {:<24} {:<14} {:<14} {:<18} ERP",
        "FINDING",
        "ENTITY",
        "EXTERNAL_REF",
        "ERP_ID",
        "FIELD",
        "LEDGER"
    );
    let dash = || "-".to_string();
    let rows = r
        .missing
        .iter()
        .map(|m| {
            (
                "missing",
                &m.entity,
                m.external_ref.clone(),
                m.erp_id.clone(),
                dash(),
                dash(),
                dash(),
            )
        })
        .chain(r.orphans.iter().map(|o| {
            let key = o.external_ref.clone().unwrap_or_else(|| "(none)".into());
            (
                "orphan",
                &o.entity,
                key,
                o.erp_id.clone(),
                dash(),
                dash(),
                dash(),
            )
        }))
        .chain(r.drift.iter().map(|d| {
            let (ours, theirs) = (value_text(&d.ledger_value), value_text(&d.erp_value));
            (
                "drift",
                &d.entity,
                d.external_ref.clone(),
                d.erp_id.clone(),
                d.field.clone(),
                ours,
                theirs,
            )
        }));
    for (finding, entity, key, id, field, ours, theirs) in rows.take(SHOWN) {
        say!(
            "    {:<8} {:<10} {:<24} {:<14} {:<14} {:<18} {}",
            finding,
            entity,
            shown(&key),
            shown(&id.unwrap_or_else(dash)),
            field,
            shown(&ours),
            shown(&theirs)
        );
        if crate::out::closed() {
            return;
        }
    }
    let more = r.differences().saturating_sub(SHOWN as u64);
    if more > 0 {
        say!("    ... and {more} more in the report");
    }
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "(none)".into(),
        serde_json::Value::String(s) => crate::unit::cap_raw(s, 40),
        other => crate::unit::cap_raw(&other.to_string(), 40),
    }
}

fn print_action(r: &ReconcileReport) {
    if let Some(done) = &r.repaired {
        say!(
            "    repaired: {} missing record(s) and {} drifted record(s) queued again; the next run (or `tallyman deliver`) sends them",
            done.missing,
            done.drift
        );
    } else if r.missing_count + r.drift_count > 0 {
        say!(
            "    action: `tallyman reconcile --target {} --repair` queues the missing records again and re-sends the drifted owned fields",
            r.target
        );
    }
    if r.orphan_count > 0 {
        say!("    orphans are the ERP's to judge: records someone created there within the scope; tallyman leaves them alone");
    }
}

/// Reconciles the targets whose `reconcile_every_hours` has passed (never repairing),
/// printing one line each: call at the end of a `run` or `watch` pass. Returns 0, 1 when
/// differences were found, 2 when a reconciliation failed; a stop returns at once.
pub fn reconcile_scheduled(cfg: &Config, ledger: &Ledger, stop: &AtomicBool) -> i32 {
    let done = match reconcile::run_due(cfg, ledger, stop) {
        Ok(d) => d,
        Err(e) => {
            crate::complain!("scheduled reconciliation: ledger: {e}");
            return EXIT_FAILED;
        }
    };
    let mut code = EXIT_OK;
    for (target, result) in done {
        match result {
            Ok(r) => {
                say!(
                    "reconciled {target}: {} missing, {} orphan(s) ({}), {} drifted field(s){}",
                    r.missing_count,
                    r.orphan_count,
                    ratio_text(r.orphan_ratio),
                    r.drift_count,
                    r.report_path
                        .as_ref()
                        .map(|p| format!("; report: {}", shown(&p.display().to_string())))
                        .unwrap_or_default()
                );
                code = code.max(exit_for(&r));
            }
            Err(ReconcileError::Stopped) => {}
            Err(e) => {
                crate::complain!("scheduled reconciliation of {target}: {e}");
                code = EXIT_FAILED;
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_orphan_ratio_is_judged_against_half_a_percent() {
        assert!(ratio_text(0.0).starts_with("0%"));
        assert!(ratio_text(0.004).contains("under the acceptable"));
        assert!(ratio_text(0.02).starts_with("2.00% (above"));
    }
}
