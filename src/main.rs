//! The `tallyman` command line: argument parsing only. Every command is a function in
//! `tallyman::commands` that returns the process exit code.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tallyman::commands;
use tallyman::logging::{self, LogFormat};

// Units are built on the reader thread and freed on rayon workers (and vice versa); glibc's
// malloc spent ~40% of a run consolidating those cross-thread frees (perf, 180k lines).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs [`huge_pages_off`] as a constructor: before `main`, and before the runtime's first
/// allocation, which `main` would come too late for (see `tallyman::memory`).
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static HUGE_PAGES_OFF: extern "C" fn() = huge_pages_off;

#[cfg(target_os = "linux")]
extern "C" fn huge_pages_off() {
    tallyman::memory::no_huge_pages();
}

#[derive(Parser)]
#[command(
    name = "tallyman",
    version,
    about = "File and EDI batch integration engine"
)]
struct Cli {
    /// Config file (default: $TALLYMAN_CONFIG, then ./tallyman.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log lines on stderr: text (coloured only on a terminal) or json (one object per line).
    #[arg(long, global = true, value_enum, env = logging::FORMAT_ENV, ignore_case = true,
          default_value_t = LogFormat::Text, value_name = "FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a working directory to start from: config, formats, inbox and output folders.
    Init { dir: PathBuf },
    /// Check the config, the folders and every format definition; report all errors at once.
    Check {
        /// Also run a full integrity check of the ledger.
        #[arg(long)]
        ledger: bool,
    },
    /// One pass: resume interrupted files, process every complete file in the inbox, exit.
    /// Exit 0 all applied, 1 something needs a person, 2 the run failed, 3 stopped by a
    /// signal (the next run resumes).
    Run,
    /// Keep running: process files as they arrive (events plus a periodic rescan).
    Watch,
    /// Process one file from anywhere on disk (manual reprocessing).
    Process {
        file: PathBuf,
        /// Apply it again even if this content was already processed.
        #[arg(long)]
        force: bool,
    },
    /// Show the per-line reject report of a file (default: the files of the latest run).
    Rejects {
        /// File name, path or fingerprint prefix.
        file: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Ledger summary: files by outcome, recent runs and files.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Deliver what is due to the remote targets (no intake), within the time budget.
    Deliver,
    /// List dead letters: records a target refused or that ran out of retries.
    Deadletters {
        #[command(flatten)]
        select: Select,
        #[arg(long)]
        json: bool,
    },
    /// Queue dead letters again after the cause was fixed.
    Retry {
        #[command(flatten)]
        select: Select,
        /// Only count what would be queued.
        #[arg(long)]
        dry_run: bool,
        /// Why (kept in the ledger).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Send delivered records again (after a target was restored from a backup).
    Replay {
        #[command(flatten)]
        select: Select,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Compare a target's records with what the ledger delivered: missing, orphans, drift.
    /// Exit 0 nothing found, 1 differences found, 2 failed or blocked.
    Reconcile {
        /// The target (default: the only remote target).
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        json: bool,
        /// Queue missing records again and re-send drifted owned fields.
        #[arg(long)]
        repair: bool,
        /// Why (kept in the ledger with a repair).
        #[arg(long, requires = "repair")]
        reason: Option<String>,
    },
    /// The operations console: dashboard, files, exceptions, record history, audit.
    Serve {
        /// Address to listen on; a non-loopback one needs TALLYMAN_CONSOLE_TOKEN.
        #[arg(long, default_value = tallyman::console::DEFAULT_LISTEN)]
        listen: String,
    },
    /// Write the health figures for node_exporter's textfile collector.
    Metrics {
        #[arg(long, value_name = "PATH")]
        textfile: PathBuf,
    },
    /// Send a fixed corrections file back: into the inbox, linked to the file it corrects.
    Resubmit {
        file: PathBuf,
        /// The file it corrects (name, #id or fingerprint prefix), when its name does not say.
        #[arg(long)]
        of: Option<String>,
        /// Why (kept in the ledger).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Which system is the source of truth for each field, per target.
    Fields,
    /// Who did what, when and why: every action that changed state.
    Audit {
        #[arg(long)]
        json: bool,
        /// How many of the newest actions.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Let a held file go on (or reject it whole with --reject); recorded with who and why.
    Release {
        /// File name, path, #id or fingerprint prefix.
        file: String,
        /// Reject the file whole instead of letting it go on.
        #[arg(long)]
        reject: bool,
        /// Why (kept in the ledger).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Write a consistent copy of the ledger (safe while runs go on).
    Backup {
        /// Destination file, or a folder for a timestamped file.
        dest: PathBuf,
    },
    /// Lay out a scratch working directory from the bundled samples, process it, and show
    /// what happened. Safe to run again.
    Demo {
        #[arg(long, default_value = "demo-work")]
        dir: PathBuf,
    },
}

/// Which deliveries a command means.
#[derive(clap::Args)]
struct Select {
    /// Only this target.
    #[arg(long)]
    target: Option<String>,
    /// Only this entity (order, invoice, customer, ...).
    #[arg(long)]
    entity: Option<String>,
    /// Only this business key.
    #[arg(long)]
    key: Option<String>,
    /// Only since this date or time (ISO 8601, UTC).
    #[arg(long)]
    since: Option<String>,
}

impl Select {
    fn selection(self) -> tallyman::ledger::Selection {
        tallyman::ledger::Selection {
            target: self.target,
            entity: self.entity,
            key: self.key,
            since: self.since,
        }
    }
}

/// The spreadsheet reader runs the parsing library on its own thread and turns a panic in
/// it into a `sheet-corrupt` rejection with the message. Such a contained panic gets one
/// log line instead of the default message and backtrace on stderr; any other panic is
/// reported as usual.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("tallyman-sheet") {
            tracing::warn!("spreadsheet library panicked on malformed input (contained; the file is rejected): {info}");
        } else {
            default(info);
        }
    }));
}

fn main() {
    tallyman::memory::tune_allocator();
    let cli = Cli::parse();
    install_panic_hook();
    logging::init(cli.log_format);
    let config = commands::config_path(cli.config.as_deref());
    let result = match cli.command {
        Command::Init { dir } => commands::init(&dir),
        Command::Check { ledger } => commands::check(&config, ledger),
        Command::Run => commands::run(&config),
        Command::Watch => commands::watch(&config),
        Command::Process { file, force } => commands::process(&config, &file, force),
        Command::Rejects { file, json } => commands::rejects(&config, file.as_deref(), json),
        Command::Status { json } => commands::status(&config, json),
        Command::Release {
            file,
            reject,
            reason,
        } => commands::release(&config, &file, reject, reason.as_deref()),
        Command::Backup { dest } => commands::backup(&config, &dest),
        Command::Deliver => commands::deliver(&config),
        Command::Deadletters { select, json } => {
            commands::deadletters(&config, &select.selection(), json)
        }
        Command::Retry {
            select,
            dry_run,
            reason,
        } => commands::retry(&config, &select.selection(), dry_run, reason.as_deref()),
        Command::Replay {
            select,
            dry_run,
            reason,
        } => commands::replay(&config, &select.selection(), dry_run, reason.as_deref()),
        Command::Fields => commands::fields(&config),
        Command::Resubmit { file, of, reason } => {
            commands::resubmit(&config, &file, of.as_deref(), reason.as_deref())
        }
        Command::Serve { listen } => commands::serve(&config, &listen),
        Command::Metrics { textfile } => tallyman::metrics::metrics_textfile(&config, &textfile),
        Command::Reconcile {
            target,
            json,
            repair,
            reason,
        } => commands::reconcile(&config, target.as_deref(), json, repair, reason.as_deref()),
        Command::Audit { json, limit } => commands::audit(&config, json, limit),
        Command::Demo { dir } => commands::demo(&dir),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            tallyman::complain!("{e:#}");
            commands::EXIT_FAILED
        }
    };
    exit_now(code);
}

/// Ends the process once everything it made is written and closed: stdout flushed, every
/// ledger connection and file dropped with the command that used it. It skips the C
/// runtime's exit handlers, where the allocator hands every page it keeps back to the
/// kernel, one `madvise` at a time, just before the kernel frees the whole address space:
/// 88 of the 98 `madvise` calls of a 51 MB orders CSV's run; an empty `run` two idle
/// seconds after the last took 13.1 ms instead of 15.6 (means of twelve). Nothing else
/// of ours runs at exit; a build instrumented for coverage, whose counters are written by
/// an exit handler, would need `std::process::exit` here.
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process; nothing after it runs, and nothing that must run
    // at exit is left (see above).
    unsafe { libc::_exit(code) }
}
