//! Which record versions a file made, kept as one packed row per batch instead of an
//! index entry per version.
//!
//! `versions` is keyed by entity and key: what the duplicate checks ask. "Every version
//! file F made in units a..b" (queueing a decided file's deliveries, writing a lost outbox
//! chunk again, taking back what a rejected or failed file applied) was answered by the
//! index `versions_file`, an entry per version: 29 bytes of every 80 a version cost, and a
//! B-tree insert each on the committing thread. A batch now writes one `version_runs` row
//! listing its versions (unit, place in it, entity, key, version; each number the
//! difference from the one before, deflated), and those questions read the lists of the
//! batches they touch, then each version by its primary key. A listed version is taken as
//! the file's only while its row still names that file and unit: a version may have been
//! taken back since, and made again by another file.
//!
//! Rows whose `packed` is NULL stand for the versions a file made before these lists were
//! kept (migration 16 writes one per file still in flight); they are found by scanning
//! `versions` for the file, once.

use super::db::{params, params_from_iter, Connection, Transaction, Value};
use super::runs::{corrupt, counted, deflate, inflate};
use super::spans::{put, put_unsigned, take, take_unsigned};
use super::Result;

/// A version a file made, as `versions` has it now.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Made {
    pub entity: String,
    pub key: String,
    pub version: i64,
    pub unit_seq: i64,
    pub ordinal: i64,
    pub data: Option<String>,
}

/// The versions a batch made, listed as they are added.
#[derive(Default)]
pub(super) struct MadeList {
    file_id: i64,
    seqs: Option<(i64, i64)>,
    count: u64,
    raw: Vec<u8>,
    last_seq: i64,
}

impl MadeList {
    pub fn push(
        &mut self,
        file_id: i64,
        entity: &str,
        key: &str,
        version: i64,
        seq: i64,
        ordinal: i64,
    ) {
        self.file_id = file_id;
        self.seqs = Some(match self.seqs {
            None => (seq, seq + 1),
            Some((a, b)) => (a.min(seq), b.max(seq + 1)),
        });
        self.count += 1;
        put(&mut self.raw, seq - self.last_seq);
        put(&mut self.raw, ordinal);
        put_text(&mut self.raw, entity);
        put_text(&mut self.raw, key);
        put(&mut self.raw, version);
        self.last_seq = seq;
    }

    /// Writes the list as the batch's row (nothing when it made no version).
    pub fn write(self, tx: &Transaction) -> Result<()> {
        let Some((first, end)) = self.seqs else {
            return Ok(());
        };
        let mut head = vec![LAYOUT];
        put_unsigned(&mut head, self.count);
        let packed = deflate(&[&head, &self.raw], "versions made")?;
        tx.prepare_cached(
            "INSERT INTO version_runs(file_id, first_seq, end_seq, versions, packed) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![self.file_id, first, end, self.count as i64, packed])?;
        Ok(())
    }
}

/// Calls `each` with the versions file `file_id` made in units `from..to` that are still
/// its own, a batch at a time, in batch order.
pub(super) fn each_batch(
    conn: &Connection,
    file_id: i64,
    from: i64,
    to: i64,
    mut each: impl FnMut(Vec<Made>) -> Result<()>,
) -> Result<()> {
    // From the row that holds `from` on: a seek, not a walk over the file's earlier rows.
    let start: Option<i64> = conn
        .prepare_cached(
            "SELECT MAX(first_seq) FROM version_runs WHERE file_id=?1 AND first_seq <= ?2",
        )?
        .query_row(params![file_id, from], |r| r.get(0))?;
    let mut after = start.unwrap_or(from) - 1;
    loop {
        // A row at a time: a file of millions of records must not be read all at once.
        let run: Option<(i64, i64, Option<Vec<u8>>)> = {
            let mut st = conn.prepare_cached(
                "SELECT first_seq, end_seq, packed FROM version_runs WHERE file_id=?1 AND first_seq > ?2 \
                 AND first_seq < ?3 ORDER BY first_seq LIMIT 1",
            )?;
            let mut q = st.query(params![file_id, after, to])?;
            match q.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?, r.get(2)?)),
                None => None,
            }
        };
        let Some((first, end, packed)) = run else {
            return Ok(());
        };
        after = first;
        if end <= from {
            continue;
        }
        let made = match packed {
            Some(blob) => confirm(conn, file_id, unpack(&blob)?)?,
            None => legacy(conn, file_id, end)?,
        };
        let made: Vec<Made> = made
            .into_iter()
            .filter(|m| m.unit_seq >= from && m.unit_seq < to)
            .collect();
        if !made.is_empty() {
            each(made)?;
        }
    }
}

/// Takes back the versions file `file_id` made in units `from..to` of the entities `gone`
/// says (each version by its primary key).
pub(super) fn forget(
    tx: &Transaction,
    file_id: i64,
    from: i64,
    to: i64,
    gone: impl Fn(&str) -> bool,
) -> Result<()> {
    each_batch(tx, file_id, from, to, |made| {
        let made: Vec<&Made> = made.iter().filter(|m| gone(&m.entity)).collect();
        for chunk in made.chunks(100) {
            let sql = by_primary_key("DELETE FROM versions", chunk.len());
            let args = chunk.iter().flat_map(|m| {
                [
                    Value::Text(&m.entity),
                    Value::Text(&m.key),
                    Value::Int(m.version),
                ]
            });
            tx.prepare_cached(&sql)?.execute(params_from_iter(args))?;
        }
        Ok(())
    })
}

/// The listed versions as `versions` has them, those still the file's and their unit's.
fn confirm(conn: &Connection, file_id: i64, listed: Vec<Listed>) -> Result<Vec<Made>> {
    let mut out = Vec::with_capacity(listed.len());
    for chunk in listed.chunks(100) {
        let sql = by_primary_key(
            "SELECT entity, key, version, file_id, unit_seq, ordinal, data FROM versions",
            chunk.len(),
        );
        let args = chunk.iter().flat_map(|m| {
            [
                Value::Text(&m.entity),
                Value::Text(&m.key),
                Value::Int(m.version),
            ]
        });
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map(params_from_iter(args), |r| {
            Ok((
                r.get::<_, i64>(3)?,
                Made {
                    entity: r.get(0)?,
                    key: r.get(1)?,
                    version: r.get(2)?,
                    unit_seq: r.get(4)?,
                    ordinal: r.get(5)?,
                    data: r.get(6)?,
                },
            ))
        })?;
        // In the order listed (the order the batch made them), not the index's; only
        // those still the file's and their unit's.
        let listed: std::collections::HashMap<(&str, &str, i64), (usize, i64)> = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| ((l.entity.as_str(), l.key.as_str(), l.version), (i, l.seq)))
            .collect();
        let mut placed = Vec::new();
        for row in rows {
            let (owner, m) = row?;
            let at = listed.get(&(m.entity.as_str(), m.key.as_str(), m.version));
            if let Some(&(i, _)) = at.filter(|(_, seq)| owner == file_id && *seq == m.unit_seq) {
                placed.push((i, m));
            }
        }
        placed.sort_by_key(|(i, _)| *i);
        out.extend(placed.into_iter().map(|(_, m)| m));
    }
    Ok(out)
}

/// `head` for `n` versions by primary key, bound as (entity, key, version) each. The
/// version is cast: PostgreSQL takes a parameter in a VALUES list for text.
pub(super) fn by_primary_key(head: &str, n: usize) -> String {
    use std::fmt::Write;
    let mut sql = format!("{head} WHERE (entity, key, version) IN (VALUES ");
    for i in 0..n {
        let sep = if i == 0 { "" } else { ", " };
        let p = 3 * i;
        let _ = write!(
            sql,
            "{sep}(?{}, ?{}, CAST(?{} AS BIGINT))",
            p + 1,
            p + 2,
            p + 3
        );
    }
    sql.push(')');
    sql
}

/// A file's versions from before lists were kept, in units before `end` (see the
/// module's note).
fn legacy(conn: &Connection, file_id: i64, end: i64) -> Result<Vec<Made>> {
    let mut st = conn.prepare_cached(
        "SELECT entity, key, version, unit_seq, ordinal, data FROM versions WHERE file_id=?1 \
         AND unit_seq < ?2 ORDER BY unit_seq, ordinal",
    )?;
    let rows = st
        .query_map(params![file_id, end], |r| {
            Ok(Made {
                entity: r.get(0)?,
                key: r.get(1)?,
                version: r.get(2)?,
                unit_seq: r.get(3)?,
                ordinal: r.get(4)?,
                data: r.get(5)?,
            })
        })?
        .collect::<super::db::Result<Vec<_>>>()?;
    Ok(rows)
}

/// A version as a list names it.
struct Listed {
    entity: String,
    key: String,
    version: i64,
    seq: i64,
}

/// Starts every list's bytes, so another layout can follow.
const LAYOUT: u8 = 1;

fn unpack(blob: &[u8]) -> Result<Vec<Listed>> {
    let raw = inflate(blob, "a list of versions made")?;
    read(&raw).ok_or_else(|| corrupt("a list of versions made is cut short"))
}

fn read(raw: &[u8]) -> Option<Vec<Listed>> {
    let (count, mut buf) = counted(raw, LAYOUT)?;
    let mut out = Vec::with_capacity(count.min(buf.len()));
    let mut seq = 0;
    for _ in 0..count {
        seq += take(&mut buf)?;
        let _ordinal = take(&mut buf)?;
        let entity = take_text(&mut buf)?;
        let key = take_text(&mut buf)?;
        let version = take(&mut buf)?;
        out.push(Listed {
            entity,
            key,
            version,
            seq,
        });
    }
    Some(out)
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    put_unsigned(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn take_text(buf: &mut &[u8]) -> Option<String> {
    let n = take_unsigned(buf)? as usize;
    let (s, rest) = (buf.get(..n)?, &buf[n..]);
    *buf = rest;
    String::from_utf8(s.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_gives_back_every_version_in_order_and_a_cut_one_is_refused() {
        let mut l = MadeList::default();
        let made = [
            ("order", "B1", 1, 4, 0),
            ("customer", "C1", 3, 4, 1),
            ("order", "B2 ünï", 1, 6, 0),
            ("order", "", 2, 5, 0),
        ];
        for (e, k, v, s, o) in made {
            l.push(7, e, k, v, s, o);
        }
        assert_eq!((l.file_id, l.seqs, l.count), (7, Some((4, 7)), 4));
        let mut raw = vec![LAYOUT];
        put_unsigned(&mut raw, l.count);
        raw.extend_from_slice(&l.raw);
        let back = read(&raw).unwrap();
        let got: Vec<(&str, &str, i64, i64)> = back
            .iter()
            .map(|m| (m.entity.as_str(), m.key.as_str(), m.version, m.seq))
            .collect();
        let want: Vec<(&str, &str, i64, i64)> = made.iter().map(|m| (m.0, m.1, m.2, m.3)).collect();
        assert_eq!(got, want);
        for cut in 0..raw.len() {
            assert!(read(&raw[..cut]).is_none(), "cut at {cut}");
        }
        assert!(unpack(b"not deflate").is_err());
    }
}
