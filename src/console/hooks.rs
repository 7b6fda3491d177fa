//! The console's two integration points with work done elsewhere: taking an uploaded
//! corrections file, and reconciling a target now. They are plain function pointers so the
//! code that owns corrections and reconciliation plugs in without the console depending on
//! it. The default upload hook saves the file into the inbox under the corrections naming
//! (`<stem>-<fingerprint12>.corrections.<ext>`), for the next run to take and link to its
//! original; there is no default reconcile hook (the dashboard then offers no button).

use anyhow::{bail, Context};

use crate::config::Config;
use crate::ledger::FileRow;
use crate::sink::FileTag;

/// Takes an uploaded corrections file for `original`: `(config, original, name as uploaded,
/// bytes)` → a sentence for the person who uploaded it.
pub type UploadFn = fn(&Config, &FileRow, &str, &[u8]) -> anyhow::Result<String>;

/// Reconciles one target now: `(config, target)` → a sentence saying what was found.
pub type ReconcileFn = fn(&Config, &str) -> anyhow::Result<String>;

#[derive(Clone, Copy)]
pub struct Hooks {
    pub upload_correction: UploadFn,
    pub reconcile: Option<ReconcileFn>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            upload_correction: save_into_inbox,
            reconcile: None,
        }
    }
}

/// The corrections name of a file: `<stem>-<fingerprint12>.corrections.<ext>`.
pub fn corrections_name(original: &FileRow, ext: &str) -> String {
    let tag = FileTag {
        fingerprint: original.fingerprint.clone(),
        attempt: original.attempt,
        name: original.name.clone(),
    };
    format!("{}.corrections.{ext}", tag.stem())
}

/// The default upload hook: writes the file into the inbox atomically (a hidden temporary
/// name, then a rename), so intake never sees half of it.
pub fn save_into_inbox(
    cfg: &Config,
    original: &FileRow,
    uploaded: &str,
    bytes: &[u8],
) -> anyhow::Result<String> {
    let ext = std::path::Path::new(uploaded)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if !matches!(ext.as_str(), "csv" | "xlsx") {
        bail!("a corrections file is a .csv or .xlsx file");
    }
    if bytes.is_empty() {
        bail!("the uploaded file is empty");
    }
    let name = corrections_name(original, &ext);
    let dest = cfg.paths.inbox.join(&name);
    crate::fsutil::write_atomic(&dest, bytes).with_context(|| format!("saving {name}"))?;
    crate::fsutil::set_mode(&dest)?;
    Ok(format!(
        "saved as {name} in the inbox; the next run takes it and applies the fixed documents"
    ))
}
