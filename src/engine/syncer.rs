//! Syncing staged chunks to disk beside the work instead of in its way.
//!
//! A batch's outbox chunk used to be synced before the batch's ledger transaction
//! committed, so the committing thread waited for the disk twice per batch, for the chunk
//! and for its folder (with every fsync 2 ms slower, as on network block storage, that was
//! two fifths of a 30 MB X12 run; on a local disk, with both cores busy, next to nothing).
//! Now the chunk is written and renamed into place, its length and CRC-32 go into the
//! batch's transaction, and this thread syncs the file and its folder while the next
//! batches are read and committed. Each batch records how far the syncing got
//! (`files.synced_chunk`): every chunk below that mark is on disk. A process that dies
//! leaves nothing to fear, the page cache keeps what it wrote; a power loss may cut short
//! or zero a chunk above the mark, which a resumed file finds by its check and writes again
//! (`Sink::confirm`, then a read from the top or `rebuild_chunk` at publish). A file is
//! published only after all its chunks are synced ([`Syncer::drain`]), so nothing in the
//! outbox ever depends on an unsynced page.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{io_err, Engine, Result};
use crate::ledger::{FileRow, FileState};
use crate::sink::Sink;

/// One batch's chunks of one file.
struct Job {
    file_id: i64,
    chunk: i64,
    files: Vec<File>,
    dir: Option<PathBuf>,
}

#[derive(Default)]
struct State {
    /// Jobs sent and not done yet.
    pending: usize,
    /// Per file: every chunk numbered below this is synced (jobs are done in order).
    synced: HashMap<i64, i64>,
    /// Per file: the first sync that failed. The mark stops there, and the file's next
    /// question gets the error until the file is taken up again.
    failed: HashMap<i64, String>,
    /// The thread ended with jobs left (only a bug can do that): nothing is known synced.
    stopped: bool,
}

impl State {
    fn record(&mut self, job: &Job, result: io::Result<()>) {
        self.pending -= 1;
        match result {
            Ok(()) if !self.failed.contains_key(&job.file_id) => {
                self.synced.insert(job.file_id, job.chunk + 1);
            }
            Ok(()) => {}
            Err(e) => {
                self.failed.entry(job.file_id).or_insert(e.to_string());
            }
        }
    }

    fn failure(&self, file_id: i64) -> io::Result<()> {
        match self.failed.get(&file_id) {
            Some(e) => Err(io::Error::other(format!("syncing a staged chunk: {e}"))),
            None if self.stopped => Err(io::Error::other(
                "the thread syncing staged chunks stopped unexpectedly",
            )),
            None => Ok(()),
        }
    }
}

/// The thread that syncs staged chunks, in the order they were staged.
pub(super) struct Syncer {
    jobs: Option<mpsc::Sender<Job>>,
    state: Arc<(Mutex<State>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    pub fn start() -> io::Result<Syncer> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("tallyman-sync".into())
            .spawn(move || {
                for job in rx {
                    let result = sync(&job);
                    let (lock, done) = &*shared;
                    lock_state(lock).record(&job, result);
                    done.notify_all();
                }
            })?;
        Ok(Syncer {
            jobs: Some(jobs),
            state,
            thread: Some(thread),
        })
    }

    /// Queues chunk `chunk` of a file (its staged files, then their folder) for syncing.
    pub fn submit(&self, file_id: i64, chunk: i64, files: Vec<File>, dir: Option<PathBuf>) {
        if files.is_empty() {
            return;
        }
        lock_state(&self.state.0).pending += 1;
        let job = Job {
            file_id,
            chunk,
            files,
            dir,
        };
        if let Some(Err(mpsc::SendError(job))) = self.jobs.as_ref().map(|j| j.send(job)) {
            // The thread is gone (it cannot panic short of a bug): sync here instead.
            let result = sync(&job);
            lock_state(&self.state.0).record(&job, result);
        }
    }

    /// Starts a file afresh: what an earlier attempt at it in this process left (a mark,
    /// a failure) is forgotten once every queued job is done.
    pub fn begin(&self, file_id: i64) {
        let mut st = self.wait_idle();
        st.synced.remove(&file_id);
        st.failed.remove(&file_id);
    }

    /// The number below which every chunk of the file is synced, given that `next` is the
    /// number of the next chunk it will stage and `from` the mark it started with; an
    /// error if a sync failed.
    pub fn synced(&self, file_id: i64, from: i64, next: i64) -> io::Result<i64> {
        let st = lock_state(&self.state.0);
        st.failure(file_id)?;
        Ok(match st.pending {
            0 => next,
            _ => st.synced.get(&file_id).copied().unwrap_or(from).max(from),
        })
    }

    /// Waits until every chunk queued is synced; an error if one of the file's failed.
    pub fn drain(&self, file_id: i64) -> io::Result<()> {
        self.wait_idle().failure(file_id)
    }

    /// Waits until no job is pending. A thread that died with jobs left would keep that
    /// wait from ever ending: it is looked for every half second.
    fn wait_idle(&self) -> MutexGuard<'_, State> {
        let (lock, done) = &*self.state;
        let mut st = lock_state(lock);
        while st.pending > 0 {
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                st.stopped = true;
                st.pending = 0;
                break;
            }
            st = done
                .wait_timeout(st, Duration::from_millis(500))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Engine {
    /// Before a file is taken up again: the chunks its batches committed while their sync
    /// was under way are checked against what was staged. A process that died left them
    /// whole in the page cache, and they are synced now; one a power loss cut short or
    /// zeroed is removed, so it counts as vanished and is written again (read again before
    /// the decision, rebuilt at publish after it).
    pub(super) fn confirm_staged(&self, row: &FileRow) -> Result<()> {
        let Some(from) = row.synced_chunk.filter(|&s| s < row.next_chunk) else {
            return Ok(());
        };
        if !matches!(row.state, FileState::Reading | FileState::Publishing) {
            return Ok(());
        }
        let mut torn = Vec::new();
        for c in self
            .ledger
            .chunks(row.id)?
            .iter()
            .filter(|c| c.chunk >= from)
        {
            if !self
                .outbox
                .confirm(c)
                .map_err(io_err("checking a staged chunk"))?
            {
                torn.push(c.staged_path.as_str().to_owned());
            }
        }
        if !torn.is_empty() {
            let msg = format!(
                "{} staged outbox chunk(s) committed before they reached the disk no longer hold what was staged (a power loss?); removed, to be written again: {}",
                torn.len(),
                torn.join(", ")
            );
            self.note(row.run_id, "warn", row, &msg)?;
        }
        Ok(())
    }
}

fn sync(job: &Job) -> io::Result<()> {
    for f in &job.files {
        f.sync_all()?;
    }
    match &job.dir {
        Some(dir) => crate::fsutil::fsync_dir(dir),
        None => Ok(()),
    }
}

fn lock_state(lock: &Mutex<State>) -> MutexGuard<'_, State> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(dir: &std::path::Path, name: &str) -> File {
        let path = dir.join(name);
        std::fs::write(&path, name).unwrap();
        File::open(path).unwrap()
    }

    #[test]
    fn the_mark_follows_the_jobs_done_and_is_the_next_chunk_when_none_is_pending() {
        let d = tempfile::tempdir().unwrap();
        let s = Syncer::start().unwrap();
        assert_eq!(s.synced(7, 3, 3).unwrap(), 3, "nothing staged: all synced");
        s.submit(7, 3, vec![staged(d.path(), "a")], Some(d.path().into()));
        s.submit(7, 4, vec![staged(d.path(), "b")], Some(d.path().into()));
        let mark = s.synced(7, 3, 5).unwrap();
        assert!((3..=5).contains(&mark), "{mark}");
        s.drain(7).unwrap();
        assert_eq!(s.synced(7, 3, 5).unwrap(), 5);
        // A batch without records queues nothing and moves nothing.
        s.submit(7, 5, vec![], None);
        assert_eq!(s.synced(7, 3, 6).unwrap(), 6);
    }

    #[test]
    fn a_failed_sync_stops_the_files_mark_and_is_told_until_the_file_is_taken_again() {
        let d = tempfile::tempdir().unwrap();
        let s = Syncer::start().unwrap();
        let gone = d.path().join("gone");
        s.submit(1, 0, vec![staged(d.path(), "a")], Some(gone));
        s.submit(1, 1, vec![staged(d.path(), "b")], Some(d.path().into()));
        s.submit(2, 0, vec![staged(d.path(), "c")], Some(d.path().into()));
        let err = s.drain(1).unwrap_err();
        assert!(err.to_string().contains("syncing a staged chunk"), "{err}");
        assert!(s.synced(1, 0, 2).is_err(), "told again");
        assert!(s.drain(1).is_err());
        s.drain(2).unwrap();
        assert_eq!(s.synced(2, 0, 1).unwrap(), 1, "another file's are its own");
        s.begin(1);
        assert_eq!(s.synced(1, 2, 2).unwrap(), 2);
        s.drain(1).unwrap();
    }
}
