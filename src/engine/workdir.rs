//! The working folders: checked before anything runs, never created behind the operator's
//! back, and swept of what a killed process left behind.
//!
//! Only `tallyman init` creates the configured folders. A run that silently created a
//! mistyped inbox (or the mount point of an unmounted share) would then say "nothing to
//! do" every few minutes for weeks; instead every missing, non-folder or read-only folder
//! is reported at once, with the config key and the path, and the run exits 2. `work/`
//! must share the inbox's file system, because claiming a file is a rename out of the
//! inbox: across file systems it would be a copy, and a killed copy leaves two files.

use std::path::Path;

use super::{io_err, EngineError, Result};
use crate::config::{Config, Paths};
use crate::fsutil;

/// Every problem with the configured folders, each naming the config key and the path.
pub fn problems(paths: &Paths) -> Vec<String> {
    let mut out = Vec::new();
    for (key, dir) in paths.dirs() {
        if let Some(p) = folder_problem(key, dir) {
            out.push(p);
        }
    }
    let ledger_dir = paths.ledger.parent().unwrap_or(Path::new("."));
    if let Some(p) = folder_problem("ledger's folder", ledger_dir) {
        out.push(p);
    }
    if let Some(p) = same_file_system(&paths.inbox, &paths.work) {
        out.push(p);
    }
    out
}

fn folder_problem(key: &str, dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
            "paths.{key}: {} does not exist (a mistyped path or an unmounted share?); create it, or run `tallyman init` on the working directory",
            dir.display()
        )),
        Err(e) => Some(format!("paths.{key}: {}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => Some(format!("paths.{key}: {} is not a folder", dir.display())),
        Ok(_) => writable(dir)
            .err()
            .map(|e| format!("paths.{key}: {} is not writable: {e}", dir.display())),
    }
}

/// Writability as the OS sees it for this process (read-only mounts included). The probe
/// has one name for every run: a run killed between writing and removing it leaves it
/// behind (in the inbox too, which no sweep touches), and the next check removes it. Two
/// runs probing at once may remove each other's probe; the one that finds it gone has
/// still written it.
fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(".tallyman-probe.tmp");
    std::fs::write(&probe, b"")?;
    match std::fs::remove_file(&probe) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn same_file_system(inbox: &Path, work: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (Ok(a), Ok(b)) = (std::fs::metadata(inbox), std::fs::metadata(work)) else {
            return None; // reported as missing already
        };
        (a.dev() != b.dev()).then(|| {
            format!(
                "paths.work: {} is not on the inbox's file system ({}); claiming a file must be a rename, so put work/ beside the inbox",
                work.display(),
                inbox.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (inbox, work);
        None
    }
}

/// Fails with every folder problem listed.
pub fn check(cfg: &Config) -> Result<()> {
    let problems = problems(&cfg.paths);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Folders(problems))
    }
}

/// Creates every configured folder (for `init` and `demo`); returns the ones it made.
pub fn create(paths: &Paths) -> std::io::Result<Vec<String>> {
    let mut made = Vec::new();
    let ledger_dir = paths.ledger.parent().map(Path::to_path_buf);
    let dirs = paths
        .dirs()
        .into_iter()
        .map(|(k, d)| (k.to_string(), d.to_path_buf()))
        .chain(ledger_dir.map(|d| ("ledger".to_string(), d)))
        .chain(std::iter::once(("formats".into(), paths.formats.clone())));
    for (key, dir) in dirs {
        if !dir.exists() {
            std::fs::create_dir_all(&dir)?;
            made.push(format!("{key} {}", dir.display()));
        }
    }
    Ok(made)
}

/// Readies the checked folders for a run: the file-mode policy, tallyman's own folders
/// inside `work/`, and temporaries of killed runs swept from every output folder.
pub fn prepare(cfg: &Config) -> Result<()> {
    fsutil::set_file_mode(cfg.permissions.file_mode);
    fsutil::apply_umask(cfg.permissions.dir_mode);
    let p = &cfg.paths;
    for dir in [p.processing(), p.staging(), p.locks()] {
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    let mut swept = 0;
    for (dir, depth) in [
        (&p.outbox, 1),
        (&p.acks, 0),
        (&p.reports, 0),
        (&p.archive, 0),
        (&p.rejected, 0),
        (&p.processing(), 0),
        (&p.staging(), 1),
    ] {
        swept += fsutil::sweep_temporaries(dir, depth)
            .map_err(io_err(format!("sweeping temporaries in {}", dir.display())))?;
    }
    if swept > 0 {
        tracing::info!("removed {swept} temporary file(s) left by an interrupted run");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(root: &Path) -> Paths {
        let cfg_path = root.join("tallyman.toml");
        std::fs::write(&cfg_path, crate::config::DEFAULT_CONFIG).unwrap();
        Config::load(&cfg_path).unwrap().paths
    }

    #[test]
    fn regression_a_missing_inbox_is_reported_not_created() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(d.path());
        create(&p).unwrap();
        std::fs::remove_dir(&p.inbox).unwrap();
        let problems = problems(&p);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("paths.inbox") && problems[0].contains("does not exist"));
        assert!(
            !p.inbox.exists(),
            "never created behind the operator's back"
        );
    }

    #[test]
    fn regression_a_probe_left_in_the_inbox_by_a_killed_run_is_removed_by_the_next_check() {
        // A run killed between writing its writability probe and removing it left
        // `.tallyman-<pid>-probe.tmp` in the inbox for good (seen once in the kill/resume
        // test): the sweep of temporaries rightly never touches the inbox.
        let d = tempfile::tempdir().unwrap();
        let p = paths(d.path());
        create(&p).unwrap();
        std::fs::write(p.inbox.join(".tallyman-probe.tmp"), b"").unwrap();
        assert!(problems(&p).is_empty());
        let left: Vec<_> = std::fs::read_dir(&p.inbox).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(d.path());
        create(&p).unwrap();
        std::fs::remove_dir(&p.archive).unwrap();
        std::fs::remove_dir(&p.acks).unwrap();
        std::fs::write(&p.acks, "not a folder").unwrap();
        let problems = problems(&p);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].contains("not a folder"), "{problems:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_folder_is_reported() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = paths(d.path());
        create(&p).unwrap();
        std::fs::set_permissions(&p.outbox, std::fs::Permissions::from_mode(0o555)).unwrap();
        let problems = problems(&p);
        std::fs::set_permissions(&p.outbox, std::fs::Permissions::from_mode(0o755)).unwrap();
        // root may write anyway; then there is nothing to report
        if !problems.is_empty() {
            assert!(problems[0].contains("not writable"), "{problems:?}");
        }
    }
}
