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

mod moves;
mod sweep;

pub use moves::{copy_durable, move_file, move_files, move_new};
pub use sweep::{open_for_writing, process_alive, sweep_temporaries};

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
/// A file that has it already is left alone: a chmod moves the file's change time even to
/// the same mode, which would break the ledger's seal (see ledger/seal.rs).
pub fn set_mode(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if fs::metadata(path)?.permissions().mode() & 0o777 != file_mode() {
            fs::set_permissions(path, fs::Permissions::from_mode(file_mode()))?;
        }
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
mod tests {
    use super::*;

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
    fn temporaries_are_hidden_and_end_in_tmp() {
        let d = tempfile::tempdir().unwrap();
        let t = Temp::create(d.path()).unwrap();
        let name = t.path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with('.') && name.ends_with(".tmp"), "{name}");
        assert!(is_temporary(&name));
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
