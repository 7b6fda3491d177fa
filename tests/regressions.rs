//! Regression tests for inputs that once broke something (see tests/regressions/README.md).

// FileError carries its position and reason by value, as in the library.
#![allow(clippy::result_large_err)]

mod common;

use std::path::Path;

use common::{text, Work};

use tallyman::format::testing::ctx_for;
use tallyman::tabular::SheetSelector;

#[test]
fn regression_calamine_cfb_slice_panic_is_a_clean_rejection() {
    for name in [
        "fuzz-calamine-cfb-slice-1.xls",
        "fuzz-calamine-cfb-slice-2.xls",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/regressions")
            .join(name);
        let result = tallyman::sheet::open_rows(&path, &ctx_for(&path), &SheetSelector::default())
            .and_then(|mut rows| {
                while rows.next_row()?.is_some() {}
                Ok(())
            });
        let err = result.expect_err("a corrupt container is refused");
        assert_eq!(err.reason.rule, "sheet-corrupt", "{name}: {err}");
        assert!(
            err.reason.message.contains("failed on this file"),
            "{name}: {err}"
        );
    }
}

/// Invariant 5: a contact person's name, phone and e-mail (PER02/04/06) are personal data.
/// A rejected 850 keeps them out of the ledger, the reject report and the log, masked
/// where its segment or a value of it is shown.
#[test]
fn regression_an_x12_contacts_name_phone_and_email_never_reach_the_ledger_reports_or_log() {
    let w = Work::new(100);
    let name = format!("Jane Roe {}", "x".repeat(60)); // over PER02's 60: rejected, value shown
    let x12 = format!(
        "ISA*00*          *00*          *ZZ*ACME           *ZZ*TALLYMAN       *261101*0930*U*00401*000000777*0*P*>~\n\
         GS*PO*ACME*TALLYMAN*20261101*0930*777*X*004010~\n\
         ST*850*0001~\nBEG*00*SA*PII-1**20261101~\nPER*BD*{name}*TE*5551234567*EM*jane.roe@example.com~\n\
         N1*BY*ACME Retail*92*C-100~\nPO1*1*3*EA*2.50**VN*SKU-1~\nCTT*1~\nSE*7*0001~\n\
         GE*1*777~\nIEA*1*000000777~\n"
    );
    w.drop_file("acme-pii.x12", x12.as_bytes());
    let out = w.run(&["run"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}"); // the set is rejected
    let mut places: Vec<(String, Vec<u8>)> = vec![("log".into(), shown.into_bytes())];
    for sub in ["reports", "acks"] {
        for (k, v) in w.snapshot(sub) {
            places.push((format!("{sub}/{k}"), v));
        }
    }
    for f in ["ledger.sqlite", "ledger.sqlite-wal"] {
        if let Ok(bytes) = std::fs::read(w.dir.join(f)) {
            places.push((f.into(), bytes));
        }
    }
    let under = |dir: &str| -> String {
        places
            .iter()
            .filter(|(k, _)| k.starts_with(dir))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    };
    let reports = under("reports/");
    assert!(
        reports.contains("PER02"),
        "the rejection is reported: {reports}"
    );
    assert!(
        reports.contains("********67"),
        "the phone is shown masked: {reports}"
    );
    let acks = under("acks/");
    assert!(
        acks.contains("AK4*2**5~"),
        "the ack names the element: {acks}"
    );
    for secret in ["Jane Roe", "5551234567", "jane.roe@example.com"] {
        for (place, bytes) in &places {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} reached {place}"
            );
        }
    }
}

/// Sets claim their interchange only (stop 21 dropped a claim per set, which named the
/// interchange too and so was never held where the interchange's claim was not). An
/// interchange sent again in another file is still a duplicate set by set, even a set whose
/// number and document were never seen, and a set's reason names the interchange.
#[test]
fn an_interchange_sent_again_is_a_duplicate_even_for_a_set_never_seen() {
    let w = Work::new(100);
    let sample =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/inbox/acme-orders.x12"))
            .unwrap();
    w.drop_file("acme-orders.x12", &sample);
    let first = w.run(&["run"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(
        w.query("SELECT key FROM keys WHERE entity='claim'"),
        vec![vec![Some("x12-isa:ACME:TALLYMAN:000000101".to_string())]]
    );
    let again = String::from_utf8(sample)
        .unwrap()
        .replace("ST*850*0002~", "ST*850*0003~")
        .replace("PO-4712", "PO-4799")
        .replace("SE*7*0002~", "SE*7*0003~");
    w.drop_file("acme-orders-resent.x12", again.as_bytes());
    let second = w.run(&["run"]);
    let shown = text(&second);
    assert!(shown.contains("acme-orders-resent.x12"), "{shown}");
    let file = w.query_i64("SELECT max(id) FROM files");
    let statuses = w.query(&format!(
        "SELECT label, status, message FROM units WHERE file_id={file} AND label LIKE '850 %' ORDER BY seq"
    ));
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    for row in &statuses {
        assert_eq!(row[1].as_deref(), Some("duplicate"), "{row:?}");
        let why = row[2].as_deref().unwrap_or_default();
        assert!(why.contains("x12-isa:ACME:TALLYMAN:000000101"), "{why}");
    }
    assert_eq!(
        w.query_i64(&format!(
            "SELECT count(*) FROM versions WHERE file_id={file}"
        )),
        0,
        "nothing of the resent interchange is applied"
    );
}
