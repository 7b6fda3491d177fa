//! Fuzzes the sheet reader: any input must end in units or a FileError, never a panic, hang
//! or unbounded allocation.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tallyman::format::testing::fuzz_read(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../formats")),
        "sheet",
        data,
    );
});
