//! The archive itself: its central directory's entry count and declared sizes, the
//! workbook flavour its names reveal, and the streaming pass over every part calamine will
//! parse (see the parent module for why).

use std::fs::File;
use std::io::BufReader;

use super::{check_ods_cells, scan_xlsb_records, scan_xml, CountingReader, ZipKind};
use crate::format::{FileError, Limits};

/// Most entries a workbook archive may hold: the zip crate keeps one record per entry in
/// memory, and no real workbook comes near this.
const MAX_ZIP_ENTRIES: usize = 100_000;

/// The archive as `check_zip` opens it.
type Archive<'f> = ::zip::ZipArchive<BufReader<&'f File>>;

/// Checks the archive behind `file` and returns which reader should open it.
///
/// Refuses (rule in brackets): an unreadable archive (`sheet-corrupt`), too many entries or
/// too much uncompressed data in total (`zip-bomb`), an entry whose declared or actual size
/// exceeds `max_zip_entry_bytes` (`zip-entry-too-large`), an entry whose compression ratio
/// exceeds `max_zip_ratio` (`zip-bomb`), an archive without a workbook (`sheet-no-workbook`),
/// XML tokens longer than `max_record_bytes` (`sheet-xml-token-too-long`), XML nested deeper
/// than `max_depth` (`sheet-xml-too-deep`), oversized xlsb records (`sheet-record-too-large`)
/// and ODS tables whose dense grid would not fit the cell budget (`sheet-too-many-cells`).
pub(crate) fn check_zip(file: &File, limits: &Limits) -> Result<ZipKind, FileError> {
    let mut archive = ::zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| FileError::new("sheet-corrupt", format!("not a readable zip archive: {e}")))?;
    let total_cap = total_cap(limits);
    let names = declared_entries(&mut archive, total_cap, limits)?;
    let kind = workbook_kind(&names)?;
    // Declared sizes may lie; the streaming pass counts what actually comes out.
    scan_parts(&mut archive, &names, kind, total_cap, limits)?;
    if kind == ZipKind::Ods {
        check_ods_content(&mut archive, limits)?;
    }
    Ok(kind)
}

/// The names of the archive's entries, read from the central directory once its entry
/// count and every entry's declared size and ratio have passed.
fn declared_entries(
    archive: &mut Archive<'_>,
    total_cap: u64,
    limits: &Limits,
) -> Result<Vec<String>, FileError> {
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(FileError::new(
            "zip-bomb",
            format!(
                "archive holds {} entries (limit {MAX_ZIP_ENTRIES})",
                archive.len()
            ),
        ));
    }
    let mut total: u64 = 0;
    let mut names = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| {
            FileError::new("sheet-corrupt", format!("zip entry {i} is unreadable: {e}"))
        })?;
        let name = entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| format!("#{i}"));
        let size = entry.size();
        let packed = entry.compressed_size();
        check_declared_size(&name, size, packed, limits)?;
        total = total.saturating_add(size);
        if total > total_cap {
            return Err(over_total(total_cap));
        }
        names.push(name);
    }
    Ok(names)
}

/// Refuses one entry by what its header declares: too large, or compressed too well.
fn check_declared_size(
    name: &str,
    size: u64,
    packed: u64,
    limits: &Limits,
) -> Result<(), FileError> {
    if size > limits.max_zip_entry_bytes {
        return Err(FileError::new(
            "zip-entry-too-large",
            format!(
                "zip entry '{name}' declares {size} bytes uncompressed (limit {})",
                limits.max_zip_entry_bytes
            ),
        ));
    }
    // Tiny entries compress absurdly well without being dangerous; the ratio only
    // matters once the output is big enough to hurt.
    if size > 1 << 20 && size / packed.max(1) > limits.max_zip_ratio {
        return Err(FileError::new(
            "zip-bomb",
            format!(
                "zip entry '{name}' expands {packed} -> {size} bytes (ratio {}, limit {})",
                size / packed.max(1),
                limits.max_zip_ratio
            ),
        ));
    }
    Ok(())
}

/// The refusal of an archive whose entries add up to more than `total_cap` bytes.
fn over_total(total_cap: u64) -> FileError {
    FileError::new(
        "zip-bomb",
        format!("archive expands to more than {total_cap} bytes in total"),
    )
}

/// Which workbook the entry names reveal, or the refusal of an archive holding none.
fn workbook_kind(names: &[String]) -> Result<ZipKind, FileError> {
    if names.iter().any(|n| n == "xl/workbook.bin") {
        Ok(ZipKind::Xlsb)
    } else if names.iter().any(|n| n == "content.xml") {
        Ok(ZipKind::Ods)
    } else if names
        .iter()
        .any(|n| n.ends_with(".xml") && n.to_ascii_lowercase().contains("workbook"))
    {
        Ok(ZipKind::Xlsx)
    } else {
        Err(FileError::new(
            "sheet-no-workbook",
            "zip archive holds no workbook (no xl/workbook.xml, xl/workbook.bin or content.xml)",
        ))
    }
}

/// Streams every XML part (and, in an xlsb, every record part) through its scanner, and
/// refuses the archive once what actually comes out passes `total_cap`.
fn scan_parts(
    archive: &mut Archive<'_>,
    names: &[String],
    kind: ZipKind,
    total_cap: u64,
    limits: &Limits,
) -> Result<(), FileError> {
    let mut actual_total: u64 = 0;
    for (i, name) in names.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        let is_xml = lower.ends_with(".xml") || lower.ends_with(".rels");
        let is_record_part = kind == ZipKind::Xlsb && is_xlsb_record_part(&lower);
        if !is_xml && !is_record_part {
            continue;
        }
        let count = scan_part(archive, i, name, is_xml, limits)?;
        actual_total = actual_total.saturating_add(count);
        if actual_total > total_cap {
            return Err(over_total(total_cap));
        }
    }
    Ok(())
}

/// Scans entry `i` as XML or as xlsb records, and returns how many bytes it decompressed to.
fn scan_part(
    archive: &mut Archive<'_>,
    i: usize,
    name: &str,
    is_xml: bool,
    limits: &Limits,
) -> Result<u64, FileError> {
    let entry = archive.by_index(i).map_err(|e| {
        FileError::new(
            "sheet-corrupt",
            format!("zip entry '{name}' cannot be read: {e}"),
        )
    })?;
    let mut counted = CountingReader {
        inner: entry,
        count: 0,
        cap: limits.max_zip_entry_bytes,
    };
    let res = if is_xml {
        scan_xml(&mut counted, limits)
    } else {
        scan_xlsb_records(&mut counted, limits)
    };
    res.map_err(|e| e.in_entry(name))?;
    Ok(counted.count)
}

/// Refuses an ODS whose `content.xml` tables would not fit the cell budget.
fn check_ods_content(archive: &mut Archive<'_>, limits: &Limits) -> Result<(), FileError> {
    if let Some(i) = archive.index_for_name("content.xml") {
        let entry = archive.by_index(i).map_err(|e| {
            FileError::new(
                "sheet-corrupt",
                format!("zip entry 'content.xml' cannot be read: {e}"),
            )
        })?;
        check_ods_cells(BufReader::new(entry), limits).map_err(|e| e.in_entry("content.xml"))?;
    }
    Ok(())
}

/// The whole archive may expand to a few of its largest entries, never more.
fn total_cap(limits: &Limits) -> u64 {
    limits.max_zip_entry_bytes.saturating_mul(4)
}

/// Whether an xlsb part is a record stream calamine parses (not a macro, printer, embedded
/// or media blob).
fn is_xlsb_record_part(lower: &str) -> bool {
    lower.ends_with(".bin")
        && !lower.contains("vbaproject")
        && !lower.contains("printersettings")
        && !lower.contains("/embeddings/")
        && !lower.contains("/media/")
        && !lower.contains("/activex/")
}
