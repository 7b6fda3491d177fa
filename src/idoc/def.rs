//! The IDoc type definition language: one TOML file per IDoc basic type (or family of
//! structurally compatible basic types) under `formats/idoc/`.
//!
//! A definition says which segments exist, where they sit in the hierarchy, how often they
//! may occur, which fields are required and how long fields may be, and how each message
//! type (MESTYP) maps to one canonical record. Keeping this declarative means a new basic
//! type or a partner's extra qualifier is a definition change, not code. Every problem is
//! reported with file and line through [`Diagnostics`], all of them in one pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::canonical::{Entity, Record};
use crate::format::defs::DefMap;
use crate::format::{DefFile, Diagnostics};

/// The pseudo parent name of segments directly under `<IDOC>`.
pub const ROOT: &str = "IDOC";
/// The control record; its rules are built in (see `eval`), so definitions don't repeat it.
pub const CONTROL: &str = "EDI_DC40";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeFile {
    #[allow(dead_code)]
    kind: String,
    /// IDOCTYP values this definition validates (e.g. `["INVOIC02", "INVOIC01"]`).
    types: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    /// Accept customer-namespace segments (`Z*`, `Y*`, `/NS/...`) anywhere without checks.
    #[serde(default = "yes")]
    customer_segments: bool,
    /// STATUS codes reported back: SAP's inbound codes by default (53 posted, 51 not
    /// posted); a sender tracking its *outbound* IDocs may want 41 / 40 instead.
    #[serde(default = "status_applied")]
    status_applied: String,
    #[serde(default = "status_rejected")]
    status_rejected: String,
    #[serde(default, rename = "segment")]
    segments: Vec<SegmentSpec>,
    #[serde(default, rename = "message")]
    messages: Vec<MessageSpec>,
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
struct SegmentSpec {
    name: String,
    /// Parent segment; absent means directly under `<IDOC>`.
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    min: u32,
    #[serde(default = "one")]
    max: u32,
    #[serde(default)]
    required: Vec<String>,
    /// Field name → maximum length in characters (trailing blanks ignored: flat-file
    /// padding carried into XML is not an overflow).
    #[serde(default)]
    fields: BTreeMap<String, u32>,
    /// Fields masked in the ledger's raw text and in reject reasons (bank accounts...).
    #[serde(default)]
    sensitive: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageSpec {
    mestyp: Vec<String>,
    entity: String,
    key: String,
    #[serde(default)]
    fields: BTreeMap<String, ValueSpec>,
    #[serde(default)]
    lists: BTreeMap<String, ListSpec>,
}

#[derive(Debug)]
enum ValueSpec {
    Path(String),
    /// Alternatives: the first path that yields a value wins.
    Paths(Vec<String>),
    Full(FullValue),
}

#[derive(Debug)]
enum OneOrMany {
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
struct FullValue {
    #[serde(default)]
    path: Option<OneOrMany>,
    #[serde(default, rename = "const")]
    constant: Option<String>,
    #[serde(default, rename = "as")]
    conv: Conv,
    #[serde(default)]
    codes: Option<BTreeMap<String, String>>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    trim_zeros: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListSpec {
    from: String,
    #[serde(default)]
    fields: BTreeMap<String, ValueSpec>,
    #[serde(default)]
    value: Option<ValueSpec>,
}

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

/// One step of a path: a segment name, optional field filters (`E1EDK03[IDDAT=012]`)
/// and an optional position (`E1LFBKM[1]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub seg: String,
    /// (field, accepted values) — all filters must hold.
    pub filters: Vec<(String, Vec<String>)>,
    /// Only the n-th (1-based) segment under each parent that passes the filters. Fields
    /// that belong together (one bank account's IBAN and BIC) are read from one segment
    /// this way; without it each field takes the first segment where it is non-blank.
    pub index: Option<usize>,
}

/// `[/]SEG[F=V|W]/SEG.FIELD`: segment steps from the context segment (or from the IDoc
/// root with a leading `/`), then optionally one field.
#[derive(Debug, Clone, PartialEq)]
pub struct SegPath {
    pub absolute: bool,
    pub steps: Vec<Step>,
    pub field: Option<String>,
}

impl SegPath {
    pub fn parse(text: &str) -> Result<SegPath, String> {
        let t = text.trim();
        let (absolute, rest) = match t.strip_prefix('/') {
            Some(r) => (true, r),
            None => (false, t),
        };
        if rest.is_empty() {
            return Err(format!("empty path '{text}'"));
        }
        let mut steps = Vec::new();
        let mut field = None;
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let mut part = *part;
            if i + 1 == parts.len() {
                // The field is after the last `.` that is outside brackets.
                let mut depth = 0i32;
                let mut dot = None;
                for (j, c) in part.char_indices() {
                    match c {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        '.' if depth == 0 => dot = Some(j),
                        _ => {}
                    }
                }
                if let Some(j) = dot {
                    let f = &part[j + 1..];
                    if !is_name(f) {
                        return Err(format!("bad field name '{f}' in path '{text}'"));
                    }
                    field = Some(f.to_string());
                    part = &part[..j];
                }
            }
            if part.is_empty() {
                // A bare field (`POSEX`) relative to the context segment.
                if i + 1 == parts.len() && field.is_some() && parts.len() == 1 {
                    break;
                }
                return Err(format!("empty segment step in path '{text}'"));
            }
            let (name, filters_txt) = match part.find('[') {
                Some(j) => (&part[..j], &part[j..]),
                None => (part, ""),
            };
            let mut filters = Vec::new();
            let mut index = None;
            let mut ft = filters_txt;
            while !ft.is_empty() {
                let Some(end) = ft.find(']') else {
                    return Err(format!("unclosed '[' in path '{text}'"));
                };
                if !ft.starts_with('[') {
                    return Err(format!("expected '[' in path '{text}'"));
                }
                let inner = &ft[1..end];
                if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
                    index = match (index, inner.parse::<usize>()) {
                        (None, Ok(n)) if n >= 1 => Some(n),
                        (Some(_), _) => {
                            return Err(format!("two positions in one step of '{text}'"))
                        }
                        _ => {
                            return Err(format!("position [{inner}] must be 1 or more in '{text}'"))
                        }
                    };
                    ft = &ft[end + 1..];
                    continue;
                }
                let Some((f, v)) = inner.split_once('=') else {
                    return Err(format!(
                        "filter '[{inner}]' needs FIELD=VALUE or a position [1] in '{text}'"
                    ));
                };
                if !is_name(f.trim()) {
                    return Err(format!("bad field name '{f}' in filter of '{text}'"));
                }
                filters.push((
                    f.trim().to_string(),
                    v.split('|').map(|s| s.trim().to_string()).collect(),
                ));
                ft = &ft[end + 1..];
            }
            if !is_name(name) {
                return Err(format!("bad segment name '{name}' in path '{text}'"));
            }
            steps.push(Step {
                seg: name.to_string(),
                filters,
                index,
            });
        }
        Ok(SegPath {
            absolute,
            steps,
            field,
        })
    }

    /// Paths written as a bare `FIELD` mean a field of the context segment.
    fn into_field_path(mut self) -> SegPath {
        if self.field.is_none()
            && !self.absolute
            && self.steps.len() == 1
            && self.steps[0].filters.is_empty()
            && self.steps[0].index.is_none()
        {
            let s = self.steps.remove(0);
            self.field = Some(s.seg);
        }
        self
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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

/// Loads every `idoc-type` definition into one catalog. Errors go to `diags`; a file with
/// errors contributes nothing.
pub fn load_catalog(defs: &[&DefFile], diags: &mut Diagnostics) -> Catalog {
    let mut catalog = Catalog::default();
    let mut owner: HashMap<String, std::path::PathBuf> = HashMap::new();
    for def in defs {
        let before = diags.errors.len();
        let Some(spec) = def.parse::<TypeFile>(diags) else {
            continue;
        };
        let compiled = compile(def, spec, diags);
        if diags.errors.len() > before {
            continue;
        }
        let Some(td) = compiled else { continue };
        let td = Arc::new(td);
        for t in &td.types {
            if let Some(prev) = owner.get(t) {
                diags.error(
                    &def.path,
                    def.line_of_key("types"),
                    format!("IDoc type {t} is already defined in {}", prev.display()),
                );
                continue;
            }
            owner.insert(t.clone(), def.path.clone());
            catalog.by_type.insert(t.clone(), td.clone());
        }
    }
    catalog
}

fn compile(def: &DefFile, spec: TypeFile, diags: &mut Diagnostics) -> Option<TypeDef> {
    let path: &Path = &def.path;
    let line_types = def.line_of_key("types");
    if spec.types.is_empty() {
        diags.error(
            path,
            line_types,
            "`types` must name at least one IDoc basic type",
        );
    }
    for t in &spec.types {
        if !is_name(t) {
            diags.error(path, line_types, format!("bad IDoc type name '{t}'"));
        }
    }
    for (key, code) in [
        ("status_applied", &spec.status_applied),
        ("status_rejected", &spec.status_rejected),
    ] {
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_digit()) {
            diags.error(
                path,
                def.line_of_key(key),
                format!("{key} must be a two-digit IDoc status code (e.g. 53), got '{code}'"),
            );
        }
    }
    // Segments: unique names, known parents, sane occurrences.
    let mut segments: DefMap<String, SegDef> = DefMap::default();
    let mut order: Vec<String> = Vec::new();
    for s in &spec.segments {
        let line = seg_line(def, &s.name);
        if !is_name(&s.name) || s.name == CONTROL {
            diags.error(
                path,
                line,
                format!(
                    "bad segment name '{}' (EDI_DC40 is built in and cannot be redefined)",
                    s.name
                ),
            );
            continue;
        }
        if s.max == 0 || s.min > s.max {
            diags.error(
                path,
                line,
                format!(
                    "segment {}: occurrences min {} / max {} are inconsistent (max ≥ 1, min ≤ max)",
                    s.name, s.min, s.max
                ),
            );
        }
        for r in &s.required {
            if !s.fields.is_empty() && !s.fields.contains_key(r) {
                diags.error(
                    path,
                    line,
                    format!(
                        "segment {}: required field {r} is not among its declared fields",
                        s.name
                    ),
                );
            }
        }
        for (f, len) in &s.fields {
            if *len == 0 {
                diags.error(
                    path,
                    line,
                    format!("segment {}: field {f} has max length 0", s.name),
                );
            }
        }
        if segments.contains_key(&s.name) {
            diags.error(path, line, format!("segment {} is defined twice", s.name));
            continue;
        }
        order.push(s.name.clone());
        segments.insert(
            s.name.clone(),
            SegDef {
                name: s.name.clone(),
                parent: s.parent.clone().filter(|p| p != ROOT),
                min: s.min,
                max: s.max,
                required: s.required.clone(),
                fields: s.fields.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                sensitive: s.sensitive.clone(),
            },
        );
    }
    let mut mandatory_at_root = Vec::new();
    let mut mandatory_children: DefMap<String, Vec<(String, u32)>> = DefMap::default();
    for name in &order {
        let s = &segments[name];
        if let Some(p) = &s.parent {
            if !segments.contains_key(p) {
                diags.error(
                    path,
                    seg_line(def, name),
                    format!("segment {name}: parent {p} is not defined in this file"),
                );
            }
        }
        if s.min > 0 {
            let kids = match &s.parent {
                Some(p) => mandatory_children.entry(p.clone()).or_default(),
                None => &mut mandatory_at_root,
            };
            kids.push((name.clone(), s.min));
        }
    }
    // Cycles would make every IDoc of this type unreadable: refuse them at load time.
    for name in &order {
        let mut seen = HashSet::new();
        let mut cur = Some(name.clone());
        while let Some(c) = cur {
            if !seen.insert(c.clone()) {
                diags.error(
                    path,
                    seg_line(def, name),
                    format!("segment {name}: parent chain loops back to {c}"),
                );
                break;
            }
            cur = segments.get(&c).and_then(|s| s.parent.clone());
        }
    }

    let mut messages = Vec::new();
    let mut seen_mestyp = HashSet::new();
    if spec.messages.is_empty() {
        diags.error(
            path,
            None,
            "no [[message]] block: every IDoc type needs at least one message type mapping",
        );
    }
    for m in spec.messages {
        let mline = def.line_of_key("mestyp");
        let Some(entity) = Entity::parse(&m.entity) else {
            let known: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
            diags.error(
                path,
                def.line_of_key("entity"),
                format!(
                    "unknown entity '{}' (known: {})",
                    m.entity,
                    known.join(", ")
                ),
            );
            continue;
        };
        if m.mestyp.is_empty() {
            diags.error(path, mline, "`mestyp` must list at least one message type");
        }
        for t in &m.mestyp {
            if !seen_mestyp.insert(t.clone()) {
                diags.error(
                    path,
                    mline,
                    format!("message type {t} is mapped twice in this file"),
                );
            }
        }
        let ctx = Ctx {
            def,
            segments: &segments,
        };
        let key = compile_key(&ctx, &m.key, diags);
        let mut fields = Vec::new();
        for (name, v) in &m.fields {
            if let Some(vd) = compile_value(&ctx, name, v, None, diags) {
                fields.push((name.clone(), vd));
            }
        }
        let mut lists = Vec::new();
        for (target, l) in &m.lists {
            let line = def.line_of_key(&format!("lists.{target}"));
            let from = match SegPath::parse(&l.from) {
                Ok(p) if p.field.is_none() => p,
                Ok(_) => {
                    diags.error(
                        path,
                        line,
                        format!("list {target}: `from` names segments, not a field"),
                    );
                    continue;
                }
                Err(e) => {
                    diags.error(path, line, format!("list {target}: {e}"));
                    continue;
                }
            };
            let Some(last) =
                ctx.check_steps(&from, None, &format!("list {target}"), &|| line, diags)
            else {
                continue;
            };
            if l.fields.is_empty() == l.value.is_none() {
                diags.error(
                    path,
                    line,
                    format!(
                        "list {target}: give either `fields` (a list of objects) or `value` (a list of strings), not both or neither"
                    ),
                );
                continue;
            }
            let mut lf = Vec::new();
            for (name, v) in &l.fields {
                if let Some(vd) = compile_value(&ctx, name, v, last.as_deref(), diags) {
                    lf.push((name.clone(), vd));
                }
            }
            let value = l
                .value
                .as_ref()
                .and_then(|v| compile_value(&ctx, target, v, last.as_deref(), diags));
            lists.push(ListDef {
                target: target.clone(),
                from,
                fields: lf,
                value,
            });
        }
        check_targets(def, entity, &fields, &lists, diags);
        check_sensitive(def, entity, &segments, &fields, diags);
        messages.push(MessageDef {
            mestyp: m.mestyp,
            entity,
            key,
            fields,
            lists,
        });
    }
    Some(TypeDef {
        source: path.display().to_string(),
        types: spec.types,
        customer_segments: spec.customer_segments,
        status_applied: spec.status_applied,
        status_rejected: spec.status_rejected,
        segments,
        mandatory_at_root,
        mandatory_children,
        messages,
    })
}

/// Catches a misspelt canonical field (`fields.order_nr`) when the definition loads rather
/// than as a contract error on every IDoc: each target is probed alone against the
/// entity's contract, and only "unknown field" answers count (missing fields and value
/// types are the data's business).
fn check_targets(
    def: &DefFile,
    entity: Entity,
    fields: &[(String, ValueDef)],
    lists: &[ListDef],
    diags: &mut Diagnostics,
) {
    let probe = |body: serde_json::Value| match Record::build(entity, "probe", body) {
        Err(r) if r.message.contains("unknown field") => Some(r.message),
        _ => None,
    };
    let dummy = || serde_json::Value::String("2000-01-01".into());
    for (name, _) in fields {
        if let Some(m) = probe(serde_json::json!({ name: dummy() })) {
            diags.error(
                &def.path,
                key_line(def, name),
                format!("{entity} has no field {name}: {m}"),
            );
        }
    }
    for l in lists {
        let line = def.line_of_key(&format!("lists.{}", l.target));
        let item = if l.value.is_some() {
            dummy()
        } else {
            serde_json::Value::Object(serde_json::Map::new())
        };
        if let Some(m) = probe(serde_json::json!({ &l.target: [item] })) {
            diags.error(
                &def.path,
                line,
                format!("{entity} has no list {}: {m}", l.target),
            );
            continue;
        }
        for (name, _) in &l.fields {
            if let Some(m) = probe(serde_json::json!({ &l.target: [{ name: dummy() }] })) {
                diags.error(
                    &def.path,
                    key_line(def, name).or(line),
                    format!("{entity} {}: no field {name}: {m}", l.target),
                );
            }
        }
    }
}

/// A canonical field the contract calls sensitive (bank details) must be read from segment
/// fields the definition masks, or its value would sit in clear in the ledger's raw text
/// and in reject values. (The contract's sensitive fields are record fields, not list
/// fields, so lists are not looked at.)
fn check_sensitive(
    def: &DefFile,
    entity: Entity,
    segments: &DefMap<String, SegDef>,
    fields: &[(String, ValueDef)],
    diags: &mut Diagnostics,
) {
    for (name, vd) in fields {
        if !entity.sensitive_fields().contains(&name.as_str()) {
            continue;
        }
        for p in &vd.paths {
            let seg = p.steps.last().map_or(ROOT, |s| s.seg.as_str());
            let field = p.field.as_deref().unwrap_or_default();
            let masked = segments
                .get(seg)
                .is_some_and(|sd| sd.sensitive.iter().any(|f| f == field));
            if !masked {
                diags.error(
                    &def.path,
                    key_line(def, name),
                    format!(
                        "fields.{name}: the {entity} contract treats '{name}' as sensitive; \
                         add {field} to `sensitive` of segment {seg} so it is masked in the ledger and reports"
                    ),
                );
            }
        }
    }
}

fn seg_line(def: &DefFile, name: &str) -> Option<usize> {
    let needle = format!("\"{name}\"");
    def.text
        .lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with("name") && t.contains(&needle)
        })
        .map(|i| i + 1)
}

struct Ctx<'a> {
    def: &'a DefFile,
    segments: &'a DefMap<String, SegDef>,
}

impl Ctx<'_> {
    /// Checks that each step is a declared child of the previous one. Returns the last
    /// segment (`Some(None)` = root context unchanged) or `None` on error. `line` is asked
    /// only for an error (finding it searches the file's text).
    fn check_steps(
        &self,
        p: &SegPath,
        context: Option<&str>,
        what: &str,
        line: &dyn Fn() -> Option<usize>,
        diags: &mut Diagnostics,
    ) -> Option<Option<String>> {
        let mut cur: Option<String> = if p.absolute {
            None
        } else {
            context.map(str::to_string)
        };
        for step in &p.steps {
            if step.seg == CONTROL {
                if cur.is_some() {
                    diags.error(
                        &self.def.path,
                        line(),
                        format!("{what}: EDI_DC40 is only under the IDoc root (use /EDI_DC40)"),
                    );
                    return None;
                }
                cur = Some(CONTROL.to_string());
                continue;
            }
            let Some(sd) = self.segments.get(&step.seg) else {
                diags.error(
                    &self.def.path,
                    line(),
                    format!("{what}: segment {} is not defined in this file", step.seg),
                );
                return None;
            };
            if sd.parent != cur {
                diags.error(
                    &self.def.path,
                    line(),
                    format!(
                        "{what}: segment {} is not a child of {}",
                        step.seg,
                        cur.as_deref().unwrap_or(ROOT)
                    ),
                );
                return None;
            }
            cur = Some(step.seg.clone());
        }
        Some(cur)
    }
}

fn compile_key(ctx: &Ctx, key: &str, diags: &mut Diagnostics) -> Vec<KeyPart> {
    let line = ctx.def.line_of_key("key");
    let mut parts = Vec::new();
    let mut rest = key;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(KeyPart::Lit(rest[..open].to_string()));
        }
        let Some(close) = rest[open..].find('}') else {
            diags.error(&ctx.def.path, line, format!("key '{key}': unclosed '{{'"));
            return parts;
        };
        let inner = &rest[open + 1..open + close];
        match SegPath::parse(inner) {
            Ok(p) if p.field.is_some() => {
                if ctx.check_steps(&p, None, "key", &|| line, diags).is_some() {
                    parts.push(KeyPart::Path(inner.to_string(), p));
                }
            }
            Ok(_) => diags.error(
                &ctx.def.path,
                line,
                format!("key '{key}': placeholder {{{inner}}} must end in .FIELD"),
            ),
            Err(e) => diags.error(&ctx.def.path, line, format!("key '{key}': {e}")),
        }
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(KeyPart::Lit(rest.to_string()));
    }
    if !key.contains('{') {
        diags.error(
            &ctx.def.path,
            line,
            format!("key '{key}' has no {{SEGMENT.FIELD}} placeholder: every IDoc would share one business key"),
        );
    }
    parts
}

/// Line of a mapping key, also when written dotted (`fields.order_no = ...`).
fn key_line(def: &DefFile, name: &str) -> Option<usize> {
    // The needle is made once, not once a line: this runs for every value of every
    // definition at every start, where a string and a searcher per line made it a quarter
    // of an idle `run`'s instructions (68 M; 51 M with one needle, 41 M with the line
    // searched only for an error, see `compile_value`).
    let dotted = format!(".{name}");
    let finder = memchr::memmem::Finder::new(dotted.as_bytes());
    def.text
        .lines()
        .position(|l| {
            let t = l.trim_start();
            let hit = |rest: &str| rest.trim_start().starts_with('=');
            t.strip_prefix(name).is_some_and(hit)
                || finder
                    .find_iter(t.as_bytes())
                    .any(|i| hit(&t[i + dotted.len()..]))
        })
        .map(|i| i + 1)
}

fn compile_value(
    ctx: &Ctx,
    name: &str,
    v: &ValueSpec,
    context: Option<&str>,
    diags: &mut Diagnostics,
) -> Option<ValueDef> {
    // Only an error needs the line, and finding it searches the whole file (for each of
    // a catalog's values, at every start).
    let found = std::cell::OnceCell::new();
    let line = || *found.get_or_init(|| key_line(ctx.def, name));
    let (paths_txt, mut vd) = match v {
        ValueSpec::Path(_) | ValueSpec::Paths(_) => (
            match v {
                ValueSpec::Paths(ps) => ps.clone(),
                ValueSpec::Path(p) => vec![p.clone()],
                ValueSpec::Full(_) => vec![],
            },
            ValueDef {
                paths: vec![],
                constant: None,
                conv: Conv::String,
                codes: None,
                default: None,
                trim_zeros: false,
            },
        ),
        ValueSpec::Full(f) => {
            let paths = match &f.path {
                None => vec![],
                Some(OneOrMany::One(p)) => vec![p.clone()],
                Some(OneOrMany::Many(v)) => v.clone(),
            };
            if paths.is_empty() == f.constant.is_none() {
                diags.error(
                    &ctx.def.path,
                    line(),
                    format!("{name}: give either `path` or `const`"),
                );
                return None;
            }
            (
                paths,
                ValueDef {
                    paths: vec![],
                    constant: f.constant.clone(),
                    conv: f.conv,
                    codes: f.codes.clone(),
                    default: f.default.clone(),
                    trim_zeros: f.trim_zeros,
                },
            )
        }
    };
    let mut ok = true;
    for p in paths_txt {
        match SegPath::parse(&p) {
            Ok(sp) => {
                let sp = sp.into_field_path();
                if sp.field.is_none() {
                    diags.error(
                        &ctx.def.path,
                        line(),
                        format!("{name}: path '{p}' must end in a field"),
                    );
                    ok = false;
                } else if ctx.check_steps(&sp, context, name, &line, diags).is_none() {
                    ok = false;
                } else {
                    vd.paths.push(sp);
                }
            }
            Err(e) => {
                diags.error(&ctx.def.path, line(), format!("{name}: {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(vd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(text: &str) -> DefFile {
        DefFile {
            path: "t.toml".into(),
            text: text.into(),
            kind: "idoc-type".into(),
            table: toml::from_str(text).unwrap(),
        }
    }

    #[test]
    fn path_syntax() {
        let p = SegPath::parse("E1EDK03[IDDAT=012|002].DATUM").unwrap();
        assert_eq!(p.steps[0].seg, "E1EDK03");
        assert_eq!(p.steps[0].filters[0].1, vec!["012", "002"]);
        assert_eq!(p.field.as_deref(), Some("DATUM"));
        let p = SegPath::parse("/EDI_DC40.SNDPRN").unwrap();
        assert!(p.absolute);
        let p = SegPath::parse("POSEX").unwrap().into_field_path();
        assert!(p.steps.is_empty());
        assert_eq!(p.field.as_deref(), Some("POSEX"));
        assert!(SegPath::parse("A[B].C").is_err());
        assert!(SegPath::parse("A[B=1.C").is_err());
        let p = SegPath::parse("E1LFA1M/E1LFBKM[BANKS=DE][2].IBAN").unwrap();
        assert_eq!(p.steps[0].index, None);
        assert_eq!(p.steps[1].index, Some(2));
        assert_eq!(p.steps[1].filters[0].0, "BANKS");
        for bad in ["A[0].B", "A[1][2].B", "A[-1].B"] {
            assert!(SegPath::parse(bad).is_err(), "{bad}");
        }
        let p = SegPath::parse("E1LFBKM[1]").unwrap().into_field_path();
        assert!(
            p.field.is_none(),
            "a positioned segment is not a bare field"
        );
    }

    #[test]
    fn reports_hierarchy_and_mapping_errors_with_lines() {
        let d = def(r#"kind = "idoc-type"
types = ["T01"]
[[segment]]
name = "E1A"
min = 1
[[segment]]
name = "E1B"
parent = "E1X"
[[message]]
mestyp = ["M"]
entity = "order"
key = "{E1B.F}"
fields.order_no = "E1A.NOPE/X"
"#);
        let mut d2 = Diagnostics::default();
        let c = load_catalog(&[&d], &mut d2);
        assert!(c.by_type.is_empty());
        let msgs: Vec<String> = d2.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("t.toml:7") && m.contains("E1X")),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.contains("not a child")), "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m.contains("t.toml:13") && m.contains("E1A.NOPE")),
            "{msgs:?}"
        );
        assert!(!msgs.iter().any(|m| m.contains("no {SEGMENT")), "{msgs:?}");
    }

    #[test]
    fn misspelt_canonical_fields_are_definition_errors() {
        let d = def(r#"kind = "idoc-type"
types = ["T01"]
[[segment]]
name = "E1A"
[[message]]
mestyp = ["M"]
entity = "order"
key = "{E1A.F}"
fields.order_nr = "E1A.F"
fields.order_date = { path = "E1A.D", as = "date" }
[message.lists.lines]
from = "E1A"
fields.qty = "Q"
fields.quantity = "Q"
"#);
        let mut diags = Diagnostics::default();
        let c = load_catalog(&[&d], &mut diags);
        assert!(c.by_type.is_empty());
        let msgs: Vec<String> = diags.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].starts_with("t.toml:9: order has no field order_nr"),
            "{msgs:?}"
        );
        assert!(
            msgs[1].starts_with("t.toml:13: order lines: no field qty"),
            "{msgs:?}"
        );
    }

    #[test]
    fn sensitive_contract_fields_must_be_read_from_masked_fields() {
        let text = r#"kind = "idoc-type"
types = ["T01"]
[[segment]]
name = "E1A"
[[segment]]
name = "E1B"
parent = "E1A"
max = 9
sensitive = ["IBAN"]
[[message]]
mestyp = ["M"]
entity = "supplier"
key = "{E1A.F}"
fields.supplier_id = "E1A.F"
fields.name = "E1A.N"
fields.iban = "E1A/E1B[1].IBAN"
fields.bank_account = ["E1A/E1B[1].IBAN", "E1A/E1B[1].BANKN"]
fields.account_holder = { const = "n/a" }
"#;
        let mut diags = Diagnostics::default();
        let c = load_catalog(&[&def(text)], &mut diags);
        assert_eq!(diags.errors.len(), 1, "{:?}", diags.errors);
        assert!(c.by_type.is_empty());
        let e = &diags.errors[0];
        assert_eq!(e.line, Some(17));
        assert!(
            e.message.starts_with(
                "fields.bank_account: the supplier contract treats 'bank_account' as \
                 sensitive; add BANKN to `sensitive` of segment E1B"
            ),
            "{e:?}"
        );
        let fixed = text.replace(
            "sensitive = [\"IBAN\"]",
            "sensitive = [\"IBAN\", \"BANKN\"]",
        );
        let mut diags = Diagnostics::default();
        let c = load_catalog(&[&def(&fixed)], &mut diags);
        assert!(diags.is_empty(), "{:?}", diags.errors);
        assert_eq!(c.by_type.len(), 1);
    }

    #[test]
    fn value_typos_name_the_key() {
        let d = def(r#"kind = "idoc-type"
types = ["T01"]
[[segment]]
name = "E1A"
[[message]]
mestyp = ["M"]
entity = "product"
key = "{E1A.F}"
fields.sku = { pth = "E1A.F" }
"#);
        let mut diags = Diagnostics::default();
        load_catalog(&[&d], &mut diags);
        assert_eq!(diags.errors.len(), 1, "{:?}", diags.errors);
        assert!(
            diags.errors[0].message.contains("unknown field `pth`"),
            "{:?}",
            diags.errors
        );
        assert_eq!(diags.errors[0].line, Some(9));
    }

    #[test]
    fn duplicate_type_across_files_is_an_error() {
        let t = r#"kind = "idoc-type"
types = ["T01"]
[[segment]]
name = "E1A"
[[message]]
mestyp = ["M"]
entity = "product"
key = "{E1A.F}"
fields.sku = "E1A.F"
"#;
        let a = def(t);
        let mut b = def(t);
        b.path = "u.toml".into();
        let mut d = Diagnostics::default();
        let c = load_catalog(&[&a, &b], &mut d);
        assert_eq!(c.by_type.len(), 1);
        assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
        assert!(d.errors[0].to_string().contains("already defined"));
    }

    #[test]
    fn unknown_entity_and_keys_are_reported() {
        let d = def(r#"kind = "idoc-type"
types = ["T01"]
[[segment]]
name = "E1A"
[[message]]
mestyp = ["M"]
entity = "widget"
key = "fixed"
"#);
        let mut diags = Diagnostics::default();
        load_catalog(&[&d], &mut diags);
        assert!(diags
            .errors
            .iter()
            .any(|e| e.message.contains("widget") && e.line == Some(7)));
    }
}
