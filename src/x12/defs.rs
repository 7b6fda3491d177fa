//! X12 definition files: the segment dictionary, transaction-set structures with their
//! declarative maps, and partner settings.
//!
//! Rules live in `formats/x12/*.toml` so adding a transaction set or a partner's quirks is
//! a data change. Three kinds are read here: `x12-segments` (element requirement, type,
//! length, code lists and syntax notes per segment id), `x12-transaction-set` (segment
//! order, loops and repeats in a small indented text notation, plus a `[map]`), and
//! `x12-partner` (tolerated defects, atomicity, what to do with sets that have no
//! definition, acknowledgement options; matched by ISA06).
//! Every problem is reported to [`Diagnostics`] with its file and line; a broken file is
//! left out and the rest still load.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::segments::{SegId, SegName};
use crate::canonical::Entity;
use crate::format::defs::{DefMap, DefSet};
use crate::format::{DefFile, Diagnostics, Policy};

/// Data element types of the X12 dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElType {
    An,
    Id,
    /// Implied-decimal numeric with this many decimals (`N0`, `N2`).
    N(u8),
    R,
    Dt,
    Tm,
    /// A composite; its components are not checked one by one.
    Composite,
}

#[derive(Debug, Clone)]
pub struct ElementDef {
    pub required: bool,
    pub ty: ElType,
    pub min: usize,
    pub max: usize,
    pub codes: Option<Vec<String>>,
}

/// A syntax note such as `P0607` (paired) or `C0506` (conditional).
#[derive(Debug, Clone)]
pub struct SyntaxNote {
    pub kind: char,
    pub els: Vec<usize>,
    pub text: String,
}

#[derive(Debug, Clone, Default)]
pub struct SegmentDef {
    pub elements: Vec<ElementDef>,
    pub syntax: Vec<SyntaxNote>,
    /// Element positions (1-based) holding personal data — a contact's name, phone,
    /// e-mail: masked wherever the segment's text or such a value is kept or shown.
    pub sensitive: Vec<usize>,
    /// How many elements up to the last required one: past both it and the segment's
    /// own elements, nothing is left to check (a PO1 defines 25, and most carry 10).
    pub required_through: usize,
}

/// One node of a transaction set's structure.
#[derive(Debug, Clone)]
pub enum Node {
    Seg {
        /// The id, packed to compare with segments'.
        id: SegName,
        required: bool,
        max: u64,
    },
    Loop {
        name: String,
        /// The trigger segment's packed id.
        code: SegId,
        required: bool,
        max: u64,
        /// The first node is the loop's trigger segment.
        body: Vec<Node>,
    },
}

impl Node {
    pub fn first_id(&self) -> &str {
        match self {
            Node::Seg { id, .. } => id.as_str(),
            Node::Loop { body, .. } => body.first().map(Node::first_id).unwrap_or(""),
        }
    }
    /// [`Node::first_id`] packed: always packed, as definition ids have two or three
    /// letters and digits.
    pub fn first_code(&self) -> SegId {
        match self {
            Node::Seg { id, .. } => id.code(),
            Node::Loop { code, .. } => *code,
        }
    }
    pub fn required(&self) -> bool {
        match self {
            Node::Seg { required, .. } | Node::Loop { required, .. } => *required,
        }
    }
    pub fn max(&self) -> u64 {
        match self {
            Node::Seg { max, .. } | Node::Loop { max, .. } => *max,
        }
    }
    fn collect_ids(&self, out: &mut Vec<String>) {
        match self {
            Node::Seg { id, .. } => out.push(id.as_str().to_string()),
            Node::Loop { body, .. } => body.iter().for_each(|n| n.collect_ids(out)),
        }
    }
}

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

/// A defect class a partner may be allowed to send.
pub const TOLERANCES: &[&str] = &[
    "isa-width",
    "se01-count",
    "se02-control",
    "ge01-count",
    "ge02-control",
    "iea01-count",
    "iea02-control",
    "control-padding",
];

/// Control numbers that differ only in zero padding (`3438` vs `000003438`).
pub fn same_number(a: &str, b: &str) -> bool {
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.trim_start_matches('0').to_string())
    };
    matches!((num(a), num(b)), (Some(x), Some(y)) if x == y)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerFile {
    #[allow(dead_code)]
    kind: String,
    /// ISA06 sender ids (trimmed), or `*` for every partner without its own file.
    senders: Vec<String>,
    #[serde(default)]
    tolerate: Vec<toml::Spanned<String>>,
    /// Always send a TA1 (not only when ISA14 = 1 or the envelope is bad).
    #[serde(default)]
    always_ta1: bool,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    max_reject_ratio: Option<f64>,
    /// `set` (default), `group` or `interchange`: the unit of atomicity for this partner.
    #[serde(default)]
    atomic: Option<toml::Spanned<String>>,
    /// `accept` (default), `hold` or `reject`: sets with no definition.
    #[serde(default)]
    unmapped: Option<toml::Spanned<String>>,
}

/// The unit of atomicity a partner asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Atomic {
    #[default]
    Set,
    Group,
    Interchange,
}

impl Atomic {
    pub fn as_str(self) -> &'static str {
        match self {
            Atomic::Set => "set",
            Atomic::Group => "group",
            Atomic::Interchange => "interchange",
        }
    }
}

/// What a partner wants done with a transaction set we have no definition for (837, 835,
/// ...): such a set can only be envelope- and SE-checked, never mapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unmapped {
    /// Accepted unmapped and acknowledged `AK5*A`: the ledger says it was only checked.
    #[default]
    Accept,
    /// Accepted unmapped, but the whole file waits for a person before it is decided.
    Hold,
    /// Rejected (`x12-no-definition`, `AK5*R*1` "transaction set not supported").
    Reject,
}

impl Unmapped {
    pub const NAMES: &'static [&'static str] = &["accept", "hold", "reject"];

    pub fn as_str(self) -> &'static str {
        match self {
            Unmapped::Accept => "accept",
            Unmapped::Hold => "hold",
            Unmapped::Reject => "reject",
        }
    }

    fn parse(name: &str) -> Option<Unmapped> {
        match name {
            "accept" => Some(Unmapped::Accept),
            "hold" => Some(Unmapped::Hold),
            "reject" => Some(Unmapped::Reject),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PartnerDef {
    pub senders: Vec<String>,
    pub tolerate: Vec<String>,
    pub always_ta1: bool,
    pub policy: Option<Policy>,
    pub atomic: Atomic,
    /// As the file says it; `None` falls back to the `*` file, then to `accept` (see
    /// [`Registry::partner`]).
    pub unmapped: Option<Unmapped>,
}

impl PartnerDef {
    pub fn tolerates(&self, name: &str) -> bool {
        self.tolerate.iter().any(|t| t == name)
    }

    /// The setting for sets without a definition, once [`Registry::partner`] resolved it.
    pub fn unmapped(&self) -> Unmapped {
        self.unmapped.unwrap_or_default()
    }
}

/// Everything the X12 format knows, shared read-only by all jobs.
#[derive(Debug, Default)]
pub struct Registry {
    pub segments: DefMap<String, Arc<SegmentDef>>,
    pub sets: Vec<SetDef>,
    pub partners: Vec<PartnerDef>,
}

impl Registry {
    /// A segment's text as the ledger, reports and logs may keep it: its sensitive
    /// elements (see [`SegmentDef::sensitive`]) masked. `elem` is the interchange's element
    /// separator; without one (no envelope read yet) nothing is known to be sensitive.
    pub fn shown_text<'a>(
        &self,
        seg: &'a super::segments::Segment,
        elem: Option<char>,
    ) -> std::borrow::Cow<'a, str> {
        let (Some(def), Some(sep)) = (self.segments.get(seg.id()), elem) else {
            return seg.text().into();
        };
        if !def.sensitive.iter().any(|&e| !seg.el(e).is_empty()) {
            return seg.text().into();
        }
        let mut out = seg.id().to_string();
        for (i, v) in seg.elements().enumerate() {
            out.push(sep);
            if def.sensitive.contains(&(i + 1)) {
                out.push_str(&crate::unit::mask(v));
            } else {
                out.push_str(v);
            }
        }
        out.into()
    }

    /// The definition for a set id under a GS08 version, if any.
    pub fn set_for(&self, id: &str, gs08: &str) -> Option<&SetDef> {
        self.sets
            .iter()
            .find(|s| s.id == id && s.versions.iter().any(|v| gs08.starts_with(v.as_str())))
    }

    /// The partner settings for an ISA06 sender: its own file, else `*`, else strict
    /// defaults. `unmapped` alone falls back to the `*` file when the partner's own file
    /// does not set it: it is a site-wide decision (may unknown documents pass?) that a
    /// partner file written for a tolerance must not silently loosen.
    pub fn partner(&self, sender: &str) -> PartnerDef {
        let sender = sender.trim();
        let star = self
            .partners
            .iter()
            .find(|p| p.senders.iter().any(|s| s == "*"));
        let mut p = self
            .partners
            .iter()
            .find(|p| p.senders.iter().any(|s| s == sender))
            .or(star)
            .cloned()
            .unwrap_or_default();
        p.unmapped = p.unmapped.or(star.and_then(|s| s.unmapped));
        p
    }

    /// Loads every X12 definition file, reporting each problem.
    pub fn load(defs: &[&DefFile], diags: &mut Diagnostics) -> Registry {
        let mut reg = Registry::default();
        for def in defs.iter().filter(|d| d.kind == "x12-segments") {
            load_segments(def, &mut reg, diags);
        }
        for def in defs.iter().filter(|d| d.kind == "x12-transaction-set") {
            if let Some(mut set) = load_set(def, diags) {
                if reg
                    .sets
                    .iter()
                    .any(|s| s.id == set.id && s.versions.iter().any(|v| set.versions.contains(v)))
                {
                    diags.error(
                        &def.path,
                        def.line_of_key("versions"),
                        format!(
                            "another definition already covers set {} for one of these versions",
                            set.id
                        ),
                    );
                    continue;
                }
                set.checked = set
                    .known_ids
                    .iter()
                    .filter_map(|id| Some((SegId::of(id.as_bytes()), reg.segments.get(id)?)))
                    .filter(|(code, _)| code.packed())
                    .map(|(code, def)| (code, def.clone()))
                    .collect();
                reg.sets.push(set);
            }
        }
        for def in defs.iter().filter(|d| d.kind == "x12-partner") {
            if let Some(p) = load_partner(def, diags) {
                reg.partners.push(p);
            }
        }
        reg
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentsFile {
    #[allow(dead_code)]
    kind: String,
    segments: BTreeMap<String, SegmentEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentEntry {
    #[allow(dead_code)]
    #[serde(default)]
    name: Option<String>,
    elements: Vec<String>,
    #[serde(default)]
    syntax: Vec<String>,
    #[serde(default)]
    sensitive: Vec<usize>,
}

fn load_segments(def: &DefFile, reg: &mut Registry, diags: &mut Diagnostics) {
    let Some(file) = def.parse::<SegmentsFile>(diags) else {
        return;
    };
    for (id, entry) in file.segments {
        let line = def.line_of_key(&format!("segments.{id}"));
        let mut seg = SegmentDef::default();
        let mut ok = true;
        for (i, spec) in entry.elements.iter().enumerate() {
            match parse_element(spec) {
                Ok(e) => seg.elements.push(e),
                Err(msg) => {
                    ok = false;
                    diags.error(&def.path, line, format!("{id}{:02}: {msg}", i + 1));
                }
            }
        }
        for note in &entry.syntax {
            match parse_note(note, seg.elements.len()) {
                Ok(n) => seg.syntax.push(n),
                Err(msg) => {
                    ok = false;
                    diags.error(&def.path, line, format!("{id} syntax note '{note}': {msg}"));
                }
            }
        }
        for &e in &entry.sensitive {
            if e == 0 || e > seg.elements.len() {
                ok = false;
                diags.error(
                    &def.path,
                    line,
                    format!(
                        "{id}: sensitive element {e} is not one of its {} elements",
                        seg.elements.len()
                    ),
                );
            }
        }
        seg.sensitive = entry.sensitive;
        seg.required_through = seg
            .elements
            .iter()
            .rposition(|e| e.required)
            .map_or(0, |i| i + 1);
        if ok {
            reg.segments.insert(id, Arc::new(seg));
        }
    }
}

/// `M ID 2/2 00,01,05` / `O AN 1/30` / `O N0 1/15` / `O C` (composite).
fn parse_element(spec: &str) -> Result<ElementDef, String> {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let required = match parts.first() {
        Some(&"M") => true,
        Some(&"O") | Some(&"X") => false,
        _ => return Err(format!("'{spec}' must start with M, O or X")),
    };
    let ty = match parts.get(1).copied() {
        Some("AN") => ElType::An,
        Some("ID") => ElType::Id,
        Some("R") => ElType::R,
        Some("DT") => ElType::Dt,
        Some("TM") => ElType::Tm,
        Some("C") => ElType::Composite,
        Some(n) if n.starts_with('N') && n.len() == 2 => ElType::N(
            n[1..]
                .parse()
                .map_err(|_| format!("bad numeric type '{n}'"))?,
        ),
        other => return Err(format!("unknown element type {other:?} in '{spec}'")),
    };
    let (min, max) = if ty == ElType::Composite {
        (0, usize::MAX)
    } else {
        let lens = parts
            .get(2)
            .ok_or_else(|| format!("'{spec}' lacks min/max length"))?;
        let (a, b) = lens
            .split_once('/')
            .ok_or_else(|| format!("length '{lens}' must be min/max"))?;
        let min: usize = a.parse().map_err(|_| format!("bad min length '{a}'"))?;
        let max: usize = b.parse().map_err(|_| format!("bad max length '{b}'"))?;
        if min > max || max == 0 {
            return Err(format!("length {min}/{max} is empty"));
        }
        (min, max)
    };
    let codes = parts
        .get(3)
        .map(|c| c.split(',').map(str::to_string).collect::<Vec<_>>());
    if codes.is_some() && ty != ElType::Id {
        return Err("code lists are only for ID elements".into());
    }
    if parts.len() > 4 {
        return Err(format!("unexpected text after the code list in '{spec}'"));
    }
    Ok(ElementDef {
        required,
        ty,
        min,
        max,
        codes,
    })
}

fn parse_note(note: &str, n_elements: usize) -> Result<SyntaxNote, String> {
    let kind = note.chars().next().ok_or("empty")?;
    if !"PRCEL".contains(kind) {
        return Err("must start with P, R, C, E or L".into());
    }
    let digits = &note[1..];
    if digits.len() < 4
        || !digits.len().is_multiple_of(2)
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("needs two-digit element positions".into());
    }
    let els: Vec<usize> = digits
        .as_bytes()
        .chunks(2)
        .map(|c| usize::from(c[0] - b'0') * 10 + usize::from(c[1] - b'0'))
        .collect();
    if els.iter().any(|&e| e == 0 || e > n_elements) {
        return Err(format!("element position beyond the {n_elements} declared"));
    }
    Ok(SyntaxNote {
        kind,
        els,
        text: note.to_string(),
    })
}

fn load_set(def: &DefFile, diags: &mut Diagnostics) -> Option<SetDef> {
    let file = def.parse::<SetFile>(diags)?;
    let before = diags.errors.len();
    // The structure text starts on the line after `structure = """`.
    // TOML drops the newline right after an opening `"""`, so the text's first line is the
    // next line of the file.
    let start = file.structure.span().start;
    let after = def.text.get(start..).unwrap_or("");
    let skip = usize::from(after.starts_with("\"\"\"\n") || after.starts_with("\"\"\"\r\n"));
    let base_line = def.line_at(start) + skip;
    let structure = match parse_structure(file.structure.get_ref()) {
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

/// Parses the indented structure notation:
///
/// ```text
/// ST M 1
/// LOOP N1 O 200
///   N1 M 1
///   N3 O 2
/// END
/// SE M 1
/// ```
///
/// `>1` means unbounded. Errors carry the 0-based line inside the text.
pub fn parse_structure(text: &str) -> Result<Vec<Node>, (usize, String)> {
    let mut stack: Vec<(String, bool, u64, Vec<Node>, usize)> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let parse_req = |s: Option<&&str>| match s.copied() {
            Some("M") => Ok(true),
            Some("O") => Ok(false),
            other => Err((i, format!("expected M or O, found {other:?}"))),
        };
        let parse_max = |s: Option<&&str>| match s.copied() {
            Some(">1") => Ok(u64::MAX),
            Some(n) => n
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or((i, format!("bad repeat '{n}'"))),
            None => Err((i, "missing repeat".to_string())),
        };
        match parts.first().copied() {
            Some("LOOP") => {
                let name = parts
                    .get(1)
                    .ok_or((i, "LOOP needs a name".to_string()))?
                    .to_string();
                stack.push((
                    name,
                    parse_req(parts.get(2))?,
                    parse_max(parts.get(3))?,
                    vec![],
                    i,
                ));
            }
            Some("END") => {
                let (name, required, max, body, at) =
                    stack.pop().ok_or((i, "END without LOOP".to_string()))?;
                if body.is_empty() {
                    return Err((at, format!("loop {name} is empty")));
                }
                let node = Node::Loop {
                    name,
                    code: body.first().map_or(SegId::of(b""), Node::first_code),
                    required,
                    max,
                    body,
                };
                match stack.last_mut() {
                    Some(parent) => parent.3.push(node),
                    None => top.push(node),
                }
            }
            Some(id) => {
                if !(2..=3).contains(&id.len())
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                {
                    return Err((i, format!("'{id}' is not a segment id")));
                }
                if parts.len() != 3 {
                    return Err((i, format!("expected `{id} M|O repeat`")));
                }
                let node = Node::Seg {
                    id: SegName::from(id.to_string()),
                    required: parse_req(parts.get(1))?,
                    max: parse_max(parts.get(2))?,
                };
                match stack.last_mut() {
                    Some(parent) => parent.3.push(node),
                    None => top.push(node),
                }
            }
            None => {}
        }
    }
    if let Some((name, _, _, _, at)) = stack.last() {
        return Err((*at, format!("loop {name} has no END")));
    }
    Ok(top)
}

fn load_partner(def: &DefFile, diags: &mut Diagnostics) -> Option<PartnerDef> {
    let file = def.parse::<PartnerFile>(diags)?;
    let mut ok = true;
    let mut tolerate = Vec::new();
    for t in &file.tolerate {
        if TOLERANCES.contains(&t.get_ref().as_str()) {
            tolerate.push(t.get_ref().clone());
        } else {
            ok = false;
            diags.error(
                &def.path,
                Some(def.line_at(t.span().start)),
                format!(
                    "unknown tolerance '{}' (known: {})",
                    t.get_ref(),
                    TOLERANCES.join(", ")
                ),
            );
        }
    }
    if file.senders.is_empty() {
        ok = false;
        diags.error(&def.path, def.line_of_key("senders"), "senders is empty");
    }
    if file.policy.is_some() && !file.senders.iter().any(|s| s == "*") {
        ok = false;
        diags.error(
            &def.path,
            def.line_of_key("policy"),
            "`policy` is the format-wide file policy and only allowed in the `*` partner file; use `atomic = \"group\"` or `\"interchange\"` for a partner's all-or-nothing",
        );
    }
    let policy = match &file.policy {
        Some(p) => match Policy::parse(p, file.max_reject_ratio) {
            Ok(p) => Some(p),
            Err(msg) => {
                ok = false;
                diags.error(&def.path, def.line_of_key("policy"), msg);
                None
            }
        },
        None => None,
    };
    let atomic = choice(
        def,
        diags,
        &mut ok,
        "atomic",
        &file.atomic,
        &["set", "group", "interchange"],
    )
    .map(|a| match a {
        "group" => Atomic::Group,
        "interchange" => Atomic::Interchange,
        _ => Atomic::Set,
    })
    .unwrap_or_default();
    let unmapped = choice(
        def,
        diags,
        &mut ok,
        "unmapped",
        &file.unmapped,
        Unmapped::NAMES,
    )
    .and_then(Unmapped::parse);
    ok.then_some(PartnerDef {
        senders: file.senders,
        tolerate,
        always_ta1: file.always_ta1,
        policy,
        atomic,
        unmapped,
    })
}

/// A setting that must be one of `names`; an unknown value is reported at its line.
fn choice<'a>(
    def: &DefFile,
    diags: &mut Diagnostics,
    ok: &mut bool,
    key: &str,
    value: &'a Option<toml::Spanned<String>>,
    names: &[&str],
) -> Option<&'a str> {
    let v = value.as_ref()?;
    if names.contains(&v.get_ref().as_str()) {
        return Some(v.get_ref());
    }
    *ok = false;
    diags.error(
        &def.path,
        Some(def.line_at(v.span().start)),
        format!("unknown {key} '{}' ({})", v.get_ref(), names.join(", ")),
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_notation_parses_loops() {
        let s =
            parse_structure("ST M 1\nLOOP N1 O 200\n  N1 M 1\n  N3 O 2\nEND\nSE M 1\n").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].first_id(), "N1");
        assert_eq!(s[1].max(), 200);
    }

    #[test]
    fn structure_errors_have_their_line() {
        assert_eq!(parse_structure("ST M 1\nLOOP X O 1\n").unwrap_err().0, 1);
        assert_eq!(parse_structure("ST M 1\nbeg M 1\n").unwrap_err().0, 1);
    }

    #[test]
    fn element_specs_parse() {
        let e = parse_element("M ID 2/2 00,01").unwrap();
        assert!(e.required);
        assert_eq!(e.codes.as_ref().unwrap().len(), 2);
        assert!(parse_element("M AN 1/x").is_err());
        assert!(parse_element("Q AN 1/2").is_err());
        assert_eq!(parse_element("O N2 1/15").unwrap().ty, ElType::N(2));
    }

    #[test]
    fn syntax_notes_parse() {
        assert_eq!(parse_note("P0607", 10).unwrap().els, vec![6, 7]);
        assert!(parse_note("P06", 10).is_err());
        assert!(parse_note("P0612", 10).is_err());
    }
}
