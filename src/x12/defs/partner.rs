//! The `x12-partner` kind: what one sender (matched by ISA06, or `*`) is allowed and asks
//! for: tolerated defects, the unit of atomicity, what to do with sets that have no
//! definition, and acknowledgement options. Kept apart because these settings steer the
//! envelope and the job, not the checking of segments.

use serde::Deserialize;

use crate::format::{DefFile, Diagnostics, Policy};

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
    /// [`Registry::partner`](super::Registry::partner)).
    pub unmapped: Option<Unmapped>,
}

impl PartnerDef {
    pub fn tolerates(&self, name: &str) -> bool {
        self.tolerate.iter().any(|t| t == name)
    }

    /// The setting for sets without a definition, once
    /// [`Registry::partner`](super::Registry::partner) resolved it.
    pub fn unmapped(&self) -> Unmapped {
        self.unmapped.unwrap_or_default()
    }
}

pub(super) fn load_partner(def: &DefFile, diags: &mut Diagnostics) -> Option<PartnerDef> {
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
