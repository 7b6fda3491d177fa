//! The tests of `canonical` (the content hash, the contracts, entity names and keys),
//! apart so the module reads as the code alone.

use super::*;
use serde_json::json;

#[test]
fn hex32_is_the_formatters_hex() {
    for h in [
        0,
        1,
        0xf0,
        u128::from(u64::MAX),
        u128::MAX,
        0x0123_4567_89ab_cdef << 60,
    ] {
        assert_eq!(hex32(h), format!("{h:032x}"));
    }
}

#[test]
fn the_content_hash_is_xxh3_128_and_never_changes() {
    // Stored hashes are compared with new ones for as long as a ledger lives: a change
    // of algorithm, seed or spelling would make every record look changed. The empty
    // input's value is the reference implementation's published one.
    assert_eq!(content_hash(""), "99aa06d3014798d86001c324468d497f");
    assert_eq!(
        content_hash("{\"sku\":\"S1\"}"),
        "395a5623b24c8330089855828e66d0c5"
    );
    assert_eq!(
        legacy_content_hash("{\"sku\":\"S1\"}"),
        &blake3::hash(b"{\"sku\":\"S1\"}").to_hex()[..32]
    );
}

#[test]
fn order_contract_normalises_decimals_as_strings() {
    let r = Record::build(
        Entity::Order,
        "A1",
        json!({"order_no":"A1","order_date":"2024-01-31","lines":[{"line_no":"1","quantity":"2.50","unit_price":"3"}]}),
    )
    .unwrap();
    assert_eq!(r.body()["lines"][0]["quantity"], json!("2.50"));
}

#[test]
fn unknown_field_is_a_contract_error() {
    let e = Record::build(Entity::Product, "S", json!({"sku":"S","colour":"red"})).unwrap_err();
    assert_eq!(e.rule, "contract");
    assert!(e.message.contains("colour"), "{}", e.message);
}

#[test]
fn bad_date_is_rejected_with_its_path() {
    let e = Record::build(
        Entity::Invoice,
        "I",
        json!({"invoice_no":"I","invoice_date":"31.01.2024","lines":[]}),
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("invoice_date"));
}

#[test]
fn supplier_contract_keeps_bank_details_and_refuses_unknown_fields() {
    let r = Record::build(
        Entity::Supplier,
        "V-1",
        json!({"supplier_id":"V-1","name":"Acme","iban":"DE89370400440532013000",
               "bic":"COBADEFFXXX","account_holder":"Acme GmbH","payment_terms":"NT30",
               "active":true}),
    )
    .unwrap();
    assert_eq!(r.body()["iban"], "DE89370400440532013000");
    assert_eq!(r.body()["payment_terms"], "NT30");
    assert!(
        r.body().get("bank_account").is_none(),
        "absent stays absent"
    );
    // A nested bank object is not the contract: a map producing one is an error.
    let e = Record::build(
        Entity::Supplier,
        "V-1",
        json!({"supplier_id":"V-1","name":"Acme","bank":{"iban":"x"}}),
    )
    .unwrap_err();
    assert_eq!(e.rule, "contract");
    assert!(e.message.contains("bank"), "{}", e.message);
    let e = Record::build(Entity::Supplier, "V-1", json!({"supplier_id":"V-1"})).unwrap_err();
    assert!(e.message.contains("name"), "{}", e.message);
}

#[test]
fn sensitive_fields_are_fields_of_the_contract() {
    for e in Entity::ALL {
        for f in e.sensitive_fields() {
            let mut body = match e {
                Entity::Customer => json!({"customer_id":"C","name":"n"}),
                _ => json!({"supplier_id":"V","name":"n"}),
            };
            body[*f] = json!("x");
            let r = Record::build(e, "k", body);
            assert!(r.is_ok(), "{e}: {f}: {r:?}");
        }
    }
    assert_eq!(
        Entity::Supplier.sensitive_fields(),
        ["iban", "bank_account", "account_holder", "email", "phone"]
    );
    assert_eq!(Entity::Customer.sensitive_fields(), ["email", "phone"]);
}

#[test]
fn documents_are_created_once_and_master_data_upserted() {
    use Identity::*;
    let got: Vec<(&str, Identity)> = Entity::ALL
        .iter()
        .map(|e| (e.as_str(), e.identity()))
        .collect();
    assert_eq!(
        got,
        [
            ("order", CreateOnce),
            ("order_ack", CreateOnce),
            ("invoice", CreateOnce),
            ("shipment", CreateOnce),
            ("customer", Upsert),
            ("product", Upsert),
            ("supplier", Upsert),
        ]
    );
    assert_eq!(serde_json::to_value(CreateOnce).unwrap(), "create-once");
    assert_eq!(serde_json::to_value(Upsert).unwrap(), "upsert");
}

#[test]
fn entity_names_round_trip() {
    for e in Entity::ALL {
        assert_eq!(Entity::parse(e.as_str()), Some(e));
        assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
    }
    assert_eq!(Entity::parse("supplier"), Some(Entity::Supplier));
}

#[test]
fn iso_dates_read_and_written_as_chrono_does() {
    use chrono::NaiveDate;
    for s in [
        "2026-11-05",
        "2024-02-29",
        "2023-02-29",
        "0000-01-01",
        "9999-12-31",
        "2026-13-01",
        "2026-00-10",
        "2026-1-5",
        "+2026-01-05",
        "12026-01-05",
        " 2026-01-05",
        "2026/01/05",
        "2026-01-05T",
        "",
        "2026-01-0x",
    ] {
        let chrono = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        assert_eq!(parse_iso_date(s), chrono, "{s:?}");
    }
    for d in [
        NaiveDate::from_ymd_opt(2026, 1, 5),
        NaiveDate::from_ymd_opt(0, 1, 1),
        NaiveDate::from_ymd_opt(-5, 1, 1),
        NaiveDate::from_ymd_opt(12026, 1, 5),
    ] {
        let d = d.unwrap();
        assert_eq!(format_iso_date(d), d.format("%Y-%m-%d").to_string());
    }
}

#[test]
fn empty_key_is_rejected() {
    assert!(Record::build(Entity::Customer, " ", json!({"customer_id":"","name":"x"})).is_err());
}
