//! The `x12-transaction-set` kind: a set's id, versions and structure, and its `[map]`
//! into a canonical record (fields, repeating groups and their conditions). Loading checks
//! the map against the structure, so a field read from a segment the set cannot hold is
//! a definition error rather than an empty value on every set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::structure::parse_structure;
use super::{Node, SegmentDef};
use crate::canonical::Entity;
use crate::format::defs::{DefMap, DefSet};
use crate::format::{DefFile, Diagnostics};
use crate::x12::segments::{SegId, SegName};

/// A condition on an element of the segment a field or group reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cond {
    pub el: usize,
    pub is: Vec<String>,
}

/// Where a canonical field comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldExpr {
    pub seg: SegName,
    /// 1-based element; ignored with `qual`.
    #[serde(default)]
    pub el: usize,
    /// 1-based component of a composite element.
    #[serde(default)]
    pub comp: Option<usize>,
    /// Qualifier/value pairs (PO106/PO107, LIN02/LIN03...): the value after the first
    /// qualifier in this list, searching pairs from element `pairs_from`.
    #[serde(default)]
    pub qual: Option<Vec<String>>,
    #[serde(default)]
    pub pairs_from: Option<usize>,
    /// Only segments whose element matches.
    #[serde(default)]
    pub when: Option<Cond>,
    /// `date` (CCYYMMDD/YYMMDD to ISO), `decimal`, `text` (default).
    #[serde(default)]
    pub conv: Option<String>,
    /// Code translation; unknown codes pass through unless `strict_codes`.
    #[serde(default)]
    pub codes: Option<BTreeMap<String, String>>,
    /// `ancestors`: search the HL parents of the group's block too (856 hierarchy).
    #[serde(default)]
    pub scope: Option<String>,
    /// Collect every distinct value into an array.
    #[serde(default)]
    pub all: bool,
    /// `position`: when the element is empty, the 1-based ordinal of the group item (a
    /// PO1 without PO101 still needs a line number).
    #[serde(default)]
    pub fallback: Option<String>,
}

/// A repeating group (PO1 lines, N1 parties, HL items) mapped into an array.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDef {
    pub into: String,
    pub trigger: SegName,
    #[serde(default)]
    pub when: Option<Cond>,
    /// Segments that belong to the group after its trigger; `["*"]` = everything up to the
    /// next trigger or an `until` segment.
    #[serde(default)]
    pub members: Vec<SegName>,
    #[serde(default)]
    pub until: Vec<SegName>,
    /// Only triggers before the first segment with this id (header N1 vs line N1).
    #[serde(default)]
    pub before: Option<SegName>,
    pub fields: BTreeMap<String, FieldExpr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapDef {
    pub entity: String,
    pub key: FieldExpr,
    #[serde(default)]
    pub fields: BTreeMap<String, FieldExpr>,
    #[serde(default)]
    pub groups: Vec<GroupDef>,
    #[serde(skip)]
    pub entity_parsed: Option<Entity>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetFile {
    #[allow(dead_code)]
    kind: String,
    id: String,
    name: String,
    versions: Vec<String>,
    structure: toml::Spanned<String>,
    #[serde(default)]
    map: Option<MapDef>,
}

#[derive(Debug, Clone)]
pub struct SetDef {
    pub id: String,
    pub name: String,
    /// GS08 prefixes this definition applies to (`004010` covers `004010VICS`).
    pub versions: Vec<String>,
    pub structure: Vec<Node>,
    /// Every segment id the structure knows (for "unrecognized" vs "unexpected").
    pub known_ids: DefSet<String>,
    /// The element definitions of the known segments, by packed id (see [`SegId`]; every
    /// structure id packs): one lookup of a word for each segment of a set, where the
    /// set's ids and then the registry's definitions were two lookups of a string.
    pub checked: DefMap<SegId, Arc<SegmentDef>>,
    pub map: Option<MapDef>,
    pub file: PathBuf,
}

pub(super) fn load_set(def: &DefFile, diags: &mut Diagnostics) -> Option<SetDef> {
    let file = def.parse::<SetFile>(diags)?;
    let before = diags.errors.len();
    let structure = load_structure(def, &file.structure, diags)?;
    if file.id.len() != 3 || !file.id.bytes().all(|b| b.is_ascii_digit()) {
        diags.error(
            &def.path,
            def.line_of_key("id"),
            "id must be a 3-digit set id",
        );
    }
    if file.versions.is_empty() {
        diags.error(&def.path, def.line_of_key("versions"), "versions is empty");
    }
    let mut ids = Vec::new();
    structure.iter().for_each(|n| n.collect_ids(&mut ids));
    let known_ids: DefSet<String> = ids.into_iter().collect();
    let mut map = file.map;
    if let Some(m) = map.as_mut() {
        check_map(def, m, &known_ids, diags);
    }
    if diags.errors.len() > before {
        return None;
    }
    Some(SetDef {
        id: file.id,
        name: file.name,
        versions: file.versions,
        structure,
        known_ids,
        checked: DefMap::default(),
        map,
        file: def.path.clone(),
    })
}

/// Parses the `structure` text, reporting errors at their line in the file; `None` when
/// it does not parse (an ST…SE frame that is missing is reported but still returned).
fn load_structure(
    def: &DefFile,
    text: &toml::Spanned<String>,
    diags: &mut Diagnostics,
) -> Option<Vec<Node>> {
    // The structure text starts on the line after `structure = """`.
    // TOML drops the newline right after an opening `"""`, so the text's first line is the
    // next line of the file.
    let start = text.span().start;
    let after = def.text.get(start..).unwrap_or("");
    let skip = usize::from(after.starts_with("\"\"\"\n") || after.starts_with("\"\"\"\r\n"));
    let base_line = def.line_at(start) + skip;
    let structure = match parse_structure(text.get_ref()) {
        Ok(s) => s,
        Err((rel, msg)) => {
            diags.error(&def.path, Some(base_line + rel), msg);
            return None;
        }
    };
    if structure.first().map(Node::first_id) != Some("ST")
        || structure.last().map(Node::first_id) != Some("SE")
    {
        diags.error(
            &def.path,
            Some(base_line),
            "structure must start with ST and end with SE",
        );
    }
    Some(structure)
}

/// Checks the `[map]` against the structure, and records its parsed entity when known.
fn check_map(def: &DefFile, m: &mut MapDef, known_ids: &DefSet<String>, diags: &mut Diagnostics) {
    match Entity::parse(&m.entity) {
        Some(e) => m.entity_parsed = Some(e),
        None => diags.error(
            &def.path,
            def.line_of_key("entity"),
            format!("unknown entity '{}'", m.entity),
        ),
    }
    let mut exprs: Vec<(&str, &FieldExpr)> = vec![("key", &m.key)];
    exprs.extend(m.fields.iter().map(|(k, v)| (k.as_str(), v)));
    for g in &m.groups {
        exprs.extend(g.fields.iter().map(|(k, v)| (k.as_str(), v)));
        if !known_ids.contains(g.trigger.as_str()) {
            diags.error(
                &def.path,
                def.line_of_key("trigger"),
                format!("group trigger {} is not in the structure", g.trigger),
            );
        }
    }
    for (name, e) in exprs {
        check_field_expr(def, name, e, known_ids, diags);
    }
}

/// Checks one field expression of the map: its conv, its fallback, that it says where to
/// read, and that its segment is one the structure holds.
fn check_field_expr(
    def: &DefFile,
    name: &str,
    e: &FieldExpr,
    known_ids: &DefSet<String>,
    diags: &mut Diagnostics,
) {
    if let Some(c) = &e.conv {
        if !matches!(c.as_str(), "date" | "decimal" | "text") {
            diags.error(
                &def.path,
                def.line_of_key(name),
                format!("{name}: unknown conv '{c}' (date, decimal, text)"),
            );
        }
    }
    if e.fallback.as_deref().is_some_and(|f| f != "position") {
        diags.error(
            &def.path,
            def.line_of_key(name),
            format!("{name}: unknown fallback (only \"position\")"),
        );
    }
    if e.el == 0 && e.qual.is_none() {
        diags.error(
            &def.path,
            def.line_of_key(name),
            format!("{name}: needs `el` (1-based) or `qual`"),
        );
    }
    if !known_ids.contains(e.seg.as_str()) {
        diags.error(
            &def.path,
            def.line_of_key(name),
            format!("{name}: segment {} is not in the structure", e.seg),
        );
    }
}
