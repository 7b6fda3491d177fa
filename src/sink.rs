//! Sinks: where canonical records go, in two phases.
//!
//! `stage` writes a batch's records where they are invisible; the ledger then commits the
//! batch together with the staged chunk names and checks. The chunks are synced to disk
//! beside the next batches (engine/syncer.rs), not before their batch commits: a resumed
//! file has `confirm` check the ones whose sync was under way, which a power loss may have
//! cut short, so they are written again. `publish` makes a file's staged chunks visible
//! once the file's decision is taken (every chunk synced by then), and `discard` drops them
//! when the file is rejected whole. Both are idempotent, because after a crash they are
//! simply called again.
//! That split is what keeps a file from ever being half-applied, and it is the whole
//! contract a new sink (a SQLite table, an HTTP API) must meet: stage into a staging table
//! or a local spool keyed by (file, chunk), publish by upserting on the business key.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::canonical::Record;
use crate::canonical_json::json_string;
use crate::fsutil;
use crate::ledger::{ChunkCheck, ChunkRow};

/// Where in its file a record came from: enough to find the line again. The file itself is
/// the batch's ([`Origin`]), named in every outbox line but not held by every record: its
/// fingerprint, name and format were three strings made for each record on the
/// committing thread.
#[derive(Debug, Clone)]
pub struct SourceRef {
    pub unit: u64,
    pub line: u64,
    pub byte: u64,
    pub locator: Option<String>,
}

impl SourceRef {
    /// Unit `unit`, starting at `pos`.
    pub fn new(unit: u64, pos: &crate::unit::Position) -> Self {
        SourceRef {
            unit,
            line: pos.line,
            byte: pos.byte,
            locator: pos.locator.clone(),
        }
    }
}

/// The file a batch's records come from, read as `format`.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub tag: &'a FileTag,
    pub format: &'a str,
}

/// A record as written to the outbox: one JSON object per line.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub entity: Cow<'static, str>,
    pub key: String,
    pub source: SourceRef,
    /// The record's body, already serialized JSON.
    pub data: String,
}

impl OutRecord {
    pub fn new(record: Record, source: SourceRef) -> Self {
        OutRecord {
            entity: Cow::Borrowed(record.entity.as_str()),
            key: record.key,
            source,
            data: record.json,
        }
    }
}

/// Identifies the file a batch belongs to, for naming staged and published chunks.
#[derive(Debug, Clone)]
pub struct FileTag {
    pub fingerprint: String,
    pub attempt: i64,
    pub name: String,
}

impl FileTag {
    /// Stable, readable chunk-name stem: `<stem>-<fingerprint12>[-a<attempt>]`.
    pub fn stem(&self) -> String {
        let base = Path::new(&self.name)
            .file_stem()
            .map(|s| fsutil::safe_name(&s.to_string_lossy()))
            .unwrap_or_else(|| "file".into());
        let fp: String = self.fingerprint.chars().take(12).collect();
        if self.attempt > 1 {
            format!("{base}-{fp}-a{}", self.attempt)
        } else {
            format!("{base}-{fp}")
        }
    }
}

/// What every line of a file's records carries that only the file decides, rendered once:
/// `,"source":{"file":…,"name":…,"format":…`. Written per line, its three strings were
/// checked for escapes again for every record.
pub struct LineHead(Vec<u8>);

impl LineHead {
    pub fn new(origin: Origin) -> LineHead {
        let mut buf = Vec::with_capacity(128);
        let head: io::Result<()> = (|| {
            buf.write_all(b",\"source\":{\"file\":")?;
            json_string(&mut buf, &origin.tag.fingerprint)?;
            buf.write_all(b",\"name\":")?;
            json_string(&mut buf, &origin.tag.name)?;
            buf.write_all(b",\"format\":")?;
            json_string(&mut buf, origin.format)
        })();
        // Writing into a `Vec` does not fail.
        debug_assert!(head.is_ok());
        LineHead(buf)
    }
}

/// Appends one record as a JSON line: the one place the outbox's bytes are made, so a chunk
/// rebuilt from the ledger is byte for byte the chunk that was staged. Written field by
/// field, each string as serde_json writes it, rather than through a serde struct: the
/// committing thread writes every record's line, and the struct's serializer was a tenth
/// of that thread's instructions for a CSV file; this takes a third fewer (the bytes are
/// the same; see the tests).
pub fn append_line(buf: &mut impl Write, head: &LineHead, r: &OutRecord) -> io::Result<()> {
    let s = &r.source;
    let mut n = itoa::Buffer::new();
    buf.write_all(b"{\"entity\":")?;
    json_string(buf, &r.entity)?;
    buf.write_all(b",\"key\":")?;
    json_string(buf, &r.key)?;
    buf.write_all(&head.0)?;
    buf.write_all(b",\"unit\":")?;
    buf.write_all(n.format(s.unit).as_bytes())?;
    buf.write_all(b",\"line\":")?;
    buf.write_all(n.format(s.line).as_bytes())?;
    buf.write_all(b",\"byte\":")?;
    buf.write_all(n.format(s.byte).as_bytes())?;
    if let Some(l) = &s.locator {
        buf.write_all(b",\"locator\":")?;
        json_string(buf, l)?;
    }
    buf.write_all(b"},\"data\":")?;
    buf.write_all(r.data.as_bytes())?;
    buf.write_all(b"}\n")?;
    Ok(())
}

pub trait Sink {
    /// Stages one batch's records (all entities): in place but not yet synced (see
    /// [`Staged`]). Staging the same chunk again overwrites it with the same content.
    fn stage(&self, origin: Origin, chunk: u64, records: &[OutRecord]) -> io::Result<Staged>;
    /// Whether a staged chunk committed before its sync was known done still holds what
    /// was staged; synced now if it does, removed if it does not (a power loss cut it short
    /// or zeroed it), so that it counts as vanished and is written again. A chunk no longer
    /// staged (published) or without a check is left as it is.
    fn confirm(&self, chunk: &ChunkRow) -> io::Result<bool>;
    /// Makes a file's staged chunks visible. Safe to call again for chunks already published.
    fn publish(&self, file: &FileTag, chunks: &[ChunkRow]) -> io::Result<()>;
    /// Drops a rejected file's staged chunks. Safe to call again.
    fn discard(&self, file: &FileTag, chunks: &[ChunkRow]) -> io::Result<()>;
}

/// The outbox directory: JSON Lines per entity, `outbox/<entity>/<stem>-<chunk>.jsonl`.
pub struct Outbox {
    pub dir: PathBuf,
    pub staging: PathBuf,
    /// The entities the outbox takes (the configured targets decide; all by default).
    pub entities: Vec<crate::canonical::Entity>,
}

impl Sink for Outbox {
    fn stage(&self, origin: Origin, chunk: u64, records: &[OutRecord]) -> io::Result<Staged> {
        let stem = origin.tag.stem();
        let mut entities: Vec<&str> = records
            .iter()
            .map(|r| r.entity.as_ref())
            .filter(|e| self.entities.iter().any(|t| t.as_str() == *e))
            .collect();
        entities.sort_unstable();
        entities.dedup();
        let dir = self.staging.join(&stem);
        let head = LineHead::new(origin);
        let mut out = Staged::default();
        for entity in entities {
            let name = format!("{stem}-{chunk:06}.jsonl");
            let staged = dir.join(format!("{entity}-{name}"));
            let mut count = 0;
            let mut check = None;
            // Streamed into the file: a batch's chunk made whole first was tens of
            // megabytes of fresh memory for every batch, each page zeroed by the kernel
            // before the line was written into it (a fifth of this thread's time).
            let file = fsutil::write_unsynced_with(&staged, |f| {
                let mut w = io::BufWriter::with_capacity(STAGE_BUFFER, Summing::new(f));
                for r in records.iter().filter(|r| r.entity == entity) {
                    append_line(&mut w, &head, r)?;
                    count += 1;
                }
                check = Some(w.into_inner().map_err(|e| e.into_error())?.check());
                Ok(())
            })?;
            out.files.push(file);
            out.rows.push(ChunkRow {
                chunk: chunk as i64,
                entity: entity.to_string(),
                staged_path: staged.display().to_string(),
                outbox_path: self.dir.join(entity).join(name).display().to_string(),
                records: count,
                units: None,
                check,
            });
        }
        out.dir = (!out.files.is_empty()).then_some(dir);
        Ok(out)
    }

    fn confirm(&self, chunk: &ChunkRow) -> io::Result<bool> {
        let path = Path::new(&chunk.staged_path);
        let Some(want) = chunk.check else {
            return Ok(true);
        };
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        };
        let mut sum = Summing::new(io::sink());
        io::copy(
            &mut (&mut file).take(want.bytes.saturating_add(1)),
            &mut sum,
        )?;
        let dir = path.parent().unwrap_or(Path::new("."));
        if sum.check() == want {
            file.sync_all()?;
            fsutil::fsync_dir(dir)?;
            return Ok(true);
        }
        std::fs::remove_file(path)?;
        fsutil::fsync_dir(dir)?;
        Ok(false)
    }

    fn publish(&self, file: &FileTag, chunks: &[ChunkRow]) -> io::Result<()> {
        let mut moves = Vec::with_capacity(chunks.len());
        for c in chunks {
            let staged = Path::new(&c.staged_path);
            let target = Path::new(&c.outbox_path);
            if staged.exists() {
                moves.push((staged, target));
            } else if !target.exists() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "staged chunk {} is missing and was never published",
                        staged.display()
                    ),
                ));
            }
        }
        fsutil::move_files(&moves)?;
        self.remove_staging_dir(file)
    }

    fn discard(&self, file: &FileTag, chunks: &[ChunkRow]) -> io::Result<()> {
        for c in chunks {
            match std::fs::remove_file(&c.staged_path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.remove_staging_dir(file)
    }
}

/// The write buffer of a staged chunk.
const STAGE_BUFFER: usize = 1 << 20;

/// A batch's staged chunks: their rows for the ledger, and the files, written and renamed
/// into place but not synced. The caller syncs each file and then `dir` before the file's
/// chunks are published; the rows' checks tell a resumed run whether a chunk outlived a
/// power loss whole.
#[derive(Debug, Default)]
pub struct Staged {
    pub rows: Vec<ChunkRow>,
    pub files: Vec<File>,
    /// The folder the chunks are in (none when no record was staged).
    pub dir: Option<PathBuf>,
}

/// Counts and sums what is written through it: a staged chunk's [`ChunkCheck`].
struct Summing<W> {
    inner: W,
    bytes: u64,
    crc: crc32fast::Hasher,
}

impl<W: Write> Summing<W> {
    fn new(inner: W) -> Self {
        Summing {
            inner,
            bytes: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    fn check(&self) -> ChunkCheck {
        ChunkCheck {
            bytes: self.bytes,
            crc: self.crc.clone().finalize(),
        }
    }
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Outbox {
    /// Removes a file's staging folder once its chunks are published or discarded, with
    /// any temporary file a killed process left half-written in it (only the file's lock
    /// holder ever writes there).
    fn remove_staging_dir(&self, file: &FileTag) -> io::Result<()> {
        match std::fs::remove_dir_all(self.staging.join(file.stem())) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[test]
    fn a_line_is_byte_for_byte_what_serde_made_of_the_record() {
        // How lines were made before `append_line` wrote them field by field.
        #[derive(Serialize)]
        struct Head<'a> {
            entity: &'a str,
            key: &'a str,
            source: Source<'a>,
        }
        #[derive(Serialize)]
        struct Source<'a> {
            file: &'a str,
            name: &'a str,
            format: &'a str,
            unit: u64,
            line: u64,
            byte: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            locator: Option<&'a str>,
        }
        let by_serde = |o: Origin, r: &OutRecord| {
            let head = Head {
                entity: &r.entity,
                key: &r.key,
                source: Source {
                    file: &o.tag.fingerprint,
                    name: &o.tag.name,
                    format: o.format,
                    unit: r.source.unit,
                    line: r.source.line,
                    byte: r.source.byte,
                    locator: r.source.locator.as_deref(),
                },
            };
            let mut b = serde_json::to_vec(&head).unwrap();
            b.pop();
            b.extend_from_slice(b",\"data\":");
            b.extend_from_slice(r.data.as_bytes());
            b.extend_from_slice(b"}\n");
            b
        };
        let odd = "quote \" back\\slash \u{1} tab\t nl\n é € 😀 \u{7f} </script>";
        let tag = FileTag {
            fingerprint: "c7c50c1ef50cbb9bd7e8dca013e6e8cdfb03969af477914235a2cec1385db87b".into(),
            attempt: 1,
            name: format!("name {odd}.csv"),
        };
        let origin = Origin {
            tag: &tag,
            format: "orders-csv",
        };
        for (key, locator, unit, line, byte) in [
            ("B00000001", None, 0, 1, 0),
            // Plain but for one character to escape.
            ("back\\slash", Some("say \"hi\""), 1, 2, 3),
            (odd, Some(odd), u64::MAX, 9, 123_456_789),
            (
                "",
                Some("ISA 1 / GS 2 / ST 0001, segment 1 of set"),
                7,
                0,
                u64::MAX,
            ),
        ] {
            let mut r = rec("order", key);
            r.source = SourceRef {
                unit,
                line,
                byte,
                locator: locator.map(str::to_string),
            };
            let mut mine = Vec::new();
            append_line(&mut mine, &LineHead::new(origin), &r).unwrap();
            assert_eq!(
                String::from_utf8(mine).unwrap(),
                String::from_utf8(by_serde(origin, &r)).unwrap()
            );
        }
    }

    /// An outbox taking every entity, in `dir`.
    fn outbox(dir: &Path) -> Outbox {
        Outbox {
            dir: dir.join("out"),
            staging: dir.join("stage"),
            entities: crate::canonical::Entity::ALL.to_vec(),
        }
    }

    fn tag(fingerprint: &str, attempt: i64, name: &str) -> FileTag {
        FileTag {
            fingerprint: fingerprint.into(),
            attempt,
            name: name.into(),
        }
    }

    /// A batch of `tag`'s file, of a format named `x`.
    fn origin(tag: &FileTag) -> Origin<'_> {
        Origin { tag, format: "x" }
    }

    fn rec(entity: &str, key: &str) -> OutRecord {
        OutRecord {
            entity: Cow::Owned(entity.into()),
            key: key.into(),
            source: SourceRef {
                unit: 0,
                line: 1,
                byte: 0,
                locator: None,
            },
            data: serde_json::json!({"k": key}).to_string(),
        }
    }

    #[test]
    fn stage_then_publish_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let o = outbox(d.path());
        let tag = tag("abcdef0123456789", 1, "orders.csv");
        let chunks = o
            .stage(
                origin(&tag),
                0,
                &[rec("order", "1"), rec("product", "p"), rec("order", "2")],
            )
            .unwrap()
            .rows;
        assert_eq!(chunks.len(), 2);
        assert!(
            !d.path().join("out/order").exists(),
            "staged records are not visible"
        );
        o.publish(&tag, &chunks).unwrap();
        o.publish(&tag, &chunks).unwrap();
        let text =
            std::fs::read_to_string(d.path().join("out/order/orders-abcdef012345-000000.jsonl"))
                .unwrap();
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn discard_removes_staged_chunks() {
        let d = tempfile::tempdir().unwrap();
        let o = outbox(d.path());
        let tag = tag("ff", 2, "x");
        let chunks = o.stage(origin(&tag), 3, &[rec("order", "1")]).unwrap().rows;
        o.discard(&tag, &chunks).unwrap();
        o.discard(&tag, &chunks).unwrap();
        assert!(!Path::new(&chunks[0].staged_path).exists());
        assert!(
            o.publish(&tag, &chunks).is_err(),
            "a discarded chunk can't be published"
        );
    }

    /// A staged chunk is checked by its length and CRC-32: whole, it is kept (and synced);
    /// cut short, zeroed or grown, it is removed to be written again. One published, or
    /// staged before checks were kept, is left alone.
    #[test]
    fn confirm_keeps_a_whole_chunk_and_removes_a_torn_one() {
        let d = tempfile::tempdir().unwrap();
        let o = outbox(d.path());
        let tag = tag("0123456789ab", 1, "t.csv");
        let records: Vec<OutRecord> = (0..50).map(|i| rec("order", &i.to_string())).collect();
        let staged = o.stage(origin(&tag), 0, &records).unwrap();
        assert_eq!(staged.files.len(), 1);
        assert_eq!(
            staged.dir.as_deref(),
            Path::new(&staged.rows[0].staged_path).parent()
        );
        let c = staged.rows[0].clone();
        let bytes = std::fs::read(&c.staged_path).unwrap();
        let check = c.check.unwrap();
        assert_eq!(check.bytes, bytes.len() as u64);
        assert_eq!(check.crc, crc32fast::hash(&bytes));
        assert!(o.confirm(&c).unwrap());
        assert_eq!(std::fs::read(&c.staged_path).unwrap(), bytes);
        type Damage<'a> = &'a dyn Fn(&mut Vec<u8>);
        let damages: [Damage; 3] = [
            &|b| b.truncate(b.len() / 2),
            &|b| {
                let from = b.len() / 3;
                b[from..].iter_mut().for_each(|x| *x = 0)
            },
            &|b| b.extend_from_slice(b"{}\n"),
        ];
        for damage in damages {
            let mut torn = bytes.clone();
            damage(&mut torn);
            std::fs::write(&c.staged_path, &torn).unwrap();
            assert!(!o.confirm(&c).unwrap());
            assert!(!Path::new(&c.staged_path).exists());
        }
        // Gone from staging (published, or vanished: publish tells which), or unchecked.
        assert!(o.confirm(&c).unwrap());
        std::fs::write(&c.staged_path, b"anything").unwrap();
        let unchecked = ChunkRow { check: None, ..c };
        assert!(o.confirm(&unchecked).unwrap());
    }
}
