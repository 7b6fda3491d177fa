//! Reading, evaluating and committing in three stages that overlap.
//!
//! A loop that reads a batch, evaluates it and then commits it keeps every other core
//! idle while the ledger writes, and the ledger idle while units are parsed. Here a
//! reading thread parses units and cuts them into batches; an evaluating thread has each
//! batch evaluated on the worker pool and hands it to the committing thread through a
//! channel of one. So batch N+2 is read while N+1 is mapped and N committed (reading had
//! waited for the pool: a sixth to a quarter of the work, done while the cores it could
//! have used were busy), and memory holds at most five batches. Batches are cut exactly
//! where the single loop cut them (where the line count crosses a multiple of
//! `batch_lines` from the start of the file), so a resumed file is cut at the same places.
//!
//! `threads` counts cores ([`plan`]), and the pool gets a worker per core. It had one
//! fewer, leaving a core to reading and committing (a worker per core had made two cores
//! run a 50 MB CSV a fifth slower, before evaluating had a thread of its own); measured
//! again on two cores, one worker against two, means of alternating runs: X12 20 MB
//! 1.31 s against 1.19 s and 1.45 s against 1.34 s, CSV 50 MB 2.87 s against 2.85 s
//! and 2.86 s against 2.91 s, IDoc 35 MB 0.91 s against 0.92 s. Where evaluating is the
//! slowest stage (X12: mapping a set is most of its work) the other stages leave cores
//! idle part of the time, which the second worker uses; elsewhere the scheduler shares the
//! cores as before. (Choosing the width batch by batch, by how long the evaluating thread
//! waited for its neighbours, was tried: on two cores every format showed all stages busy
//! enough to look alike, so it chose wide everywhere.) With one core the same reading loop
//! runs on the committing thread and hands every batch straight to it ([`run_inline`]):
//! `threads = 1` means one core, not three busy threads. The pool's workers run at a lower
//! priority than the reading and committing threads, which set the pace
//! ([`yield_to_serial_stages`]).

use std::sync::mpsc::{Receiver, SyncSender};

use rayon::prelude::*;

use super::input_hash::InputHash;
use crate::format::{FileError, Mark, UnitReader};
use crate::unit::{Evaluation, Unit};

/// How much lower the pool's workers run than the reading and committing threads, in
/// nice steps (see [`yield_to_serial_stages`]).
const POOL_NICE: i32 = 5;

/// Lowers the calling thread's scheduling priority by [`POOL_NICE`] steps; the pool's
/// workers call it as they start. Reading and committing are one thread each, and every
/// batch passes through both, so whichever of them is slower sets the pace; the workers
/// only have to keep up with them. At equal priority a serial stage shared its core with a
/// worker half and half whenever both were runnable. Measured on two cores, medians of
/// four alternating runs: CSV 50 MB 2.17 s at equal priority, 1.93 s with the workers 5
/// steps lower (1.95 s at 3, 1.96 s at 7); X12 20 MB 0.94 s, 0.89 s; IDoc 30 MB (its
/// reading thread is the slowest stage and the pool mostly idle) 0.52 s both. Relative to
/// the process's own priority, so a run started with `nice` keeps the same order; a
/// thread may always lower its own priority, and if it cannot, nothing else changes.
pub(super) fn yield_to_serial_stages() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id; no memory is shared.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        // getpriority can return -1 as a value: errno tells, and an error leaves the
        // priority as it is.
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if now != -1 || *libc::__errno_location() == 0 {
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + POOL_NICE).min(19));
        }
    }
}

/// How a file's processing uses its cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    /// One thread reads, evaluates and commits, taking turns.
    pub inline: bool,
    /// Threads of the evaluating pool.
    pub workers: usize,
}

/// The plan for `cores` (at least one is assumed).
pub(super) fn plan(cores: usize) -> Plan {
    Plan {
        inline: cores <= 1,
        workers: cores.max(1),
    }
}

/// What the reading thread hands to the committing one.
pub(super) enum Piece {
    /// The first unit past the committed mark was read: the committing thread arms the
    /// stall guard at this mark, then answers, before anything later is parsed.
    Reached(u64),
    /// A batch, evaluated, with how far reading got (byte, lines read) and where a
    /// reader can start again after it, if the format can.
    Batch {
        units: Vec<Unit>,
        evals: Vec<Evaluation>,
        byte: u64,
        lines_read: u64,
        mark: Option<Mark>,
    },
    /// Reading ended, with the file-level error that ended it, if any, and the input's
    /// fingerprint taken then (see [`Cut::input`]).
    End(Option<FileError>, Fingerprint),
}

/// Where reading starts and how batches are cut.
pub(super) struct Cut {
    /// Units before this one were committed by an earlier run and are skipped.
    pub committed_seq: u64,
    /// Lines committed before.
    pub ordinal: u64,
    /// Lines the reader passed over before its first unit (it started at a mark).
    pub lines_passed: u64,
    pub batch_lines: u64,
    /// Whether the stall guard is armed already (a fresh start).
    pub armed: bool,
}

/// The input's fingerprint as the evaluating thread took it, a piece at a time behind the
/// batches it handed on (see [`hand_on`]), at the end of the file.
pub(super) type Fingerprint = std::io::Result<String>;

/// A batch read and not yet evaluated, or the end of reading.
enum Raw {
    Batch {
        units: Vec<Unit>,
        byte: u64,
        lines_read: u64,
        mark: Option<Mark>,
    },
    /// Boxed: the error is most of this enum's size, and a file ends once.
    End(Option<Box<FileError>>),
}

/// What reading hands on: a batch or the end, or (see [`Piece::Reached`]) that the first
/// unit past the committed mark was read, which must be answered before reading goes on.
enum Step {
    Reached(u64),
    Raw(Raw),
}

/// The reading thread, with the evaluating thread it starts: both stop early, quietly,
/// when the committing thread hangs up.
pub(super) fn produce(
    reader: &mut dyn UnitReader,
    pool: &rayon::ThreadPool,
    cut: Cut,
    input: InputHash,
    tx: SyncSender<Piece>,
    ack: Receiver<()>,
) {
    let reached = |seq| tx.send(Piece::Reached(seq)).is_ok() && ack.recv().is_ok();
    // The evaluating thread takes the input's hash; if it cannot start, this one does.
    let slot = std::sync::Mutex::new(Some(input));
    let taken = |slot: &std::sync::Mutex<Option<InputHash>>| {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.take().expect("taken once")
    };
    std::thread::scope(|s| {
        // A rendezvous: the reader runs one batch ahead of the one being evaluated.
        let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel(0);
        let to_commit = tx.clone();
        let hashing = &slot;
        let evaluating = std::thread::Builder::new()
            .name("tallyman-eval".into())
            .spawn_scoped(s, move || {
                let mut input = taken(hashing);
                raw_rx.iter().all(|raw| {
                    hand_on(Some(pool), raw, &mut input, &mut |p| {
                        to_commit.send(p).is_ok()
                    })
                })
            });
        if evaluating.is_err() {
            // No thread to spare: evaluate here, as one stage.
            let mut input = taken(&slot);
            return read(reader, cut, &mut |step| match step {
                Step::Reached(seq) => reached(seq),
                Step::Raw(raw) => hand_on(Some(pool), raw, &mut input, &mut |p| tx.send(p).is_ok()),
            });
        }
        read(reader, cut, &mut |step| match step {
            Step::Reached(seq) => reached(seq),
            Step::Raw(raw) => raw_tx.send(raw).is_ok(),
        });
    });
}

/// Reads, evaluates and hands every piece to `take` on the calling thread, one batch at a
/// time; `take` answers `false` to stop.
pub(super) fn run_inline(
    reader: &mut dyn UnitReader,
    cut: Cut,
    mut input: InputHash,
    take: &mut dyn FnMut(Piece) -> bool,
) {
    read(reader, cut, &mut |step| match step {
        Step::Reached(seq) => take(Piece::Reached(seq)),
        Step::Raw(raw) => hand_on(None, raw, &mut input, take),
    });
}

/// Reads units and cuts batches, handing each to `hand` (`false`: nobody listens).
fn read(reader: &mut dyn UnitReader, cut: Cut, hand: &mut dyn FnMut(Step) -> bool) {
    let mut pending: Vec<Unit> = Vec::new();
    let (mut pending_lines, mut ordinal, mut armed) = (0u64, cut.ordinal, cut.armed);
    let (mut lines_read, mut byte) = (cut.lines_passed, 0u64);
    let end = loop {
        let unit = match reader.next_unit() {
            Ok(Some(u)) => u,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        lines_read += unit.lines.len() as u64;
        byte = unit.lines.last().map_or(byte, |l| l.pos.byte);
        if unit.seq < cut.committed_seq {
            continue; // committed before a crash
        }
        // Sent before any batch of this run exists, so it reaches the committing thread
        // before them.
        if !armed {
            if !hand(Step::Reached(cut.committed_seq)) {
                return;
            }
            armed = true;
        }
        pending_lines += unit.lines.len() as u64;
        pending.push(unit);
        if (ordinal + pending_lines) / cut.batch_lines > ordinal / cut.batch_lines {
            ordinal += std::mem::take(&mut pending_lines);
            // The next batch's vector sized as this one, with room: grown by doubling,
            // each batch's megabytes of units were copied and fresh pages touched at
            // every step (a 50 MB CSV run: ~1,600 page faults -> ~1,490, 3% less CPU).
            let room = pending.len() + pending.len() / 8;
            let units = std::mem::replace(&mut pending, Vec::with_capacity(room));
            let mark = reader.mark();
            if !hand(Step::Raw(Raw::Batch {
                units,
                byte,
                lines_read,
                mark,
            })) {
                return;
            }
        }
    };
    if !pending.is_empty() {
        let last = Raw::Batch {
            units: pending,
            byte,
            lines_read,
            mark: None,
        };
        if !hand(Step::Raw(last)) {
            return;
        }
    }
    hand(Step::Raw(Raw::End(end.map(Box::new))));
}

/// Evaluates a batch (on the pool, or here without one) and hands it over, or passes the
/// end on with the input's fingerprint; `false` once there is nothing more or nobody
/// listens. The input is hashed here, behind each batch handed over: an IDoc file's
/// reading thread is its slowest stage, and this thread mostly waits for its neighbours.
fn hand_on(
    pool: Option<&rayon::ThreadPool>,
    raw: Raw,
    input: &mut InputHash,
    send: &mut dyn FnMut(Piece) -> bool,
) -> bool {
    match raw {
        Raw::Batch {
            mut units,
            byte,
            lines_read,
            mark,
        } => {
            let evals = match pool {
                Some(pool) => pool.install(|| units.par_iter_mut().map(|u| u.evaluate()).collect()),
                None => units.iter_mut().map(|u| u.evaluate()).collect(),
            };
            let sent = send(Piece::Batch {
                units,
                evals,
                byte,
                lines_read,
                mark,
            });
            input.advance(byte);
            sent
        }
        Raw::End(error) => {
            send(Piece::End(error.map(|e| *e), input.finish()));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn pool_workers_run_lower_than_the_threads_that_read_and_commit() {
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let main = std::thread::spawn(nice).join().unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .start_handler(|_| yield_to_serial_stages())
            .build()
            .unwrap();
        let worker = pool.install(|| unsafe {
            libc::getpriority(
                libc::PRIO_PROCESS,
                libc::syscall(libc::SYS_gettid) as libc::id_t,
            )
        });
        assert_eq!(worker, (main + POOL_NICE).min(19));
        // Other threads of the process are untouched.
        assert_eq!(std::thread::spawn(nice).join().unwrap(), main);
    }

    #[test]
    fn one_core_reads_evaluates_and_commits_on_one_thread_more_get_a_worker_each() {
        let one = Plan {
            inline: true,
            workers: 1,
        };
        assert_eq!(plan(0), one);
        assert_eq!(plan(1), one);
        assert_eq!(
            plan(2),
            Plan {
                inline: false,
                workers: 2
            }
        );
        assert_eq!(plan(8).workers, 8);
        assert!(!plan(8).inline);
    }
}
