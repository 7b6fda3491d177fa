//! Standard output for commands, tolerant of a reader that goes away.
//!
//! `tallyman rejects | head -1` closes the pipe after one line; `println!` then panics
//! (exit 101). Output here goes through [`say!`]: a closed pipe ends the output quietly and
//! [`closed`] tells long listings to stop, while the work itself (a `run` piped into
//! `head`) carries on undisturbed.
//!
//! [`say!`]: crate::say

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line to stdout; after the reader went away, writes nothing.
pub fn line(args: std::fmt::Arguments) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|_| out.write_all(b"\n"));
    if result.is_err() {
        // A closed pipe, or a full disk behind a redirect: nobody reads further lines.
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Writes text as it is (no newline added).
pub fn text(s: &str) {
    if CLOSED.load(Ordering::Relaxed) || s.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out.write_all(s.as_bytes()).is_err() {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

pub fn flush() {
    if std::io::stdout().flush().is_err() {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Whether the reader of stdout went away.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// `println!` for commands, without the panic on a closed pipe.
#[macro_export]
macro_rules! say {
    () => { $crate::out::line(format_args!("")) };
    ($($t:tt)*) => { $crate::out::line(format_args!($($t)*)) };
}
