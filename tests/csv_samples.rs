//! The bundled tabular definitions in `formats/` load cleanly and read the samples in
//! `samples/inbox/` with exactly the outcomes `samples/PROVENANCE-csv.md` describes.

use std::path::Path;

use tallyman::format::registry::load_formats;
use tallyman::format::testing::{read_all, ReadResult};
use tallyman::format::{Diagnostics, FormatSet, Probe, UnitStatus};
use tallyman::unit::LineVerdict;

fn formats() -> FormatSet {
    let mut d = Diagnostics::default();
    let set = load_formats(Path::new("formats"), &mut d);
    // Only the top-level definitions are ours; other kinds live in subdirectories.
    let mine: Vec<_> = d
        .errors
        .iter()
        .filter(|e| e.file.parent() == Some(Path::new("formats")))
        .collect();
    assert!(mine.is_empty(), "{mine:?}");
    set
}

fn read(set: &FormatSet, file: &str) -> (String, ReadResult) {
    let path = Path::new("samples/inbox").join(file);
    let head = std::fs::read(&path).unwrap();
    let head = &head[..head.len().min(64 * 1024)];
    let f = set
        .detect(&Probe { name: file, head })
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    (f.name().to_string(), read_all(f.as_ref(), &path))
}

/// (line, byte, rule, field, value) of one rejected line.
type Rejection = (u64, u64, String, Option<String>, Option<String>);

fn statuses(r: &ReadResult) -> Vec<(String, UnitStatus)> {
    r.units
        .iter()
        .map(|u| (u.label.clone(), u.status()))
        .collect()
}

#[test]
fn bundled_definitions_load() {
    let set = formats();
    let mut names: Vec<&str> = set
        .formats
        .iter()
        .filter(|f| f.kind() == "csv" || f.kind() == "sheet")
        .map(|f| f.name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "customers-csv",
            "orders-csv",
            "orders-sheet",
            "pricelist-sheet",
            "products-csv",
            "suppliers-csv"
        ]
    );
}

#[test]
fn good_orders_are_all_applied() {
    let set = formats();
    let (name, r) = read(&set, "orders-2026-11-01.csv");
    assert_eq!(name, "orders-csv");
    assert!(r.error.is_none(), "{:?}", r.error);
    use UnitStatus::*;
    assert_eq!(
        statuses(&r),
        [
            ("header".to_string(), Skipped),
            ("order PO-10001".into(), Applied),
            ("order PO-10002".into(), Applied),
            ("order PO-10003".into(), Applied),
        ]
    );
    let seqs: Vec<u64> = r.units.iter().map(|u| u.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    let o = &r.units[1].eval.records[0];
    assert_eq!(o.key, "PO-10001");
    assert_eq!(o.body()["lines"].as_array().unwrap().len(), 3);
    assert_eq!(o.body()["lines"][2]["description"], "Cable \"USB-C\" 2m");
    assert_eq!(o.body()["lines"][0]["unit_price"], "2.50");
    assert_eq!(o.body()["currency"], "EUR");
    assert_eq!(o.body()["order_date"], "2026-11-01");
    // The quoted line break makes PO-10003's first line span lines 7-8.
    let o3 = &r.units[3];
    let lines: Vec<u64> = o3.lines.iter().map(|l| l.pos.line).collect();
    assert_eq!(lines, [7, 9, 10]);
    assert_eq!(
        o3.eval.records[0].body()["lines"][0]["description"],
        "Pallet wrap\n(500 m roll)"
    );
}

#[test]
fn mixed_orders_reject_one_order_whole() {
    let set = formats();
    let (_, r) = read(&set, "orders-2026-11-02.csv");
    assert!(r.error.is_none(), "{:?}", r.error);
    use UnitStatus::*;
    assert_eq!(
        statuses(&r),
        [
            ("header".to_string(), Skipped),
            ("order PO-10010".into(), Applied),
            ("order PO-10011".into(), Rejected),
            ("blank line".into(), Skipped),
            ("order PO-10014".into(), Applied),
            ("order PO-10015".into(), Applied),
            ("order PO-10016".into(), Applied),
            ("order PO-10017".into(), Applied),
        ]
    );
    let bad = &r.units[2];
    let got: Vec<Rejection> = bad
        .eval
        .verdicts
        .iter()
        .zip(&bad.lines)
        .map(|(v, l)| match v {
            LineVerdict::Rejected(x) => (
                l.pos.line,
                l.pos.byte,
                x.rule.clone(),
                x.field.clone(),
                x.value.clone(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        got,
        [
            (4, 207, "rejected-with-document".into(), None, None),
            (5, 272, "type".into(), s("order_date"), s("2026-11-31")),
            (6, 330, "min".into(), s("quantity"), s("-3")),
            (7, 393, "code-list".into(), s("currency"), s("XYZ")),
            (8, 449, "required".into(), s("sku"), s("")),
            (9, 504, "rejected-with-document".into(), None, None),
        ]
    );
    let LineVerdict::Rejected(sib) = &bad.eval.verdicts[0] else {
        unreachable!()
    };
    assert_eq!(
        sib.message,
        "order PO-10011 is rejected as a whole: line 5 broke rule 'type'"
    );
    assert_eq!(r.units[3].lines[0].pos.line, 10);
}

#[test]
fn customers_mask_sensitive_values() {
    let set = formats();
    let (name, r) = read(&set, "customers-2026-11-01.csv");
    assert_eq!(name, "customers-csv");
    let st: Vec<UnitStatus> = r.units.iter().map(|u| u.status()).collect();
    use UnitStatus::*;
    assert_eq!(
        st,
        [Skipped, Applied, Applied, Applied, Applied, Applied, Rejected]
    );
    let bad = &r.units[6];
    let LineVerdict::Rejected(why) = &bad.eval.verdicts[0] else {
        panic!()
    };
    assert_eq!(why.rule, "regex");
    assert_eq!(why.field.as_deref(), Some("email"));
    assert_eq!(why.value.as_deref(), Some("**********il"));
    assert!(
        !bad.lines[0].raw.contains("not-an-email"),
        "{}",
        bad.lines[0].raw
    );
    assert!(bad.lines[0].raw.contains("**********il"));
    let c5 = &r.units[5].eval.records[0];
    assert_eq!(c5.body()["city"], "Zürich");
    assert_eq!(c5.body()["name"], "Stark & Wayne AG");
    assert_eq!(r.units[4].eval.records[0].body()["active"], false);
}

#[test]
fn products_translate_codes() {
    let set = formats();
    let (_, r) = read(&set, "products-2026-11-01.csv");
    let st: Vec<UnitStatus> = r.units.iter().map(|u| u.status()).collect();
    use UnitStatus::*;
    assert_eq!(
        st,
        [Skipped, Applied, Applied, Applied, Applied, Applied, Applied, Rejected]
    );
    assert_eq!(r.units[1].eval.records[0].body()["uom"], "EA");
    assert_eq!(r.units[4].eval.records[0].body()["uom"], "BX");
    let LineVerdict::Rejected(why) = &r.units[7].eval.verdicts[0] else {
        panic!()
    };
    assert_eq!(
        (why.rule.as_str(), why.field.as_deref()),
        ("regex", Some("gtin"))
    );
}

#[test]
fn suppliers_keep_bank_details_but_mask_them_in_rejects() {
    let set = formats();
    let (name, r) = read(&set, "suppliers-2026-11-01.csv");
    assert_eq!(name, "suppliers-csv");
    assert!(r.error.is_none(), "{:?}", r.error);
    use UnitStatus::*;
    assert_eq!(
        statuses(&r),
        [
            ("header".to_string(), Skipped),
            ("line 2".into(), Applied),
            ("line 3".into(), Applied),
            ("line 4".into(), Applied),
            ("line 5".into(), Applied),
            ("line 6".into(), Applied),
            ("line 7".into(), Rejected),
        ]
    );
    // The outbox carries the real bank details.
    let de = &r.units[1].eval.records[0];
    assert_eq!(de.entity.as_str(), "supplier");
    assert_eq!(de.key, "S-2001");
    assert_eq!(de.body()["iban"], "DE89370400440532013000");
    assert_eq!(de.body()["bic"], "COBADEFFXXX");
    assert_eq!(de.body()["account_holder"], "Brightwater Components GmbH");
    assert_eq!(de.body()["address"], "Industriestraße 7");
    assert_eq!(de.body()["payment_terms"], "NT30");
    assert_eq!(de.body()["active"], true);
    // A US supplier: domestic account and routing number, no IBAN; "Net30" normalised.
    let us = &r.units[3].eval.records[0].body();
    assert_eq!(us["bank_account"], "000123456789");
    assert_eq!(us["bank_code"], "021000021");
    assert!(
        us.get("iban").is_none() && us.get("vat_id").is_none(),
        "{us}"
    );
    assert_eq!(us["payment_terms"], "NT30");
    assert_eq!(us["address"], "1200 Market St, Suite 5");
    assert_eq!(r.units[4].eval.records[0].body()["active"], false);
    assert_eq!(
        r.units[5].eval.records[0].body()["vat_id"],
        "NO123456789MVA"
    );

    // One mistyped IBAN digit: rejected by its check digits, shown masked.
    let bad = &r.units[6];
    let LineVerdict::Rejected(why) = &bad.eval.verdicts[0] else {
        panic!("{:?}", bad.eval.verdicts)
    };
    assert_eq!(
        (why.rule.as_str(), why.field.as_deref()),
        ("checksum", Some("iban"))
    );
    assert_eq!(why.value.as_deref(), Some("****************10"));
    assert!(why.message.contains("check digits"), "{}", why.message);
    assert!(!why.message.contains("NL91ABNA"), "{}", why.message);
    let raw = &bad.lines[0].raw;
    for clear in [
        "NL91ABNA0417164310",
        "crediteuren@",
        "+31 20 555",
        "Kestrel Electronics BV,yes",
    ] {
        assert!(!raw.contains(clear), "{clear} in {raw}");
    }
    assert!(raw.contains("****************10"), "{raw}");
    assert!(raw.contains("ABNANL2A"), "a BIC is not an account: {raw}");
}

#[test]
fn header_match_beats_name_match() {
    let set = formats();
    let head =
        b"order_no,line_no,order_date,customer_id,sku,description,quantity,unit_price,currency\n";
    let f = set
        .detect(&Probe {
            name: "orders-x.csv",
            head,
        })
        .unwrap();
    assert_eq!(
        f.sniff(&Probe {
            name: "orders-x.csv",
            head
        }),
        Some(30)
    );
    assert_eq!(f.name(), "orders-csv");
    // Right name, wrong header: both are required when both are given.
    assert!(set
        .detect(&Probe {
            name: "orders-x.csv",
            head: b"a,b\n1,2\n"
        })
        .is_err());
}

#[test]
fn regression_no_format_match_never_said_why() {
    let set = formats();
    let why = |name: &str, head: &[u8]| match set.detect(&Probe { name, head }) {
        Err(e) => e.to_string(),
        Ok(f) => panic!("{name} matched {}", f.name()),
    };
    let header =
        "order_no,line_no,order_date,customer_id,sku,description,quantity,unit_price,currency";
    assert_eq!(
        why(
            "orders-2026.csv",
            header.replace("quantity", "qty").as_bytes()
        ),
        "no format definition matches this file: closest is 'orders-csv' (name matches \
         'orders*.csv'), but the header lacks 'quantity' and has unexpected 'qty'"
    );
    assert_eq!(
        why("orders-2026.csv", header.replace(',', ";").as_bytes()),
        "no format definition matches this file: closest is 'orders-csv' (name matches \
         'orders*.csv'), but the header is separated by ';', not ',' as [csv] delimiter says"
    );
    assert_eq!(
        why(
            "orders-2026.csv",
            format!("Export of 2026-11-02\n{header}\n").as_bytes()
        ),
        "no format definition matches this file: closest is 'orders-csv' (name matches \
         'orders*.csv'), but the header is on non-blank row 2 where skip_rows = 0 expects \
         it on row 1"
    );
    assert_eq!(
        why("po-2026.csv", format!("{header}\n").as_bytes()),
        "no format definition matches this file: closest is 'orders-csv' (the header fits), \
         but the name does not match 'orders*.csv'"
    );
    let utf16: Vec<u8> = format!("{header}\n")
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let msg = why("orders-2026.csv", &utf16);
    assert!(
        msg.starts_with(
            "no format definition matches this file: it looks like UTF-16LE text without a \
             byte-order mark (a NUL byte at every second position); closest is 'orders-csv'"
        ),
        "{msg}"
    );
    assert_eq!(
        why("orders-2026.csv", &[0; 512]),
        "no format definition matches this file: it is all NUL bytes (512 seen), not text; \
         closest is 'orders-csv' (name matches 'orders*.csv'), but the header lacks \
         'order_no', 'line_no', 'order_date', 'customer_id', 'sku' and 4 more"
    );
    assert_eq!(
        why("data.bin", b""),
        "no format definition matches this file: the file is empty"
    );
}
