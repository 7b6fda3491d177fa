//! A record body as a mapping builds it, borrowed from the checked cells and the
//! definition wherever it can be, and typed by the contract straight from there.
//!
//! Building a `serde_json::Value` first meant copying every cell's text into it, a key
//! string per field, a sorted map per line, and then walking all of it again to move it
//! into the typed struct: on a CSV run that was a tenth of all the work. A [`Body`] is a
//! list of borrowed names and values; it is a serde `Deserializer`, so the contract's
//! structs ([`crate::canonical`]) are built from it directly with the same checks
//! (unknown fields, missing required ones, bad decimals) and the same messages as before.

use std::borrow::Cow;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{Deserializer, IntoDeserializer, Visitor};
use serde_json::Value;

/// One node of a record body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    /// A constant of the definition, or a body built as JSON by a format.
    Json(&'a Value),
    /// Fields in the order the mapping gives them.
    Map(Vec<(&'a str, Body<'a>)>),
    List(Vec<Body<'a>>),
}

impl<'a> Body<'a> {
    /// The node's text, when it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Body::Str(s) => Some(s),
            Body::Json(v) => v.as_str(),
            _ => None,
        }
    }

    /// The first text field named as `named` accepts whose text `bad` refuses: its path
    /// (`lines[2].requested_date`) and text. Paths are only made for that one.
    pub fn find_bad_text(
        &self,
        named: &dyn Fn(&str) -> bool,
        bad: &dyn Fn(&str) -> bool,
    ) -> Option<(String, String)> {
        let mut found = None;
        walk(self, &String::new, &mut |path, name, value| {
            let text = value.as_str().filter(|t| named(name) && bad(t));
            if let Some(t) = text {
                found = Some((path(), t.to_string()));
            }
            found.is_none()
        });
        found
    }
}

/// What a walk calls with every field: how to make its path, its name and its value;
/// `false` stops the walk.
type Visit<'v> = dyn FnMut(&dyn Fn() -> String, &str, &Body<'_>) -> bool + 'v;

/// Calls `visit` with every field (its lazily made path, name and value) in order, until it
/// answers `false`; `false` then.
fn walk(node: &Body<'_>, path: &dyn Fn() -> String, visit: &mut Visit<'_>) -> bool {
    match node {
        Body::Map(entries) => entries.iter().all(|(k, v)| field(path, k, v, visit)),
        Body::List(items) => items
            .iter()
            .enumerate()
            .all(|(i, item)| walk(item, &|| format!("{}[{i}]", path()), visit)),
        Body::Json(Value::Object(map)) => map
            .iter()
            .all(|(k, v)| field(path, k, &Body::Json(v), visit)),
        Body::Json(Value::Array(items)) => items
            .iter()
            .enumerate()
            .all(|(i, item)| walk(&Body::Json(item), &|| format!("{}[{i}]", path()), visit)),
        _ => true,
    }
}

fn field(path: &dyn Fn() -> String, name: &str, value: &Body<'_>, visit: &mut Visit<'_>) -> bool {
    let here = || {
        let p = path();
        if p.is_empty() {
            name.to_string()
        } else {
            format!("{p}.{name}")
        }
    };
    visit(&here, name, value) && walk(value, &here, visit)
}

/// Deserializer methods that hand a JSON node to serde_json's own method of that name.
macro_rules! as_json_or_any {
    ($($method:ident($($arg:ident: $ty:ty),*))*) => {$(
        fn $method<V: Visitor<'de>>(
            self,
            $($arg: $ty,)*
            visitor: V,
        ) -> Result<V::Value, Self::Error> {
            match self {
                Body::Json(v) => v.$method($($arg,)* visitor),
                other => other.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for Body<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Body<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Body::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Body::Str(Cow::Owned(s)) => visitor.visit_string(s),
            Body::Bool(b) => visitor.visit_bool(b),
            Body::Json(v) => v.deserialize_any(visitor),
            Body::Map(entries) => {
                let mut map = MapDeserializer::new(entries.into_iter());
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
            Body::List(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Body::Json(v) => v.deserialize_option(visitor),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self {
            Body::Str(s) => visitor.visit_enum(s.into_owned().into_deserializer()),
            Body::Json(v) => v.deserialize_enum(name, variants, visitor),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    // A JSON node answers each request as serde_json answers it (a number asked for as a
    // string is refused there); built nodes answer with what they are.
    as_json_or_any! {
        deserialize_bool() deserialize_i8() deserialize_i16() deserialize_i32()
        deserialize_i64() deserialize_i128() deserialize_u8() deserialize_u16()
        deserialize_u32() deserialize_u64() deserialize_u128() deserialize_f32()
        deserialize_f64() deserialize_char() deserialize_str() deserialize_string()
        deserialize_bytes() deserialize_byte_buf() deserialize_unit() deserialize_seq()
        deserialize_map() deserialize_identifier() deserialize_ignored_any()
        deserialize_unit_struct(name: &'static str)
        deserialize_tuple(len: usize)
        deserialize_tuple_struct(name: &'static str, len: usize)
        deserialize_struct(name: &'static str, fields: &'static [&'static str])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::canonical::{Entity, Record};
    use serde_json::json;

    /// The body a mapping would build for `v`: maps and lists as nodes, text borrowed.
    pub(crate) fn nodes(v: &Value) -> Body<'_> {
        match v {
            Value::Object(m) => Body::Map(m.iter().map(|(k, v)| (k.as_str(), nodes(v))).collect()),
            Value::Array(a) => Body::List(a.iter().map(nodes).collect()),
            Value::String(s) => Body::Str(Cow::Borrowed(s)),
            Value::Bool(b) => Body::Bool(*b),
            other => Body::Json(other),
        }
    }

    #[test]
    fn a_body_is_typed_as_its_json_would_be_errors_included() {
        let line = json!({"line_no": "1", "quantity": "2.50", "unit_price": "19.99"});
        let cases = [
            json!({"order_no": "A1", "lines": [line]}),
            json!({"order_no": "A1", "currency": "EUR", "order_date": "2026-11-02", "lines": [line, line]}),
            json!({"order_no": "A1", "lines": [{"line_no": "1", "quantity": 3}]}),
            json!({"order_no": "A1", "lines": [{"line_no": "1", "quantity": "x"}]}),
            json!({"order_no": "A1", "lines": [{"line_no": "1"}]}),
            json!({"order_no": "A1", "lines": [line], "colour": "red"}),
            json!({"order_no": "A1", "lines": [line], "currency": null}),
            json!({"order_no": "A1", "lines": [line], "currency": true}),
            json!({"order_no": "A1", "order_date": "2026-02-30", "lines": [line]}),
            json!({"order_no": "A1", "lines": [line, {"line_no": "2", "quantity": "1", "requested_date": "soon"}]}),
            json!({"order_no": "A1", "parties": [{"role": "buyer", "name": "Ann"}], "lines": []}),
            json!({"lines": [line]}),
        ];
        for (i, body) in cases.iter().enumerate() {
            let want = Record::build(Entity::Order, "A1", body.clone());
            let got = Record::build_body(Entity::Order, "A1", nodes(body));
            assert_eq!(got, want, "case {i}: {body}");
        }
        let customer = json!({"customer_id": "C1", "name": "Ann", "active": true});
        assert_eq!(
            Record::build_body(Entity::Customer, "C1", nodes(&customer)),
            Record::build(Entity::Customer, "C1", customer.clone())
        );
        assert_eq!(
            Record::build_body(Entity::Order, " ", nodes(&cases[0]))
                .unwrap_err()
                .rule,
            "business-key"
        );
    }

    #[test]
    fn the_first_bad_date_is_named_by_its_path() {
        let body = json!({"order_no": "A1", "lines": [
            {"line_no": "1", "quantity": "1", "requested_date": "2026-01-01"},
            {"line_no": "2", "quantity": "1", "requested_date": "2026-13-01"}]});
        let bad = nodes(&body).find_bad_text(&|n| n.ends_with("_date"), &|t| t.contains("-13-"));
        assert_eq!(
            bad,
            Some((
                "lines[1].requested_date".to_string(),
                "2026-13-01".to_string()
            ))
        );
        assert_eq!(
            Body::Json(&body).find_bad_text(&|n| n.ends_with("_date"), &|t| t.contains("-13-")),
            bad
        );
    }
}
