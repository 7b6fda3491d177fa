//! Everything the simulator knows, behind one mutex: configuration, records, remembered
//! idempotent answers, the fault plan, the rate-limit windows and the stats. One lock keeps
//! every request's view consistent (a test ERP needs correctness, not throughput); handlers
//! take it for short, non-blocking steps only, never across a delay or a disk write.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::watch;

use super::config::SimConfig;
use super::faults::FaultPlan;
use super::idempotency::IdempotencyStore;
use super::persist::{self, Persister};
use super::stats::{Duplicate, Stats};
use super::store::{Coll, Collection};
use super::window::{PeakWindow, SlidingWindow};

pub struct State {
    pub cfg: SimConfig,
    pub colls: BTreeMap<Coll, Collection>,
    pub idem: IdempotencyStore,
    pub faults: FaultPlan,
    pub limiter: SlidingWindow,
    pub arrivals: PeakWindow,
    pub stats: Stats,
    /// Bumped at every change of the data, so disk writes can be put in order.
    generation: u64,
    persisting: bool,
}

pub struct Shared {
    state: Mutex<State>,
    persister: Option<Persister>,
    /// Bumped by `POST /_sim/release` to wake requests held by a `hold` fault.
    release: watch::Sender<u64>,
}

/// Seconds since the Unix epoch, the clock of idempotency expiry (it must survive restarts).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl State {
    pub fn coll(&mut self, c: Coll) -> &mut Collection {
        self.colls.entry(c).or_default()
    }

    /// Marks the data changed; returns what to write to disk, if the simulator persists.
    pub fn changed(&mut self) -> Option<(u64, Vec<u8>)> {
        self.generation += 1;
        let bytes = self
            .persisting
            .then(|| persist::encode(&self.colls, self.idem.stored()))?;
        Some((self.generation, bytes))
    }

    /// Every record, by collection: `GET /_sim/records`.
    pub fn dump(&self) -> Value {
        let mut out = serde_json::Map::new();
        for c in Coll::ALL {
            let recs = self
                .colls
                .get(&c)
                .map(|k| k.all().cloned().map(Value::Object).collect());
            out.insert(c.name().into(), Value::Array(recs.unwrap_or_default()));
        }
        Value::Object(out)
    }

    /// The counters plus what is derived from the data now.
    fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.max_requests_in_60s = self.arrivals.peak() as u64;
        for (c, coll) in &self.colls {
            s.records.insert(c.name().into(), coll.len() as u64);
            for (external_ref, ids) in coll.duplicates(*c) {
                s.duplicates.push(Duplicate {
                    collection: c.name().into(),
                    external_ref,
                    ids,
                });
            }
        }
        s
    }
}

impl Shared {
    /// Loads the data file if the configuration names one.
    pub fn open(cfg: SimConfig) -> io::Result<Shared> {
        let path = cfg.data_file.clone();
        let (colls, stored) = match &path {
            Some(p) => persist::load(p)?.unwrap_or_default(),
            None => Default::default(),
        };
        let state = State {
            faults: FaultPlan::new(cfg.seed),
            cfg,
            colls,
            idem: IdempotencyStore::restore(stored),
            limiter: SlidingWindow::default(),
            arrivals: PeakWindow::default(),
            stats: Stats::default(),
            generation: 0,
            persisting: path.is_some(),
        };
        Ok(Shared {
            state: Mutex::new(state),
            persister: path.map(Persister::new),
            release: watch::Sender::new(0),
        })
    }

    /// A panic elsewhere must not take the simulator down with a poisoned lock: the state is
    /// only ever changed in whole steps, so it is still consistent.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats()
    }

    pub fn config(&self) -> SimConfig {
        self.lock().cfg.clone()
    }

    /// Replaces the switches (keeping the data file) and re-seeds the fault generator, so
    /// the faults that follow depend only on the new configuration.
    pub fn set_config(&self, mut cfg: SimConfig) -> Result<(), String> {
        cfg.check()?;
        let mut st = self.lock();
        cfg.data_file = st.cfg.data_file.clone();
        st.faults.reseed(cfg.seed);
        st.cfg = cfg;
        Ok(())
    }

    /// Clears records, remembered answers, scripted faults, windows and stats; keeps the
    /// configuration.
    pub async fn reset(self: &Arc<Self>) {
        let snapshot = {
            let mut st = self.lock();
            st.colls.clear();
            st.idem.clear();
            st.faults = FaultPlan::new(st.cfg.seed);
            st.limiter.clear();
            st.arrivals.clear();
            st.stats = Stats::default();
            st.changed()
        };
        self.release_held();
        self.persist(snapshot).await;
    }

    pub fn release_held(&self) -> u64 {
        let held = self.lock().stats.held;
        self.release.send_modify(|g| *g += 1);
        held
    }

    pub fn release_signal(&self) -> watch::Receiver<u64> {
        self.release.subscribe()
    }

    /// Writes a snapshot off the async threads. A failed write is logged, not answered: the
    /// change is applied and visible, and a 5xx would only make the client send it again.
    pub async fn persist(self: &Arc<Self>, snapshot: Option<(u64, Vec<u8>)>) {
        let Some((generation, bytes)) = snapshot else {
            return;
        };
        let me = Arc::clone(self);
        let done = tokio::task::spawn_blocking(move || match &me.persister {
            Some(p) => p.write(generation, &bytes),
            None => Ok(()),
        });
        match done.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("erp-sim: writing the data file failed: {e}"),
            Err(e) => tracing::error!("erp-sim: the data file writer failed: {e}"),
        }
    }
}
