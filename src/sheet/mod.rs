//! Spreadsheets (.xlsx, .xls, .xlsb, .ods) as a streaming [`RowSource`].
//!
//! Placeholder until the spreadsheet reader lands: the signature is the contract the
//! tabular engine codes against.

use std::path::Path;

use crate::format::{FileError, OpenContext};
use crate::tabular::{RowSource, SheetSelector};

/// Opens `path` and streams the rows of the selected sheet.
pub fn open_rows(
    _path: &Path,
    _ctx: &OpenContext,
    _sheet: &SheetSelector,
) -> Result<Box<dyn RowSource>, FileError> {
    Err(FileError::new(
        "unsupported",
        "spreadsheet reading is not available in this build",
    ))
}
