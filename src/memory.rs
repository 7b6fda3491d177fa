//! How the process's allocator (mimalloc, see `main.rs`) takes memory from the system and
//! gives it back.
//!
//! mimalloc v3 returns emptied pages to the kernel a second after they empty. A batch
//! pipeline frees megabytes at every batch and takes them again soon after, so pages went
//! back and were faulted in again, zeroed by the kernel (`clear_page` was the hottest
//! symbol of an orders CSV run, 7% of all CPU). With five seconds the same 32 MB run took
//! ~1,550 minor faults (in huge pages, then) instead of 3,700–6,700 (and 0.2–0.3 s of
//! system time instead of 0.4–0.75 s), the same as never giving memory back — while a
//! long-running `watch` or `serve` still returns its peak once idle.
//!
//! In the pipeline most memory is freed on another thread than the one that allocated it:
//! the reading thread's cells are dropped by the workers, the workers' records after their
//! batch commits. A page its thread no longer holds is, by mimalloc's default, taken back
//! only by that thread; frees into it pile up until an allocation somewhere searches for
//! it. A two-thread run of a 50 MB orders CSV spent ~80 ms more CPU than a one-thread run
//! in those paths alone (`_mi_page_free_collect`, `mi_free_try_collect_mt`,
//! `mi_abandoned_page_try_reclaim`). With `page_reclaim_on_free` the freeing thread takes
//! the page over and allocates from it next.
//!
//! Transparent huge pages are off for the process. mimalloc asks for them on its arena, and
//! a huge page the kernel has to find whole is slow to fault in where free memory was
//! handed back to a hypervisor, as on this project's machines: touching 100 MB took 330–730
//! ms when the 2 MB pages were not fresh from another process and 12 ms when they were,
//! against a steady 40–65 ms in 4 KiB pages. A run started by a timer finds them cold:
//! after 7 s idle, a 100 MB orders CSV took 3.18–3.37 s with huge pages (1.2–1.4 s of it
//! system time) and 2.79–3.01 s without (0.4 s); a 50 MB IDoc file, whose reading thread
//! first-touches most of the heap, 0.93–1.10 s against 0.71–0.80 s.

use std::os::raw::c_long;

/// `mi_option_purge_delay` in the option enum of mimalloc v3 (the default build of
/// `libmimalloc-sys`); pinned by the test below.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds an emptied page stays before it is given back.
const PURGE_DELAY_MS: c_long = 5000;

/// `mi_option_page_reclaim_on_free` in the same enum; pinned by the test below.
const PAGE_RECLAIM_ON_FREE: libmimalloc_sys::mi_option_t = 35;

/// A thread that frees into a page no thread holds takes the page over, whichever thread
/// made it (mimalloc's default, 0, takes over only its own).
const RECLAIM_ANY: c_long = 1;

/// Sets the allocator's options; called first thing in `main`.
pub fn tune_allocator() {
    // SAFETY: mi_option_set only stores a value in mimalloc's option table; any option
    // index below `_mi_option_last` is valid, and the test checks this one's identity.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
    // SAFETY: as above; the test checks this index too.
    unsafe { libmimalloc_sys::mi_option_set(PAGE_RECLAIM_ON_FREE, RECLAIM_ANY) }
}

/// Turns transparent huge pages off for the process (see the module's doc). The binary
/// calls it from a constructor, before the Rust runtime's first allocation takes
/// mimalloc's first arena: called from `main`, it came after every process had faulted in
/// 4 MiB of huge pages. An empty `run` two idle seconds after the last took 13.1 ms with
/// them and 12.8 ms without (means of twelve), the slowest 21.7 ms against 16.6.
pub fn no_huge_pages() {
    // mimalloc's own `allow_thp` option is read when it starts, before `main`; the process
    // flag is asked at every fault, so it takes effect from the first fault after it. It
    // fails only on kernels older than 3.15, which then keep huge pages.
    #[cfg(target_os = "linux")]
    // SAFETY: a plain system call that sets a flag of the calling process; no memory is
    // passed.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process flag is what turns them off: mimalloc's own option is read before
    /// `main`, too early to be set from there.
    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_turned_off() {
        no_huge_pages();
        // SAFETY: reads the calling process's flag.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) },
            1
        );
    }

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

    #[test]
    fn the_page_reclaim_option_is_where_we_set_it() {
        // SAFETY: reads of the option table.
        let get = |o| unsafe { libmimalloc_sys::mi_option_get(o) };
        assert_eq!(
            get(PAGE_RECLAIM_ON_FREE - 1),
            10000,
            "generic_collect (=10000) before"
        );
        assert_eq!(
            get(PAGE_RECLAIM_ON_FREE),
            0,
            "page_reclaim_on_free defaults to 0"
        );
        assert_eq!(
            get(PAGE_RECLAIM_ON_FREE + 1),
            2,
            "page_full_retain (=2) after"
        );
        assert_eq!(
            get(PAGE_RECLAIM_ON_FREE + 2),
            4,
            "page_max_candidates (=4) two after"
        );
    }
}
