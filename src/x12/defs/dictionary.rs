//! The `x12-segments` kind: the segment dictionary (each element's requirement, type,
//! length and code list, the segment's syntax notes and sensitive elements) and the small
//! notations its entries are written in. Validation (`x12::validate`) reads these types
//! for every segment, so what they hold is decided here, apart from sets and partners.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::Registry;
use crate::format::defs::CodeTable;
use crate::format::{DefFile, Diagnostics};

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
    /// An ID element's code list (see [`CodeTable::list`]).
    pub codes: Option<CodeTable>,
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

pub(super) fn load_segments(def: &DefFile, reg: &mut Registry, diags: &mut Diagnostics) {
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
        .map(|c| CodeTable::list(c.split(',').map(str::to_string).collect()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_specs_parse() {
        let e = parse_element("M ID 2/2 00,01").unwrap();
        assert!(e.required);
        assert_eq!(e.codes.as_ref().unwrap().named(), "00, 01");
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
