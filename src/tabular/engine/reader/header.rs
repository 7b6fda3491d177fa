//! Binding a definition's fields to a file's columns: by the header row's names, or by
//! position when the file has none. Apart from the reader's row loop because it runs once
//! per file and says everything wrong with a header in one error.

use std::sync::Arc;

use super::{drop_columns, RowsIn, TabularReader};
use crate::format::FileError;
use crate::tabular::def::{ColumnRef, TabularDef};
use crate::tabular::{Cell, Row};

/// Positions of the corrections file's "what was wrong" columns among header names
/// (trimmed, lower-cased): a reviewer may have moved the column, or a correction of a
/// correction may carry it twice.
fn error_columns(names: &[String]) -> Vec<usize> {
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.as_str() == crate::tabular::ERROR_COLUMN)
        .map(|(i, _)| i)
        .collect()
}

/// Without a header, fields are bound by position.
pub(super) fn positional_binding(def: &TabularDef) -> Vec<usize> {
    def.fields
        .iter()
        .map(|f| match f.column {
            ColumnRef::Index(i) => i,
            ColumnRef::Name(_) => usize::MAX,
        })
        .collect()
}

impl TabularReader {
    /// Puts `binding` (each field's column) in use, noting whether it is the columns in
    /// order, which lets a row's cells be handed over whole (see `take_job_row`).
    pub(super) fn set_binding(&mut self, binding: Vec<usize>) {
        self.binding_in_order = binding.iter().enumerate().all(|(k, &c)| k == c);
        self.binding = Arc::new(binding);
    }

    /// Binds the fields to the header row's columns (names compared trimmed and
    /// lower-cased, the corrections file's error columns left out), or fails with every
    /// column missing or ambiguous.
    pub(super) fn bind_header(&mut self, row: &Row) -> Result<(), FileError> {
        let mut names: Vec<String> = row
            .cells
            .iter()
            .map(|c| c.to_text().trim().to_lowercase())
            .collect();
        self.dropped = error_columns(&names);
        drop_columns(&mut names, &self.dropped);
        let (binding, mut missing, mut errors) = bind_names(&self.def, &names);
        for h in &self.def.match_header {
            if !names.contains(&h.to_lowercase()) && !missing.contains(h) {
                missing.push(h.clone());
            }
        }
        if !missing.is_empty() {
            errors.insert(0, lacking(&missing, row));
        }
        if !errors.is_empty() {
            return Err(FileError::at(row.pos.clone(), "header", errors.join("; ")));
        }
        self.set_binding(binding);
        if matches!(self.src, RowsIn::Csv(_)) {
            self.width = Some(names.len());
        }
        Ok(())
    }
}

/// Each field's column among the header's `names`: the binding, the named columns not
/// found, and an error per name found more than once (bound to its first place).
fn bind_names(def: &TabularDef, names: &[String]) -> (Vec<usize>, Vec<String>, Vec<String>) {
    let mut missing = Vec::new();
    let mut errors = Vec::new();
    let mut binding = Vec::new();
    for f in &def.fields {
        match &f.column {
            ColumnRef::Index(i) => binding.push(*i),
            ColumnRef::Name(n) => {
                let want = n.to_lowercase();
                let hits: Vec<usize> = names
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| **h == want)
                    .map(|(i, _)| i)
                    .collect();
                match hits.as_slice() {
                    [] => {
                        missing.push(n.clone());
                        binding.push(usize::MAX);
                    }
                    [i] => binding.push(*i),
                    [i, j, ..] => {
                        errors.push(format!(
                            "column '{n}' appears more than once in the header (positions {} and {}), so field '{}' is ambiguous",
                            i + 1,
                            j + 1,
                            f.name
                        ));
                        binding.push(*i);
                    }
                }
            }
        }
    }
    (binding, missing, errors)
}

/// The error naming the columns a header lacks, with what it has.
fn lacking(missing: &[String], row: &Row) -> String {
    format!(
        "header lacks column(s) {} (found: {})",
        missing
            .iter()
            .map(|m| format!("'{m}'"))
            .collect::<Vec<_>>()
            .join(", "),
        row.cells
            .iter()
            .map(Cell::to_text)
            .collect::<Vec<_>>()
            .join(", ")
    )
}
