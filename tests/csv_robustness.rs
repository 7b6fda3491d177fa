//! Hostile and mangled input never panics, hangs or allocates without bound: every
//! bundled CSV definition reads byte-level mutations of the samples and random bytes, and
//! each file ends either in units or in a positioned `FileError`.

use std::path::Path;

use tallyman::format::registry::load_formats;
use tallyman::format::testing::{ctx_for, read_all_with};
use tallyman::format::{Diagnostics, Limits};
use tallyman::unit::LineVerdict;

/// A small deterministic generator (xorshift) so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_and_random_input_is_handled() {
    let mut d = Diagnostics::default();
    let set = load_formats(Path::new("formats"), &mut d);
    let csv: Vec<_> = set.formats.iter().filter(|f| f.kind() == "csv").collect();
    assert_eq!(csv.len(), 4);
    let seeds: Vec<Vec<u8>> = std::fs::read_dir("samples/inbox")
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "csv"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    let specials: &[u8] = b"\"\r\n,;\0\xff\xfe\xef\xbb\xbf";
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("input.csv");
    let mut ctx = ctx_for(&p);
    ctx.limits = Limits {
        max_record_bytes: 256,
        max_unit_lines: 3,
        ..Limits::default()
    };
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut rejected_rows = 0;
    for round in 0..300 {
        let mut data = if round % 5 == 4 {
            (0..rng.below(600)).map(|_| rng.next() as u8).collect()
        } else {
            seeds[round % seeds.len()].clone()
        };
        for _ in 0..1 + rng.below(8) {
            if data.is_empty() {
                break;
            }
            let at = rng.below(data.len());
            match rng.below(4) {
                0 => data[at] = specials[rng.below(specials.len())],
                1 => data.insert(at, specials[rng.below(specials.len())]),
                2 => {
                    data.remove(at);
                }
                _ => {
                    let run = vec![b'x'; rng.below(600)];
                    data.splice(at..at, run);
                }
            }
        }
        std::fs::write(&p, &data).unwrap();
        for f in &csv {
            let r = read_all_with(f.as_ref(), &p, &ctx);
            if let Some(e) = &r.error {
                assert!(!e.reason.rule.is_empty() && !e.reason.message.is_empty());
            }
            for u in &r.units {
                assert!(u.lines.len() <= 3, "unit bigger than max_unit_lines");
                for (v, l) in u.eval.verdicts.iter().zip(&u.lines) {
                    assert!(l.raw.len() <= 2048 + 32);
                    if let LineVerdict::Rejected(why) = v {
                        rejected_rows += 1;
                        assert!(l.pos.line >= 1 && !why.message.is_empty());
                    }
                }
            }
        }
    }
    assert!(rejected_rows > 0);
}

/// Streams a large generated file (about 60 MB) through `orders-csv` without keeping
/// units, to check time and flat memory by hand: `cargo test --release --test
/// csv_robustness -- --ignored` under `/usr/bin/time -v`.
#[test]
#[ignore]
fn large_file_streams() {
    use std::io::Write;
    let mut d = Diagnostics::default();
    let set = load_formats(Path::new("formats"), &mut d);
    let f = set.by_name("orders-csv").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("orders-big.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    writeln!(
        w,
        "order_no,line_no,order_date,customer_id,sku,description,quantity,unit_price,currency"
    )
    .unwrap();
    let orders = 300_000;
    for o in 0..orders {
        for l in 1..=3 {
            writeln!(
                w,
                "PO-{o},{l},2026-11-01,C-{},SKU-{l}00,\"Widget, size {l}\",{l},2.50,EUR",
                o % 977
            )
            .unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);
    let ctx = ctx_for(&p);
    let mut reader = f.open(&p, &ctx).unwrap();
    let (mut applied, mut total) = (0u64, 0u64);
    while let Some(mut u) = reader.next_unit().unwrap() {
        total += 1;
        let e = u.evaluate();
        if !e.is_rejected() && !e.records.is_empty() {
            applied += 1;
        }
    }
    assert_eq!((total, applied), (orders + 1, orders));
}
