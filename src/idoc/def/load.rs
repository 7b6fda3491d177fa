//! Loading `idoc-type` files into the [`Catalog`]: the segment hierarchy is checked here
//! (names, parents, occurrences, cycles, status codes) and each message block handed to
//! `mapping` to compile. Every problem goes to [`Diagnostics`] with its line; a file with
//! any error contributes nothing, so a half-checked type never reaches the reader.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::mapping::{check_sensitive, check_targets, compile_key, compile_value, Ctx};
use super::path::{is_name, SegPath};
use super::spec::{ListSpec, MessageSpec, SegmentSpec, TypeFile};
use super::{Catalog, ListDef, MessageDef, SegDef, TypeDef, CONTROL, ROOT};
use crate::canonical::Entity;
use crate::format::defs::DefMap;
use crate::format::{DefFile, Diagnostics};

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
        let td = compile(def, spec, diags);
        if diags.errors.len() > before {
            continue;
        }
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

/// The definition compiled, its errors in `diags` (the caller drops a definition with any).
fn compile(def: &DefFile, spec: TypeFile, diags: &mut Diagnostics) -> TypeDef {
    let path: &Path = &def.path;
    check_header(def, &spec, diags);
    let (segments, order) = compile_segments(def, &spec.segments, diags);
    let (mandatory_at_root, mandatory_children) = mandatory_segments(def, &segments, &order, diags);
    check_cycles(def, &segments, &order, diags);
    let messages = compile_messages(def, spec.messages, &segments, diags);
    TypeDef {
        source: path.display().to_string(),
        types: spec.types,
        customer_segments: spec.customer_segments,
        status_applied: spec.status_applied,
        status_rejected: spec.status_rejected,
        segments,
        mandatory_at_root,
        mandatory_children,
        messages,
    }
}

/// Checks the file-level keys: the IDoc type names and the two status codes.
fn check_header(def: &DefFile, spec: &TypeFile, diags: &mut Diagnostics) {
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
}

/// Turns the `[[segment]]` blocks into checked segments, keyed by name, plus their
/// names in file order (the order later checks report in).
fn compile_segments(
    def: &DefFile,
    specs: &[SegmentSpec],
    diags: &mut Diagnostics,
) -> (DefMap<String, SegDef>, Vec<String>) {
    let path: &Path = &def.path;
    // Segments: unique names, known parents, sane occurrences.
    let mut segments: DefMap<String, SegDef> = DefMap::default();
    let mut order: Vec<String> = Vec::new();
    for s in specs {
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
        check_segment_shape(path, line, s, diags);
        if segments.contains_key(&s.name) {
            diags.error(path, line, format!("segment {} is defined twice", s.name));
            continue;
        }
        order.push(s.name.clone());
        segments.insert(s.name.clone(), seg_def(s));
    }
    (segments, order)
}

/// Checks one segment's occurrences, required fields and field lengths against each other.
fn check_segment_shape(path: &Path, line: Option<usize>, s: &SegmentSpec, diags: &mut Diagnostics) {
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
}

/// The checked form of a segment block whose name has passed the checks.
fn seg_def(s: &SegmentSpec) -> SegDef {
    SegDef {
        name: s.name.clone(),
        parent: s.parent.clone().filter(|p| p != ROOT),
        min: s.min,
        max: s.max,
        required: s.required.clone(),
        fields: s.fields.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        sensitive: s.sensitive.clone(),
    }
}

/// The mandatory segments at the root, and under each parent, with their minimum counts.
type Mandatory = (Vec<(String, u32)>, DefMap<String, Vec<(String, u32)>>);

/// Checks that every parent is defined and collects which segments must occur where.
fn mandatory_segments(
    def: &DefFile,
    segments: &DefMap<String, SegDef>,
    order: &[String],
    diags: &mut Diagnostics,
) -> Mandatory {
    let mut mandatory_at_root = Vec::new();
    let mut mandatory_children: DefMap<String, Vec<(String, u32)>> = DefMap::default();
    for name in order {
        let s = &segments[name];
        if let Some(p) = &s.parent {
            if !segments.contains_key(p) {
                diags.error(
                    &def.path,
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
    (mandatory_at_root, mandatory_children)
}

/// Reports each segment whose parent chain comes back on itself.
fn check_cycles(
    def: &DefFile,
    segments: &DefMap<String, SegDef>,
    order: &[String],
    diags: &mut Diagnostics,
) {
    // Cycles would make every IDoc of this type unreadable: refuse them at load time.
    for name in order {
        let mut seen = HashSet::new();
        let mut cur = Some(name.clone());
        while let Some(c) = cur {
            if !seen.insert(c.clone()) {
                diags.error(
                    &def.path,
                    seg_line(def, name),
                    format!("segment {name}: parent chain loops back to {c}"),
                );
                break;
            }
            cur = segments.get(&c).and_then(|s| s.parent.clone());
        }
    }
}

/// Compiles the `[[message]]` blocks against the checked segments; a message type may be
/// mapped only once per file.
fn compile_messages(
    def: &DefFile,
    specs: Vec<MessageSpec>,
    segments: &DefMap<String, SegDef>,
    diags: &mut Diagnostics,
) -> Vec<MessageDef> {
    let mut messages = Vec::new();
    let mut seen_mestyp = HashSet::new();
    if specs.is_empty() {
        diags.error(
            &def.path,
            None,
            "no [[message]] block: every IDoc type needs at least one message type mapping",
        );
    }
    for m in specs {
        if let Some(md) = compile_message(def, m, segments, &mut seen_mestyp, diags) {
            messages.push(md);
        }
    }
    messages
}

/// Compiles one message block; `None` when its entity is unknown (nothing else is
/// checked then).
fn compile_message(
    def: &DefFile,
    m: MessageSpec,
    segments: &DefMap<String, SegDef>,
    seen_mestyp: &mut HashSet<String>,
    diags: &mut Diagnostics,
) -> Option<MessageDef> {
    let path: &Path = &def.path;
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
        return None;
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
    let ctx = Ctx { def, segments };
    let key = compile_key(&ctx, &m.key, diags);
    let mut fields = Vec::new();
    for (name, v) in &m.fields {
        if let Some(vd) = compile_value(&ctx, name, v, None, diags) {
            fields.push((name.clone(), vd));
        }
    }
    let mut lists = Vec::new();
    for (target, l) in &m.lists {
        if let Some(ld) = compile_list(&ctx, target, l, diags) {
            lists.push(ld);
        }
    }
    check_targets(def, entity, &fields, &lists, diags);
    check_sensitive(def, entity, segments, &fields, diags);
    Some(MessageDef {
        mestyp: m.mestyp,
        entity,
        key,
        fields,
        lists,
    })
}

/// Compiles one `lists.<target>` block; `None` when its `from` path or its shape is wrong.
fn compile_list(ctx: &Ctx, target: &str, l: &ListSpec, diags: &mut Diagnostics) -> Option<ListDef> {
    let path: &Path = &ctx.def.path;
    let line = ctx.def.line_of_key(&format!("lists.{target}"));
    let from = match SegPath::parse(&l.from) {
        Ok(p) if p.field.is_none() => p,
        Ok(_) => {
            diags.error(
                path,
                line,
                format!("list {target}: `from` names segments, not a field"),
            );
            return None;
        }
        Err(e) => {
            diags.error(path, line, format!("list {target}: {e}"));
            return None;
        }
    };
    let last = ctx.check_steps(&from, None, &format!("list {target}"), &|| line, diags)?;
    if l.fields.is_empty() == l.value.is_none() {
        diags.error(
            path,
            line,
            format!(
                "list {target}: give either `fields` (a list of objects) or `value` (a list of strings), not both or neither"
            ),
        );
        return None;
    }
    let mut lf = Vec::new();
    for (name, v) in &l.fields {
        if let Some(vd) = compile_value(ctx, name, v, last.as_deref(), diags) {
            lf.push((name.clone(), vd));
        }
    }
    let value = l
        .value
        .as_ref()
        .and_then(|v| compile_value(ctx, target, v, last.as_deref(), diags));
    Some(ListDef {
        target: target.to_string(),
        from,
        fields: lf,
        value,
    })
}

/// The line of the definition that names segment `name` (`name = "E1EDK01"`), for the
/// segment's errors.
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
