//! Delivery: getting applied records into the systems they are for, exactly once in effect.
//!
//! Records are queued in the ledger when their file is decided (see `ledger::delivery`).
//! A *relay* per target takes due deliveries, sends them through the target's
//! [`Target::deliver`], and records every attempt; its typed [`Outcome`] decides what
//! happens next — delivered, retried after a backoff (persisted, so timer runs continue the
//! schedule), a dead letter for a person, or the whole target blocked (bad credentials: no
//! record is dead-lettered for that). One relay per target runs on a machine at a time
//! (an OS lock), so deliveries a dead relay left in flight are known to be ambiguous and
//! are looked up before they are sent again.

mod backoff;
pub mod http;
mod payload;
pub mod ratelimit;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::RetryPolicy;
use crate::ledger::{AttemptLog, Due, Finished, Ledger, LedgerError};

pub use backoff::{after_failure, Jitter, Next};

/// What one attempt at a delivery came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The target has the record (with its id there, when it said).
    Delivered { remote_id: Option<String> },
    /// Not now: try again, no sooner than `after`. `ambiguous` when the target may have
    /// applied it (a timeout or reset after sending): the next try looks it up first.
    RetryAfter {
        after: Option<Duration>,
        why: String,
        ambiguous: bool,
    },
    /// The target refused the record for good (a validation error): a dead letter.
    Permanent { why: String },
    /// The target refuses everything (credentials): stop delivering to it, dead-letter
    /// nothing.
    Blocked { why: String },
}

/// A system records are delivered into.
pub trait Target: Send + Sync {
    fn name(&self) -> &str;
    /// How many deliveries may be on their way at once.
    fn concurrency(&self) -> usize;
    /// One attempt at one delivery; `log` gets what was sent and answered. `stop` says the
    /// run is over (a signal, the time budget): waits should end.
    fn deliver(&self, d: &Due, log: &mut AttemptLog, stop: &dyn Fn() -> bool) -> Outcome;
}

/// What a relay did in one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RelayReport {
    pub target: String,
    pub delivered: usize,
    pub retried: usize,
    pub dead: usize,
    /// Deliveries a dead relay had left in flight, now retried as ambiguous.
    pub recovered: usize,
    pub blocked: Option<String>,
    /// Another process is delivering to this target right now.
    pub busy: bool,
}

/// Runs the relay of one target until nothing is due, the deadline passes or `stop` is
/// set.
pub fn relay(
    ledger: &mut Ledger,
    target: &dyn Target,
    policy: &RetryPolicy,
    locks: &Path,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<RelayReport, LedgerError> {
    let mut report = RelayReport {
        target: target.name().to_string(),
        ..RelayReport::default()
    };
    let Some(_lock) = crate::intake::try_claim(locks, &format!("relay-{}", target.name()))? else {
        report.busy = true;
        return Ok(report);
    };
    report.recovered = ledger.recover_in_flight(target.name())?;
    let over = || stop.load(Ordering::Relaxed) || Instant::now() >= deadline;
    let mut jitter = Jitter::seeded(seed());
    while !over() {
        let due = ledger.claim_due(target.name(), target.concurrency() * 4)?;
        if due.is_empty() {
            break;
        }
        let sent = send_all(target, due, &over);
        let finished: Vec<Finished> = sent
            .into_iter()
            .map(|(d, o, log)| settle(d, o, log, policy, &mut jitter, &mut report))
            .collect();
        ledger.finish_deliveries(target.name(), &finished)?;
        if let Some(why) = &report.blocked {
            ledger.block_target(target.name(), why)?;
            break;
        }
        ledger.unblock_target(target.name())?;
    }
    Ok(report)
}

/// Sends a batch concurrently; once the target blocks, the rest stay unsent.
fn send_all(
    target: &dyn Target,
    due: Vec<Due>,
    over: &(dyn Fn() -> bool + Sync),
) -> Vec<(Due, Outcome, AttemptLog)> {
    let next = AtomicUsize::new(0);
    let blocked = AtomicBool::new(false);
    let out = Mutex::new(Vec::with_capacity(due.len()));
    std::thread::scope(|s| {
        for _ in 0..target.concurrency().min(due.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = due.get(i) else { break };
                let mut log = AttemptLog::default();
                let outcome = if blocked.load(Ordering::Relaxed) || over() {
                    Outcome::Blocked {
                        why: "not sent: the run stopped or the target is blocked".into(),
                    }
                } else {
                    target.deliver(d, &mut log, over)
                };
                if matches!(outcome, Outcome::Blocked { .. }) && !log.operation.is_empty() {
                    blocked.store(true, Ordering::Relaxed);
                }
                out.lock().unwrap().push((d.clone(), outcome, log));
            });
        }
    });
    out.into_inner().unwrap()
}

/// What a delivery's row becomes after an attempt.
fn settle(
    d: Due,
    outcome: Outcome,
    mut log: AttemptLog,
    policy: &RetryPolicy,
    jitter: &mut Jitter,
    report: &mut RelayReport,
) -> Finished {
    let now = chrono::Utc::now();
    let iso = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let mut f = Finished {
        id: d.id,
        attempt: d.attempt,
        state: "delivered",
        next_at: iso(now),
        ambiguous: d.ambiguous,
        error: None,
        remote_id: None,
        log: AttemptLog::default(),
    };
    match outcome {
        Outcome::Delivered { remote_id } => {
            report.delivered += 1;
            log.outcome = "delivered".into();
            f.remote_id = remote_id;
            f.ambiguous = false;
        }
        Outcome::RetryAfter {
            after,
            why,
            ambiguous,
        } => {
            let age = chrono::DateTime::parse_from_rfc3339(&d.created_at)
                .map(|c| {
                    (now - c.with_timezone(&chrono::Utc))
                        .to_std()
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            f.ambiguous = d.ambiguous || ambiguous;
            log.outcome = if ambiguous { "ambiguous" } else { "retry" }.into();
            match after_failure(policy, d.attempt as u32, age, after, jitter.draw()) {
                Next::RetryIn(wait) => {
                    report.retried += 1;
                    f.state = "retry";
                    f.next_at = iso(now + chrono::Duration::from_std(wait).unwrap_or_default());
                    f.error = Some(why);
                }
                Next::Dead(limit) => {
                    report.dead += 1;
                    f.state = "dead";
                    f.error = Some(format!("{why}; {limit}"));
                }
            }
        }
        Outcome::Permanent { why } => {
            report.dead += 1;
            log.outcome = "permanent".into();
            f.state = "dead";
            f.error = Some(why);
        }
        Outcome::Blocked { why } => {
            log.outcome = "blocked".into();
            f.state = "pending";
            if !log.operation.is_empty() {
                report.blocked.get_or_insert(why.clone());
            } else {
                log.operation = "not sent".into();
            }
            f.error = Some(why);
        }
    }
    f.log = log;
    f
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    t ^ (std::process::id() as u64).rotate_left(32)
}
