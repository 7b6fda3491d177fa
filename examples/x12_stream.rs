//! Streams an X12 file through the `x12` format the way the pipeline does (read a unit,
//! evaluate it, drop it) and prints unit counts, so memory and throughput can be measured
//! on large files: `cargo run --release --example x12_stream -- FILE`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tallyman::format::testing::ctx_for;
use tallyman::format::Diagnostics;
use tallyman::unit::LineVerdict;

fn main() -> anyhow::Result<()> {
    let file: PathBuf = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: x12_stream FILE"))?
        .into();
    let formats = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("formats");
    let mut diags = Diagnostics::default();
    let set = tallyman::format::registry::load_formats(&formats, &mut diags);
    let x12 = set
        .by_name("x12")
        .ok_or_else(|| anyhow::anyhow!("no x12 format"))?;
    let start = std::time::Instant::now();
    let mut reader = x12.open(&file, &ctx_for(&file))?;
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut segments = 0u64;
    loop {
        match reader.next_unit() {
            Ok(Some(mut unit)) => {
                segments += unit.lines.len() as u64;
                let eval = unit.evaluate();
                let kind = if eval.is_rejected() {
                    "rejected"
                } else if eval
                    .verdicts
                    .iter()
                    .all(|v| matches!(v, LineVerdict::Skipped(_)))
                {
                    "skipped"
                } else {
                    "accepted"
                };
                *counts.entry(kind).or_default() += 1;
            }
            Ok(None) => break,
            Err(e) => {
                println!("file error: {e}");
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&file)?.len();
    println!(
        "{segments} segments, units {counts:?}, {:.1} MB in {secs:.2} s ({:.1} MB/s)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs
    );
    Ok(())
}
