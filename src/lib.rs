//! tallyman: a file and EDI batch integration engine.
//!
//! Data flows intake → read → validate + map → apply → ledger → finish. The binary in
//! `main.rs` is a thin command line over this library; every stage lives in its own module
//! so it can be tested on its own.

// Data errors carry their full position and reason by value (about 150 bytes); they are
// built only on the cold path of bad input, so boxing them would buy nothing but noise.
#![allow(clippy::result_large_err)]

pub mod bundled;
pub mod canonical;
pub mod canonical_body;
mod canonical_json;
pub mod commands;
pub mod config;
pub mod console;
pub mod delivery;
pub mod display;
pub mod engine;
pub mod erpsim;
pub mod format;
pub mod fsutil;
pub mod idoc;
pub mod intake;
pub mod ledger;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod out;
pub mod progress;
pub mod records;
pub mod report;
pub mod review;
pub mod sheet;
pub mod sink;
pub mod small_text;
pub mod tabular;
pub mod unit;
mod varint;
pub mod x12;
