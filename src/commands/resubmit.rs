//! `tallyman resubmit FILE [--of ORIGINAL]`: a fixed corrections file back into the inbox,
//! under the name that links it to the file it corrects, as an audited action.

use std::path::Path;

use anyhow::Result;

use super::{open_ledger_with_config, EXIT_FAILED, EXIT_OK, EXIT_REVIEW};
use crate::display;
use crate::review::corrections::parse_corrections_name;
use crate::say;

pub fn resubmit(
    config_path: &Path,
    file: &Path,
    of: Option<&str>,
    reason: Option<&str>,
) -> Result<i32> {
    let (ledger, cfg) = match open_ledger_with_config(config_path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            crate::complain!("cannot read {}: {e}", file.display());
            return Ok(EXIT_FAILED);
        }
    };
    let name = file
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let needle = match (of, parse_corrections_name(&name)) {
        (Some(o), _) => o.to_string(),
        (None, Some(n)) => n.fingerprint12,
        (None, None) => {
            crate::complain!(
                "{} is not named as a corrections file; say which file it corrects with --of",
                display::name(&name)
            );
            return Ok(EXIT_FAILED);
        }
    };
    let Some(original) = ledger
        .find_files(&needle)?
        .into_iter()
        .find(|f| f.state == crate::ledger::FileState::Done)
    else {
        crate::complain!(
            "no decided file in the ledger matches '{}'",
            display::name(&needle)
        );
        return Ok(EXIT_REVIEW);
    };
    let saved = crate::console::save_into_inbox(&cfg, &original, &name, &bytes)?;
    ledger.audit(
        &super::actor(),
        "resubmit",
        reason,
        Some(&original.name),
        &serde_json::json!({"file": file.display().to_string(), "corrects": original.id}),
    )?;
    say!("{saved}");
    Ok(EXIT_OK)
}
