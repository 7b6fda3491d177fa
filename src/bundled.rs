//! The format definitions and sample inputs compiled into the binary (see `build.rs`):
//! the embedded default that `init` and `demo` lay out.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

use std::path::Path;

/// Writes every bundled file of `files` under `dir`, leaving existing files alone.
/// Returns how many were written.
pub fn lay_out(files: &[(&str, &[u8])], dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for (rel, bytes) in files {
        let path = dir.join(rel);
        if path.exists() {
            continue;
        }
        crate::fsutil::write_atomic(&path, bytes)?;
        n += 1;
    }
    Ok(n)
}
