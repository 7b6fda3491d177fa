//! Fuzzes the idoc reader: any input must end in units or a FileError, never a panic, hang
//! or unbounded allocation; and one that reads whole must read the same when restarted at
//! any of its marks, as a resumed file is.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tallyman::format::testing::fuzz_restarts(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../formats")),
        "idoc",
        data,
    );
});
