//! Reconciliation: does the ERP still hold what tallyman delivered, as delivered?
//!
//! Delivery proves a record arrived; it cannot see what happens afterwards — a record
//! deleted in the ERP, one created there by hand or by another channel, an owned field
//! someone edited. This walks a target's list endpoint page by page and compares each
//! record with the ledger: delivered keys the ERP no longer lists are **missing**, records
//! within the target's `reconcile_scope` that tallyman never delivered are **orphans**,
//! and owned fields whose ERP value differs from the version delivered are **drift**.
//! Every finding goes to a CSV report as it is found; the run is recorded in the ledger
//! with its counts, and its orphan ratio, missing and drift counts are sampled as metrics
//! for the dashboard. `repair` queues the missing and drifted keys again (looked up, then
//! created or their owned fields sent in full), as an audited action; orphans are left to
//! a person, since only the ERP's owners know whether they belong there.
//!
//! Drift is checked for upsert entities only (customers, products, suppliers): a
//! create-once record (an order, an invoice) is never updated by tallyman, so after its
//! creation its fields are the ERP's to change; it is checked for missing and orphans.

mod compare;
mod sheet;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde_json::{json, Value};

use crate::canonical::{Entity, Identity};
use crate::config::{self, Config, TargetKind};
use crate::delivery::http::HttpTarget;
use crate::delivery::list::{ListError, Lister, RemoteRecord};
use crate::ledger::{Known, Ledger, LedgerError, MissingKey, NewReconciliation, Requeued};

pub use compare::same;

/// Findings kept in a [`ReconcileReport`] per kind (the counts and the CSV report are
/// always complete): a scope that is wrong can make every ERP record an orphan.
pub const LIST_CAP: usize = 10_000;
/// Findings kept per kind in the ledger's record of a run.
const DETAIL_CAP: usize = 100;

/// A delivered record the ERP no longer has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Missing {
    pub entity: String,
    pub external_ref: String,
    /// The id the ERP had given it.
    pub erp_id: Option<String>,
    /// The version delivered.
    pub version: i64,
}

/// A record in the ERP, within scope, that tallyman never delivered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orphan {
    pub entity: String,
    /// `None` when the ERP record carries no external reference at all.
    pub external_ref: Option<String>,
    pub erp_id: Option<String>,
}

/// An owned field whose ERP value differs from the version delivered (masked where
/// sensitive).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub entity: String,
    pub external_ref: String,
    pub erp_id: Option<String>,
    pub field: String,
    pub ledger_value: Value,
    pub erp_value: Value,
    /// The version the ERP should hold.
    pub version: i64,
}

/// What one reconciliation found (and repaired).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileReport {
    /// The ledger's record of this run.
    pub id: i64,
    pub target: String,
    /// When the listing began (UTC).
    pub at: String,
    pub scope: String,
    pub entities: Vec<String>,
    /// Every record the ERP listed.
    pub remote_records: u64,
    /// Those within scope.
    pub in_scope: u64,
    /// Listed records whose delivery was under way or unconfirmed: compared neither way.
    pub unsettled: u64,
    pub missing_count: u64,
    pub orphan_count: u64,
    pub drift_count: u64,
    /// Orphans per record in scope (0 when nothing is in scope).
    pub orphan_ratio: f64,
    pub missing: Vec<Missing>,
    pub orphans: Vec<Orphan>,
    pub drift: Vec<Drift>,
    /// Some findings are only in the CSV report (more than [`LIST_CAP`] of a kind).
    pub truncated: bool,
    pub report_path: Option<PathBuf>,
    /// What `repair` queued again.
    pub repaired: Option<Requeued>,
}

impl ReconcileReport {
    pub fn differences(&self) -> u64 {
        self.missing_count + self.orphan_count + self.drift_count
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("no target named '{0}' in the config")]
    UnknownTarget(String),
    #[error("target '{0}' is not an ERP's API (kind \"http\"): there is nothing to list")]
    NotHttp(String),
    /// Credentials: refused by the ERP, or not in the environment.
    #[error("target blocked: {0}")]
    Blocked(String),
    #[error("listing failed: {0}")]
    Listing(String),
    #[error("stopped before the listing was complete; nothing was recorded")]
    Stopped,
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("report: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ListError> for ReconcileError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::Blocked(why) => ReconcileError::Blocked(why),
            ListError::Failed(why) => ReconcileError::Listing(why),
            ListError::Stopped => ReconcileError::Stopped,
        }
    }
}

/// How to reconcile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Queue the missing and drifted records again.
    pub repair: bool,
    /// Who asked (the OS user, the console token's name), for the audit trail.
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    /// Set to end the listing early (a signal): nothing is recorded then.
    pub stop: Option<&'a AtomicBool>,
}

/// Reconciles one target: lists the ERP, compares, writes the report, records the run
/// and its metrics, and repairs when asked.
pub fn reconcile_target(
    cfg: &Config,
    ledger: &Ledger,
    target: &str,
    opts: &Options,
) -> Result<ReconcileReport, ReconcileError> {
    let t = cfg
        .targets
        .iter()
        .find(|t| t.name == target)
        .ok_or_else(|| ReconcileError::UnknownTarget(target.to_string()))?;
    let TargetKind::Http(http) = &t.kind else {
        return Err(ReconcileError::NotHttp(target.to_string()));
    };
    // Noted first: a target that cannot be reconciled (no token, the ERP down) is tried
    // again at the schedule's next turn, not at every pass.
    ledger.reconcile_attempt(target)?;
    let result = start(cfg, t, http, ledger, opts);
    if let Err(e) = &result {
        let msg = format!("reconcile {target} failed: {e}");
        let _ = ledger.event(None, "error", None, None, &msg);
    }
    result
}

fn start(
    cfg: &Config,
    t: &config::Target,
    http: &config::HttpTarget,
    ledger: &Ledger,
    opts: &Options,
) -> Result<ReconcileReport, ReconcileError> {
    let buckets = crate::delivery::ratelimit::BucketPlace::of(cfg);
    let client = HttpTarget::new(t, http, &buckets).map_err(ReconcileError::Blocked)?;
    let scope = compare::Scope::compile(&t.reconcile.scope).map_err(ReconcileError::Listing)?;
    Run::new(t, http, ledger, &scope, opts).go(&client, &cfg.paths.reports)
}

/// One reconciliation under way.
struct Run<'a> {
    t: &'a config::Target,
    http: &'a config::HttpTarget,
    ledger: &'a Ledger,
    scope: &'a compare::Scope,
    opts: &'a Options<'a>,
    report: ReconcileReport,
}

impl<'a> Run<'a> {
    fn new(
        t: &'a config::Target,
        http: &'a config::HttpTarget,
        ledger: &'a Ledger,
        scope: &'a compare::Scope,
        opts: &'a Options<'a>,
    ) -> Run<'a> {
        let entities = t.reconcile.entities.iter().map(|e| e.to_string()).collect();
        Run {
            t,
            http,
            ledger,
            scope,
            opts,
            report: ReconcileReport {
                target: t.name.clone(),
                at: crate::ledger::now(),
                scope: t.reconcile.scope_text(),
                entities,
                ..ReconcileReport::default()
            },
        }
    }

    fn go(
        mut self,
        client: &HttpTarget,
        reports: &Path,
    ) -> Result<ReconcileReport, ReconcileError> {
        self.ledger.reconcile_start()?;
        let mut sheet = sheet::Sheet::create(reports)?;
        let flag = self.opts.stop;
        let stop = move || flag.is_some_and(|s| s.load(Ordering::Relaxed));
        let lister = Lister::new(client, &self.t.retry, self.t.reconcile.page_size);
        for e in self.t.reconcile.entities.clone() {
            lister.for_each_page(e, &stop, |page| self.page(e, page, &mut sheet))?;
        }
        self.missing(&mut sheet)?;
        let name = format!(
            "reconcile-{}-{}.csv",
            crate::fsutil::safe_name(&self.t.name),
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        );
        self.report.report_path = Some(sheet.finish(&reports.join(name))?);
        if self.opts.repair {
            self.repair()?;
        }
        self.finish()
    }

    /// Compares one page of `e`'s records with the ledger.
    fn page(
        &mut self,
        e: Entity,
        page: Vec<RemoteRecord>,
        sheet: &mut sheet::Sheet,
    ) -> Result<(), ReconcileError> {
        let mut seen = Vec::with_capacity(page.len());
        let mut drifted = Vec::new();
        for rec in &page {
            self.report.remote_records += 1;
            if let Some(k) = &rec.external_ref {
                // Out of scope or not, a listed key is not missing.
                seen.push(k.as_str());
            }
            if !self.scope.covers(e, rec.external_ref.as_deref()) {
                continue;
            }
            self.report.in_scope += 1;
            let Some(key) = rec.external_ref.as_deref() else {
                self.orphan(e, rec, sheet)?;
                continue;
            };
            match self
                .ledger
                .reconcile_known(&self.t.name, e.as_str(), key, &self.report.at)?
            {
                Known::Unknown => self.orphan(e, rec, sheet)?,
                Known::Unsettled => self.report.unsettled += 1,
                Known::Held { version, data } => {
                    if self.drift(e, key, rec, version, data.as_ref(), sheet)? {
                        drifted.push(key);
                    }
                }
            }
        }
        self.ledger.reconcile_note(e.as_str(), &seen, &drifted)?;
        Ok(())
    }

    fn orphan(
        &mut self,
        e: Entity,
        rec: &RemoteRecord,
        sheet: &mut sheet::Sheet,
    ) -> Result<(), ReconcileError> {
        self.report.orphan_count += 1;
        sheet.row(&sheet::Row {
            finding: "orphan",
            entity: e.as_str(),
            external_ref: rec.external_ref.as_deref(),
            erp_id: rec.id.as_deref(),
            field: None,
            ledger_value: None,
            erp_value: None,
            version: None,
            meaning: "in the ERP within the reconcile scope, never delivered by tallyman",
        })?;
        keep(
            &mut self.report.orphans,
            &mut self.report.truncated,
            Orphan {
                entity: e.to_string(),
                external_ref: rec.external_ref.clone(),
                erp_id: rec.id.clone(),
            },
        );
        Ok(())
    }

    /// Compares a delivered record's owned fields; true when any drifted.
    fn drift(
        &mut self,
        e: Entity,
        key: &str,
        rec: &RemoteRecord,
        version: i64,
        held: Option<&Value>,
        sheet: &mut sheet::Sheet,
    ) -> Result<bool, ReconcileError> {
        let Some(held) = held.filter(|_| e.identity() == Identity::Upsert) else {
            return Ok(false);
        };
        let fields = compare::compared_fields(self.t.owned.get(&e), held);
        let rename = self.http.endpoints.get(&e).map(|ep| &ep.rename);
        let found = compare::drift(
            e,
            held,
            &rec.fields,
            &fields,
            rename.unwrap_or(&Default::default()),
        );
        for d in &found {
            self.report.drift_count += 1;
            sheet.row(&sheet::Row {
                finding: "drift",
                entity: e.as_str(),
                external_ref: Some(key),
                erp_id: rec.id.as_deref(),
                field: Some(&d.field),
                ledger_value: Some(&d.ledger),
                erp_value: Some(&d.erp),
                version: Some(version),
                meaning: "an owned field differs in the ERP from the version delivered",
            })?;
            keep(
                &mut self.report.drift,
                &mut self.report.truncated,
                Drift {
                    entity: e.to_string(),
                    external_ref: key.to_string(),
                    erp_id: rec.id.clone(),
                    field: d.field.clone(),
                    ledger_value: d.ledger.clone(),
                    erp_value: d.erp.clone(),
                    version,
                },
            );
        }
        Ok(!found.is_empty())
    }

    /// The delivered keys no page listed.
    fn missing(&mut self, sheet: &mut sheet::Sheet) -> Result<(), ReconcileError> {
        let (entities, at) = (self.report.entities.clone(), self.report.at.clone());
        let (report, ledger) = (&mut self.report, self.ledger);
        let mut failed = None;
        let n = ledger.reconcile_missing(&self.t.name, &entities, &at, |m: MissingKey| {
            let row = sheet::Row {
                finding: "missing",
                entity: &m.entity,
                external_ref: Some(&m.key),
                erp_id: m.remote_id.as_deref(),
                field: None,
                ledger_value: None,
                erp_value: None,
                version: Some(m.version),
                meaning: "delivered by tallyman, no longer in the ERP",
            };
            if let Err(e) = sheet.row(&row) {
                failed.get_or_insert(e);
            }
            keep(
                &mut report.missing,
                &mut report.truncated,
                Missing {
                    entity: m.entity,
                    external_ref: m.key,
                    erp_id: m.remote_id,
                    version: m.version,
                },
            );
            Ok(())
        })?;
        self.report.missing_count = n;
        failed.map_or(Ok(()), |e| Err(e.into()))
    }

    fn repair(&mut self) -> Result<(), ReconcileError> {
        let done = self.ledger.reconcile_requeue(&self.t.name)?;
        self.ledger.audit(
            self.opts.actor,
            "reconcile-repair",
            self.opts.reason,
            Some(&self.t.name),
            &json!({"missing_requeued": done.missing, "drift_requeued": done.drift, "keys": done.keys}),
        )?;
        self.report.repaired = Some(done);
        Ok(())
    }

    /// Records the run and samples its figures.
    fn finish(mut self) -> Result<ReconcileReport, ReconcileError> {
        let r = &mut self.report;
        r.orphan_ratio = match r.in_scope {
            0 => 0.0,
            n => r.orphan_count as f64 / n as f64,
        };
        let path = r.report_path.as_ref().map(|p| p.display().to_string());
        r.id = self.ledger.record_reconciliation(&NewReconciliation {
            target: &r.target,
            at: &r.at,
            scope: &r.scope,
            remote_records: r.remote_records,
            missing: r.missing_count,
            orphans: r.orphan_count,
            drift: r.drift_count,
            report_path: path.as_deref(),
            detail: &detail(r),
        })?;
        let labels = format!("target={}", r.target);
        self.ledger.sample_metrics(&[
            ("tallyman_reconcile_orphans", &labels, r.orphan_count as f64),
            ("tallyman_reconcile_orphan_ratio", &labels, r.orphan_ratio),
            (
                "tallyman_reconcile_missing",
                &labels,
                r.missing_count as f64,
            ),
            ("tallyman_reconcile_drift", &labels, r.drift_count as f64),
        ])?;
        Ok(self.report)
    }
}

/// Keeps a finding for the report's lists, up to [`LIST_CAP`].
fn keep<T>(list: &mut Vec<T>, truncated: &mut bool, item: T) {
    if list.len() < LIST_CAP {
        list.push(item);
    } else {
        *truncated = true;
    }
}

/// The ledger's copy of a run: counts and the first findings of each kind.
fn detail(r: &ReconcileReport) -> Value {
    let first = |v: Value| match v {
        Value::Array(items) => Value::Array(items.into_iter().take(DETAIL_CAP).collect()),
        other => other,
    };
    let cap_values = |d: &Drift| Drift {
        ledger_value: capped(&d.ledger_value),
        erp_value: capped(&d.erp_value),
        ..d.clone()
    };
    let drift: Vec<Drift> = r.drift.iter().take(DETAIL_CAP).map(cap_values).collect();
    json!({
        "entities": r.entities,
        "in_scope": r.in_scope,
        "unsettled": r.unsettled,
        "orphan_ratio": r.orphan_ratio,
        "missing": first(json!(r.missing)),
        "orphans": first(json!(r.orphans)),
        "drift": drift,
        "truncated": r.truncated || r.differences() > DETAIL_CAP as u64,
        "repaired": r.repaired,
    })
}

/// A value short enough for the ledger's record (a long text is cut).
fn capped(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(crate::unit::cap_raw(s, 200)),
        Value::Null | Value::Bool(_) | Value::Number(_) => v.clone(),
        other => Value::String(crate::unit::cap_raw(&other.to_string(), 200)),
    }
}

/// The remote targets whose `reconcile_every_hours` has passed since their last
/// reconciliation was begun.
pub fn reconcile_due(cfg: &Config, ledger: &Ledger) -> Result<Vec<String>, LedgerError> {
    let mut due = Vec::new();
    for t in cfg.remote_targets() {
        let Some(every) = t.reconcile.every else {
            continue;
        };
        let last = ledger.reconcile_attempted_at(&t.name)?;
        if is_due(last.as_deref(), every, chrono::Utc::now()) {
            due.push(t.name.clone());
        }
    }
    Ok(due)
}

fn is_due(
    last: Option<&str>,
    every: std::time::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let Some(last) = last.and_then(|l| chrono::DateTime::parse_from_rfc3339(l).ok()) else {
        return true;
    };
    let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
    now.signed_duration_since(last.with_timezone(&chrono::Utc)) >= every
}

/// How a target's reconciliation went.
pub type Outcome = Result<ReconcileReport, ReconcileError>;

/// Reconciles every target that is due (see [`reconcile_due`]), without repairs: a
/// schedule finds, a person decides. Call at the end of a `run` or `watch` pass.
pub fn run_due(
    cfg: &Config,
    ledger: &Ledger,
    stop: &AtomicBool,
) -> Result<Vec<(String, Outcome)>, LedgerError> {
    let opts = Options {
        actor: "schedule",
        stop: Some(stop),
        ..Options::default()
    };
    let mut out = Vec::new();
    for name in reconcile_due(cfg, ledger)? {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let r = reconcile_target(cfg, ledger, &name, &opts);
        out.push((name, r));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
