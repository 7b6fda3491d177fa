//! A target's rate limit, shared by every tallyman process on the machine.
//!
//! A token bucket lives in a small file under `work/ratelimit/`, read and updated under an
//! exclusive OS lock, so overlapping runs (a timer run and a manual `deliver`) together
//! stay within the limit. The bucket holds at most one token and refills at (limit − 1)
//! per minute: then no 60-second window can hold more than `limit` requests, which is what
//! an ERP counting a sliding minute checks. A `Retry-After` from the target pauses the
//! bucket for everyone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct RateLimiter {
    path: PathBuf,
    per_minute: u32,
}

/// The bucket's state as stored: tokens, when they were counted, paused until (ms since
/// the epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
    paused_until_ms: u64,
}

impl RateLimiter {
    pub fn new(dir: &Path, target: &str, per_minute: u32) -> std::io::Result<RateLimiter> {
        std::fs::create_dir_all(dir)?;
        Ok(RateLimiter {
            path: dir.join(format!("{target}.bucket")),
            per_minute: per_minute.max(1),
        })
    }

    /// Waits until a request may be sent (or `stop` says to give up: then false).
    pub fn acquire(&self, stop: &dyn Fn() -> bool) -> std::io::Result<bool> {
        loop {
            let wait = self.try_take(now_ms())?;
            match wait {
                None => return Ok(true),
                Some(d) if stop() => {
                    let _ = d;
                    return Ok(false);
                }
                Some(d) => std::thread::sleep(d.min(Duration::from_millis(250))),
            }
        }
    }

    /// Makes everyone wait until `until` (a target's `Retry-After`).
    pub fn pause(&self, d: Duration) -> std::io::Result<()> {
        self.with_bucket(|b, now| {
            b.paused_until_ms = b.paused_until_ms.max(now + d.as_millis() as u64);
            None::<()>
        })?;
        Ok(())
    }

    /// Takes a token now, or says how long to wait for one.
    fn try_take(&self, now: u64) -> std::io::Result<Option<Duration>> {
        let rate = self.per_minute.saturating_sub(1).max(1) as f64 / 60_000.0; // tokens per ms
        Ok(self.with_bucket(|b, _| take(b, now, rate))?.flatten())
    }

    fn with_bucket<T>(&self, f: impl FnOnce(&mut Bucket, u64) -> T) -> std::io::Result<Option<T>> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        file.lock()?;
        let now = now_ms();
        let mut b = read_bucket(&mut file).unwrap_or(Bucket {
            tokens: 1.0,
            at_ms: now,
            paused_until_ms: 0,
        });
        let out = f(&mut b, now);
        write_bucket(&mut file, &b)?;
        Ok(Some(out))
    }
}

/// The bucket arithmetic: refill since the last count (at most one token), then take one
/// or say how long until there is one.
fn take(b: &mut Bucket, now: u64, rate_per_ms: f64) -> Option<Duration> {
    if now < b.paused_until_ms {
        return Some(Duration::from_millis(b.paused_until_ms - now));
    }
    let elapsed = now.saturating_sub(b.at_ms) as f64;
    b.tokens = (b.tokens + elapsed * rate_per_ms).min(1.0);
    b.at_ms = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        None
    } else {
        let ms = ((1.0 - b.tokens) / rate_per_ms).ceil() as u64;
        Some(Duration::from_millis(ms.max(1)))
    }
}

fn read_bucket(file: &mut File) -> Option<Bucket> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    let mut parts = text.split_whitespace();
    Some(Bucket {
        tokens: parts.next()?.parse().ok()?,
        at_ms: parts.next()?.parse().ok()?,
        paused_until_ms: parts.next()?.parse().ok()?,
    })
}

fn write_bucket(file: &mut File, b: &Bucket) -> std::io::Result<()> {
    let text = format!("{} {} {}\n", b.tokens, b.at_ms, b.paused_until_ms);
    file.seek(SeekFrom::Start(0))?;
    file.set_len(0)?;
    file.write_all(text.as_bytes())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_sixty_second_window_holds_more_than_the_limit() {
        // Greedy takers at every millisecond for five minutes of simulated time.
        let limit = 100u32;
        let rate = (limit - 1) as f64 / 60_000.0;
        let mut b = Bucket {
            tokens: 1.0,
            at_ms: 0,
            paused_until_ms: 0,
        };
        let mut sent = Vec::new();
        for now in 0..300_000u64 {
            if take(&mut b, now, rate).is_none() {
                sent.push(now);
            }
        }
        let max_window = sent
            .iter()
            .enumerate()
            .map(|(i, &t)| sent[i..].iter().take_while(|&&u| u < t + 60_000).count())
            .max()
            .unwrap();
        assert!(max_window <= limit as usize, "{max_window} in a window");
        assert!(
            max_window >= limit as usize - 1,
            "and close to it: {max_window}"
        );
    }

    #[test]
    fn a_pause_holds_everyone_back() {
        let mut b = Bucket {
            tokens: 1.0,
            at_ms: 0,
            paused_until_ms: 5_000,
        };
        assert_eq!(take(&mut b, 1_000, 1.0), Some(Duration::from_millis(4_000)));
        assert_eq!(take(&mut b, 5_000, 1.0), None);
    }

    #[test]
    fn two_limiters_on_one_file_share_the_bucket() {
        let d = tempfile::tempdir().unwrap();
        let a = RateLimiter::new(d.path(), "erp", 60).unwrap();
        let b = RateLimiter::new(d.path(), "erp", 60).unwrap();
        assert!(a.try_take(now_ms()).unwrap().is_none(), "the first token");
        assert!(
            b.try_take(now_ms()).unwrap().is_some(),
            "the other process must wait"
        );
    }
}
