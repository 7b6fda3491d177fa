//! Moving files apart from writing them: a move has durability rules of its own (both
//! folders synced, a copy across file systems complete before the original goes) and
//! `move_new` a guard of its own against two workers placing inputs of the same name, so
//! the write path in the parent module stays readable without them.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use super::{fsync_dir, with_context, Temp};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
}
