//! Chooses the fault for each API request: first from a script a test queued ("the next
//! create is applied and its answer dropped"), otherwise by chance from a seeded generator,
//! so fault runs are repeatable. The generator is a few lines of SplitMix64 rather than a
//! crate: statistical quality hardly matters here, reproducibility does.

use std::collections::VecDeque;

use super::config::{Fault, SimConfig};

/// The longest script accepted, so a runaway test cannot grow the queue without bound.
pub const MAX_SCRIPT: usize = 10_000;

#[derive(Debug)]
pub struct FaultPlan {
    state: u64,
    script: VecDeque<Fault>,
}

impl FaultPlan {
    pub fn new(seed: u64) -> FaultPlan {
        FaultPlan {
            state: seed,
            script: VecDeque::new(),
        }
    }

    pub fn reseed(&mut self, seed: u64) {
        self.state = seed;
    }

    pub fn set_script(&mut self, faults: Vec<Fault>) {
        self.script = faults.into();
    }

    pub fn script(&self) -> Vec<Fault> {
        self.script.iter().copied().collect()
    }

    /// The fault for the next request. One draw per request whatever the outcome, so the
    /// sequence depends only on the seed and the number of requests.
    pub fn next(&mut self, cfg: &SimConfig) -> Fault {
        if let Some(f) = self.script.pop_front() {
            return f;
        }
        let x = self.next_f64();
        let mut edge = 0.0;
        for (fault, p) in cfg.fault_rates() {
            edge += p;
            if p > 0.0 && x < edge {
                return fault;
            }
        }
        Fault::None
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits as a double's mantissa.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(seed: u64, cfg: &SimConfig, n: usize) -> Vec<Fault> {
        let mut p = FaultPlan::new(seed);
        (0..n).map(|_| p.next(cfg)).collect()
    }

    #[test]
    fn same_seed_same_faults_and_rates_roughly_hold() {
        let cfg = SimConfig {
            status_503: 0.25,
            drop_after: 0.25,
            ..Default::default()
        };
        let a = draws(42, &cfg, 4000);
        assert_eq!(a, draws(42, &cfg, 4000));
        assert_ne!(a, draws(43, &cfg, 4000));
        let n503 = a.iter().filter(|f| **f == Fault::Status503).count();
        let ndrop = a.iter().filter(|f| **f == Fault::DropAfter).count();
        assert!((800..1200).contains(&n503), "{n503}");
        assert!((800..1200).contains(&ndrop), "{ndrop}");
    }

    #[test]
    fn zero_never_fires_and_one_always_does() {
        assert!(draws(1, &SimConfig::default(), 1000)
            .iter()
            .all(|f| *f == Fault::None));
        let always = SimConfig {
            reset_before: 1.0,
            ..Default::default()
        };
        assert!(draws(1, &always, 1000)
            .iter()
            .all(|f| *f == Fault::ResetBefore));
    }

    #[test]
    fn script_comes_first_then_chance_resumes() {
        let cfg = SimConfig {
            status_500: 1.0,
            ..Default::default()
        };
        let mut p = FaultPlan::new(7);
        p.set_script(vec![Fault::DropAfter, Fault::None]);
        assert_eq!(p.next(&cfg), Fault::DropAfter);
        assert_eq!(p.next(&cfg), Fault::None);
        assert_eq!(p.next(&cfg), Fault::Status500);
        assert!(p.script().is_empty());
    }

    #[test]
    fn uniform_draws_stay_in_range() {
        let mut p = FaultPlan::new(u64::MAX);
        assert!((0..10_000)
            .map(|_| p.next_f64())
            .all(|x| (0.0..1.0).contains(&x)));
    }
}
