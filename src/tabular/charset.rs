//! How CSV bytes become text: the `encoding` of a definition, and the decision `auto`
//! makes from the start of a file.
//!
//! Byte offsets in reject reports are only useful if they are offsets in the file the
//! partner sent, so bytes are parsed first and decoded per record whenever that is safe:
//! for UTF-8 and every single-byte encoding, and for a multi-byte legacy encoding (Big5,
//! GBK, Shift_JIS, EUC-JP, EUC-KR) when none of the delimiter, quote or line-break bytes
//! can be the trail byte of a character (a `|` inside a Big5 character must not split a
//! field). Where it is not safe (UTF-16, ISO-2022-JP, Big5 with `|` as delimiter...) the
//! stream is transcoded to UTF-8 before parsing and offsets refer to the transcoding.
//!
//! `auto` never guesses between scripts: a wrong guess applies hundreds of records with
//! garbled names and no warning. It takes a BOM, then UTF-8 if the first 64 KiB are
//! UTF-8, then Windows-1252 only if the detector (`chardetng`, Firefox's) says so; any
//! other file is refused (rule `encoding`) naming the likely encodings and the setting.

use std::io::Read;

use encoding_rs::{Encoding as Enc, BIG5, EUC_JP, EUC_KR, GBK, SHIFT_JIS, UTF_16BE, UTF_16LE};

use crate::format::FileError;
use crate::unit::Position;

/// What a definition says about the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8, with or without a BOM (stripped).
    Utf8,
    /// True ISO-8859-1: byte n is U+00nn (WHATWG's label maps it to windows-1252 instead).
    Latin1,
    /// UTF-16: a BOM decides the byte order, this one without a BOM.
    Utf16(&'static Enc),
    /// Any other encoding `encoding_rs` knows: windows-125x, ISO-8859-x, KOI8, Big5, GBK,
    /// gb18030, Shift_JIS, EUC-JP, EUC-KR, ISO-2022-JP...
    Legacy(&'static Enc),
    /// BOM, else UTF-8 if valid, else Windows-1252 if it reads as such, else refused.
    Auto,
}

impl Encoding {
    /// Parses an `encoding` value: `auto`, `iso-8859-1` (true Latin-1), or any label
    /// `encoding_rs::Encoding::for_label` knows.
    pub fn parse(label: &str) -> Result<Encoding, String> {
        let l = label.trim().to_ascii_lowercase();
        match l.as_str() {
            "auto" => return Ok(Encoding::Auto),
            "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" => return Ok(Encoding::Latin1),
            "utf-16" | "utf16" => return Ok(Encoding::Utf16(UTF_16LE)),
            _ => {}
        }
        match Enc::for_label(l.as_bytes()) {
            Some(e) if e == encoding_rs::UTF_8 => Ok(Encoding::Utf8),
            Some(e) if e == UTF_16LE || e == UTF_16BE => Ok(Encoding::Utf16(e)),
            Some(e) if e == encoding_rs::REPLACEMENT => Err(format!(
                "encoding '{label}' is not supported (it can hide content; the WHATWG standard maps it to the replacement encoding)"
            )),
            Some(e) => Ok(Encoding::Legacy(e)),
            None => Err(format!(
                "unknown encoding '{label}' (e.g. utf-8, windows-1252, iso-8859-1, utf-16, big5, gbk, shift_jis, euc-jp, euc-kr, or auto)"
            )),
        }
    }
}

/// How a file's bytes are turned into text, decided when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoding {
    /// UTF-8, checked per record. `auto` says `encoding = "auto"` chose it.
    Utf8 { auto: bool },
    /// True ISO-8859-1.
    Latin1,
    /// Parsed as bytes, each record decoded afterwards: offsets are the file's own.
    PerRecord(&'static Enc),
    /// Transcoded to UTF-8 while streaming: offsets refer to the transcoding.
    Transcode(&'static Enc),
}

/// ASCII bytes that can be the second (or fourth) byte of a character of `enc`, and so
/// must not be split on. A WHATWG decoder also gives an ASCII byte back when the pair is
/// not a character, but a parser cannot know that in advance: the whole range counts.
/// `tests::trail_byte_ranges_match_the_decoders` checks these against encoding_rs.
fn ascii_can_be_trail(enc: &'static Enc, b: u8) -> bool {
    if enc.is_single_byte() || enc == EUC_JP {
        false
    } else if enc == BIG5 || enc == SHIFT_JIS {
        (0x40..=0x7E).contains(&b)
    } else if enc == GBK || enc == encoding_rs::GB18030 {
        (0x30..=0x39).contains(&b) || (0x40..=0x7E).contains(&b)
    } else if enc == EUC_KR {
        (0x41..=0x7E).contains(&b)
    } else {
        // ISO-2022-JP (7-bit, stateful) and anything unknown: never split on raw bytes.
        true
    }
}

/// How to read a non-auto encoding with this delimiter and quote.
pub fn plan_fixed(enc: Encoding, delimiter: u8, quote: Option<u8>) -> Decoding {
    match enc {
        Encoding::Utf8 | Encoding::Auto => Decoding::Utf8 { auto: false },
        Encoding::Latin1 => Decoding::Latin1,
        Encoding::Utf16(e) => Decoding::Transcode(e),
        Encoding::Legacy(e) => {
            let special = [Some(delimiter), quote, Some(b'\r'), Some(b'\n')];
            if special.iter().flatten().any(|&b| ascii_can_be_trail(e, b)) {
                Decoding::Transcode(e)
            } else {
                Decoding::PerRecord(e)
            }
        }
    }
}

/// Decides `auto` from the first bytes of a file (`complete`: they are the whole file).
/// `Err` explains why it cannot tell, naming the likely encodings.
pub fn plan_auto(head: &[u8], complete: bool) -> Result<Decoding, AutoRefusal> {
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Ok(Decoding::Utf8 { auto: true });
    }
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        // The decoder's BOM sniffing picks the byte order.
        return Ok(Decoding::Transcode(UTF_16LE));
    }
    if let Some(e) = crate::format::content::utf16_without_bom(head) {
        return Err(AutoRefusal {
            offset: None,
            likely: vec![e],
            why: format!("it looks like {} without a byte-order mark", e.name()),
        });
    }
    let bad = match std::str::from_utf8(head) {
        Ok(_) => None,
        // A character cut at the end of the sample is not an error.
        Err(e) if e.error_len().is_none() && !complete => None,
        Err(e) => Some(e.valid_up_to()),
    };
    let Some(at) = bad else {
        return Ok(Decoding::Utf8 { auto: true });
    };
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(head, complete);
    let guess = det.guess(None, chardetng::Utf8Detection::Deny);
    if guess == encoding_rs::WINDOWS_1252 {
        return Ok(Decoding::PerRecord(guess));
    }
    let mut likely = vec![guess];
    for e in [BIG5, GBK, SHIFT_JIS, EUC_JP, EUC_KR] {
        if !likely.contains(&e) && decodes_cleanly(e, head, complete) {
            likely.push(e);
        }
    }
    Err(AutoRefusal {
        offset: Some(at),
        likely,
        why: format!(
            "it is not UTF-8 (byte 0x{:02X} at offset {at}) and does not read as Windows-1252 text",
            head[at]
        ),
    })
}

fn decodes_cleanly(e: &'static Enc, head: &[u8], complete: bool) -> bool {
    let mut d = e.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(
        d.max_utf8_buffer_length_without_replacement(head.len())
            .unwrap_or(head.len() * 3),
    );
    let (r, _) = d.decode_to_string_without_replacement(head, &mut out, complete);
    !matches!(r, encoding_rs::DecoderResult::Malformed(..))
}

/// Why `auto` would not pick an encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoRefusal {
    /// Offset of the first byte that is not UTF-8, when that is the reason.
    pub offset: Option<usize>,
    /// Most likely first.
    pub likely: Vec<&'static Enc>,
    pub why: String,
}

impl AutoRefusal {
    /// The file-level error, telling what to write in which definition.
    pub fn into_error(self, head: &[u8], format: &str) -> FileError {
        let names: Vec<&str> = self.likely.iter().map(|e| e.name()).collect();
        let first = names.first().copied().unwrap_or("utf-8");
        let also = if names.len() > 1 {
            format!(" (it also decodes as {})", names[1..].join(", "))
        } else {
            String::new()
        };
        let message = format!(
            "encoding = \"auto\" cannot tell how this file is encoded: {}. Likely {first}{also}; \
             if that is right, set encoding = \"{}\" in the [csv] table of format '{format}'",
            self.why,
            first.to_ascii_lowercase()
        );
        match self.offset {
            Some(at) => {
                let line = 1 + memchr::memchr_iter(b'\n', &head[..at]).count() as u64;
                FileError::at(Position::new(line, at as u64, 0), "encoding", message)
            }
            None => FileError::new("encoding", message),
        }
    }
}

/// Streaming transcoder to UTF-8 (UTF-16 with BOM sniffing; legacy encodings without).
pub struct Transcoder<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    done: bool,
}

impl<R: Read> Transcoder<R> {
    pub fn new(inner: R, enc: &'static Enc, chunk: usize) -> Self {
        let decoder = if enc == UTF_16LE || enc == UTF_16BE {
            enc.new_decoder()
        } else {
            enc.new_decoder_without_bom_handling()
        };
        Transcoder {
            inner,
            decoder,
            inbuf: vec![0; chunk],
            out: Vec::with_capacity(chunk * 2),
            out_pos: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.out_pos >= self.out.len() {
            if self.done {
                return Ok(0);
            }
            let n = self.inner.read(&mut self.inbuf)?;
            let last = n == 0;
            self.out.clear();
            self.out_pos = 0;
            let need = self.decoder.max_utf8_buffer_length(n).unwrap_or(n * 3 + 16);
            self.out.resize(need, 0);
            let (_, read, written, _) =
                self.decoder
                    .decode_to_utf8(&self.inbuf[..n], &mut self.out, last);
            debug_assert_eq!(read, n);
            self.out.truncate(written);
            self.done = last;
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_encoding_rs_are_accepted() {
        assert_eq!(Encoding::parse("Big5"), Ok(Encoding::Legacy(BIG5)));
        assert_eq!(Encoding::parse("gb2312"), Ok(Encoding::Legacy(GBK)));
        assert_eq!(Encoding::parse("sjis"), Ok(Encoding::Legacy(SHIFT_JIS)));
        assert_eq!(Encoding::parse("latin1"), Ok(Encoding::Latin1));
        assert_eq!(
            Encoding::parse("cp1252"),
            Ok(Encoding::Legacy(encoding_rs::WINDOWS_1252))
        );
        assert_eq!(Encoding::parse("utf-16be"), Ok(Encoding::Utf16(UTF_16BE)));
        assert_eq!(Encoding::parse("UTF8"), Ok(Encoding::Utf8));
        assert!(Encoding::parse("iso-2022-kr")
            .unwrap_err()
            .contains("not supported"));
        assert!(Encoding::parse("klingon")
            .unwrap_err()
            .contains("unknown encoding"));
    }

    /// Every (lead, ASCII byte) pair the decoder turns into one character proves that
    /// ASCII byte can be a trail byte; it must be in `ascii_can_be_trail`.
    #[test]
    fn trail_byte_ranges_match_the_decoders() {
        for enc in [BIG5, GBK, encoding_rs::GB18030, SHIFT_JIS, EUC_JP, EUC_KR] {
            for lead in 0x80..=0xFFu8 {
                for b in 0..0x80u8 {
                    let pair = [lead, b];
                    let (text, _) = enc.decode_without_bom_handling(&pair);
                    // The ASCII byte survived as itself unless it was consumed.
                    let kept = text.ends_with(b as char);
                    assert!(
                        kept || ascii_can_be_trail(enc, b),
                        "{}: 0x{lead:02X} 0x{b:02X} -> {text:?}",
                        enc.name()
                    );
                }
            }
            // gb18030 four-byte sequences end in a digit as well.
            if enc != BIG5 && enc != SHIFT_JIS && enc != EUC_JP && enc != EUC_KR {
                let (text, _) = enc.decode_without_bom_handling(&[0x81, 0x30, 0x81, 0x30]);
                assert_eq!(text.chars().count(), 1);
                assert!(ascii_can_be_trail(enc, b'0'));
            }
        }
        for b in [b',', b';', b'\t', b'"', b'\'', b'\r', b'\n'] {
            for enc in [BIG5, GBK, SHIFT_JIS, EUC_JP, EUC_KR] {
                assert!(!ascii_can_be_trail(enc, b), "{} {b}", enc.name());
            }
        }
    }

    #[test]
    fn unsafe_delimiters_transcode() {
        let big5 = Encoding::Legacy(BIG5);
        assert_eq!(
            plan_fixed(big5, b',', Some(b'"')),
            Decoding::PerRecord(BIG5)
        );
        assert_eq!(
            plan_fixed(big5, b'|', Some(b'"')),
            Decoding::Transcode(BIG5)
        );
        let jis = Encoding::Legacy(encoding_rs::ISO_2022_JP);
        assert_eq!(
            plan_fixed(jis, b',', None),
            Decoding::Transcode(encoding_rs::ISO_2022_JP)
        );
    }

    #[test]
    fn auto_takes_bom_utf8_and_western_text_and_refuses_the_rest() {
        assert_eq!(plan_auto(b"a,b\n", true), Ok(Decoding::Utf8 { auto: true }));
        assert_eq!(
            plan_auto("a,é\n".as_bytes(), true),
            Ok(Decoding::Utf8 { auto: true })
        );
        // A character cut at the end of the sample is not a reason to refuse.
        assert_eq!(
            plan_auto(&"a,é".as_bytes()[..3], false),
            Ok(Decoding::Utf8 { auto: true })
        );
        let (latin, _, _) =
            encoding_rs::WINDOWS_1252.encode("name,city\nMüller,Köln\nGarçon,Besançon\n");
        assert_eq!(
            plan_auto(&latin, true),
            Ok(Decoding::PerRecord(encoding_rs::WINDOWS_1252))
        );
        let (big5, _, _) = BIG5.encode("品名,價格\n中文產品名稱,10\n繁體字測試,20\n");
        let refusal = plan_auto(&big5, true).unwrap_err();
        assert_eq!(refusal.likely[0], BIG5, "{refusal:?}");
        let e = refusal.into_error(&big5, "products");
        assert_eq!(e.reason.rule, "encoding");
        assert!(
            e.reason.message.contains("set encoding = \"big5\""),
            "{}",
            e.reason.message
        );
        let utf16: Vec<u8> = "a,b\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let refusal = plan_auto(&utf16, true).unwrap_err();
        assert_eq!(refusal.likely, vec![UTF_16LE]);
    }
}
