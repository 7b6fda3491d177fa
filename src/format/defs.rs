//! Loading the definition files under `formats/` and reporting their errors all at once.
//!
//! Every definition is a TOML file with a top-level `kind`. Files are parsed here, grouped
//! by kind and handed to the kind's loader (see [`super::registry`]), which adds its own
//! errors to the same [`Diagnostics`]: `tallyman check` prints every problem in every file
//! in one pass, each with file and line.

use std::path::{Path, PathBuf};

/// A map keyed by names a definition gives (segments, fields, IDoc types), asked with the
/// names an input uses for every segment and field it holds. foldhash hashes short keys
/// several times faster than the standard SipHash (hashing was 6.6% of an IDoc run's
/// instructions); what SipHash guards against, keys chosen to collide, needs the input
/// to insert keys, and these maps take theirs from definitions.
pub type DefMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A set of definition names; see [`DefMap`].
pub type DefSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// How many codes a message about a value outside a code list names.
const CODES_NAMED: usize = 12;

/// A code list as a message names it: its first codes in the definition's order, and `…`
/// when there are more (a dictionary's list may hold hundreds, which no reviewer reads in a
/// reject report's cell).
pub fn named_codes<'a>(mut codes: impl ExactSizeIterator<Item = &'a str>) -> String {
    let more = codes.len() > CODES_NAMED;
    let mut named: Vec<&str> = codes.by_ref().take(CODES_NAMED).collect();
    if more {
        named.push("…");
    }
    named.join(", ")
}

/// A code list's allowed input codes in the order the definition gives them (a message
/// names the first few), each with its output value, found by hash: a CSV cell was compared
/// with the codes one by one, most of an orders CSV's string comparisons (ISO 4217 has
/// 180 codes), and an X12 dictionary's lists run to hundreds (AK101 has 256).
#[derive(Debug, Clone)]
pub struct CodeTable {
    entries: Vec<(String, String)>,
    /// Entry by code (ASCII-lowercased when `ignore_case`); the first of equal codes wins,
    /// as it did in order. `None` for a short list, which a scan of a few short codes
    /// answers sooner than a hash (an X12 run checks its dictionary's two-code lists on
    /// every coded element: 0.4% of its instructions).
    index: Option<DefMap<String, usize>>,
    ignore_case: bool,
}

/// Lists up to this long are scanned.
const SCANNED_UP_TO: usize = 8;

impl CodeTable {
    pub fn new(entries: Vec<(String, String)>, ignore_case: bool) -> CodeTable {
        let index = (entries.len() > SCANNED_UP_TO).then(|| {
            let mut index = DefMap::default();
            for (i, (code, _)) in entries.iter().enumerate() {
                let key = if ignore_case {
                    code.to_ascii_lowercase()
                } else {
                    code.clone()
                };
                index.entry(key).or_insert(i);
            }
            index
        });
        CodeTable {
            entries,
            index,
            ignore_case,
        }
    }

    /// The output value for input `text`, if it is an allowed code.
    pub fn get(&self, text: &str) -> Option<&str> {
        let i = match (&self.index, self.ignore_case) {
            (Some(index), true) => index.get(&text.to_ascii_lowercase()).copied(),
            (Some(index), false) => index.get(text).copied(),
            (None, true) => self.codes().position(|c| c.eq_ignore_ascii_case(text)),
            (None, false) => self.codes().position(|c| c == text),
        };
        i.map(|i| self.entries[i].1.as_str())
    }

    /// A list of codes that stand for themselves, matched exactly (an X12 element's).
    pub fn list(codes: Vec<String>) -> CodeTable {
        CodeTable::new(codes.into_iter().map(|c| (c.clone(), c)).collect(), false)
    }

    /// Whether `text` is an allowed code.
    pub fn contains(&self, text: &str) -> bool {
        self.get(text).is_some()
    }

    /// The allowed codes, in the definition's order.
    pub fn codes(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The list as a message names it (see [`named_codes`]).
    pub fn named(&self) -> String {
        named_codes(self.codes())
    }
}

/// One problem in a config or definition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Collects every error instead of stopping at the first.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    pub errors: Vec<ConfigError>,
}

impl Diagnostics {
    pub fn error(&mut self, file: &Path, line: Option<usize>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        });
    }
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A parsed definition file.
#[derive(Debug, Clone)]
pub struct DefFile {
    pub path: PathBuf,
    pub text: String,
    pub kind: String,
    pub table: toml::Table,
}

impl DefFile {
    /// 1-based line of a byte offset in the text (for `toml::Spanned` values).
    pub fn line_at(&self, byte: usize) -> usize {
        line_at(&self.text, byte)
    }

    /// Best-effort line of a key: the first line that defines `key` (as `key =` or
    /// `[...key]`). Used for semantic errors found after deserialising.
    pub fn line_of_key(&self, key: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|l| {
                let t = l.trim_start();
                (t.starts_with(key) && t[key.len()..].trim_start().starts_with('='))
                    || (t.starts_with('[') && t.contains(key))
            })
            .map(|i| i + 1)
    }

    /// Deserialises the whole file into `T`, reporting every key `T` does not know (with
    /// its line and a did-you-mean) and then the first serde error, with its line.
    ///
    /// Unknown keys are errors, but they are removed and the parse goes on, so the caller's
    /// semantic checks still run and report theirs in the same pass. `Some` therefore does
    /// not mean "no errors": a loader that must know compares `diags.errors.len()` before
    /// and after (any error in `diags` fails the whole load anyway).
    pub fn parse<T: serde::de::DeserializeOwned>(&self, diags: &mut Diagnostics) -> Option<T> {
        let (value, errors) = super::keys::parse_lenient::<T>(&self.text);
        for (span, message) in errors {
            let line = span.map(|s| self.line_at(s.start));
            diags.error(&self.path, line, message);
        }
        value
    }
}

pub fn line_at(text: &str, byte: usize) -> usize {
    let end = byte.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Reads every `*.toml` below `dir` (sorted, recursively) and parses it. Files that fail
/// to parse or lack `kind` are reported and left out.
pub fn read_defs(dir: &Path, diags: &mut Diagnostics) -> Vec<DefFile> {
    let mut paths = Vec::new();
    collect(dir, &mut paths, diags);
    paths.sort();
    let mut out = Vec::new();
    for read in in_order_on_two_threads(&paths, read_def) {
        match read {
            Ok(def) => out.push(def),
            Err(e) => diags.errors.push(e),
        }
    }
    out
}

/// One definition file read and parsed, or why it cannot be used.
fn read_def(path: &PathBuf) -> Result<DefFile, ConfigError> {
    let fail = |line, message: String| {
        Err(ConfigError {
            file: path.clone(),
            line,
            message,
        })
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return fail(None, format!("cannot read: {e}")),
    };
    let table: toml::Table = match toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| line_at(&text, s.start));
            return fail(line, e.message().to_string());
        }
    };
    let Some(kind) = table.get("kind").and_then(|k| k.as_str()) else {
        return fail(Some(1), "missing top-level `kind = \"...\"`".into());
    };
    Ok(DefFile {
        kind: kind.to_string(),
        path: path.clone(),
        text,
        table,
    })
}

/// `f` of every item, in the items' order, on two threads, each taking the next item
/// not taken yet from the end of the list (the IDoc loader, the costliest kind, is last).
/// Loading the definitions is most of a start that finds nothing to do, and the other
/// core is idle then (an empty run here: 16.3 → 14.0 ms). A second thread refused costs
/// only time: this one then takes every item.
pub(crate) fn in_order_on_two_threads<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let taken = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let work = || loop {
        let i = taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(at) = items.len().checked_sub(i + 1) else {
            return;
        };
        let r = f(&items[at]);
        *done[at].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    };
    std::thread::scope(|s| {
        let apart = std::thread::Builder::new()
            .name("tallyman-formats".into())
            .spawn_scoped(s, work);
        work();
        if let Ok(h) = apart {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    });
    done.into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .map(|r| r.expect("every item was taken by one of the threads"))
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>, diags: &mut Diagnostics) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.error(dir, None, format!("cannot read formats directory: {e}"));
            return;
        }
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect(&p, out, diags);
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scanned or hashed, a table answers alike: with or without case, the first of equal
    /// codes winning.
    #[test]
    fn a_code_table_answers_alike_short_or_long() {
        for n in [1, 2, 8, 9, 40] {
            let mut entries: Vec<(String, String)> =
                (0..n).map(|i| (format!("c{i}"), format!("v{i}"))).collect();
            entries.push(("C0".into(), "later".into()));
            for ignore_case in [false, true] {
                let t = CodeTable::new(entries.clone(), ignore_case);
                assert_eq!(t.get("c0"), Some("v0"), "{n} {ignore_case}");
                let upper = if ignore_case {
                    Some("v0")
                } else {
                    Some("later")
                };
                assert_eq!(t.get("C0"), upper, "{n} {ignore_case}");
                assert_eq!(t.get("c99"), None);
                assert_eq!(t.get(""), None);
            }
        }
    }

    #[test]
    fn two_threads_give_every_item_once_in_order() {
        for n in 0..8usize {
            let items: Vec<usize> = (0..n).collect();
            let calls = std::sync::atomic::AtomicUsize::new(0);
            let got = in_order_on_two_threads(&items, |&i| {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Items finish out of order: the later ones are quicker.
                std::thread::sleep(std::time::Duration::from_millis(((n - i) % 3) as u64));
                i * 10
            });
            assert_eq!(got, items.iter().map(|i| i * 10).collect::<Vec<_>>());
            assert_eq!(calls.into_inner(), n);
        }
    }

    #[test]
    fn reports_every_broken_file_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "kind = \"csv\"\nx = [\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "name = \"no kind\"\n").unwrap();
        std::fs::write(dir.path().join("c.toml"), "kind = \"csv\"\n").unwrap();
        let mut d = Diagnostics::default();
        let defs = read_defs(dir.path(), &mut d);
        assert_eq!(defs.len(), 1);
        assert_eq!(d.errors.len(), 2, "{:?}", d.errors);
        assert!(d.errors.iter().all(|e| e.line.is_some()));
    }

    #[test]
    fn line_of_key_finds_assignment_and_tables() {
        let f = DefFile {
            path: "x".into(),
            text: "kind = \"csv\"\n[fields.qty]\ntype = \"decimal\"\n".into(),
            kind: "csv".into(),
            table: toml::Table::new(),
        };
        assert_eq!(f.line_of_key("type"), Some(3));
        assert_eq!(f.line_of_key("fields.qty"), Some(2));
    }
}
