//! The one-pass semantic check that turns a parsed definition into a [`TabularDef`].
//!
//! After parsing, every cross-reference (key template, group_by, map values, code
//! lists, regexes, date patterns, canonical contract fields) is checked and *every* problem
//! is reported with its file and line, so `tallyman check` shows a partner layout's whole
//! list of mistakes at once. A field's own settings are checked in `check/field.rs`, the
//! `[map]` sections in `check/map.rs`; what stays here is the walk over the whole file.

use std::collections::HashSet;

use super::raw::{OneOrMany, RawDef};
use super::{
    ColumnRef, CsvDialect, Encoding, Field, FieldType, Mapping, Piece, Source, TabularDef, Template,
};
use crate::canonical::Entity;
use crate::format::{DefFile, Diagnostics, Policy};
use crate::tabular::contract;

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

    let (header, skip_rows, source) = match raw.kind.as_str() {
        "csv" => {
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
        "sheet" => {
            if let Some(s) = &raw.csv {
                c.err(
                    Some(s.span()),
                    "[csv] belongs to kind = \"csv\"; spreadsheets use [sheet]",
                );
            }
            let d = raw.sheet.as_ref().map(|s| s.get_ref());
            (
                d.and_then(|d| d.header).unwrap_or(true),
                d.and_then(|d| d.skip_rows).unwrap_or(0),
                Source::Sheet(d.and_then(|d| d.sheet.clone()).unwrap_or_default()),
            )
        }
        other => {
            c.err_key(
                "kind",
                format!("the tabular loader does not take kind '{other}'"),
            );
            return None;
        }
    };

    let filename_globs = match &raw.matching.filename {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s.clone()],
        Some(OneOrMany::Many(v)) => v.clone(),
    };
    let match_header: Vec<String> = raw
        .matching
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

    // Fields.
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
        if let Some(f) = check_field(&mut c, rf, header, raw.kind == "sheet") {
            fields.push(f);
        } else {
            // Keep a placeholder so later references to the name are not reported twice.
            fields.push(Field {
                name: n,
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
            });
        }
    }

    let find = |n: &str| fields.iter().position(|f| f.name == n);
    let key = match parse_template(raw.key.get_ref(), &find) {
        Ok(t) if t.0.iter().any(|p| matches!(p, Piece::Field(_))) => Some(t),
        Ok(_) => {
            c.err(
                Some(raw.key.span()),
                "key must reference at least one field, e.g. \"{order_no}\"",
            );
            None
        }
        Err(e) => {
            c.err(Some(raw.key.span()), format!("key: {e}"));
            None
        }
    };
    let group_by = match &raw.group_by {
        None => None,
        Some(g) => match find(g.get_ref().trim()) {
            Some(i) => Some(i),
            None => {
                c.err(
                    Some(g.span()),
                    format!("group_by refers to unknown field '{}'", g.get_ref()),
                );
                None
            }
        },
    };

    // Map.
    let rm = raw.map.get_ref();
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
    let header_map = check_map_section(&mut c, "header", &rm.header, head_allowed, &fields);
    if let Some(e) = entity {
        check_sensitive_targets(&mut c, e, &rm.header, &header_map, &fields);
    }
    let lines_map = match (&rm.lines, &shape) {
        (None, Some(s)) if s.lines_required => {
            c.err(
                Some(raw.map.span()),
                format!(
                    "entity '{}' needs [map.lines] (its records carry lines)",
                    rm.entity.get_ref()
                ),
            );
            None
        }
        (Some(_), Some(s)) if s.line_fields.is_none() => {
            c.err(
                Some(raw.map.span()),
                format!(
                    "entity '{}' has no lines; remove [map.lines]",
                    rm.entity.get_ref()
                ),
            );
            None
        }
        (Some(l), s) => Some(check_map_section(
            &mut c,
            "lines",
            l,
            s.as_ref().and_then(|s| s.line_fields.as_deref()),
            &fields,
        )),
        (None, _) => None,
    };
    if let Some(s) = &shape {
        for req in &s.required {
            if !header_map.iter().any(|(t, _)| t == req) && *req != "lines" {
                c.err(
                    Some(raw.map.span()),
                    format!(
                        "[map.header] must produce '{req}', required by the canonical contract"
                    ),
                );
            }
        }
        if let (Some(lm), Some(lreq)) = (&lines_map, &s.line_required) {
            for req in lreq {
                if !lm.iter().any(|(t, _)| t == req) {
                    c.err(
                        Some(raw.map.span()),
                        format!(
                            "[map.lines] must produce '{req}', required by the canonical contract"
                        ),
                    );
                }
            }
        }
    }

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
    let _ = raw.description;
    let identity = raw
        .identity
        .as_ref()
        .and_then(|i| match i.get_ref().as_str() {
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
        });

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

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
