//! Text from outside shown to people or put into URLs: file names and values are escaped
//! before they reach a terminal, a summary line or a log, so a name with a newline cannot
//! forge a summary line and control characters cannot drive the reader's terminal; keys
//! are percent-encoded before they become part of a URL.

use std::borrow::Cow;

/// `s` with control characters, and the Unicode controls that reorder text, written as
/// escapes (`\n`, `\t`, `\u{202e}`). Plain names come back unchanged and unallocated.
pub fn name(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` as one URL path segment or query value (RFC 3986 unreserved characters kept).
pub fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_a_newline_in_a_file_name_cannot_forge_a_summary_line() {
        let evil = "x.csv\napplied                fake.csv";
        let shown = name(evil);
        assert!(!shown.contains('\n'));
        assert_eq!(shown, "x.csv\\napplied                fake.csv");
        assert_eq!(name("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(name("abc\u{202e}gpj.exe"), "abc\\u{202e}gpj.exe");
    }

    #[test]
    fn plain_names_are_not_copied() {
        assert!(matches!(name("orders-2026.csv"), Cow::Borrowed(_)));
        assert!(matches!(
            name("bestellung-für-müller.csv"),
            Cow::Borrowed(_)
        ));
    }
}
