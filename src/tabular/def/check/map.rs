//! Checking the `[map]` sections: each canonical field's value (a template, a field
//! through a translation table, or a constant) against the definition's fields and the
//! canonical contract, and that sensitive contract fields are read only from masked
//! fields. The values are a small grammar of their own, checked against the contract
//! rather than the file's layout, so they are kept apart from the field checks.

use std::collections::{BTreeMap, HashMap};

use toml::Spanned;

use super::{parse_template, Checker};
use crate::canonical::Entity;
use crate::tabular::contract;
use crate::tabular::def::{Field, FieldType, MapValue, Piece};

fn json_of(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(json_of).collect()),
        toml::Value::Table(t) => {
            serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
    }
}

/// One `[map.<section>]` value: a template string, a table, or any other TOML value as a constant.
fn check_map_value(
    c: &mut Checker,
    section: &str,
    target: &str,
    v: &Spanned<toml::Value>,
    fields: &[Field],
) -> Option<MapValue> {
    let span = v.span();
    match v.get_ref() {
        toml::Value::String(s) => check_string_value(c, section, target, span, s, fields),
        toml::Value::Table(t) => check_table_value(c, section, target, span, t, fields),
        other => Some(MapValue::Const(json_of(other))),
    }
}

/// A string value is a template; one that is a single field or plain text is kept as the
/// simpler value it amounts to.
fn check_string_value(
    c: &mut Checker,
    section: &str,
    target: &str,
    span: std::ops::Range<usize>,
    s: &str,
    fields: &[Field],
) -> Option<MapValue> {
    let find = |n: &str| fields.iter().position(|f| f.name == n);
    match parse_template(s, &find) {
        Ok(t) => match t.0.as_slice() {
            [Piece::Field(i)] => Some(MapValue::Field(*i)),
            [] => Some(MapValue::Const(serde_json::Value::String(String::new()))),
            [Piece::Text(s)] => Some(MapValue::Const(serde_json::Value::String(s.clone()))),
            _ => Some(MapValue::Template(t)),
        },
        Err(e) => {
            c.err(Some(span), format!("[map.{section}] {target}: {e}"));
            None
        }
    }
}

/// A table value is either `const = ...` alone, or `field = "..."` with an optional
/// `translate` table and `default`; the first problem ends its check.
fn check_table_value(
    c: &mut Checker,
    section: &str,
    target: &str,
    span: std::ops::Range<usize>,
    t: &toml::Table,
    fields: &[Field],
) -> Option<MapValue> {
    let allowed = ["field", "translate", "default", "const"];
    for k in t.keys() {
        if !allowed.contains(&k.as_str()) {
            c.err(
                Some(span.clone()),
                format!("[map.{section}] {target}: unknown key '{k}' (expected field, translate, default or const)"),
            );
            return None;
        }
    }
    if let Some(k) = t.get("const") {
        if t.len() > 1 {
            c.err(
                Some(span),
                format!("[map.{section}] {target}: `const` cannot be combined with other keys"),
            );
            return None;
        }
        return Some(MapValue::Const(json_of(k)));
    }
    let Some(fname) = t.get("field").and_then(|f| f.as_str()) else {
        c.err(
            Some(span),
            format!(
                "[map.{section}] {target}: a table value needs `field = \"...\"` or `const = ...`"
            ),
        );
        return None;
    };
    let Some(field) = fields.iter().position(|f| f.name == fname) else {
        c.err(
            Some(span),
            format!("[map.{section}] {target}: unknown field '{fname}'"),
        );
        return None;
    };
    let default = match t.get("default") {
        None => None,
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(_) => {
            c.err(
                Some(span),
                format!("[map.{section}] {target}: `default` must be a string"),
            );
            return None;
        }
    };
    check_translate(c, section, target, span, t.get("translate"), field, default)
}

/// A field read through `translate` (a table of strings) and/or `default`; with neither it
/// is just the field.
fn check_translate(
    c: &mut Checker,
    section: &str,
    target: &str,
    span: std::ops::Range<usize>,
    translate: Option<&toml::Value>,
    field: usize,
    default: Option<String>,
) -> Option<MapValue> {
    match translate {
        None if default.is_none() => Some(MapValue::Field(field)),
        None => Some(MapValue::Translate {
            field,
            table: HashMap::new(),
            default,
        }),
        Some(toml::Value::Table(tt)) => {
            let mut table = HashMap::new();
            for (k, v) in tt {
                match v.as_str() {
                    Some(s) => {
                        table.insert(k.clone(), s.to_string());
                    }
                    None => {
                        c.err(
                            Some(span),
                            format!("[map.{section}] {target}: translate value for '{k}' must be a string"),
                        );
                        return None;
                    }
                }
            }
            Some(MapValue::Translate {
                field,
                table,
                default,
            })
        }
        Some(_) => {
            c.err(
                Some(span),
                format!("[map.{section}] {target}: `translate` must be a table"),
            );
            None
        }
    }
}

/// One `[map.*]` section's entries checked against the contract fields `allowed` there (any
/// name when `None`) and the definition's `fields`: the values that check.
pub(super) fn check_map_section(
    c: &mut Checker,
    section: &str,
    entries: &BTreeMap<String, Spanned<toml::Value>>,
    allowed: Option<&[&str]>,
    fields: &[Field],
) -> Vec<(String, MapValue)> {
    let mut out = Vec::new();
    for (target, v) in entries {
        if let Some(allowed) = allowed {
            if !allowed.contains(&target.as_str()) {
                c.err(
                    Some(v.span()),
                    format!(
                        "[map.{section}] '{target}' is not a field of the canonical contract (known: {})",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            if target == "lines" {
                c.err(
                    Some(v.span()),
                    format!(
                        "[map.{section}] 'lines' is built from [map.lines], not mapped directly"
                    ),
                );
                continue;
            }
        }
        let mv = check_map_value(c, section, target, v, fields);
        // A date-time mapped onto a canonical date keeps its day: the contract's dates
        // are YYYY-MM-DD and would refuse the whole instant.
        let mv = match mv {
            Some(MapValue::Field(i))
                if contract::is_date_field(target)
                    && matches!(fields[i].ty, FieldType::DateTime(_)) =>
            {
                Some(MapValue::DateOf(i))
            }
            other => other,
        };
        if let Some(mv) = mv {
            out.push((target.clone(), mv));
        }
    }
    out
}

/// The fields a map value reads.
fn fields_read(mv: &MapValue) -> Vec<usize> {
    match mv {
        MapValue::Const(_) => Vec::new(),
        MapValue::Field(i) | MapValue::DateOf(i) => vec![*i],
        MapValue::Translate { field, .. } => vec![*field],
        MapValue::Template(t) => {
            t.0.iter()
                .filter_map(|p| match p {
                    Piece::Field(i) => Some(*i),
                    Piece::Text(_) => None,
                })
                .collect()
        }
    }
}

/// A canonical field the contract calls sensitive (bank details) must come from fields
/// the definition masks, or its value would sit in clear in the ledger's raw lines and
/// the reject reports.
pub(super) fn check_sensitive_targets(
    c: &mut Checker,
    entity: Entity,
    entries: &BTreeMap<String, Spanned<toml::Value>>,
    mapped: &[(String, MapValue)],
    fields: &[Field],
) {
    for (target, mv) in mapped {
        if !entity.sensitive_fields().contains(&target.as_str()) {
            continue;
        }
        for i in fields_read(mv) {
            if !fields[i].sensitive {
                c.err(
                    entries.get(target).map(|v| v.span()),
                    format!(
                        "[map.header] {target}: the {entity} contract treats '{target}' as sensitive; \
                         declare field '{}' with sensitive = true so it is masked in the ledger and reports",
                        fields[i].name
                    ),
                );
            }
        }
    }
}
