//! How the process's allocator (mimalloc, see `main.rs`) gives memory back to the system.
//!
//! mimalloc v3 returns emptied pages to the kernel a second after they empty. A batch
//! pipeline frees megabytes at every batch and takes them again soon after, so pages went
//! back and were faulted in again, zeroed by the kernel (`clear_page` was the hottest
//! symbol of an orders CSV run, 7% of all CPU). With five seconds the same 32 MB run takes
//! ~1,550 minor faults instead of 3,700–6,700 (and 0.2–0.3 s of system time instead of
//! 0.4–0.75 s), the same as never giving memory back — while a long-running `watch` or
//! `serve` still returns its peak once idle.

use std::os::raw::c_long;

/// `mi_option_purge_delay` in the option enum of mimalloc v3 (the default build of
/// `libmimalloc-sys`); pinned by the test below.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds an emptied page stays before it is given back.
const PURGE_DELAY_MS: c_long = 5000;

/// Sets the allocator's options; called first thing in `main`.
pub fn tune_allocator() {
    // SAFETY: mi_option_set only stores a value in mimalloc's option table; any option
    // index below `_mi_option_last` is valid, and the test checks this one's identity.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `libmimalloc-sys` upgrade that moves the option would set another one silently:
    /// the documented defaults around it tell which option sits at the index.
    #[test]
    fn the_purge_delay_option_is_where_we_set_it() {
        // SAFETY: reads of the option table.
        let get = |o| unsafe { libmimalloc_sys::mi_option_get(o) };
        assert_eq!(
            get(PURGE_DELAY),
            1000,
            "purge_delay defaults to 1000 ms in v3"
        );
        assert_eq!(
            get(PURGE_DELAY - 1),
            1,
            "deprecated eager_commit_delay (=1)"
        );
        assert_eq!(get(PURGE_DELAY + 3), 100, "os_tag (=100) three after");
        assert_eq!(get(PURGE_DELAY + 4), 32, "max_errors (=32) four after");
        assert_eq!(
            get(PURGE_DELAY + 12),
            400,
            "retry_on_oom (=400) twelve after"
        );
    }
}
