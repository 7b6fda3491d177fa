//! The reference ERP simulator: a small REST ERP that tallyman's delivery code, its tests, the
//! demo and users' pre-go-live trials run against. Real ERPs fail in ways that decide whether
//! delivery is "exactly once in effect" — retries after a dropped answer, duplicate business
//! keys, rate limits, idempotency keys honoured or ignored — so every one of those behaviours
//! is a switch ([`SimConfig`]) that can be flipped while tallyman runs, and what the ERP saw
//! is counted ([`Stats`]) so a test can prove, for example, that no business key was created
//! twice and that the client never exceeded the rate limit.
//!
//! The API (`/api/v1/{collection}`), the control routes (`/_sim/...`) and the switches are
//! described in the README section "Reference ERP simulator".

mod api;
mod config;
mod conn;
mod control;
mod faults;
mod idempotency;
mod ops;
mod persist;
mod reply;
mod server;
mod state;
mod stats;
mod store;
mod validate;
mod window;

pub use config::{Fault, SimConfig};
pub use server::Simulator;
pub use stats::{Duplicate, Stats};

/// The collections of the API, as they appear in URLs.
pub const COLLECTIONS: [&str; 7] = [
    "customers",
    "products",
    "suppliers",
    "orders",
    "invoices",
    "shipments",
    "order-acks",
];

/// Largest request body accepted (bigger is a 413).
pub const MAX_BODY_BYTES: usize = reply::MAX_BODY;
