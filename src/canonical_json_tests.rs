//! The tables against the contract structs, and the writer against the typed path on
//! bodies made to hit every kind's edges.

use serde_json::{json, Value};

use super::*;
use crate::canonical::{
    Customer, Invoice, InvoiceLine, Order, OrderAck, OrderAckLine, OrderLine, Party, Product,
    Record, Shipment, ShipmentLine, Supplier,
};
use crate::canonical_body::tests::nodes;
use crate::tabular::contract::names as names_of;

fn names(table: &[Field]) -> Vec<&'static str> {
    table.iter().map(|f| f.name).collect()
}

#[test]
fn every_table_names_its_structs_fields_in_their_order() {
    let pairs = [
        (PARTY, names_of::<Party>()),
        (ORDER_LINE, names_of::<OrderLine>()),
        (ORDER, names_of::<Order>()),
        (ORDER_ACK_LINE, names_of::<OrderAckLine>()),
        (ORDER_ACK, names_of::<OrderAck>()),
        (INVOICE_LINE, names_of::<InvoiceLine>()),
        (INVOICE, names_of::<Invoice>()),
        (SHIPMENT_LINE, names_of::<ShipmentLine>()),
        (SHIPMENT, names_of::<Shipment>()),
        (CUSTOMER, names_of::<Customer>()),
        (PRODUCT, names_of::<Product>()),
        (SUPPLIER, names_of::<Supplier>()),
    ];
    for (table, fields) in pairs {
        assert!(!fields.is_empty() && fields.len() <= MAX_FIELDS);
        assert_eq!(names(table), fields);
    }
}

/// xorshift: the same bodies on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick(&mut self, pool: &[Value]) -> Value {
        pool[self.below(pool.len())].clone()
    }

    /// The first of a pool (plainly good) half the time.
    fn of_kind(&mut self, pool: &[Value]) -> Value {
        match self.below(2) {
            0 => pool[0].clone(),
            _ => self.pick(pool),
        }
    }
}

/// Values of every kind, each pool with the edges the typed path treats specially.
fn pools() -> [Vec<Value>; 4] {
    let text = vec![
        json!("A1"),
        json!(""),
        json!("Widget, size 1"),
        json!("quote \" back \\ line\n tab\t bell\u{7} é ✓ /"),
        json!("\u{1f}"),
        json!("back \\ slash"),
        json!("say \"hi\""),
        json!("\u{7f} \u{2028}"),
    ];
    let decimal = vec![
        json!("2.50"),
        json!("-0"),
        json!("-0.00"),
        json!("007.10"),
        json!("1e3"),
        json!("1.5E-2"),
        json!("1_000"),
        json!(".5"),
        json!("+3"),
        json!(" 1"),
        json!("x"),
        json!("79228162514264337593543950336"),
        json!("0.0000000000000000000000000001"),
        json!("0.000"),
        json!("0"),
        json!("10"),
        json!("-12.5"),
        json!("-0.0"),
        json!("00"),
        json!("1."),
        json!("."),
        json!("-"),
        json!("9999999999999999999999999999"),
        json!("99999999999999999999999999999"),
        json!("1234567890123456789012345678.9"),
        json!("0.123456789012345678901234567"),
        json!("0.1234567890123456789012345678"),
    ];
    let date = vec![
        json!("2026-11-02"),
        json!("2026-02-30"),
        json!("2026-2-3"),
        json!("+2026-11-02"),
        json!("soon"),
    ];
    let other = vec![
        json!(true),
        json!(false),
        json!(null),
        json!(3),
        json!(2.5),
        json!([]),
        json!({}),
    ];
    [text, decimal, date, other]
}

/// A body for `table`: mostly values of the field's kind, sometimes anything, sometimes a
/// field left out or one the contract does not have.
fn body_for(table: &[Field], rng: &mut Rng, depth: usize) -> Value {
    let [text, decimal, date, other] = pools();
    let mut map = serde_json::Map::new();
    for field in table {
        if rng.below(8) == 0 {
            continue;
        }
        // Each kind's plainly good value half the time, so that whole bodies fit the
        // contract often enough.
        let value = match (rng.below(50), field.kind) {
            (0, _) => rng.pick(&other),
            (1, _) => rng.pick(&text),
            (2, _) => rng.pick(&decimal),
            (_, _) if is_date_field(field.name) => rng.of_kind(&date),
            (_, Text | OptText) => rng.pick(&text),
            (_, Dec | OptDec) => rng.of_kind(&decimal),
            (_, OptBool) => json!(rng.below(2) == 0),
            (_, Texts) => Value::Array((0..rng.below(3)).map(|_| rng.pick(&text)).collect()),
            (_, List(_, _)) if depth > 1 => json!([]),
            (_, List(items, _)) => Value::Array(
                (0..rng.below(4))
                    .map(|_| body_for(items, rng, depth + 1))
                    .collect(),
            ),
        };
        map.insert(field.name.to_string(), value);
    }
    if rng.below(20) == 0 {
        map.insert("colour".into(), json!("red"));
    }
    Value::Object(map)
}

/// Checks `body` both ways: what the writer writes is what the typed path writes; counts
/// `(written, left to the typed path)`.
fn compare(entity: Entity, body: Body<'_>, counts: &mut (usize, usize)) {
    let typed = Record::build_typed(entity, "k".into(), body.clone());
    match write(entity, &body) {
        Some(json) => {
            let want = typed.unwrap_or_else(|e| panic!("{entity}: {body:?}: typed {e:?}"));
            assert_eq!(json, want.json, "{entity}: {body:?}");
            counts.0 += 1;
        }
        None => counts.1 += 1,
    }
}

#[test]
fn what_the_writer_writes_is_what_the_typed_path_writes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for entity in Entity::ALL {
        let mut counts = (0, 0);
        for _ in 0..3000 {
            let v = body_for(fields_of(entity), &mut rng, 0);
            compare(entity, Body::Json(&v), &mut counts);
            compare(entity, nodes(&v), &mut counts);
        }
        // Both ways are taken, often: the pools reach the writer and the typed path.
        eprintln!("{entity}: {counts:?}");
        assert!(counts.0 > 300 && counts.1 > 300, "{entity}: {counts:?}");
    }
}

#[test]
fn what_the_writer_leaves_to_the_typed_path() {
    let line = json!({"line_no": "1", "quantity": "2"});
    let order = |extra: Value| {
        let mut v = json!({"order_no": "A1", "lines": [line]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let plain = order(json!({}));
    assert_eq!(
        write(Entity::Order, &nodes(&plain)).as_deref(),
        Some(r#"{"order_no":"A1","lines":[{"line_no":"1","quantity":"2"}]}"#)
    );
    for refused in [
        json!({"colour": "red"}),
        json!({"lines": null}),
        json!({"lines": [{"line_no": "1"}]}),
        json!({"lines": [{"line_no": "1", "quantity": 2}]}),
        json!({"order_date": "2026-02-30"}),
        json!({"lines": [{"line_no": "1", "quantity": "1", "requested_date": "soon"}]}),
        json!({"parties": null}),
        json!({"currency": true}),
    ] {
        let v = order(refused);
        assert_eq!(write(Entity::Order, &nodes(&v)), None, "{v}");
        assert_eq!(write(Entity::Order, &Body::Json(&v)), None, "{v}");
    }
    let Body::Map(mut twice) = nodes(&plain) else {
        unreachable!()
    };
    twice.push(("order_no", Body::Str("A2".into())));
    let twice = Body::Map(twice);
    assert_eq!(write(Entity::Order, &twice), None);
    assert!(Record::build_typed(Entity::Order, "k".into(), twice)
        .unwrap_err()
        .message
        .contains("duplicate field"));
}
