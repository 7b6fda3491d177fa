//! Every line's outcome stays answerable when the ledger keeps a row only for lines with a
//! reason of their own: the console's lines, "what happened to line N", the reject report
//! and the corrections file of a file rejected whole after its batches were committed.

mod common;

use common::{ledger_counts, orders_csv, Work};
use tallyman::ledger::Ledger;

/// `(line, byte)` of every line of `bytes`, the header included.
fn line_starts(bytes: &[u8]) -> Vec<(i64, i64)> {
    let mut out = vec![(1, 0)];
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' && i + 1 < bytes.len() {
            out.push((out.len() as i64 + 1, i as i64 + 1));
        }
    }
    out
}

/// Makes the bundled orders format reject a file whole for one bad document.
fn all_or_nothing(work: &Work) {
    let fmt = work.dir.join("formats/orders.toml");
    let def = std::fs::read_to_string(&fmt).unwrap();
    let def: String = def
        .lines()
        .filter(|l| !l.starts_with("max_reject_ratio"))
        .map(|l| l.replace("\"accept-valid\"", "\"all-or-nothing\"") + "\n")
        .collect();
    std::fs::write(&fmt, def).unwrap();
}

fn ledger(work: &Work) -> Ledger {
    work.ledger()
}

#[test]
fn applied_lines_have_no_rows_yet_every_line_is_shown_where_it_is() {
    let work = Work::new(7);
    let input = orders_csv(20, 5, "PO");
    work.drop_file("orders.csv", &input);
    work.run(&["run"]);
    let l = ledger(&work);
    let row = l.find_files("orders.csv").unwrap().remove(0);
    assert_eq!(
        (row.counts.lines_applied, row.counts.lines_rejected),
        (48, 12)
    );

    let starts = line_starts(&input);
    let lines = l.file_lines(row.id, 0, 1000, false).unwrap();
    assert_eq!(lines.len(), 61, "the header and 60 order lines");
    assert_eq!(l.line_count(row.id).unwrap(), 61);
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v.ordinal, i as i64);
        assert_eq!((v.line, v.byte), starts[i], "line {i}: {v:?}");
    }
    let statuses: Vec<&str> = lines.iter().map(|v| v.status.as_str()).collect();
    assert_eq!(statuses[0], "skipped");
    assert!(statuses[1..13].iter().all(|s| *s == "applied"));
    assert!(statuses[13..16].iter().all(|s| *s == "rejected"));

    let page = l.file_lines(row.id, 14, 3, false).unwrap();
    let ordinals: Vec<i64> = page.iter().map(|v| v.ordinal).collect();
    assert_eq!(ordinals, vec![14, 15, 16], "a page starts mid-document");

    let src = l.line_source(row.id, 12).unwrap().unwrap();
    assert_eq!((src.byte, src.end), (starts[12].1, Some(starts[13].1)));

    let counts = ledger_counts(&work);
    assert_eq!(counts.get("applied"), Some(&48));
    assert_eq!(counts.get("rejected"), Some(&12));
}

#[test]
fn a_file_rejected_whole_lists_every_line_and_corrects_every_row() {
    let work = Work::new(7);
    all_or_nothing(&work);
    let input = orders_csv(10, 10, "PO");
    work.drop_file("orders.csv", &input);
    let out = work.run(&["run"]);
    let l = ledger(&work);
    assert!(
        !l.find_files("orders.csv").unwrap().is_empty(),
        "{}",
        common::text(&out)
    );
    let row = l.find_files("orders.csv").unwrap().remove(0);
    assert_eq!(row.outcome.as_deref(), Some("rejected"), "{row:?}");
    assert_eq!(row.counts.lines_rejected, 30);

    // Only the lines rejected as they were read have rejected rows (the bad order's
    // three); the other nine orders' lines are told by their documents' rows, rejected late.
    let rows = work.query_i64("SELECT COUNT(*) FROM lines WHERE status='rejected'");
    assert_eq!(rows, 3, "a row only for the lines of the one bad order");
    let counts = ledger_counts(&work);
    assert_eq!(counts.get("rejected"), Some(&30), "{counts:?}");

    let rejects = l.rejects(row.id).unwrap();
    let starts = line_starts(&input);
    let got: Vec<(i64, i64)> = rejects.iter().map(|r| (r.line, r.byte)).collect();
    assert_eq!(got, starts[1..].to_vec(), "every data line, where it is");
    for r in &rejects[..27] {
        assert!(
            r.key.is_some() && r.unit.contains(r.key.as_deref().unwrap()),
            "{r:?}"
        );
        assert!(
            r.message
                .as_deref()
                .unwrap()
                .starts_with("file rejected whole"),
            "{r:?}"
        );
    }
    let shown = l.file_lines(row.id, 0, 100, true).unwrap();
    let shown: Vec<(i64, Option<&str>)> =
        shown.iter().map(|v| (v.line, v.rule.as_deref())).collect();
    let listed: Vec<(i64, Option<&str>)> = rejects
        .iter()
        .map(|r| (r.line, r.rule.as_deref()))
        .collect();
    assert_eq!(shown, listed, "the console lists what the report does");
    assert_eq!(rejects[0].rule.as_deref(), Some("file-rejected"));
    assert_eq!(
        rejects[28].rule.as_deref(),
        Some("min"),
        "{:?}",
        rejects[28]
    );

    let corrections = std::fs::read_dir(work.dir.join("reports"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains(".corrections."))
        .expect("a corrections file")
        .path();
    let text = String::from_utf8(std::fs::read(corrections).unwrap()).unwrap();
    let body: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(body.len(), 30, "every order line, once:\n{text}");
    let original = String::from_utf8(input).unwrap();
    for (got, want) in body.iter().zip(original.lines().skip(1)) {
        assert!(got.contains(want), "{got:?} keeps {want:?}");
    }
}

/// A file rejected whole after its batches were committed has its lines told from its
/// documents' rows, read a chunk of units at a time (the ledger's `UNITS_AT_A_TIME`, 256;
/// its lines' rows were once all read into memory at once, 734 MiB for a 1 GB file).
/// Every line of every chunk is still rejected, once, and only the lines rejected as they
/// were read have rows.
#[test]
fn a_file_rejected_whole_past_a_chunk_of_units_rejects_every_line_once() {
    let work = Work::new(1000);
    all_or_nothing(&work);
    let orders = 2_500; // more than two chunks
    work.drop_file("orders.csv", &orders_csv(orders, 1000, "PO"));
    work.run(&["run"]);
    let l = ledger(&work);
    let row = l.find_files("orders.csv").unwrap().remove(0);
    assert_eq!(row.outcome.as_deref(), Some("rejected"), "{row:?}");
    assert_eq!(row.counts.lines_rejected, 3 * orders as i64);
    assert_eq!(row.counts.lines_applied, 0);
    let rejects = l.rejects(row.id).unwrap();
    assert_eq!(rejects.len(), 3 * orders);
    let mut lines: Vec<i64> = rejects.iter().map(|r| r.line).collect();
    lines.dedup();
    assert_eq!(lines, (2..2 + 3 * orders as i64).collect::<Vec<_>>());
    let rows = work.query_i64("SELECT COUNT(*) FROM lines WHERE status='rejected'");
    assert_eq!(
        rows, 6,
        "rows only for the two bad orders' lines, none rejected late"
    );
}

/// An ORDERS05 file of two IDocs, the second with a quantity that is not a number.
fn idoc_with_a_bad_quantity() -> String {
    let dc = |n: &str| {
        format!(
            "<EDI_DC40 SEGMENT=\"1\"><TABNAM>EDI_DC40</TABNAM><MANDT>100</MANDT><DOCNUM>{n}</DOCNUM>\
             <IDOCTYP>ORDERS05</IDOCTYP><MESTYP>ORDERS</MESTYP><SNDPOR>SAPPRD</SNDPOR><SNDPRT>LS</SNDPRT>\
             <SNDPRN>PRDCLNT100</SNDPRN><RCVPOR>TALLY</RCVPOR><RCVPRT>LS</RCVPRT><RCVPRN>TALLYMAN</RCVPRN></EDI_DC40>"
        )
    };
    let body = |belnr: &str, menge: &str| {
        format!(
            "<E1EDK01 SEGMENT=\"1\"><CURCY>EUR</CURCY><BELNR>{belnr}</BELNR></E1EDK01>\n\
             <E1EDKA1 SEGMENT=\"1\"><PARVW>AG</PARVW><PARTN>C100</PARTN><NAME1>Buyer</NAME1></E1EDKA1>\n\
             <E1EDP01 SEGMENT=\"1\"><POSEX>000010</POSEX><MENGE>{menge}</MENGE><MENEE>PCE</MENEE></E1EDP01>"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ORDERS05>\n\
         <IDOC BEGIN=\"1\">{}\n{}\n</IDOC>\n<IDOC BEGIN=\"1\">{}\n{}\n</IDOC>\n</ORDERS05>\n",
        dc("1"),
        body("4711", "5.000"),
        dc("2"),
        body("4712", "five"),
    )
}

/// IDoc and X12 readers leave a line's locator and text to be made when the line is shown
/// (`Unit::show`), on the committing thread, instead of for every line read: the lines of a
/// rejected document must still show both, and the documents' rows their first line's.
#[test]
fn lines_shown_on_demand_keep_their_locators_and_text() {
    let work = Work::new(1000);
    work.drop_file("orders.xml", idoc_with_a_bad_quantity().as_bytes());
    let x12 = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/inbox/globex-invoices.x12"),
    )
    .unwrap();
    work.drop_file("globex-invoices.x12", &x12);
    work.run(&["run"]);
    let l = ledger(&work);

    let idoc = l.find_files("orders.xml").unwrap().remove(0);
    let rejects = l.rejects(idoc.id).unwrap();
    let shown: Vec<(Option<&str>, Option<&str>)> = rejects
        .iter()
        .map(|r| (r.locator.as_deref(), r.original.as_deref()))
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                Some("IDoc 2 / E1EDK01 #1 (line 9, column 1)"),
                Some("E1EDK01: CURCY=EUR BELNR=4712")
            ),
            (
                Some("IDoc 2 / E1EDKA1 #1 (line 10, column 1)"),
                Some("E1EDKA1: PARVW=AG PARTN=C100 NAME1=Buyer")
            ),
            (
                Some("IDoc 2 / E1EDP01 #1 / MENGE (line 11, column 43)"),
                Some("E1EDP01: POSEX=000010 MENGE=five MENEE=PCE")
            ),
        ],
        "{rejects:#?}"
    );
    let lines = l.file_lines(idoc.id, 0, 100, false).unwrap();
    let first = |seq: i64| lines.iter().find(|v| v.unit_seq == seq).unwrap();
    for (seq, line) in [(0, 3), (1, 8)] {
        let v = first(seq);
        assert_eq!(v.line, line, "{v:?}");
        assert!(
            v.locator.as_deref().is_some_and(|l| l.starts_with(&format!(
                "IDoc {} / EDI_DC40 #1 (line {line}, column ",
                seq + 1
            ))),
            "{v:?}"
        );
    }

    let x12 = l.find_files("globex-invoices.x12").unwrap().remove(0);
    let rejects = l.rejects(x12.id).unwrap();
    assert!(!rejects.is_empty());
    for r in &rejects {
        let locator = r.locator.as_deref().unwrap_or("");
        assert!(
            locator.contains(" / ST ") && locator.contains(", segment "),
            "{r:?}"
        );
        let original = r.original.as_deref().unwrap_or("");
        assert!(!original.is_empty(), "{r:?}");
        let id = original.split('*').next().unwrap();
        let ordinal: usize = locator
            .split(", segment ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        // The text is the segment's: an ST where the locator says segment 1.
        assert_eq!(ordinal == 1, id == "ST", "{r:?}");
    }
}
