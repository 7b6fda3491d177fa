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
