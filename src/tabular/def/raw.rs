//! A tabular definition as its TOML is written, before any checking: the serde shapes
//! the checker reads. They are kept apart from the checked types in `def.rs` because
//! they mirror the file, not what the engine needs.
//!
//! Parsing is strict (`deny_unknown_fields`) so a typo is an error, not a silently ignored
//! setting.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::tabular::SheetSelector;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDef {
    pub(super) kind: String,
    pub(super) name: Spanned<String>,
    /// For people reading the definition; accepted, never used.
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) description: Option<String>,
    #[serde(rename = "match", default)]
    pub(super) matching: RawMatch,
    #[serde(default)]
    pub(super) csv: Option<Spanned<RawCsv>>,
    #[serde(default)]
    pub(super) sheet: Option<Spanned<RawSheet>>,
    #[serde(default)]
    pub(super) fields: Vec<Spanned<RawField>>,
    pub(super) key: Spanned<String>,
    #[serde(default)]
    pub(super) group_by: Option<Spanned<String>>,
    pub(super) map: Spanned<RawMap>,
    #[serde(default)]
    pub(super) policy: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) max_reject_ratio: Option<f64>,
    #[serde(default)]
    pub(super) identity: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatch {
    #[serde(default)]
    pub(super) filename: Option<OneOrMany>,
    #[serde(default)]
    pub(super) header: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCsv {
    #[serde(default)]
    pub(super) delimiter: Option<String>,
    #[serde(default)]
    pub(super) quote: Option<String>,
    #[serde(default)]
    pub(super) header: Option<bool>,
    #[serde(default)]
    pub(super) skip_rows: Option<u64>,
    #[serde(default)]
    pub(super) encoding: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSheet {
    #[serde(default)]
    pub(super) sheet: Option<SheetSelector>,
    #[serde(default)]
    pub(super) header: Option<bool>,
    #[serde(default)]
    pub(super) skip_rows: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawColumn {
    Index(usize),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawField {
    pub(super) name: String,
    #[serde(default)]
    pub(super) column: Option<RawColumn>,
    #[serde(rename = "type", default)]
    pub(super) ty: Option<String>,
    #[serde(default)]
    pub(super) format: Option<String>,
    #[serde(default)]
    pub(super) timezone: Option<String>,
    #[serde(default)]
    pub(super) required: bool,
    #[serde(default)]
    pub(super) sensitive: bool,
    #[serde(default)]
    pub(super) trim: Option<bool>,
    #[serde(default)]
    pub(super) min: Option<toml::Value>,
    #[serde(default)]
    pub(super) max: Option<toml::Value>,
    #[serde(default)]
    pub(super) exclusive_min: Option<toml::Value>,
    #[serde(default)]
    pub(super) exclusive_max: Option<toml::Value>,
    #[serde(default)]
    pub(super) min_length: Option<usize>,
    #[serde(default)]
    pub(super) max_length: Option<usize>,
    #[serde(default)]
    pub(super) regex: Option<String>,
    #[serde(default)]
    pub(super) checksum: Option<String>,
    #[serde(default)]
    pub(super) values: Option<Vec<String>>,
    #[serde(default)]
    pub(super) translate: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(super) ignore_case: bool,
    #[serde(default)]
    pub(super) true_values: Option<Vec<String>>,
    #[serde(default)]
    pub(super) false_values: Option<Vec<String>>,
    #[serde(default)]
    pub(super) decimal_separator: Option<String>,
    #[serde(default)]
    pub(super) thousands_separator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMap {
    pub(super) entity: Spanned<String>,
    #[serde(default)]
    pub(super) header: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) lines: Option<BTreeMap<String, Spanned<toml::Value>>>,
}
