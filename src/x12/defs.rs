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
//!
//! [`Registry`], which holds all three, is here; each kind's types and loading are a
//! module of their own: `dictionary` (segments), `set` (transaction sets and their maps),
//! `structure` (the structure notation and the tree it parses into) and `partner`.

mod dictionary;
mod partner;
mod set;
mod structure;

use std::sync::Arc;

use super::segments::SegId;
use crate::format::defs::DefMap;
use crate::format::{DefFile, Diagnostics};
use dictionary::load_segments;
use partner::load_partner;
use set::load_set;

pub use dictionary::{ElType, ElementDef, SegmentDef, SyntaxNote};
pub use partner::{same_number, Atomic, PartnerDef, Unmapped, TOLERANCES};
pub use set::{Cond, FieldExpr, GroupDef, MapDef, SetDef};
pub use structure::{parse_structure, Node};

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
