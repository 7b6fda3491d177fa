//! Durable file operations: every file tallyman publishes is written to a temporary file
//! in the target folder, fsynced, renamed into place and the folder fsynced, so a reader
//! (or a crash) sees the old state or the new one, never half a file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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

/// Writes `bytes` to `path` atomically (tmp → fsync → rename → fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    fsync_dir(dir)
}

/// Moves a file, durably. Falls back to copy + fsync + remove when the rename crosses file
/// systems (the copy is complete and synced before the original goes).
pub fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    match fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            copy_durable(from, to)?;
            fs::remove_file(from)?;
        }
        Err(e) => return Err(e),
    }
    fsync_dir(dir)?;
    if let Some(src_dir) = from.parent() {
        let _ = fsync_dir(src_dir);
    }
    Ok(())
}

/// Copies `from` to `to` through a synced temporary file in the target folder.
pub fn copy_durable(from: &Path, to: &Path) -> io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    let mut src = File::open(from)?;
    io::copy(&mut src, tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    tmp.persist(to).map_err(|e| e.error)?;
    fsync_dir(dir)
}

/// A destination in `dir` for `name` that does not overwrite a different file: the name
/// itself if free, else `stem.<tag>.ext`.
pub fn free_name(dir: &Path, name: &str, tag: &str) -> PathBuf {
    let plain = dir.join(name);
    if !plain.exists() {
        return plain;
    }
    let p = Path::new(name);
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tagged = match p.extension() {
        Some(ext) => format!("{stem}.{tag}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{tag}"),
    };
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

    #[test]
    fn free_name_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("x.csv"), "1").unwrap();
        assert_eq!(
            free_name(d.path(), "x.csv", "ab12"),
            d.path().join("x.ab12.csv")
        );
        assert_eq!(free_name(d.path(), "y.csv", "ab12"), d.path().join("y.csv"));
    }

    #[test]
    fn safe_name_strips_path_tricks() {
        assert_eq!(safe_name("../etc/passwd"), "_etc_passwd");
        assert_eq!(safe_name(""), "file");
    }
}
