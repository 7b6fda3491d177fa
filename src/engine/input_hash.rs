//! The claimed input's fingerprint, taken as reading goes instead of in one pass at its end.
//!
//! Before a file is decided its input must still be what was claimed: the work file's
//! blake3 is compared with the claim's fingerprint. Hashing the whole file once reading
//! reached its end made a resume hash its committed part again (~25 ms of a 50 MB CSV's
//! ~0.3 s resume), work that grows with the file, not with what is left of it. Here the
//! file is hashed a piece at a time as reading passes it, each piece a subtree of blake3's
//! own tree (`blake3::hazmat`), and the chaining values so far — merged as blake3 merges
//! them, so at most one per bit of the piece count — are kept in the file's staging folder
//! after every piece. A resume hashes only what no earlier run hashed. The result is
//! blake3's hash of the whole file, bit for bit.
//!
//! Pieces hashed early must still be the file's content at the end. Any write to a file
//! moves its change time, which no process can set back (its modification time can be), so
//! the state records the file's identity — device, inode, size, modification and change
//! times — when its first piece was hashed. A state whose file no longer has that identity,
//! at a resume or at the end of the run that hashed it, is not used: the whole file is
//! hashed again, as before. A change time has the file system's clock, which moves a tick
//! at a time (a few milliseconds on Linux, coarser elsewhere), and a write within the
//! tick of the last change leaves it as it was; so no piece is hashed before that clock has
//! passed the file's last change (a claim has just moved it). A byte written beside the
//! state, on the same file system, shows where its clock is; where no state is kept, or it
//! is on another file system, the last change must be [`SETTLED`] old by this machine's
//! clock.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

/// Bytes per piece: a power of two times blake3's chunk, so every piece is a whole subtree.
const PIECE: u64 = 1 << 20;

/// Opens a kept state (and names its layout).
const MAGIC: &[u8; 4] = b"TMH1";

/// A kept state is a few hundred bytes; anything longer is not one.
const MAX_STATE: u64 = 4096;

/// How old a file's last change must be, by this machine's clock, before its identity
/// vouches for pieces hashed after it when the file system's own clock cannot be read:
/// ten ticks of the coarsest clock Linux stamps a local file with (HZ=100).
pub(super) const SETTLED: Duration = Duration::from_millis(100);

/// What a file must still be for hashed pieces of it to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Identity {
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        Some(Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        })
    }

    /// Without a change time nothing vouches for pieces hashed earlier: hash at the end.
    #[cfg(not(unix))]
    fn of(_meta: &std::fs::Metadata) -> Option<Self> {
        None
    }

    /// Whether a change time stamped now, `now` (a file just written on the same device),
    /// is past this file's: then any write to it from now on moves its change time.
    fn passed_by(&self, now: &Identity) -> bool {
        now.dev == self.dev && now.ctime_ns > self.ctime_ns
    }

    /// Whether the file's last change is at least `settle` old by this machine's clock.
    fn settled(&self, settle: Duration) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        now - i128::from(self.ctime_ns) >= settle.as_nanos() as i128
    }
}

/// The chaining values of the pieces hashed so far, merged as far as blake3 merges them
/// while more input is known to follow: the input's last piece is never among them, so
/// none of these merges can be the root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tree {
    piece: u64,
    hashed: u64,
    stack: Vec<ChainingValue>,
}

impl Tree {
    fn new(piece: u64) -> Self {
        Tree {
            piece,
            hashed: 0,
            stack: Vec::new(),
        }
    }

    /// Adds the next piece, which starts at `hashed` and is not the input's last.
    fn push(&mut self, piece: &[u8]) {
        let cv = blake3::Hasher::new()
            .set_input_offset(self.hashed)
            .update(piece)
            .finalize_non_root();
        self.stack.push(cv);
        self.hashed += self.piece;
        let keep = (self.hashed / self.piece).count_ones() as usize;
        while self.stack.len() > keep {
            let right = self.stack.pop().expect("two subtrees to merge");
            let left = self.stack.pop().expect("two subtrees to merge");
            self.stack
                .push(merge_subtrees_non_root(&left, &right, Mode::Hash));
        }
    }

    /// The root hash, given the rest of the input after `hashed`: more than nothing, and at
    /// most a piece (so one subtree).
    fn root(&self, tail: &[u8]) -> blake3::Hash {
        let Some((first, rest)) = self.stack.split_first() else {
            return blake3::hash(tail);
        };
        let mut right = blake3::Hasher::new()
            .set_input_offset(self.hashed)
            .update(tail)
            .finalize_non_root();
        for left in rest.iter().rev() {
            right = merge_subtrees_non_root(left, &right, Mode::Hash);
        }
        merge_subtrees_root(first, &right, Mode::Hash)
    }

    /// Whether the stack has the shape pushing `hashed / piece` pieces gives.
    fn well_formed(&self) -> bool {
        self.piece > 0
            && self.hashed.is_multiple_of(self.piece)
            && self.stack.len() == (self.hashed / self.piece).count_ones() as usize
    }
}

/// Where the state is kept, and for which claim.
struct Keep {
    path: PathBuf,
    fingerprint: String,
    file: Option<File>,
}

impl Keep {
    /// Where the state's file system's clock is: the identity of a file beside the state
    /// just written (its change time is the clock's now).
    fn clock(&self) -> Option<Identity> {
        let file =
            crate::fsutil::open_private_creating_dir(&self.path.with_extension(CLOCK), false)
                .ok()?;
        write_all_at(&file, b"\n", 0).ok()?;
        Identity::of(&file.metadata().ok()?)
    }
}

/// The extension of the file beside the state that reads the file system's clock.
const CLOCK: &str = "clock";

/// The input being hashed; errors wait for [`InputHash::finish`], where the fingerprint
/// is needed.
pub(super) struct InputHash {
    path: PathBuf,
    hashing: io::Result<Hashing>,
}

struct Hashing {
    file: File,
    /// The identity that vouches for the pieces hashed: `None` until one can (see
    /// [`Hashing::vouching`]).
    id: Option<Identity>,
    settle: Duration,
    tree: Tree,
    keep: Option<Keep>,
    buf: Vec<u8>,
}

impl InputHash {
    /// Starts hashing `input`, taking up the state kept at `state` when it was kept for
    /// this claim (`fingerprint`) of this very file.
    pub(super) fn open(input: &Path, state: Option<PathBuf>, fingerprint: &str) -> Self {
        Self::with_piece(input, state, fingerprint, PIECE, SETTLED)
    }

    fn with_piece(
        input: &Path,
        state: Option<PathBuf>,
        fingerprint: &str,
        piece: u64,
        settle: Duration,
    ) -> Self {
        let hashing = File::open(input).and_then(|file| {
            let now = Identity::of(&file.metadata()?);
            let keep = state.map(|path| Keep {
                path,
                fingerprint: fingerprint.to_string(),
                file: None,
            });
            let tree = match (&keep, now) {
                (Some(k), Some(id)) => taken_up(k, id, piece),
                _ => None,
            };
            Ok(Hashing {
                file,
                // A kept state's identity vouched for its pieces when they were hashed.
                id: tree.as_ref().and(now),
                settle,
                tree: tree.unwrap_or_else(|| Tree::new(piece)),
                keep,
                buf: Vec::new(),
            })
        });
        InputHash {
            path: input.to_path_buf(),
            hashing,
        }
    }

    /// Hashes every whole piece before `upto` that is not the input's last.
    pub(super) fn advance(&mut self, upto: u64) {
        if let Ok(h) = &mut self.hashing {
            if let Err(e) = h.advance(upto) {
                self.hashing = Err(e);
            }
        }
    }

    /// The input's fingerprint (blake3, hex). Pieces hashed earlier count only if the file
    /// still has the identity it had then; otherwise the whole file is hashed again.
    pub(super) fn finish(&mut self) -> io::Result<String> {
        let finished = Err(io::Error::other("the input's hash was finished already"));
        let mut h = std::mem::replace(&mut self.hashing, finished)?;
        let now = Identity::of(&std::fs::metadata(&self.path)?);
        if now.is_none() || now != h.id {
            if h.tree.hashed > 0 {
                tracing::info!(
                    "the input changed since its first pieces were hashed; hashing it whole"
                );
            }
            return crate::intake::fingerprint(&self.path).map(|(fp, _)| fp);
        }
        let size = h.id.map_or(0, |id| id.size);
        h.advance(size)?;
        let tail = read_piece(&h.file, &mut h.buf, h.tree.hashed, size - h.tree.hashed)?;
        Ok(h.tree.root(tail).to_hex().to_string())
    }
}

impl Hashing {
    fn advance(&mut self, upto: u64) -> io::Result<()> {
        let Some(id) = self.vouching()? else {
            return Ok(()); // nothing vouches for pieces yet: they are hashed later
        };
        let before = self.tree.hashed;
        let piece = self.tree.piece;
        while self.tree.hashed + piece <= upto && self.tree.hashed + piece < id.size {
            let bytes = read_piece(&self.file, &mut self.buf, self.tree.hashed, piece)?;
            self.tree.push(bytes);
        }
        if self.tree.hashed > before {
            self.save(id);
        }
        Ok(())
    }

    /// The identity that vouches for pieces hashed from now on: the one the pieces so far
    /// were hashed under, or before the first, the file's own once the file system's clock
    /// has passed its last change, or failing a clock to read, once that is `settle` old.
    /// Waiting costs nothing: the pieces are hashed later, or at the end.
    fn vouching(&mut self) -> io::Result<Option<Identity>> {
        if self.id.is_some() {
            return Ok(self.id);
        }
        let Some(id) = Identity::of(&self.file.metadata()?) else {
            return Ok(None);
        };
        let clock = self.keep.as_ref().and_then(Keep::clock);
        if clock.is_some_and(|now| id.passed_by(&now)) || id.settled(self.settle) {
            self.id = Some(id);
        }
        Ok(self.id)
    }

    /// Keeps the state; a state that cannot be kept only costs a resume a longer hash.
    fn save(&mut self, id: Identity) {
        let Some(keep) = &mut self.keep else { return };
        let bytes = encode(&self.tree, id, &keep.fingerprint);
        if let Err(e) = write_state(keep, &bytes) {
            tracing::debug!("the input's hash state cannot be kept: {e}");
            self.keep = None;
        }
    }
}

fn read_piece<'b>(file: &File, buf: &'b mut Vec<u8>, at: u64, len: u64) -> io::Result<&'b [u8]> {
    buf.resize(len as usize, 0);
    read_exact_at(file, buf, at)?;
    Ok(buf)
}

fn write_state(keep: &mut Keep, bytes: &[u8]) -> io::Result<()> {
    if keep.file.is_none() {
        keep.file = Some(crate::fsutil::open_private_creating_dir(&keep.path, false)?);
    }
    let file = keep.file.as_ref().expect("opened above");
    // In place: a state is never read while it is written, and one cut short by a crash
    // fails its checksum.
    write_all_at(file, bytes, 0)
}

/// The tree a kept state holds, if it was kept for this claim of this file as it is now.
fn taken_up(keep: &Keep, id: Identity, piece: u64) -> Option<Tree> {
    let file = File::open(&keep.path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_STATE).read_to_end(&mut bytes).ok()?;
    let (tree, kept_id, fingerprint) = decode(&bytes)?;
    let usable = kept_id == id
        && tree.hashed > 0
        && fingerprint == keep.fingerprint
        && tree.piece == piece
        && tree.well_formed()
        && tree.hashed < id.size;
    if !usable {
        return None;
    }
    // The work path is not logged: the engine's own lines name the file as it is shown.
    tracing::info!(
        "the input's first {} bytes were hashed by an earlier run; hashing goes on from there",
        tree.hashed
    );
    Some(tree)
}

/// `MAGIC`, the length of what follows up to the checksum, the piece, the bytes hashed,
/// the identity, the claim's fingerprint, the chaining values, and the first 8 bytes of
/// blake3 over all before them.
fn encode(tree: &Tree, id: Identity, fingerprint: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(128 + 32 * tree.stack.len());
    for n in [tree.piece, tree.hashed, id.dev, id.ino, id.size] {
        body.extend_from_slice(&n.to_le_bytes());
    }
    for n in [id.mtime_ns, id.ctime_ns] {
        body.extend_from_slice(&n.to_le_bytes());
    }
    body.extend_from_slice(&(fingerprint.len() as u16).to_le_bytes());
    body.extend_from_slice(fingerprint.as_bytes());
    body.push(tree.stack.len() as u8);
    for cv in &tree.stack {
        body.extend_from_slice(cv);
    }
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let sum = blake3::hash(&out);
    out.extend_from_slice(&sum.as_bytes()[..8]);
    out
}

fn decode(bytes: &[u8]) -> Option<(Tree, Identity, String)> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let checked = bytes.get(..8 + len)?;
    let sum = bytes.get(8 + len..16 + len)?;
    if blake3::hash(checked).as_bytes()[..8] != *sum {
        return None;
    }
    let mut r = Cursor(&checked[8..]);
    let (piece, hashed) = (r.u64()?, r.u64()?);
    let (dev, ino, size) = (r.u64()?, r.u64()?, r.u64()?);
    let (mtime_ns, ctime_ns) = (r.u64()? as i64, r.u64()? as i64);
    let fp_len = u16::from_le_bytes(r.take(2)?.try_into().ok()?) as usize;
    let fingerprint = String::from_utf8(r.take(fp_len)?.to_vec()).ok()?;
    let n = r.take(1)?[0] as usize;
    let stack = (0..n)
        .map(|_| r.take(32).and_then(|b| b.try_into().ok()))
        .collect::<Option<Vec<ChainingValue>>>()?;
    let id = Identity {
        dev,
        ino,
        size,
        mtime_ns,
        ctime_ns,
    };
    let tree = Tree {
        piece,
        hashed,
        stack,
    };
    r.0.is_empty().then_some((tree, id, fingerprint))
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, at)
}

#[cfg(not(unix))]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(buf)
}

#[cfg(not(unix))]
fn write_all_at(file: &File, buf: &[u8], at: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = file;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(buf)
}

#[cfg(test)]
#[path = "input_hash_tests.rs"]
mod tests;
