use std::path::{Path, PathBuf};
use tallyman::format::registry::load_formats;
use tallyman::format::testing::read_all;
use tallyman::format::{Diagnostics, Format};

fn format() -> std::sync::Arc<dyn Format> {
    let mut d = Diagnostics::default();
    let set = load_formats(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("formats"),
        &mut d,
    );
    assert!(
        d.is_empty(),
        "{:#?}",
        d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    set.by_name("idoc").expect("idoc format")
}

#[test]
fn explore() {
    let f = format();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/idoc");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for p in names {
        let r = read_all(f.as_ref(), &p);
        println!(
            "=== {} err={:?}",
            p.display(),
            r.error.as_ref().map(|e| e.to_string())
        );
        for u in &r.units {
            println!(
                "  unit {} {:?} errs={:?}",
                u.label,
                u.status(),
                u.eval.unit_errors
            );
            for (i, v) in u.eval.verdicts.iter().enumerate() {
                if let tallyman::unit::LineVerdict::Rejected(r) = v {
                    println!("    {} {:?}", u.lines[i].pos, r);
                }
            }
            for rec in &u.eval.records {
                println!(
                    "  rec {} {}",
                    rec.key,
                    rec.body.to_string().chars().take(300).collect::<String>()
                );
            }
        }
        for a in &r.acks {
            println!("  ack {} {}", a.file_name, a.content.len());
        }
    }
}
