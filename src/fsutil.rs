//! Durable file operations: every file tallyman publishes is written to a temporary file
//! in the target folder, fsynced, renamed into place and the folder fsynced, so a reader
//! (or a crash) sees the old state or the new one, never half a file.
//!
//! Temporary files are hidden *and* end in `.tmp` (`.tallyman-<pid>-<n>.tmp`), so a
//! consumer that reads every file of an output folder still skips them, and their writer
//! holds an OS lock on them while writing: a sweep at start removes the ones whose writer
//! died (killed between writing and renaming) without touching a live writer's. Files are
//! created with the configured mode (see [`set_file_mode`]); PII must never be
//! world-readable, whatever the umask of the shell that started us.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Mode of every file tallyman writes (outbox, reports, acks, archived inputs, ledger).
static FILE_MODE: AtomicU32 = AtomicU32::new(0o640);
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Sets the mode of files written from now on (config `[permissions] file_mode`).
pub fn set_file_mode(mode: u32) {
    FILE_MODE.store(mode & 0o777, Ordering::Relaxed);
}

pub fn file_mode() -> u32 {
    FILE_MODE.load(Ordering::Relaxed)
}

/// Options that write a file, created with the configured file mode: a reader's restart
/// state (a CSV file's keys log, an X12 file's snapshots) holds business keys and partner
/// ids.
pub fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(file_mode());
    }
    o
}

/// Opens `path` for writing with [`private_options`], creating its folder first: each
/// reader's restart state is the first thing written in a file's staging folder, and
/// whichever writes first makes it. `truncate` drops what an earlier attempt left.
pub fn open_private_creating_dir(path: &Path, truncate: bool) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    private_options().truncate(truncate).open(path)
}

/// Sets the process umask so files created by libraries (SQLite's ledger, WAL and shm
/// files) and folders get no more than `dir_mode` allows. Unix only.
pub fn apply_umask(dir_mode: u32) {
    #[cfg(unix)]
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask((0o777 & !dir_mode) as libc::mode_t);
    }
    #[cfg(not(unix))]
    let _ = dir_mode;
}

/// Gives an existing file the configured mode (inputs moved in keep their sender's mode).
pub fn set_mode(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(file_mode()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Makes a rename or a new file in `dir` durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// True for the names of tallyman's temporary files (and those of older versions).
pub fn is_temporary(name: &str) -> bool {
    (name.starts_with(".tallyman-") && name.ends_with(".tmp")) || name.starts_with(".tmp-")
}

/// A temporary file in the destination folder, locked by its writer until dropped.
struct Temp {
    file: File,
    path: PathBuf,
    done: bool,
}

impl Temp {
    fn create(dir: &Path) -> io::Result<Temp> {
        fs::create_dir_all(dir)?;
        loop {
            let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".tallyman-{}-{n}.tmp", std::process::id()));
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(file_mode());
            }
            match opts.open(&path) {
                Ok(file) => {
                    // Held until the rename: a sweep never removes a live writer's file.
                    file.lock()?;
                    set_mode(&path)?;
                    return Ok(Temp {
                        file,
                        path,
                        done: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn persist(mut self, to: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        self.place(to)
    }

    /// Renames the file to `to`, where it stays (synced or not, as the caller made it).
    fn place(&mut self, to: &Path) -> io::Result<()> {
        fs::rename(&self.path, to)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn with_context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Writes `bytes` to `path` atomically (tmp → fsync → rename → fsync dir). Errors name
/// the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Like [`write_atomic`], for output too large to hold in memory: `fill` writes (and may
/// seek in) the temporary file, which is renamed into place only if it succeeds.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let run = || -> io::Result<()> {
        let mut tmp = Temp::create(dir)?;
        fill(&mut tmp.file)?;
        tmp.persist(path)?;
        fsync_dir(dir)
    };
    run().map_err(|e| with_context(e, "writing", path))
}

/// Like [`write_atomic_with`] but not durable yet: the file is renamed into place unsynced
/// and handed back open, for the caller to sync (and `path`'s folder after it) before
/// anything depends on it outliving a power loss. What a crash may leave is for the
/// caller to check (see engine/syncer.rs): a reader sees the whole file or none, but after
/// a power loss the name may stand for a file cut short or with zeroed blocks.
pub fn write_unsynced_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<File> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let run = || -> io::Result<File> {
        let mut tmp = Temp::create(dir)?;
        fill(&mut tmp.file)?;
        tmp.place(path)?;
        tmp.file.try_clone()
    };
    run().map_err(|e| with_context(e, "writing", path))
}

/// Moves a file, durably. Falls back to copy + fsync + remove when the rename crosses file
/// systems (the copy is complete and synced before the original goes).
pub fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    move_files(&[(from, to)])
}

/// Moves files as [`move_file`] does, syncing each folder involved once after every move
/// instead of after each: a file's outbox chunks are published together, and syncing
/// both folders per chunk was two `fsync`s a batch at the end of every run. Each move is
/// durable when this returns; a crash before may leave any of them done or not, and moving
/// the rest again finishes the job.
pub fn move_files(moves: &[(&Path, &Path)]) -> io::Result<()> {
    let (mut dirs, mut sources): (Vec<&Path>, Vec<&Path>) = (Vec::new(), Vec::new());
    for &(from, to) in moves {
        let dir = to.parent().unwrap_or(Path::new("."));
        if !dirs.contains(&dir) {
            fs::create_dir_all(dir).map_err(|e| with_context(e, "creating", dir))?;
            dirs.push(dir);
        }
        rename_or_copy(from, to)?;
        if let Some(src) = from.parent().filter(|s| !sources.contains(s)) {
            sources.push(src);
        }
    }
    for dir in dirs {
        fsync_dir(dir).map_err(|e| with_context(e, "syncing", dir))?;
    }
    for dir in sources {
        let _ = fsync_dir(dir);
    }
    Ok(())
}

fn rename_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            copy_durable(from, to)?;
            fs::remove_file(from).map_err(|e| with_context(e, "removing", from))?;
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("moving {} to {}: {e}", from.display(), to.display()),
            ))
        }
    }
    Ok(())
}

/// Moves a file, durably, only to a name no other file has: `Ok(false)`, and nothing
/// moved, when `to` is another file. Two workers placing different inputs of the same name
/// at the same moment then cannot replace one with the other (a plain rename would). `to`
/// already being `from` itself (a move cut short by a crash) counts as moved.
pub fn move_new(from: &Path, to: &Path) -> io::Result<bool> {
    let dir = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| with_context(e, "creating", dir))?;
    let placed = match fs::hard_link(from, to) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => same_file(from, to)?,
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => copy_new(from, to)?,
        // A file system without hard links: the best a rename can do is look first.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
            ) =>
        {
            if to.exists() {
                return Ok(false);
            }
            move_file(from, to)?;
            return Ok(true);
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("moving {} to {}: {e}", from.display(), to.display()),
            ))
        }
    };
    if !placed {
        return Ok(false);
    }
    fsync_dir(dir).map_err(|e| with_context(e, "syncing", dir))?;
    fs::remove_file(from).map_err(|e| with_context(e, "removing", from))?;
    if let Some(src_dir) = from.parent() {
        let _ = fsync_dir(src_dir);
    }
    Ok(true)
}

/// Whether two paths name the same file.
fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (fs::metadata(a)?, fs::metadata(b)?);
        Ok(a.dev() == b.dev() && a.ino() == b.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// [`move_new`]'s copy across file systems: a synced temporary beside `to`, linked into
/// place only if the name is free.
fn copy_new(from: &Path, to: &Path) -> io::Result<bool> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut tmp = Temp::create(dir)?;
    io::copy(&mut File::open(from)?, &mut tmp.file)?;
    tmp.file.sync_all()?;
    let linked = match fs::hard_link(&tmp.path, to) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e),
    };
    // Dropping the temporary removes its own name; `to` keeps the content.
    drop(tmp);
    Ok(linked)
}

/// Copies `from` to `to` through a synced temporary file in the target folder.
pub fn copy_durable(from: &Path, to: &Path) -> io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let run = || -> io::Result<()> {
        let mut tmp = Temp::create(dir)?;
        let mut src = File::open(from)?;
        io::copy(&mut src, &mut tmp.file)?;
        tmp.persist(to)?;
        fsync_dir(dir)
    };
    run().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("copying {} to {}: {e}", from.display(), to.display()),
        )
    })
}

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

/// A destination in `dir` for `name` that does not overwrite a different file: the name
/// itself if free, else `stem.<tag>.ext`. Works on the original bytes of the name.
pub fn free_name(dir: &Path, name: &std::ffi::OsStr, tag: &str) -> PathBuf {
    let plain = dir.join(name);
    if !plain.exists() {
        return plain;
    }
    tagged_name(dir, name, tag)
}

/// `name` with `.tag` before its extension, in `dir`.
pub fn tagged_name(dir: &Path, name: &std::ffi::OsStr, tag: &str) -> PathBuf {
    let p = Path::new(name);
    let mut tagged = p.file_stem().unwrap_or(name).to_os_string();
    tagged.push(format!(".{tag}"));
    if let Some(ext) = p.extension() {
        tagged.push(".");
        tagged.push(ext);
    }
    dir.join(tagged)
}

/// A file-name-safe version of `s` (for names derived from input).
pub fn safe_name(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out = out.trim_start_matches('.').to_string();
    if out.is_empty() {
        "file".into()
    } else {
        out
    }
}

#[cfg(test)]
mod move_new_tests {
    use super::*;

    #[test]
    fn moves_only_to_a_free_name_and_finishes_a_move_cut_short() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, to) = (
            d.path().join("a"),
            d.path().join("b"),
            d.path().join("out/x.csv"),
        );
        fs::write(&a, "first").unwrap();
        fs::write(&b, "second").unwrap();
        assert!(move_new(&a, &to).unwrap());
        assert!(!a.exists());
        assert!(!move_new(&b, &to).unwrap(), "the name is taken");
        assert_eq!(fs::read_to_string(&to).unwrap(), "first");
        assert!(b.exists(), "nothing moved");
        // Killed between the link and the removal: both names are the one file.
        fs::hard_link(&to, &a).unwrap();
        assert!(move_new(&a, &to).unwrap());
        assert!(!a.exists());
        assert_eq!(fs::read_to_string(&to).unwrap(), "first");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_files_into_several_folders_and_makes_the_missing_ones() {
        let d = tempfile::tempdir().unwrap();
        let staging = d.path().join("staging");
        fs::create_dir(&staging).unwrap();
        let names = ["a", "b", "c"];
        for n in names {
            fs::write(staging.join(n), n).unwrap();
        }
        let targets = [
            d.path().join("x/a"),
            d.path().join("y/b"),
            d.path().join("x/c"),
        ];
        let from: Vec<PathBuf> = names.iter().map(|n| staging.join(n)).collect();
        let moves: Vec<(&Path, &Path)> = from
            .iter()
            .zip(&targets)
            .map(|(f, t)| (f.as_path(), t.as_path()))
            .collect();
        move_files(&moves).unwrap();
        for (n, t) in names.iter().zip(&targets) {
            assert_eq!(fs::read_to_string(t).unwrap(), *n);
            assert!(!staging.join(n).exists());
        }
        // Moving again, the sources gone, fails and names both paths.
        let err = move_files(&moves).unwrap_err().to_string();
        assert!(err.contains("staging") && err.contains("x/a"), "{err}");
    }

    #[test]
    fn write_atomic_replaces_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let leftovers: Vec<_> = fs::read_dir(d.path().join("a")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_configured_mode_not_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.csv");
        write_atomic(&p, b"x").unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, file_mode());
    }

    #[test]
    fn write_atomic_with_leaves_nothing_when_filling_fails() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.csv");
        write_atomic_with(&p, |f| f.write_all(b"kept")).unwrap();
        let e = write_atomic_with(&p, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("c.csv"), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"kept");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn errors_name_the_path() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("file"), "").unwrap();
        let p = d.path().join("file/sub/x.csv");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert!(e.to_string().contains("file/sub/x.csv"), "{e}");
    }

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

    #[test]
    fn temporaries_are_hidden_and_end_in_tmp() {
        let d = tempfile::tempdir().unwrap();
        let t = Temp::create(d.path()).unwrap();
        let name = t.path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with('.') && name.ends_with(".tmp"), "{name}");
        assert!(is_temporary(&name));
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

    #[test]
    fn free_name_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("x.csv"), "1").unwrap();
        assert_eq!(
            free_name(d.path(), "x.csv".as_ref(), "ab12"),
            d.path().join("x.ab12.csv")
        );
        assert_eq!(
            free_name(d.path(), "y.csv".as_ref(), "ab12"),
            d.path().join("y.csv")
        );
    }

    #[test]
    fn safe_name_strips_path_tricks() {
        assert_eq!(safe_name("../etc/passwd"), "_etc_passwd");
        assert_eq!(safe_name(""), "file");
    }
}
