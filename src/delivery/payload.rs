//! What is sent: a create carries the whole mapped record plus its business key; an update
//! carries only the fields tallyman owns for that target and entity, and only those that
//! changed since the version the target holds — the ERP owns everything else, and fields
//! it owns are never written.

use serde_json::{Map, Value};

/// The body of a create: the record's data with the business key in `key_field`.
pub fn create_body(data: &Value, key: &str, key_field: &str) -> Value {
    let mut obj = match data {
        Value::Object(m) => m.clone(),
        other => {
            let mut m = Map::new();
            m.insert("data".into(), other.clone());
            m
        }
    };
    obj.insert(key_field.to_string(), Value::String(key.to_string()));
    Value::Object(obj)
}

/// The body of an update: owned fields that differ from `held` (every owned field when
/// `held` is unknown or `full`), `None` when there is nothing to send. A field the new
/// version no longer has is sent as `null` (cleared).
pub fn update_body(
    data: &Value,
    held: Option<&Value>,
    owned: &[String],
    full: bool,
) -> Option<Value> {
    let mut out = Map::new();
    for f in owned {
        let new = data.get(f).cloned().unwrap_or(Value::Null);
        let old = held.and_then(|h| h.get(f)).cloned().unwrap_or(Value::Null);
        if full || held.is_none() || new != old {
            if new.is_null() && old.is_null() && !full {
                continue;
            }
            out.insert(f.clone(), new);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// A body in the ERP's own field names: top-level fields renamed, constants added (a
/// field the record has wins over a constant of the same name).
pub fn adapt(
    body: Value,
    rename: &std::collections::BTreeMap<String, String>,
    extra: &std::collections::BTreeMap<String, String>,
) -> Value {
    let Value::Object(obj) = body else {
        return body;
    };
    let mut out = Map::new();
    for (k, v) in extra {
        out.insert(k.clone(), Value::String(v.clone()));
    }
    for (k, v) in obj {
        let name = rename.get(&k).cloned().unwrap_or(k);
        out.insert(name, v);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_create_carries_everything_and_the_key() {
        let b = create_body(&json!({"sku": "S1", "price": "2"}), "S1", "external_ref");
        assert_eq!(b, json!({"sku": "S1", "price": "2", "external_ref": "S1"}));
    }

    #[test]
    fn an_update_carries_only_owned_fields_that_changed() {
        let held = json!({"sku": "S1", "price": "2.00", "description": "A", "uom": "EA", "currency": "EUR"});
        let new = json!({"sku": "S1", "price": "2.50", "description": "A", "uom": "BOX", "currency": "EUR"});
        let owned = vec!["description".to_string(), "price".into(), "currency".into()];
        assert_eq!(
            update_body(&new, Some(&held), &owned, false),
            Some(json!({"price": "2.50"}))
        );
        assert_eq!(
            update_body(&held, Some(&held), &owned, false),
            None,
            "nothing owned changed"
        );
        assert_eq!(
            update_body(&new, Some(&held), &owned, true),
            Some(json!({"description": "A", "price": "2.50", "currency": "EUR"}))
        );
    }

    #[test]
    fn bodies_speak_the_erps_field_names() {
        let rename = [("name".to_string(), "name1".to_string())]
            .into_iter()
            .collect();
        let extra = [("source_system".to_string(), "tallyman".to_string())]
            .into_iter()
            .collect();
        let b = adapt(json!({"name": "Acme", "city": "Berlin"}), &rename, &extra);
        assert_eq!(
            b,
            json!({"name1": "Acme", "city": "Berlin", "source_system": "tallyman"})
        );
    }

    #[test]
    fn a_field_dropped_from_the_source_is_cleared() {
        let held = json!({"price": "2"});
        let owned = vec!["price".to_string()];
        assert_eq!(
            update_body(&json!({}), Some(&held), &owned, false),
            Some(json!({"price": null}))
        );
    }
}
