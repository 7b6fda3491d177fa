//! STATUS acknowledgements: what each IDoc is answered and to whom, status codes per
//! type, answers made as batches commit or taken up by a resumed read, and a resumed
//! read's IDocs as read through.

use super::*;

#[test]
fn status_ack_reports_each_idoc_to_its_sender() {
    let bad = order(
        "0000000000000002",
        "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR><CURCY>EURO</CURCY></E1EDK01>",
    );
    let r = read(&wrap(&[order("0000000000000001", ORDER_BODY), bad]));
    assert_eq!(r.acks.len(), 1);
    let a = &r.acks[0];
    assert_eq!(a.kind, "STATUS");
    assert_eq!(a.partner, "PRDCLNT100");
    assert_eq!(a.control_no, Some(1));
    assert_eq!(a.file_name, "STATUS_PRDCLNT100_0000000000000001.xml");
    let x = String::from_utf8(a.content.bytes().unwrap()).unwrap();
    assert!(x.contains("<IDOCTYP>SYSTAT01</IDOCTYP>"));
    assert!(x.contains("<MESTYP>STATUS</MESTYP>"));
    // Sender and receiver swapped.
    assert!(x.contains("<SNDPRN>TALLYMAN</SNDPRN>"), "{x}");
    assert!(x.contains("<RCVPRN>PRDCLNT100</RCVPRN>"));
    assert!(x.contains("<RCVPOR>SAPPRD</RCVPOR>"));
    let stats: Vec<&str> = x.split("<E1STATS SEGMENT=\"1\">").skip(1).collect();
    assert_eq!(stats.len(), 2);
    assert!(stats[0].contains("<DOCNUM>0000000000000001</DOCNUM>"));
    assert!(stats[0].contains("<STATUS>53</STATUS>"));
    assert!(stats[1].contains("<DOCNUM>0000000000000002</DOCNUM>"));
    assert!(stats[1].contains("<STATUS>51</STATUS>"));
    assert!(stats[1].contains("<STAPA1>idoc-field-length</STAPA1>"));
    assert!(stats[1].contains("<SEGFLD>CURCY</SEGFLD>"));
    // The ack is itself well-formed IDoc XML our reader can stream.
    let back = read(&x);
    assert!(back.error.is_none(), "{:?}", back.error);
    assert_eq!(back.units.len(), 1);
    assert_eq!(rejected_rules(&back, 0), vec!["idoc-unknown-type"]);
}

#[test]
fn status_skips_only_the_idoc_without_a_usable_number() {
    let r = read(&wrap(&[
        order("Avon", ORDER_BODY),
        order("", ORDER_BODY),
        order("42", ORDER_BODY),
        order("12345678901234567", ORDER_BODY),
    ]));
    assert_eq!(r.acks.len(), 1);
    let x = String::from_utf8(r.acks[0].content.bytes().unwrap()).unwrap();
    let docnums: Vec<&str> = x
        .split("<E1STATS SEGMENT=\"1\">")
        .skip(1)
        .map(|e| {
            e.split("<DOCNUM>")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(docnums, vec!["0000000000000042"]);
    for u in [0, 1, 3] {
        let note = r.units[u].eval.detail["status_ack"].as_str().unwrap();
        assert!(note.starts_with("not sent: DOCNUM"), "{note}");
    }
    assert!(r.units[2].eval.detail.get("status_ack").is_none());
}

#[test]
fn file_error_acks_every_idoc_read_as_not_posted() {
    let full = wrap(&[order("7", ORDER_BODY)]);
    let r = read(&format!("{}<broken", &full[..full.len() - 12]));
    assert!(r.error.is_some());
    let x = String::from_utf8(r.acks[0].content.bytes().unwrap()).unwrap();
    assert!(x.contains("<STATUS>51</STATUS>"));
    assert!(x.contains("File rejected"));
}

#[test]
fn status_codes_are_configurable_per_type() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("formats/idoc/orders05.toml"),
    )
    .unwrap()
    .replace(
        "customer_segments = true",
        "customer_segments = true\nstatus_applied = \"41\"\nstatus_rejected = \"40\"",
    );
    std::fs::write(dir.path().join("orders05.toml"), text).unwrap();
    let mut d = Diagnostics::default();
    let set = load_formats(dir.path(), &mut d);
    assert!(d.is_empty(), "{:?}", d.errors);
    let f = set.by_name("idoc").unwrap();
    let p = dir.path().join("in.xml");
    let bad = order(
        "2",
        "<E1EDK01 SEGMENT=\"1\"><CURCY>EURO</CURCY><BELNR>1</BELNR></E1EDK01>",
    );
    std::fs::write(&p, wrap(&[order("1", ORDER_BODY), bad])).unwrap();
    let r = read_all_with(f.as_ref(), &p, &ctx_for(&p));
    let x = String::from_utf8(r.acks[0].content.bytes().unwrap()).unwrap();
    assert!(x.contains("<STATUS>41</STATUS>"), "{x}");
    assert!(x.contains("<STATUS>40</STATUS>"), "{x}");
    assert!(!x.contains("<STATUS>5"), "{x}");

    std::fs::write(
        dir.path().join("orders05.toml"),
        "kind = \"idoc-type\"\ntypes = [\"X1\"]\nstatus_applied = \"posted\"\n",
    )
    .unwrap();
    let mut d = Diagnostics::default();
    load_formats(dir.path(), &mut d);
    assert!(
        d.errors
            .iter()
            .any(|e| e.line == Some(3) && e.message.contains("two-digit")),
        "{:?}",
        d.errors
    );
}

/// Every corpus and sample IDoc file that reads without a file error: a read restarted at
/// any mark returns the IDocs an uninterrupted read returned from there, evaluated alike,
/// and finishes with the same STATUS acknowledgement (which answers every IDoc).
#[test]
fn a_resumed_read_restarts_at_every_mark_as_if_read_through() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let f = format();
    let mut tried = 0;
    for dir in ["tests/corpus/idoc", "samples/inbox"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            let ctx = ctx_for(&p);
            let readable = p.extension().is_some_and(|x| x == "xml" || x == "idoc")
                && read_all_with(f.as_ref(), &p, &ctx).error.is_none();
            if readable {
                tried += crate::format::testing::assert_restarts_match(f.as_ref(), &p, &ctx);
            }
        }
    }
    assert!(tried >= 15, "{tried} marks tried");
}

/// The files the STATUS answering tests go over: many IDocs from three senders, some
/// rejected and one not answerable (no DOCNUM), written into `dir`; then every corpus and
/// sample IDoc file.
fn answering_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let many = dir.join("many.xml");
    let idocs: Vec<String> = (1..=40)
        .map(|i| {
            let body = match i % 7 {
                0 => ORDER_BODY.replace("5.000", "five"),
                _ => ORDER_BODY.to_string(),
            };
            let docnum = if i == 13 {
                String::new()
            } else {
                i.to_string()
            };
            order(&docnum, &body).replace("PRDCLNT100", &format!("PRD{}", i % 3))
        })
        .collect();
    std::fs::write(&many, wrap(&idocs)).unwrap();
    let mut files = vec![many];
    for dir in ["tests/corpus/idoc", "samples/inbox"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    files.retain(|p| p.extension().is_some_and(|x| x == "xml" || x == "idoc"));
    files
}

/// A STATUS made while batches commit (each batch's IDocs answered after its commit) is
/// the one made at the end, for every corpus and sample file, with the file's own outcome
/// and with the file rejected whole at its end (every answer made before is made again).
#[test]
fn a_status_answered_as_batches_commit_is_the_one_answered_at_the_end() {
    let f = format();
    let rejected = crate::format::FileError::new("review", "held for review and refused");
    let dir = tempfile::tempdir().unwrap();
    let files = answering_files(dir.path());
    let mut handed = 0;
    for p in files {
        for step in [1, 2, 5] {
            handed += crate::format::testing::assert_answering_matches(f.as_ref(), &p, step, None);
            crate::format::testing::assert_answering_matches(f.as_ref(), &p, step, Some(&rejected));
        }
    }
    assert!(handed >= 80, "{handed} hand-overs");
}

/// A resumed file's STATUS takes up the answers its stopped read kept (see
/// `crate::idoc::ack::keep`) instead of answering every IDoc before its mark again, and answers
/// as a read through does whether the kept file is whole, cut short anywhere or damaged:
/// every corpus and sample file and 40 IDocs from three senders, restarted at marks over
/// each, answered every 1, 3 and 7 IDocs.
#[test]
fn a_resumed_status_takes_up_the_answers_kept_and_answers_as_read_through() {
    let f = format();
    let dir = tempfile::tempdir().unwrap();
    let files = answering_files(dir.path());
    let mut restarts = 0;
    for p in files {
        for step in [1, 3, 7] {
            restarts += crate::format::testing::assert_answers_kept_across_restarts(
                f.as_ref(),
                &p,
                step,
                4,
            );
        }
    }
    assert!(restarts >= 100, "{restarts} restarts");
}
