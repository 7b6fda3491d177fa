//! What the first bytes of a file say about it, independent of any format definition.
//!
//! When no definition claims a file, "no format matches" alone sends the reviewer
//! guessing. Most such files are recognisable at a glance by their bytes — empty, all NUL,
//! UTF-16 saved without a byte-order mark, a zip or PDF, an X12 or XML file nobody
//! defined — so these observations are made once per unmatched file and put into its
//! message, next to the closest definition's own explanation.

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE};

/// How much of the head the byte statistics look at.
const SAMPLE: usize = 4096;

/// UTF-16 without a BOM: NUL bytes at nearly every second position (ASCII text in
/// UTF-16 is one NUL per character) and almost none at the others.
pub fn utf16_without_bom(head: &[u8]) -> Option<&'static Encoding> {
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return None;
    }
    let sample = &head[..head.len().min(SAMPLE) & !1];
    let pairs = sample.len() / 2;
    if pairs < 2 {
        return None;
    }
    let even = sample.iter().step_by(2).filter(|&&b| b == 0).count();
    let odd = sample
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|&&b| b == 0)
        .count();
    let many = |n: usize| n * 10 >= pairs * 4;
    let few = |n: usize| n * 20 <= pairs;
    if many(odd) && few(even) {
        Some(UTF_16LE)
    } else if many(even) && few(odd) {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// Short facts about the content, each readable after "this file: ".
pub fn observations(head: &[u8]) -> Vec<String> {
    if head.is_empty() {
        return vec!["the file is empty".into()];
    }
    if head.iter().all(|&b| b == 0) {
        return vec![format!(
            "it is all NUL bytes ({} seen), not text",
            head.len()
        )];
    }
    if let Some(kind) = container(head) {
        return vec![kind.into()];
    }
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return vec!["it is UTF-16 text (it starts with a byte-order mark)".into()];
    }
    if let Some(e) = utf16_without_bom(head) {
        return vec![format!(
            "it looks like {} text without a byte-order mark (a NUL byte at every second position)",
            e.name()
        )];
    }
    let sample = &head[..head.len().min(SAMPLE)];
    let control = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C))
        .count();
    if control * 10 > sample.len() || sample.contains(&0) {
        return vec![format!(
            "it is binary, not text ({control} NUL or control bytes in its first {} bytes)",
            sample.len()
        )];
    }
    let mut out = Vec::new();
    if let Some(kind) = text_kind(head) {
        out.push(kind.to_string());
    }
    if let Err(e) = std::str::from_utf8(head) {
        if e.error_len().is_some() || head.len() < 65536 {
            let at = e.valid_up_to();
            out.push(format!(
                "it is not UTF-8 (byte 0x{:02X} at offset {at}; a legacy encoding such as windows-1252 or big5?)",
                head[at]
            ));
        }
    }
    out
}

/// Containers recognised by their magic bytes.
fn container(head: &[u8]) -> Option<&'static str> {
    Some(match head {
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => {
            "it is a zip archive (a workbook such as .xlsx or .ods?)"
        }
        [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, ..] => {
            "it is an OLE2 compound file (an .xls workbook?)"
        }
        [b'%', b'P', b'D', b'F', ..] => "it is a PDF document",
        [0x1F, 0x8B, ..] => "it is gzip-compressed",
        _ => return None,
    })
}

/// Text formats recognised by how they start.
fn text_kind(head: &[u8]) -> Option<&'static str> {
    let start = head.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(head);
    let skip = start
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(start.len());
    let t = &start[skip..];
    Some(if t.starts_with(b"ISA") {
        "it looks like an X12 interchange (it starts with ISA), but no X12 definition claims it"
    } else if t.starts_with(b"UNA") || t.starts_with(b"UNB") {
        "it looks like EDIFACT (it starts with UNA/UNB), which tallyman does not read"
    } else if t.starts_with(b"EDI_DC40") {
        "it looks like a flat (non-XML) SAP IDoc"
    } else if t.starts_with(b"<") {
        "it looks like XML, but no definition claims it (an IDoc needs an idoc-type definition)"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    #[test]
    fn utf16_without_bom_by_nul_positions() {
        assert_eq!(
            utf16_without_bom(&utf16le("order_no,qty\n1,2\n")),
            Some(UTF_16LE)
        );
        let be: Vec<u8> = "a,b\n1,2\n"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        assert_eq!(utf16_without_bom(&be), Some(UTF_16BE));
        assert_eq!(utf16_without_bom(b"a,b\n1,2\n"), None);
        assert_eq!(utf16_without_bom(&[0; 64]), None);
    }

    #[test]
    fn observations_name_what_the_bytes_are() {
        assert_eq!(observations(b""), ["the file is empty"]);
        assert!(observations(&[0; 100])[0].contains("all NUL bytes"));
        assert!(
            observations(&utf16le("a,b\n"))[0].contains("UTF-16LE text without a byte-order mark")
        );
        assert!(observations(b"PK\x03\x04rest")[0].contains("zip archive"));
        assert!(observations(b"\x01\x02\x03\x04\x05abc")[0].contains("binary"));
        assert!(observations(b"ISA*00*          *00*")[0].contains("X12"));
        assert!(observations(b"  <?xml version=\"1.0\"?><IDOC>")[0].contains("XML"));
        assert!(observations(b"name\nM\xfcller\n")[0].contains("not UTF-8 (byte 0xFC at offset 6"));
        assert!(observations(b"a,b\n1,2\n").is_empty());
    }
}
