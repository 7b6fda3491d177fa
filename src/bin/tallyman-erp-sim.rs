//! `tallyman-erp-sim`: the reference ERP simulator as a stand-alone server, for trying a
//! tallyman delivery configuration before go-live and for the demo. A thin command line over
//! `tallyman::erpsim`; every flag is a field of `SimConfig`, and the same switches can be
//! changed while it runs with `PUT /_sim/config`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tallyman::erpsim::{SimConfig, Simulator};

/// Reference ERP REST API for tallyman: /api/v1/{customers,products,suppliers,orders,
/// invoices,shipments,order-acks}, control and stats under /_sim.
#[derive(Parser)]
#[command(name = "tallyman-erp-sim", version)]
struct Args {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: String,
    /// Keep the records in this JSON file across restarts (default: in memory).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Require `Authorization: Bearer TOKEN` on API requests (else 401).
    #[arg(long, env = "TALLYMAN_ERP_SIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Answer every API request 403.
    #[arg(long)]
    forbidden: bool,
    /// API requests admitted per sliding 60 s; more → 429 with Retry-After.
    #[arg(long, value_name = "N")]
    rate_limit: Option<u32>,
    /// Ignore Idempotency-Key headers, as many real ERPs do.
    #[arg(long)]
    no_idempotency: bool,
    /// How long an idempotent answer is remembered.
    #[arg(long, value_name = "SECS", default_value_t = 86_400)]
    idempotency_ttl: u64,
    /// Create a second record for an existing external_ref instead of answering 409.
    #[arg(long)]
    allow_duplicates: bool,
    /// No business validation (required fields, order customer).
    #[arg(long)]
    no_validate: bool,
    /// Accept orders whose customer_id names no existing customer.
    #[arg(long)]
    no_customer_check: bool,
    /// Fixed delay before each API request is processed.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Seed of the random faults.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Probability of an injected 429 (Retry-After: 1), not applied.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    status_429: f64,
    /// Probability of an injected 500, not applied.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    status_500: f64,
    /// Probability of an injected 503 (Retry-After: 1), not applied.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    status_503: f64,
    /// Probability of resetting the connection without applying the request.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    reset_before: f64,
    /// Probability of applying the request, then resetting the connection unanswered.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    drop_after: f64,
    /// Probability of applying the request, then answering after --slow-ms.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    slow: f64,
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    slow_ms: u64,
}

impl Args {
    fn config(self) -> SimConfig {
        SimConfig {
            token: self.token,
            forbidden: self.forbidden,
            rate_limit_per_minute: self.rate_limit,
            idempotency: !self.no_idempotency,
            idempotency_ttl_secs: self.idempotency_ttl,
            unique_refs: !self.allow_duplicates,
            validate: !self.no_validate,
            check_order_customer: !self.no_customer_check,
            latency_ms: self.latency_ms,
            seed: self.seed,
            status_429: self.status_429,
            status_500: self.status_500,
            status_503: self.status_503,
            reset_before: self.reset_before,
            drop_after: self.drop_after,
            slow: self.slow,
            slow_ms: self.slow_ms,
            data_file: self.data,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("TALLYMAN_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let listen = args.listen.clone();
    let sim = match Simulator::start(&listen, args.config()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tallyman-erp-sim: cannot start on {listen}: {e}");
            return ExitCode::from(2);
        }
    };
    // Scripts read this line to find the port when started with port 0.
    println!("tallyman-erp-sim listening on {}", sim.base_url());
    let _ = std::io::stdout().flush();
    // Every change is on disk before it is answered, so being killed loses nothing.
    loop {
        std::thread::park();
    }
}
