//! How `tallyman.toml` becomes a checked [`Config`], apart from what a config holds: the
//! section-by-section parsing and the checks over the whole config were half of the
//! module, and without them the parent reads as the settings, their defaults and the
//! commented default file.

use std::path::{Path, PathBuf};

use super::ledger::ledger_location;
use super::permissions::parse_permissions;
use super::{targets, Config, Paths, Permissions, RawConfig, Target};
use crate::format::defs::line_at;
use crate::format::{ConfigError, Diagnostics};

impl Config {
    /// Reads and checks `file`, returning every error found.
    pub fn load(file: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            vec![ConfigError {
                file: file.to_path_buf(),
                line: None,
                message: format!("cannot read config: {e}"),
            }]
        })?;
        Config::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Config, Vec<ConfigError>> {
        let (cfg, errors) = Config::parse_lenient(file, text);
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors)
        }
    }

    /// Parses as much as it can: broken sections fall back to their defaults, and every
    /// error is returned beside the config (so `check` can go on to the formats).
    pub fn parse_lenient(file: &Path, text: &str) -> (Config, Vec<ConfigError>) {
        let mut diags = Diagnostics::default();
        let raw = parse_sections(file, text, &mut diags);
        let base = file
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        let resolve = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };
        let paths = Paths {
            inbox: resolve(&raw.paths.inbox),
            work: resolve(&raw.paths.work),
            archive: resolve(&raw.paths.archive),
            rejected: resolve(&raw.paths.rejected),
            outbox: resolve(&raw.paths.outbox),
            reports: resolve(&raw.paths.reports),
            acks: resolve(&raw.paths.acks),
            formats: resolve(&raw.paths.formats),
            ledger: resolve(&raw.paths.ledger),
            ledger_at: crate::ledger::Location::Sqlite(resolve(&raw.paths.ledger)),
        };
        let cfg = Config {
            file: file.to_path_buf(),
            paths,
            intake: raw.intake,
            processing: raw.processing,
            watch: raw.watch,
            limits: raw.limits,
            permissions: Permissions::default(),
            targets: Vec::new(),
            delivery: raw.delivery,
        };
        let mut cfg = cfg;
        cfg.permissions = parse_permissions(&raw.permissions, file, text, &mut diags);
        cfg.targets = match toml::from_str::<toml::Table>(text) {
            Ok(table) => targets::parse(table.get("targets"), file, text, &mut diags),
            Err(_) => vec![Target::default_outbox()], // the syntax error is reported already
        };
        cfg.check(text, &mut diags);
        if let Some(at) = ledger_location(&raw.ledger, file, text, &mut diags) {
            cfg.paths.ledger_at = at;
        }
        (cfg, diags.errors)
    }

    /// Semantic checks over the whole config; every problem is reported.
    fn check(&self, text: &str, diags: &mut Diagnostics) {
        self.check_paths(text, diags);
        self.check_counts(text, diags);
        self.check_limits(text, diags);
    }

    /// Folders that coincide or nest, and a ledger path that names a folder.
    fn check_paths(&self, text: &str, diags: &mut Diagnostics) {
        let line = |key: &str| key_line(text, key);
        let dirs = self.paths.dirs();
        for (i, (a, pa)) in dirs.iter().enumerate() {
            for (b, pb) in dirs.iter().skip(i + 1) {
                if pa == pb {
                    diags.error(
                        &self.file,
                        line(b),
                        format!(
                            "paths.{a} and paths.{b} are the same folder ({})",
                            pa.display()
                        ),
                    );
                } else if *a != "work" && *b != "work" && (pa.starts_with(pb) || pb.starts_with(pa))
                {
                    diags.error(
                        &self.file,
                        line(b),
                        format!(
                            "paths.{a} and paths.{b} are nested ({} / {})",
                            pa.display(),
                            pb.display()
                        ),
                    );
                }
            }
        }
        if self.paths.ledger.is_dir() {
            diags.error(
                &self.file,
                line("ledger"),
                "paths.ledger names a folder; it must be a file",
            );
        }
    }

    /// Processing and watch settings that must be at least 1.
    fn check_counts(&self, text: &str, diags: &mut Diagnostics) {
        let (p, w) = (&self.processing, &self.watch);
        for (section, key, v) in [
            (
                "processing",
                "max_stalled_starts",
                u64::from(p.max_stalled_starts),
            ),
            ("processing", "lease_seconds", p.lease_seconds),
            ("processing", "batch_lines", p.batch_lines),
            ("watch", "rescan_seconds", w.rescan_seconds),
        ] {
            if v == 0 {
                diags.error(
                    &self.file,
                    key_line(text, key),
                    format!("{section}.{key} must be at least 1"),
                );
            }
        }
    }

    /// Zero limits, and intake ignore globs written as paths.
    fn check_limits(&self, text: &str, diags: &mut Diagnostics) {
        let line = |key: &str| key_line(text, key);
        let l = &self.limits;
        for (name, v) in [
            ("max_file_bytes", l.max_file_bytes),
            ("max_record_bytes", l.max_record_bytes),
            ("max_depth", l.max_depth as u64),
            ("max_zip_entry_bytes", l.max_zip_entry_bytes),
            ("max_zip_ratio", l.max_zip_ratio),
            ("max_unit_lines", l.max_unit_lines),
        ] {
            if v == 0 {
                diags.error(
                    &self.file,
                    line(name),
                    format!("limits.{name} must be greater than 0"),
                );
            }
        }
        for g in &self.intake.ignore {
            if g.contains('/') {
                diags.error(
                    &self.file,
                    line("ignore"),
                    format!("intake.ignore glob '{g}' must match a file name, not a path"),
                );
            }
        }
    }
}

/// Deserialises each section on its own, so an error in one section does not hide the
/// errors in the others; a broken section falls back to its defaults for the later checks.
fn parse_sections(file: &Path, text: &str, diags: &mut Diagnostics) -> RawConfig {
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            diags.error(
                file,
                e.span().map(|s| line_at(text, s.start)),
                e.message().to_string(),
            );
            return RawConfig::default();
        }
    };
    let section_line = |name: &str| {
        text.lines()
            .position(|l| l.trim() == format!("[{name}]"))
            .map(|i| i + 1)
    };
    // The section's line is looked for only when the section is refused.
    fn section<T: serde::de::DeserializeOwned + Default>(
        table: &toml::Table,
        name: &str,
        file: &Path,
        line_of: &dyn Fn(&str) -> Option<usize>,
        diags: &mut Diagnostics,
    ) -> T {
        match table.get(name) {
            None => T::default(),
            Some(v) => match v.clone().try_into::<T>() {
                Ok(t) => t,
                Err(e) => {
                    let line = line_of(name);
                    diags.error(file, line, format!("[{name}]: {}", e.message()));
                    T::default()
                }
            },
        }
    }
    for key in table.keys() {
        if ![
            "paths",
            "intake",
            "processing",
            "watch",
            "limits",
            "permissions",
            "delivery",
            "targets",
            "ledger",
        ]
        .contains(&key.as_str())
        {
            diags.error(
                file,
                section_line(key),
                format!(
                    "unknown section [{key}] (expected paths, intake, processing, watch, limits, permissions, delivery, targets, ledger)"
                ),
            );
        }
    }
    RawConfig {
        paths: section(&table, "paths", file, &section_line, diags),
        intake: section(&table, "intake", file, &section_line, diags),
        processing: section(&table, "processing", file, &section_line, diags),
        watch: section(&table, "watch", file, &section_line, diags),
        limits: section(&table, "limits", file, &section_line, diags),
        permissions: section(&table, "permissions", file, &section_line, diags),
        delivery: section(&table, "delivery", file, &section_line, diags),
        ledger: section(&table, "ledger", file, &section_line, diags),
    }
}

/// The line (1-based) of the first `key = ...` in the config text.
pub(super) fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(key) && t[key.len()..].trim_start().starts_with('=')
        })
        .map(|i| i + 1)
}
