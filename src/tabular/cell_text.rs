//! The text of one cell, kept inside the cell when it is short ([`SmallText`]).

use crate::small_text::SmallText;

/// The longest cell text kept inline: what fits beside the length and the variant's tag in
/// the 24 bytes a `String` takes.
pub const INLINE: usize = 22;

/// A cell's text: inline up to [`INLINE`] bytes.
pub type CellText = SmallText<INLINE>;

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
}
