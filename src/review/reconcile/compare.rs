//! The pure half of reconciliation: which listed records are in scope, and which owned
//! fields of a record differ between the version the ERP should hold and what it lists.
//!
//! Values are compared as JSON, with one allowance: ERPs store amounts as numbers or
//! normalise them (`"2.50"` comes back as `"2.5"` or `2.5`), so two values that both read
//! as plain decimals compare by value. "Plain" excludes leading zeros, so a postal code
//! `"01234"` that came back as `"1234"` is a change, as it is for the people using it.
//! A field absent on one side equals `null` on the other. Sensitive values are masked
//! before they leave this module.

use std::collections::BTreeMap;
use std::str::FromStr;

use regex::Regex;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::canonical::Entity;

/// The compiled `reconcile_scope` of a target.
#[derive(Debug, Default)]
pub struct Scope {
    patterns: BTreeMap<Entity, Regex>,
}

impl Scope {
    /// Compiles the per-entity patterns (checked by `tallyman check` already; a bad one
    /// is still an error here, not a silent "everything").
    pub fn compile(patterns: &BTreeMap<Entity, String>) -> Result<Scope, String> {
        let mut out = BTreeMap::new();
        for (e, p) in patterns {
            let re = Regex::new(p).map_err(|err| format!("reconcile_scope '{p}': {err}"))?;
            out.insert(*e, re);
        }
        Ok(Scope { patterns: out })
    }

    /// Whether a listed record is one tallyman must account for. A record without an
    /// external reference is tested as the empty string.
    pub fn covers(&self, e: Entity, external_ref: Option<&str>) -> bool {
        self.patterns
            .get(&e)
            .is_none_or(|re| re.is_match(external_ref.unwrap_or("")))
    }
}

/// One owned field that differs, values masked where sensitive.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDrift {
    pub field: String,
    pub ledger: Value,
    pub erp: Value,
}

/// The fields compared: the target's owned fields for the entity, or — when it owns
/// every field — each field of the version delivered (the ERP's own fields such as its
/// id and timestamps are never tallyman's).
pub fn compared_fields(owned: Option<&Vec<String>>, held: &Value) -> Vec<String> {
    match owned {
        Some(list) => list.clone(),
        None => held
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
    }
}

/// The compared fields whose value in `remote` (under the ERP's name for the field,
/// `rename`) differs from `held`.
pub fn drift(
    e: Entity,
    held: &Value,
    remote: &Map<String, Value>,
    fields: &[String],
    rename: &BTreeMap<String, String>,
) -> Vec<FieldDrift> {
    let mut out = Vec::new();
    for f in fields {
        let ours = held.get(f).unwrap_or(&Value::Null);
        let name = rename.get(f).unwrap_or(f);
        let theirs = remote.get(name).unwrap_or(&Value::Null);
        if !same(ours, theirs) {
            out.push(FieldDrift {
                field: f.clone(),
                ledger: masked(e, f, ours),
                erp: masked(e, f, theirs),
            });
        }
    }
    out
}

/// Equal as the ERP means it: decimals by value, absent as null, recursively.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => x.keys().chain(y.keys()).all(|k| {
            same(
                x.get(k).unwrap_or(&Value::Null),
                y.get(k).unwrap_or(&Value::Null),
            )
        }),
        _ if a == b => true,
        _ => matches!((decimal(a), decimal(b)), (Some(x), Some(y)) if x == y),
    }
}

/// A value's decimal reading, if it is a number or a plain decimal string.
fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => {
            let s = n.to_string();
            Decimal::from_str(&s)
                .or_else(|_| Decimal::from_scientific(&s))
                .ok()
        }
        Value::String(s) if is_plain_decimal(s) => Decimal::from_str(s).ok(),
        _ => None,
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`: what an amount looks like, and what an identifier
/// with leading zeros does not.
fn is_plain_decimal(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    digits(int) && (int == "0" || !int.starts_with('0')) && frac.is_none_or(digits)
}

/// A value for reports: sensitive fields masked (strings keep their last two characters,
/// anything else is hidden whole).
pub fn masked(e: Entity, field: &str, v: &Value) -> Value {
    if !e.sensitive_fields().contains(&field) {
        return v.clone();
    }
    match v {
        Value::Null => Value::Null,
        Value::String(s) => Value::String(crate::unit::mask(s)),
        _ => Value::String("****".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimals_compare_by_value_and_identifiers_do_not() {
        assert!(same(&json!("2.50"), &json!("2.5")));
        assert!(same(&json!("2"), &json!("2.00")));
        assert!(same(&json!("2.50"), &json!(2.5)));
        assert!(same(&json!("-0.10"), &json!("-0.1")));
        assert!(!same(&json!("2.50"), &json!("2.51")));
        assert!(
            !same(&json!("01234"), &json!("1234")),
            "a postal code keeps its zero"
        );
        assert!(!same(&json!("1e3"), &json!("1000")), "not a plain decimal");
        assert!(!same(&json!("abc"), &json!("ABC")));
    }

    #[test]
    fn absent_is_null_and_structures_compare_deeply() {
        assert!(same(&json!({"a": "1.0"}), &json!({"a": "1", "b": null})));
        assert!(same(
            &json!([{"quantity": "2.5"}]),
            &json!([{"quantity": "2.50"}])
        ));
        assert!(!same(&json!([1]), &json!([1, 2])));
        assert!(!same(&json!({"a": 1}), &json!({})));
    }

    #[test]
    fn only_owned_fields_drift_under_the_erps_names() {
        let held = json!({"sku": "S1", "price": "2.50", "description": "Widget", "uom": "EA"});
        let remote =
            json!({"id": "p1", "sku": "S1", "price": "2.5", "text": "Gadget", "uom": "BOX"});
        let owned = vec!["price".to_string(), "description".to_string()];
        let rename = [("description".to_string(), "text".to_string())].into();
        let d = drift(
            Entity::Product,
            &held,
            remote.as_object().unwrap(),
            &compared_fields(Some(&owned), &held),
            &rename,
        );
        assert_eq!(
            d,
            vec![FieldDrift {
                field: "description".into(),
                ledger: json!("Widget"),
                erp: json!("Gadget")
            }],
            "the price is the same amount; uom is the ERP's"
        );
    }

    #[test]
    fn owning_everything_compares_the_fields_delivered_not_the_erps_own() {
        let held = json!({"customer_id": "C-1", "name": "Acme"});
        let remote = json!({"id": "c1", "external_ref": "C-1", "customer_id": "C-1", "name": "Acme", "version": 3});
        let fields = compared_fields(None, &held);
        let d = drift(
            Entity::Customer,
            &held,
            remote.as_object().unwrap(),
            &fields,
            &BTreeMap::new(),
        );
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn sensitive_values_are_masked() {
        let held = json!({"supplier_id": "V1", "iban": "DE89370400440532013000"});
        let remote = json!({"supplier_id": "V1", "iban": "DE02120300000000202051"});
        let d = drift(
            Entity::Supplier,
            &held,
            remote.as_object().unwrap(),
            &compared_fields(None, &held),
            &BTreeMap::new(),
        );
        assert_eq!(d.len(), 1);
        let text = format!("{d:?}");
        assert!(
            !text.contains("0532013000") && !text.contains("0000202051"),
            "{text}"
        );
        assert!(text.contains("00") && text.contains("51"));
    }

    #[test]
    fn scope_is_per_entity_and_everything_without_one() {
        let s = Scope::compile(&[(Entity::Customer, "^C-".to_string())].into()).unwrap();
        assert!(s.covers(Entity::Customer, Some("C-1")));
        assert!(!s.covers(Entity::Customer, Some("WEB-1")));
        assert!(!s.covers(Entity::Customer, None));
        assert!(s.covers(Entity::Product, Some("anything")));
        assert!(Scope::compile(&[(Entity::Order, "(".to_string())].into()).is_err());
    }
}
