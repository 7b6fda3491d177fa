//! Declarative mapping of a validated transaction set into a canonical record.
//!
//! A `[map]` in the set's definition names, per canonical field, the segment and element
//! it comes from (with qualifier pairs, conditions, code translation and date/decimal
//! conversion) and, per repeating group (PO1 lines, N1 parties, HL items of an 856), the
//! trigger segment and the segments that belong to it. The result is a [`Body`] borrowed
//! from the segments, checked by [`Record::build_body`] against the canonical contract, so
//! a map can never produce a record the sinks would not accept.

use std::borrow::Cow;
use std::collections::HashMap;

use super::defs::{FieldExpr, GroupDef, MapDef};
use super::segments::{Delims, Segment};
use crate::canonical::{Body, Record};
use crate::unit::Reason;

/// Maps a set to its record. `sender` is the trimmed ISA06 that prefixes the business key.
pub fn map_set(map: &MapDef, segs: &[Segment], d: &Delims, sender: &str) -> Result<Record, Reason> {
    let entity = map
        .entity_parsed
        .ok_or_else(|| Reason::new("x12-map", "map has no valid entity"))?;
    let ctx = Ctx {
        d,
        hl_parent: hl_index(segs),
        segs,
    };
    let key = ctx.first(&map.key, segs, None).unwrap_or_default();
    let key = crate::unit::concat(&[sender, "/", key.trim()]);
    let mut body = Vec::with_capacity(map.fields.len() + map.groups.len());
    for (name, expr) in &map.fields {
        if let Some(v) = ctx.value(expr, segs, None) {
            body.push((name.as_str(), v));
        }
    }
    for g in &map.groups {
        let items = ctx
            .blocks(g)
            .into_iter()
            .enumerate()
            .map(|(n, (start, end))| {
                let mut obj = Vec::with_capacity(g.fields.len());
                for (name, expr) in &g.fields {
                    match ctx.value(expr, &segs[start..end], Some(start)) {
                        Some(v) => obj.push((name.as_str(), v)),
                        None if expr.fallback.as_deref() == Some("position") => {
                            obj.push((name.as_str(), Body::Str(Cow::Owned((n + 1).to_string()))));
                        }
                        None => {}
                    }
                }
                Body::Map(obj)
            })
            .collect();
        // A group replaces a field of its name, as it did in a JSON object.
        body.retain(|(name, _)| *name != g.into);
        body.push((g.into.as_str(), Body::List(items)));
    }
    Record::build_body(entity, key, Body::Map(body))
}

/// The document's business key as the set states it (BEG03, BIG02, BSN02...), read even
/// when the set is rejected, so a reject row can name the document. Without the ISA06
/// prefix the record key carries; `None` when the element is empty or absent.
pub fn document_key(map: &MapDef, segs: &[Segment], d: &Delims) -> Option<String> {
    let ctx = Ctx {
        d,
        hl_parent: HashMap::new(),
        segs,
    };
    let key = ctx.first(&map.key, segs, None)?;
    let key = key.trim();
    (!key.is_empty()).then(|| crate::unit::cap_raw(key, 80))
}

struct Ctx<'a> {
    d: &'a Delims,
    segs: &'a [Segment],
    /// Index of an HL segment → index of its parent HL segment.
    hl_parent: HashMap<usize, usize>,
}

/// Links every HL to its parent through HL02 → HL01.
fn hl_index(segs: &[Segment]) -> HashMap<usize, usize> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    let mut parent = HashMap::new();
    for (i, s) in segs.iter().enumerate().filter(|(_, s)| s.is("HL")) {
        if let Some(&p) = by_id.get(s.el(2)) {
            if !s.el(2).is_empty() {
                parent.insert(i, p);
            }
        }
        by_id.insert(s.el(1), i);
    }
    parent
}

impl<'a> Ctx<'a> {
    /// The groups' blocks as ranges of `segs`: the trigger and the member segments that
    /// follow it, which are always contiguous (a list of references per block was an
    /// allocation per PO1 line).
    fn blocks(&self, g: &GroupDef) -> Vec<(usize, usize)> {
        let stop_at = g
            .before
            .as_ref()
            .and_then(|b| self.segs.iter().position(|s| s.is_named(b)))
            .unwrap_or(self.segs.len());
        let star = g.members.iter().any(|m| m.as_str() == "*");
        let mut out = Vec::new();
        for (t, seg) in self.segs.iter().enumerate().take(stop_at) {
            if !seg.is_named(&g.trigger) || !cond(g.when.as_ref(), seg) {
                continue;
            }
            let members = self.segs[t + 1..].iter().take_while(|s| {
                if star {
                    !s.is_named(&g.trigger) && !g.until.iter().any(|u| s.is_named(u))
                } else {
                    g.members.iter().any(|m| s.is_named(m))
                }
            });
            out.push((t, t + 1 + members.count()));
        }
        out
    }

    fn value<'s>(
        &self,
        e: &'s FieldExpr,
        scope: &'s [Segment],
        start: Option<usize>,
    ) -> Option<Body<'s>>
    where
        'a: 's,
    {
        if e.all {
            let mut seen: Vec<Cow<'s, str>> = Vec::new();
            for s in scope
                .iter()
                .filter(|s| s.is_named(&e.seg) && cond(e.when.as_ref(), s))
            {
                if let Some(v) = self.extract(e, s) {
                    if !seen.contains(&v) {
                        seen.push(v);
                    }
                }
            }
            return Some(Body::List(seen.into_iter().map(Body::Str).collect()));
        }
        self.first(e, scope, start).map(Body::Str)
    }

    fn first<'s>(
        &self,
        e: &'s FieldExpr,
        scope: &'s [Segment],
        start: Option<usize>,
    ) -> Option<Cow<'s, str>>
    where
        'a: 's,
    {
        let own = scope
            .iter()
            .filter(|s| s.is_named(&e.seg) && cond(e.when.as_ref(), s))
            .find_map(|s| self.extract(e, s));
        if own.is_some() || e.scope.as_deref() != Some("ancestors") {
            return own;
        }
        // Walk up the HL tree: each ancestor's block is its HL up to the next HL.
        let mut at = start?;
        for _ in 0..self.segs.len() {
            let parent = *self.hl_parent.get(&at)?;
            let block = self
                .segs
                .iter()
                .skip(parent)
                .enumerate()
                .take_while(|(i, s)| *i == 0 || !s.is("HL"));
            for (_, s) in block {
                if s.is_named(&e.seg) && cond(e.when.as_ref(), s) {
                    if let Some(v) = self.extract(e, s) {
                        return Some(v);
                    }
                }
            }
            at = parent;
        }
        None
    }

    /// The value is sliced from the segment and only copied when a conversion changes it:
    /// this runs for every field of every line a map reads.
    fn extract<'s>(&self, e: &'s FieldExpr, s: &'s Segment) -> Option<Cow<'s, str>> {
        let raw = match &e.qual {
            Some(quals) => s.el(qualified(quals, e.pairs_from.unwrap_or(1), s)? + 1),
            None => s.el(e.el),
        };
        let raw = match e.comp {
            Some(c) => raw
                .split(self.d.comp.as_char())
                .nth(c.checked_sub(1)?)
                .unwrap_or(""),
            None => raw,
        };
        let raw = crate::unit::trim(raw);
        if raw.is_empty() {
            return None;
        }
        let v = match e.conv.as_deref() {
            Some("date") => Cow::Owned(iso_date(raw)),
            Some("decimal") => decimal(raw),
            _ => Cow::Borrowed(raw),
        };
        Some(
            match e.codes.as_ref().and_then(|codes| codes.get(v.as_ref())) {
                Some(code) => Cow::Borrowed(code.as_str()),
                None => v,
            },
        )
    }
}

/// The element holding the qualifier that comes first in `quals`, at its first pair from
/// element `from` on: one pass over the pairs, not one per qualifier (a PO1's three
/// qualified fields read its pairs a dozen times).
fn qualified(quals: &[String], from: usize, s: &Segment) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for p in (from..=s.elements().len()).step_by(2) {
        let q = s.el(p);
        let Some(rank) = quals.iter().position(|x| x == q) else {
            continue;
        };
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, p));
            if rank == 0 {
                break;
            }
        }
    }
    best.map(|(_, p)| p)
}

fn cond(c: Option<&super::defs::Cond>, s: &Segment) -> bool {
    c.is_none_or(|c| c.is.iter().any(|v| v == s.el(c.el)))
}

/// CCYYMMDD or YYMMDD to ISO; anything else is returned as is for the contract to reject.
fn iso_date(v: &str) -> String {
    let digits = v.bytes().all(|b| b.is_ascii_digit());
    match (digits, v.len()) {
        (true, 8) => [&v[0..4], "-", &v[4..6], "-", &v[6..8]].concat(),
        (true, 6) => ["20", &v[0..2], "-", &v[2..4], "-", &v[4..6]].concat(),
        _ => v.to_string(),
    }
}

/// X12 R values may be `.5`, `10.` or `+3`; the contract wants a plain decimal. A value
/// that already is one (nearly every value) is borrowed as it is.
fn decimal(v: &str) -> Cow<'_, str> {
    let (neg, body) = match v.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let trimmed = body.strip_suffix('.').unwrap_or(body);
    if !trimmed.starts_with('.') {
        if trimmed.len() + usize::from(neg) == v.len() {
            return Cow::Borrowed(v);
        }
        if !neg {
            return Cow::Borrowed(trimmed);
        }
    }
    let mut out = String::with_capacity(v.len() + 2);
    if neg {
        out.push('-');
    }
    if trimmed.starts_with('.') {
        out.push('0');
    }
    out.push_str(trimmed);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value after the qualifier first in the list wins, at its first pair, as a search
    /// per qualifier in list order found it.
    #[test]
    fn a_qualified_value_is_the_one_a_search_per_qualifier_finds() {
        use crate::x12::segments::{SegmentReader, Sep};
        let d = Delims {
            elem: Sep::new('*'),
            comp: Sep::new(':'),
            term: Sep::new('~'),
            rep: None,
        };
        let per_qualifier = |quals: &[String], from: usize, s: &Segment| {
            quals.iter().find_map(|q| {
                (from..=s.elements().len())
                    .step_by(2)
                    .find(|&p| s.el(p) == q)
            })
        };
        let quals: Vec<String> = ["VN", "SK", "BP"].map(String::from).to_vec();
        let pairs = ["VN", "SK", "BP", "UP", "", "VN"];
        let mut n = 0;
        for a in pairs {
            for b in pairs {
                for c in pairs {
                    let text = format!("PO1*1*2*EA*3**{a}*x1*{b}*x2*{c}*x3*BP");
                    let seg = SegmentReader::new(text.as_bytes(), 1 << 20)
                        .read_segment(&d)
                        .unwrap()
                        .unwrap();
                    for from in [1, 6, 7] {
                        for k in 0..=quals.len() {
                            let q = &quals[..k];
                            assert_eq!(
                                qualified(q, from, &seg),
                                per_qualifier(q, from, &seg),
                                "{text} {from} {q:?}"
                            );
                            n += 1;
                        }
                    }
                }
            }
        }
        assert!(n > 2000);
    }

    #[test]
    fn dates_and_decimals_convert() {
        assert_eq!(iso_date("20240131"), "2024-01-31");
        assert_eq!(iso_date("240131"), "2024-01-31");
        assert_eq!(iso_date("2024"), "2024");
        assert_eq!(decimal(".5"), "0.5");
        assert_eq!(decimal("10."), "10");
        assert_eq!(decimal("-3"), "-3");
    }

    /// The borrowed fast path gives what building the text did, for every shape.
    #[test]
    fn decimals_borrowed_or_built_read_the_same() {
        let built = |v: &str| {
            let (neg, body) = match v.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, v.strip_prefix('+').unwrap_or(v)),
            };
            let body = body.strip_suffix('.').unwrap_or(body);
            let body = if body.starts_with('.') {
                format!("0{body}")
            } else {
                body.to_string()
            };
            if neg {
                format!("-{body}")
            } else {
                body
            }
        };
        for v in [
            "2.5",
            "+3",
            "-3",
            "10.",
            "-10.",
            ".5",
            "-.5",
            "+.5",
            "-+3",
            ".",
            "-.",
            "..5",
            "5..",
            "",
            "-",
            "+",
            "0",
            "123456.789",
        ] {
            assert_eq!(decimal(v), built(v), "{v:?}");
        }
        assert!(matches!(decimal("2.5"), Cow::Borrowed(_)));
        assert!(matches!(decimal("+3"), Cow::Borrowed("3")));
    }
}
