//! The path grammar of mappings and keys: `[/]SEG[F=V|W][n]/SEG.FIELD`.
//!
//! A path is parsed once, when the definition loads, into steps the mapping walks for
//! every IDoc; its own module because the grammar is self-contained and both the loading
//! code and the mapping (`idoc::map`) depend on its shape.

/// One step of a path: a segment name, optional field filters (`E1EDK03[IDDAT=012]`)
/// and an optional position (`E1LFBKM[1]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub seg: String,
    /// (field, accepted values) — all filters must hold.
    pub filters: Vec<(String, Vec<String>)>,
    /// Only the n-th (1-based) segment under each parent that passes the filters. Fields
    /// that belong together (one bank account's IBAN and BIC) are read from one segment
    /// this way; without it each field takes the first segment where it is non-blank.
    pub index: Option<usize>,
}

/// `[/]SEG[F=V|W]/SEG.FIELD`: segment steps from the context segment (or from the IDoc
/// root with a leading `/`), then optionally one field.
#[derive(Debug, Clone, PartialEq)]
pub struct SegPath {
    pub absolute: bool,
    pub steps: Vec<Step>,
    pub field: Option<String>,
}

impl SegPath {
    pub fn parse(text: &str) -> Result<SegPath, String> {
        let t = text.trim();
        let (absolute, rest) = match t.strip_prefix('/') {
            Some(r) => (true, r),
            None => (false, t),
        };
        if rest.is_empty() {
            return Err(format!("empty path '{text}'"));
        }
        let mut steps = Vec::new();
        let mut field = None;
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let mut part = *part;
            if i + 1 == parts.len() {
                if let Some((seg, f)) = split_field(part, text)? {
                    field = Some(f.to_string());
                    part = seg;
                }
            }
            if part.is_empty() {
                // A bare field (`POSEX`) relative to the context segment.
                if i + 1 == parts.len() && field.is_some() && parts.len() == 1 {
                    break;
                }
                return Err(format!("empty segment step in path '{text}'"));
            }
            let (name, filters_txt) = match part.find('[') {
                Some(j) => (&part[..j], &part[j..]),
                None => (part, ""),
            };
            let (filters, index) = parse_brackets(filters_txt, text)?;
            if !is_name(name) {
                return Err(format!("bad segment name '{name}' in path '{text}'"));
            }
            steps.push(Step {
                seg: name.to_string(),
                filters,
                index,
            });
        }
        Ok(SegPath {
            absolute,
            steps,
            field,
        })
    }

    /// Paths written as a bare `FIELD` mean a field of the context segment.
    pub(super) fn into_field_path(mut self) -> SegPath {
        if self.field.is_none()
            && !self.absolute
            && self.steps.len() == 1
            && self.steps[0].filters.is_empty()
            && self.steps[0].index.is_none()
        {
            let s = self.steps.remove(0);
            self.field = Some(s.seg);
        }
        self
    }
}

/// The last step's `.FIELD`, split off at the last `.` outside brackets; `None` without one.
fn split_field<'a>(part: &'a str, text: &str) -> Result<Option<(&'a str, &'a str)>, String> {
    // The field is after the last `.` that is outside brackets.
    let mut depth = 0i32;
    let mut dot = None;
    for (j, c) in part.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => dot = Some(j),
            _ => {}
        }
    }
    let Some(j) = dot else {
        return Ok(None);
    };
    let f = &part[j + 1..];
    if !is_name(f) {
        return Err(format!("bad field name '{f}' in path '{text}'"));
    }
    Ok(Some((&part[..j], f)))
}

/// A step's filters, as in [`Step::filters`].
type Filters = Vec<(String, Vec<String>)>;

/// A step's `[F=V|W]` filters and `[n]` position, read from the brackets after its name.
fn parse_brackets(brackets: &str, text: &str) -> Result<(Filters, Option<usize>), String> {
    let mut filters = Vec::new();
    let mut index = None;
    let mut ft = brackets;
    while !ft.is_empty() {
        let Some(end) = ft.find(']') else {
            return Err(format!("unclosed '[' in path '{text}'"));
        };
        if !ft.starts_with('[') {
            return Err(format!("expected '[' in path '{text}'"));
        }
        let inner = &ft[1..end];
        if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
            index = match (index, inner.parse::<usize>()) {
                (None, Ok(n)) if n >= 1 => Some(n),
                (Some(_), _) => return Err(format!("two positions in one step of '{text}'")),
                _ => return Err(format!("position [{inner}] must be 1 or more in '{text}'")),
            };
            ft = &ft[end + 1..];
            continue;
        }
        let Some((f, v)) = inner.split_once('=') else {
            return Err(format!(
                "filter '[{inner}]' needs FIELD=VALUE or a position [1] in '{text}'"
            ));
        };
        if !is_name(f.trim()) {
            return Err(format!("bad field name '{f}' in filter of '{text}'"));
        }
        filters.push((
            f.trim().to_string(),
            v.split('|').map(|s| s.trim().to_string()).collect(),
        ));
        ft = &ft[end + 1..];
    }
    Ok((filters, index))
}

pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_syntax() {
        let p = SegPath::parse("E1EDK03[IDDAT=012|002].DATUM").unwrap();
        assert_eq!(p.steps[0].seg, "E1EDK03");
        assert_eq!(p.steps[0].filters[0].1, vec!["012", "002"]);
        assert_eq!(p.field.as_deref(), Some("DATUM"));
        let p = SegPath::parse("/EDI_DC40.SNDPRN").unwrap();
        assert!(p.absolute);
        let p = SegPath::parse("POSEX").unwrap().into_field_path();
        assert!(p.steps.is_empty());
        assert_eq!(p.field.as_deref(), Some("POSEX"));
        assert!(SegPath::parse("A[B].C").is_err());
        assert!(SegPath::parse("A[B=1.C").is_err());
        let p = SegPath::parse("E1LFA1M/E1LFBKM[BANKS=DE][2].IBAN").unwrap();
        assert_eq!(p.steps[0].index, None);
        assert_eq!(p.steps[1].index, Some(2));
        assert_eq!(p.steps[1].filters[0].0, "BANKS");
        for bad in ["A[0].B", "A[1][2].B", "A[-1].B"] {
            assert!(SegPath::parse(bad).is_err(), "{bad}");
        }
        let p = SegPath::parse("E1LFBKM[1]").unwrap().into_field_path();
        assert!(
            p.field.is_none(),
            "a positioned segment is not a bare field"
        );
    }
}
