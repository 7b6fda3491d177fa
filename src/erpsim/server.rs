//! The simulator as a value the caller owns: `Simulator::start` binds the port, starts a
//! tokio runtime on its own thread and returns at once; dropping it stops the server. The API
//! is synchronous so tallyman's tests and `tallyman demo` (plain threads, no async) can start
//! an ERP in-process and read its stats directly.

use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::extract::DefaultBodyLimit;
use axum::routing::any;
use axum::Router;
use tokio::sync::oneshot;

use super::config::SimConfig;
use super::conn::{Conn, SimListener};
use super::reply::{self, MAX_BODY};
use super::state::Shared;
use super::stats::Stats;
use super::{api, control};

/// A running reference ERP. Stops on [`Simulator::stop`] or drop.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/{*rest}", any(api::handle))
        .merge(control::routes())
        .fallback(reply::not_found)
        .method_not_allowed_fallback(reply::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

impl Simulator {
    /// Binds `addr` (`"127.0.0.1:0"` for any free port), loads `cfg.data_file` if set, and
    /// serves until stopped. Fails on an invalid configuration, a port in use or a damaged
    /// data file.
    pub fn start(addr: &str, cfg: SimConfig) -> io::Result<Simulator> {
        cfg.check()
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        let shared = Arc::new(Shared::open(cfg)?);
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        // Two workers: enough for concurrent clients, and tests start many simulators.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("erp-sim")
            .enable_all()
            .build()?;
        let listener = {
            let _ctx = rt.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let app = router(Arc::clone(&shared)).into_make_service_with_connect_info::<Conn>();
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("erp-sim".into())
            .spawn(move || {
                rt.block_on(async move {
                    let serve = axum::serve(SimListener(listener), app);
                    tokio::select! {
                        r = serve.into_future() => {
                            if let Err(e) = r {
                                tracing::error!("erp-sim: server stopped: {e}");
                            }
                        }
                        _ = rx => {}
                    }
                });
                // Dropping the runtime cancels open connections and held requests; a disk write
                // in progress runs to its end first.
                drop(rt);
            })?;
        Ok(Simulator {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://IP:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The same as `GET /_sim/stats`.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    pub fn config(&self) -> SimConfig {
        self.shared.config()
    }

    /// The same as `PUT /_sim/config` (the data file stays as started). An invalid
    /// configuration is refused and the running one kept.
    pub fn set_config(&self, cfg: SimConfig) -> io::Result<()> {
        self.shared
            .set_config(cfg)
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))
    }

    /// The same as `PUT /_sim/faults`: the next API requests get these faults, one each
    /// (`"drop_after"`, `"ok"`, `"503"`, `"slow:2000"`, ...).
    pub fn set_faults(&self, names: &[&str]) -> io::Result<()> {
        let mut script = Vec::with_capacity(names.len());
        for n in names {
            let f = super::config::Fault::parse(n).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("unknown fault {n:?}"))
            })?;
            script.push(f);
        }
        self.shared.lock().faults.set_script(script);
        Ok(())
    }

    /// Wakes every request held by a `hold` fault; returns how many were held.
    pub fn release(&self) -> u64 {
        self.shared.release_held()
    }

    /// Every record by collection, as `GET /_sim/records`.
    pub fn records(&self) -> serde_json::Value {
        self.shared.lock().dump()
    }

    pub fn stop(self) {}
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
