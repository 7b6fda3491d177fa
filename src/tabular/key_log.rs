//! The closed group keys of a CSV file as it is read, kept in a file beside the file's
//! staged output, so that a resumed read loads them instead of passing over the committed
//! part again.
//!
//! A restarted reader must know every group key closed before its mark: a key that comes
//! back after its group closed is `group-split`. Without this log it finds them by scanning
//! the committed part (`CsvRows::skip_to`), which was 81 ms of a 50 MB file's 0.28 s resume
//! and grows with the file. Writing the whole set with every mark would write up to a
//! million hashes per batch; instead, at each mark the log appends the hashes of the groups
//! closed before it since the mark before, and the mark records how many hashes precede it
//! and a checksum of them. The hashes are appended before the batch that carries the mark
//! is committed, so a committed mark never counts more than the file holds unless the
//! machine lost unsynced pages; the checksum notices that (or any other damage), and the
//! reader scans as before. Hashes past the mark (a batch written but not committed) are cut
//! off at the first write after the restart, not at the restart itself: the file stays
//! whole until this reader writes its own.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// Bytes per hash in the file (a `u128`, little-endian).
const ENTRY: u64 = 16;

/// The keys log of one reader (inactive until [`KeyLog::keep_in`] names its file).
#[derive(Default)]
pub(crate) struct KeyLog {
    path: Option<PathBuf>,
    /// Open once the first mark wrote to it, or a restart loaded from it.
    file: Option<File>,
    /// Hashes a mark given now would count.
    count: u64,
    /// Checksum of those `count` hashes.
    sum: blake3::Hasher,
    /// Closed since the last mark, as `(seq of the group's unit, hash)`, in seq order.
    pending: Vec<(u64, u128)>,
    /// A write failed: no later mark counts on the log (a resume then scans).
    broken: bool,
    /// The file may hold hashes past `count` (it was loaded at a restart).
    cut: bool,
}

/// What a mark records of the log: the hashes before it and their checksum (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogMark {
    pub count: u64,
    pub sum: String,
}

impl KeyLog {
    /// Keeps the log in `path` from now on.
    pub fn keep_in(&mut self, path: PathBuf) {
        self.path = Some(path);
    }

    /// Whether hashes are kept (a file is named and no write failed).
    pub fn active(&self) -> bool {
        self.path.is_some() && !self.broken
    }

    /// A group of unit `seq` closed with key hash `hash` (once per key).
    pub fn note(&mut self, seq: u64, hash: u128) {
        if self.active() {
            self.pending.push((seq, hash));
        }
    }

    /// Writes the hashes of groups before unit `seq` and says what a mark there records;
    /// `None` when the log is inactive or the write failed.
    pub fn mark_before(&mut self, seq: u64) -> Option<LogMark> {
        if !self.active() {
            return None;
        }
        let n = self.pending.partition_point(|&(s, _)| s < seq);
        let bytes: Vec<u8> = self.pending[..n]
            .iter()
            .flat_map(|&(_, h)| h.to_le_bytes())
            .collect();
        if let Err(e) = self.append(&bytes) {
            tracing::warn!("the closed group keys could not be kept for a resume ({e}); a resume will scan the file instead");
            self.broken = true;
            self.pending = Vec::new();
            return None;
        }
        self.pending.drain(..n);
        self.sum.update(&bytes);
        self.count += n as u64;
        Some(self.log_mark())
    }

    fn log_mark(&self) -> LogMark {
        LogMark {
            count: self.count,
            sum: self.sum.finalize().to_hex()[..32].to_string(),
        }
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            let path = self.path.as_ref().expect("active");
            self.file = Some(crate::fsutil::open_private_creating_dir(path, true)?);
        }
        let file = self.file.as_mut().expect("opened");
        if std::mem::take(&mut self.cut) {
            file.set_len(self.count * ENTRY)?;
            file.seek(SeekFrom::Start(self.count * ENTRY))?;
        }
        file.write_all(bytes)
    }

    /// The `mark.count` hashes a mark recorded, if the file still holds them as they were;
    /// the log then continues from there. At most `max` are read: a mark counting more was
    /// not written by this reader.
    pub fn load(&mut self, mark: &LogMark, max: u64) -> Option<Vec<u128>> {
        if !self.active() || mark.count > max {
            return None;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path.as_ref()?)
            .ok()?;
        let len = usize::try_from(mark.count * ENTRY).ok()?;
        let mut bytes = vec![0u8; len];
        file.read_exact(&mut bytes).ok()?;
        let mut sum = blake3::Hasher::new();
        sum.update(&bytes);
        let loaded = LogMark {
            count: mark.count,
            sum: sum.finalize().to_hex()[..32].to_string(),
        };
        if loaded != *mark {
            return None;
        }
        (self.file, self.count, self.sum, self.cut) = (Some(file), mark.count, sum, true);
        self.pending.clear();
        let hashes = bytes
            .chunks_exact(ENTRY as usize)
            .map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes")))
            .collect();
        Some(hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_in(dir: &tempfile::TempDir) -> KeyLog {
        let mut log = KeyLog::default();
        log.keep_in(dir.path().join("staging").join("keys"));
        log
    }

    #[test]
    fn a_mark_counts_only_the_groups_before_it_and_a_restart_gets_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_in(&dir);
        log.note(0, 10);
        log.note(1, 11);
        log.note(2, 12);
        let first = log.mark_before(2).unwrap();
        assert_eq!(first.count, 2);
        log.note(3, 13);
        let second = log.mark_before(4).unwrap();
        assert_eq!(second.count, 4);

        let mut again = log_in(&dir);
        assert_eq!(again.load(&first, 100), Some(vec![10, 11]));
        // Loading cuts nothing: the later mark still finds its hashes.
        let mut later = log_in(&dir);
        assert_eq!(later.load(&second, 100), Some(vec![10, 11, 12, 13]));
        // The first restart's own writes replace what followed its mark.
        again.note(2, 22);
        let third = again.mark_before(3).unwrap();
        assert_eq!(third.count, 3);
        assert_eq!(log_in(&dir).load(&third, 100), Some(vec![10, 11, 22]));
        assert_eq!(log_in(&dir).load(&second, 100), None, "overwritten");
    }

    #[test]
    fn a_damaged_short_or_foreign_log_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_in(&dir);
        for s in 0..4 {
            log.note(s, u128::from(s) << 100);
        }
        let mark = log.mark_before(4).unwrap();
        let path = dir.path().join("staging").join("keys");
        assert!(log_in(&dir).load(&mark, 4).is_some());
        assert!(log_in(&dir).load(&mark, 3).is_none(), "more than the cap");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(log_in(&dir).load(&mark, 4).is_none(), "damaged");
        std::fs::write(&path, &bytes[..40]).unwrap();
        assert!(log_in(&dir).load(&mark, 4).is_none(), "short");
        std::fs::remove_file(&path).unwrap();
        assert!(log_in(&dir).load(&mark, 4).is_none(), "missing");
        assert!(KeyLog::default().load(&mark, 4).is_none(), "no file named");
    }

    #[test]
    fn without_a_file_nothing_is_kept_and_no_mark_counts() {
        let mut log = KeyLog::default();
        log.note(0, 1);
        assert!(log.pending.is_empty());
        assert_eq!(log.mark_before(1), None);
    }

    #[test]
    fn a_failed_write_stops_the_log_instead_of_failing_the_read() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the log's folder should be: it cannot be created.
        std::fs::write(dir.path().join("staging"), b"").unwrap();
        let mut log = log_in(&dir);
        log.note(0, 1);
        assert_eq!(log.mark_before(1), None);
        log.note(1, 2);
        assert_eq!(log.mark_before(2), None);
        assert!(!log.active() && log.pending.is_empty());
    }
}
