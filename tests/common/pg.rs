//! A real PostgreSQL server for tests, started by the test process itself from Debian's
//! `postgresql` package (`initdb` and `pg_ctl`, as the `postgres` user when running as
//! root) on a loopback port, in a scratch folder. One server serves every test of a
//! process; each test gets a database of its own. A watcher process stops the server and
//! removes its folder once the test process is gone, however it ends.
//!
//! Shared by the library's unit tests (through `#[path]`) and the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    root: bool,
}

/// The process's one server, started on first use.
pub fn server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(PgServer::start)
}

/// A fresh, empty database on the process's server: its URL.
pub fn fresh_database() -> String {
    server().create_database()
}

fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|b| b.join("initdb").exists());
    found.sort();
    found.pop().expect(
        "PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)",
    )
}

impl PgServer {
    pub fn start() -> PgServer {
        let root = unsafe { libc::geteuid() } == 0;
        let dir = std::env::temp_dir().join(format!(
            "tallyman-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let server = PgServer {
            dir,
            bin: pg_bin(),
            port,
            root,
        };
        if root {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&server.dir)
                .status()
                .unwrap();
            assert!(ok.success(), "chown postgres {}", server.dir.display());
        }
        let data = server.dir.join("data");
        server.pg(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "tallyman".as_ref(),
                "--auth=trust".as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
            ],
        );
        server.watch_for_exit();
        server.start_again();
        server
    }

    /// Starts the server (again, after [`stop`]) on its port.
    pub fn start_again(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        self.pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "30".as_ref(),
                "-o".as_ref(),
                opts.as_ref(),
                "start".as_ref(),
            ],
        );
    }

    /// Stops the server at once (connections are cut, as in a crash or a restart).
    pub fn stop(&self) {
        let data = self.dir.join("data");
        self.pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://tallyman@127.0.0.1:{}/{database}", self.port)
    }

    pub fn create_database(&self) -> String {
        let name = format!("t{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect to the test PostgreSQL");
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        self.url(&name)
    }

    fn pg(&self, tool: &str, args: &[&std::ffi::OsStr]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A shell that waits for this process to end, then stops the server and removes its
    /// folder: test processes end without running destructors of statics.
    #[allow(clippy::zombie_processes)] // it is meant to outlive this process
    fn watch_for_exit(&self) {
        let data = self.dir.join("data");
        let ctl = self.bin.join("pg_ctl");
        let as_pg = if self.root {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {as_pg}'{ctl}' -D '{data}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            ctl = ctl.display(),
            data = data.display(),
            dir = self.dir.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
