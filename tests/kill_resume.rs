//! Invariant 1, tested for real: SIGKILL the `tallyman run` process at several points in
//! the middle of a file, run again until it finishes, and the outbox, archive, reports and
//! ledger must be exactly what one uninterrupted run produces.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn reference(input: &[u8], batch: u64) -> Work {
    reference_named("orders-big.csv", input, batch)
}

fn reference_named(name: &str, input: &[u8], batch: u64) -> Work {
    let w = Work::new(batch);
    w.drop_file(name, input);
    let out = w.run(&["run"]);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{}",
        text(&out)
    );
    w
}

/// Kills a run after `delay`, returning true if it had already finished by itself.
fn run_and_kill(w: &Work, delay: Duration) -> bool {
    let mut child = w.cmd().arg("run").spawn().unwrap();
    let start = Instant::now();
    while start.elapsed() < delay {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                matches!(status.code(), Some(0) | Some(1)),
                "run failed: {status:?}"
            );
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on unix
    child.wait().unwrap();
    false
}

#[test]
fn sigkill_mid_file_at_several_points_then_resume_matches_uninterrupted_run() {
    let input = orders_csv(12_000, 97, "K");
    let batch = 700;
    let want = reference(&input, batch);

    let w = Work::new(batch);
    // Early kills can land before the first commit several times in a row, which the
    // stall guard would (rightly) treat as a file the process keeps dying on.
    w.set("max_stalled_starts = 3", "max_stalled_starts = 1000");
    w.drop_file("orders-big.csv", &input);
    let mut kills = 0;
    let mut finished = false;
    // Increasing delays: early kills land in intake and the first batches, later ones
    // mid-file and during publishing. Each restart resumes from the last commit.
    for ms in [15u64, 40, 80, 120, 160, 220, 300, 400, 550, 750, 1000, 1400] {
        if run_and_kill(&w, Duration::from_millis(ms)) {
            finished = true;
            break;
        }
        kills += 1;
    }
    if !finished {
        let out = w.run(&["run"]);
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "{}",
            text(&out)
        );
    }
    assert!(
        kills >= 3,
        "the file must be big enough to be killed mid-way ({kills} kills)"
    );

    // Nothing left half-done.
    let again = w.run(&["run"]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing to do"),
        "{}",
        text(&again)
    );
    assert!(
        w.snapshot("work/staging").is_empty(),
        "no staged leftovers: {:?}",
        w.snapshot("work/staging").keys().collect::<Vec<_>>()
    );
    assert!(
        w.snapshot("work/processing").is_empty(),
        "no input left in processing"
    );
    assert!(
        w.snapshot("inbox").is_empty(),
        "inbox: {:?}; processing: {:?}; the last run said: {}",
        w.snapshot("inbox").keys().collect::<Vec<_>>(),
        w.snapshot("work").keys().collect::<Vec<_>>(),
        text(&again)
    );

    let got_outbox = w.snapshot("outbox");
    let want_outbox = want.snapshot("outbox");
    assert!(!want_outbox.is_empty());
    assert_eq!(
        got_outbox.keys().collect::<Vec<_>>(),
        want_outbox.keys().collect::<Vec<_>>(),
        "same outbox files"
    );
    assert!(
        got_outbox == want_outbox,
        "outbox bytes differ from the uninterrupted run"
    );
    assert_eq!(w.snapshot("archive"), want.snapshot("archive"));
    assert_eq!(w.snapshot("reports"), want.snapshot("reports"));
    assert_eq!(ledger_counts(&w), ledger_counts(&want));
    eprintln!(
        "killed {kills} times; outbox identical ({} files)",
        got_outbox.len()
    );
}

#[test]
fn two_processes_at_once_never_process_a_file_twice() {
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                format!("orders-{i}.csv"),
                orders_csv(400, 0, &format!("P{i}-")),
            )
        })
        .collect();
    let want = Work::new(500);
    for (n, b) in &files {
        want.drop_file(n, b);
    }
    assert_eq!(want.run(&["run"]).status.code(), Some(0));

    let w = Work::new(500);
    for (n, b) in &files {
        w.drop_file(n, b);
    }
    // Both start on a ledger that does not exist yet: creating it is part of the race
    // (regression: the second one used to exit 2 with "database is locked").
    let piped = |mut c: std::process::Command| {
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.arg("run").spawn().unwrap()
    };
    let a = piped(w.cmd());
    let b = piped(w.cmd());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.code() == Some(0) && b.status.code() == Some(0),
        "{}\n{}",
        text(&a),
        text(&b)
    );
    let again = w.run(&["run"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(w.snapshot("outbox"), want.snapshot("outbox"));
    assert_eq!(ledger_counts(&w), ledger_counts(&want));
}

#[test]
fn a_killed_csv_run_resumes_at_its_mark_and_matches_an_uninterrupted_run() {
    killed_at_a_mark_then_resumed("orders-big.csv", &orders_csv(12_000, 97, "K"), None);
}

/// Orders of the file's first batches come back at its end: rejected as `group-split` by
/// an uninterrupted run, they must be by a resumed one too, which takes the keys closed
/// before its mark from the keys log instead of reading the committed part again.
#[test]
fn a_killed_csv_run_resumed_from_its_keys_log_still_rejects_a_reappearing_order() {
    let input = orders_that_come_back();
    killed_at_a_mark_then_resumed("orders-split.csv", &input, None);
}

/// 12,000 orders, then one more line for each of three orders of the first batches: each
/// comes back after its group closed, so it is `group-split`.
fn orders_that_come_back() -> Vec<u8> {
    let mut input = orders_csv(12_000, 97, "K");
    for o in [3, 250, 411] {
        input.extend_from_slice(
            format!("K{o:07},9,2026-11-02,C0001,SKU-9001,\"Widget, size 9\",1,19.99,EUR\n")
                .as_bytes(),
        );
    }
    input
}

/// The keys log cut short after the kill (a machine that lost unsynced pages): it no longer
/// holds the hashes the mark counts, so the resumed run scans the committed part for the
/// keys instead, and still rejects the reappearing orders as the uninterrupted run did.
#[test]
fn a_killed_csv_run_whose_keys_log_was_cut_short_scans_and_ends_the_same() {
    let input = orders_that_come_back();
    killed_then_resumed_with(
        "orders-cut.csv",
        &input,
        None,
        &|w: &Work| {
            let staging = w.dir.join("work").join("staging");
            let mut cut = 0;
            for d in std::fs::read_dir(&staging).unwrap().flatten() {
                let log = d.path().join("restart-state");
                // Cut to its first hash: the reader runs batches ahead of the last commit,
                // so half of it may still hold every hash the committed mark counts.
                if log.exists() {
                    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
                    f.set_len(16).unwrap();
                    cut += 1;
                }
            }
            assert_eq!(cut, 1, "one keys log in {}", staging.display());
        },
        KEYS_SCANNED,
    );
}

/// A power loss on top of the kill: a chunk whose batch committed while its sync was still
/// under way may be cut short. The mark of the chunks known synced is put back to 0 (as if
/// none had been, which a slow disk makes true) and the last chunk it holds is cut in half:
/// the resumed run finds it by its check, removes it, reads the file again from the top
/// (a staged chunk is missing before the decision) and ends as an uninterrupted run.
#[test]
fn a_killed_run_whose_unsynced_chunk_a_power_loss_cut_short_ends_the_same() {
    killed_then_resumed_with(
        "orders-torn.csv",
        &orders_csv(12_000, 97, "P"),
        None,
        &|w: &Work| {
            // Through the ledger's own door: the test runs on a PostgreSQL ledger too.
            w.query("UPDATE files SET synced_chunk = 0");
            // The last chunk the ledger holds, not the last file in staging: the reader
            // runs ahead, so staging may also hold chunks of batches not yet committed,
            // which the resumed run writes again whatever they hold.
            let row = w.query(
                "SELECT COUNT(DISTINCT chunk), \
                 (SELECT staged_path FROM chunks ORDER BY chunk DESC LIMIT 1) FROM chunks",
            );
            let chunks: i64 = row[0][0].as_deref().unwrap().parse().unwrap();
            let last = row[0][1].clone().unwrap();
            assert!(chunks >= 2, "chunks committed: {chunks}");
            // Stored relative to its root folder, as `work:staging/…`.
            let last = w.dir.join("work").join(last.strip_prefix("work:").unwrap());
            let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
            f.set_len(f.metadata().unwrap().len() / 2).unwrap();
        },
        "no longer hold what was staged",
    );
}

/// An X12 file resumes at its mark too: the committed sets are passed over, not read in
/// full, and the 997 still answers every set of the interchange.
#[test]
fn a_killed_x12_run_resumes_at_its_mark_and_matches_an_uninterrupted_run() {
    killed_at_a_mark_then_resumed("po-big.x12", &purchase_orders_x12(15_000), None);
}

/// And an IDoc file: reading restarts at the mark from the state it holds, and the
/// STATUS acknowledgement still answers every IDoc.
#[test]
fn a_killed_idoc_run_resumes_at_its_mark_and_matches_an_uninterrupted_run() {
    killed_at_a_mark_then_resumed("idoc-orders05-big.xml", &orders_idoc(2_500), None);
}

/// An ORDERS05 file of `n` IDocs, one to four items each.
fn orders_idoc(n: usize) -> Vec<u8> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ORDERS05>\n");
    for k in 1..=n {
        out += &format!(
            "<IDOC BEGIN=\"1\">\n<EDI_DC40 SEGMENT=\"1\"><TABNAM>EDI_DC40</TABNAM><MANDT>715</MANDT>\
             <DOCNUM>{k:016}</DOCNUM><DIRECT>1</DIRECT><IDOCTYP>ORDERS05</IDOCTYP><MESTYP>ORDERS</MESTYP>\
             <SNDPOR>SAPQKX</SNDPOR><SNDPRN>KILL_SENDER</SNDPRN><RCVPOR>ORDREQ</RCVPOR><RCVPRN>TP</RCVPRN>\
             <CREDAT>20261129</CREDAT><CRETIM>142809</CRETIM></EDI_DC40>\n\
             <E1EDK01 SEGMENT=\"1\"><CURCY>EUR</CURCY><BSART>NB</BSART><BELNR>45{k:08}</BELNR></E1EDK01>\n\
             <E1EDK03 SEGMENT=\"1\"><IDDAT>012</IDDAT><DATUM>202611{:02}</DATUM></E1EDK03>\n\
             <E1EDKA1 SEGMENT=\"1\"><PARVW>AG</PARVW><PARTN>{}</PARTN></E1EDKA1>\n\
             <E1EDK02 SEGMENT=\"1\"><QUALF>001</QUALF><BELNR>45{k:08}</BELNR><DATUM>20261129</DATUM></E1EDK02>\n",
            1 + k % 28,
            10100000 + k % 5000
        );
        for i in 1..=(1 + k % 4) {
            out += &format!(
                "<E1EDP01 SEGMENT=\"1\"><POSEX>{:05}</POSEX><MENGE>{i}.000</MENGE><MENEE>PCE</MENEE>\
                 <VPREI>50</VPREI><NETWR>{}</NETWR>\n<E1EDP19 SEGMENT=\"1\"><QUALF>001</QUALF>\
                 <IDTNR>TG{:04}{i}</IDTNR></E1EDP19>\n</E1EDP01>\n",
                i * 10,
                i * 50,
                k % 1000
            );
        }
        out += "</IDOC>\n";
    }
    out += "</ORDERS05>\n";
    out.into_bytes()
}

/// One interchange of `sets` 850s, two to five PO1 lines each, from the bundled ACME.
fn purchase_orders_x12(sets: usize) -> Vec<u8> {
    let mut out = String::from(
        "ISA*00*          *00*          *ZZ*ACME           *ZZ*TALLYMAN       *261101*0930*U*00401*000000101*0*P*>~\n\
         GS*PO*ACME*TALLYMAN*20261101*0930*101*X*004010~\n",
    );
    for n in 1..=sets {
        let mut segs = vec![
            format!("ST*850*{n:09}"),
            format!("BEG*00*SA*PO-{n:09}**202611{:02}", 1 + n % 28),
            "CUR*BY*EUR".to_string(),
            format!("N1*BY*ACME Retail {}*92*C-{:05}", n % 100, n % 5000),
        ];
        for l in 1..=(2 + n % 4) {
            segs.push(format!(
                "PO1*{l}*{}*EA*{l}.50**VN*SKU-{l}{:04}",
                l * 2,
                n % 1000
            ));
        }
        segs.push(format!("CTT*{}", 2 + n % 4));
        segs.push(format!("SE*{}*{n:09}", segs.len() + 1));
        out += &(segs.join("~\n") + "~\n");
    }
    out += &format!("GE*{sets}*101~\nIEA*1*000000101~\n");
    out.into_bytes()
}

/// With `threads = 1` reading, mapping and committing take turns on one thread: killed
/// and resumed that way, the file ends exactly as an uninterrupted run on every core.
#[test]
fn one_thread_killed_at_a_mark_and_resumed_ends_as_a_run_on_every_core() {
    killed_at_a_mark_then_resumed("orders-big.csv", &orders_csv(12_000, 97, "K"), Some(1));
}

fn killed_at_a_mark_then_resumed(name: &str, input: &[u8], threads: Option<u32>) {
    killed_then_resumed_with(name, input, threads, &|_: &Work| {}, KEYS_FROM_LOG);
}

/// The input's hash is kept as reading goes: killed once it was, the resume hashes only
/// the pieces the killed run had not (and the file ends as an uninterrupted run).
#[test]
fn a_killed_run_takes_up_the_input_hash_it_kept() {
    let input = orders_csv(30_000, 97, "K");
    let kept = |w: &Work| {
        let staging = w.dir.join("work").join("staging");
        // Written, not only created: a kill between the two leaves an empty state, which a
        // resume rightly does not take up, and the test failed when the kill landed there.
        let written = |p: std::path::PathBuf| std::fs::metadata(p).is_ok_and(|m| m.len() > 0);
        std::fs::read_dir(staging)
            .map(|d| d.flatten().any(|e| written(e.path().join("input-hash"))))
            .unwrap_or(false)
    };
    let resumed = killed_when("orders-hash.csv", &input, None, &kept, &|_: &Work| {});
    assert!(
        resumed.contains(HASH_TAKEN_UP),
        "the resume took up the kept hash: {resumed}"
    );
}

/// What a resumed CSV run logs when it takes the closed group keys from the keys log, and
/// when it has to scan for them.
const KEYS_FROM_LOG: &str = "taken from the keys log";
const KEYS_SCANNED: &str = "no usable keys log";
/// What a resumed X12 run logs when it starts from a restart snapshot.
const FROM_SNAPSHOT: &str = "taken from the restart snapshot";
/// What a resumed IDoc run logs when it restarts from the state its mark holds.
const FROM_MARK_STATE: &str = "the IDocs before it are not read again";
/// ... and when its STATUS takes up what the killed run answered and kept.
const ANSWERS_KEPT: &str = "the STATUS takes up the answers kept";

/// What a resumed run logs when it takes up the input's hash the killed run kept.
const HASH_TAKEN_UP: &str = "were hashed by an earlier run";

/// [`killed_at_a_mark_then_resumed`], with `damage` done to the work folder between the
/// kill and the resume, and `logged` what a CSV file's resume must log (the way it found
/// its closed group keys, or what the damage made it do).
fn killed_then_resumed_with(
    name: &str,
    input: &[u8],
    threads: Option<u32>,
    damage: &dyn Fn(&Work),
    logged: &str,
) {
    let log = killed_when(name, input, threads, &|_: &Work| true, damage);
    let how = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("csv") => logged,
        Some("x12") => FROM_SNAPSHOT,
        Some("xml") => FROM_MARK_STATE,
        _ => "",
    };
    assert!(
        log.contains(how),
        "the resume of {name} logged `{how}`: {log}"
    );
    assert!(
        how != FROM_MARK_STATE || log.contains(ANSWERS_KEPT),
        "the resume of {name} took up the answers kept: {log}"
    );
}

/// Runs `input`, kills the run once a batch after the first left a mark and `ready` holds,
/// does `damage` to the work folder, resumes, and checks the resume ends as an
/// uninterrupted run; returns what the resume logged.
fn killed_when(
    name: &str,
    input: &[u8],
    threads: Option<u32>,
    ready: &dyn Fn(&Work) -> bool,
    damage: &dyn Fn(&Work),
) -> String {
    let batch = 700;
    let want = reference_named(name, input, batch);
    // A release build can read a small file to its end between two polls: each attempt
    // that ends before it is killed tries again in a fresh folder.
    let w = (0..5)
        .find_map(|_| killed_with_a_mark(name, input, threads, batch, ready))
        .expect("five runs ended before they could be killed with a mark");
    damage(&w);
    let out = w
        .cmd()
        .arg("run")
        .env("TALLYMAN_LOG", "info")
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{}",
        text(&out)
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        log.contains("resuming at line"),
        "the resumed run started at the mark: {}",
        text(&out)
    );
    assert!(
        w.snapshot("outbox") == want.snapshot("outbox"),
        "outbox differs"
    );
    assert_eq!(w.snapshot("archive"), want.snapshot("archive"));
    assert_eq!(w.snapshot("reports"), want.snapshot("reports"));
    assert_eq!(
        unstamped(w.snapshot("acks")),
        unstamped(want.snapshot("acks"))
    );
    assert_eq!(ledger_counts(&w), ledger_counts(&want));
    log
}

/// A run of `input` in a fresh folder, killed once a batch after the first has left a
/// mark and `ready` holds, before the decision; `None` when the run ended first.
fn killed_with_a_mark(
    name: &str,
    input: &[u8],
    threads: Option<u32>,
    batch: u64,
    ready: &dyn Fn(&Work) -> bool,
) -> Option<Work> {
    let w = Work::new(batch);
    if let Some(n) = threads {
        w.set("threads = 0", &format!("threads = {n}"));
    }
    w.drop_file(name, input);
    let mut child = w.cmd().arg("run").spawn().unwrap();
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(60), "no mark in 60 s");
        if child.try_wait().unwrap().is_some() {
            eprintln!("{name}: the run ended before it could be killed with a mark; again");
            return None;
        }
        let mark: Option<(i64, String)> = common::try_query(
            &w,
            "SELECT committed_seq, state FROM files WHERE resume_mark IS NOT NULL",
        )
        .and_then(|rows| {
            let row = rows.into_iter().next()?;
            Some((row[0].as_deref()?.parse().ok()?, row[1].clone()?))
        });
        if matches!(&mark, Some((seq, state)) if *seq > batch as i64 && state == "reading")
            && ready(&w)
        {
            child.kill().unwrap();
            child.wait().unwrap();
            return Some(w);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Acknowledgements without the date and time they are stamped with.
fn unstamped(acks: std::collections::BTreeMap<String, Vec<u8>>) -> Vec<(String, String)> {
    acks.into_iter()
        .map(|(name, body)| (name, tallyman::format::testing::unstamped(&body)))
        .collect()
}
