//! `tallyman.toml`: where things live and how the engine behaves.
//!
//! Parsing and checking are two steps. Parsing (serde, unknown keys refused) catches
//! syntax and type errors; `Config::check` then looks at the parsed values as a whole and
//! reports *every* problem at once, each with file and line, so an operator fixes a broken
//! config in one round trip. Relative paths are resolved against the config file's folder,
//! so a working directory can be moved or mounted anywhere.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod ledger;
mod load;
mod permissions;
pub mod targets;

pub use ledger::LedgerConfig;
use load::key_line;
pub use permissions::{Permissions, RawPermissions};

pub use targets::{DeliveryConfig, Endpoint, HttpTarget, RetryPolicy, Target, TargetKind};

use crate::format::Limits;

/// The file as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub paths: RawPaths,
    #[serde(default)]
    pub intake: IntakeConfig,
    #[serde(default)]
    pub processing: ProcessingConfig,
    #[serde(default)]
    pub watch: WatchConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub permissions: RawPermissions,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub ledger: LedgerConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPaths {
    pub inbox: String,
    pub work: String,
    pub archive: String,
    pub rejected: String,
    pub outbox: String,
    pub reports: String,
    pub acks: String,
    pub formats: String,
    pub ledger: String,
}

impl Default for RawPaths {
    fn default() -> Self {
        RawPaths {
            inbox: "inbox".into(),
            work: "work".into(),
            archive: "archive".into(),
            rejected: "rejected".into(),
            outbox: "outbox".into(),
            reports: "reports".into(),
            acks: "acks".into(),
            formats: "formats".into(),
            ledger: "ledger.sqlite".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// A file without a `.done` marker is taken once its size and modification time have
    /// not changed for this many seconds. 0 takes every file at once (tests, demos).
    pub settle_seconds: u64,
    /// Extra file-name globs to ignore (hidden files, `*.tmp`, `*.part` and `*.done` are
    /// always ignored).
    pub ignore: Vec<String>,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            settle_seconds: 10,
            ignore: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingConfig {
    /// Lines per ledger transaction and staged outbox chunk. Chunk boundaries are counted
    /// from the start of the file, so a resumed file is cut exactly like an uninterrupted one.
    pub batch_lines: u64,
    /// Cores a file's processing keeps busy: reading and committing share one, validation
    /// and mapping workers take the rest; 1 = one thread does it all; 0 = every core.
    pub threads: usize,
    /// A file the process died on this many times in a row at the same place (a reader
    /// aborting on hostile input, say) is held for a person instead of taking every later
    /// run down with it. Deaths before reading reached new material do not count.
    pub max_stalled_starts: u32,
    /// How long a run's hold on a file lasts without renewal (renewed every third of it
    /// while the run works). Another run, here or on another host sharing the ledger,
    /// takes over a file whose lease ran out; the old holder's writes are then refused.
    pub lease_seconds: u64,
}

impl ProcessingConfig {
    /// The cores `threads` gives processing: every core the machine offers for 0.
    pub fn cores(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            batch_lines: 10_000,
            threads: 0,
            max_stalled_starts: 3,
            lease_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Full rescan interval: the source of truth, because file events get lost and network
    /// file systems raise none.
    pub rescan_seconds: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig { rescan_seconds: 30 }
    }
}

/// Resolved absolute paths.
#[derive(Debug, Clone)]
pub struct Paths {
    pub inbox: PathBuf,
    pub work: PathBuf,
    pub archive: PathBuf,
    pub rejected: PathBuf,
    pub outbox: PathBuf,
    pub reports: PathBuf,
    pub acks: PathBuf,
    pub formats: PathBuf,
    pub ledger: PathBuf,
    /// Where the ledger is opened: the SQLite file `ledger`, or `[ledger] url`.
    pub ledger_at: crate::ledger::Location,
}

impl Paths {
    /// Folders the engine writes into (checked on start; only `init` creates them).
    pub fn dirs(&self) -> Vec<(&'static str, &Path)> {
        vec![
            ("inbox", &self.inbox),
            ("work", &self.work),
            ("archive", &self.archive),
            ("rejected", &self.rejected),
            ("outbox", &self.outbox),
            ("reports", &self.reports),
            ("acks", &self.acks),
        ]
    }

    pub fn processing(&self) -> PathBuf {
        self.work.join("processing")
    }
    pub fn staging(&self) -> PathBuf {
        self.work.join("staging")
    }
    pub fn locks(&self) -> PathBuf {
        self.work.join("locks")
    }
}

/// A parsed and checked config.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub paths: Paths,
    pub intake: IntakeConfig,
    pub processing: ProcessingConfig,
    pub watch: WatchConfig,
    pub limits: Limits,
    pub permissions: Permissions,
    /// Where records are delivered (the outbox alone when none is configured).
    pub targets: Vec<Target>,
    pub delivery: DeliveryConfig,
}

impl Config {
    /// The targets a relay delivers to (HTTP), as opposed to the outbox written at publish.
    pub fn remote_targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter().filter(|t| t.is_http())
    }
    /// The entities the outbox takes (none when targets are configured without an outbox).
    pub fn outbox_entities(&self) -> Vec<crate::canonical::Entity> {
        self.targets
            .iter()
            .filter(|t| !t.is_http())
            .flat_map(|t| t.entities.iter().copied())
            .collect()
    }
}

/// The default config `tallyman init` writes: every key, commented.
pub const DEFAULT_CONFIG: &str = r#"# tallyman configuration. Relative paths are relative to this file's folder.

[paths]
inbox = "inbox"          # where partners and exports drop files
work = "work"            # claimed files, staged output and locks (same file system as inbox)
archive = "archive"      # inputs applied in full or except listed rejects
rejected = "rejected"    # inputs rejected whole, and duplicate files
outbox = "outbox"        # canonical records, JSON Lines per entity
reports = "reports"      # per-file reject reports (CSV, opens in Excel)
acks = "acks"            # outbound acknowledgements (997/999/TA1, IDoc STATUS)
formats = "formats"      # format definitions
ledger = "ledger.sqlite" # the processing ledger

[intake]
settle_seconds = 10      # unchanged size+mtime for this long = complete (or drop NAME.done)
ignore = []              # extra globs to ignore; hidden, *.tmp, *.part are always ignored

[processing]
batch_lines = 10000      # lines per ledger transaction / outbox chunk
threads = 0              # cores to use (1 = one thread does it all); 0 = every core
max_stalled_starts = 3   # hold a file after the process died this many times in a row at the same place in it
lease_seconds = 60       # a stopped or cut-off run's file is taken over after this long without renewal

[watch]
rescan_seconds = 30      # full rescan interval in `tallyman watch`

[limits]
max_file_bytes = 8589934592     # 8 GiB
max_record_bytes = 1048576      # longest line / segment / text node / cell
max_depth = 64                  # XML nesting
max_zip_entry_bytes = 536870912 # spreadsheet zip entry, uncompressed
max_zip_ratio = 200             # spreadsheet zip entry compression ratio
max_unit_lines = 100000         # largest document (order, transaction set, IDoc)

[permissions]
file_mode = "0640"       # every file written: owner writes, group reads, others nothing
dir_mode = "0750"        # folders created inside the working folders

[delivery]
budget_seconds = 240     # how long `run` delivers before leaving the rest for the next pass

# A ledger several machines share (PostgreSQL), instead of paths.ledger's SQLite file.
# [ledger]
# url = "postgres://tallyman@db.example.com:5432/tallyman"   # no password in this file
# password_env = "TALLYMAN_LEDGER_PASSWORD"                  # the password comes from this environment variable

# Where records go. Without any [[targets]], every record goes to the outbox folder.
# [[targets]]
# name = "erp"
# kind = "http"                       # "outbox" (the folder above) or "http" (an ERP's REST API)
# base_url = "https://erp.example.com"
# token_env = "ERP_TOKEN"             # the bearer token comes from this environment variable
# entities = ["customer", "product", "supplier", "order", "invoice"]
# rate_limit_per_minute = 100
# owned = { product = ["description", "price", "currency"] }   # fields tallyman may update
# timeout_seconds = 30
# concurrency = 4
# max_attempts = 12                   # then a dead letter (also after max_age_hours)
# max_age_hours = 72
# reconcile_scope = "^PO-"           # or { customer = "^C-" }; default: every record
# reconcile_every_hours = 24          # reconcile at the end of run/watch passes
# [targets.endpoints.order]           # per-entity overrides of the reference API
# path = "/api/v1/orders"
"#;

/// Which config file to use: `--config`, then `TALLYMAN_CONFIG`, then `./tallyman.toml`.
pub fn resolve_config_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("TALLYMAN_CONFIG") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("tallyman.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tallyman.toml");
        std::fs::write(&f, DEFAULT_CONFIG).unwrap();
        let c = Config::load(&f).unwrap();
        assert_eq!(
            c.paths.inbox,
            std::path::absolute(dir.path().join("inbox")).unwrap()
        );
        assert_eq!(c.intake.settle_seconds, 10);
    }

    #[test]
    fn check_reports_every_error_with_lines() {
        let text = "[paths]\ninbox = \"x\"\narchive = \"x\"\n[processing]\nbatch_lines = 0\n[watch]\nrescan_seconds = 0\n";
        let errs = Config::parse(Path::new("/tmp/t.toml"), text).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().all(|e| e.line.is_some()), "{errs:?}");
    }

    #[test]
    fn permissions_are_octal_and_never_world_readable() {
        let ok = Config::parse(
            Path::new("t.toml"),
            "[permissions]\nfile_mode = \"0600\"\ndir_mode = \"0700\"\n",
        )
        .unwrap();
        assert_eq!(ok.permissions.file_mode, 0o600);
        let errs = Config::parse(
            Path::new("t.toml"),
            "[permissions]\nfile_mode = \"0644\"\ndir_mode = \"75x\"\n",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].message.contains("everyone") && errs[0].line == Some(2));
        assert!(errs[1].message.contains("octal"));
    }

    #[test]
    fn unknown_keys_in_several_sections_are_all_reported() {
        let text = "[intake]\nsettle = 3\n[paths]\ninbox = \"a\"\narchive = \"a\"\n[limits]\nmax_depth = \"deep\"\n[extra]\n";
        let errs = Config::parse(Path::new("t.toml"), text).unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs
            .iter()
            .any(|e| e.message.contains("settle") && e.line == Some(1)));
        assert!(
            errs.iter()
                .any(|e| e.message.starts_with("[limits]") && e.line == Some(6)),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e.message.contains("[extra]")));
        assert!(errs.iter().any(|e| e.message.contains("same folder")));
    }

    #[test]
    fn every_count_set_to_zero_is_reported_at_its_line() {
        let text = "[processing]\nmax_stalled_starts = 0\nlease_seconds = 0\nbatch_lines = 0\n[watch]\nrescan_seconds = 0\n";
        let errs = Config::parse(Path::new("t.toml"), text).unwrap_err();
        let said: Vec<_> = errs.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(
            said,
            [
                (Some(2), "processing.max_stalled_starts must be at least 1"),
                (Some(3), "processing.lease_seconds must be at least 1"),
                (Some(4), "processing.batch_lines must be at least 1"),
                (Some(6), "watch.rescan_seconds must be at least 1"),
            ]
        );
    }

    #[test]
    fn a_section_of_the_wrong_shape_is_reported_at_its_header() {
        let text = "[paths]\n\n[limits]\nmax_depth = \"deep\"\n";
        let errs = Config::parse(Path::new("t.toml"), text).unwrap_err();
        let said: Vec<_> = errs.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert_eq!(said[0].0, Some(3), "{said:?}");
        assert!(said[0].1.starts_with("[limits]: "), "{said:?}");
    }
}
