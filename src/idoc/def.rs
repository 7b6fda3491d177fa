//! The IDoc type definition language: one TOML file per IDoc basic type (or family of
//! structurally compatible basic types) under `formats/idoc/`.
//!
//! A definition says which segments exist, where they sit in the hierarchy, how often they
//! may occur, which fields are required and how long fields may be, and how each message
//! type (MESTYP) maps to one canonical record. Keeping this declarative means a new basic
//! type or a partner's extra qualifier is a definition change, not code. Every problem is
//! reported with file and line through [`Diagnostics`](crate::format::Diagnostics), all
//! of them in one pass.
//!
//! The checked types the reader, `eval` and `map` use are here; the TOML shapes (`spec`),
//! the path grammar (`path`), loading with the hierarchy checks (`load`) and compiling a
//! message's mapping (`mapping`) are modules of their own.

mod load;
mod mapping;
mod path;
mod spec;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::canonical::Entity;
use crate::format::defs::DefMap;

pub use load::load_catalog;
pub use path::{SegPath, Step};

/// The pseudo parent name of segments directly under `<IDOC>`.
pub const ROOT: &str = "IDOC";
/// The control record; its rules are built in (see `eval`), so definitions don't repeat it.
pub const CONTROL: &str = "EDI_DC40";

/// How a field's text becomes a JSON value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conv {
    /// Trimmed text.
    #[default]
    String,
    /// SAP `YYYYMMDD` to ISO `YYYY-MM-DD`; `00000000` means no date.
    Date,
    /// SAP decimal: trimmed, trailing sign moved to the front (`12.50-` → `-12.50`).
    Decimal,
    /// `X`/`1`/`true` → true, anything else non-blank → false.
    Bool,
}

/// A compiled value: where to read, how to convert.
#[derive(Debug, Clone)]
pub struct ValueDef {
    pub paths: Vec<SegPath>,
    pub constant: Option<String>,
    pub conv: Conv,
    pub codes: Option<BTreeMap<String, String>>,
    pub default: Option<String>,
    pub trim_zeros: bool,
}

#[derive(Debug, Clone)]
pub struct ListDef {
    pub target: String,
    pub from: SegPath,
    pub fields: Vec<(String, ValueDef)>,
    pub value: Option<ValueDef>,
}

/// `{path}` placeholders and literal text of a business key.
#[derive(Debug, Clone)]
pub enum KeyPart {
    Lit(String),
    Path(String, SegPath),
}

#[derive(Debug, Clone)]
pub struct MessageDef {
    pub mestyp: Vec<String>,
    pub entity: Entity,
    pub key: Vec<KeyPart>,
    pub fields: Vec<(String, ValueDef)>,
    pub lists: Vec<ListDef>,
}

#[derive(Debug, Clone)]
pub struct SegDef {
    pub name: String,
    /// `None` = directly under `<IDOC>`.
    pub parent: Option<String>,
    pub min: u32,
    pub max: u32,
    pub required: Vec<String>,
    pub fields: DefMap<String, u32>,
    pub sensitive: Vec<String>,
}

/// One compiled definition file.
#[derive(Debug, Clone)]
pub struct TypeDef {
    /// The definition file, for messages.
    pub source: String,
    pub types: Vec<String>,
    pub customer_segments: bool,
    /// Two-digit STATUS codes for applied and rejected IDocs of this type.
    pub status_applied: String,
    pub status_rejected: String,
    pub segments: DefMap<String, SegDef>,
    /// The root's children with `min > 0`, in definition order.
    pub mandatory_at_root: Vec<(String, u32)>,
    /// Parent → its children with `min > 0`, in definition order: looked up by the parent's
    /// name for every segment, so keyed by the name alone (no lookup key to make).
    pub mandatory_children: DefMap<String, Vec<(String, u32)>>,
    pub messages: Vec<MessageDef>,
}

impl TypeDef {
    pub fn message(&self, mestyp: &str) -> Option<&MessageDef> {
        self.messages
            .iter()
            .find(|m| m.mestyp.iter().any(|t| t == mestyp))
    }

    pub fn mestyps(&self) -> Vec<&str> {
        self.messages
            .iter()
            .flat_map(|m| m.mestyp.iter().map(String::as_str))
            .collect()
    }
}

/// Every loaded IDoc type, by IDOCTYP.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub by_type: DefMap<String, Arc<TypeDef>>,
}

impl Catalog {
    pub fn get(&self, idoctyp: &str) -> Option<&Arc<TypeDef>> {
        self.by_type.get(idoctyp)
    }

    pub fn type_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_type.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

/// Is `name` in SAP's customer namespace (extension segments a partner may add)?
pub fn is_customer_segment(name: &str) -> bool {
    name.starts_with('Z') || name.starts_with('Y') || name.starts_with('/')
}
