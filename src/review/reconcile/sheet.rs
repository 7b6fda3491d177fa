//! The reconciliation report as a CSV for a person with Excel: written while the target
//! is listed (one row per finding, never the whole list in memory), then moved into
//! `reports/` whole. Like the reject reports: UTF-8 with a BOM, CRLF, formula-looking
//! values defused with a leading apostrophe — an ERP record's name starting with `=` must
//! not run in the reviewer's Excel.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::report::defuse;

const HEADER: [&str; 9] = [
    "finding",
    "entity",
    "external_ref",
    "erp_id",
    "field",
    "ledger_value",
    "erp_value",
    "version",
    "what_it_means",
];

/// One row of the report.
pub struct Row<'a> {
    pub finding: &'a str,
    pub entity: &'a str,
    pub external_ref: Option<&'a str>,
    pub erp_id: Option<&'a str>,
    pub field: Option<&'a str>,
    pub ledger_value: Option<&'a Value>,
    pub erp_value: Option<&'a Value>,
    pub version: Option<i64>,
    pub meaning: &'a str,
}

/// A report being written: a hidden temporary file in the reports folder, locked by its
/// writer (so a start-up sweep leaves it alone) until it is renamed into place.
pub struct Sheet {
    csv: csv::Writer<BufWriter<File>>,
    tmp: tempfile::TempPath,
}

impl Sheet {
    pub fn create(dir: &Path) -> std::io::Result<Sheet> {
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".tallyman-reconcile-")
            .suffix(".tmp")
            .tempfile_in(dir)?;
        tmp.as_file().lock()?;
        crate::fsutil::set_mode(tmp.path())?;
        let (file, tmp) = tmp.into_parts();
        let mut out = BufWriter::new(file);
        out.write_all(&[0xEF, 0xBB, 0xBF])?;
        let mut csv = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        csv.write_record(HEADER)?;
        Ok(Sheet { csv, tmp })
    }

    pub fn row(&mut self, r: &Row) -> std::io::Result<()> {
        let text = |v: Option<&str>| defuse(v.unwrap_or("")).into_owned();
        let value = |v: Option<&Value>| match v {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => defuse(s).into_owned(),
            Some(other) => defuse(&other.to_string()).into_owned(),
        };
        self.csv.write_record([
            r.finding.to_string(),
            r.entity.to_string(),
            text(r.external_ref),
            text(r.erp_id),
            text(r.field),
            value(r.ledger_value),
            value(r.erp_value),
            r.version.map(|v| v.to_string()).unwrap_or_default(),
            r.meaning.to_string(),
        ])?;
        Ok(())
    }

    /// Syncs the report and renames it to `path`.
    pub fn finish(self, path: &Path) -> std::io::Result<PathBuf> {
        let out = self.csv.into_inner().map_err(|e| e.into_error())?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        self.tmp.persist(path).map_err(|e| e.error)?;
        if let Some(dir) = path.parent() {
            crate::fsutil::fsync_dir(dir)?;
        }
        Ok(path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_report_opens_in_excel_and_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sheet::create(dir.path()).unwrap();
        s.row(&Row {
            finding: "drift",
            entity: "customer",
            external_ref: Some("C-1"),
            erp_id: Some("c_1"),
            field: Some("name"),
            ledger_value: Some(&json!("Acme")),
            erp_value: Some(&json!("=HYPERLINK(\"x\")")),
            version: Some(2),
            meaning: "changed in the ERP",
        })
        .unwrap();
        let path = s.finish(&dir.path().join("r.csv")).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]));
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
        assert!(text.starts_with("finding,entity,external_ref,erp_id,field,ledger_value,erp_value,version,what_it_means\r\n"), "{text}");
        assert!(text.contains("'=HYPERLINK"), "{text}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("r.csv")],
            "no temporary left"
        );
    }
}
