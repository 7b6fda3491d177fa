//! Sliding 60-second windows over API requests: one for the rate limit (the requests it
//! admitted) and one for the statistic "most requests the client sent in any 60 seconds", which
//! counts every arrival, refused or not, so a test can assert that tallyman itself never went
//! over the ERP's limit rather than that the ERP refused the excess.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(60);

/// Instants of the events in the last 60 seconds, oldest first.
#[derive(Debug, Default)]
pub struct SlidingWindow {
    times: VecDeque<Instant>,
}

impl SlidingWindow {
    fn prune(&mut self, now: Instant) {
        while let Some(&t) = self.times.front() {
            if now.saturating_duration_since(t) >= WINDOW {
                self.times.pop_front();
            } else {
                break;
            }
        }
    }

    /// Counts an event at `now` and returns how many fall in the window (now-60s, now].
    pub fn record(&mut self, now: Instant) -> usize {
        self.prune(now);
        self.times.push_back(now);
        self.times.len()
    }

    /// Admits an event if fewer than `limit` were admitted in the window; otherwise returns
    /// the whole seconds until the oldest of them leaves it (at least 1, for `Retry-After`).
    pub fn admit(&mut self, now: Instant, limit: u32) -> Result<(), u64> {
        self.prune(now);
        if self.times.len() < limit as usize {
            self.times.push_back(now);
            return Ok(());
        }
        let oldest = self.times.front().copied().unwrap_or(now);
        let wait = WINDOW.saturating_sub(now.saturating_duration_since(oldest));
        Err(wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    pub fn clear(&mut self) {
        self.times.clear();
    }
}

/// Every arrival, and the highest count seen in any window.
#[derive(Debug, Default)]
pub struct PeakWindow {
    window: SlidingWindow,
    peak: usize,
}

impl PeakWindow {
    /// The count of a window is largest when it ends at an arrival, so checking at each
    /// arrival finds the maximum over all windows.
    pub fn record(&mut self, now: Instant) {
        self.peak = self.peak.max(self.window.record(now));
    }

    pub fn peak(&self) -> usize {
        self.peak
    }

    pub fn clear(&mut self) {
        self.window.clear();
        self.peak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn limiter_refuses_at_the_limit_and_names_the_wait() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::default();
        assert!(w.admit(t0, 2).is_ok());
        assert!(w.admit(t0 + secs(10), 2).is_ok());
        assert_eq!(w.admit(t0 + secs(20), 2), Err(40));
        // A refused request takes no slot: the oldest leaves at t0+60.
        assert_eq!(w.admit(t0 + secs(59), 2), Err(1));
        assert!(w.admit(t0 + secs(60), 2).is_ok());
        assert_eq!(w.admit(t0 + secs(61), 2), Err(9));
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::default();
        w.admit(t0, 1).unwrap();
        assert_eq!(w.admit(t0 + Duration::from_millis(59_500), 1), Err(1));
        assert_eq!(w.admit(t0 + Duration::from_millis(100), 1), Err(60));
    }

    #[test]
    fn peak_is_the_busiest_sixty_seconds() {
        let t0 = Instant::now();
        let mut p = PeakWindow::default();
        // 3 at 0..2 s, 4 at 50..53 s: the window (−7 s, 53 s] holds all 7.
        for s in [0, 1, 2, 50, 51, 52, 53] {
            p.record(t0 + secs(s));
        }
        assert_eq!(p.peak(), 7);
        // Later, sparse traffic leaves the peak alone.
        for s in [200, 300, 400] {
            p.record(t0 + secs(s));
        }
        assert_eq!(p.peak(), 7);
    }

    #[test]
    fn peak_slides_instead_of_counting_calendar_minutes() {
        let t0 = Instant::now();
        let mut p = PeakWindow::default();
        // 5 at 0..4 s and 5 at 60..64 s: no 60-second window holds more than 5.
        for s in [0, 1, 2, 3, 4, 60, 61, 62, 63, 64] {
            p.record(t0 + secs(s));
        }
        assert_eq!(p.peak(), 5);
    }
}
