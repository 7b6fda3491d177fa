//! When to try again: exponential backoff with full jitter, capped, never sooner than the
//! target asked (`Retry-After`), and when to stop trying (a dead letter after the policy's
//! attempts or age). Pure: the clock and the random draw are arguments.

use std::time::Duration;

use crate::config::RetryPolicy;

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Try again after this long.
    RetryIn(Duration),
    /// Give up: a person's turn (the reason says which limit was reached).
    Dead(String),
}

/// `attempt` is the number of the attempt that just failed (1 for the first); `age` how
/// long the record has waited since it was queued; `draw` a uniform number in [0, 1).
pub fn after_failure(
    policy: &RetryPolicy,
    attempt: u32,
    age: Duration,
    retry_after: Option<Duration>,
    draw: f64,
) -> Next {
    if attempt >= policy.max_attempts {
        return Next::Dead(format!("gave up after {attempt} attempts (max_attempts)"));
    }
    if age >= policy.max_age {
        return Next::Dead(format!(
            "gave up after {} hours waiting (max_age_hours)",
            age.as_secs() / 3600
        ));
    }
    let exp = policy
        .backoff_base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let ceiling = exp.min(policy.backoff_cap);
    let jittered = ceiling.mul_f64(draw.clamp(0.0, 1.0));
    Next::RetryIn(jittered.max(retry_after.unwrap_or_default()))
}

/// A small, good-enough random source for jitter (no cryptography needed: it only spreads
/// retries apart).
pub struct Jitter(u64);

impl Jitter {
    pub fn seeded(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }
    /// A draw in [0, 1).
    pub fn draw(&mut self) -> f64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(10),
        }
    }

    #[test]
    fn delays_grow_exponentially_within_the_cap_and_jitter() {
        let p = policy();
        let d = |attempt, draw| match after_failure(&p, attempt, Duration::ZERO, None, draw) {
            Next::RetryIn(d) => d,
            Next::Dead(w) => panic!("{w}"),
        };
        assert_eq!(d(1, 0.999_999).as_millis(), 999);
        assert_eq!(d(3, 0.5), Duration::from_secs(2));
        assert_eq!(d(4, 0.999_999).as_secs(), 7);
        assert!(d(4, 0.0).is_zero(), "full jitter reaches down to zero");
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = policy();
        let next = after_failure(&p, 1, Duration::ZERO, Some(Duration::from_secs(30)), 0.1);
        assert_eq!(next, Next::RetryIn(Duration::from_secs(30)));
    }

    #[test]
    fn attempts_and_age_end_in_a_dead_letter() {
        let p = policy();
        assert!(matches!(
            after_failure(&p, 5, Duration::ZERO, None, 0.5),
            Next::Dead(_)
        ));
        let old = Duration::from_secs(7200);
        assert!(
            matches!(after_failure(&p, 1, old, None, 0.5), Next::Dead(w) if w.contains("max_age"))
        );
    }

    #[test]
    fn draws_stay_in_range() {
        let mut j = Jitter::seeded(42);
        for _ in 0..10_000 {
            let d = j.draw();
            assert!((0.0..1.0).contains(&d));
        }
    }
}
