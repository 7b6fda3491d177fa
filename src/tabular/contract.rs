//! The field names of each canonical contract, read from the contract types themselves.
//!
//! A definition's `[map]` is checked against the contract at load time so a misspelt
//! target (`order_dat`) is a config error with a line number, not a rejected record at
//! 3 a.m. Rather than keep a second, drifting list of names, this asks serde: a derived
//! `Deserialize` hands its field list to `deserialize_struct`, which a tiny capturing
//! deserializer records. Required fields are found the same way: a field is optional if
//! deserialising an object without it still succeeds.

use serde::de::{self, Deserialize, Visitor};

use crate::canonical::{
    Customer, Entity, Invoice, InvoiceLine, Order, OrderAck, OrderAckLine, OrderLine, Product,
    Shipment, ShipmentLine, Supplier,
};

/// What a canonical record looks like from the outside.
#[derive(Debug, Clone)]
pub struct Shape {
    pub fields: Vec<&'static str>,
    pub required: Vec<&'static str>,
    /// Field names of a line, for entities with `lines`.
    pub line_fields: Option<Vec<&'static str>>,
    pub line_required: Option<Vec<&'static str>>,
    /// Whether the record cannot be built without lines.
    pub lines_required: bool,
}

struct Capture(Option<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for &mut Capture {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("capture only"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = Some(fields);
        Err(de::Error::custom("captured"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The fields of `T` in declaration order, as its derived `Deserialize` lists them.
pub(crate) fn names<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
    let mut c = Capture(None);
    let _ = T::deserialize(&mut c);
    c.0.map(|f| f.to_vec()).unwrap_or_default()
}

/// A field is required if an object holding every other field (with a plausible value)
/// fails to deserialise. Values are chosen per name so the probe only fails for absence.
fn required<T: for<'de> Deserialize<'de>>(fields: &[&'static str]) -> Vec<&'static str> {
    let sample = |name: &str| -> serde_json::Value {
        match name {
            "lines" | "parties" | "order_nos" => serde_json::json!([]),
            "active" => serde_json::json!(true),
            "quantity" | "unit_price" | "amount" | "total" | "price" | "min_order_qty"
            | "weight_kg" => serde_json::json!("1"),
            _ => serde_json::json!("x"),
        }
    };
    fields
        .iter()
        .copied()
        .filter(|missing| {
            let obj: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .filter(|f| *f != missing)
                .map(|f| (f.to_string(), sample(f)))
                .collect();
            T::deserialize(serde_json::Value::Object(obj)).is_err()
        })
        .collect()
}

fn shape_of<T, L>(with_lines: bool) -> Shape
where
    T: for<'de> Deserialize<'de>,
    L: for<'de> Deserialize<'de>,
{
    let fields = names::<T>();
    let req = required::<T>(&fields);
    let (line_fields, line_required) = if with_lines {
        let lf = names::<L>();
        let lr = required::<L>(&lf);
        (Some(lf), Some(lr))
    } else {
        (None, None)
    };
    Shape {
        lines_required: req.contains(&"lines"),
        fields,
        required: req,
        line_fields,
        line_required,
    }
}

/// Whether a canonical field holds a date (`YYYY-MM-DD`): the rule `Record::build` checks
/// dates by (`crate::canonical`), which the test below pins.
pub fn is_date_field(name: &str) -> bool {
    name.ends_with("_date") || name == "valid_from"
}

/// The contract shape of an entity.
pub fn shape(entity: Entity) -> Shape {
    match entity {
        Entity::Order => shape_of::<Order, OrderLine>(true),
        Entity::OrderAck => shape_of::<OrderAck, OrderAckLine>(true),
        Entity::Invoice => shape_of::<Invoice, InvoiceLine>(true),
        Entity::Shipment => shape_of::<Shipment, ShipmentLine>(true),
        Entity::Customer => shape_of::<Customer, Customer>(false),
        Entity::Product => shape_of::<Product, Product>(false),
        Entity::Supplier => shape_of::<Supplier, Supplier>(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_shape_matches_the_contract() {
        let s = shape(Entity::Order);
        assert!(s.fields.contains(&"order_no") && s.fields.contains(&"currency"));
        assert_eq!(s.required, vec!["order_no", "lines"]);
        assert!(s.lines_required);
        let lr = s.line_required.unwrap();
        assert_eq!(lr, vec!["line_no", "quantity"]);
        assert!(s.line_fields.unwrap().contains(&"unit_price"));
    }

    #[test]
    fn date_fields_are_the_ones_the_contract_checks_as_dates() {
        let mut checked = 0;
        for e in Entity::ALL {
            let s = shape(e);
            for f in s.fields.iter().filter(|f| is_date_field(f)) {
                let mut body = serde_json::json!({"lines": []});
                for r in s.required.iter().filter(|r| **r != "lines") {
                    body[*r] = serde_json::json!("1");
                }
                body[*f] = serde_json::json!("2024-01-01T00:00:00Z");
                let err = crate::canonical::Record::build(e, "k", body).unwrap_err();
                assert_eq!(err.field.as_deref(), Some(*f), "{e:?}: {err:?}");
                checked += 1;
            }
        }
        assert!(checked >= 6, "{checked}");
    }

    #[test]
    fn customer_has_no_lines() {
        let s = shape(Entity::Customer);
        assert!(s.line_fields.is_none());
        assert_eq!(s.required, vec!["customer_id", "name"]);
        assert!(!shape(Entity::OrderAck).lines_required);
    }

    #[test]
    fn supplier_shape_is_flat_with_two_required_fields() {
        let s = shape(Entity::Supplier);
        assert!(s.line_fields.is_none());
        assert_eq!(s.required, vec!["supplier_id", "name"]);
        for f in Entity::Supplier.sensitive_fields() {
            assert!(s.fields.contains(f), "{f}");
        }
    }
}
