//! An outbound acknowledgement's bytes, held deflated from the moment they are made.
//!
//! An acknowledgement answers every document of its file, so it grows with the file: the
//! 997 for an interchange of 1.3 million sets is 22 MB. Its text was built whole, copied
//! into zlib for the ledger, and inflated whole again to write the file and even to list
//! its name, so a 300 MB interchange took 60 MB more at its end than while it was read.
//! Here the text goes through zlib as it is written ([`AckWriter`]); the ledger stores the
//! deflated bytes as they are, and publishing inflates them straight into the file
//! ([`AckBody::write_to`]). Nothing holds more than a segment or two of it in plain text.

use std::fmt;
use std::io::{self, Write};

use flate2::bufread::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

/// How hard acknowledgements are deflated: the ledger's blobs use the same level (level 1
/// of zlib-rs is a "quick" strategy that left them 1.6 times the size).
const LEVEL: u32 = 2;
/// Plain text gathered before it goes through zlib.
const CHUNK: usize = 64 * 1024;

/// An acknowledgement's content, zlib-deflated.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AckBody {
    zlib: Vec<u8>,
}

impl fmt::Debug for AckBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AckBody({} bytes deflated)", self.zlib.len())
    }
}

impl AckBody {
    /// The body of `text`, deflated at once (for acknowledgements built whole).
    pub fn from_text(text: &[u8]) -> AckBody {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::new(LEVEL));
        // Writing into a Vec cannot fail.
        let _ = z.write_all(text);
        AckBody {
            zlib: z.finish().unwrap_or_default(),
        }
    }

    /// A body as the ledger stored it: zlib bytes, checked when they are read.
    pub fn from_zlib(zlib: Vec<u8>) -> AckBody {
        AckBody { zlib }
    }

    /// The deflated bytes, as the ledger stores them.
    pub fn zlib(&self) -> &[u8] {
        &self.zlib
    }

    /// The bodies one after another: their zlib streams back to back, not deflated again.
    pub fn join(parts: impl IntoIterator<Item = AckBody>) -> AckBody {
        let mut zlib = Vec::new();
        parts.into_iter().for_each(|p| zlib.extend(p.zlib));
        AckBody { zlib }
    }

    /// Inflates the body into `out`, a piece at a time, stream after stream (see
    /// [`Self::join`]); the bytes written.
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<u64> {
        let mut rest = &self.zlib[..];
        let mut written = 0;
        while !rest.is_empty() {
            let mut z = ZlibDecoder::new(rest);
            written += io::copy(&mut z, out).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("an acknowledgement's stored bytes do not inflate: {e}"),
                )
            })?;
            // The decoder takes from the slice only what its stream held; a stream that
            // took nothing would have this loop turn for ever.
            let left = z.into_inner();
            if left.len() == rest.len() {
                let msg = "an acknowledgement's stored bytes stop inflating before their end";
                return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
            }
            rest = left;
        }
        Ok(written)
    }

    /// The whole text (for tests and tools; publishing uses [`Self::write_to`]).
    pub fn bytes(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// The text's first `max` bytes (as far as they are UTF-8) and the whole text's length,
    /// for showing an acknowledgement of any size without holding it.
    pub fn head(&self, max: usize) -> (String, u64) {
        struct Head(Vec<u8>, usize);
        impl Write for Head {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let room = self.1 - self.0.len();
                self.0.extend_from_slice(&b[..b.len().min(room)]);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut head = Head(Vec::new(), max);
        let total = self.write_to(&mut head).unwrap_or(0);
        let total = total.max(head.0.len() as u64);
        (String::from_utf8_lossy(&head.0).into_owned(), total)
    }

    /// The whole text, as far as it is UTF-8 and inflates.
    pub fn text_lossy(&self) -> String {
        let mut out = Vec::new();
        let _ = self.write_to(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Writes an acknowledgement's text through zlib as it is made.
pub struct AckWriter {
    plain: String,
    z: ZlibEncoder<Vec<u8>>,
}

impl Default for AckWriter {
    fn default() -> AckWriter {
        AckWriter {
            plain: String::with_capacity(CHUNK),
            z: ZlibEncoder::new(Vec::new(), Compression::new(LEVEL)),
        }
    }
}

impl AckWriter {
    pub fn push_str(&mut self, s: &str) {
        self.plain.push_str(s);
        self.spill(CHUNK);
    }

    /// Deflates the plain text held once it reaches `at` bytes.
    fn spill(&mut self, at: usize) {
        if self.plain.len() >= at && !self.plain.is_empty() {
            // Writing into a Vec cannot fail.
            let _ = self.z.write_all(self.plain.as_bytes());
            self.plain.clear();
        }
    }

    pub fn finish(mut self) -> AckBody {
        self.spill(0);
        // Finishing into a Vec cannot fail.
        let zlib = self.z.finish().unwrap_or_default();
        AckBody { zlib }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_written_in_pieces_reads_back_whole() {
        let mut w = AckWriter::default();
        let mut want = String::new();
        for i in 0..50_000 {
            let seg = format!("AK2*850*{i:09}~\n");
            w.push_str(&seg);
            w.push_str("AK5*A");
            w.push_str("~");
            want.push_str(&seg);
            want.push_str("AK5*A~");
        }
        let body = w.finish();
        assert!(body.zlib().len() * 5 < want.len(), "{}", body.zlib().len());
        assert_eq!(body.bytes().unwrap(), want.as_bytes());
        assert_eq!(body.text_lossy(), want);
        assert_eq!(
            AckBody::from_text(want.as_bytes()).bytes().unwrap(),
            want.as_bytes()
        );
        assert_eq!(AckBody::from_text(b"").bytes().unwrap(), b"");
        let (head, total) = body.head(100);
        assert_eq!((head.as_str(), total), (&want[..100], want.len() as u64));
        let stored = AckBody::from_zlib(body.zlib().to_vec());
        let mut file = Vec::new();
        assert_eq!(stored.write_to(&mut file).unwrap(), want.len() as u64);
        assert_eq!(file, want.as_bytes());
    }

    /// Bodies joined read back as their texts one after another; an empty one adds
    /// nothing; a joined body cut inside its second stream is an error.
    #[test]
    fn joined_bodies_read_back_one_after_another() {
        let parts = ["<head>\n", "", &"<E1STATS/>\n".repeat(10_000), "</tail>\n"];
        let joined = AckBody::join(parts.iter().map(|p| AckBody::from_text(p.as_bytes())));
        assert_eq!(joined.bytes().unwrap(), parts.concat().as_bytes());
        assert_eq!(AckBody::join([]).bytes().unwrap(), b"");
        let first = AckBody::from_text(parts[0].as_bytes()).zlib().len();
        let cut = AckBody::from_zlib(joined.zlib()[..first + 3].to_vec());
        assert!(cut.bytes().is_err());
    }

    #[test]
    fn stored_bytes_that_do_not_inflate_are_an_error_when_written() {
        let body = AckBody::from_text(&b"ISA*00~".repeat(1000));
        let cut = AckBody::from_zlib(body.zlib()[..body.zlib().len() / 2].to_vec());
        let err = cut.bytes().unwrap_err().to_string();
        assert!(err.contains("do not inflate"), "{err}");
        assert!(AckBody::from_zlib(b"not zlib".to_vec()).bytes().is_err());
    }
}
