//! tallyman: a file and EDI batch integration engine.
//!
//! Data flows intake → read → validate + map → apply → ledger → finish. The binary in
//! `main.rs` is a thin command line over this library; every stage lives in its own module
//! so it can be tested on its own.

pub mod canonical;
pub mod format;
pub mod idoc;
pub mod sheet;
pub mod tabular;
pub mod unit;
