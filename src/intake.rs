//! Intake: which files in the inbox are complete, what their content fingerprint is, and
//! which process owns them.
//!
//! A file is taken only when it is complete: announced by a `NAME.done` marker, or with a
//! size and modification time that have not changed for the settle time (a file renamed in
//! keeps its old mtime, so it is taken at once). Hidden, `*.tmp` and `*.part` names are
//! never taken. Files are claimed by content (blake3), and ownership is an OS file lock on
//! `work/locks/<fingerprint>.lock`: the kernel releases it when the owner dies, so a killed
//! run never leaves a stale claim behind, and two processes never work on the same content.
//! A file that some process still has open for writing is not taken either, where the OS
//! can tell cheaply (a stalled upload whose connection is still open), and names are kept
//! as the bytes they were received as.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::IntakeConfig;
use crate::format::glob_match;

/// A complete file found in the inbox.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: PathBuf,
    /// The name for people and the ledger (lossy where the bytes are not UTF-8).
    pub name: String,
    /// The name as received, byte for byte.
    pub os_name: OsString,
    pub size: u64,
    pub mtime: SystemTime,
    /// The `NAME.done` marker that announced it, if any (removed once claimed).
    pub marker: Option<PathBuf>,
}

/// Names that are never input: hidden files, partial uploads, markers.
pub fn is_ignored(name: &str, extra: &[String]) -> bool {
    name.starts_with('.')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with(".done")
        || name.ends_with('~')
        || extra.iter().any(|g| glob_match(g, name))
}

/// What a scan of the inbox found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Complete files, oldest first (then by name).
    pub candidates: Vec<Candidate>,
    /// `NAME.done` markers whose file is not there, with how long they have waited.
    pub lonely_markers: Vec<(String, Duration)>,
    /// Settled files that a process still has open for writing.
    pub still_open: Vec<String>,
}

/// Lists the complete files of `inbox`.
pub fn scan(inbox: &Path, cfg: &IntakeConfig, now: SystemTime) -> io::Result<Scan> {
    let mut out = Scan::default();
    for entry in fs::read_dir(inbox)? {
        let entry = entry?;
        let os_name = entry.file_name();
        let name = os_name.to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".done") {
            note_marker(inbox, &entry, base, now, &mut out);
            continue;
        }
        if is_ignored(&name, &cfg.ignore) {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) if m.is_file() => m,
            _ => continue,
        };
        let mtime = meta.modified().unwrap_or(now);
        let mut marker_name = os_name.clone();
        marker_name.push(".done");
        let marker = inbox.join(marker_name);
        let marker = marker.exists().then_some(marker);
        let settled = now
            .duration_since(mtime)
            .map(|age| age >= Duration::from_secs(cfg.settle_seconds))
            .unwrap_or(cfg.settle_seconds == 0);
        if marker.is_none() && !settled {
            continue;
        }
        if crate::fsutil::open_for_writing(&entry.path()) == Some(true) {
            out.still_open.push(name);
            continue;
        }
        out.candidates.push(Candidate {
            path: entry.path(),
            name,
            os_name,
            size: meta.len(),
            mtime,
            marker,
        });
    }
    out.candidates
        .sort_by(|a, b| a.mtime.cmp(&b.mtime).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

fn note_marker(inbox: &Path, entry: &fs::DirEntry, base: &str, now: SystemTime, out: &mut Scan) {
    if inbox.join(base).exists() || base.starts_with('.') {
        return;
    }
    let age = entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .unwrap_or_default();
    out.lonely_markers
        .push((entry.file_name().to_string_lossy().into_owned(), age));
}

/// A candidate for a file inside the inbox named by an operator (`tallyman process`).
pub fn candidate_at(path: &Path) -> io::Result<Candidate> {
    let meta = fs::metadata(path)?;
    let os_name = path.file_name().unwrap_or_default().to_os_string();
    let mut marker_name = os_name.clone();
    marker_name.push(".done");
    let marker = path.with_file_name(marker_name);
    Ok(Candidate {
        path: path.to_path_buf(),
        name: os_name.to_string_lossy().into_owned(),
        os_name,
        size: meta.len(),
        mtime: meta.modified()?,
        marker: marker.exists().then_some(marker),
    })
}

/// A file's modification time in nanoseconds since the epoch (0 if unknown).
pub fn mtime_ns(path: &Path) -> io::Result<i64> {
    let m = fs::metadata(path)?.modified()?;
    Ok(m.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0))
}

/// True if the file still has the size and mtime it had when scanned (it did not change
/// while we hashed it).
pub fn unchanged(c: &Candidate) -> bool {
    match fs::metadata(&c.path) {
        Ok(m) => m.len() == c.size && m.modified().ok() == Some(c.mtime),
        Err(_) => false,
    }
}

/// blake3 of a file's content, streamed, with its size.
pub fn fingerprint(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hasher.finalize().to_hex().to_string(), size))
}

/// An exclusive claim on a fingerprint, held until dropped (or the process dies).
#[derive(Debug)]
pub struct Claim {
    file: File,
    path: PathBuf,
    pub fingerprint: String,
}

impl Claim {
    /// Lets go and removes the lock file, for content that is finished: one lock file per
    /// input ever taken would otherwise pile up in `work/locks`. The file is removed while
    /// the lock is held, and a claimer checks after locking that the file it locked is
    /// still the one at the path, so a claimer that opened it before the removal starts
    /// over instead of holding a lock nobody else can see.
    pub fn release(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// Tries to claim `fingerprint`; `Ok(None)` if another live process holds it.
pub fn try_claim(locks: &Path, fingerprint: &str) -> io::Result<Option<Claim>> {
    fs::create_dir_all(locks)?;
    let path = locks.join(format!("{fingerprint}.lock"));
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        if is_at(&file, &path)? {
            return Ok(Some(Claim {
                file,
                path,
                fingerprint: fingerprint.to_string(),
            }));
        }
        // Removed by a holder letting go between our open and our lock: start over.
    }
}

/// Whether `file` is (still) the file at `path`.
fn is_at(file: &File, path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let held = file.metadata()?;
        match fs::metadata(path) {
            Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_hidden_partial_and_markers() {
        for n in [".x.csv", "a.tmp", "a.part", "a.csv.done", "a.csv~"] {
            assert!(is_ignored(n, &[]), "{n}");
        }
        assert!(!is_ignored("orders.csv", &[]));
        assert!(is_ignored("orders.bak", &["*.bak".into()]));
    }

    #[test]
    fn settle_time_and_markers_decide_completeness() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("fresh.csv"), "a").unwrap();
        fs::write(d.path().join("marked.csv"), "a").unwrap();
        fs::write(d.path().join("marked.csv.done"), "").unwrap();
        let cfg = IntakeConfig {
            settle_seconds: 3600,
            ignore: vec![],
        };
        let now = SystemTime::now();
        let names: Vec<String> = scan(d.path(), &cfg, now)
            .unwrap()
            .candidates
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, vec!["marked.csv"]);
        let later = now + Duration::from_secs(7200);
        assert_eq!(scan(d.path(), &cfg, later).unwrap().candidates.len(), 2);
    }

    #[test]
    fn regression_a_marker_without_its_file_is_reported() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("gone.csv.done"), "").unwrap();
        let cfg = IntakeConfig {
            settle_seconds: 0,
            ignore: vec![],
        };
        let s = scan(d.path(), &cfg, SystemTime::now()).unwrap();
        assert!(s.candidates.is_empty());
        assert_eq!(s.lonely_markers.len(), 1);
        assert_eq!(s.lonely_markers[0].0, "gone.csv.done");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn regression_a_settled_file_still_open_for_writing_is_not_taken() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("stalled-upload.csv");
        let mut w = File::create(&p).unwrap();
        std::io::Write::write_all(&mut w, b"order_no\n").unwrap();
        let cfg = IntakeConfig {
            settle_seconds: 0,
            ignore: vec![],
        };
        let s = scan(d.path(), &cfg, SystemTime::now() + Duration::from_secs(60)).unwrap();
        if crate::fsutil::open_for_writing(&p).is_none() {
            return; // the OS cannot tell here; the check before the decision covers it
        }
        assert!(s.candidates.is_empty(), "{s:?}");
        assert_eq!(s.still_open, vec!["stalled-upload.csv".to_string()]);
        drop(w);
        let s = scan(d.path(), &cfg, SystemTime::now() + Duration::from_secs(60)).unwrap();
        assert_eq!(s.candidates.len(), 1);
    }

    #[test]
    fn a_released_claim_leaves_no_lock_file_and_can_be_claimed_again() {
        let d = tempfile::tempdir().unwrap();
        let a = try_claim(d.path(), "abc").unwrap().unwrap();
        // Opened before the release, locked after it: must not count as a claim.
        let stale = OpenOptions::new()
            .write(true)
            .open(d.path().join("abc.lock"))
            .unwrap();
        a.release();
        assert!(!d.path().join("abc.lock").exists());
        stale.try_lock().unwrap();
        assert!(!is_at(&stale, &d.path().join("abc.lock")).unwrap());
        let b = try_claim(d.path(), "abc").unwrap();
        assert!(b.is_some(), "claimable again");
        assert!(try_claim(d.path(), "abc").unwrap().is_none());
    }

    #[test]
    fn claim_is_exclusive_until_dropped() {
        let d = tempfile::tempdir().unwrap();
        let a = try_claim(d.path(), "abc").unwrap();
        assert!(a.is_some());
        assert!(try_claim(d.path(), "abc").unwrap().is_none());
        drop(a);
        assert!(try_claim(d.path(), "abc").unwrap().is_some());
    }

    #[test]
    fn fingerprint_is_content_based() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a"), "same").unwrap();
        fs::write(d.path().join("b"), "same").unwrap();
        assert_eq!(
            fingerprint(&d.path().join("a")).unwrap(),
            fingerprint(&d.path().join("b")).unwrap()
        );
    }
}
