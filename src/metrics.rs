//! The health figures integration owners are told to watch — sync latency, error rate
//! against the 0.1% objective, records delivered, dead letters, retry queue depth, orphans
//! from the last reconciliation, files waiting, held or failed — computed once from the
//! ledger and shown three ways: the console's dashboard, `/metrics` in the Prometheus
//! (OpenMetrics) text format, and a textfile for node_exporter written after each timer run.
//!
//! tallyman is mostly not a long-running process, so every figure is a gauge read from the
//! ledger when asked (never an in-process counter that a restart would reset). Figures whose
//! past cannot be derived later from the ledger's rows — queue depth, dead letters, held
//! files at a moment — are also stored as samples (`sample`, called at the end of each
//! run, watch pass and deliver) for the dashboard's trend charts.

use std::path::Path;

use prometheus_client::encoding::text;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::config::Config;
use crate::ledger::{Ledger, LedgerError, ReconRow, RejectTally, TargetCounts, WindowTotals};

/// The error-rate objective: rejected documents and dead letters each under 0.1%.
pub const ERROR_OBJECTIVE: f64 = 0.001;

/// Samples are kept this long (the dashboard's longest window is 30 days).
const KEEP_DAYS: i64 = 35;

/// At most one sample a minute: a busy `watch` may end passes much more often.
const SAMPLE_EVERY_SECONDS: i64 = 60;

/// The figure that marks when samples were last taken.
const SAMPLE_MARK: &str = "tallyman_delivery_queue_depth";

/// One remote target's figures.
#[derive(Debug, Clone, Serialize)]
pub struct TargetFigures {
    pub name: String,
    pub counts: TargetCounts,
}

/// Every dashboard figure at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub targets: Vec<TargetFigures>,
    /// Last 24 hours.
    pub day: WindowTotals,
    pub rejects: RejectTally,
    /// Files in the inbox not yet taken (complete or not).
    pub files_waiting: i64,
    /// `held`, `failed`, `in_progress`, `rejected` → count.
    pub files: Vec<(String, i64)>,
    pub reconciliations: Vec<ReconRow>,
    /// Start time and status of the newest run.
    pub last_run: Option<(String, String)>,
}

impl Figures {
    pub fn files_in(&self, state: &str) -> i64 {
        self.files
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n)
    }

    /// What all targets hold in one state, summed.
    pub fn sum(&self, f: impl Fn(&TargetCounts) -> i64) -> i64 {
        self.targets.iter().map(|t| f(&t.counts)).sum()
    }
}

/// Rejected documents ÷ documents, dead letters ÷ deliveries (`None` with nothing to
/// divide by).
pub fn error_ratios(w: &WindowTotals) -> (Option<f64>, Option<f64>) {
    let ratio = |a: i64, b: i64| (b > 0).then(|| a as f64 / b as f64);
    (
        ratio(w.rejected_documents, w.documents),
        ratio(w.dead_letters, w.deliveries),
    )
}

/// An ISO time `seconds` ago, in the ledger's spelling.
pub fn iso_ago(seconds: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Reads every figure.
pub fn figures(ledger: &Ledger, cfg: &Config) -> Result<Figures, LedgerError> {
    let mut targets = Vec::new();
    for t in cfg.remote_targets() {
        targets.push(TargetFigures {
            name: t.name.clone(),
            counts: ledger.target_counts(&t.name)?,
        });
    }
    Ok(Figures {
        targets,
        day: ledger.window_totals(&iso_ago(86_400))?,
        rejects: ledger.reject_tally(None)?,
        files_waiting: files_waiting(&cfg.paths.inbox),
        files: ledger.file_state_counts()?,
        reconciliations: ledger.latest_reconciliations()?,
        last_run: ledger.last_run()?,
    })
}

/// Files in the inbox that intake would look at: not hidden, not temporary, not markers.
fn files_waiting(inbox: &Path) -> i64 {
    let Ok(dir) = std::fs::read_dir(inbox) else {
        return 0;
    };
    dir.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !(name.starts_with('.')
                || name.ends_with(".tmp")
                || name.ends_with(".part")
                || name.ends_with(".done"))
        })
        .count() as i64
}

type Labels = Vec<(String, String)>;

/// Gauges by name, registered in order: help text and the labelled values.
struct Builder {
    registry: Registry,
}

impl Builder {
    fn family(&mut self, name: &str, help: &str, values: &[(Labels, f64)]) {
        let fam = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for (labels, v) in values {
            fam.get_or_create(labels).set(*v);
        }
        self.registry.register(name, help, fam);
    }

    fn one(&mut self, name: &str, help: &str, v: f64) {
        self.family(name, help, &[(Vec::new(), v)]);
    }
}

fn label(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The figures as a Prometheus registry of gauges.
pub fn registry(f: &Figures) -> Registry {
    let mut b = Builder {
        registry: Registry::default(),
    };
    target_families(&mut b, f);
    let (rej, dead) = error_ratios(&f.day);
    let w = |k: &str| label(&[("kind", k), ("window", "24h")]);
    let mut ratios = Vec::new();
    if let Some(r) = rej {
        ratios.push((w("rejected_documents"), r));
    }
    if let Some(d) = dead {
        ratios.push((w("dead_letters"), d));
    }
    b.family(
        "tallyman_error_ratio",
        "Rejected documents per document, and dead letters per delivery, over the window",
        &ratios,
    );
    b.one(
        "tallyman_error_ratio_objective",
        "The error-rate objective the ratios are held against",
        ERROR_OBJECTIVE,
    );
    let day = label(&[("window", "24h")]);
    b.family(
        "tallyman_documents",
        "Documents in files decided over the window",
        &[(day.clone(), f.day.documents as f64)],
    );
    b.family(
        "tallyman_documents_rejected",
        "Rejected documents in files decided over the window",
        &[(day, f.day.rejected_documents as f64)],
    );
    b.family(
        "tallyman_rejected_documents",
        "Rejected documents of decided files, open (waiting for a person or a correction) and resolved",
        &[
            (label(&[("state", "open")]), f.rejects.open as f64),
            (label(&[("state", "resolved")]), f.rejects.resolved as f64),
        ],
    );
    let mut files = vec![(label(&[("state", "waiting")]), f.files_waiting as f64)];
    for s in ["held", "failed", "in_progress", "rejected"] {
        files.push((label(&[("state", s)]), f.files_in(s) as f64));
    }
    b.family(
        "tallyman_files",
        "Files waiting in the inbox, held for a person, failed, in progress, rejected whole",
        &files,
    );
    recon_families(&mut b, &f.reconciliations);
    if let Some((at, status)) = &f.last_run {
        let ts = chrono::DateTime::parse_from_rfc3339(at).map_or(0.0, |t| t.timestamp() as f64);
        b.family(
            "tallyman_last_run_timestamp_seconds",
            "When the newest run started, by how it ended",
            &[(label(&[("status", status)]), ts)],
        );
    }
    b.registry
}

fn target_families(b: &mut Builder, f: &Figures) {
    let per = |g: &dyn Fn(&TargetCounts) -> Option<f64>| -> Vec<(Labels, f64)> {
        f.targets
            .iter()
            .filter_map(|t| g(&t.counts).map(|v| (label(&[("target", &t.name)]), v)))
            .collect()
    };
    let mut lat = Vec::new();
    for t in &f.targets {
        for (q, v) in [
            ("0.5", t.counts.sync_latency_p50_seconds),
            ("0.95", t.counts.sync_latency_p95_seconds),
        ] {
            if let Some(v) = v {
                lat.push((label(&[("target", &t.name), ("quantile", q)]), v));
            }
        }
    }
    b.family(
        "tallyman_sync_latency_seconds",
        "Input file settled to record confirmed by the target, over its last 1000 deliveries",
        &lat,
    );
    b.family(
        "tallyman_records_delivered",
        "Records the target confirmed, ever",
        &per(&|c| Some(c.delivered as f64)),
    );
    b.family(
        "tallyman_retry_queue_depth",
        "Records waiting to be sent again after a failed attempt",
        &per(&|c| Some(c.retry_wait as f64)),
    );
    b.family(
        "tallyman_delivery_queue_depth",
        "Records waiting for delivery: pending, to be retried, or in flight",
        &per(&|c| Some((c.pending + c.retry_wait + c.in_flight) as f64)),
    );
    b.family(
        "tallyman_oldest_waiting_seconds",
        "Age of the oldest record waiting for delivery",
        &per(&|c| c.oldest_waiting_seconds.map(|s| s as f64)),
    );
    b.family(
        "tallyman_dead_letters",
        "Records the target refused or that ran out of retries, waiting for a person",
        &per(&|c| Some(c.dead as f64)),
    );
    b.family(
        "tallyman_target_blocked",
        "1 while the target refuses the credentials (401/403)",
        &per(&|c| Some(f64::from(u8::from(c.blocked.is_some())))),
    );
}

fn recon_families(b: &mut Builder, recon: &[ReconRow]) {
    let per = |g: &dyn Fn(&ReconRow) -> f64| -> Vec<(Labels, f64)> {
        recon
            .iter()
            .map(|r| (label(&[("target", &r.target)]), g(r)))
            .collect()
    };
    b.family(
        "tallyman_reconcile_orphans",
        "Records in the target that no delivery explains, at the last reconciliation",
        &per(&|r| r.orphans as f64),
    );
    b.family(
        "tallyman_reconcile_missing",
        "Delivered records missing from the target, at the last reconciliation",
        &per(&|r| r.missing as f64),
    );
    b.family(
        "tallyman_reconcile_drift",
        "Records whose owned fields differ in the target, at the last reconciliation",
        &per(&|r| r.drift as f64),
    );
    b.family(
        "tallyman_reconcile_timestamp_seconds",
        "When the target was last reconciled",
        &per(&|r| {
            chrono::DateTime::parse_from_rfc3339(&r.at).map_or(0.0, |t| t.timestamp() as f64)
        }),
    );
}

/// The OpenMetrics text (`# EOF` included), for `/metrics`.
pub fn openmetrics(f: &Figures) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = text::encode(&mut out, &registry(f));
    out
}

/// The Prometheus text format for node_exporter's textfile collector: the same gauges
/// without OpenMetrics' `# EOF` line (every family is a gauge, so nothing else differs).
pub fn prometheus_text(f: &Figures) -> String {
    let mut out = String::new();
    let _ = text::encode_registry(&mut out, &registry(f));
    out
}

/// Stores samples of the figures that cannot be derived from the ledger later, at most
/// once a minute, and drops samples older than 35 days. Call at the end of each run, watch
/// pass and deliver.
pub fn sample(ledger: &Ledger, cfg: &Config) -> Result<(), LedgerError> {
    if let Some(last) = ledger.last_sample_at(SAMPLE_MARK)? {
        if last > iso_ago(SAMPLE_EVERY_SECONDS) {
            return Ok(());
        }
    }
    let f = figures(ledger, cfg)?;
    let mut owned: Vec<(&str, String, f64)> = Vec::new();
    for t in &f.targets {
        let l = format!("target={}", t.name);
        let c = &t.counts;
        owned.push(("tallyman_retry_queue_depth", l.clone(), c.retry_wait as f64));
        owned.push((
            SAMPLE_MARK,
            l.clone(),
            (c.pending + c.retry_wait + c.in_flight) as f64,
        ));
        owned.push(("tallyman_dead_letters", l, c.dead as f64));
    }
    owned.push((
        "tallyman_retry_queue_depth",
        String::new(),
        f.sum(|c| c.retry_wait) as f64,
    ));
    owned.push((
        SAMPLE_MARK,
        String::new(),
        f.sum(|c| c.pending + c.retry_wait + c.in_flight) as f64,
    ));
    owned.push((
        "tallyman_dead_letters",
        String::new(),
        f.sum(|c| c.dead) as f64,
    ));
    owned.push((
        "tallyman_files_held",
        String::new(),
        f.files_in("held") as f64,
    ));
    owned.push((
        "tallyman_files_waiting",
        String::new(),
        f.files_waiting as f64,
    ));
    owned.push((
        "tallyman_rejected_documents_open",
        String::new(),
        f.rejects.open as f64,
    ));
    let samples: Vec<(&str, &str, f64)> =
        owned.iter().map(|(n, l, v)| (*n, l.as_str(), *v)).collect();
    ledger.sample_metrics(&samples)?;
    ledger.prune_metric_samples(&iso_ago(KEEP_DAYS * 86_400))?;
    Ok(())
}

/// `tallyman metrics --textfile PATH`: writes the figures for node_exporter's textfile
/// collector, atomically (the collector never reads half a file). Exit 0, or 2 when the
/// config or the ledger cannot be read.
pub fn metrics_textfile(config_path: &Path, path: &Path) -> anyhow::Result<i32> {
    let cfg = match Config::load(config_path) {
        Ok(c) => c,
        Err(errs) => {
            for e in errs {
                crate::complain!("{e}");
            }
            return Ok(2);
        }
    };
    crate::fsutil::set_file_mode(cfg.permissions.file_mode);
    let ledger = match Ledger::open_in(&cfg.paths) {
        Ok(l) => l,
        Err(e) => {
            crate::complain!("ledger {}: {e}", cfg.paths.ledger_at.shown());
            return Ok(2);
        }
    };
    let f = figures(&ledger, &cfg)?;
    crate::fsutil::write_atomic(path, prometheus_text(&f).as_bytes())?;
    crate::fsutil::set_mode(path)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures_for_test() -> Figures {
        Figures {
            targets: vec![TargetFigures {
                name: "erp".into(),
                counts: TargetCounts {
                    pending: 2,
                    retry_wait: 3,
                    delivered: 40,
                    dead: 1,
                    sync_latency_p50_seconds: Some(1.5),
                    sync_latency_p95_seconds: Some(9.0),
                    ..TargetCounts::default()
                },
            }],
            day: WindowTotals {
                documents: 1000,
                rejected_documents: 2,
                deliveries: 500,
                dead_letters: 1,
                delivered: 499,
            },
            rejects: RejectTally {
                open: 2,
                resolved: 5,
            },
            files_waiting: 4,
            files: vec![("held".into(), 1)],
            reconciliations: vec![],
            last_run: Some(("2026-01-01T10:00:00.000Z".into(), "ok".into())),
        }
    }

    #[test]
    fn every_family_is_a_gauge_with_the_dashboards_numbers() {
        let text = prometheus_text(&figures_for_test());
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains("tallyman_sync_latency_seconds{target=\"erp\",quantile=\"0.95\"} 9.0"),
            "{text}"
        );
        assert!(
            text.contains("tallyman_error_ratio{kind=\"rejected_documents\",window=\"24h\"} 0.002"),
            "{text}"
        );
        assert!(
            text.contains("tallyman_retry_queue_depth{target=\"erp\"} 3.0"),
            "{text}"
        );
        assert!(
            text.contains("tallyman_delivery_queue_depth{target=\"erp\"} 5.0"),
            "{text}"
        );
        assert!(
            text.contains("tallyman_files{state=\"held\"} 1.0"),
            "{text}"
        );
        assert!(
            text.contains("tallyman_last_run_timestamp_seconds{status=\"ok\"} 1767261600"),
            "{text}"
        );
        for l in text.lines().filter(|l| l.starts_with("# TYPE")) {
            assert!(l.ends_with(" gauge"), "{l}");
        }
        assert!(openmetrics(&figures_for_test()).ends_with("# EOF\n"));
    }

    #[test]
    fn error_ratios_need_something_to_divide_by() {
        let (r, d) = error_ratios(&WindowTotals::default());
        assert_eq!((r, d), (None, None));
        let (r, d) = error_ratios(&figures_for_test().day);
        assert_eq!((r, d), (Some(0.002), Some(0.002)));
    }

    #[test]
    fn samples_are_taken_at_most_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[paths]\ninbox = \"in\"\n";
        std::fs::create_dir(dir.path().join("in")).unwrap();
        std::fs::write(dir.path().join("in/a.csv"), "x").unwrap();
        std::fs::write(dir.path().join("in/.hidden"), "x").unwrap();
        let cfg = Config::parse(&dir.path().join("tallyman.toml"), text).unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        sample(&ledger, &cfg).unwrap();
        let first = ledger.last_sample_at(SAMPLE_MARK).unwrap().unwrap();
        sample(&ledger, &cfg).unwrap();
        assert_eq!(ledger.last_sample_at(SAMPLE_MARK).unwrap().unwrap(), first);
        let waiting = ledger
            .metric_series("tallyman_files_waiting", "", "2000")
            .unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].1, 1.0, "the hidden file is not waiting");
    }
}
