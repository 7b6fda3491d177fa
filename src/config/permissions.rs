//! `[permissions]`: the file-mode policy, written as octal strings the way `chmod` reads
//! them, and refused when it would let others read files that hold personal data.

use std::path::Path;

use serde::Deserialize;

use crate::format::Diagnostics;

/// Modes as written: octal strings, so `"0640"` reads as it does in `chmod`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPermissions {
    pub file_mode: String,
    pub dir_mode: String,
}

impl Default for RawPermissions {
    fn default() -> Self {
        RawPermissions {
            file_mode: "0640".into(),
            dir_mode: "0750".into(),
        }
    }
}

/// The file-mode policy: every file tallyman writes (outbox, reports, acks, archived and
/// rejected inputs, the ledger) gets `file_mode`, folders it creates `dir_mode`. The
/// default lets the owner write and a group (a loader, a reviewer) read, and nobody else:
/// these files hold names, addresses, bank details and raw rejected lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    pub file_mode: u32,
    pub dir_mode: u32,
}

impl Default for Permissions {
    fn default() -> Self {
        Permissions {
            file_mode: 0o640,
            dir_mode: 0o750,
        }
    }
}

/// Reads the octal modes; a mode that would let others read or anyone but the owner
/// write is refused (the files hold PII), as is a folder mode its files could not live in.
pub(super) fn parse_permissions(
    raw: &RawPermissions,
    file: &Path,
    text: &str,
    diags: &mut Diagnostics,
) -> Permissions {
    let line = |key: &str| {
        text.lines()
            .position(|l| l.trim_start().starts_with(key))
            .map(|i| i + 1)
    };
    let mut out = Permissions::default();
    for (key, value, slot) in [
        ("file_mode", &raw.file_mode, &mut out.file_mode),
        ("dir_mode", &raw.dir_mode, &mut out.dir_mode),
    ] {
        match u32::from_str_radix(value.trim_start_matches("0o"), 8) {
            Ok(m) if m > 0o777 => diags.error(
                file,
                line(key),
                format!("permissions.{key} '{value}' is not a mode (at most 0777)"),
            ),
            Ok(m) if m & 0o007 != 0 => diags.error(
                file,
                line(key),
                format!("permissions.{key} '{value}' gives access to everyone; these files hold personal data (use e.g. 0640 / 0750)"),
            ),
            Ok(m) if m & 0o600 != 0o600 && key == "file_mode" => diags.error(
                file,
                line(key),
                format!("permissions.{key} '{value}' must let the owner read and write"),
            ),
            Ok(m) if m & 0o700 != 0o700 && key == "dir_mode" => diags.error(
                file,
                line(key),
                format!("permissions.{key} '{value}' must give the owner full access"),
            ),
            Ok(m) => *slot = m,
            Err(_) => diags.error(
                file,
                line(key),
                format!("permissions.{key} '{value}' is not an octal mode like \"0640\""),
            ),
        }
    }
    out
}
