//! The text of one cell, kept inside the cell when it is short ([`SmallText`]), and the
//! trim every cell gets.

use crate::small_text::SmallText;

/// The longest cell text kept inline: what fits beside the length and the variant's tag in
/// the 24 bytes a `String` takes.
pub const INLINE: usize = 22;

/// A cell's text: inline up to [`INLINE`] bytes.
pub type CellText = SmallText<INLINE>;

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
    fn a_cell_is_no_larger_than_before() {
        assert_eq!(
            std::mem::size_of::<CellText>(),
            std::mem::size_of::<String>()
        );
        assert!(std::mem::size_of::<super::super::Cell>() <= 32);
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
