//! Spreadsheets (.xlsx, .xls, .xlsb, .ods) as a streaming [`RowSource`].
//!
//! Spreadsheets arrive from partners who export whatever their tool writes, and a workbook
//! is a zip of XML that a few KB can turn into gigabytes. So the container is recognised by
//! its magic bytes (never the file name), zip-based workbooks are checked by `guard`
//! before calamine touches them, and xlsx/xlsb sheets are streamed cell by cell with
//! calamine's cells reader: memory stays flat however large or sparse the sheet claims to
//! be. `.xls` and `.ods` are only available from calamine as a whole `Range`, so they are
//! bounded (file size, ODS cell budget) rather than streamed; see `docs/sheet.md`.
//!
//! calamine's readers borrow the workbook they come from, so the workbook lives on a
//! dedicated thread that sends rows through a small bounded channel. The thread also
//! contains any panic inside calamine: hostile bytes become a `sheet-corrupt` error, never
//! a crash of the pipeline.

// `FileError` is the shared contract type for every reader; its size is a project-wide
// decision (main's lib.rs allows this lint crate-wide).
#![allow(clippy::result_large_err)]

mod cells;
mod guard;
mod xls_guard;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use calamine::{
    Data, DataRef, Ods, OdsError, Reader, Xls, XlsError, Xlsb, XlsbError, Xlsx, XlsxError,
};

use crate::format::{FileError, Limits, OpenContext};
use crate::tabular::{Row, RowSource, SheetSelector};
use cells::{convert, RowBuilder};
use guard::ZipKind;

/// Rows buffered between the reader thread and the consumer: enough to overlap parsing with
/// the engine's work, few enough that memory stays a handful of rows.
const CHANNEL_ROWS: usize = 32;

/// Opens `path` and streams the rows of the selected sheet.
///
/// Rows come in sheet order; rows without any non-empty cell are not yielded. Every row's
/// position is `line` and `record` = the 1-based sheet row, `byte` 0 (meaningless for a
/// workbook: the cell locator says so), locator `"Sheet!A<row>"`.
pub fn open_rows(
    path: &Path,
    ctx: &OpenContext,
    sheet: &SheetSelector,
) -> Result<Box<dyn RowSource>, FileError> {
    let limits = &ctx.limits;
    let mut file = File::open(path).map_err(|e| FileError::io(&e))?;
    let len = file.metadata().map_err(|e| FileError::io(&e))?.len();
    if len == 0 {
        return Err(FileError::new("sheet-empty", "the file is empty (0 bytes)"));
    }
    if len > limits.max_file_bytes {
        return Err(FileError::new(
            "file-too-large",
            format!(
                "the file is {len} bytes (limit {}, max_file_bytes)",
                limits.max_file_bytes
            ),
        ));
    }
    let mut magic = [0u8; 8];
    let got = read_up_to(&mut file, &mut magic).map_err(|e| FileError::io(&e))?;
    let kind = match &magic[..got] {
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] | [b'P', b'K', 7, 8, ..] => {
            match guard::check_zip(&file, limits)? {
                ZipKind::Xlsx => Kind::Xlsx,
                ZipKind::Xlsb => Kind::Xlsb,
                ZipKind::Ods => Kind::Ods,
            }
        }
        [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1] => {
            // BIFF is parsed whole (shared strings and all cells), so the whole file must
            // fit the budget a single zip entry gets.
            if len > limits.max_zip_entry_bytes {
                return Err(FileError::new(
                    "file-too-large",
                    format!(
                        "an OLE2 (.xls) workbook of {len} bytes is read whole; limit {} \
                         (max_zip_entry_bytes)",
                        limits.max_zip_entry_bytes
                    ),
                ));
            }
            // The size cap above bounds this copy; it is dropped before calamine starts.
            let mut data = Vec::with_capacity(len as usize);
            std::io::Seek::rewind(&mut file).map_err(|e| FileError::io(&e))?;
            file.read_to_end(&mut data).map_err(|e| FileError::io(&e))?;
            xls_guard::check_xls(&data, limits)?;
            Kind::Cfb
        }
        _ => {
            return Err(FileError::new(
                "sheet-unrecognised",
                "not a spreadsheet: no zip (xlsx/xlsb/ods) or OLE2 (xls) signature",
            ))
        }
    };

    // calamine expects to start at the beginning; the probes above moved the cursor.
    std::io::Seek::rewind(&mut file).map_err(|e| FileError::io(&e))?;
    let (tx, rx) = sync_channel(CHANNEL_ROWS);
    let job = Job {
        file,
        kind,
        selector: sheet.clone(),
        limits: limits.clone(),
    };
    std::thread::Builder::new()
        .name("tallyman-sheet".into())
        .spawn(move || job.run(tx))
        .map_err(|e| FileError::io(&e))?;
    match rx.recv() {
        Ok(Msg::Opened) => Ok(Box::new(ChannelRows { rx, done: false })),
        Ok(Msg::Err(e)) => Err(e),
        Ok(Msg::Row(_) | Msg::End) | Err(_) => Err(internal()),
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn internal() -> FileError {
    FileError::new(
        "sheet-internal",
        "the spreadsheet reader stopped without a result",
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Xlsx,
    Xlsb,
    Ods,
    /// OLE2 compound file: a BIFF `.xls`, or an encrypted OOXML workbook.
    Cfb,
}

enum Msg {
    /// The workbook opened and the sheet was found; rows follow.
    Opened,
    Row(Row),
    Err(FileError),
    End,
}

/// The consumer end: rows as the reader thread produces them.
struct ChannelRows {
    rx: Receiver<Msg>,
    done: bool,
}

impl RowSource for ChannelRows {
    fn next_row(&mut self) -> Result<Option<Row>, FileError> {
        if self.done {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Msg::Row(row)) => Ok(Some(row)),
            Ok(Msg::End) => {
                self.done = true;
                Ok(None)
            }
            Ok(Msg::Err(e)) => {
                self.done = true;
                Err(e)
            }
            Ok(Msg::Opened) | Err(_) => {
                self.done = true;
                Err(internal())
            }
        }
    }
}

/// Everything the reader thread owns.
struct Job {
    file: File,
    kind: Kind,
    selector: SheetSelector,
    limits: Limits,
}

/// The producer end. A failed send means the consumer went away: stop quietly.
struct Sink {
    tx: SyncSender<Msg>,
    opened: bool,
}

impl Sink {
    fn opened(&mut self) -> bool {
        self.opened = true;
        self.tx.send(Msg::Opened).is_ok()
    }
    fn row(&self, row: Row) -> bool {
        self.tx.send(Msg::Row(row)).is_ok()
    }
}

impl Job {
    fn run(self, tx: SyncSender<Msg>) {
        let mut sink = Sink {
            tx: tx.clone(),
            opened: false,
        };
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read(&mut sink)));
        let last = match outcome {
            Ok(Ok(())) => Msg::End,
            Ok(Err(e)) => Msg::Err(e),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Msg::Err(FileError::new(
                    "sheet-corrupt",
                    format!("the spreadsheet library failed on this file: {what}"),
                ))
            }
        };
        // Ignored: the consumer may already be gone.
        let _ = tx.send(last);
    }

    fn read(self, sink: &mut Sink) -> Result<(), FileError> {
        let Job {
            file,
            kind,
            selector,
            limits,
        } = self;
        let rs = BufReader::new(file);
        match kind {
            Kind::Xlsx => {
                let mut wb: Xlsx<_> = Xlsx::new(rs).map_err(xlsx_error)?;
                let name = pick_sheet(&wb.sheet_names(), &selector)?;
                let mut cells = wb
                    .worksheet_cells_reader(&name)
                    .map_err(|e| sheet_error(&name, xlsx_error(e)))?;
                if !sink.opened() {
                    return Ok(());
                }
                stream(&name, &limits, sink, || {
                    cells.next_cell().map_err(|e| xlsx_error(e).reason.message)
                })
            }
            Kind::Xlsb => {
                let mut wb: Xlsb<_> = Xlsb::new(rs).map_err(xlsb_error)?;
                let name = pick_sheet(&wb.sheet_names(), &selector)?;
                let mut cells = wb
                    .worksheet_cells_reader(&name)
                    .map_err(|e| sheet_error(&name, xlsb_error(e)))?;
                if !sink.opened() {
                    return Ok(());
                }
                stream(&name, &limits, sink, || {
                    cells.next_cell().map_err(|e| xlsb_error(e).reason.message)
                })
            }
            Kind::Ods => {
                let mut wb: Ods<_> = Ods::new(rs).map_err(ods_error)?;
                let name = pick_sheet(&wb.sheet_names(), &selector)?;
                let range = wb
                    .worksheet_range(&name)
                    .map_err(|e| sheet_error(&name, ods_error(e)))?;
                from_range(&name, &limits, sink, &range)
            }
            Kind::Cfb => {
                let mut rs = rs;
                // An encrypted xlsx/xlsb is an OLE2 file holding `EncryptedPackage`; calamine's
                // xlsx reader is what recognises it.
                if let Err(XlsxError::Password) = Xlsx::new(&mut rs) {
                    return Err(encrypted());
                }
                std::io::Seek::rewind(&mut rs).map_err(|e| FileError::io(&e))?;
                let mut wb: Xls<_> = Xls::new(rs).map_err(xls_error)?;
                let name = pick_sheet(&wb.sheet_names(), &selector)?;
                let range = wb
                    .worksheet_range(&name)
                    .map_err(|e| sheet_error(&name, xls_error(e)))?;
                from_range(&name, &limits, sink, &range)
            }
        }
    }
}

/// Pulls cells from a streaming calamine reader and sends completed rows.
fn stream<'a>(
    sheet: &str,
    limits: &Limits,
    sink: &Sink,
    mut next: impl FnMut() -> Result<Option<calamine::Cell<DataRef<'a>>>, String>,
) -> Result<(), FileError> {
    let mut rows = RowBuilder::new(sheet, limits);
    let mut last = (0u32, 0u32);
    loop {
        let cell = next().map_err(|message| {
            FileError::at(
                crate::unit::Position::new(u64::from(last.0) + 1, 0, u64::from(last.0) + 1)
                    .with_locator(format!(
                        "{sheet}!{}{}",
                        crate::tabular::column_letters(last.1 as usize),
                        u64::from(last.0) + 1
                    )),
                "sheet-corrupt",
                format!(
                    "after cell {sheet} row {}: {message}",
                    u64::from(last.0) + 1
                ),
            )
        })?;
        let Some(cell) = cell else { break };
        let (r, c) = cell.get_position();
        last = (r, c);
        let value = convert(Data::from(cell.get_value().clone()));
        if let Some(row) = rows.push(r, c, value)? {
            if !sink.row(row) {
                return Ok(());
            }
        }
    }
    if let Some(row) = rows.finish() {
        sink.row(row);
    }
    Ok(())
}

/// Sends the rows of an already loaded `Range` (xls, ods).
fn from_range(
    sheet: &str,
    limits: &Limits,
    sink: &mut Sink,
    range: &calamine::Range<Data>,
) -> Result<(), FileError> {
    if !sink.opened() {
        return Ok(());
    }
    let (r0, c0) = range.start().unwrap_or((0, 0));
    let mut rows = RowBuilder::new(sheet, limits);
    for (r, c, value) in range.used_cells() {
        let (r, c) = (r0.saturating_add(r as u32), c0.saturating_add(c as u32));
        if let Some(row) = rows.push(r, c, convert(value.clone()))? {
            if !sink.row(row) {
                return Ok(());
            }
        }
    }
    if let Some(row) = rows.finish() {
        sink.row(row);
    }
    Ok(())
}

/// Resolves the selector against the workbook's sheets (hidden ones included, in workbook
/// order). Names match exactly, or else ignoring case as Excel does.
fn pick_sheet(names: &[String], selector: &SheetSelector) -> Result<String, FileError> {
    if names.is_empty() {
        return Err(FileError::new(
            "sheet-no-sheets",
            "the workbook has no sheets",
        ));
    }
    let listing = || {
        let mut s = names
            .iter()
            .take(20)
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ");
        if names.len() > 20 {
            s.push_str(", ...");
        }
        s
    };
    match selector {
        SheetSelector::Index(i) => names.get(*i).cloned().ok_or_else(|| {
            FileError::new(
                "sheet-not-found",
                format!(
                    "sheet index {i} does not exist: the workbook has {} sheet(s): {}",
                    names.len(),
                    listing()
                ),
            )
        }),
        SheetSelector::Name(want) => names
            .iter()
            .find(|n| *n == want)
            .or_else(|| names.iter().find(|n| n.eq_ignore_ascii_case(want)))
            .cloned()
            .ok_or_else(|| {
                FileError::new(
                    "sheet-not-found",
                    format!("no sheet named '{want}': the workbook has {}", listing()),
                )
            }),
    }
}

fn encrypted() -> FileError {
    FileError::new(
        "sheet-encrypted",
        "the workbook is password protected (encrypted); save it without a password",
    )
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> FileError {
    FileError::new("sheet-corrupt", format!("{what} cannot be read: {e}"))
}

fn xlsx_error(e: XlsxError) -> FileError {
    match e {
        XlsxError::Password => encrypted(),
        XlsxError::NotAWorksheet(t) => FileError::new(
            "sheet-not-a-worksheet",
            format!("the selected sheet is a {t}, not a worksheet"),
        ),
        XlsxError::WorksheetNotFound(n) => FileError::new(
            "sheet-corrupt",
            format!("sheet '{n}' is listed in the workbook but its part is missing"),
        ),
        e => corrupt("the .xlsx workbook", e),
    }
}

fn xlsb_error(e: XlsbError) -> FileError {
    match e {
        XlsbError::Password => encrypted(),
        e => corrupt("the .xlsb workbook", e),
    }
}

fn ods_error(e: OdsError) -> FileError {
    match e {
        OdsError::Password => encrypted(),
        e => corrupt("the .ods workbook", e),
    }
}

fn xls_error(e: XlsError) -> FileError {
    match e {
        XlsError::Password => encrypted(),
        e => corrupt("the .xls workbook", e),
    }
}

/// Opening the sheet failed: say which one.
fn sheet_error(name: &str, mut e: FileError) -> FileError {
    if e.reason.rule == "sheet-corrupt" {
        e.reason.message = format!("sheet '{name}': {}", e.reason.message);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_selection_by_index_and_name() {
        let names = vec!["Orders".to_string(), "Hidden".to_string()];
        assert_eq!(
            pick_sheet(&names, &SheetSelector::Index(1)).unwrap(),
            "Hidden"
        );
        assert_eq!(
            pick_sheet(&names, &SheetSelector::Name("orders".into())).unwrap(),
            "Orders"
        );
        let err = pick_sheet(&names, &SheetSelector::Name("Lines".into())).unwrap_err();
        assert_eq!(err.reason.rule, "sheet-not-found");
        assert!(err.reason.message.contains("'Orders', 'Hidden'"));
        let err = pick_sheet(&names, &SheetSelector::Index(2)).unwrap_err();
        assert_eq!(err.reason.rule, "sheet-not-found");
        let err = pick_sheet(&[], &SheetSelector::Index(0)).unwrap_err();
        assert_eq!(err.reason.rule, "sheet-no-sheets");
    }
}
