//! Recognising a corrections file by its name, after a person has handled it.
//!
//! The name is the only thing that survives a trip through Excel (which rewrites the
//! content), so it carries the link: `<stem>-<fingerprint12>[-a<attempt>].corrections.<ext>`.
//! People and their tools add to names — `… (2).csv` from a browser download,
//! `… - Copy.csv` from Windows, `…-fixed.csv`, `Copy of …` — and Excel may save a CSV as
//! `.xlsx`, so the rules are: the last `.corrections` in the name (any case), directly
//! after `-` and 12 hex digits (optionally `-a<attempt>`), followed by at most 64 characters
//! of anything and an extension. Renaming away the `.corrections` or the 12 hex digits
//! makes it an ordinary file again.

/// The marker between the original's fingerprint and the extension.
const MARKER: &str = ".corrections";
/// Most characters a person may add between the marker and the extension.
const MAX_ADDED: usize = 64;

/// Which decided file a corrections file corrects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectionsName {
    /// The first 12 hex digits of the original's fingerprint, lower case.
    pub fingerprint12: String,
    /// The original's attempt (`-a2` in the name), 1 when the name has none.
    pub attempt: i64,
}

/// The 12 hex digits of the original's fingerprint when `file_name` names a corrections
/// file (see the module's rules), `None` otherwise.
pub fn corrected_fingerprint_prefix(file_name: &str) -> Option<String> {
    parse_corrections_name(file_name).map(|n| n.fingerprint12)
}

/// What a corrections file's name says about the file it corrects.
pub fn parse_corrections_name(file_name: &str) -> Option<CorrectionsName> {
    let lower = file_name.to_ascii_lowercase();
    let at = lower.rfind(MARKER)?;
    if !has_extension_after(&file_name[at + MARKER.len()..]) {
        return None;
    }
    let (before, attempt) = strip_attempt(&lower[..at]);
    let hex = before.get(before.len().checked_sub(12)?..)?;
    let dash = before[..before.len() - 12].ends_with('-');
    (dash && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| CorrectionsName {
        fingerprint12: hex.to_string(),
        attempt,
    })
}

/// Whether `rest` (what follows the marker) is a few added characters and an extension.
fn has_extension_after(rest: &str) -> bool {
    let Some(dot) = rest.rfind('.') else {
        return false;
    };
    let ext = &rest[dot + 1..];
    rest[..dot].chars().count() <= MAX_ADDED
        && !rest.contains(['/', '\\'])
        && (1..=5).contains(&ext.len())
        && ext.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Splits a trailing `-a<attempt>` off the part before the marker.
fn strip_attempt(before: &str) -> (&str, i64) {
    if let Some(i) = before.rfind("-a") {
        let digits = &before[i + 2..];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = digits.parse::<i64>() {
                // A stem ending in `-a` + digits that are really hex (`-a1b2…`) never
                // reaches here: the digits must run to the marker.
                return (&before[..i], n);
            }
        }
    }
    (before, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "a7f195dbbad3";

    fn fp(name: &str) -> Option<String> {
        corrected_fingerprint_prefix(name)
    }

    #[test]
    fn recognises_the_written_name_and_what_people_do_to_it() {
        for name in [
            "orders-2026-11-02-a7f195dbbad3.corrections.csv",
            "orders-2026-11-02-a7f195dbbad3.corrections (2).csv",
            "orders-2026-11-02-a7f195dbbad3.corrections-fixed.csv",
            "orders-2026-11-02-a7f195dbbad3.corrections - Copy.csv",
            "Copy of orders-2026-11-02-a7f195dbbad3.corrections.csv",
            "orders-2026-11-02-A7F195DBBAD3.Corrections.CSV",
            "orders-2026-11-02-a7f195dbbad3.corrections.xlsx",
            "pricelist-a7f195dbbad3.corrections.fixed.by.anna.xlsx",
        ] {
            assert_eq!(fp(name).as_deref(), Some(FP), "{name}");
        }
    }

    #[test]
    fn the_attempt_is_read_and_not_mistaken_for_the_fingerprint() {
        let n = parse_corrections_name("orders-a7f195dbbad3-a2.corrections.csv").unwrap();
        assert_eq!(n.fingerprint12, FP);
        assert_eq!(n.attempt, 2);
        let n = parse_corrections_name("orders-a7f195dbbad3.corrections.csv").unwrap();
        assert_eq!(n.attempt, 1);
    }

    #[test]
    fn a_correction_of_a_correction_names_the_latest_file() {
        let name = "orders-2026-11-02-a7f195dbbad3.corrections-0123456789ab.corrections.csv";
        assert_eq!(fp(name).as_deref(), Some("0123456789ab"));
    }

    #[test]
    fn ordinary_and_mangled_names_are_not_corrections() {
        for name in [
            "orders-2026-11-02.csv",
            "orders-2026-11-02-a7f195dbbad3.rejects.csv",
            "orders-2026-11-02-a7f195dbbad3.csv",
            "orders-2026-11-02-a7f195dbbad3.corrections",
            "orders-2026-11-02a7f195dbbad3.corrections.csv",
            "orders-2026-11-02-a7f195dbbad.corrections.csv",
            "orders-2026-11-02-g7f195dbbad3.corrections.csv",
            "a7f195dbbad3.corrections.csv",
            "-a7f195dbbad3.corrections.csv.part-of-something-much-longer-than-sixty-four-characters-added-by-a-tool.csv",
            "",
            ".corrections.csv",
        ] {
            assert_eq!(fp(name), None, "{name}");
        }
    }
}
