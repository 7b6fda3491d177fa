//! The text of one cell, kept inside the cell when it is short.
//!
//! A CSV row arrives as a handful of short cells (codes, numbers, dates, a name), each of
//! which was its own allocation: made on the reading thread, freed on a worker after the
//! row was evaluated. Keeping them inline took a 4 MB orders file from 2.24 to 2.14 G
//! instructions (callgrind), the reading thread's share from 442 to 423 M. A cell of up
//! to [`INLINE`] bytes now lives in the cell itself, at the size a `String` took; longer
//! text goes to the heap once, as a `Box<str>`.

use std::fmt;
use std::ops::Deref;

/// The longest text kept inline: what fits beside the length and the variant's tag in
/// the 24 bytes a `String` takes.
pub const INLINE: usize = 22;

#[derive(Clone)]
pub struct CellText(Repr);

#[derive(Clone)]
enum Repr {
    /// `buf[..len]` is UTF-8: it is only ever filled from a `&str` (see `CellText::new`).
    Inline {
        len: u8,
        buf: [u8; INLINE],
    },
    Heap(Box<str>),
}

impl CellText {
    pub fn new(text: &str) -> CellText {
        if text.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..text.len()].copy_from_slice(text.as_bytes());
            CellText(Repr::Inline {
                len: text.len() as u8,
                buf,
            })
        } else {
            CellText(Repr::Heap(text.into()))
        }
    }

    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // SAFETY: `buf[..len]` was copied from a `&str` in `new`, whole, and is never
            // written again, so it is valid UTF-8.
            Repr::Inline { len, buf } => unsafe {
                std::str::from_utf8_unchecked(buf.get_unchecked(..*len as usize))
            },
            Repr::Heap(s) => s,
        }
    }
}

impl Deref for CellText {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for CellText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for CellText {
    fn from(text: &str) -> CellText {
        CellText::new(text)
    }
}

impl From<String> for CellText {
    fn from(text: String) -> CellText {
        if text.len() <= INLINE {
            CellText::new(&text)
        } else {
            CellText(Repr::Heap(text.into_boxed_str()))
        }
    }
}

/// Text a decoder borrowed keeps no allocation; text it had to own keeps its own when long.
impl From<std::borrow::Cow<'_, str>> for CellText {
    fn from(text: std::borrow::Cow<'_, str>) -> CellText {
        match text {
            std::borrow::Cow::Borrowed(t) => t.into(),
            std::borrow::Cow::Owned(t) => t.into(),
        }
    }
}

impl PartialEq for CellText {
    fn eq(&self, other: &CellText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<str> for CellText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CellText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<&CellText> for String {
    fn from(text: &CellText) -> String {
        text.as_str().to_string()
    }
}

impl fmt::Debug for CellText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for CellText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `str::trim`, answered from the end bytes when both are ASCII and not white space, as
/// nearly every cell's are: a cell is trimmed where it is checked and where a blank row is
/// told, and `str::trim` decoding characters from both ends was 4% of a CSV run.
pub fn trim(s: &str) -> &str {
    let plain = |b: Option<&u8>| b.is_some_and(|&b| b > b' ' && b.is_ascii());
    let b = s.as_bytes();
    if plain(b.first()) && plain(b.last()) {
        s
    } else {
        s.trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_text_read_back_as_given() {
        for text in [
            "",
            "EUR",
            "Widget, size 1",
            "ßüö€ multibyte 12345",
            "exactly twenty-two by.",
            "twenty-three bytes long",
            "a much longer description that cannot stay inline",
        ] {
            assert_eq!(CellText::new(text).as_str(), text);
            assert_eq!(CellText::from(text.to_string()).as_str(), text);
            assert_eq!(&*CellText::from(text).clone(), text);
            assert_eq!(
                CellText::from(std::borrow::Cow::Borrowed(text)).as_str(),
                text
            );
            let owned: std::borrow::Cow<'_, str> = text.to_string().into();
            assert_eq!(CellText::from(owned).as_str(), text);
        }
        assert_eq!("exactly twenty-two by.".len(), INLINE);
    }

    #[test]
    fn inline_up_to_the_limit_heap_above() {
        assert!(matches!(
            CellText::new(&"x".repeat(INLINE)).0,
            Repr::Inline { .. }
        ));
        assert!(matches!(
            CellText::new(&"x".repeat(INLINE + 1)).0,
            Repr::Heap(_)
        ));
    }

    #[test]
    fn a_cell_is_no_larger_than_before() {
        assert_eq!(
            std::mem::size_of::<CellText>(),
            std::mem::size_of::<String>()
        );
        assert!(std::mem::size_of::<super::super::Cell>() <= 32);
    }

    #[test]
    fn equality_and_formatting_are_the_texts() {
        assert_eq!(CellText::new("A-1"), CellText::from("A-1".to_string()));
        assert_ne!(CellText::new("A-1"), CellText::new("A-2"));
        assert!(CellText::new("PR") == "PR" && CellText::new("PR") != "PO");
        assert_eq!(String::from(&CellText::new("PR")), "PR");
        assert_eq!(format!("{:?}", CellText::new("a\"b")), "\"a\\\"b\"");
        assert_eq!(CellText::new("x y").to_string(), "x y");
    }

    #[test]
    fn trim_is_str_trim() {
        let ends = [
            "", "a", " ", "\t", "\n", "\r", "\u{b}", "\u{c}", "\u{1c}", "\u{1f}", "\u{7f}", "!",
            "~", "\u{85}", "\u{a0}", "\u{3000}", "\u{2028}", "\u{feff}", "é", "0",
        ];
        for a in ends {
            for b in ends {
                for mid in ["", "x", " y ", "\u{a0}"] {
                    let s = format!("{a}{mid}{b}");
                    assert_eq!(trim(&s), s.trim(), "{s:?}");
                }
            }
        }
    }
}
