//! A transaction set's structure: the tree of segments and loops validation walks, and
//! the indented text notation (`LOOP N1 O 200 ... END`) it is written in. The grammar is
//! self-contained and reports errors by line inside the text, which `set` turns into file
//! lines, so it is a module of its own.

use crate::x12::segments::{SegId, SegName};

/// One node of a transaction set's structure.
#[derive(Debug, Clone)]
pub enum Node {
    Seg {
        /// The id, packed to compare with segments'.
        id: SegName,
        required: bool,
        max: u64,
    },
    Loop {
        name: String,
        /// The trigger segment's packed id.
        code: SegId,
        required: bool,
        max: u64,
        /// The first node is the loop's trigger segment.
        body: Vec<Node>,
    },
}

impl Node {
    pub fn first_id(&self) -> &str {
        match self {
            Node::Seg { id, .. } => id.as_str(),
            Node::Loop { body, .. } => body.first().map(Node::first_id).unwrap_or(""),
        }
    }
    /// [`Node::first_id`] packed: always packed, as definition ids have two or three
    /// letters and digits.
    pub fn first_code(&self) -> SegId {
        match self {
            Node::Seg { id, .. } => id.code(),
            Node::Loop { code, .. } => *code,
        }
    }
    pub fn required(&self) -> bool {
        match self {
            Node::Seg { required, .. } | Node::Loop { required, .. } => *required,
        }
    }
    pub fn max(&self) -> u64 {
        match self {
            Node::Seg { max, .. } | Node::Loop { max, .. } => *max,
        }
    }
    pub(super) fn collect_ids(&self, out: &mut Vec<String>) {
        match self {
            Node::Seg { id, .. } => out.push(id.as_str().to_string()),
            Node::Loop { body, .. } => body.iter().for_each(|n| n.collect_ids(out)),
        }
    }
}

/// Parses the indented structure notation:
///
/// ```text
/// ST M 1
/// LOOP N1 O 200
///   N1 M 1
///   N3 O 2
/// END
/// SE M 1
/// ```
///
/// `>1` means unbounded. Errors carry the 0-based line inside the text.
pub fn parse_structure(text: &str) -> Result<Vec<Node>, (usize, String)> {
    let mut stack: Vec<OpenLoop> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let node = match parts.first().copied() {
            Some("LOOP") => {
                stack.push(open_loop(i, &parts)?);
                continue;
            }
            Some("END") => close_loop(i, stack.pop())?,
            Some(id) => seg_node(i, id, &parts)?,
            None => continue,
        };
        match stack.last_mut() {
            Some(parent) => parent.body.push(node),
            None => top.push(node),
        }
    }
    if let Some(open) = stack.last() {
        return Err((open.line, format!("loop {} has no END", open.name)));
    }
    Ok(top)
}

/// A loop whose `LOOP` line (line `line`) was read and its `END` not yet.
struct OpenLoop {
    name: String,
    required: bool,
    max: u64,
    body: Vec<Node>,
    line: usize,
}

/// The loop a `LOOP name M|O repeat` line (line `i`, in `parts`) opens.
fn open_loop(i: usize, parts: &[&str]) -> Result<OpenLoop, (usize, String)> {
    let name = parts
        .get(1)
        .ok_or((i, "LOOP needs a name".to_string()))?
        .to_string();
    Ok(OpenLoop {
        name,
        required: parse_req(i, parts.get(2))?,
        max: parse_max(i, parts.get(3))?,
        body: vec![],
        line: i,
    })
}

/// The node of the loop an `END` line (line `i`) closes: `open`, taken off the stack.
fn close_loop(i: usize, open: Option<OpenLoop>) -> Result<Node, (usize, String)> {
    let OpenLoop {
        name,
        required,
        max,
        body,
        line,
    } = open.ok_or((i, "END without LOOP".to_string()))?;
    if body.is_empty() {
        return Err((line, format!("loop {name} is empty")));
    }
    Ok(Node::Loop {
        name,
        code: body.first().map_or(SegId::of(b""), Node::first_code),
        required,
        max,
        body,
    })
}

/// The node of an `id M|O repeat` line (line `i`, in `parts`).
fn seg_node(i: usize, id: &str, parts: &[&str]) -> Result<Node, (usize, String)> {
    if !(2..=3).contains(&id.len())
        || !id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err((i, format!("'{id}' is not a segment id")));
    }
    if parts.len() != 3 {
        return Err((i, format!("expected `{id} M|O repeat`")));
    }
    Ok(Node::Seg {
        id: SegName::from(id.to_string()),
        required: parse_req(i, parts.get(1))?,
        max: parse_max(i, parts.get(2))?,
    })
}

/// Whether an `M|O` field (of line `i`) says required.
fn parse_req(i: usize, s: Option<&&str>) -> Result<bool, (usize, String)> {
    match s.copied() {
        Some("M") => Ok(true),
        Some("O") => Ok(false),
        other => Err((i, format!("expected M or O, found {other:?}"))),
    }
}

/// A repeat field (of line `i`): a count from 1, or `>1` for unbounded.
fn parse_max(i: usize, s: Option<&&str>) -> Result<u64, (usize, String)> {
    match s.copied() {
        Some(">1") => Ok(u64::MAX),
        Some(n) => n
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or((i, format!("bad repeat '{n}'"))),
        None => Err((i, "missing repeat".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_notation_parses_loops() {
        let s =
            parse_structure("ST M 1\nLOOP N1 O 200\n  N1 M 1\n  N3 O 2\nEND\nSE M 1\n").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].first_id(), "N1");
        assert_eq!(s[1].max(), 200);
    }

    #[test]
    fn structure_errors_have_their_line() {
        assert_eq!(parse_structure("ST M 1\nLOOP X O 1\n").unwrap_err().0, 1);
        assert_eq!(parse_structure("ST M 1\nbeg M 1\n").unwrap_err().0, 1);
    }
}
