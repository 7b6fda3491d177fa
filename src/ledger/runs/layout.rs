//! The bytes of a packed run: each unit's numbers as varint steps from the unit before,
//! its texts length-prefixed, the whole deflated. Kept apart from the SQL that stores and
//! finds runs, as it is the part a damaged run is checked against (it must fail, never
//! panic) and the part the ledger's other blobs (lists of versions, made.rs) share.

use std::io::{Read, Write};

use flate2::write::DeflateEncoder;

use super::{corrupt, Packed, StoredUnit};
use crate::ledger::model::UnitRow;
use crate::ledger::spans::{put, put_unsigned, take, take_unsigned};
use crate::ledger::Result;

/// What of a packed unit is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::ledger) enum Decode {
    Whole,
    /// Its numbers (seq, first ordinal, line count, first line's place) and detail: what
    /// its outcome needs (status and reasons are those of every packed unit), and where it
    /// starts. Its label is left empty, and its key, locator and spans out: an
    /// acknowledgement asks the outcome of every unit of a file, and decoding them whole,
    /// the 997 of a 100,000-set interchange made 400,000 texts it never read.
    Outcome,
}

/// Starts every run's bytes, so another layout can follow.
const LAYOUT: u8 = 1;

pub(super) fn pack<'u>(units: impl ExactSizeIterator<Item = &'u UnitRow>) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(64 * units.len());
    raw.push(LAYOUT);
    put_unsigned(&mut raw, units.len() as u64);
    let mut steps = Steps::default();
    for u in units {
        let pos = (u.pos.line as i64, u.pos.byte as i64, u.pos.record as i64);
        put_steps(
            &mut raw,
            &mut steps,
            u.seq,
            u.first_ordinal,
            u.line_count,
            pos,
        );
        put_bytes(&mut raw, Some(u.label.as_bytes()));
        put_bytes(&mut raw, u.key.as_deref().map(str::as_bytes));
        put_bytes(&mut raw, u.pos.locator.as_deref().map(str::as_bytes));
        put_bytes(&mut raw, u.spans.as_deref());
        let detail = match u.detail.is_null() {
            true => None,
            false => Some(serde_json::to_string(&u.detail)?),
        };
        put_bytes(&mut raw, detail.as_deref().map(str::as_bytes));
    }
    deflate(&[&raw], "units")
}

pub(super) fn unpack_blob(blob: &[u8]) -> Result<Vec<StoredUnit>> {
    let raw = inflate(blob, "a packed run of units")?;
    read_units(&raw).ok_or_else(|| corrupt("a packed run of units is cut short"))
}

/// How hard stored blobs (runs, lists of versions) are deflated; acknowledgements are
/// deflated at the same level as they are written (`format::ack_body`). flate2 runs on
/// zlib-rs here (a dependency turns it on), whose level 1 is zlib-ng's "quick" strategy:
/// on a CSV's runs it left them 1.6 times the size level 2 does (unit runs of 100 MB of
/// orders, 4.1 MB against 2.6 MB), and level 2 took 1.3 times as long, a few milliseconds
/// a batch. Levels above 2 gained under 2% for twice the time.
fn packing() -> flate2::Compression {
    flate2::Compression::new(2)
}

thread_local! {
    /// The committing thread's compressor, reset for each blob: a new one allocated and
    /// zeroed its tables (a few hundred KiB) for every run and list of versions, two per
    /// batch, and cost three times the instructions of a reset.
    static PACKER: std::cell::RefCell<Option<DeflateEncoder<Vec<u8>>>> =
        const { std::cell::RefCell::new(None) };
}

/// `parts`, one after the other, deflated: how runs and lists of versions are stored.
pub(in crate::ledger) fn deflate(parts: &[&[u8]], what: &str) -> Result<Vec<u8>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let out = Vec::with_capacity(len / 4);
    let packed = PACKER.with(|packer| -> std::io::Result<Vec<u8>> {
        let mut packer = packer.borrow_mut();
        let z = match packer.as_mut() {
            Some(z) => {
                z.reset(out)?;
                z
            }
            None => packer.insert(DeflateEncoder::new(out, packing())),
        };
        for p in parts {
            z.write_all(p)?;
        }
        z.try_finish()?;
        Ok(std::mem::take(z.get_mut()))
    });
    packed.map_err(|e| corrupt(&format!("packing {what}: {e}")))
}

/// A stored blob inflated again (`what` names it in the error).
pub(in crate::ledger) fn inflate(blob: &[u8], what: &str) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(blob.len() * 4);
    flate2::read::DeflateDecoder::new(blob)
        .read_to_end(&mut raw)
        .map_err(|e| corrupt(&format!("{what} does not inflate: {e}")))?;
    Ok(raw)
}

/// The count of entries `raw` holds after its `layout` byte, and the entries' bytes;
/// `None` for another layout or a count cut short.
pub(in crate::ledger) fn counted(raw: &[u8], layout: u8) -> Option<(usize, &[u8])> {
    let (&l, mut buf) = raw.split_first()?;
    if l != layout {
        return None;
    }
    let count = take_unsigned(&mut buf)? as usize;
    Some((count, buf))
}

fn read_units(raw: &[u8]) -> Option<Vec<StoredUnit>> {
    let (count, mut buf) = counted(raw, LAYOUT)?;
    // A count is no allocation promise: a damaged run must not ask for gigabytes.
    let mut out = Vec::with_capacity(count.min(buf.len()));
    let mut steps = Steps::default();
    for _ in 0..count {
        out.push(read_unit(&mut buf, &mut steps, Decode::Whole)?);
    }
    Some(out)
}

/// The running values a run's numbers are steps from: the unit before's seq, the line
/// after its lines, and its first line's `(line, byte, record)`.
#[derive(Debug, Clone, Copy, Default)]
struct Steps {
    seq: i64,
    ordinal: i64,
    first: (i64, i64, i64),
}

/// Writes one unit's numbers as steps from the unit before ([`take_steps`] reads them).
fn put_steps(
    raw: &mut Vec<u8>,
    steps: &mut Steps,
    seq: i64,
    first_ordinal: i64,
    line_count: i64,
    first: (i64, i64, i64),
) {
    let f = steps.first;
    for n in [seq - steps.seq, first_ordinal - steps.ordinal, line_count] {
        put(raw, n);
    }
    for n in [first.0 - f.0, first.1 - f.1, first.2 - f.2] {
        put(raw, n);
    }
    *steps = Steps {
        seq,
        ordinal: first_ordinal + line_count,
        first,
    };
}

/// Takes one unit's numbers off `buf`: its first ordinal and line count; `steps` moves on.
fn take_steps(buf: &mut &[u8], steps: &mut Steps) -> Option<(i64, i64)> {
    steps.seq += take(buf)?;
    let first_ordinal = steps.ordinal + take(buf)?;
    let line_count = take(buf)?;
    let f = &mut steps.first;
    *f = (f.0 + take(buf)?, f.1 + take(buf)?, f.2 + take(buf)?);
    steps.ordinal = first_ordinal + line_count;
    Some((first_ordinal, line_count))
}

fn read_unit(buf: &mut &[u8], steps: &mut Steps, decode: Decode) -> Option<StoredUnit> {
    let (first_ordinal, line_count) = take_steps(buf, steps)?;
    let text = |b: Option<Vec<u8>>| match b {
        None => Some(None),
        Some(b) => String::from_utf8(b).ok().map(Some),
    };
    let (label, key, locator, spans) = match decode {
        Decode::Whole => (
            text(take_bytes(buf)?)??,
            text(take_bytes(buf)?)?,
            text(take_bytes(buf)?)?,
            take_bytes(buf)?,
        ),
        Decode::Outcome => {
            for _ in 0..4 {
                skip_bytes(buf)?;
            }
            (String::new(), None, None, None)
        }
    };
    let detail = text(take_bytes(buf)?)?;
    Some(StoredUnit::packed(Packed {
        seq: steps.seq,
        label,
        key,
        first_ordinal,
        line_count,
        first: steps.first,
        locator,
        spans,
        detail,
    }))
}

/// A run inflated, with where each of its units starts: [`UnitReader`] keeps one and
/// decodes only the units it is asked for (decoding every unit of a run, five texts each,
/// was most of the corrections file's cost, which asks one unit in a few thousand).
///
/// [`UnitReader`]: super::UnitReader
pub(super) struct RunIndex {
    file_id: i64,
    first_seq: i64,
    end_seq: i64,
    raw: Vec<u8>,
    /// Each unit's seq, the offset of its bytes in `raw`, and the steps before it.
    at: Vec<(i64, usize, Steps)>,
}

impl RunIndex {
    pub(super) fn new(file_id: i64, first_seq: i64, end_seq: i64, blob: &[u8]) -> Result<RunIndex> {
        let raw = inflate(blob, "a packed run of units")?;
        let at = index_units(&raw).ok_or_else(|| corrupt("a packed run of units is cut short"))?;
        Ok(RunIndex {
            file_id,
            first_seq,
            end_seq,
            raw,
            at,
        })
    }

    pub(super) fn holds(&self, file_id: i64, seq: i64) -> bool {
        self.file_id == file_id && (self.first_seq..self.end_seq).contains(&seq)
    }

    pub(super) fn get(&self, seq: i64, decode: Decode) -> Result<Option<StoredUnit>> {
        let Ok(i) = self.at.binary_search_by_key(&seq, |a| a.0) else {
            return Ok(None);
        };
        self.decode(i, decode).map(Some)
    }

    /// Adds its units with `from <= seq < to` to `out`, at most `limit` of them.
    pub(super) fn between(
        &self,
        from: i64,
        to: i64,
        limit: usize,
        decode: Decode,
        out: &mut Vec<StoredUnit>,
    ) -> Result<()> {
        let start = self.at.partition_point(|a| a.0 < from);
        let end = self
            .at
            .partition_point(|a| a.0 < to)
            .min(start.saturating_add(limit));
        for i in start..end.max(start) {
            out.push(self.decode(i, decode)?);
        }
        Ok(())
    }

    fn decode(&self, i: usize, decode: Decode) -> Result<StoredUnit> {
        let (_, offset, mut steps) = self.at[i];
        let mut buf = &self.raw[offset..];
        read_unit(&mut buf, &mut steps, decode)
            .ok_or_else(|| corrupt("a packed run of units is cut short"))
    }
}

/// Where each unit of an inflated run starts (see [`RunIndex`]), passing over its texts.
fn index_units(raw: &[u8]) -> Option<Vec<(i64, usize, Steps)>> {
    let (count, mut buf) = counted(raw, LAYOUT)?;
    let mut out = Vec::with_capacity(count.min(buf.len()));
    let mut steps = Steps::default();
    for _ in 0..count {
        let (offset, before) = (raw.len() - buf.len(), steps);
        take_steps(&mut buf, &mut steps)?;
        for _ in 0..5 {
            skip_bytes(&mut buf)?;
        }
        out.push((steps.seq, offset, before));
    }
    Some(out)
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(0),
        Some(b) => {
            put_unsigned(out, b.len() as u64 + 1);
            out.extend_from_slice(b);
        }
    }
}

/// `None` when cut short; `Some(None)` for an absent value.
fn take_bytes(buf: &mut &[u8]) -> Option<Option<Vec<u8>>> {
    let n = take_unsigned(buf)? as usize;
    if n == 0 {
        return Some(None);
    }
    let (b, rest) = (buf.get(..n - 1)?, &buf[n - 1..]);
    *buf = rest;
    Some(Some(b.to_vec()))
}

/// [`take_bytes`] without the copy.
fn skip_bytes(buf: &mut &[u8]) -> Option<()> {
    let n = take_unsigned(buf)? as usize;
    *buf = buf.get(n.saturating_sub(1)..)?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::Position;

    /// The reused compressor packs each blob as a fresh one does, whatever it packed
    /// before (a long blob, an empty one, one in parts), and each inflates back.
    #[test]
    fn a_reused_compressor_packs_as_a_fresh_one() {
        let fresh = |parts: &[&[u8]]| {
            let mut z = DeflateEncoder::new(Vec::new(), packing());
            parts.iter().for_each(|p| z.write_all(p).unwrap());
            z.finish().unwrap()
        };
        let long: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let blobs: [&[&[u8]]; 5] = [
            &[b"first run"],
            &[&long],
            &[],
            &[b"in ", b"three ", b"parts"],
            &[&long[..777], b"tail"],
        ];
        for parts in blobs.iter().chain(blobs.iter().rev()) {
            let packed = deflate(parts, "test").unwrap();
            assert_eq!(packed, fresh(parts));
            assert_eq!(inflate(&packed, "test").unwrap(), parts.concat());
        }
    }

    fn unit(seq: i64, ordinal: i64, lines: i64, key: Option<&str>) -> UnitRow {
        let mut pos = Position::new(ordinal as u64 + 2, 100 * ordinal as u64, ordinal as u64 + 1);
        pos.locator = key.map(|k| format!("ISA 1 / GS 2 / ST {k}, segment 1 of set"));
        UnitRow {
            seq,
            label: format!("order {}", key.unwrap_or("?")),
            status: crate::format::UnitStatus::Applied,
            key: key.map(String::from),
            first_ordinal: ordinal,
            line_count: lines,
            pos,
            spans: (lines > 1).then(|| vec![0x80, 0, 2, 2, 33, 34]),
            reasons: Vec::new(),
            detail: serde_json::Value::Null,
            tolerated: Vec::new(),
        }
    }

    /// Units with seq gaps, an absent and an empty key, a non-ASCII key, and a detail.
    fn sample_units() -> [UnitRow; 4] {
        let mut units = [
            unit(7, 20, 3, Some("B0001")),
            unit(8, 23, 1, None),
            unit(11, 40, 4, Some("B0004 ünï")),
            unit(12, 44, 2, Some("")),
        ];
        units[2].detail = serde_json::json!({"DOCNUM": "0000000000000001", "MANDT": "715"});
        units
    }

    #[test]
    fn a_run_gives_back_every_unit_it_was_given_with_gaps_and_absent_fields() {
        let units = sample_units();
        let back = unpack_blob(&pack(units.iter()).unwrap()).unwrap();
        assert_eq!(back.len(), units.len());
        for (b, u) in back.iter().zip(&units) {
            assert_eq!(b.seq, u.seq);
            assert_eq!(b.label, u.label);
            assert_eq!(b.status, "applied");
            assert_eq!(b.key, u.key);
            assert_eq!(
                (b.first_ordinal, b.line_count),
                (u.first_ordinal, u.line_count)
            );
            let p = &u.pos;
            assert_eq!(b.first, (p.line as i64, p.byte as i64, p.record as i64));
            assert_eq!(b.locator, p.locator);
            assert_eq!(b.spans, u.spans);
            let detail: Option<serde_json::Value> = b
                .detail
                .as_deref()
                .map(|d| serde_json::from_str(d).unwrap());
            assert_eq!(detail.unwrap_or_default(), u.detail);
        }
    }

    /// Decoded for its outcome, a unit has the same numbers, place and detail, and no texts.
    #[test]
    fn an_indexed_run_decodes_the_unit_asked_as_the_whole_run_does() {
        let blob = pack(sample_units().iter()).unwrap();
        let whole = unpack_blob(&blob).unwrap();
        let run = RunIndex::new(5, 7, 13, &blob).unwrap();
        for seq in 0..15 {
            let expected = whole.iter().find(|u| u.seq == seq).cloned();
            assert_eq!(run.get(seq, Decode::Whole).unwrap(), expected, "seq {seq}");
            let outcome = expected.map(|u| StoredUnit {
                label: String::new(),
                key: None,
                locator: None,
                spans: None,
                ..u
            });
            assert_eq!(run.get(seq, Decode::Outcome).unwrap(), outcome, "seq {seq}");
        }
        assert!(run.holds(5, 12) && !run.holds(5, 13) && !run.holds(6, 8));
    }

    #[test]
    fn a_damaged_run_is_an_error_not_a_panic() {
        let units = [unit(0, 0, 3, Some("B1")), unit(1, 3, 3, Some("B2"))];
        let mut raw = Vec::new();
        flate2::read::DeflateDecoder::new(&pack(units.iter()).unwrap()[..])
            .read_to_end(&mut raw)
            .unwrap();
        for cut in 0..raw.len() {
            assert!(read_units(&raw[..cut]).is_none(), "cut at {cut}");
            assert!(index_units(&raw[..cut]).is_none(), "cut at {cut}");
        }
        assert!(unpack_blob(b"not deflate at all").is_err());
        // A count of a billion units in a few bytes allocates nothing much.
        assert!(read_units(&[LAYOUT, 0x80, 0x94, 0xeb, 0xdc, 0x03]).is_none());
    }
}
