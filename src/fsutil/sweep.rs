//! Telling abandoned files from live ones: the start-up sweep of a killed run's
//! temporaries and the check whether someone still writes a file depend on OS locks,
//! process ids and leases, not on how files are written, so they live apart from the
//! write path.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{is_temporary, with_context};

/// Removes temporary files that a killed tallyman left in `dir` (and, with `depth` > 0,
/// in its subfolders). A temporary is left alone while its writer holds its lock, or while
/// its writer process is alive and the file is recent. Returns how many were removed.
pub fn sweep_temporaries(dir: &Path, depth: u32) -> io::Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(with_context(e, "reading", dir)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth > 0 {
            removed += sweep_temporaries(&path, depth - 1)?;
        } else if kind.is_file()
            && is_temporary(&entry.file_name().to_string_lossy())
            && abandoned(&path)
        {
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(with_context(e, "removing", &path)),
            }
        }
    }
    Ok(removed)
}

/// Whether nobody will ever finish this temporary file.
fn abandoned(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false; // renamed or removed meanwhile
    };
    if file.try_lock().is_err() {
        return false; // its writer is at work
    }
    let writer = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(".tallyman-"))
        .and_then(|n| n.split('-').next())
        .and_then(|p| p.parse::<u32>().ok());
    let old = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age > Duration::from_secs(600));
    match writer {
        // Between creating and locking its file a live writer holds no lock yet.
        Some(pid) if pid != std::process::id() => !process_alive(pid) || old,
        Some(_) => old,
        None => true,
    }
}

/// Whether a process with this pid exists on this machine.
pub fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks existence and permission; nothing is sent.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Whether some process has `path` open for writing, where the OS can tell cheaply:
/// `Some(true)` / `Some(false)` on Linux for files we may lease (local file systems, our
/// own files), `None` when it cannot tell (NFS, other owners, other systems).
pub fn open_for_writing(path: &Path) -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let file = File::open(path).ok()?;
        let fd = file.as_raw_fd();
        // SAFETY: plain fcntl calls on a descriptor we own. A read lease is refused with
        // EAGAIN while any descriptor on the file is open for writing; we drop it at once.
        let r = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
        if r == 0 {
            unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
            return Some(false);
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EBUSY) => Some(true),
            _ => None,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::Temp;

    #[test]
    fn sweep_removes_a_dead_writers_temporary_but_not_a_live_one() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("order");
        fs::create_dir_all(&sub).unwrap();
        // A dead writer: a child that has exited and been reaped, holding no lock.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let dead = sub.join(format!(".tallyman-{}-1.tmp", child.id()));
        fs::write(&dead, "complete chunk").unwrap();
        let legacy = d.path().join(".tmp-abc");
        fs::write(&legacy, "x").unwrap();
        // A live writer of this very process, holding its lock.
        let live = Temp::create(d.path()).unwrap();
        let other = d.path().join(".hidden-partner-file");
        fs::write(&other, "keep").unwrap();
        assert_eq!(sweep_temporaries(d.path(), 1).unwrap(), 2);
        assert!(!dead.exists() && !legacy.exists());
        assert!(live.path.exists(), "a live writer's file is kept");
        assert!(other.exists(), "only tallyman's temporaries are touched");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn open_for_writing_sees_a_writer_where_the_os_can_tell() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("upload.csv");
        let w = File::create(&p).unwrap();
        match open_for_writing(&p) {
            Some(open) => {
                assert!(open, "a writer holds it");
                drop(w);
                assert_eq!(open_for_writing(&p), Some(false));
            }
            None => eprintln!("leases unavailable here; the check falls back to re-hashing"),
        }
    }
}
