//! Short text kept inline, in the space a `String` or a little more takes.
//!
//! A CSV row arrives as a handful of short cells and an X12 set as a dozen short segments,
//! each of which was its own allocation: made on the reading thread, freed on a worker
//! after the unit was evaluated. Keeping cells inline took a 4 MB orders file from 2.24 to
//! 2.14 G instructions (callgrind), the reading thread's share from 442 to 423 M. Text of
//! up to `N` bytes lives in the value itself; longer text goes to the heap once, as a
//! `Box<str>`.

use std::fmt;
use std::ops::Deref;

/// Text of up to `N` bytes inline. `N` is chosen by its user so that the tag, the length
/// and the bytes fill a size it wants (22 for 24 bytes, 46 for 48).
#[derive(Clone)]
pub struct SmallText<const N: usize>(Repr<N>);

#[derive(Clone)]
enum Repr<const N: usize> {
    /// `buf[..len]` is UTF-8: it is only ever filled from a `&str` (see `SmallText::new`
    /// and `SmallText::new_in`). The bytes past `len` are never read.
    Inline {
        len: u8,
        buf: [u8; N],
    },
    Heap(Box<str>),
}

impl<const N: usize> SmallText<N> {
    /// The longest text kept inline.
    #[cfg(test)]
    const INLINE: usize = N;

    #[inline]
    pub fn new(text: &str) -> Self {
        if text.len() <= N && N <= usize::from(u8::MAX) {
            let mut buf = [0u8; N];
            buf[..text.len()].copy_from_slice(text.as_bytes());
            SmallText(Repr::Inline {
                len: text.len() as u8,
                buf,
            })
        } else {
            SmallText(Repr::Heap(text.into()))
        }
    }

    /// [`SmallText::new`] of `text`, where `text` is the start of `window` (the same
    /// memory): then the first `N` bytes of `window` are copied as one fixed-size block. A
    /// copy of a few bytes of varying length is a call to `memcpy`, and a value assembled
    /// from it stalls the wide load that moves it next; a reader's cells are mostly that.
    #[inline]
    pub fn new_in(text: &str, window: &[u8]) -> Self {
        match window.get(..N) {
            Some(block)
                if text.len() <= N
                    && N <= usize::from(u8::MAX)
                    && std::ptr::eq(block.as_ptr(), text.as_ptr()) =>
            {
                let mut buf = [0u8; N];
                buf.copy_from_slice(block);
                SmallText(Repr::Inline {
                    len: text.len() as u8,
                    buf,
                })
            }
            _ => SmallText::new(text),
        }
    }

    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // SAFETY: `new` and `new_in` set `len` to the length of a `&str` of at most `N`
            // bytes, so `..len` is within `buf`; `buf[..len]` is that text (`new_in` copies
            // it from the memory the `&str` is, checked by address), copied whole and never
            // written again, so it is valid UTF-8.
            Repr::Inline { len, buf } => unsafe {
                std::str::from_utf8_unchecked(buf.get_unchecked(..*len as usize))
            },
            Repr::Heap(s) => s,
        }
    }

    /// Whether the text is kept inline (for tests of the sizes chosen).
    #[cfg(test)]
    fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl<const N: usize> Deref for SmallText<N> {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> AsRef<str> for SmallText<N> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> From<&str> for SmallText<N> {
    fn from(text: &str) -> Self {
        SmallText::new(text)
    }
}

impl<const N: usize> From<String> for SmallText<N> {
    fn from(text: String) -> Self {
        if text.len() <= N {
            SmallText::new(&text)
        } else {
            SmallText(Repr::Heap(text.into_boxed_str()))
        }
    }
}

/// Text a decoder borrowed keeps no allocation; text it had to own keeps its own when long.
impl<const N: usize> From<std::borrow::Cow<'_, str>> for SmallText<N> {
    fn from(text: std::borrow::Cow<'_, str>) -> Self {
        match text {
            std::borrow::Cow::Borrowed(t) => t.into(),
            std::borrow::Cow::Owned(t) => t.into(),
        }
    }
}

impl<const N: usize> PartialEq for SmallText<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for SmallText<N> {}

impl<const N: usize> PartialEq<str> for SmallText<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for SmallText<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> From<&SmallText<N>> for String {
    fn from(text: &SmallText<N>) -> String {
        text.as_str().to_string()
    }
}

impl<const N: usize> fmt::Debug for SmallText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for SmallText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Small = SmallText<22>;

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
            assert_eq!(Small::new(text).as_str(), text);
            assert_eq!(Small::from(text.to_string()).as_str(), text);
            assert_eq!(&*Small::from(text).clone(), text);
            assert_eq!(Small::from(std::borrow::Cow::Borrowed(text)).as_str(), text);
            let owned: std::borrow::Cow<'_, str> = text.to_string().into();
            assert_eq!(Small::from(owned).as_str(), text);
        }
        assert_eq!("exactly twenty-two by.".len(), Small::INLINE);
    }

    /// `new_in` keeps the text, not the rest of its window, and falls back to `new` when
    /// the window is short or is not where the text is.
    #[test]
    fn a_text_copied_with_its_window_reads_back_as_itself() {
        let all = "A-1,Widget, size 1,ßü,a much longer description that cannot stay inline";
        let mut from = 0;
        for cell in all.split(',') {
            let window = &all.as_bytes()[from..];
            let text = &all[from..from + cell.len()];
            let small = Small::new_in(text, window);
            assert_eq!(small.as_str(), cell);
            assert_eq!(small.is_inline(), cell.len() <= 22, "{cell}");
            from += cell.len() + 1;
        }
        let elsewhere = "x".repeat(40);
        assert_eq!(Small::new_in("A-1", elsewhere.as_bytes()).as_str(), "A-1");
        assert_eq!(Small::new_in("", &[]).as_str(), "");
    }

    #[test]
    fn inline_up_to_the_limit_heap_above() {
        assert!(Small::new(&"x".repeat(22)).is_inline());
        assert!(!Small::new(&"x".repeat(23)).is_inline());
        assert!(SmallText::<46>::new(&"x".repeat(46)).is_inline());
        assert!(!SmallText::<46>::from("x".repeat(47)).is_inline());
    }

    #[test]
    fn the_sizes_chosen_fill_their_words() {
        assert_eq!(std::mem::size_of::<SmallText<22>>(), 24);
        assert_eq!(std::mem::size_of::<SmallText<46>>(), 48);
    }

    #[test]
    fn equality_and_formatting_are_the_texts() {
        assert_eq!(Small::new("A-1"), Small::from("A-1".to_string()));
        assert_ne!(Small::new("A-1"), Small::new("A-2"));
        assert!(Small::new("PR") == "PR" && Small::new("PR") != "PO");
        assert_eq!(String::from(&Small::new("PR")), "PR");
        assert_eq!(format!("{:?}", Small::new("a\"b")), "\"a\\\"b\"");
        assert_eq!(Small::new("x y").to_string(), "x y");
    }
}
