//! The one list of format kinds. A new kind is a module plus one line here.

use std::sync::Arc;

use super::{DefFile, Diagnostics, Format};

/// Builds the formats of one kind from all definition files of that kind. Errors go to
/// `diags` (with file and line); a definition with errors yields no format.
pub type LoadFn = fn(&[&DefFile], &mut Diagnostics) -> Vec<Arc<dyn Format>>;

pub struct KindLoader {
    /// The `kind = "..."` values this loader takes.
    pub kinds: &'static [&'static str],
    pub load: LoadFn,
}

pub static KINDS: &[KindLoader] = &[
    KindLoader {
        kinds: &["csv", "sheet"],
        load: crate::tabular::load,
    },
    KindLoader {
        kinds: &["x12-transaction-set", "x12-segments", "x12-partner"],
        load: crate::x12::load,
    },
    KindLoader {
        kinds: &["idoc-type"],
        load: crate::idoc::load,
    },
];

/// Loads every definition under `dir` into a [`super::FormatSet`], reporting all errors.
pub fn load_formats(dir: &std::path::Path, diags: &mut Diagnostics) -> super::FormatSet {
    let defs = super::defs::read_defs(dir, diags);
    let mut set = super::FormatSet::default();
    for def in &defs {
        if !KINDS.iter().any(|k| k.kinds.contains(&def.kind.as_str())) {
            let known: Vec<&str> = KINDS.iter().flat_map(|k| k.kinds.iter().copied()).collect();
            diags.error(
                &def.path,
                def.line_of_key("kind"),
                format!("unknown kind '{}' (known: {})", def.kind, known.join(", ")),
            );
        }
    }
    // Each kind's formats built apart, their errors reported in this list's order.
    let built = super::defs::in_order_on_two_threads(KINDS, |loader| {
        let mine: Vec<&DefFile> = defs
            .iter()
            .filter(|d| loader.kinds.contains(&d.kind.as_str()))
            .collect();
        let mut found = Diagnostics::default();
        let formats = match mine.is_empty() {
            true => Vec::new(),
            false => (loader.load)(&mine, &mut found),
        };
        (formats, found)
    });
    for (formats, found) in built {
        set.formats.extend(formats);
        diags.errors.extend(found.errors);
    }
    let mut seen = std::collections::HashSet::new();
    for f in &set.formats {
        if !seen.insert(f.name().to_string()) {
            diags.error(dir, None, format!("two formats are named '{}'", f.name()));
        }
    }
    set
}
