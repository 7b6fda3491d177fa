//! `tallyman demo`: the whole job on the bundled samples with nothing installed — intake,
//! validation and mapping, the outbox, and delivery into an ERP (the project's simulator,
//! started in-process on a loopback port) — then what happened and where everything is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::run::print_file;
use super::{load_config, EXIT_FAILED, EXIT_OK};
use crate::bundled;
use crate::config::{self, Config};
use crate::display;
use crate::engine::{workdir, Engine, FileReport};
use crate::erpsim::{SimConfig, Simulator};
use crate::report;
use crate::say;

const TOKEN_ENV: &str = "TALLYMAN_DEMO_ERP_TOKEN";
const TOKEN: &str = "demo-token";

/// Lays out a scratch working directory from the bundled samples, runs one pass with
/// delivery and shows what happened. Safe to run again and again: the directory is
/// recreated each time (only if it is a previous demo's).
pub fn demo(dir: &Path) -> Result<i32> {
    if !clear(dir)? {
        return Ok(EXIT_FAILED);
    }
    // Set before any other thread starts: the ERP target reads its token from here.
    std::env::set_var(TOKEN_ENV, TOKEN);
    let sim = Simulator::start(
        "127.0.0.1:0",
        SimConfig {
            token: Some(TOKEN.into()),
            check_order_customer: false,
            ..SimConfig::default()
        },
    )
    .context("starting the ERP simulator")?;
    let cfg_path = dir.join("tallyman.toml");
    std::fs::write(&cfg_path, demo_config(&sim.base_url()))?;
    let cfg = match load_config(&cfg_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    workdir::create(&cfg.paths)?;
    bundled::lay_out(bundled::FORMATS, &cfg.paths.formats)?;
    let n = bundled::lay_out(bundled::SAMPLES, &cfg.paths.inbox)?;
    say!(
        "tallyman demo: {n} sample file(s) in {}; ERP simulator at {}\n",
        cfg.paths.inbox.display(),
        sim.base_url()
    );
    let mut engine = match Engine::open(cfg.clone()) {
        Ok(e) => e,
        Err(e) => {
            super::report_failure("cannot start", &e, &cfg);
            return Ok(EXIT_FAILED);
        }
    };
    let run = engine.ledger.begin_run("demo")?;
    let pass = match engine.run_pass(run) {
        Ok(p) => p,
        Err(e) => {
            super::report_failure("demo run failed", &e, &cfg);
            return Ok(EXIT_FAILED);
        }
    };
    let reports = engine.deliver(Instant::now() + Duration::from_secs(60))?;
    engine.ledger.finish_run(run, "ok", None)?;
    say!("run {run}: {} file(s)", pass.files.len());
    for r in &pass.files {
        print_file(r);
    }
    say!();
    super::deliver::print_delivery(&reports, &super::deliver::queues(&engine)?);
    show_erp(&sim);
    show_rejects(&engine, &pass.files)?;
    show_places(&cfg, &cfg_path);
    Ok(EXIT_OK)
}

/// Removes a previous demo's directory; refuses to touch anything else.
fn clear(dir: &Path) -> Result<bool> {
    let marker = dir.join(".tallyman-demo");
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !marker.exists() && !empty {
            crate::complain!(
                "{} exists and is not a tallyman demo directory; choose another with --dir",
                dir.display()
            );
            return Ok(false);
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(&marker, b"created by `tallyman demo`; safe to delete\n")?;
    Ok(true)
}

/// The default config, settling at once, with the outbox and the simulated ERP as targets.
fn demo_config(erp: &str) -> String {
    let base = config::DEFAULT_CONFIG.replace("settle_seconds = 10", "settle_seconds = 0");
    format!(
        "{base}
[[targets]]
name = \"outbox\"
kind = \"outbox\"

[[targets]]
name = \"erp\"
kind = \"http\"
base_url = \"{erp}\"          # the ERP simulator the demo started
token_env = \"{TOKEN_ENV}\"
entities = [\"customer\", \"product\", \"supplier\", \"order\", \"invoice\"]
rate_limit_per_minute = 6000
owned = {{ product = [\"description\", \"price\", \"currency\"] }}
"
    )
}

fn show_erp(sim: &Simulator) {
    let st = sim.stats();
    let held: Vec<String> = st.records.iter().map(|(c, n)| format!("{n} {c}")).collect();
    say!(
        "the ERP now holds {} ({} requests; duplicates: {})",
        held.join(", "),
        st.requests_total,
        st.duplicates.len()
    );
}

fn show_rejects(engine: &Engine, files: &[FileReport]) -> Result<()> {
    for r in files
        .iter()
        .filter(|r| r.counts.lines_rejected > 0 || r.error.is_some())
    {
        if let Some(id) = r.file_id {
            let row = engine.ledger.file(id)?;
            let rows = report::file_rejects(&engine.ledger, &row)?;
            say!("\nRejects of {}:", display::name(&r.name));
            crate::out::text(&report::to_table(
                &rows.into_iter().take(15).collect::<Vec<_>>(),
            ));
        }
    }
    Ok(())
}

fn show_places(cfg: &Config, cfg_path: &Path) {
    let outbox_files = count_files(&cfg.paths.outbox);
    say!("\nWhere things are:");
    say!(
        "  outbox   {}  ({outbox_files} JSON Lines file(s), one folder per entity)",
        cfg.paths.outbox.display()
    );
    say!("  reports  {}", cfg.paths.reports.display());
    say!("  acks     {}", cfg.paths.acks.display());
    say!("  archive  {}", cfg.paths.archive.display());
    say!("  rejected {}", cfg.paths.rejected.display());
    say!("  ledger   {}", cfg.paths.ledger.display());
    say!(
        "\nThe ERP simulator stopped with the demo; run your own with `tallyman-erp-sim --token T`.\nTry: tallyman --config {} status   |   tallyman --config {} rejects",
        cfg_path.display(),
        cfg_path.display()
    );
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p: PathBuf = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                n += 1;
            }
        }
    }
    n
}
