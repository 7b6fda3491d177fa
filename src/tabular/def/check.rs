//! The one-pass semantic check that turns a parsed definition into a [`TabularDef`].
//!
//! After parsing, every cross-reference (key template, group_by, map values, code
//! lists, regexes, date patterns, canonical contract fields) is checked and *every* problem
//! is reported with its file and line, so `tallyman check` shows a partner layout's whole
//! list of mistakes at once. A field's own settings are checked in `check/field.rs`, the
//! `[map]` sections in `check/map.rs`; what stays here is the walk over the whole file.

use std::collections::HashSet;

use toml::Spanned;

use super::raw::{OneOrMany, RawCsv, RawDef, RawMap, RawMatch};
use super::{
    ColumnRef, CsvDialect, Encoding, Field, FieldType, MapValue, Mapping, Piece, Source,
    TabularDef, Template,
};
use crate::canonical::Entity;
use crate::format::{DefFile, Diagnostics, Policy};
use crate::tabular::contract::{self, Shape};

mod field;
mod map;

use field::check_field;
use map::{check_map_section, check_sensitive_targets};

struct Checker<'a> {
    def: &'a DefFile,
    diags: &'a mut Diagnostics,
    errors: usize,
}

impl Checker<'_> {
    fn err(&mut self, span: Option<std::ops::Range<usize>>, msg: impl Into<String>) {
        let line = span.map(|s| self.def.line_at(s.start));
        self.diags.error(&self.def.path, line, msg);
        self.errors += 1;
    }
    fn err_key(&mut self, key: &str, msg: impl Into<String>) {
        let line = self.def.line_of_key(key);
        self.diags.error(&self.def.path, line, msg);
        self.errors += 1;
    }
}

fn single_byte(s: &str) -> Option<u8> {
    match s {
        "\\t" | "tab" => Some(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Some(s.as_bytes()[0]),
        _ => None,
    }
}

/// Parses a `{field}` template, naming fields through `field_index`; a name it does not know is
/// the `Err` message.
pub fn parse_template(
    text: &str,
    field_index: &dyn Fn(&str) -> Option<usize>,
) -> Result<Template, String> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(format!("unclosed '{{' in template \"{text}\""));
                }
                let name = name.trim();
                let idx = field_index(name).ok_or_else(|| {
                    format!("template \"{text}\" refers to unknown field '{name}'")
                })?;
                if !lit.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Field(idx));
            }
            '}' => return Err(format!("stray '}}' in template \"{text}\" (write '}}}}')")),
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Text(lit));
    }
    Ok(Template(pieces))
}

/// Checks one definition file; `None` if it has any error (all reported to `diags`).
pub fn check(def: &DefFile, diags: &mut Diagnostics) -> Option<TabularDef> {
    let before = diags.errors.len();
    let raw: RawDef = def.parse(diags)?;
    // Unknown keys were reported and dropped by the parse; they still fail the definition.
    let errors = diags.errors.len() - before;
    let mut c = Checker { def, diags, errors };
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty() {
        c.err(Some(raw.name.span()), "`name` is empty");
    }
    let (header, skip_rows, source) = check_source(&mut c, &raw)?;
    let (filename_globs, match_header) = check_match(&mut c, &raw.matching, header);
    let fields = check_fields(&mut c, &raw, header);
    let key = check_key(&mut c, &raw.key, &fields);
    let group_by = check_group_by(&mut c, raw.group_by.as_ref(), &fields);
    let (entity, header_map, lines_map) = check_mapping(&mut c, &raw.map, &fields);
    let policy = check_policy(&mut c, &raw);
    let identity = check_identity(&mut c, raw.identity.as_ref());

    if c.errors > 0 {
        return None;
    }
    let mut def = TabularDef {
        name,
        kind: raw.kind,
        filename_globs,
        match_header,
        source,
        header,
        skip_rows,
        fields,
        key: key?,
        group_by,
        map: Mapping {
            entity: entity?,
            header: header_map,
            lines: lines_map,
        },
        policy: policy?,
        identity,
        head_fields: Vec::new(),
    };
    def.head_fields = def.header_fields();
    Some(def)
}

/// The `kind` and its own section: whether there is a header row, how many rows to skip, and
/// how to read the file. `None` for a kind this loader does not take, as nothing after it can
/// be checked sensibly.
fn check_source(c: &mut Checker, raw: &RawDef) -> Option<(bool, u64, Source)> {
    match raw.kind.as_str() {
        "csv" => Some(check_csv_source(c, raw)),
        "sheet" => {
            if let Some(s) = &raw.csv {
                c.err(
                    Some(s.span()),
                    "[csv] belongs to kind = \"csv\"; spreadsheets use [sheet]",
                );
            }
            let d = raw.sheet.as_ref().map(|s| s.get_ref());
            Some((
                d.and_then(|d| d.header).unwrap_or(true),
                d.and_then(|d| d.skip_rows).unwrap_or(0),
                Source::Sheet(d.and_then(|d| d.sheet.clone()).unwrap_or_default()),
            ))
        }
        other => {
            c.err_key(
                "kind",
                format!("the tabular loader does not take kind '{other}'"),
            );
            None
        }
    }
}

/// A CSV file's `[csv]` section: the dialect the reader splits rows with, defaulting to
/// comma, double quote and UTF-8.
fn check_csv_source(c: &mut Checker, raw: &RawDef) -> (bool, u64, Source) {
    if let Some(s) = &raw.sheet {
        c.err(
            Some(s.span()),
            "[sheet] belongs to kind = \"sheet\"; CSV uses [csv]",
        );
    }
    let (span, d) = match &raw.csv {
        Some(s) => (Some(s.span()), Some(s.get_ref())),
        None => (None, None),
    };
    let (delimiter, quote) = check_csv_quoting(c, &span, d);
    let encoding = match d.and_then(|d| d.encoding.as_deref()) {
        None => Encoding::Utf8,
        Some(e) => Encoding::parse(e).unwrap_or_else(|msg| {
            c.err(span.clone(), msg);
            Encoding::Utf8
        }),
    };
    (
        d.and_then(|d| d.header).unwrap_or(true),
        d.and_then(|d| d.skip_rows).unwrap_or(0),
        Source::Csv(CsvDialect {
            delimiter,
            quote,
            encoding,
        }),
    )
}

/// The delimiter and quote: single bytes that differ and are not line breaks, or the reader
/// could not tell where a value or a row ends.
fn check_csv_quoting(
    c: &mut Checker,
    span: &Option<std::ops::Range<usize>>,
    d: Option<&RawCsv>,
) -> (u8, Option<u8>) {
    let delimiter = match d.and_then(|d| d.delimiter.as_deref()) {
        None => b',',
        Some(s) => single_byte(s).unwrap_or_else(|| {
            c.err(
                span.clone(),
                format!("delimiter must be one ASCII character or \"\\t\", got \"{s}\""),
            );
            b','
        }),
    };
    let quote = match d.and_then(|d| d.quote.as_deref()) {
        None => Some(b'"'),
        Some("") => None,
        Some(s) => match single_byte(s) {
            Some(q) => Some(q),
            None => {
                c.err(
                    span.clone(),
                    format!("quote must be one ASCII character or \"\", got \"{s}\""),
                );
                Some(b'"')
            }
        },
    };
    if quote == Some(delimiter) {
        c.err(span.clone(), "quote and delimiter are the same character");
    }
    if matches!(delimiter, b'\r' | b'\n') || matches!(quote, Some(b'\r' | b'\n')) {
        c.err(span.clone(), "delimiter and quote cannot be line breaks");
    }
    (delimiter, quote)
}

/// The `[match]` section: the filename globs and header columns that claim a file; without
/// either the format would never be used.
fn check_match(c: &mut Checker, m: &RawMatch, header: bool) -> (Vec<String>, Vec<String>) {
    let filename_globs = match &m.filename {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s.clone()],
        Some(OneOrMany::Many(v)) => v.clone(),
    };
    let match_header: Vec<String> = m
        .header
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.trim().to_string())
        .collect();
    if filename_globs.is_empty() && match_header.is_empty() {
        c.err_key(
            "match",
            "[match] needs `filename` glob(s) and/or `header` columns, or the format never claims a file",
        );
    }
    if !match_header.is_empty() && !header {
        c.err_key("header", "match.header needs a header row (header = true)");
    }
    (filename_globs, match_header)
}

/// Every `[[fields]]` entry, in order, with a placeholder for one that fails so the key,
/// group_by and map can still name it.
fn check_fields(c: &mut Checker, raw: &RawDef, header: bool) -> Vec<Field> {
    let mut fields = Vec::new();
    let mut seen = HashSet::new();
    if raw.fields.is_empty() {
        c.err_key("fields", "no [[fields]] defined");
    }
    for rf in &raw.fields {
        let n = rf.get_ref().name.trim().to_string();
        if !seen.insert(n.clone()) {
            c.err(Some(rf.span()), format!("field '{n}' is defined twice"));
        }
        if let Some(f) = check_field(c, rf, header, raw.kind == "sheet") {
            fields.push(f);
        } else {
            // Keep a placeholder so later references to the name are not reported twice.
            fields.push(placeholder_field(n));
        }
    }
    fields
}

/// A stand-in for a field that failed its check: it only carries the name.
fn placeholder_field(name: String) -> Field {
    Field {
        name,
        column: ColumnRef::Index(usize::MAX),
        ty: FieldType::String,
        required: false,
        sensitive: false,
        trim: true,
        min: None,
        max: None,
        exclusive_min: None,
        exclusive_max: None,
        min_length: None,
        max_length: None,
        regex: None,
        checksum: None,
    }
}

/// The record key: a template that names at least one field, or every row would share it.
fn check_key(c: &mut Checker, key: &Spanned<String>, fields: &[Field]) -> Option<Template> {
    let find = |n: &str| fields.iter().position(|f| f.name == n);
    match parse_template(key.get_ref(), &find) {
        Ok(t) if t.0.iter().any(|p| matches!(p, Piece::Field(_))) => Some(t),
        Ok(_) => {
            c.err(
                Some(key.span()),
                "key must reference at least one field, e.g. \"{order_no}\"",
            );
            None
        }
        Err(e) => {
            c.err(Some(key.span()), format!("key: {e}"));
            None
        }
    }
}

/// `group_by`, if given, must name a defined field.
fn check_group_by(
    c: &mut Checker,
    group_by: Option<&Spanned<String>>,
    fields: &[Field],
) -> Option<usize> {
    let g = group_by?;
    match fields.iter().position(|f| f.name == g.get_ref().trim()) {
        Some(i) => Some(i),
        None => {
            c.err(
                Some(g.span()),
                format!("group_by refers to unknown field '{}'", g.get_ref()),
            );
            None
        }
    }
}

/// What a `[map]` section maps: canonical field name → value.
type MapEntries = Vec<(String, MapValue)>;

/// The `[map]` table: its entity, then its header and lines sections against that entity's
/// canonical contract.
fn check_mapping(
    c: &mut Checker,
    map: &Spanned<RawMap>,
    fields: &[Field],
) -> (Option<Entity>, MapEntries, Option<MapEntries>) {
    let rm = map.get_ref();
    let entity = Entity::parse(rm.entity.get_ref());
    if entity.is_none() {
        let known: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
        c.err(
            Some(rm.entity.span()),
            format!(
                "unknown entity '{}' (known: {})",
                rm.entity.get_ref(),
                known.join(", ")
            ),
        );
    }
    let shape = entity.map(contract::shape);
    let head_allowed = shape.as_ref().map(|s| s.fields.as_slice());
    let header_map = check_map_section(c, "header", &rm.header, head_allowed, fields);
    if let Some(e) = entity {
        check_sensitive_targets(c, e, &rm.header, &header_map, fields);
    }
    let lines_map = check_lines_map(c, map, shape.as_ref(), fields);
    if let Some(s) = &shape {
        check_required_targets(c, map, s, &header_map, lines_map.as_ref());
    }
    (entity, header_map, lines_map)
}

/// `[map.lines]`: present exactly when the entity's records need lines, and checked against
/// the contract's line fields.
fn check_lines_map(
    c: &mut Checker,
    map: &Spanned<RawMap>,
    shape: Option<&Shape>,
    fields: &[Field],
) -> Option<MapEntries> {
    let rm = map.get_ref();
    match (&rm.lines, shape) {
        (None, Some(s)) if s.lines_required => {
            c.err(
                Some(map.span()),
                format!(
                    "entity '{}' needs [map.lines] (its records carry lines)",
                    rm.entity.get_ref()
                ),
            );
            None
        }
        (Some(_), Some(s)) if s.line_fields.is_none() => {
            c.err(
                Some(map.span()),
                format!(
                    "entity '{}' has no lines; remove [map.lines]",
                    rm.entity.get_ref()
                ),
            );
            None
        }
        (Some(l), s) => Some(check_map_section(
            c,
            "lines",
            l,
            s.and_then(|s| s.line_fields.as_deref()),
            fields,
        )),
        (None, _) => None,
    }
}

/// Every field the canonical contract requires, for the record and for its lines, is mapped.
fn check_required_targets(
    c: &mut Checker,
    map: &Spanned<RawMap>,
    s: &Shape,
    header_map: &MapEntries,
    lines_map: Option<&MapEntries>,
) {
    for req in &s.required {
        if !header_map.iter().any(|(t, _)| t == req) && *req != "lines" {
            c.err(
                Some(map.span()),
                format!("[map.header] must produce '{req}', required by the canonical contract"),
            );
        }
    }
    if let (Some(lm), Some(lreq)) = (lines_map, &s.line_required) {
        for req in lreq {
            if !lm.iter().any(|(t, _)| t == req) {
                c.err(
                    Some(map.span()),
                    format!("[map.lines] must produce '{req}', required by the canonical contract"),
                );
            }
        }
    }
}

/// The reject policy, and that `max_reject_ratio` is only given where it means something.
fn check_policy(c: &mut Checker, raw: &RawDef) -> Option<Policy> {
    let policy = match Policy::parse(
        raw.policy
            .as_ref()
            .map(|p| p.get_ref().as_str())
            .unwrap_or("all-or-nothing"),
        raw.max_reject_ratio,
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            c.err(raw.policy.as_ref().map(|p| p.span()), e);
            None
        }
    };
    if raw.max_reject_ratio.is_some()
        && raw.policy.as_ref().map(|p| p.get_ref().as_str()) != Some("accept-valid")
    {
        c.err_key(
            "max_reject_ratio",
            "max_reject_ratio applies only to policy = \"accept-valid\"",
        );
    }
    policy
}

/// `identity`, if given, names one of the two rules a record can be loaded under.
fn check_identity(
    c: &mut Checker,
    identity: Option<&Spanned<String>>,
) -> Option<crate::canonical::Identity> {
    identity.and_then(|i| match i.get_ref().as_str() {
        "create-once" => Some(crate::canonical::Identity::CreateOnce),
        "upsert" => Some(crate::canonical::Identity::Upsert),
        other => {
            c.err(
                Some(i.span()),
                format!(
                    "identity '{other}' is not a rule (expected \"create-once\" or \"upsert\")"
                ),
            );
            None
        }
    })
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
