//! The sets of a functional group as its acknowledgement needs them, kept small.
//!
//! The reader remembers every set it has read until the file ends, because the 997/999
//! answers each one: its seq (to find the outcome the ledger recorded), its part in an
//! all-or-nothing unit, and its AK2 (ST01 and ST02 as echoed back). Kept as a record with
//! two `String`s in a growing `Vec`, that was about 85 bytes a set: reading a 300 MB
//! interchange of 1.3 million sets grew the process by 110 MB, and a 1 GB file would have
//! taken over 400 MB more than a small one. Here a set is 32 bytes, in chunks of a fixed
//! size, so no doubling leaves room unused or copies the list: its AK2 is made once, as
//! the acknowledgement sends it (an id of three characters and nine of the control
//! number), and kept inline; the rare one that does not fit is kept beside the list.

use super::ack::ak2_elements;

/// Sets a chunk holds (32 KiB).
const CHUNK: usize = 1024;
/// AK2 elements kept inline: `850*000000001` is 13 bytes.
const INLINE: usize = 19;
/// `SetRec::len` of an AK2 kept in `SetList::long`, whose index is in `text[..4]`.
const LONG: u8 = u8::MAX;
/// `SetRec::part` of a set that is its own unit.
const NO_PART: u32 = u32::MAX;

/// One set, 32 bytes.
#[derive(Debug, Clone, Copy)]
struct SetRec {
    /// The unit holding the set: its own, or the merged group/interchange unit.
    seq: u64,
    /// Index of the set's part in a merged unit's `detail.parts`, or [`NO_PART`].
    part: u32,
    len: u8,
    text: [u8; INLINE],
}

/// A set as the acknowledgement reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SetView<'a> {
    pub seq: u64,
    /// Index of the set's part in a merged unit's `detail.parts`.
    pub part: Option<usize>,
    /// The AK2's elements: ST01 and ST02 as they are echoed (`850*000000001`).
    pub ak2: &'a str,
}

/// The sets of one group, in the order they were read.
#[derive(Debug, Clone, Default)]
pub(crate) struct SetList {
    chunks: Vec<Vec<SetRec>>,
    long: Vec<Box<str>>,
    len: usize,
}

impl SetList {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Remembers the set `st01`/`st02` read as unit `seq`.
    pub fn push(&mut self, seq: u64, st01: &str, st02: &str) {
        let ak2 = ak2_elements(st01, st02);
        let mut rec = SetRec {
            seq,
            part: NO_PART,
            len: LONG,
            text: [0; INLINE],
        };
        if ak2.len() <= INLINE {
            rec.len = ak2.len() as u8;
            rec.text[..ak2.len()].copy_from_slice(ak2.as_bytes());
        } else {
            let i = u32::try_from(self.long.len()).expect("fewer than 2^32 sets in a group");
            rec.text[..4].copy_from_slice(&i.to_le_bytes());
            self.long.push(ak2.into_boxed_str());
        }
        match self.chunks.last_mut().filter(|c| c.len() < CHUNK) {
            Some(chunk) => chunk.push(rec),
            None => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(rec);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    pub fn iter(&self) -> impl Iterator<Item = SetView<'_>> {
        self.chunks.iter().flatten().map(|r| SetView {
            seq: r.seq,
            part: (r.part != NO_PART).then_some(r.part as usize),
            ak2: self.ak2(r),
        })
    }

    fn ak2<'a>(&'a self, r: &'a SetRec) -> &'a str {
        if r.len != LONG {
            // Made from a `&str` cut at a char boundary in `push`.
            return std::str::from_utf8(&r.text[..r.len as usize]).unwrap_or_default();
        }
        let i = u32::from_le_bytes([r.text[0], r.text[1], r.text[2], r.text[3]]);
        self.long.get(i as usize).map(|s| &**s).unwrap_or_default()
    }

    /// Points the sets read as units `from..to`, and not yet part of a merged unit, at the
    /// unit merged at `from` and their part in it. Seqs never fall along the list (a merged
    /// unit takes the first seq of its parts, the next unit the one after), so the search
    /// stops at the first set below `from`, from the end.
    pub fn merge(&mut self, from: u64, to: u64) {
        for chunk in self.chunks.iter_mut().rev() {
            for s in chunk.iter_mut().rev() {
                if s.seq < from {
                    return;
                }
                if s.part == NO_PART && s.seq < to {
                    s.part = u32::try_from(s.seq - from).unwrap_or(NO_PART - 1);
                    s.seq = from;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_32_bytes() {
        assert_eq!(std::mem::size_of::<SetRec>(), 32);
    }

    /// Sets across chunks, an AK2 too long to keep inline (multi-byte characters), the
    /// echo's cleaning, and merges that leave earlier merged sets alone.
    #[test]
    fn sets_read_back_as_pushed_and_merged() {
        let mut l = SetList::default();
        let n = CHUNK as u64 * 2 + 10;
        for seq in 1..=n {
            l.push(seq, "850", &format!("{seq:09}"));
        }
        l.push(n + 1, "810", "ÄÖÜÄÖÜÄÖÜ");
        l.push(n + 2, "8~", " 1*2 ");
        assert_eq!(l.len() as u64, n + 2);
        let got: Vec<SetView> = l.iter().collect();
        assert_eq!(got[0].ak2, "850*000000001");
        assert_eq!(got[CHUNK].seq, CHUNK as u64 + 1);
        assert_eq!(got[n as usize].ak2, "810*ÄÖÜÄÖÜÄÖÜ");
        assert_eq!(got[n as usize + 1].ak2, "ZZZ*12");
        assert_eq!(got[n as usize].ak2, ak2_elements("810", "ÄÖÜÄÖÜÄÖÜ"));
        assert!(got.iter().all(|s| s.part.is_none()));

        // Sets 5..8 merged into unit 5; the next unit is 6; then 6..9 merged again.
        let mut l = SetList::default();
        (1..=7).for_each(|seq| l.push(seq, "850", "1"));
        l.merge(5, 8);
        (6..=8).for_each(|seq| l.push(seq, "850", "2"));
        l.merge(6, 9);
        let got: Vec<(u64, Option<usize>)> = l.iter().map(|s| (s.seq, s.part)).collect();
        let want = [
            (1, None),
            (2, None),
            (3, None),
            (4, None),
            (5, Some(0)),
            (5, Some(1)),
            (5, Some(2)),
            (6, Some(0)),
            (6, Some(1)),
            (6, Some(2)),
        ];
        assert_eq!(got, want);
    }
}
