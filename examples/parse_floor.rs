//! The floor for the intake benchmarks: how fast a bare parser reads the same file —
//! the `csv` crate counting records, a memchr split on the X12 segment terminator, a
//! quick-xml event loop over an IDoc file — with no validation, mapping, hashing or
//! ledger. `scripts/bench-*.sh` report tallyman's end-to-end MB/s as a ratio of this, so
//! that figures from a shared, noisy machine compare against something measured in the
//! same run.
//!
//!     cargo run --release --example parse_floor -- csv|x12|idoc FILE
//!
//! Prints `FLOOR kind=… bytes=… units=… secs=… mbps=…` (MB = 10^6 bytes); units are
//! CSV records, X12 segments or XML elements (start and empty tags).

use std::fs::File;
use std::io::{BufReader, Read};
use std::time::Instant;

const BLOCK: usize = 1 << 20;

fn csv_records(path: &str) -> u64 {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .expect("open csv");
    let mut rec = csv::ByteRecord::new();
    let mut n = 0;
    while rdr.read_byte_record(&mut rec).expect("csv record") {
        n += 1;
    }
    n
}

fn x12_segments(path: &str) -> u64 {
    let mut file = File::open(path).expect("open x12");
    let mut buf = vec![0u8; BLOCK];
    let mut len = 0;
    // The ISA segment is fixed-width: its 106th byte (offset 105) is the segment terminator.
    while len < 106 {
        let got = file.read(&mut buf[len..]).expect("read x12");
        assert!(got > 0, "file shorter than an ISA segment");
        len += got;
    }
    let term = buf[105];
    let mut segments = 0;
    loop {
        segments += memchr::memchr_iter(term, &buf[..len]).count() as u64;
        len = file.read(&mut buf).expect("read x12");
        if len == 0 {
            return segments;
        }
    }
}

fn xml_elements(path: &str) -> u64 {
    let file = File::open(path).expect("open xml");
    let mut rdr = quick_xml::Reader::from_reader(BufReader::with_capacity(BLOCK, file));
    let mut buf = Vec::with_capacity(4096);
    let mut n = 0;
    loop {
        match rdr.read_event_into(&mut buf).expect("xml event") {
            quick_xml::events::Event::Start(_) | quick_xml::events::Event::Empty(_) => n += 1,
            quick_xml::events::Event::Eof => return n,
            _ => {}
        }
        buf.clear();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (kind, path) = match args.as_slice() {
        [_, kind, path] => (kind.as_str(), path.as_str()),
        _ => {
            eprintln!("usage: parse_floor csv|x12|idoc FILE");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let units = match kind {
        "csv" => csv_records(path),
        "x12" => x12_segments(path),
        "idoc" => xml_elements(path),
        other => {
            eprintln!("unknown kind {other:?}: csv, x12 or idoc");
            std::process::exit(2);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(path).expect("stat").len();
    println!(
        "FLOOR kind={kind} bytes={bytes} units={units} secs={secs:.3} mbps={:.1}",
        bytes as f64 / 1e6 / secs
    );
}
