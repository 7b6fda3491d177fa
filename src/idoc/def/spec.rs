//! The TOML shapes of an `idoc-type` file as serde reads them, before any checking.
//!
//! They are kept apart from the checked types ([`super::TypeDef`] and its parts) because
//! they say what an author may write, defaults and spelling included, while the checked
//! types say what the reader and the mapping may rely on. Values are deserialized by hand
//! so that a wrong key or type is named in the error.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Conv;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TypeFile {
    #[allow(dead_code)]
    kind: String,
    /// IDOCTYP values this definition validates (e.g. `["INVOIC02", "INVOIC01"]`).
    pub(super) types: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    /// Accept customer-namespace segments (`Z*`, `Y*`, `/NS/...`) anywhere without checks.
    #[serde(default = "yes")]
    pub(super) customer_segments: bool,
    /// STATUS codes reported back: SAP's inbound codes by default (53 posted, 51 not
    /// posted); a sender tracking its *outbound* IDocs may want 41 / 40 instead.
    #[serde(default = "status_applied")]
    pub(super) status_applied: String,
    #[serde(default = "status_rejected")]
    pub(super) status_rejected: String,
    #[serde(default, rename = "segment")]
    pub(super) segments: Vec<SegmentSpec>,
    #[serde(default, rename = "message")]
    pub(super) messages: Vec<MessageSpec>,
}

fn yes() -> bool {
    true
}
fn status_applied() -> String {
    "53".into()
}
fn status_rejected() -> String {
    "51".into()
}
fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SegmentSpec {
    pub(super) name: String,
    /// Parent segment; absent means directly under `<IDOC>`.
    #[serde(default)]
    pub(super) parent: Option<String>,
    #[serde(default)]
    pub(super) min: u32,
    #[serde(default = "one")]
    pub(super) max: u32,
    #[serde(default)]
    pub(super) required: Vec<String>,
    /// Field name → maximum length in characters (trailing blanks ignored: flat-file
    /// padding carried into XML is not an overflow).
    #[serde(default)]
    pub(super) fields: BTreeMap<String, u32>,
    /// Fields masked in the ledger's raw text and in reject reasons (bank accounts...).
    #[serde(default)]
    pub(super) sensitive: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageSpec {
    pub(super) mestyp: Vec<String>,
    pub(super) entity: String,
    pub(super) key: String,
    #[serde(default)]
    pub(super) fields: BTreeMap<String, ValueSpec>,
    #[serde(default)]
    pub(super) lists: BTreeMap<String, ListSpec>,
}

#[derive(Debug)]
pub(super) enum ValueSpec {
    Path(String),
    /// Alternatives: the first path that yields a value wins.
    Paths(Vec<String>),
    Full(FullValue),
}

#[derive(Debug)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

// Hand-written instead of `#[serde(untagged)]`, whose only error is "data did not match any
// variant": a definition author needs to hear which key or type is wrong.
fn string_or_list<E: serde::de::Error>(v: toml::Value, what: &str) -> Result<OneOrMany, E> {
    match v {
        toml::Value::String(s) => Ok(OneOrMany::One(s)),
        toml::Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                toml::Value::String(s) => Ok(s),
                other => Err(E::custom(format!(
                    "{what}: a list of paths must hold strings, found {}",
                    other.type_str()
                ))),
            })
            .collect::<Result<Vec<_>, E>>()
            .map(OneOrMany::Many),
        other => Err(E::custom(format!(
            "{what}: expected a path string or a list of paths, found {}",
            other.type_str()
        ))),
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_list(toml::Value::deserialize(d)?, "path")
    }
}

impl<'de> Deserialize<'de> for ValueSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::Table(t) => toml::Value::Table(t)
                .try_into::<FullValue>()
                .map(ValueSpec::Full)
                .map_err(|e| D::Error::custom(e.message())),
            other => Ok(match string_or_list(other, "value")? {
                OneOrMany::One(p) => ValueSpec::Path(p),
                OneOrMany::Many(ps) => ValueSpec::Paths(ps),
            }),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FullValue {
    #[serde(default)]
    pub(super) path: Option<OneOrMany>,
    #[serde(default, rename = "const")]
    pub(super) constant: Option<String>,
    #[serde(default, rename = "as")]
    pub(super) conv: Conv,
    #[serde(default)]
    pub(super) codes: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(super) default: Option<String>,
    #[serde(default)]
    pub(super) trim_zeros: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListSpec {
    pub(super) from: String,
    #[serde(default)]
    pub(super) fields: BTreeMap<String, ValueSpec>,
    #[serde(default)]
    pub(super) value: Option<ValueSpec>,
}
