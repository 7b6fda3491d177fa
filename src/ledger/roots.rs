//! Paths in the ledger are written relative to the configured folder they are in, as
//! `archive:2026/orders.csv`, and made absolute again when read. A ledger then means the
//! same on every host that mounts the shared folders at a place of its own, and after the
//! whole workspace is moved or restored elsewhere. A path in none of the folders (and
//! every path an older version wrote) stays as it is and is read as it is.

use std::path::{Path, PathBuf};

/// The configured folders, by the name the ledger writes before a relative path.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    /// Longest path first, so a folder inside another is the one a path is relative to.
    roots: Vec<(String, PathBuf)>,
}

impl Roots {
    pub fn new<'a>(folders: impl IntoIterator<Item = (&'a str, &'a Path)>) -> Roots {
        let mut roots: Vec<(String, PathBuf)> = folders
            .into_iter()
            .map(|(name, p)| (name.to_string(), p.to_path_buf()))
            .collect();
        roots.sort_by_key(|(_, p)| std::cmp::Reverse(p.as_os_str().len()));
        Roots { roots }
    }

    /// How `path` is written to the ledger.
    pub fn store(&self, path: &str) -> String {
        let p = Path::new(path);
        for (name, root) in &self.roots {
            if let Ok(rel) = p.strip_prefix(root) {
                if let Some(rel) = rel.to_str() {
                    return format!("{name}:{rel}");
                }
            }
        }
        path.to_string()
    }

    /// The absolute path a stored one stands for on this host.
    pub fn resolve(&self, stored: &str) -> String {
        if let Some((name, rel)) = stored.split_once(':') {
            if let Some((_, root)) = self.roots.iter().find(|(n, _)| n == name) {
                return if rel.is_empty() {
                    root.display().to_string()
                } else {
                    root.join(rel).display().to_string()
                };
            }
        }
        stored.to_string()
    }

    /// [`Self::resolve`] for a column that may be empty.
    pub fn resolve_opt(&self, stored: Option<String>) -> Option<String> {
        stored.map(|s| self.resolve(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Roots {
        Roots::new([
            ("inbox", Path::new("/srv/edi/inbox")),
            ("archive", Path::new("/srv/edi/archive")),
            ("work", Path::new("/var/lib/tallyman/work")),
            ("reports", Path::new("/srv/edi/archive/reports")),
        ])
    }

    #[test]
    fn a_path_in_a_folder_is_stored_relative_and_read_back_absolute() {
        let r = roots();
        for (abs, stored) in [
            (
                "/srv/edi/archive/2026/orders.csv",
                "archive:2026/orders.csv",
            ),
            ("/srv/edi/inbox/a b.csv", "inbox:a b.csv"),
            (
                "/var/lib/tallyman/work/staging/x/o.jsonl",
                "work:staging/x/o.jsonl",
            ),
            // The folder inside another is the one it is relative to.
            ("/srv/edi/archive/reports/r.csv", "reports:r.csv"),
        ] {
            assert_eq!(r.store(abs), stored);
            assert_eq!(r.resolve(stored), abs);
        }
    }

    #[test]
    fn a_path_outside_the_folders_and_an_old_absolute_one_stay_as_they_are() {
        let r = roots();
        for p in [
            "/tmp/elsewhere.csv",
            "/srv/edi/inboxes/a.csv",
            "relative.csv",
        ] {
            assert_eq!(r.store(p), p);
            assert_eq!(r.resolve(p), p);
        }
        assert_eq!(r.resolve("unknown:a.csv"), "unknown:a.csv");
    }

    #[test]
    fn another_host_resolves_the_same_stored_path_under_its_own_folders() {
        let stored = roots().store("/srv/edi/archive/2026/orders.csv");
        let other = Roots::new([("archive", Path::new("/mnt/share/archive"))]);
        assert_eq!(other.resolve(&stored), "/mnt/share/archive/2026/orders.csv");
    }
}
