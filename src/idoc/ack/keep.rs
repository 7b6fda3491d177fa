//! What a STATUS has answered so far, kept beside the file's staged output, so that a
//! resumed file answers only the IDocs after the last batch it saw answered.
//!
//! The STATUS answers every IDoc of the file, and a resume answered all those before its
//! mark again, from the ledger: a 50 MB file resumed at 92% spent a quarter of its time on
//! them (0.128 s, 0.098 without them). Here the committing thread, after it answered a
//! batch's IDocs, appends what it made to the file the engine gives for restart state
//! (`UnitReader::keep_state_in`): each route's new text as a deflated piece, then a
//! checkpoint naming every route's pieces and the first IDoc not answered yet. A reader
//! restarted at a mark takes up the latest checkpoint before it and answers from there.
//! Every record carries its length and CRC-32; the file is read up to the first record
//! that does not check, and a checkpoint whose pieces are not all there is not used, so a
//! file cut short by a crash costs answering again, never a wrong answer. Nothing is
//! synced: losing the file costs only time.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Answered, Route, Routes, When};
use crate::format::AckBody;

/// The checkpoint's form; a checkpoint of another is not used.
const VERSION: u32 = 1;
const PIECE: u8 = 1;
const CHECKPOINT: u8 = 2;
/// Kind, length and CRC-32 before each record's bytes.
const HEADER: usize = 9;
/// A checkpoint is written once this many times the IDocs answered since the last one
/// are at least its size in bytes. It names every piece kept so far and grows with them
/// (with many senders, by a piece per sender and batch): spaced so, checkpoints add at
/// most this many bytes per IDoc to the file, and a restart answers again at most the
/// IDocs since the last one.
const BYTES_PER_IDOC: u64 = 64;

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    v: u32,
    /// The first IDoc not answered.
    next: u64,
    date: String,
    time: String,
    routes: Vec<KeptRoute>,
}

#[derive(Serialize, Deserialize)]
struct KeptRoute {
    sender: String,
    dc: Map<String, Value>,
    /// Where the route's pieces are in the file, in order.
    pieces: Vec<u64>,
}

/// The file a read's answers are kept in.
pub(super) struct Keeper {
    path: PathBuf,
    file: Option<File>,
    /// Bytes of records that check: a restored file is cut there, a fresh one to nothing.
    len: u64,
    /// Writing failed once: nothing more is kept (a restart answers from the start).
    failed: bool,
    /// The last checkpoint's first IDoc not answered, and its size.
    last: (u64, u64),
}

impl Keeper {
    pub fn new(path: PathBuf) -> Keeper {
        Keeper {
            path,
            file: None,
            len: 0,
            failed: false,
            last: (0, 0),
        }
    }

    /// Appends the text answered since the last checkpoint and a checkpoint at `next`,
    /// when they are due (see [`BYTES_PER_IDOC`]).
    pub fn keep(&mut self, routes: &mut Routes, next: u64, when: &When) {
        let (last_next, last_len) = self.last;
        if next
            .saturating_sub(last_next)
            .saturating_mul(BYTES_PER_IDOC)
            < last_len
        {
            return;
        }
        for route in routes.by_sender.values_mut() {
            route.deflate();
        }
        routes.plain = 0;
        let mut kept = Vec::with_capacity(routes.by_sender.len());
        for (sender, route) in &mut routes.by_sender {
            for piece in &route.body[route.kept.len()..] {
                match self.append(PIECE, piece.zlib()) {
                    Some(at) => route.kept.push(at),
                    None => return,
                }
            }
            kept.push(KeptRoute {
                sender: sender.clone(),
                dc: route.dc.clone(),
                pieces: route.kept.clone(),
            });
        }
        let checkpoint = Checkpoint {
            v: VERSION,
            next,
            date: when.date.clone(),
            time: when.time.clone(),
            routes: kept,
        };
        if let Ok(bytes) = serde_json::to_vec(&checkpoint) {
            if self.append(CHECKPOINT, &bytes).is_some() {
                self.last = (next, bytes.len() as u64);
            }
        }
    }

    /// The answers of the latest checkpoint before IDoc `upto`, if the file holds one
    /// whole; the file is cut after it, where the next records go.
    pub fn restore(&mut self, answered: &mut Answered, upto: u64) -> bool {
        let Some(bytes) = self.read_all() else {
            return false;
        };
        let records = records(&bytes);
        let found = records.iter().rev().find_map(|&(at, kind, body)| {
            let c = (kind == CHECKPOINT).then(|| serde_json::from_slice::<Checkpoint>(body));
            match c {
                Some(Ok(c)) if c.v == VERSION && c.next <= upto => {
                    Some((at + (HEADER + body.len()) as u64, body.len() as u64, c))
                }
                _ => None,
            }
        });
        let Some((end, size, c)) = found else {
            return false;
        };
        let pieces: HashMap<u64, &[u8]> = records
            .iter()
            .filter(|r| r.1 == PIECE)
            .map(|&(at, _, body)| (at, body))
            .collect();
        let Some(routes) = routes_of(&c, &pieces) else {
            return false;
        };
        answered.routes = routes;
        answered.next = c.next;
        answered.when = When {
            date: c.date,
            time: c.time,
        };
        // What follows the checkpoint belongs to no restart: the next records go there.
        self.len = end;
        self.last = (answered.next, size);
        true
    }

    fn read_all(&self) -> Option<Vec<u8>> {
        let mut bytes = Vec::new();
        File::open(&self.path).ok()?.read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }

    /// Appends one record; where it starts, or `None` once writing failed.
    fn append(&mut self, kind: u8, body: &[u8]) -> Option<u64> {
        if self.failed {
            return None;
        }
        let at = self.len;
        let written = self.write_at(at, kind, body);
        if written.is_err() {
            self.failed = true;
            return None;
        }
        self.len += (HEADER + body.len()) as u64;
        Some(at)
    }

    fn write_at(&mut self, at: u64, kind: u8, body: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            let file = crate::fsutil::open_private_creating_dir(&self.path, false)?;
            // A fresh read owes nothing to an earlier read's records, a restored one
            // nothing to those after its checkpoint.
            file.set_len(at)?;
            self.file = Some(file);
        }
        let file = self.file.as_mut().ok_or(std::io::ErrorKind::NotFound)?;
        let len = u32::try_from(body.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let mut record = Vec::with_capacity(HEADER + body.len());
        record.push(kind);
        record.extend(len.to_le_bytes());
        record.extend(crc32fast::hash(body).to_le_bytes());
        record.extend(body);
        file.seek(SeekFrom::Start(at))?;
        file.write_all(&record)
    }
}

/// The records of `bytes` up to the first that does not check: where each starts, its
/// kind and its body.
fn records(bytes: &[u8]) -> Vec<(u64, u8, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(head) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let crc = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
        let Some(body) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if crc32fast::hash(body) != crc || !matches!(head[0], PIECE | CHECKPOINT) {
            break;
        }
        out.push((at as u64, head[0], body));
        at += HEADER + len;
    }
    out
}

/// The routes a checkpoint names, if every piece it names is one of `pieces`.
fn routes_of(c: &Checkpoint, pieces: &HashMap<u64, &[u8]>) -> Option<Routes> {
    let mut routes = Routes::default();
    for r in &c.routes {
        let body = r
            .pieces
            .iter()
            .map(|at| pieces.get(at).map(|z| AckBody::from_zlib(z.to_vec())))
            .collect::<Option<Vec<_>>>()?;
        let route = Route {
            dc: r.dc.clone(),
            body,
            plain: String::new(),
            kept: r.pieces.clone(),
        };
        routes.by_sender.insert(r.sender.clone(), route);
    }
    Some(routes)
}
