//! Delivery: getting applied records into the systems they are for, exactly once in effect.
//!
//! Records are queued in the ledger when their file is decided (see `ledger::delivery`).
//! A *relay* per target takes due deliveries, sends them through the target's
//! [`Target::deliver`], and records every attempt; its typed [`Outcome`] decides what
//! happens next — delivered, retried after a backoff (persisted, so timer runs continue the
//! schedule), a dead letter for a person, or the whole target blocked (bad credentials: no
//! record is dead-lettered for that). One relay per target runs at a time, across
//! every worker sharing the ledger (an OS lock on the machine, a lease in the ledger
//! across machines): deliveries a dead or stopped relay left in flight are known to be
//! ambiguous and are looked up before they are sent again, and the target's rate limit is
//! one relay's to keep.

mod backoff;
pub mod http;
pub mod list;
mod payload;
pub mod ratelimit;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::RetryPolicy;
use crate::ledger::{AttemptLog, Due, Finished, Leased, Ledger, LedgerError, Taking};

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
    /// Not sent at all (the run ended first): back to the queue, the attempt not counted.
    NotSent,
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
/// set. Sending never waits for the ledger: workers take claimed deliveries from a queue
/// while this thread claims more and records results in batches (one transaction each).
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
    let mut cuts = 0;
    loop {
        match relay_once(ledger, target, policy, locks, deadline, stop, &mut report) {
            // The database cut the session (a PostgreSQL restart): what was in flight is
            // recovered as ambiguous when the relay goes on, once it answers again.
            Err(e) if e.is_connection_lost() && cuts < RELAY_CUTS => {
                cuts += 1;
                tracing::warn!(target = %target.name(), "the ledger's database cut the session ({e}); going on once it answers");
                ledger.wait_for_database()?;
                let role = Leased::relay(target.name());
                if let Err(LedgerError::Fenced { by, .. }) = ledger.confirm_lease(&role) {
                    taken_over(&mut report, target, &by);
                    return Ok(report);
                }
            }
            other => return other.map(|()| report),
        }
    }
}

/// A relay stopped past its lease: the taker recovered what it had in flight, and this
/// run records nothing more.
fn taken_over(report: &mut RelayReport, target: &dyn Target, by: &str) {
    tracing::warn!(target = %target.name(), "the relay was taken over by {by}; this run recorded nothing more");
    report.busy = true;
}

/// How often a relay goes on after its database session was cut.
const RELAY_CUTS: usize = 5;

/// One stretch of relaying, until done or the database cuts the session.
fn relay_once(
    ledger: &mut Ledger,
    target: &dyn Target,
    policy: &RetryPolicy,
    locks: &Path,
    deadline: Instant,
    stop: &AtomicBool,
    report: &mut RelayReport,
) -> Result<(), LedgerError> {
    let lock = crate::intake::try_claim(locks, &format!("relay-{}", target.name()))?;
    let role = Leased::relay(target.name());
    if !take_role(ledger, &role, lock.is_some())? {
        report.busy = true;
        return Ok(());
    }
    let keeper = ledger.lease_keeper(&role)?;
    let holds = || keeper.as_ref().is_none_or(|k| k.holds());
    let result = relay_held(ledger, target, policy, deadline, stop, &holds, report);
    drop(keeper);
    // A session the database cut keeps its token: `relay` confirms it before going on, so
    // a relay stopped past its lease learns it was taken over (even when the taker has
    // finished and let go meanwhile) instead of taking the role afresh.
    if let Err(e) = &result {
        if e.is_connection_lost() {
            return result;
        }
    }
    let released = ledger.release_lease(&role);
    match result {
        Err(LedgerError::Fenced { by, .. }) => {
            taken_over(report, target, &by);
            Ok(())
        }
        Err(e) => Err(e),
        Ok(()) => released,
    }
}

/// Takes the role of the target's relay in the ledger. The OS lock (`locked`) keeps two
/// relays of this host apart; the lease keeps them apart across hosts, and lets a relay
/// take over from one of this host that holds the OS lock but stopped renewing.
fn take_role(ledger: &mut Ledger, role: &Leased, locked: bool) -> Result<bool, LedgerError> {
    let Some(run) = ledger.current_run() else {
        return Ok(locked); // not a run (a library caller): the OS lock alone decides
    };
    match ledger.take_lease(role, run)? {
        Taking::Taken {
            from: Some(from),
            from_running,
            ..
        } => {
            let why = if from_running {
                "whose lease ran out (stopped or cut off)"
            } else {
                "which ended (its process died) without letting go"
            };
            tracing::warn!("taking over {role} from run {from}, {why}");
            Ok(true)
        }
        Taking::Taken { from: None, .. } if !locked => {
            // Free in the ledger but locked here: a relay of this host is starting.
            ledger.release_lease(role)?;
            Ok(false)
        }
        Taking::Taken { .. } => Ok(true),
        Taking::Refused(_) => Ok(false),
    }
}

/// The relay's work once it holds the role.
fn relay_held(
    ledger: &mut Ledger,
    target: &dyn Target,
    policy: &RetryPolicy,
    deadline: Instant,
    stop: &AtomicBool,
    holds: &(dyn Fn() -> bool + Sync),
    report: &mut RelayReport,
) -> Result<(), LedgerError> {
    report.recovered = ledger.recover_in_flight(target.name())?;
    // A relay that no longer surely holds its role sends nothing more.
    let over = || stop.load(Ordering::Relaxed) || Instant::now() >= deadline || !holds();
    let work = WorkQueue::default();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..target.concurrency() {
            let tx = tx.clone();
            let (work, over) = (&work, &over);
            s.spawn(move || worker(target, work, over, tx));
        }
        drop(tx);
        let result = feed(ledger, target, policy, &work, &rx, &over, report);
        work.close();
        // Workers finish what they hold; record it, even after an error above.
        let rest: Vec<_> = rx.iter().collect();
        let mut jitter = Jitter::seeded(seed());
        let finished: Vec<Finished> = rest
            .into_iter()
            .map(|(d, o, log)| settle(d, o, log, policy, &mut jitter, report))
            .collect();
        result.and_then(|()| ledger.finish_deliveries(target.name(), &finished))
    })?;
    match &report.blocked {
        Some(why) => ledger.block_target(target.name(), why)?,
        None if report.delivered > 0 => ledger.unblock_target(target.name())?,
        None => {}
    }
    Ok(())
}

/// Claims deliveries into the queue while there is room, and records results as they come.
fn feed(
    ledger: &mut Ledger,
    target: &dyn Target,
    policy: &RetryPolicy,
    work: &WorkQueue,
    rx: &std::sync::mpsc::Receiver<Sent>,
    over: &dyn Fn() -> bool,
    report: &mut RelayReport,
) -> Result<(), LedgerError> {
    let batch = target.concurrency() * 32;
    let mut jitter = Jitter::seeded(seed());
    let mut done: Vec<Finished> = Vec::new();
    let mut outstanding = 0usize;
    let mut exhausted = false;
    let mut last_flush = Instant::now();
    loop {
        let feeding = !exhausted && !over() && report.blocked.is_none();
        if feeding && work.len() < batch / 2 {
            let due = ledger.claim_due(target.name(), batch)?;
            exhausted = due.len() < batch;
            outstanding += due.len();
            work.push(due);
        }
        if outstanding == 0 && (!feeding || exhausted) {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((d, o, log)) => {
                outstanding -= 1;
                done.push(settle(d, o, log, policy, &mut jitter, report));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if report.blocked.is_some() {
            work.close();
        }
        if done.len() >= batch || last_flush.elapsed() > Duration::from_millis(200) {
            ledger.finish_deliveries(target.name(), &std::mem::take(&mut done))?;
            last_flush = Instant::now();
        }
    }
    ledger.finish_deliveries(target.name(), &done)
}

/// A delivery attempt's result on its way back to the relay.
type Sent = (Due, Outcome, AttemptLog);

/// Deliveries claimed and waiting for a worker.
#[derive(Default)]
struct WorkQueue {
    inner: Mutex<(std::collections::VecDeque<Due>, bool)>,
    ready: std::sync::Condvar,
}

impl WorkQueue {
    fn push(&self, due: Vec<Due>) {
        self.inner.lock().unwrap().0.extend(due);
        self.ready.notify_all();
    }
    fn len(&self) -> usize {
        self.inner.lock().unwrap().0.len()
    }
    /// No more work will come; what is queued is still handed out.
    fn close(&self) {
        self.inner.lock().unwrap().1 = true;
        self.ready.notify_all();
    }
    /// The next delivery, or `None` once closed and empty.
    fn pop(&self) -> Option<Due> {
        let mut g = self.inner.lock().unwrap();
        loop {
            if let Some(d) = g.0.pop_front() {
                return Some(d);
            }
            if g.1 {
                return None;
            }
            g = self
                .ready
                .wait_timeout(g, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }
}

/// One of the relay's senders: once the run is over or the target blocked, what is left
/// in the queue goes back unsent.
fn worker(
    target: &dyn Target,
    work: &WorkQueue,
    over: &(dyn Fn() -> bool + Sync),
    tx: std::sync::mpsc::Sender<Sent>,
) {
    while let Some(d) = work.pop() {
        let mut log = AttemptLog::default();
        let outcome = if over() || work.is_closed() {
            Outcome::NotSent
        } else {
            target.deliver(&d, &mut log, over)
        };
        if tx.send((d, outcome, log)).is_err() {
            break;
        }
    }
}

impl WorkQueue {
    fn is_closed(&self) -> bool {
        self.inner.lock().unwrap().1
    }
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
        log_n: d.log_n,
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
            report.blocked.get_or_insert(why.clone());
            f.error = Some(why);
        }
        Outcome::NotSent => {
            log.operation = "not sent".into();
            log.outcome = "not sent".into();
            f.state = "pending";
            f.error = d
                .ambiguous
                .then(|| "not sent: the run ended first".to_string());
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
