//! Generated workbooks that must read correctly: dates in both systems, hidden sheets,
//! a consumer that stops early, oversized cells, files that are not spreadsheets, ODS.

use super::*;

#[test]
fn date_cells_in_the_1904_system_match_the_1900_system() {
    let dir = tempfile::tempdir().unwrap();
    // 2026-11-03 = 46329 (1900) = 44867 (1904); with a time of 06:00.
    let make = |serial: &str, is_1904: bool| {
        xlsx(
            &[Sheet {
                name: "Orders",
                hidden: false,
                data: &format!(r#"<row r="2"><c r="C2" s="1"><v>{serial}</v></c></row>"#),
            }],
            None,
            is_1904,
        )
    };
    let a = read(
        &write_tmp(dir.path(), "a.xlsx", &make("46329.25", false)),
        SheetSelector::Index(0),
    )
    .unwrap();
    let b = read(
        &write_tmp(dir.path(), "b.xlsx", &make("44867.25", true)),
        SheetSelector::Index(0),
    )
    .unwrap();
    assert_eq!(
        a[0].cells,
        vec![
            Cell::Empty,
            Cell::Empty,
            Cell::DateTime("2026-11-03T06:00:00".into())
        ]
    );
    assert_eq!(a[0].cells, b[0].cells);
}

#[test]
fn hidden_sheet_with_data_is_read_by_name_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = xlsx(
        &[
            Sheet {
                name: "Front",
                hidden: false,
                data: r#"<row r="1"><c r="A1" t="s"><v>0</v></c></row>"#,
            },
            Sheet {
                name: "Lookup Data",
                hidden: true,
                data: r#"<row r="4"><c r="B4" t="s"><v>1</v></c><c r="C4" t="b"><v>1</v></c><c r="D4"><v>-2.5</v></c></row>"#,
            },
        ],
        Some("<si><t>front</t></si><si><t>secret</t></si>"),
        false,
    );
    let p = write_tmp(dir.path(), "h.xlsx", &bytes);
    let by_name = read(&p, SheetSelector::Name("Lookup Data".into())).unwrap();
    let by_index = read(&p, SheetSelector::Index(1)).unwrap();
    assert_eq!(by_name, by_index);
    let r = &by_name[0];
    assert_eq!(
        r.cells,
        vec![
            Cell::Empty,
            Cell::Text("secret".into()),
            Cell::Bool(true),
            Cell::Float(-2.5)
        ]
    );
    assert_eq!(r.pos.locator.as_deref(), Some("Lookup Data!A4"));
    assert_eq!(r.raw, ",secret,true,-2.5");
}

#[test]
fn a_consumer_that_stops_early_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = String::new();
    for r in 1..=5_000 {
        data.push_str(&format!(r#"<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>"#));
    }
    let p = write_tmp(
        dir.path(),
        "many.xlsx",
        &xlsx(
            &[Sheet {
                name: "S",
                hidden: false,
                data: &data,
            }],
            None,
            false,
        ),
    );
    let mut src = open_rows(&p, &ctx(), &SheetSelector::Index(0)).unwrap();
    let first = src.next_row().unwrap().unwrap();
    assert_eq!(first.cells, vec![Cell::Float(1.0)]);
    drop(src);
    // And a full read sees every row, in order.
    let rows = read(&p, SheetSelector::Index(0)).unwrap();
    assert_eq!(rows.len(), 5_000);
    assert!(rows.windows(2).all(|w| w[0].row_number < w[1].row_number));
}

#[test]
fn oversized_cell_text_is_refused_with_its_cell() {
    let dir = tempfile::tempdir().unwrap();
    // Pseudo-random letters, so the part does not trip the compression-ratio check first.
    let mut seed = 12345u32;
    let big: String = (0..600 * 1024)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            char::from(b'a' + ((seed >> 16) % 26) as u8)
        })
        .collect();
    let bytes = xlsx(
        &[Sheet {
            name: "Notes",
            hidden: false,
            data: &format!(
                r#"<row r="7"><c r="B7" t="inlineStr"><is><t>{big}</t></is></c><c r="C7" t="inlineStr"><is><t>{big}</t></is></c></row>"#
            ),
        }],
        None,
        false,
    );
    let p = write_tmp(dir.path(), "big.xlsx", &bytes);
    let e = read(&p, SheetSelector::Index(0)).unwrap_err();
    assert_eq!(e.reason.rule, "sheet-row-too-large");
    assert_eq!(e.pos.unwrap().locator.as_deref(), Some("Notes!A7"));
}

#[test]
fn not_a_spreadsheet_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_tmp(dir.path(), "x.xlsx", b"order_no,sku\n1,A\n");
    assert_eq!(
        read(&p, SheetSelector::Index(0)).unwrap_err().reason.rule,
        "sheet-unrecognised"
    );
    // An OLE2 header with nothing behind it.
    let p = write_tmp(
        dir.path(),
        "y.xls",
        &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0, 0],
    );
    assert_eq!(
        read(&p, SheetSelector::Index(0)).unwrap_err().reason.rule,
        "sheet-corrupt"
    );
    // Truncated zip.
    let bytes = sparse_far_cell();
    let p = write_tmp(dir.path(), "z.xlsx", &bytes[..bytes.len() / 2]);
    assert_eq!(
        read(&p, SheetSelector::Index(0)).unwrap_err().reason.rule,
        "sheet-corrupt"
    );
}

#[test]
fn ods_workbook_reads_through_the_range_path() {
    let dir = tempfile::tempdir().unwrap();
    let s = |t: &str| {
        format!(
            r#"<table:table-cell office:value-type="string"><text:p>{t}</text:p></table:table-cell>"#
        )
    };
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Prices"><table:table-row>{}{}{}</table:table-row><table:table-row table:number-rows-repeated="2"><table:table-cell table:number-columns-repeated="3"/></table:table-row><table:table-row>{}<table:table-cell office:value-type="float" office:value="12.5"><text:p>12.5</text:p></table:table-cell><table:table-cell office:value-type="date" office:date-value="2026-11-01"><text:p>01/11/26</text:p></table:table-cell></table:table-row><table:table-row table:number-rows-repeated="1048570"><table:table-cell table:number-columns-repeated="1024"/></table:table-row></table:table><table:table table:name="Other"><table:table-row>{}</table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#,
        s("sku"),
        s("price"),
        s("valid_from"),
        s("A-1"),
        s("other")
    );
    let bytes = zip_parts(&[
        (
            "mimetype".into(),
            b"application/vnd.oasis.opendocument.spreadsheet".to_vec(),
        ),
        (
            "META-INF/manifest.xml".into(),
            ODS_MANIFEST.as_bytes().to_vec(),
        ),
        ("content.xml".into(), content.into_bytes()),
    ]);
    let p = write_tmp(dir.path(), "prices.ods", &bytes);
    let rows = read(&p, SheetSelector::Name("Prices".into())).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].row_number, 4);
    assert_eq!(rows[1].pos.locator.as_deref(), Some("Prices!A4"));
    assert_eq!(
        rows[1].cells,
        vec![
            Cell::Text("A-1".into()),
            Cell::Float(12.5),
            Cell::DateTime("2026-11-01".into())
        ]
    );
    let other = read(&p, SheetSelector::Index(1)).unwrap();
    assert_eq!(other[0].cells, vec![Cell::Text("other".into())]);
}
