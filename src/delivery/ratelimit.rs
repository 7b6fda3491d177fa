//! A target's rate limit, shared by every tallyman process that delivers to it.
//!
//! A token bucket lives in a small file under `work/ratelimit/`, read and updated under an
//! exclusive OS lock, so overlapping runs (a timer run and a manual `deliver`) together
//! stay within the limit; with a PostgreSQL ledger it is a row of the ledger instead
//! (ledger/buckets.rs), shared by the workers of every host. A bucket of `c` tokens
//! refilled at `limit − c` per minute lets no 60-second window hold more than `limit`
//! requests, which is what an ERP counting a sliding minute checks; `c` is 1/200 of the
//! limit (at least 1), enough to absorb the senders' wake-up jitter so the limit is nearly
//! reached. A `Retry-After` from the target pauses the bucket for everyone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// The bucket's state as stored, in a file or a ledger row: tokens, when they were counted,
// paused until (µs since the epoch, or on the database's clock).
use crate::ledger::BucketState as Bucket;

pub struct RateLimiter {
    store: Store,
    per_minute: u32,
}

/// Where the buckets live: files in a folder (one host), or the shared ledger.
pub enum BucketPlace {
    Folder(PathBuf),
    Ledger(crate::ledger::Location),
}

impl BucketPlace {
    /// The place a configuration's workers share: the ledger's rows when it is PostgreSQL,
    /// else `work/ratelimit/`.
    pub fn of(cfg: &crate::config::Config) -> BucketPlace {
        match &cfg.paths.ledger_at {
            at @ crate::ledger::Location::Postgres { .. } => BucketPlace::Ledger(at.clone()),
            crate::ledger::Location::Sqlite(_) => {
                BucketPlace::Folder(cfg.paths.work.join("ratelimit"))
            }
        }
    }
}

impl std::fmt::Display for BucketPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BucketPlace::Folder(p) => write!(f, "{}", p.display()),
            BucketPlace::Ledger(at) => write!(f, "the ledger {}", at.shown()),
        }
    }
}

enum Store {
    File(PathBuf),
    Ledger(crate::ledger::SharedBucket),
}

/// Capacity and refill rate (tokens per µs) for a limit per minute.
fn shape(per_minute: u32) -> (f64, f64) {
    let capacity = (per_minute / 200).max(1);
    let rate = per_minute.saturating_sub(capacity).max(1) as f64 / 60_000_000.0;
    (capacity as f64, rate)
}

impl RateLimiter {
    pub fn new(dir: &Path, target: &str, per_minute: u32) -> std::io::Result<RateLimiter> {
        std::fs::create_dir_all(dir)?;
        Ok(RateLimiter {
            store: Store::File(dir.join(format!("{target}.bucket"))),
            per_minute: per_minute.max(1),
        })
    }

    /// The limiter of `target` whose bucket is at `place`.
    pub fn at(place: &BucketPlace, target: &str, per_minute: u32) -> std::io::Result<RateLimiter> {
        match place {
            BucketPlace::Folder(dir) => RateLimiter::new(dir, target, per_minute),
            BucketPlace::Ledger(at) => Ok(RateLimiter {
                store: Store::Ledger(
                    crate::ledger::SharedBucket::open(at, target).map_err(std::io::Error::other)?,
                ),
                per_minute: per_minute.max(1),
            }),
        }
    }

    /// Waits until a request may be sent (or `stop` says to give up: then false).
    pub fn acquire(&self, stop: &dyn Fn() -> bool) -> std::io::Result<bool> {
        loop {
            let wait = self.try_take()?;
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
            b.paused_until_us = b.paused_until_us.max(now + d.as_micros() as u64);
            None::<()>
        })?;
        Ok(())
    }

    /// Takes a token now, or says how long to wait for one.
    fn try_take(&self) -> std::io::Result<Option<Duration>> {
        let (capacity, rate) = shape(self.per_minute);
        // The clock is read under the lock: a stale reading would move the count backwards.
        Ok(self
            .with_bucket(|b, now| take(b, now, capacity, rate))?
            .flatten())
    }

    fn with_bucket<T>(&self, f: impl FnOnce(&mut Bucket, u64) -> T) -> std::io::Result<Option<T>> {
        let path = match &self.store {
            Store::File(path) => path,
            Store::Ledger(shared) => {
                return shared
                    .with(|b, now| Some(f(b, now)))
                    .map_err(std::io::Error::other);
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        file.lock()?;
        let now = now_us();
        let mut b = read_bucket(&mut file).unwrap_or(Bucket {
            tokens: 1.0,
            at_us: now,
            paused_until_us: 0,
        });
        let out = f(&mut b, now);
        write_bucket(&mut file, &b)?;
        Ok(Some(out))
    }
}

/// The bucket arithmetic: refill since the last count (up to `capacity`), then take a
/// token or say how long until there is one.
fn take(b: &mut Bucket, now: u64, capacity: f64, rate_per_us: f64) -> Option<Duration> {
    if now < b.paused_until_us {
        return Some(Duration::from_micros(b.paused_until_us - now));
    }
    let elapsed = now.saturating_sub(b.at_us) as f64;
    b.tokens = (b.tokens + elapsed * rate_per_us).min(capacity);
    b.at_us = now.max(b.at_us);
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        None
    } else {
        let us = ((1.0 - b.tokens) / rate_per_us).ceil() as u64;
        Some(Duration::from_micros(us.max(1)))
    }
}

fn read_bucket(file: &mut File) -> Option<Bucket> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    let mut parts = text.split_whitespace();
    Some(Bucket {
        tokens: parts.next()?.parse().ok()?,
        at_us: parts.next()?.parse().ok()?,
        paused_until_us: parts.next()?.parse().ok()?,
    })
}

fn write_bucket(file: &mut File, b: &Bucket) -> std::io::Result<()> {
    let text = format!("{} {} {}\n", b.tokens, b.at_us, b.paused_until_us);
    file.seek(SeekFrom::Start(0))?;
    file.set_len(0)?;
    file.write_all(text.as_bytes())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Greedy takers at every millisecond for five minutes: the busiest 60-second window.
    fn busiest_window(limit: u32) -> usize {
        let (capacity, rate) = shape(limit);
        let mut b = Bucket {
            tokens: capacity,
            at_us: 0,
            paused_until_us: 0,
        };
        let mut sent = Vec::new();
        for ms in 0..300_000u64 {
            while take(&mut b, ms * 1000, capacity, rate).is_none() {
                sent.push(ms);
            }
        }
        let (mut most, mut end) = (0, 0);
        for (start, &t) in sent.iter().enumerate() {
            while end < sent.len() && sent[end] < t + 60_000 {
                end += 1;
            }
            most = most.max(end - start);
        }
        most
    }

    #[test]
    fn no_sixty_second_window_holds_more_than_the_limit() {
        for limit in [1u32, 60, 100, 6000] {
            let most = busiest_window(limit);
            assert!(most <= limit as usize, "limit {limit}: {most} in a window");
            assert!(
                most as f64 >= limit as f64 * 0.99 - 1.0,
                "and close to it: {most}"
            );
        }
    }

    #[test]
    fn a_pause_holds_everyone_back() {
        let mut b = Bucket {
            tokens: 1.0,
            at_us: 0,
            paused_until_us: 5_000_000,
        };
        assert_eq!(
            take(&mut b, 1_000_000, 1.0, 1.0),
            Some(Duration::from_secs(4))
        );
        assert_eq!(take(&mut b, 5_000_000, 1.0, 1.0), None);
    }

    #[test]
    fn two_limiters_on_one_file_share_the_bucket() {
        let d = tempfile::tempdir().unwrap();
        let a = RateLimiter::new(d.path(), "erp", 60).unwrap();
        let b = RateLimiter::new(d.path(), "erp", 60).unwrap();
        assert!(a.try_take().unwrap().is_none(), "the first token");
        assert!(
            b.try_take().unwrap().is_some(),
            "the other process must wait"
        );
    }

    #[test]
    fn limiters_of_two_hosts_share_the_bucket_in_a_postgresql_ledger() {
        let p = crate::ledger::testplace::Place::postgres();
        drop(p.open()); // creates the tables
        let place = BucketPlace::Ledger(p.at.clone());
        let a = RateLimiter::at(&place, "erp", 60).unwrap();
        let b = RateLimiter::at(&place, "erp", 60).unwrap();
        assert!(a.try_take().unwrap().is_none(), "the first token");
        assert!(b.try_take().unwrap().is_some(), "the other host must wait");
        // Greedy takers on both for a second and a half at 600 a minute (10 a second, one
        // in the bucket): together they get what one would.
        let fast = BucketPlace::Ledger(p.at.clone());
        let (a, b) = (
            RateLimiter::at(&fast, "fast", 600).unwrap(),
            RateLimiter::at(&fast, "fast", 600).unwrap(),
        );
        let end = std::time::Instant::now() + Duration::from_millis(1500);
        let n = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for l in [&a, &b] {
                let n = &n;
                s.spawn(move || {
                    while l.acquire(&|| std::time::Instant::now() >= end).unwrap() {
                        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        let n = n.into_inner();
        assert!((10..=18).contains(&n), "{n} tokens in 1.5 s at 10 a second");
    }

    #[test]
    #[ignore]
    fn measure_limiter_throughput() {
        let d = tempfile::tempdir().unwrap();
        let l = RateLimiter::new(d.path(), "erp", 6000).unwrap();
        let start = std::time::Instant::now();
        let n = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    while n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 1000 {
                        l.acquire(&|| false).unwrap();
                    }
                });
            }
        });
        eprintln!("1000 tokens in {:?}", start.elapsed());
    }
}
