//! A read restarted at a mark, from the reader's snapshots or from the top, returns what
//! reading through returned.

use super::*;

/// The restarts of `a_resumed_read_restarts_at_every_mark_as_if_read_through` (below),
/// with the reader keeping its restart snapshots, as the engine has it do: small files
/// take one at nearly every mark, so most restarts start from a snapshot and pass over the
/// sets after it, under all-or-nothing partners too. Then with the snapshots damaged
/// after the read (cut short, or a byte changed): a restart that cannot trust its
/// snapshot passes over everything from the top, and still returns the same.
#[test]
fn a_read_restarted_from_its_snapshots_returns_what_reading_through_returned() {
    use tallyman::format::testing::{assert_restarts_match_keeping_some, ctx_for};
    let mut with_snapshot = 0;
    let mut files = 0;
    for (f, p, _) in restart_inputs() {
        if read_all(f.as_ref(), &p).error.is_some() {
            continue;
        }
        files += 1;
        let damage: [&dyn Fn(&std::path::Path); 3] = [
            &|_| {},
            &|s| {
                let len = std::fs::metadata(s).map_or(0, |m| m.len());
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .open(s)
                    .and_then(|f| f.set_len(len / 2));
            },
            &|s| {
                if let Ok(mut b) = std::fs::read(s) {
                    let mid = b.len() / 2;
                    if let Some(x) = b.get_mut(mid) {
                        *x ^= 0x20;
                    }
                    std::fs::write(s, b).unwrap();
                }
            },
        ];
        // Every restart also appends snapshots of its own: a few dozen marks a file,
        // spread over it, and fewer with the snapshots damaged.
        for (d, most) in damage.iter().zip([40, 8, 8]) {
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("restart-state");
            let ctx = ctx_for(&p);
            let marks = assert_restarts_match_keeping_some(
                f.as_ref(),
                &p,
                &ctx,
                &state,
                &|| d(&state),
                most,
            );
            with_snapshot += marks.iter().filter(|m| !m.state.is_null()).count();
        }
    }
    assert!(files > 50, "{files} files");
    assert!(
        with_snapshot > 300,
        "{with_snapshot} marks named a snapshot"
    );
}

/// Every corpus interchange that reads without a file error, the bundled samples, and the
/// samples again under all-or-nothing partners (whose group or interchange is one unit):
/// a read restarted at any mark returns the units an uninterrupted read returned from
/// there, evaluated alike, and finishes with the same acknowledgements (which answer
/// every set of the file, those before the mark included).
#[test]
fn a_resumed_read_restarts_at_every_mark_as_if_read_through() {
    use tallyman::format::testing::{assert_restarts_match, ctx_for};
    let restarts = |f: &dyn Format, p: &std::path::Path| {
        if read_all(f, p).error.is_some() {
            return 0;
        }
        assert_restarts_match(f, p, &ctx_for(p))
    };
    let mut tried = 0;
    for (f, p, all_or_nothing) in restart_inputs() {
        match all_or_nothing {
            false => tried += restarts(f.as_ref(), &p),
            true => assert!(restarts(f.as_ref(), &p) >= 1, "{}", p.display()),
        }
    }
    assert!(tried > 300, "{tried} marks tried");
}

/// What the restart tests restart: every corpus interchange and bundled sample, then two
/// samples again under all-or-nothing partners (whose group or interchange is one unit),
/// those marked `true`.
fn restart_inputs() -> Vec<(Arc<dyn Format>, std::path::PathBuf, bool)> {
    let plain = format();
    let mut inputs = Vec::new();
    for dir in ["tests/corpus/x12", "samples/inbox"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "x12" || x == "edi") {
                inputs.push((plain.clone(), p, false));
            }
        }
    }
    for (partner, atomic, sample) in [
        ("GLOBEX", "group", "globex-invoices.x12"),
        ("ACME", "interchange", "acme-orders.x12"),
    ] {
        let def =
            format!("kind = \"x12-partner\"\nsenders = [\"{partner}\"]\natomic = \"{atomic}\"\n");
        let (f, _) = format_with(&[("p.toml", def.as_str())]);
        inputs.push((f, root().join("samples/inbox").join(sample), true));
    }
    inputs
}
