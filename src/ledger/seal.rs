//! Whether a start may trust the ledger's file without reading every page of it.
//!
//! `PRAGMA quick_check` at every start reads the whole database: ~50 ms for the ledger of
//! a 50 MB file, seconds for a ledger of a few gigabytes, paid again by every timer run
//! and by every resume after a kill. Yet in WAL mode a killed process cannot damage the
//! database file: SQLite writes it only in a checkpoint, after the frames are safe in the
//! WAL, and a checkpoint cut short is done again from the WAL. What can damage it is the
//! machine going down under a disk that lied about its writes, or something other than
//! SQLite writing into the file (a copy over it, a tool, a stray `dd`).
//!
//! So after every checkpoint tallyman makes, and after every check that passes, it writes
//! a seal beside the database (`<ledger>-seal`): the boot it happened in and what the
//! file's metadata said right after — device, inode, size, and a modification time it set
//! itself to the precise clock. A start whose seal still matches (same boot, file untouched
//! since) skips the check; a reboot, any foreign write (which sets the modification time
//! from the kernel's coarse clock, never the value the seal holds) or a missing seal each
//! make the next start check. A seal is only carried forward from a seal that still held:
//! a checkpoint over a file changed behind tallyman's back leaves the seal stale, so that
//! change is checked, not blessed.
//!
//! A checkpoint killed halfway leaves the file changed and unsealed, and it is no damage
//! either: what it wrote are pages still in the WAL, which readers take from there and the
//! next checkpoint writes again. A kill lands in one now and then (2 of 17 kills of a
//! 50 MB orders run at 90% here), and the check it cost was the longest part of that
//! resume (~60 ms for the file's 13 MB ledger, seconds for a large one). So before
//! a checkpoint over a sealed file, the seal is rewritten with a second line saying one
//! began, and when; a start in the same boot that finds the file's inode unchanged and
//! its last change within [`CHECKPOINT_WINDOW`] of that beginning takes the changes for
//! the checkpoint's. A write by anything else after the window is still noticed; one
//! inside it, in the same seconds as a kill, is the case left to the daily check. A
//! checkpoint that fails puts the seal back if the file is as it said (nothing written:
//! another checkpoint was under way), and removes it otherwise: an I/O error is checked;
//! a seal another connection wrote since is left to it. A read-only connection neither
//! checkpoints nor touches the seal.
//!
//! SQLite's automatic checkpoint is replaced by the same checkpoint made from the WAL hook
//! (SQLite's own default hook does exactly this, at the same 1,000 frames), followed by
//! the seal; a closing `Ledger` checkpoints and seals before SQLite's close-time
//! checkpoint, which then finds nothing to copy.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::ffi;

/// The WAL size, in frames, at which a commit checkpoints (SQLite's default).
const CHECKPOINT_FRAMES: c_int = 1000;

/// How long after a checkpoint began its writes may still be changing the file: 1,000
/// frames (~4 MB) and two syncs take tens of milliseconds here. A file last changed later
/// than this after the seal's beginning is checked.
const CHECKPOINT_WINDOW: Duration = Duration::from_secs(10);

/// The seal's second line while a checkpoint runs: `checkpoint since=<secs>.<nanos>`.
const BEGUN: &str = "checkpoint since=";

/// The seal's file: the database's name with `-seal`, as SQLite names its `-wal`.
fn seal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-seal");
    PathBuf::from(p)
}

/// This boot's id (Linux); none elsewhere, where every start checks.
fn boot_id() -> Option<&'static str> {
    static BOOT: OnceLock<Option<String>> = OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// The start of a seal's line: the boot and which file (device and inode), what a
/// checkpoint cut short must still match (see [`cut_short`]).
fn which_file(boot: &str, m: &std::fs::Metadata) -> String {
    format!(
        "tallyman-seal 1 boot={boot} dev={} ino={} ",
        m.dev(),
        m.ino()
    )
}

/// What a seal records: the boot and the database file's metadata.
fn describe(boot: &str, m: &std::fs::Metadata) -> String {
    format!(
        "{}size={} mtime={}.{:09} ctime={}.{:09}\n",
        which_file(boot, m),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

/// Whether the database file is as tallyman last left it, in this boot.
pub(super) fn intact(db: &Path) -> bool {
    let Some(boot) = boot_id() else {
        return false;
    };
    let (Ok(sealed), Ok(m)) = (
        std::fs::read_to_string(seal_path(db)),
        std::fs::metadata(db),
    ) else {
        return false;
    };
    sealed == describe(boot, &m) || cut_short(&sealed, boot, &m)
}

/// Whether `sealed` says a checkpoint began over the file as it was sealed, in this boot,
/// and the file (the same inode) has not changed since that checkpoint's window.
fn cut_short(sealed: &str, boot: &str, m: &std::fs::Metadata) -> bool {
    let Some((state, begun)) = sealed.split_once('\n') else {
        return false;
    };
    let Some(since) = begun
        .strip_prefix(BEGUN)
        .and_then(|t| t.strip_suffix('\n'))
        .and_then(parse_time)
    else {
        return false;
    };
    let changed = Duration::new(
        m.ctime().max(0) as u64,
        m.ctime_nsec().clamp(0, 999_999_999) as u32,
    );
    state.starts_with(&which_file(boot, m))
        && since
            .checked_add(CHECKPOINT_WINDOW)
            .is_some_and(|end| changed <= end)
}

/// `<secs>.<nanos>` (nine digits) as the time since the epoch.
fn parse_time(t: &str) -> Option<Duration> {
    let (secs, nanos) = t.split_once('.')?;
    let nanos: u32 = nanos.parse().ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(secs.parse().ok()?, nanos))
}

/// A seal rewritten with the beginning of a checkpoint: the seal's line of the file as it
/// was, and the whole text written.
struct Begun {
    state: String,
    text: String,
}

/// Rewrites the seal of a file it still holds for with the beginning of a checkpoint (see
/// the module's notes), which then excuses the checkpoint's writes. `None` if it could not
/// be written: the old seal then no longer matches once the checkpoint writes.
fn begin_checkpoint(db: &Path, boot: &str, at: Duration) -> Option<Begun> {
    let state = describe(boot, &std::fs::metadata(db).ok()?);
    let text = format!("{state}{BEGUN}{}.{:09}\n", at.as_secs(), at.subsec_nanos());
    crate::fsutil::write_unsynced_with(&seal_path(db), |f| f.write_all(text.as_bytes())).ok()?;
    Some(Begun { state, text })
}

/// Records the database file as it is now as tallyman's own. Only for a file that was
/// checked, or was intact before tallyman's own checkpoint changed it. Failing to seal
/// leaves the last seal, which no longer matches: the next start checks.
pub(super) fn seal(db: &Path) {
    let Some(boot) = boot_id() else {
        return;
    };
    if !stamp_now(db) {
        return;
    }
    let Ok(m) = std::fs::metadata(db) else {
        return;
    };
    let line = describe(boot, &m);
    let written =
        crate::fsutil::write_unsynced_with(&seal_path(db), |f| f.write_all(line.as_bytes()));
    if written.is_err() {
        let _ = std::fs::remove_file(seal_path(db));
    }
}

/// Sets the file's modification time to the precise clock, by name: opening the database
/// file and closing it again would drop every POSIX lock SQLite holds on it in this
/// process.
fn stamp_now(db: &Path) -> bool {
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(db.as_os_str().as_bytes()) else {
        return false;
    };
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: now.as_secs() as libc::time_t,
            tv_nsec: now.subsec_nanos() as libc::c_long,
        },
    ];
    // SAFETY: a NUL-terminated path and two timespecs, as utimensat takes them.
    unsafe { libc::utimensat(libc::AT_FDCWD, name.as_ptr(), times.as_ptr(), 0) == 0 }
}

/// Makes SQLite's automatic checkpoint through [`after_commit`], which seals after it.
pub(super) fn checkpoint_from_hook(c: &rusqlite::Connection) {
    // SAFETY: the connection's own handle; the hook takes no client data and replaces
    // SQLite's default automatic-checkpoint hook, which it does the work of.
    unsafe {
        ffi::sqlite3_wal_hook(c.handle(), Some(after_commit), std::ptr::null_mut());
    }
}

/// Checkpoints a closing connection's WAL and seals the file, before SQLite's close.
pub(super) fn checkpoint_on_close(c: &rusqlite::Connection) {
    // SAFETY: the connection's own handle, still open; "main" is its database.
    unsafe { checkpoint_keeping_seal(c.handle(), c"main".as_ptr()) }
}

/// SQLite's WAL hook, called after every commit with the WAL's size in frames.
unsafe extern "C" fn after_commit(
    _: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    frames: c_int,
) -> c_int {
    if frames >= CHECKPOINT_FRAMES {
        // Nothing may unwind into SQLite; a seal not written only costs a check.
        let _ = std::panic::catch_unwind(|| {
            // SAFETY: the handle and name SQLite passed to its own hook.
            unsafe { checkpoint_keeping_seal(db, name) }
        });
    }
    ffi::SQLITE_OK
}

/// A passive checkpoint (SQLite's automatic one); the seal carried forward if it held.
unsafe fn checkpoint_keeping_seal(db: *mut ffi::sqlite3, name: *const c_char) {
    // SAFETY: an open handle and the name of one of its databases (the callers').
    let file = unsafe { ffi::sqlite3_db_filename(db, name) };
    // A temporary or in-memory database has an empty name: no file, no seal.
    let path = (!file.is_null())
        .then(|| {
            // SAFETY: SQLite's own NUL-terminated file name, valid while the handle is open.
            let bytes = unsafe { CStr::from_ptr(file) }.to_bytes();
            PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
        })
        .filter(|p| !p.as_os_str().is_empty());
    // A read-only connection cannot checkpoint, and writes nothing beside the file.
    // SAFETY: as above.
    let writable = unsafe { ffi::sqlite3_db_readonly(db, name) } == 0;
    let held = path.as_deref().filter(|p| writable && intact(p));
    let begun = match (
        held,
        boot_id(),
        SystemTime::now().duration_since(UNIX_EPOCH),
    ) {
        (Some(p), Some(boot), Ok(now)) => begin_checkpoint(p, boot, now),
        _ => None,
    };
    // SAFETY: as above.
    let rc = unsafe { ffi::sqlite3_wal_checkpoint(db, name) };
    if let Some(p) = held {
        end_checkpoint(p, rc, begun.as_ref());
    }
}

/// Seals the file after a checkpoint that began over a sealed one. After one that failed,
/// the beginning it wrote must not excuse what an I/O error may have left: the seal is put
/// back as it was if the file is as it said (nothing written: another checkpoint was under
/// way), and removed otherwise, so that the next start checks. A seal another connection
/// wrote since (its own checkpoint's, which made this one busy) is left to it.
fn end_checkpoint(db: &Path, rc: c_int, begun: Option<&Begun>) {
    if rc == ffi::SQLITE_OK {
        return seal(db);
    }
    let Some(begun) = begun else {
        return;
    };
    if std::fs::read_to_string(seal_path(db)).ok().as_deref() != Some(begun.text.as_str()) {
        return;
    }
    let unchanged = match (boot_id(), std::fs::metadata(db)) {
        (Some(boot), Ok(m)) => describe(boot, &m) == begun.state,
        _ => false,
    };
    let restored = unchanged
        && crate::fsutil::write_unsynced_with(&seal_path(db), |f| {
            f.write_all(begun.state.as_bytes())
        })
        .is_ok();
    if !restored {
        let _ = std::fs::remove_file(seal_path(db));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_file() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.sqlite");
        std::fs::write(&p, b"pages").unwrap();
        (d, p)
    }

    #[test]
    fn a_sealed_file_is_intact_until_something_writes_it() {
        let (_d, p) = sqlite_file();
        assert!(!intact(&p), "no seal yet");
        seal(&p);
        assert!(intact(&p));
        // Written right after the seal, within the same tick of the coarse clock, with
        // the same size: the modification time the seal set is not the kernel's.
        std::fs::write(&p, b"PAGES").unwrap();
        assert!(!intact(&p));
        seal(&p);
        assert!(intact(&p));
    }

    #[test]
    fn a_seal_of_another_boot_or_file_does_not_hold() {
        let (_d, p) = sqlite_file();
        seal(&p);
        let text = std::fs::read_to_string(seal_path(&p)).unwrap();
        let other = text.replace("boot=", "boot=x");
        std::fs::write(seal_path(&p), other).unwrap();
        assert!(!intact(&p));
        seal(&p);
        // The file replaced by a copy of itself (a restore): another inode.
        let copy = p.with_extension("copy");
        std::fs::copy(&p, &copy).unwrap();
        std::fs::rename(&copy, &p).unwrap();
        assert!(!intact(&p));
    }

    fn now() -> Duration {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
    }

    /// The kernel's change time moves with its coarse clock, a tick behind the precise one.
    fn next_tick() {
        std::thread::sleep(Duration::from_millis(20));
    }

    #[test]
    fn a_checkpoint_cut_short_in_this_boot_keeps_the_seal() {
        let (_d, p) = sqlite_file();
        seal(&p);
        let boot = boot_id().expect("Linux has a boot id");
        assert!(begin_checkpoint(&p, boot, now()).is_some());
        assert!(intact(&p), "a begun checkpoint has written nothing yet");
        // The checkpoint's writes, then the process killed before it sealed.
        next_tick();
        std::fs::write(&p, b"pages and more pages").unwrap();
        assert!(intact(&p), "its writes are excused");
        // The next checkpoint begins over the file as it is, and seals it whole.
        let begun = begin_checkpoint(&p, boot, now());
        end_checkpoint(&p, ffi::SQLITE_OK, begun.as_ref());
        let text = std::fs::read_to_string(seal_path(&p)).unwrap();
        assert!(!text.contains(BEGUN), "{text}");
        assert!(intact(&p));
    }

    #[test]
    fn a_write_after_the_checkpoints_window_or_another_boot_or_file_is_checked() {
        let (_d, p) = sqlite_file();
        seal(&p);
        let boot = boot_id().unwrap();
        // Begun long enough ago that this write is past its window.
        assert!(begin_checkpoint(&p, boot, now() - 2 * CHECKPOINT_WINDOW).is_some());
        next_tick();
        std::fs::write(&p, b"PAGES").unwrap();
        assert!(!intact(&p), "a write after the window");

        seal(&p);
        assert!(begin_checkpoint(&p, "another-boot", now()).is_some());
        std::fs::write(&p, b"pages").unwrap();
        assert!(!intact(&p), "a checkpoint of another boot");

        seal(&p);
        assert!(begin_checkpoint(&p, boot, now()).is_some());
        let copy = p.with_extension("copy");
        std::fs::copy(&p, &copy).unwrap();
        std::fs::rename(&copy, &p).unwrap();
        assert!(!intact(&p), "another inode: a restored copy");

        // Damaged or absurd beginnings are no beginning, and never a panic.
        for begun in [
            "",
            "checkpoint since=",
            "checkpoint since=1.2",
            "checkpoint since=x.000000000",
            "checkpoint since=18446744073709551615.999999999",
        ] {
            seal(&p);
            let sealed = std::fs::read_to_string(seal_path(&p)).unwrap();
            std::fs::write(seal_path(&p), format!("{sealed}{begun}\n")).unwrap();
            next_tick();
            std::fs::write(&p, b"PAGES").unwrap();
            assert!(!intact(&p), "{begun:?}");
        }
    }

    #[test]
    fn a_failed_checkpoint_keeps_the_seal_only_if_it_wrote_nothing() {
        let (_d, p) = sqlite_file();
        let boot = boot_id().unwrap();
        // Another checkpoint under way: nothing written, the seal as it was.
        seal(&p);
        let sealed = std::fs::read_to_string(seal_path(&p)).unwrap();
        let begun = begin_checkpoint(&p, boot, now());
        end_checkpoint(&p, ffi::SQLITE_BUSY, begun.as_ref());
        assert_eq!(std::fs::read_to_string(seal_path(&p)).unwrap(), sealed);
        assert!(intact(&p));
        // An I/O error after writes: checked at the next start.
        let begun = begin_checkpoint(&p, boot, now());
        next_tick();
        std::fs::write(&p, b"half written").unwrap();
        end_checkpoint(&p, ffi::SQLITE_IOERR, begun.as_ref());
        assert!(!seal_path(&p).exists());
        assert!(!intact(&p));
    }

    #[test]
    fn a_busy_checkpoint_leaves_the_seal_another_connection_wrote_since() {
        let (_d, p) = sqlite_file();
        let boot = boot_id().unwrap();
        seal(&p);
        let begun = begin_checkpoint(&p, boot, now());
        // The other connection's checkpoint, which made this one busy: it began, wrote
        // and sealed the file as it left it.
        let theirs = begin_checkpoint(&p, boot, now());
        next_tick();
        std::fs::write(&p, b"their pages").unwrap();
        end_checkpoint(&p, ffi::SQLITE_OK, theirs.as_ref());
        let sealed = std::fs::read_to_string(seal_path(&p)).unwrap();
        end_checkpoint(&p, ffi::SQLITE_BUSY, begun.as_ref());
        assert_eq!(std::fs::read_to_string(seal_path(&p)).unwrap(), sealed);
        assert!(intact(&p));
        // Without a beginning written, a failed checkpoint leaves the seal as it is.
        end_checkpoint(&p, ffi::SQLITE_IOERR, None);
        assert!(intact(&p));
    }

    #[test]
    fn a_read_only_ledger_closing_leaves_the_seal_alone() {
        let (_d, p, l) = checked_ledger();
        drop(l);
        let sealed = std::fs::read_to_string(seal_path(&p)).unwrap();
        let ro = crate::ledger::open_for_check(&p).unwrap();
        assert!(ro.check_integrity(false).unwrap().is_empty());
        drop(ro);
        assert_eq!(std::fs::read_to_string(seal_path(&p)).unwrap(), sealed);
        assert!(intact(&p));
    }

    fn checked_ledger() -> (tempfile::TempDir, PathBuf, crate::ledger::Ledger) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.sqlite");
        let l = crate::ledger::Ledger::open(&p).unwrap();
        l.ensure_sound().unwrap();
        assert!(intact(&p), "a passed check seals");
        (d, p, l)
    }

    /// One transaction of ~6 MB: over the 1,000 frames at which a commit checkpoints.
    fn grow(l: &crate::ledger::Ledger) {
        l.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES ('test-filler', ?1) \
                 ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                ["x".repeat(6 << 20)],
            )
            .unwrap();
    }

    fn size(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().len()
    }

    #[test]
    fn the_commit_that_checkpoints_and_the_closing_ledger_carry_the_seal_forward() {
        let (_d, p, l) = checked_ledger();
        let before = size(&p);
        grow(&l);
        assert!(size(&p) > before, "the commit checkpointed into the file");
        assert!(intact(&p), "and sealed what it wrote");
        // A process killed here: nothing closes, the file stays as sealed.
        l.conn
            .execute("UPDATE meta SET value = 'y' WHERE key = 'test-filler'", [])
            .unwrap();
        assert!(intact(&p));
        drop(l);
        assert!(intact(&p), "closing checkpointed and sealed first");
        let again = crate::ledger::Ledger::open(&p).unwrap();
        assert!(
            intact(&p),
            "opening a current ledger writes nothing to the file"
        );
        drop(again);
    }

    #[test]
    fn a_ledger_killed_in_a_checkpoint_starts_without_a_check() {
        let (_d, p, l) = checked_ledger();
        // Frames in the WAL, fewer than the 1,000 at which a commit checkpoints.
        l.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES ('test-filler', ?1)",
                ["x".repeat(256 << 10)],
            )
            .unwrap();
        let before = size(&p);
        assert!(intact(&p), "the WAL grew, not the file");
        assert!(begin_checkpoint(&p, boot_id().unwrap(), now()).is_some());
        next_tick();
        // The checkpoint's writes, and no seal after them: the process is killed there.
        let _: i64 = l
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(0))
            .unwrap();
        assert!(size(&p) > before, "the checkpoint wrote the file");
        std::mem::forget(l);
        assert!(intact(&p));
        let again = crate::ledger::Ledger::open(&p).unwrap();
        again.ensure_sound().unwrap();
        let text = std::fs::read_to_string(seal_path(&p)).unwrap();
        assert!(
            text.contains(BEGUN),
            "no check ran (a check seals anew): {text}"
        );
        drop(again);
        assert!(intact(&p), "and the closing ledger sealed it whole");
        let text = std::fs::read_to_string(seal_path(&p)).unwrap();
        assert!(!text.contains(BEGUN), "{text}");
    }

    #[test]
    fn a_checkpoint_does_not_seal_a_file_changed_behind_the_ledgers_back() {
        let (_d, p, l) = checked_ledger();
        // Another program writes the file (here only its time: `touch`, which cannot
        // take SQLite's locks away from this process as opening the file here would).
        let touched = std::process::Command::new("touch")
            .arg(&p)
            .status()
            .unwrap();
        assert!(touched.success());
        assert!(!intact(&p));
        grow(&l);
        assert!(
            !intact(&p),
            "the checkpoint over a changed file left the seal stale"
        );
        drop(l);
        assert!(!intact(&p), "so did the close");
        let l = crate::ledger::Ledger::open(&p).unwrap();
        l.ensure_sound().unwrap();
        assert!(intact(&p), "until a check passed");
    }
}
