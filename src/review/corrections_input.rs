//! The input of a CSV corrections file, read at the byte ranges of its rejected rows, in
//! file order.
//!
//! A row was a seek and a read: two system calls a row, 58,000 for the rejected rows of a
//! 200 MB orders file with one order in 97 rejected. The file is now read through a window
//! that grows while the rows it is asked for lie close together (most rows come from the
//! window already read) and shrinks back to a row's worth when they lie far apart (the
//! gaps between them are not read).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::tabular::charset::{Decoding, Transcoder};

/// What a row's read starts with; the window never shrinks below it.
const LEAST: usize = 2048;
/// The most a window reads at once.
const MOST: usize = 256 * 1024;
/// What the bytes between two rows of a transcoding are read by at a time.
const SKIP_BUFFER: usize = 8 * 1024;

/// The input, positioned at the byte ranges the ledger gives, in file order.
pub(super) enum Input {
    /// Offsets are the file's own.
    File(Window),
    /// Offsets are those of the UTF-8 transcoding: read forward through it.
    Transcoded {
        inner: Box<Transcoder<BufReader<File>>>,
        pos: u64,
        /// What the bytes between two rows are read into and dropped from.
        skipped: Vec<u8>,
    },
}

impl Input {
    pub(super) fn open(path: &Path, decoding: Decoding, chunk: usize) -> io::Result<Input> {
        let file = File::open(path)?;
        Ok(match decoding {
            Decoding::Transcode(enc) => Input::Transcoded {
                inner: Box::new(Transcoder::new(BufReader::new(file), enc, chunk)),
                pos: 0,
                skipped: vec![0; SKIP_BUFFER],
            },
            _ => Input::File(Window::new(file)),
        })
    }

    /// The bytes `[start, end)` (`end` may be `u64::MAX`: to the end of the file); the
    /// caller reads them to the end.
    pub(super) fn range(&mut self, start: u64, end: u64) -> io::Result<Box<dyn Read + '_>> {
        let len = end.saturating_sub(start);
        match self {
            Input::File(w) => w.range(start, end),
            Input::Transcoded {
                inner,
                pos,
                skipped,
            } => {
                if start < *pos {
                    return Err(io::Error::other("corrections: rows out of file order"));
                }
                copy_through(
                    &mut inner.by_ref().take(start - *pos),
                    &mut io::sink(),
                    skipped,
                )?;
                *pos = end;
                Ok(Box::new(inner.by_ref().take(len)))
            }
        }
    }
}

/// Copies what is left of `input` to `out` through `buf`. Not `io::copy`: for a `dyn Read`
/// that copies through a stack buffer of 8 KiB it zeroes first, and rows call this one by
/// one, most of them with a few bytes left or none.
pub(super) fn copy_through(
    input: &mut dyn Read,
    out: &mut dyn Write,
    buf: &mut [u8],
) -> io::Result<()> {
    loop {
        match input.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => out.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A file read at offsets through a buffer of the bytes last read.
pub(super) struct Window {
    file: File,
    buf: Vec<u8>,
    /// The offset of `buf[0]`.
    at: u64,
    /// How much the next read asks for.
    size: usize,
    /// Ranges served from the current window: how the next one is sized.
    served: u32,
}

impl Window {
    fn new(file: File) -> Window {
        Window {
            file,
            buf: Vec::new(),
            at: 0,
            size: LEAST,
            served: 0,
        }
    }

    fn holds(&self, offset: u64) -> bool {
        offset >= self.at && offset - self.at < self.buf.len() as u64
    }

    fn range(&mut self, start: u64, end: u64) -> io::Result<Box<dyn Read + '_>> {
        if self.holds(start) {
            self.served += 1;
        } else {
            self.refill(start)?;
        }
        let from = (start - self.at) as usize;
        let held_end = self.at + self.buf.len() as u64;
        let upto = ((end.min(held_end) - self.at) as usize).max(from);
        let rest = Positioned {
            file: &self.file,
            pos: held_end,
            end: end.max(held_end),
        };
        Ok(Box::new(self.buf[from..upto].chain(rest)))
    }

    /// Reads the window at `start`, sized by how the last one served: doubled when it
    /// served more than one range, halved when it served one.
    fn refill(&mut self, start: u64) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.size = match self.served {
                0 | 1 => (self.size / 2).max(LEAST),
                _ => (self.size * 2).min(MOST),
            };
        }
        self.served = 1;
        self.at = start;
        self.buf.resize(self.size, 0);
        let mut got = 0;
        while got < self.buf.len() {
            match self.file.read_at(&mut self.buf[got..], start + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.truncate(got);
        Ok(())
    }
}

/// The file from `pos` up to `end`, read at its offsets (the window's own position is
/// never moved).
struct Positioned<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Positioned<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut out[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_over(bytes: &[u8]) -> (tempfile::TempDir, Window) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("in.csv");
        std::fs::write(&p, bytes).unwrap();
        let w = Window::new(File::open(&p).unwrap());
        (d, w)
    }

    fn read(w: &mut Window, start: u64, end: u64) -> Vec<u8> {
        let mut v = Vec::new();
        w.range(start, end).unwrap().read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn every_range_reads_the_files_bytes_whether_in_the_window_past_it_or_to_the_end() {
        let bytes: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let (_d, mut w) = window_over(&bytes);
        let ranges = [
            (0, 10),
            (10, 3000),
            (2500, 2600),
            (2600, 9000),
            (20_000, 20_001),
            (20_001, 39_000),
            (39_500, u64::MAX),
            (40_000, u64::MAX),
        ];
        for (s, e) in ranges {
            let want = &bytes[s as usize..(e.min(bytes.len() as u64)) as usize];
            assert_eq!(read(&mut w, s, e), want, "[{s}, {e})");
        }
    }

    #[test]
    fn the_window_grows_over_close_rows_and_shrinks_over_far_ones() {
        let bytes = vec![b'x'; 8 << 20];
        let (_d, mut w) = window_over(&bytes);
        // Rows 100 bytes apart: the window doubles each time it serves several.
        let mut at = 0;
        while at < 1 << 20 {
            read(&mut w, at, at + 50);
            at += 100;
        }
        assert_eq!(w.size, MOST);
        // Rows 1 MiB apart: each window serves one, and the next is half its size.
        for i in 2..5u64 {
            read(&mut w, i << 20, (i << 20) + 50);
        }
        assert_eq!(w.size, MOST / 4);
        assert_eq!(w.buf.len(), MOST / 4);
    }
}
