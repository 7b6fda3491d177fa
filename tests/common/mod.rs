//! Shared helpers for integration tests that run the real `tallyman` binary in scratch
//! working directories.
#![allow(dead_code)]

pub mod pg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tallyman"))
}

/// A scratch working directory made by `tallyman init`, with settle time 0 and the given
/// batch size. With `TALLYMAN_TEST_LEDGER=postgres`, [`Work::new`] puts its ledger in a
/// database of its own on the test process's PostgreSQL server, so the integration tests
/// that do not look into `ledger.sqlite` themselves run on a PostgreSQL ledger.
pub struct Work {
    pub _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Work {
    pub fn new(batch_lines: u64) -> Work {
        let w = Work::plain(batch_lines);
        if std::env::var("TALLYMAN_TEST_LEDGER").as_deref() == Ok("postgres") {
            w.use_postgres(&pg::fresh_database());
        }
        w
    }

    /// A work folder on the SQLite ledger, whatever the environment says.
    pub fn plain(batch_lines: u64) -> Work {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("w");
        let out = Command::new(bin()).arg("init").arg(&dir).output().unwrap();
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cfg = dir.join("tallyman.toml");
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("settle_seconds = 10", "settle_seconds = 0")
            .replace(
                "batch_lines = 10000",
                &format!("batch_lines = {batch_lines}"),
            );
        std::fs::write(&cfg, text).unwrap();
        Work { _tmp: tmp, dir }
    }

    /// The same, with its ledger in a fresh database of the test process's PostgreSQL
    /// server instead of the SQLite file.
    pub fn on_postgres(batch_lines: u64) -> Work {
        let w = Work::plain(batch_lines);
        w.use_postgres(&pg::fresh_database());
        w
    }

    /// A work folder on the ledger `backend` ("sqlite" or "postgres") names.
    pub fn on(backend: &str, batch_lines: u64) -> Work {
        match backend {
            "postgres" => Work::on_postgres(batch_lines),
            _ => Work::plain(batch_lines),
        }
    }

    /// Points the config's ledger at the PostgreSQL database `url`.
    pub fn use_postgres(&self, url: &str) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        std::fs::write(
            self.config(),
            text + &format!("\n[ledger]\nurl = \"{url}\"\n"),
        )
        .unwrap();
    }

    /// Rows of a query on the work's ledger, whichever backend holds it (a change runs
    /// too: tests set up states a run would take long to reach).
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.ledger().inspect(sql).unwrap()
    }

    /// The one integer a query answers.
    pub fn query_i64(&self, sql: &str) -> i64 {
        let rows = self.query(sql);
        rows[0][0].as_deref().unwrap_or("0").parse().unwrap()
    }

    /// Replaces a `key = value` line of the config.
    pub fn set(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        assert!(text.contains(from), "config has no '{from}'");
        std::fs::write(self.config(), text.replace(from, to)).unwrap();
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("tallyman.toml")
    }

    /// The ledger as the commands open it: paths relative to the configured folders.
    pub fn ledger(&self) -> tallyman::ledger::Ledger {
        let cfg = tallyman::config::Config::load(&self.config()).unwrap();
        tallyman::ledger::Ledger::open_in(&cfg.paths).unwrap()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config").arg(self.config());
        c
    }

    /// Starts a command in the background with `ERP_TOKEN` set, its output kept.
    pub fn spawn(&self, args: &[&str], erp_token: &str) -> std::process::Child {
        self.cmd()
            .args(args)
            .env("ERP_TOKEN", erp_token)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn drop_file(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join("inbox").join(name), bytes).unwrap();
    }

    /// Every file under `sub`, by relative path, with its bytes.
    pub fn snapshot(&self, sub: &str) -> BTreeMap<String, Vec<u8>> {
        snapshot(&self.dir.join(sub))
    }
}

pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

pub fn text(o: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An orders CSV in the bundled generic layout: `n_orders` orders of 3 lines each; every
/// `bad_every`-th order has one line with a negative quantity (rejecting that order).
pub fn orders_csv(n_orders: usize, bad_every: usize, prefix: &str) -> Vec<u8> {
    let mut s = String::from(
        "order_no,line_no,order_date,customer_id,sku,description,quantity,unit_price,currency\n",
    );
    for o in 0..n_orders {
        for l in 1..=3 {
            let qty = if bad_every > 0 && o % bad_every == bad_every - 1 && l == 2 {
                "-1"
            } else {
                "2.5"
            };
            s.push_str(&format!(
                "{prefix}{o:07},{l},2026-11-{:02},C{:04},SKU-{l}{:03},\"Widget, size {l}\",{qty},19.99,EUR\n",
                1 + o % 28,
                o % 500,
                o % 1000
            ));
        }
    }
    s.into_bytes()
}

/// Ledger line counts by status, from the rows: lines with a row of their own, plus the
/// lines of each unit that have none, which end as their unit did.
pub fn ledger_counts(work: &Work) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for sql in [
        "SELECT status, COUNT(*) FROM lines GROUP BY status",
        "SELECT u.status, SUM(u.line_count - (SELECT COUNT(*) FROM lines l WHERE l.file_id = u.file_id \
         AND l.ordinal >= u.first_ordinal AND l.ordinal < u.first_ordinal + u.line_count)) FROM units u GROUP BY u.status",
        // Applied documents packed a batch to a row (the ledger's runs.rs).
        "SELECT 'applied', COALESCE(SUM(lines - row_lines), 0) FROM unit_runs",
    ] {
        for row in work.query(sql) {
            let (status, n) = (row[0].clone().unwrap(), row[1].as_deref().unwrap());
            *counts.entry(status).or_insert(0) += n.parse::<i64>().unwrap();
        }
    }
    counts.retain(|_, n| *n > 0);
    counts
}

/// Sends a signal (`-STOP`, `-CONT`, `-KILL`) to a process.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Stops `child` (SIGSTOP) in the middle of its file, once it has committed a batch and
/// `ready` agrees, and returns. It is stopped as soon as anything of the file is in
/// `work/staging/` (a batch's staged output, or its reader's keys log: seen without asking
/// the ledger), then asked: a poll that had to open the ledger first could see the first
/// commit only after the run had finished the file (twice in full test runs, with 30,000
/// and 60,000 orders). Not ready: continued, and tried again at the next look.
pub fn stop_mid_file(w: &Work, child: &mut std::process::Child, ready: impl Fn(&Work) -> bool) {
    let start = std::time::Instant::now();
    let staging = w.dir.join("work").join("staging");
    let staged = || {
        std::fs::read_dir(&staging)
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| std::fs::read_dir(d.path()).is_ok_and(|mut f| f.next().is_some()))
    };
    loop {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "never stopped mid-file"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        if staged() {
            signal(child.id(), "-STOP");
            if committed(w) > 0 && ready(w) {
                return;
            }
            signal(child.id(), "-CONT");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The furthest committed unit of any file in the work's ledger (0 before the first
/// commit, or while the ledger cannot be read).
pub fn committed(w: &Work) -> i64 {
    try_query(w, "SELECT COALESCE(MAX(committed_seq), 0) FROM files")
        .and_then(|rows| rows[0][0].as_deref()?.parse().ok())
        .unwrap_or(0)
}

/// A query on the work's ledger while a run may be creating it: `None` until it can be
/// read (a SQLite file not made yet is not made by asking).
pub fn try_query(w: &Work, sql: &str) -> Option<Vec<Vec<Option<String>>>> {
    let cfg = tallyman::config::Config::load(&w.config()).unwrap();
    if matches!(&cfg.paths.ledger_at, tallyman::ledger::Location::Sqlite(p) if !p.exists()) {
        return None;
    }
    tallyman::ledger::Ledger::open_in(&cfg.paths)
        .and_then(|l| l.inspect(sql))
        .ok()
}

/// The project's ERP simulator on a loopback port, asking for `token`, with orders not
/// checked against customers.
pub fn erp_sim(token: &str, cfg: tallyman::erpsim::SimConfig) -> tallyman::erpsim::Simulator {
    tallyman::erpsim::Simulator::start(
        "127.0.0.1:0",
        tallyman::erpsim::SimConfig {
            token: Some(token.into()),
            check_order_customer: false,
            ..cfg
        },
    )
    .unwrap()
}

/// `n` customers in the bundled CSV layout, with ids `<prefix>-000` on.
pub fn customers_csv(n: usize, prefix: &str) -> Vec<u8> {
    let mut s =
        String::from("customer_id,name,email,phone,city,postal_code,country,vat_id,active\n");
    for i in 0..n {
        s.push_str(&format!(
            "{prefix}-{i:03},Customer {i},c{i}@{prefix}.example,,Berlin,10115,DE,,yes\n"
        ));
    }
    s.into_bytes()
}

impl Work {
    /// Adds an http target `erp` at `url` (token from `ERP_TOKEN`) taking every entity,
    /// with `extra` config lines.
    pub fn add_erp_target(&self, url: &str, extra: &str) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        std::fs::write(
            self.config(),
            text + &format!(
                "\n[[targets]]\nname = \"erp\"\nkind = \"http\"\nbase_url = \"{url}\"\ntoken_env = \"ERP_TOKEN\"\n{extra}\n"
            ),
        )
        .unwrap();
    }

    /// A second config over the same folders and ledger with a `work-<name>/` of its own
    /// (its OS locks, claimed inputs, staged output and rate-limit bucket), as on another
    /// host.
    pub fn other_worker(&self, name: &str) -> PathBuf {
        let cfg = self.dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(self.config()).unwrap();
        assert!(text.contains("work = \"work\""));
        let own = format!("work = \"work-{name}\"");
        std::fs::write(&cfg, text.replace("work = \"work\"", &own)).unwrap();
        std::fs::create_dir(self.dir.join(format!("work-{name}"))).unwrap();
        cfg
    }
}
