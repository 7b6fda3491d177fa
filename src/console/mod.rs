//! `tallyman serve`: the operations console, a small web server over the ledger for the
//! people a terminal does not suit — the business reviewer who fixes rejected lines and
//! whoever is asked "are the integrations healthy?".
//!
//! Pages are rendered on the server (maud, which escapes every value: file names and partner
//! data are untrusted text) and work without JavaScript; charts are inline SVG. Every action
//! that changes state is a POST carrying the session's CSRF token and writes an audit row
//! naming the actor — the OS user on a loopback bind without a token, else the console
//! token's name. A non-loopback bind without a token is refused at start. Sensitive values
//! stay masked; showing one is an explicit, audited action.
//!
//! The ledger is a rusqlite connection (not `Sync`): each request opens its own on a
//! blocking thread, and SQLite's WAL lets the console read while a run writes.

mod actions;
mod app;
pub(crate) mod auth;
mod charts;
mod dashboard;
mod exceptions;
mod files;
mod hooks;
mod html;
mod records;
mod reveal;

use std::future::IntoFuture;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::config::Config;

pub use auth::{Token, TOKEN_ENV};
pub use hooks::{save_into_inbox, Hooks, ReconcileFn, UploadFn};

/// Where `serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How a console is started.
#[derive(Clone)]
pub struct Options {
    /// `ADDR:PORT` (`127.0.0.1:0` for any free port).
    pub listen: String,
    /// Required to log in when set; without it only a loopback bind is allowed.
    pub token: Option<Token>,
    /// The actor of audit rows when there is no token.
    pub os_user: String,
    pub hooks: Hooks,
}

/// Why a console did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("refusing to listen on {0} without a token: set {TOKEN_ENV} (name:secret) or listen on a loopback address such as 127.0.0.1")]
    NeedsToken(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("ledger: {0}")]
    Ledger(#[from] crate::ledger::LedgerError),
}

/// A running console. Stops when dropped.
pub struct Console {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Console {
    /// Binds and serves on a thread of its own; returns at once.
    pub fn start(cfg: Config, opts: Options) -> Result<Console, StartError> {
        let addrs: Vec<SocketAddr> = opts
            .listen
            .to_socket_addrs()
            .map_err(|e| StartError::Bind {
                addr: opts.listen.clone(),
                source: e,
            })?
            .collect();
        if opts.token.is_none() && !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(StartError::NeedsToken(opts.listen.clone()));
        }
        // Opening once creates or migrates the ledger before the first request needs it.
        drop(crate::ledger::Ledger::open_at(cfg.paths.ledger_at.clone())?);
        let listener = std::net::TcpListener::bind(&addrs[..]).map_err(|e| StartError::Bind {
            addr: opts.listen.clone(),
            source: e,
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("console")
            .enable_all()
            .build()?;
        let listener = {
            let _ctx = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let state = Arc::new(app::AppState::new(cfg, opts));
        let router = app::router(state);
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                rt.block_on(async move {
                    let serve = axum::serve(listener, router);
                    tokio::select! {
                        r = serve.into_future() => {
                            if let Err(e) = r {
                                tracing::error!("console: server stopped: {e}");
                            }
                        }
                        _ = rx => {}
                    }
                });
            })?;
        Ok(Console {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `tallyman serve [--listen ADDR:PORT]` with the default hooks (an uploaded correction is
/// saved into the inbox; no "reconcile now").
pub fn serve(config_path: &Path, listen: &str) -> anyhow::Result<i32> {
    serve_with(config_path, listen, Hooks::default())
}

/// `tallyman serve` with the given integration hooks. Serves until SIGTERM or SIGINT, then
/// exits 0; exit 2 when the config, the token or the address is refused.
pub fn serve_with(config_path: &Path, listen: &str, hooks: Hooks) -> anyhow::Result<i32> {
    let cfg = match Config::load(config_path) {
        Ok(c) => c,
        Err(errs) => {
            crate::complain!(
                "config {} has {} error(s):",
                config_path.display(),
                errs.len()
            );
            for e in errs {
                crate::logging::error_detail(&e.to_string());
            }
            return Ok(2);
        }
    };
    crate::fsutil::set_file_mode(cfg.permissions.file_mode);
    crate::fsutil::apply_umask(cfg.permissions.dir_mode);
    let token = match Token::from_env() {
        Ok(t) => t,
        Err(why) => {
            crate::complain!("{why}");
            return Ok(2);
        }
    };
    let opts = Options {
        listen: listen.to_string(),
        token,
        os_user: auth::os_user(),
        hooks,
    };
    let who = match &opts.token {
        Some(t) => format!("log in with the token '{}' from {TOKEN_ENV}", t.name),
        None => format!("acting as {} (loopback, no token)", opts.os_user),
    };
    let console = match Console::start(cfg, opts) {
        Ok(c) => c,
        Err(e) => {
            crate::complain!("{e}");
            return Ok(2);
        }
    };
    crate::say!(
        "console at {}/ ({who}); stop with Ctrl-C",
        console.base_url()
    );
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    signals.forever().next();
    drop(console);
    Ok(0)
}
