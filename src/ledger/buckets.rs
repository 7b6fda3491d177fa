//! A target's rate-limit bucket as a row of a PostgreSQL ledger, so workers on several
//! hosts — a relay on one, a reconciliation on another, a relay taken over mid-minute —
//! stay within the target's limit together. On one host the bucket is a file under each
//! `work/` (delivery/ratelimit.rs), and the relay lease keeps one relay per target.
//!
//! Each take is one short transaction that locks the target's row (`FOR UPDATE`, not the
//! ledger's writer lock: taking tokens never waits for a batch commit) and reads the
//! database's clock, so hosts whose clocks disagree still count one time. It commits
//! without waiting for the WAL flush: a bucket state lost in a crash costs a few tokens,
//! never a record.

use std::sync::Mutex;

use super::db::{params, Connection, TransactionBehavior};
use super::{LedgerError, Location, Result};

/// A bucket's state: tokens, when they were counted and until when everyone pauses
/// (microseconds on the database's clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketState {
    pub tokens: f64,
    pub at_us: u64,
    pub paused_until_us: u64,
}

/// The bucket of one target, on a connection of its own (shared by the relay's senders).
pub struct SharedBucket {
    conn: Mutex<Connection>,
    target: String,
}

impl SharedBucket {
    /// The bucket of `target` in the PostgreSQL ledger at `at`.
    pub fn open(at: &Location, target: &str) -> Result<SharedBucket> {
        if matches!(at, Location::Sqlite(_)) {
            return Err(LedgerError::Unsupported(
                "a shared rate-limit bucket needs a PostgreSQL ledger",
            ));
        }
        Ok(SharedBucket {
            conn: Mutex::new(at.connect()?),
            target: target.to_owned(),
        })
    }

    /// Runs `f` on the bucket's state and the database's time, under the row's lock, and
    /// stores what it leaves.
    pub fn with<T>(&self, f: impl FnOnce(&mut BucketState, u64) -> T) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        tx.execute_batch("SET LOCAL synchronous_commit = off")?;
        tx.execute(
            "INSERT INTO rate_buckets(target, tokens, at_us, paused_until_us) VALUES (?1, 1.0, 0, 0) \
             ON CONFLICT (target) DO NOTHING",
            [&self.target],
        )?;
        let (mut state, now) = tx.query_row(
            "SELECT tokens, at_us, paused_until_us, \
             CAST(extract(epoch FROM clock_timestamp()) * 1000000 AS BIGINT) \
             FROM rate_buckets WHERE target = ?1 FOR UPDATE",
            [&self.target],
            |r| {
                Ok((
                    BucketState {
                        tokens: r.get(0)?,
                        at_us: r.get::<_, i64>(1)?.max(0) as u64,
                        paused_until_us: r.get::<_, i64>(2)?.max(0) as u64,
                    },
                    r.get::<_, i64>(3)?.max(0) as u64,
                ))
            },
        )?;
        let out = f(&mut state, now);
        tx.execute(
            "UPDATE rate_buckets SET tokens = ?2, at_us = ?3, paused_until_us = ?4 WHERE target = ?1",
            params![
                self.target,
                state.tokens,
                state.at_us as i64,
                state.paused_until_us as i64
            ],
        )?;
        tx.commit()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testplace::Place;
    use super::*;

    #[test]
    fn two_hosts_share_one_bucket_and_one_clock() {
        let p = Place::postgres();
        drop(p.open()); // creates the tables
        let (a, b) = (
            SharedBucket::open(&p.at, "erp").unwrap(),
            SharedBucket::open(&p.at, "erp").unwrap(),
        );
        let first = a
            .with(|s, now| {
                s.tokens = 0.0;
                s.at_us = now;
                now
            })
            .unwrap();
        let seen = b.with(|s, now| (*s, now)).unwrap();
        assert_eq!(seen.0.tokens, 0.0, "b sees what a left");
        assert_eq!(seen.0.at_us, first);
        assert!(seen.1 >= first, "one clock");
        assert!(SharedBucket::open(&Place::sqlite().at, "erp").is_err());
    }
}
