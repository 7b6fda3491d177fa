//! The delivery stage of a run: for every remote target, a relay sends what is due until
//! nothing is, the run's time budget is spent, or a stop is asked for. What is left stays
//! queued for the next run, on its persisted schedule.

use std::time::Instant;

use super::{Engine, Result};
use crate::config::TargetKind;
use crate::delivery::{self, http::HttpTarget, RelayReport};

impl Engine {
    /// Delivers what is due to every remote target until `deadline`.
    pub fn deliver(&mut self, deadline: Instant) -> Result<Vec<RelayReport>> {
        let mut reports = Vec::new();
        let targets: Vec<_> = self.cfg.remote_targets().cloned().collect();
        for t in &targets {
            if self.stopping() {
                break;
            }
            let TargetKind::Http(http) = &t.kind else {
                continue;
            };
            // A blocked target is probed again at most once a minute (a long-running
            // `watch` must not hammer an ERP that refuses its credentials).
            if self
                .ledger
                .blocked_for_seconds(&t.name)?
                .is_some_and(|s| s < 60)
            {
                continue;
            }
            let buckets = crate::delivery::ratelimit::BucketPlace::of(&self.cfg);
            let report = match HttpTarget::new(t, http, &buckets) {
                Ok(target) => delivery::relay(
                    &mut self.ledger,
                    &target,
                    &t.retry,
                    &self.cfg.paths.locks(),
                    deadline,
                    &self.stop,
                )?,
                Err(why) => {
                    self.ledger.block_target(&t.name, &why)?;
                    RelayReport {
                        target: t.name.clone(),
                        blocked: Some(why),
                        ..RelayReport::default()
                    }
                }
            };
            if let Some(why) = &report.blocked {
                tracing::error!(target = %t.name, "delivery blocked: {why}");
            }
            reports.push(report);
        }
        Ok(reports)
    }

    /// When the next delivery of any remote target is due (for `watch` to wake up).
    pub fn next_delivery_due(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let mut next = None;
        for t in self.cfg.remote_targets() {
            if self.ledger.target_blocked(&t.name)?.is_some() {
                continue;
            }
            if let Some(at) = self.ledger.next_due(&t.name)? {
                if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&at) {
                    let at = at.with_timezone(&chrono::Utc);
                    next = Some(next.map_or(at, |n: chrono::DateTime<chrono::Utc>| n.min(at)));
                }
            }
        }
        Ok(next)
    }
}
