//! Mapping one validated IDoc to its canonical record: the definition's paths
//! (`E1EDK03[IDDAT=012].DATUM`), conversions and lists, evaluated over a child index of the
//! IDoc's segments.
//!
//! Kept apart from validation (`eval`) because it is the only part that reads values
//! through paths: the index makes a lookup cost the children it visits, so a 100k-segment
//! IDoc maps in linear time.

use std::borrow::Cow;

use super::def::{Conv, KeyPart, MessageDef, SegPath, Step, ValueDef, CONTROL};
use super::reader::RawIdoc;
use crate::canonical::{Body, Record};
use crate::unit::Reason;

fn val<'a>(s: &super::reader::Seg<'a>, f: &str) -> &'a str {
    s.field(f).map(str::trim).unwrap_or("")
}

fn capped(v: &str) -> String {
    crate::unit::cap_raw(v, 80)
}

/// The IDoc with a child index, so path lookups cost the children they visit, not the
/// whole IDoc (a 100k-segment IDoc must not map in quadratic time). Made once per IDoc,
/// for its key and its record, and held in three lists: the children of segment `p` are
/// `kids[start[p]..start[p + 1]]`, in document order (a list per parent was an allocation
/// per segment with children, twice per IDoc).
pub(super) struct Tree<'a> {
    idoc: &'a RawIdoc,
    root: Vec<usize>,
    start: Vec<usize>,
    kids: Vec<usize>,
}

impl<'a> Tree<'a> {
    pub(super) fn new(idoc: &'a RawIdoc) -> Self {
        let n = idoc.segments.len();
        let parent_of = |i: usize| idoc.segments[i].parent.filter(|&p| p < n);
        let mut start = vec![0usize; n + 1];
        for i in 0..n {
            if let Some(p) = parent_of(i) {
                start[p + 1] += 1;
            }
        }
        for p in 0..n {
            start[p + 1] += start[p];
        }
        let (mut root, mut kids) = (Vec::new(), vec![0usize; start[n]]);
        let mut next = start.clone();
        for i in 0..n {
            match parent_of(i) {
                Some(p) => {
                    kids[next[p]] = i;
                    next[p] += 1;
                }
                None => root.push(i),
            }
        }
        Tree {
            idoc,
            root,
            start,
            kids,
        }
    }

    fn children(&self, parent: Option<usize>) -> &[usize] {
        match parent {
            None => &self.root,
            Some(p) if p + 1 < self.start.len() => &self.kids[self.start[p]..self.start[p + 1]],
            Some(_) => &[],
        }
    }
}

/// Segments matching `path` from `context` (`None` = the IDoc root; the callers take the
/// `Some`s, which every match of a step is).
fn select(t: &Tree, context: Option<usize>, path: &SegPath) -> Vec<Option<usize>> {
    let mut cur: Vec<Option<usize>> = vec![if path.absolute { None } else { context }];
    let mut next = Vec::new();
    for step in &path.steps {
        next.clear();
        for parent in &cur {
            let matching = t
                .children(*parent)
                .iter()
                .copied()
                .filter(|&i| matches_step(t, i, step));
            match step.index {
                Some(n) => next.extend(matching.skip(n - 1).take(1).map(Some)),
                None => next.extend(matching.map(Some)),
            }
        }
        std::mem::swap(&mut cur, &mut next);
        if cur.is_empty() {
            break;
        }
    }
    cur
}

/// Whether segment `i` is the step's segment and passes its filters.
fn matches_step(t: &Tree, i: usize, step: &Step) -> bool {
    let s = t.idoc.seg(i);
    s.name == step.seg.as_str()
        && step
            .filters
            .iter()
            .all(|(f, vals)| vals.iter().any(|v| v == val(&s, f)))
}

/// A value read through a path, with the segment (index in the IDoc) and field it came
/// from, so a value that fails its conversion can be blamed on its field element.
struct Read<'a> {
    value: &'a str,
    seg: usize,
    field: &'a str,
}

/// The first non-blank value a path yields.
fn read_path<'a>(t: &Tree<'a>, context: Option<usize>, path: &'a SegPath) -> Option<Read<'a>> {
    let field = path.field.as_deref()?;
    let at = |i: usize| {
        let v = val(&t.idoc.seg(i), field);
        (!v.is_empty()).then_some(Read {
            value: v,
            seg: i,
            field,
        })
    };
    match path.steps.as_slice() {
        [] => context.and_then(at),
        // One step, as nearly every path has: its matches are walked where they are, as
        // `select` would list them (two lists made for every value read).
        [step] => {
            let from = if path.absolute { None } else { context };
            let mut matching = t
                .children(from)
                .iter()
                .copied()
                .filter(|&i| matches_step(t, i, step));
            match step.index {
                Some(n) => matching.nth(n - 1).and_then(at),
                None => matching.find_map(at),
            }
        }
        _ => select(t, context, path).into_iter().flatten().find_map(at),
    }
}

/// Why an IDoc could not be mapped, and the segment and field of the offending value when
/// one value is to blame (a date that is not a date), so the reject points at it.
#[derive(Debug)]
pub struct MapError {
    pub reason: Reason,
    pub origin: Option<(usize, String)>,
}

impl From<Reason> for MapError {
    fn from(reason: Reason) -> Self {
        MapError {
            reason,
            origin: None,
        }
    }
}

/// The document's business key as the IDoc states it (the order, invoice, delivery,
/// material or customer number): the key's parts read from data segments, without the
/// control record's sender the record key adds. Read before validation, so a rejected
/// IDoc's reject rows still name it.
pub(super) fn document_key(msg: &MessageDef, t: &Tree) -> Option<String> {
    let parts: Vec<&str> = msg
        .key
        .iter()
        .filter_map(|part| match part {
            KeyPart::Path(_, p) if p.steps.first().is_some_and(|s| s.seg != CONTROL) => {
                read_path(t, None, p).map(|r| r.value)
            }
            _ => None,
        })
        .collect();
    (!parts.is_empty()).then(|| capped(&parts.join("/")))
}

/// One value converted as its definition says; `target` names it in a refusal (made only
/// then: most values pass). The value is borrowed from the IDoc or the definition unless a
/// conversion changes it: this runs for every value of every IDoc.
fn convert<'a>(
    vd: &'a ValueDef,
    raw: &'a str,
    target: &dyn Fn() -> String,
) -> Result<Option<Body<'a>>, Reason> {
    let mut v = raw;
    if vd.trim_zeros {
        let t = v.trim_start_matches('0');
        v = if t.is_empty() { "0" } else { t };
    }
    if let Some(codes) = &vd.codes {
        if let Some(c) = codes.get(v) {
            v = c;
        } else if let Some(d) = &vd.default {
            v = d;
        }
    }
    Ok(match vd.conv {
        Conv::String => Some(Body::Str(Cow::Borrowed(v))),
        Conv::Bool => Some(Body::Bool(matches!(
            v.to_ascii_lowercase().as_str(),
            "x" | "1" | "true" | "y" | "yes"
        ))),
        Conv::Decimal => {
            let v = match v.contains(' ') {
                true => Cow::Owned(v.replace(' ', "")),
                false => Cow::Borrowed(v),
            };
            let v = match v.strip_suffix('-') {
                Some(n) => Cow::Owned(format!("-{n}")),
                None => v,
            };
            if v.parse::<rust_decimal::Decimal>().is_err() {
                let target = target();
                return Err(Reason::new(
                    "type",
                    format!("{target}: '{}' is not a decimal number", capped(&v)),
                )
                .field(target)
                .value(capped(&v)));
            }
            Some(Body::Str(v))
        }
        Conv::Date => {
            if v.chars().all(|c| c == '0') {
                None
            } else if v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit()) {
                Some(Body::Str(Cow::Owned(
                    [&v[..4], "-", &v[4..6], "-", &v[6..]].concat(),
                )))
            } else {
                let target = target();
                return Err(Reason::new(
                    "type",
                    format!("{target}: '{v}' is not a date YYYYMMDD", v = capped(v)),
                )
                .field(target)
                .value(capped(v)));
            }
        }
    })
}

fn eval_value<'a>(
    t: &Tree<'a>,
    context: Option<usize>,
    vd: &'a ValueDef,
    target: &dyn Fn() -> String,
) -> Result<Option<Body<'a>>, MapError> {
    if let Some(c) = &vd.constant {
        return Ok(convert(vd, c, target)?);
    }
    // Each alternative is converted before the next is tried, so a zero date
    // (`00000000`, "no date" in SAP) falls through to the next path.
    for p in &vd.paths {
        if let Some(read) = read_path(t, context, p) {
            match convert(vd, read.value, target) {
                Ok(Some(v)) => return Ok(Some(v)),
                Ok(None) => {}
                Err(reason) => {
                    return Err(MapError {
                        reason,
                        origin: Some((read.seg, read.field.to_string())),
                    })
                }
            }
        }
    }
    match &vd.default {
        Some(d) => Ok(convert(vd, d, target)?),
        None => Ok(None),
    }
}

fn fill<'a>(
    t: &Tree<'a>,
    context: Option<usize>,
    fields: &'a [(String, ValueDef)],
    prefix: &dyn Fn() -> String,
) -> Result<Vec<(&'a str, Body<'a>)>, MapError> {
    let mut obj = Vec::with_capacity(fields.len());
    for (name, vd) in fields {
        if let Some(v) = eval_value(t, context, vd, &|| format!("{}{name}", prefix()))? {
            obj.push((name.as_str(), v));
        }
    }
    Ok(obj)
}

pub(super) fn map_record<'a>(msg: &'a MessageDef, t: &Tree<'a>) -> Result<Record, MapError> {
    let mut key = String::new();
    for part in &msg.key {
        match part {
            KeyPart::Lit(s) => key.push_str(s),
            KeyPart::Path(text, p) => match read_path(t, None, p) {
                Some(r) => key.push_str(r.value),
                None => {
                    return Err(Reason::new(
                        "business-key",
                        format!("business key part {{{text}}} is empty or missing"),
                    )
                    .field(text.clone())
                    .into())
                }
            },
        }
    }
    let mut body = fill(t, None, &msg.fields, &String::new)?;
    for list in &msg.lists {
        let mut items = Vec::new();
        for (n, i) in select(t, None, &list.from)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(vd) = &list.value {
                if let Some(v) = eval_value(t, Some(i), vd, &|| list.target.clone())? {
                    if !items.contains(&v) {
                        items.push(v);
                    }
                }
            } else {
                let prefix = || format!("{}[{n}].", list.target);
                items.push(Body::Map(fill(t, Some(i), &list.fields, &prefix)?));
            }
        }
        // A list replaces a field of its name, as it did in a JSON object.
        body.retain(|(name, _)| *name != list.target);
        body.push((list.target.as_str(), Body::List(items)));
    }
    Ok(Record::build_body(msg.entity, key, Body::Map(body))?)
}
