//! The sets of a functional group as its acknowledgement needs them, kept in a few bytes
//! each.
//!
//! The reader remembers every set it has read until the file ends, because the 997/999
//! answers each one: its seq (to find the outcome the ledger recorded), its part in an
//! all-or-nothing unit, and its AK2 (ST01 and ST02 as echoed back). Kept as a record with
//! two `String`s in a growing `Vec`, that was about 85 bytes a set: a 1 GB interchange of
//! 4.3 million sets took 628 MiB. Here each set is a record in a byte list: the step from
//! the seq before (1, nearly always), its part, and its AK2 as the bytes it does not share
//! with the AK2 before (`850*000000041` after `850*000000040` is the one byte `1`): about
//! five bytes a set. The AK2 is made once, as the acknowledgement sends it. The list grows
//! in chunks of a fixed size, so no doubling copies it.

use super::ack::ak2_elements;
use crate::varint::{put_unsigned, take_unsigned};

/// Bytes of records a chunk holds, past the first (which grows from nothing, since most
/// groups are small).
const CHUNK: usize = 64 * 1024;

/// A set as the acknowledgement reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SetView<'a> {
    /// The unit holding the set: its own, or the merged group/interchange unit.
    pub seq: u64,
    /// Index of the set's part in a merged unit's `detail.parts`.
    pub part: Option<usize>,
    /// The AK2's elements: ST01 and ST02 as they are echoed (`850*000000001`).
    pub ak2: &'a str,
}

/// The sets of one group, in the order they were read.
#[derive(Debug, Clone, Default)]
pub(crate) struct SetList {
    chunks: Vec<Vec<u8>>,
    len: usize,
    /// The last set's seq and AK2: what the next record is written against.
    last_seq: u64,
    last_ak2: Vec<u8>,
}

impl SetList {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Remembers the set `st01`/`st02` read as unit `seq`.
    pub fn push(&mut self, seq: u64, st01: &str, st02: &str) {
        self.push_view(SetView {
            seq,
            part: None,
            ak2: &ak2_elements(st01, st02),
        });
    }

    fn push_view(&mut self, s: SetView) {
        // An AK2 is at most 40 bytes (an id of 3 characters, 9 of the control number, up
        // to 4 bytes each); the caps below only keep both lengths in a byte.
        let ak2 = s.ak2.as_bytes();
        let shared = self
            .last_ak2
            .iter()
            .zip(ak2)
            .take(u8::MAX as usize)
            .take_while(|(a, b)| a == b)
            .count();
        let rest = &ak2[shared..ak2.len().min(shared + u8::MAX as usize)];
        // The record is written in place, in a chunk with room for its longest form (two
        // varints of up to 10 bytes, two lengths, the bytes).
        let longest = 22 + rest.len();
        if self.chunks.last().is_none_or(|c| c.len() + longest > CHUNK) {
            let room = if self.chunks.is_empty() { 0 } else { CHUNK };
            self.chunks.push(Vec::with_capacity(room));
        }
        let last = self.chunks.len() - 1;
        let c = &mut self.chunks[last];
        put_unsigned(c, s.seq.wrapping_sub(self.last_seq));
        put_unsigned(c, s.part.map_or(0, |p| p as u64 + 1));
        c.extend([shared as u8, rest.len() as u8]);
        c.extend_from_slice(rest);
        self.last_seq = s.seq;
        self.last_ak2.truncate(shared);
        self.last_ak2.extend_from_slice(rest);
        self.len += 1;
    }

    /// Writes the list for a restart snapshot (see `super::snapshot`).
    pub(super) fn save(&self, out: &mut Vec<u8>) {
        put_unsigned(out, self.len as u64);
        put_unsigned(out, self.last_seq);
        super::snapshot::put_bytes(out, &self.last_ak2);
        put_unsigned(out, self.chunks.iter().map(|c| c.len() as u64).sum());
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
    }

    /// The list [`Self::save`] wrote, read from the front of `b`.
    pub(super) fn restore(b: &mut &[u8]) -> Option<SetList> {
        let len = usize::try_from(take_unsigned(b)?).ok()?;
        let last_seq = take_unsigned(b)?;
        let last_ak2 = super::snapshot::take_bytes(b)?.to_vec();
        let records = super::snapshot::take_bytes(b)?.to_vec();
        Some(SetList {
            chunks: if records.is_empty() {
                Vec::new()
            } else {
                vec![records]
            },
            len,
            last_seq,
            last_ak2,
        })
    }

    /// Calls `f` with every set, in order.
    pub fn each(&self, mut f: impl FnMut(SetView)) {
        let (mut seq, mut ak2) = (0u64, Vec::new());
        for chunk in &self.chunks {
            let mut buf = &chunk[..];
            while !buf.is_empty() {
                let (Some(step), Some(part)) = (take_unsigned(&mut buf), take_unsigned(&mut buf))
                else {
                    return;
                };
                let [shared, n, ..] = *buf else { return };
                let Some(rest) = buf.get(2..2 + n as usize) else {
                    return;
                };
                buf = &buf[2 + n as usize..];
                seq = seq.wrapping_add(step);
                ak2.truncate(shared as usize);
                ak2.extend_from_slice(rest);
                f(SetView {
                    seq,
                    part: part.checked_sub(1).map(|p| p as usize),
                    // Bytes of a `&str` cut where two of them part, put back together.
                    ak2: std::str::from_utf8(&ak2).unwrap_or_default(),
                });
            }
        }
    }

    /// Points the sets read as units `from..to`, and not yet part of a merged unit, at the
    /// unit merged at `from` and their part in it. Seqs never fall along the list (a merged
    /// unit takes the first seq of its parts, the next unit the one after), so a list whose
    /// last set is below `from` has none of them; another is written again.
    pub fn merge(&mut self, from: u64, to: u64) {
        if self.len == 0 || self.last_seq < from {
            return;
        }
        let mut sets: Vec<(u64, Option<usize>, String)> = Vec::with_capacity(self.len);
        self.each(|s| sets.push((s.seq, s.part, s.ak2.to_string())));
        for (seq, part, _) in sets.iter_mut().rev() {
            if *seq < from {
                break;
            }
            if part.is_none() && *seq < to {
                *part = Some((*seq - from) as usize);
                *seq = from;
            }
        }
        *self = SetList::default();
        for (seq, part, ak2) in &sets {
            self.push_view(SetView {
                seq: *seq,
                part: *part,
                ak2,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(l: &SetList) -> Vec<(u64, Option<usize>, String)> {
        let mut out = Vec::new();
        l.each(|s| out.push((s.seq, s.part, s.ak2.to_string())));
        out
    }

    /// Sets across chunks, seqs that jump, AK2s that share nothing or all with the one
    /// before, multi-byte characters (sharing part of one), and the echo's cleaning.
    #[test]
    fn sets_read_back_as_pushed() {
        let mut l = SetList::default();
        let mut want = Vec::new();
        let mut seq = 0;
        for i in 0..40_000u64 {
            seq += if i % 1000 == 0 { 70_000 } else { 1 };
            let st02 = format!("{:09}", i * 7);
            let st01 = if i % 3 == 0 { "810" } else { "850" };
            l.push(seq, st01, &st02);
            want.push((seq, None, format!("{st01}*{st02}")));
        }
        for (st01, st02, ak2) in [
            ("850", "ÄÖÜ", "850*ÄÖÜ"),
            ("850", "ÄÖÄ", "850*ÄÖÄ"),
            ("850", "ÄÖÄ", "850*ÄÖÄ"),
            ("8~", " 1*2 ", "ZZZ*12"),
            ("", "", "ZZZ*"),
        ] {
            seq += 1;
            l.push(seq, st01, st02);
            want.push((seq, None, ak2.to_string()));
        }
        assert!(l.chunks.len() > 2, "{}", l.chunks.len());
        assert_eq!(l.len(), want.len());
        assert_eq!(all(&l), want);
    }

    /// Sets numbered one after another, as senders number them, take about five bytes.
    #[test]
    fn numbered_sets_take_a_few_bytes_each() {
        let mut l = SetList::default();
        (1..=100_000u64).for_each(|i| l.push(i * 2, "850", &format!("{i:09}")));
        let bytes: usize = l.chunks.iter().map(Vec::len).sum();
        assert!(bytes < 100_000 * 6, "{bytes} bytes");
    }

    #[test]
    fn merges_point_sets_at_their_unit_and_leave_earlier_merged_sets_alone() {
        // Sets 5..8 merged into unit 5; the next unit is 6; then 6..9 merged again.
        let mut l = SetList::default();
        (1..=7).for_each(|seq| l.push(seq, "850", &seq.to_string()));
        l.merge(5, 8);
        (6..=8).for_each(|seq| l.push(seq, "850", &format!("1{seq}")));
        let before = all(&l);
        l.merge(9, 10);
        assert_eq!(all(&l), before, "no set at or past 9");
        l.merge(6, 9);
        let got: Vec<(u64, Option<usize>, String)> = all(&l);
        let want: Vec<(u64, Option<usize>, String)> = [
            (1, None, "1"),
            (2, None, "2"),
            (3, None, "3"),
            (4, None, "4"),
            (5, Some(0), "5"),
            (5, Some(1), "6"),
            (5, Some(2), "7"),
            (6, Some(0), "16"),
            (6, Some(1), "17"),
            (6, Some(2), "18"),
        ]
        .map(|(s, p, st02)| (s, p, format!("850*{st02}")))
        .into();
        assert_eq!(got, want);
        l.push(7, "850", "19");
        assert_eq!(all(&l).last().unwrap(), &(7, None, "850*19".to_string()));
    }
}
