//! Compiling one message block's mapping: values and keys with their paths checked
//! against the declared segment hierarchy, and targets checked against the canonical
//! contract (misspelt fields, sensitive fields read from unmasked segment fields).
//!
//! Apart from `load` because it is the part that knows about paths and the contract, not
//! about segments' occurrences; `load` calls it once per `[[message]]`.

use super::path::SegPath;
use super::spec::{OneOrMany, ValueSpec};
use super::{Conv, KeyPart, ListDef, SegDef, ValueDef, CONTROL, ROOT};
use crate::canonical::{Entity, Record};
use crate::format::defs::DefMap;
use crate::format::{DefFile, Diagnostics};

/// Catches a misspelt canonical field (`fields.order_nr`) when the definition loads rather
/// than as a contract error on every IDoc: each target is probed alone against the
/// entity's contract, and only "unknown field" answers count (missing fields and value
/// types are the data's business).
pub(super) fn check_targets(
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
pub(super) fn check_sensitive(
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

pub(super) struct Ctx<'a> {
    pub(super) def: &'a DefFile,
    pub(super) segments: &'a DefMap<String, SegDef>,
}

impl Ctx<'_> {
    /// Checks that each step is a declared child of the previous one. Returns the last
    /// segment (`Some(None)` = root context unchanged) or `None` on error. `line` is asked
    /// only for an error (finding it searches the file's text).
    pub(super) fn check_steps(
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

pub(super) fn compile_key(ctx: &Ctx, key: &str, diags: &mut Diagnostics) -> Vec<KeyPart> {
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

pub(super) fn compile_value(
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
