//! IDocs read into records: mapping to canonical records, sniffing and SOAP envelopes,
//! many IDocs in one file and their positions, values normalised, and the rules that
//! reject an IDoc at its control record, segment or field.

use super::*;

#[test]
fn order_maps_to_canonical_record_with_claim_and_detail() {
    let r = read(&wrap(&[order("5220230", ORDER_BODY)]));
    assert!(r.error.is_none(), "{:?}", r.error);
    let u = &r.units[0];
    assert_eq!(u.status(), UnitStatus::Applied, "{:?}", u.eval);
    let rec = &u.eval.records[0];
    assert_eq!(rec.key, "PRDCLNT100/4711");
    assert_eq!(rec.body()["order_no"], "4711");
    assert_eq!(rec.body()["order_date"], "2024-01-31");
    assert_eq!(rec.body()["customer_id"], "C100");
    assert_eq!(rec.body()["purpose"], "original");
    assert_eq!(rec.body()["lines"][0]["quantity"], "5.000");
    assert_eq!(rec.body()["lines"][0]["unit_price"], "2.50");
    assert_eq!(rec.body()["lines"][0]["sku"], "SKU-1");
    assert_eq!(rec.body()["lines"][1]["line_no"], "000020");
    assert_eq!(rec.body()["parties"][0]["role"], "buyer");
    // DOCNUM is NUMC 16: the claim uses the padded form so both spellings collide.
    assert_eq!(u.eval.claims, vec!["idoc:PRDCLNT100:0000000005220230"]);
    assert_eq!(u.eval.detail["SNDPRN"], "PRDCLNT100");
    assert_eq!(u.eval.detail["DOCNUM"], "5220230");
    // Only what the STATUS acknowledgement reads is kept.
    assert_eq!(u.eval.detail.get("MESTYP"), None);
    assert!(matches!(u.eval.verdicts[0], LineVerdict::Skipped(_)));
}

fn vendor(typ: &str, banks: &str) -> String {
    format!(
        "<{typ}><IDOC BEGIN=\"1\">{}<E1LFA1M SEGMENT=\"1\"><LIFNR>V1</LIFNR><NAME1>Vendor</NAME1>\
         {banks}</E1LFA1M></IDOC></{typ}>",
        dc("7", typ, "CREMAS")
    )
}

#[test]
fn vendor_bank_fields_come_from_one_account_only() {
    // The first account has no IBAN, the second has one: taking each field's first
    // non-blank value would pair account 1's number with account 2's IBAN.
    let banks = "<E1LFBKM SEGMENT=\"1\"><BANKS>US</BANKS><BANKL>021000021</BANKL>\
        <BANKN>000123456789</BANKN></E1LFBKM>\
        <E1LFBKM SEGMENT=\"1\"><BANKS>DE</BANKS><SWIFT>COBADEFFXXX</SWIFT>\
        <IBAN>DE89370400440532013000</IBAN><KOINH>Other GmbH</KOINH></E1LFBKM>";
    for typ in ["CREMAS05", "CREMAS06"] {
        let r = read(&vendor(typ, banks));
        assert_eq!(
            r.units[0].status(),
            UnitStatus::Applied,
            "{:?}",
            r.units[0].eval
        );
        let b = &r.units[0].eval.records[0].body();
        assert_eq!(
            b,
            &serde_json::json!({"supplier_id":"V1","name":"Vendor","bank_country":"US",
                "bank_code":"021000021","bank_account":"000123456789","active":true}),
            "{typ}"
        );
    }
    // No bank segment at all: no bank fields, nothing invented.
    let r = read(&vendor("CREMAS06", ""));
    let b = &r.units[0].eval.records[0].body();
    assert_eq!(
        b,
        &serde_json::json!({"supplier_id":"V1","name":"Vendor","active":true})
    );
}

#[test]
fn vendor_without_name_is_a_contract_reject() {
    let r = read(&vendor("CREMAS06", "").replace("<NAME1>Vendor</NAME1>", ""));
    assert_eq!(rejected_rules(&r, 0), ["contract"]);
    assert!(r.units[0].eval.unit_errors[0].message.contains("name"));
}

#[test]
fn many_idocs_in_one_file_get_sequential_units_and_exact_positions() {
    let file = wrap(&[
        order("1", ORDER_BODY),
        order("2", ORDER_BODY),
        order("3", ORDER_BODY),
    ]);
    let r = read(&file);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.units.len(), 3);
    assert_eq!(
        r.units.iter().map(|u| u.seq).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let u = &r.units[1];
    assert_eq!(u.label, "IDoc 2 (ORDERS05 2)");
    // 7 segments per IDoc: records continue across IDocs.
    assert_eq!(u.lines.len(), 7);
    assert_eq!(u.lines[0].pos.record, 8);
    let second_p01 = &u.lines[6];
    let loc = second_p01.pos.locator.as_deref().unwrap();
    assert!(
        loc.starts_with("IDoc 2 / E1EDP01 #2 (line 4, column "),
        "{loc}"
    );
    // The byte offset points at the segment's start tag.
    let at = second_p01.pos.byte as usize;
    assert!(file[at..].starts_with("<E1EDP01"), "{}", &file[at..at + 20]);
    assert!(second_p01.raw.starts_with("E1EDP01: POSEX=000020 MENGE=1"));
}

#[test]
fn soap_wrapped_idoc_is_sniffed_and_read() {
    let body = format!(
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soapenv:Header><x>ignored text</x></soapenv:Header><soapenv:Body>\
         <ns0:ORDERS05 xmlns:ns0=\"urn:sap-com:document:sap:idoc:soap:messages\">{}\
         </ns0:ORDERS05></soapenv:Body></soapenv:Envelope>",
        order("42", ORDER_BODY)
    );
    let f = format();
    let probe = Probe {
        name: "x.xml",
        head: body.as_bytes(),
    };
    assert_eq!(f.sniff(&probe), Some(100));
    let r = read(&body);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.units.len(), 1);
    assert_eq!(r.units[0].status(), UnitStatus::Applied);
}

#[test]
fn sniff_claims_type_roots_and_flat_idocs_only() {
    let f = format();
    let s = |head: &str| {
        f.sniff(&Probe {
            name: "f",
            head: head.as_bytes(),
        })
    };
    assert_eq!(
        s("<?xml version=\"1.0\"?><INVOIC02><IDOC BEGIN=\"1\">"),
        Some(100)
    );
    assert_eq!(s("<MATMAS05>"), Some(100));
    assert_eq!(s("EDI_DC40  0320000000000887330620 3012"), Some(50));
    assert_eq!(s("<ORDERS05X>"), None);
    assert_eq!(s("<catalog><item/></catalog>"), None);
    assert_eq!(s("a,b,c\n1,2,3\n"), None);
}

/// They reject the control record's line at the field; as unit errors they used to land on
/// the first data segment (the control record is otherwise a skipped line).
#[test]
fn unknown_type_and_message_reject_the_control_record_at_the_field() {
    let r = read(&format!(
        "<X><IDOC BEGIN=\"1\">{}</IDOC><IDOC BEGIN=\"1\">{}{ORDER_BODY}</IDOC></X>",
        dc("1", "FOOBAR01", "FOO"),
        dc("2", "ORDERS05", "NOPE")
    ));
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(rejected_rules(&r, 0), vec!["idoc-unknown-type"]);
    let LineVerdict::Rejected(reason) = &r.units[0].eval.verdicts[0] else {
        panic!("{:?}", r.units[0].eval)
    };
    assert!(reason.message.contains("ORDERS05"));
    assert!(
        reason
            .locator
            .as_deref()
            .unwrap()
            .starts_with("IDoc 1 / EDI_DC40 #1 / IDOCTYP (line 1, column "),
        "{reason:?}"
    );
    assert_eq!(rejected_rules(&r, 1), vec!["idoc-unknown-message"]);
    assert!(matches!(
        &r.units[1].eval.verdicts[0],
        LineVerdict::Rejected(r) if r.field.as_deref() == Some("MESTYP")
    ));
}

#[test]
fn structural_rules_reject_the_offending_segment() {
    let cases: &[(&str, &str)] = &[
        (
            "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR></E1EDK01><E1XXX99 SEGMENT=\"1\"/>",
            "idoc-unknown-segment",
        ),
        (
            "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR></E1EDK01><E1EDP20 SEGMENT=\"1\"/>",
            "idoc-segment-hierarchy",
        ),
        (
            "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR></E1EDK01>\
             <E1EDK01 SEGMENT=\"1\"><BELNR>2</BELNR></E1EDK01>",
            "idoc-occurrence",
        ),
        (
            "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR></E1EDK01><E1EDP01 SEGMENT=\"1\"><MENGE>1</MENGE></E1EDP01>",
            "required",
        ),
        (
            "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR><CURCY>EURO</CURCY></E1EDK01>",
            "idoc-field-length",
        ),
        ("<E1EDKA1 SEGMENT=\"1\"><PARVW>AG</PARVW></E1EDKA1>", "idoc-missing-segment"),
    ];
    for (body, rule) in cases {
        let r = read(&wrap(&[order("1", body)]));
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(&rejected_rules(&r, 0), &[rule.to_string()], "{body}");
    }
    // Customer segments are accepted anywhere, with their children.
    let r = read(&wrap(&[order(
        "1",
        &format!("{ORDER_BODY}<Z1MINE SEGMENT=\"1\"><X>1</X><Z1SUB SEGMENT=\"1\"/></Z1MINE>"),
    )]));
    assert_eq!(r.units[0].status(), UnitStatus::Applied);
}

/// Regression (hardening contract): a rejected IDoc produced no record, so its reject rows
/// could not name the order, invoice or delivery a reviewer has to find.
#[test]
fn regression_rejected_idoc_did_not_name_its_document() {
    let r = read(&wrap(&[
        order(
            "1",
            "<E1EDK01 SEGMENT=\"1\"><BELNR>4711</BELNR><CURCY>EURO</CURCY></E1EDK01>",
        ),
        order("2", ORDER_BODY),
        order("3", "<E1EDK01 SEGMENT=\"1\"><CURCY>EUR</CURCY></E1EDK01>"),
    ]));
    assert_eq!(r.units[0].status(), UnitStatus::Rejected);
    assert_eq!(r.units[0].eval.key.as_deref(), Some("4711"));
    // The key as stated, without the sender prefix of the record key.
    assert_eq!(r.units[1].eval.key.as_deref(), Some("4711"));
    assert_eq!(r.units[1].eval.records[0].key, "PRDCLNT100/4711");
    assert_eq!(r.units[2].eval.key, None);
}

#[test]
fn rejected_segment_reason_names_field_and_value() {
    let r = read(&wrap(&[order(
        "1",
        "<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR><CURCY>EURO</CURCY></E1EDK01>",
    )]));
    let LineVerdict::Rejected(reason) = &r.units[0].eval.verdicts[1] else {
        panic!("{:?}", r.units[0].eval.verdicts)
    };
    assert_eq!(reason.field.as_deref(), Some("CURCY"));
    assert_eq!(reason.value.as_deref(), Some("EURO"));
    assert!(reason.message.contains("max 3"));
}

#[test]
fn bad_docnum_rejects_and_empty_docnum_is_tolerated() {
    let r = read(&wrap(&[order("Avon", ORDER_BODY), order("", ORDER_BODY)]));
    assert_eq!(rejected_rules(&r, 0), vec!["idoc-docnum"]);
    assert_eq!(r.units[1].status(), UnitStatus::Applied);
    assert!(r.units[1].eval.claims.is_empty());
    assert_eq!(r.units[1].eval.tolerated, vec!["idoc-docnum-empty"]);
}

#[test]
fn sap_trailing_minus_and_zero_dates_are_normalised() {
    let body = ORDER_BODY
        .replace("<VPREI>2.50</VPREI>", "<VPREI>2.50-</VPREI>")
        .replace(
            "<E1EDK03 SEGMENT=\"1\"><IDDAT>012</IDDAT><DATUM>20240131</DATUM></E1EDK03>",
            "<E1EDK03 SEGMENT=\"1\"><IDDAT>012</IDDAT><DATUM>00000000</DATUM></E1EDK03>\
             <E1EDK03 SEGMENT=\"1\"><IDDAT>011</IDDAT><DATUM>20240201</DATUM></E1EDK03>",
        );
    let r = read(&wrap(&[order("1", &body)]));
    let rec = &r.units[0].eval.records[0];
    assert_eq!(rec.body()["lines"][0]["unit_price"], "-2.50");
    assert_eq!(rec.body()["order_date"], "2024-02-01");
}
