//! Cells typed and checked as whole files give them: a value kept as the cell's own text
//! only where writing it gives that text back, spreadsheet cells located and taken typed,
//! dates written with a time, and European numbers, dates and yes/no words.

use std::path::Path;

use super::*;
use crate::format::testing::{ctx_for, read_all_with};
use crate::format::FileError;
use crate::tabular::engine::tests::{format, DEF};
use crate::tabular::{Row, RowSource};
use crate::unit::{LineVerdict, Position};

/// A cell's text is kept as the checked value only where writing the value gives the
/// same text back; everything else is written afresh.
#[test]
fn cells_kept_as_their_value_are_the_ones_that_write_back_the_same() {
    let texts = [
        "0",
        "7",
        "10",
        "007",
        "+5",
        "-3",
        "-0",
        "",
        "1.5",
        "2.50",
        "0.001",
        ".5",
        "5.",
        "1,000",
        "1e3",
        "12345678901234567890",
        "123456789012345678901.5",
        "2026-11-02",
        "2026-1-02",
        "0999-12-31",
        "20261102",
    ];
    for t in texts {
        // (A text that does not parse is refused before it could be kept.)
        if let Some(v) = t.parse::<i64>().ok().filter(|_| plain_integer(t)) {
            assert_eq!(v.to_string(), t, "integer {t}");
        }
        if let Some(d) = t.parse::<Decimal>().ok().filter(|_| plain_decimal(t)) {
            assert_eq!(d.to_string(), t, "decimal {t}");
        }
        if let Some(d) = iso_shaped(t)
            .then(|| crate::canonical::parse_iso_date(t))
            .flatten()
        {
            assert_eq!(crate::canonical::format_iso_date(d), t, "date {t}");
        }
    }
    assert!(plain_integer("10") && !plain_integer("007") && !plain_integer("+5"));
    assert!(plain_decimal("2.50") && !plain_decimal(".5") && !plain_decimal("5."));
    assert!(iso_shaped("2026-11-02") && !iso_shaped("2026-1-02"));
}

struct MemRows(std::vec::IntoIter<Row>);
impl RowSource for MemRows {
    fn next_row(&mut self) -> Result<Option<Row>, FileError> {
        Ok(self.0.next())
    }
}

fn sheet_row(n: u64, cells: Vec<Cell>) -> Row {
    Row {
        pos: Position::new(n, 0, n).with_locator(format!("Orders!A{n}")),
        sheet: Some("Orders".into()),
        row_number: n,
        raw: cells
            .iter()
            .map(Cell::to_text)
            .collect::<Vec<_>>()
            .join(","),
        cells,
    }
}

#[test]
fn sheet_cells_are_located_and_typed_cells_accepted() {
    let f = format(&DEF.replace("kind = \"csv\"", "kind = \"sheet\""));
    let t = |s: &str| Cell::Text(s.into());
    let rows = vec![
        sheet_row(1, vec![t("order_no"), t("qty"), t("cur")]),
        sheet_row(2, vec![t("A"), Cell::Float(2.5), t("EUR")]),
        sheet_row(3, vec![t("B"), Cell::Int(-4), t("EUR")]),
        sheet_row(4, vec![Cell::Empty, Cell::Empty]),
        sheet_row(5, vec![t("C"), Cell::Error("#DIV/0!".into()), t("EUR")]),
    ];
    let p = Path::new("orders.xlsx");
    let mut rd = f.read_rows(Box::new(MemRows(rows.into_iter())), &ctx_for(p));
    let mut units = Vec::new();
    while let Some(mut u) = rd.next_unit().unwrap() {
        let e = u.evaluate();
        units.push((u, e));
    }
    assert_eq!(units.len(), 5);
    assert_eq!(units[1].1.records[0].body()["lines"][0]["quantity"], "2.5");
    let LineVerdict::Rejected(why) = &units[2].1.verdicts[0] else {
        panic!("{:?}", units[2].1)
    };
    assert_eq!(why.message, "Orders!B3: qty: must be greater than 0");
    assert_eq!(
        units[2].0.lines[0].pos.locator.as_deref(),
        Some("Orders!A3")
    );
    assert_eq!(units[3].0.label, "blank line");
    let LineVerdict::Rejected(why) = &units[4].1.verdicts[0] else {
        panic!()
    };
    assert_eq!(
        (why.rule.as_str(), why.message.as_str()),
        ("type", "Orders!B5: qty: spreadsheet error value #DIV/0!")
    );
}

#[test]
fn regression_date_values_with_a_time_were_unreadable() {
    // `5/19/2006 0:00:00` and `2012/09/26 12:00:00` are how real exports write them.
    let f = format(
        r#"
kind = "csv"
name = "dt"
key = "{order_no}"
policy = "accept-valid"
[match]
filename = "dt*.csv"
[[fields]]
name = "order_no"
[[fields]]
name = "ordered"
type = "date"
format = "%m/%d/%Y %H:%M:%S"
[[fields]]
name = "changed"
type = "datetime"
format = "%Y/%m/%d %H:%M:%S"
timezone = "+01:00"
min = "2010-01-01T00:00:00Z"
[map]
entity = "order"
[map.header]
order_no = "{order_no}"
order_date = "{ordered}"
[map.lines]
line_no = "1"
quantity = "1"
requested_date = "{changed}"
description = "changed {changed}"
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dt.csv");
    std::fs::write(
        &p,
        "order_no,ordered,changed\nA,5/19/2006 0:00:00,2012/09/26 12:00:00\nB,5/19/2006 0:00:00,2006/05/19 00:00:00\nC,5/32/2006 0:00:00,2012/09/26 12:00:00\n",
    )
    .unwrap();
    let r = read_all_with(&f, &p, &ctx_for(&p));
    assert!(r.error.is_none(), "{:?}", r.error);
    let body = &r.units[1].eval.records[0].body();
    assert_eq!(body["order_date"], "2006-05-19");
    assert_eq!(body["lines"][0]["requested_date"], "2012-09-26");
    assert_eq!(
        body["lines"][0]["description"],
        "changed 2012-09-26T12:00:00+01:00"
    );
    let why = |u: usize| match &r.units[u].eval.verdicts[0] {
        LineVerdict::Rejected(x) => x.message.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        why(2),
        "column 'changed': changed: must be at least 2010-01-01T00:00:00Z"
    );
    assert_eq!(
        why(3),
        "column 'ordered': ordered: is not a valid date in the format %m/%d/%Y %H:%M:%S"
    );
}

#[test]
fn european_numbers_dates_booleans_and_translations() {
    let f = format(
        r#"
kind = "csv"
name = "eu"
key = "P-{sku}"
[match]
filename = "eu*.csv"
[csv]
delimiter = ";"
encoding = "windows-1252"
[[fields]]
name = "sku"
column = "Artikel"
[[fields]]
name = "price"
column = "Preis"
type = "decimal"
decimal_separator = ","
thousands_separator = "."
[[fields]]
name = "from"
column = "Gültig ab"
type = "date"
format = "%d.%m.%Y"
[[fields]]
name = "active"
column = "Aktiv"
type = "boolean"
true_values = ["ja"]
false_values = ["nein"]
[[fields]]
name = "unit"
column = "Einheit"
[map]
entity = "product"
[map.header]
sku = "{sku}"
price = "{price}"
valid_from = "{from}"
active = "{active}"
uom = { field = "unit", translate = { Stk = "EA" } }
description = "{sku} ab {from}"
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("eu.csv");
    std::fs::write(
        &p,
        b"Artikel;Preis;G\xfcltig ab;Aktiv;Einheit\nA1;1.234,50;31.01.2026;ja;Stk\nA2;12.5;01.02.2026;nein;Stk\nA3;1;01.02.2026;vielleicht;Stk\nA4;1;01.02.2026;ja;Kiste\n",
    )
    .unwrap();
    let r = read_all_with(&f, &p, &ctx_for(&p));
    assert!(r.error.is_none(), "{:?}", r.error);
    let body = &r.units[1].eval.records[0];
    assert_eq!(body.key, "P-A1");
    assert_eq!(
        body.body(),
        serde_json::json!({"sku": "A1", "price": "1234.50", "valid_from": "2026-01-31",
            "active": true, "uom": "EA", "description": "A1 ab 2026-01-31"})
    );
    let rule = |u: usize| match &r.units[u].eval.verdicts[0] {
        LineVerdict::Rejected(x) => (x.rule.clone(), x.message.clone()),
        other => panic!("{other:?}"),
    };
    // "12.5" has a dot where the decimal separator is a comma: not silently 125.
    assert_eq!(rule(2).0, "type");
    assert_eq!(
        rule(3),
        (
            "type".into(),
            "column 'Aktiv': active: is not a yes/no value (true: ja; false: nein)".into()
        )
    );
    assert_eq!(
        rule(4),
        (
            "translate".into(),
            "unit: no translation for 'Kiste'".into()
        )
    );
}
