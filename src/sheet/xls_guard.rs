//! Pre-flight check for legacy `.xls` (BIFF8 inside an OLE2 compound file).
//!
//! calamine parses every sheet of an `.xls` when the workbook is opened and builds each one
//! as a dense `Range`: it reserves `rows x cols` cells for whatever a sheet's DIMENSIONS
//! record declares (a row count up to 2^32 from 14 bytes of input) and allocates the
//! bounding box of the used cells (a cell at A1 and one at row 65536, column 65536 make
//! 2^32 cells). Either is an allocation failure, which aborts the process rather than
//! returning an error. So before calamine runs, this module finds the `Workbook` stream in
//! the compound file and walks its BIFF records, refusing a sheet whose declared or actual
//! grid exceeds the cell budget. It reads the container itself, with every chain bounded,
//! and never trusts a size it has not checked against the file.

use crate::format::{FileError, Limits};
use crate::sheet::guard::cell_budget;

const ENDOFCHAIN: u32 = 0xFFFF_FFFE;
const FREESECT: u32 = 0xFFFF_FFFF;
const MAX_REGULAR: u32 = 0xFFFF_FFFA;

fn corrupt(message: impl Into<String>) -> FileError {
    FileError::new(
        "sheet-corrupt",
        format!("the OLE2 (.xls) container is malformed: {}", message.into()),
    )
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// A compound file held in memory (the caller caps its size).
struct Cfb<'a> {
    data: &'a [u8],
    shift: u32,
    fat: Vec<u32>,
}

impl<'a> Cfb<'a> {
    fn parse(data: &'a [u8]) -> Result<(Self, Vec<u8>, Header), FileError> {
        let short = || corrupt("header is truncated");
        let shift = u32::from(u16_at(data, 0x1E).ok_or_else(short)?);
        if shift != 9 && shift != 12 {
            return Err(corrupt(format!("sector size 2^{shift} is not 512 or 4096")));
        }
        let h = Header {
            dir_start: u32_at(data, 0x30).ok_or_else(short)?,
            cutoff: u32_at(data, 0x38).ok_or_else(short)?,
            minifat_start: u32_at(data, 0x3C).ok_or_else(short)?,
            difat_start: u32_at(data, 0x44).ok_or_else(short)?,
        };
        let sector_size = 1usize << shift;
        let max_sectors = data.len() / sector_size + 1;
        let mut difat: Vec<u32> = (0..109)
            .filter_map(|i| u32_at(data, 0x4C + 4 * i))
            .collect();
        let mut cfb = Cfb {
            data,
            shift,
            fat: Vec::new(),
        };
        let mut next = h.difat_start;
        let mut steps = 0;
        while next <= MAX_REGULAR {
            steps += 1;
            if steps > max_sectors {
                return Err(corrupt("DIFAT chain loops"));
            }
            let s = cfb.sector(next)?;
            let n = sector_size / 4 - 1;
            difat.extend((0..n).filter_map(|i| u32_at(s, 4 * i)));
            next = u32_at(s, 4 * n).unwrap_or(ENDOFCHAIN);
        }
        let mut fat = Vec::new();
        for id in difat.into_iter().filter(|id| *id <= MAX_REGULAR) {
            let s = cfb.sector(id)?;
            fat.extend((0..sector_size / 4).filter_map(|i| u32_at(s, 4 * i)));
            if fat.len() > max_sectors.saturating_mul(sector_size / 4) {
                return Err(corrupt("FAT is larger than the file"));
            }
        }
        cfb.fat = fat;
        let dirs = cfb.chain(h.dir_start, usize::MAX)?;
        Ok((cfb, dirs, h))
    }

    fn sector(&self, id: u32) -> Result<&'a [u8], FileError> {
        let size = 1usize << self.shift;
        let start = (id as usize + 1)
            .checked_mul(size)
            .ok_or_else(|| corrupt("sector id out of range"))?;
        self.data
            .get(start..start + size)
            .ok_or_else(|| corrupt(format!("sector {id} lies beyond the end of the file")))
    }

    /// The bytes of a regular-sector chain, at most `limit` of them.
    fn chain(&self, start: u32, limit: usize) -> Result<Vec<u8>, FileError> {
        let mut out = Vec::new();
        let mut id = start;
        let mut steps = 0usize;
        while id != ENDOFCHAIN && id != FREESECT && out.len() < limit {
            steps += 1;
            if steps > self.fat.len() + 1 {
                return Err(corrupt("sector chain loops"));
            }
            out.extend_from_slice(self.sector(id)?);
            id = *self
                .fat
                .get(id as usize)
                .ok_or_else(|| corrupt(format!("sector {id} is not in the FAT")))?;
        }
        out.truncate(limit);
        Ok(out)
    }
}

struct Header {
    dir_start: u32,
    cutoff: u32,
    minifat_start: u32,
    difat_start: u32,
}

/// The workbook stream of an `.xls`, or `None` when the container holds none (an
/// encrypted OOXML package, say: calamine reports that one itself).
fn workbook_stream(data: &[u8]) -> Result<Option<Vec<u8>>, FileError> {
    let (cfb, dirs, h) = Cfb::parse(data)?;
    let entry = |i: usize| dirs.get(i * 128..i * 128 + 128);
    let name_of = |e: &[u8]| {
        let len = (u16_at(e, 0x40).unwrap_or(0) as usize).min(64);
        let units: Vec<u16> = (0..len / 2)
            .filter_map(|k| u16_at(e, 2 * k))
            .take_while(|u| *u != 0)
            .collect();
        String::from_utf16_lossy(&units)
    };
    let root = entry(0).ok_or_else(|| corrupt("no root directory entry"))?;
    let Some(book) = (0..dirs.len() / 128).filter_map(entry).find(|e| {
        let n = name_of(e);
        e[0x42] == 2 && (n.eq_ignore_ascii_case("Workbook") || n.eq_ignore_ascii_case("Book"))
    }) else {
        return Ok(None);
    };
    let start = u32_at(book, 0x74).unwrap_or(ENDOFCHAIN);
    let size = u32_at(book, 0x78).unwrap_or(0) as usize;
    if size > data.len() {
        return Err(corrupt(format!(
            "the Workbook stream declares {size} bytes in a {}-byte file",
            data.len()
        )));
    }
    if (size as u64) >= u64::from(h.cutoff) {
        return cfb.chain(start, size).map(Some);
    }
    // Small streams live in the mini stream (64-byte sectors inside the root's chain).
    let root_size = (u32_at(root, 0x78).unwrap_or(0) as usize).min(data.len());
    let ministream = cfb.chain(u32_at(root, 0x74).unwrap_or(ENDOFCHAIN), root_size)?;
    let minifat_bytes = cfb.chain(h.minifat_start, data.len())?;
    let minifat: Vec<u32> = (0..minifat_bytes.len() / 4)
        .filter_map(|i| u32_at(&minifat_bytes, 4 * i))
        .collect();
    let mut out = Vec::with_capacity(size);
    let mut id = start;
    let mut steps = 0usize;
    while id != ENDOFCHAIN && id != FREESECT && out.len() < size {
        steps += 1;
        if steps > minifat.len() + 1 {
            return Err(corrupt("mini sector chain loops"));
        }
        let at = id as usize * 64;
        let s = ministream
            .get(at..at + 64)
            .ok_or_else(|| corrupt(format!("mini sector {id} lies outside the mini stream")))?;
        out.extend_from_slice(s);
        id = *minifat
            .get(id as usize)
            .ok_or_else(|| corrupt(format!("mini sector {id} is not in the mini FAT")))?;
    }
    out.truncate(size);
    Ok(Some(out))
}

/// Bounding box of one sheet's cells, as calamine will size its `Range`.
#[derive(Default)]
struct Extent {
    rows: Option<(u32, u32)>,
    cols: Option<(u32, u32)>,
}

impl Extent {
    fn add(&mut self, row: u32, col: u32) {
        self.rows = Some(match self.rows {
            None => (row, row),
            Some((a, b)) => (a.min(row), b.max(row)),
        });
        self.cols = Some(match self.cols {
            None => (col, col),
            Some((a, b)) => (a.min(col), b.max(col)),
        });
    }
    fn cells(&self) -> u64 {
        match (self.rows, self.cols) {
            (Some((r0, r1)), Some((c0, c1))) => {
                u64::from(r1 - r0 + 1).saturating_mul(u64::from(c1 - c0 + 1))
            }
            _ => 0,
        }
    }
}

/// What calamine reserves for a DIMENSIONS record (it mirrors calamine's own parsing,
/// including its wrapping arithmetic on inverted ranges).
fn declared_cells(r: &[u8]) -> u64 {
    let (rf, rl, mut cf, cl) = match r.len() {
        10 => (
            u32::from(u16_at(r, 0).unwrap_or(0)),
            u32::from(u16_at(r, 2).unwrap_or(0)),
            u32::from(u16_at(r, 4).unwrap_or(0)),
            u32::from(u16_at(r, 6).unwrap_or(0)),
        ),
        14 | 16 => (
            u32_at(r, 0).unwrap_or(0),
            u32_at(r, 4).unwrap_or(0),
            u32::from(u16_at(r, 8).unwrap_or(0)),
            u32::from(u16_at(r, 10).unwrap_or(0)),
        ),
        _ => return 0,
    };
    if 0xFF < cf || cl < cf {
        cf = 0;
    }
    if rl == 0 || cl == 0 {
        return 1;
    }
    let rows = (rl - 1).wrapping_sub(rf).wrapping_add(1);
    let cols = (cl - 1).wrapping_sub(cf).wrapping_add(1);
    u64::from(rows).saturating_mul(u64::from(cols))
}

/// Refuses an `.xls` whose sheets would not fit the cell budget. `data` is the whole file.
pub(crate) fn check_xls(data: &[u8], limits: &Limits) -> Result<(), FileError> {
    let Some(stream) = workbook_stream(data)? else {
        return Ok(());
    };
    let budget = cell_budget(limits);
    let too_many = |what: String| {
        FileError::new(
            "sheet-too-many-cells",
            format!("{what}: more than {budget} cells (max_zip_entry_bytes / cell size)"),
        )
    };
    let mut at = 0usize;
    let mut depth = 0usize;
    let mut sheet = 0usize;
    let mut extent = Extent::default();
    while at + 4 <= stream.len() {
        let typ = u16_at(&stream, at).unwrap_or(0);
        let len = u16_at(&stream, at + 2).unwrap_or(0) as usize;
        let data = stream
            .get(at + 4..(at + 4 + len).min(stream.len()))
            .unwrap_or(&[]);
        at += 4 + len;
        match typ {
            0x0809 => {
                depth += 1;
                if depth == 1 {
                    sheet += 1;
                    extent = Extent::default();
                }
            }
            0x000A => {
                if depth == 1 && extent.cells() > budget {
                    return Err(too_many(format!(
                        "sheet {} spans a grid of {} cells",
                        sheet - 1,
                        extent.cells()
                    )));
                }
                depth = depth.saturating_sub(1);
            }
            _ if depth != 1 => {}
            0x0200 => {
                let cells = declared_cells(data);
                if cells > budget {
                    return Err(too_many(format!(
                        "sheet {} declares dimensions of {cells} cells",
                        sheet - 1
                    )));
                }
            }
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x0006 => {
                if let (Some(r), Some(c)) = (u16_at(data, 0), u16_at(data, 2)) {
                    extent.add(u32::from(r), u32::from(c));
                }
            }
            0x00BD => {
                if let (Some(r), Some(c0)) = (u16_at(data, 0), u16_at(data, 2)) {
                    extent.add(u32::from(r), u32::from(c0));
                    if let Some(c1) = data.len().checked_sub(2).and_then(|e| u16_at(data, e)) {
                        extent.add(u32::from(r), u32::from(c1));
                    }
                }
            }
            _ => {}
        }
    }
    if extent.cells() > budget {
        return Err(too_many(format!(
            "sheet {} spans a grid of {} cells",
            sheet.saturating_sub(1),
            extent.cells()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_dimensions_mirror_calamine() {
        let mut d = Vec::new();
        d.extend_from_slice(&0u32.to_le_bytes());
        d.extend_from_slice(&10u32.to_le_bytes());
        d.extend_from_slice(&0u16.to_le_bytes());
        d.extend_from_slice(&3u16.to_le_bytes());
        d.extend_from_slice(&0u16.to_le_bytes());
        assert_eq!(declared_cells(&d), 30);
        // Inverted rows wrap around to ~2^32 in calamine.
        let mut d = Vec::new();
        d.extend_from_slice(&5u32.to_le_bytes());
        d.extend_from_slice(&2u32.to_le_bytes());
        d.extend_from_slice(&0u16.to_le_bytes());
        d.extend_from_slice(&1u16.to_le_bytes());
        d.extend_from_slice(&0u16.to_le_bytes());
        assert!(declared_cells(&d) > 1 << 31);
    }

    /// Regression guard for arbitrary bytes behind an OLE2 signature: pseudo-random
    /// headers, FATs and directories must give `Ok` or a `FileError`, never a panic.
    #[test]
    fn random_containers_never_panic() {
        let mut seed = 0x9E37_79B9u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut refused = 0;
        for round in 0..2000 {
            let len = 512 + (next() as usize % 4096);
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            data[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
            data[0x1E] = if round % 3 == 0 { 12 } else { 9 };
            data[0x1F] = 0;
            // Small sector ids so chains stay inside the file often enough to go deep.
            for at in [0x30, 0x3C, 0x44, 0x4C, 0x50] {
                let v = if round % 2 == 0 { next() % 8 } else { next() };
                data[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            if let Err(e) = check_xls(&data, &Limits::default()) {
                assert!(
                    ["sheet-corrupt", "sheet-too-many-cells"].contains(&e.reason.rule.as_str()),
                    "{e}"
                );
                refused += 1;
            }
        }
        assert!(
            refused > 1000,
            "only {refused} of 2000 random containers refused"
        );
    }

    #[test]
    fn garbage_containers_are_corrupt_not_panics() {
        let mut data = vec![0u8; 600];
        data[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
        data[0x1E] = 9;
        // DIFAT pointing at itself forever is refused, as is a sector past the end.
        data[0x44..0x48].copy_from_slice(&0u32.to_le_bytes());
        let e = check_xls(&data, &Limits::default()).unwrap_err();
        assert_eq!(e.reason.rule, "sheet-corrupt");
        data[0x1E] = 3;
        let e = check_xls(&data, &Limits::default()).unwrap_err();
        assert_eq!(e.reason.rule, "sheet-corrupt");
        let e = check_xls(&data[..20], &Limits::default()).unwrap_err();
        assert_eq!(e.reason.rule, "sheet-corrupt");
    }
}
