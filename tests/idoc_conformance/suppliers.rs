//! Suppliers (CREMAS06): bank details masked in ledger lines, in rejects and in the STATUS
//! sent back, however a bank segment breaks its definition.

use super::*;

#[test]
fn cremas06_suppliers_carry_bank_details_masked_in_the_ledger() {
    let r = sample("idoc-cremas06-suppliers.xml");
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.units.len(), 2);
    let de = &r.units[0].eval.records[0];
    assert_eq!(de.entity.as_str(), "supplier");
    assert_eq!(de.key, "PRDCLNT100/0000300101");
    let expected = serde_json::json!({
        "supplier_id": "0000300101",
        "name": "Brightwater Components GmbH",
        "address": "Industriestraße 7",
        "city": "Stuttgart",
        "region": "08",
        "postal_code": "70565",
        "country": "DE",
        "vat_id": "DE123456789",
        "phone": "+49 711 5550100",
        "payment_terms": "NT30",
        "currency": "EUR",
        // The first E1LFBKM, whole: the second account (CH) is not mixed in.
        "iban": "DE89370400440532013000",
        "bic": "COBADEFFXXX",
        "bank_account": "0532013000",
        "bank_code": "37040044",
        "bank_country": "DE",
        "account_holder": "Brightwater Components GmbH",
        "active": true
    });
    assert_eq!(de.body(), expected);
    assert_eq!(
        r.units[0].eval.claims,
        vec!["idoc:PRDCLNT100:0000000004200001"]
    );
    // In the ledger every account identifier is masked, in both bank segments.
    let banks = raw_of(&r, 0, "E1LFBKM");
    assert_eq!(banks.len(), 2);
    for clear in [
        "DE89370400440532013000",
        "0532013000",
        "Brightwater Components GmbH",
        "CH9300762011623852957",
        "0762011623852957",
        "Brightwater Schweiz AG",
    ] {
        assert!(
            !banks.iter().any(|b| b.contains(clear)),
            "{clear}: {banks:?}"
        );
    }
    assert!(
        banks[0].contains("IBAN=********************00"),
        "{}",
        banks[0]
    );
    assert!(banks[0].contains("SWIFT=COBADEFFXXX"), "{}", banks[0]);
    // ...and the general data is kept as sent, but for how to reach a person.
    let general = &raw_of(&r, 0, "E1LFA1M")[0];
    assert!(general.contains("NAME1=Brightwater Components GmbH"));
    assert!(!general.contains("+49 711 5550100"), "{general}");
    assert!(general.contains("TELF1=*************00"), "{general}");

    let us = &r.units[1].eval.records[0].body();
    assert_eq!(us["bank_account"], "000123456789");
    assert_eq!(us["bank_code"], "021000021");
    assert!(us.get("iban").is_none(), "{us}");
    assert_eq!(
        us["payment_terms"], "NT45",
        "from purchasing: no company code"
    );
    assert_eq!(us["currency"], "USD");
    assert_eq!(us["active"], false, "blocked for purchasing (SPERM)");
    let ack = ack_text(&r);
    assert_eq!(ack.matches("<STATUS>53</STATUS>").count(), 2, "{ack}");
}

/// A bank segment that breaks its definition: the reject names the field with the value
/// masked, and neither the reason nor the STATUS sent back shows the account.
#[test]
fn cremas_bank_field_errors_never_show_the_account() {
    let text = std::fs::read_to_string(root().join("samples/inbox/idoc-cremas06-suppliers.xml"))
        .unwrap()
        .replace(
            "<BANKN>0532013000</BANKN>",
            "<BANKN>05320130001234567890</BANKN>",
        )
        .replace(
            "<IBAN>CH9300762011623852957</IBAN>",
            "<IBAN>CH9300762011623852957000000000000000</IBAN>",
        );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cremas-bad.xml");
    std::fs::write(&p, &text).unwrap();
    let r = read_all(format().as_ref(), &p);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.units[0].status(), UnitStatus::Rejected);
    assert_eq!(r.units[1].status(), UnitStatus::Applied);
    let got: Vec<(u64, String, Option<String>, Option<String>)> = r.units[0]
        .eval
        .verdicts
        .iter()
        .zip(&r.units[0].lines)
        .filter_map(|(v, l)| match v {
            LineVerdict::Rejected(x) => Some((
                x.place.map_or(l.pos.line, |(line, _)| line),
                x.rule.clone(),
                x.field.clone(),
                x.value.clone(),
            )),
            _ => None,
        })
        .collect();
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        got,
        [
            (
                49,
                "idoc-field-length".into(),
                s("BANKN"),
                Some(format!("{}90", "*".repeat(18)))
            ),
            (
                63,
                "idoc-field-length".into(),
                s("IBAN"),
                Some(format!("{}00", "*".repeat(34)))
            ),
        ]
    );
    let ack = ack_text(&r);
    for clear in ["0532013000", "CH930076"] {
        assert!(!ack.contains(clear), "{clear} in {ack}");
        for l in &r.units[0].lines {
            assert!(!l.raw.contains(clear), "{clear} in {}", l.raw);
        }
    }
    assert!(ack.contains("<STAPA2>BANKN</STAPA2>"), "{ack}");
}
