//! `--data FILE`: the simulator's records (and remembered idempotent answers) on disk, so it
//! can be restarted in the middle of a delivery test like a real ERP. The whole state is
//! rewritten after every change — temp file, fsync, rename, fsync of the folder — which is
//! linear in the data but crash-safe and simple; this is a test ERP, not a database.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::idempotency::Stored;
use super::store::{Coll, Collection};

const FORMAT: &str = "tallyman-erp-sim/1";

#[derive(Serialize)]
struct SnapshotRef<'a> {
    format: &'static str,
    collections: BTreeMap<&'static str, &'a Collection>,
    idempotency: Vec<Stored>,
}

#[derive(Deserialize)]
struct Snapshot {
    format: String,
    collections: BTreeMap<String, Collection>,
    idempotency: Vec<Stored>,
}

/// The data file's bytes for this state.
pub fn encode(colls: &BTreeMap<Coll, Collection>, idempotency: Vec<Stored>) -> Vec<u8> {
    let collections = colls.iter().map(|(c, coll)| (c.name(), coll)).collect();
    let snap = SnapshotRef {
        format: FORMAT,
        collections,
        idempotency,
    };
    // Maps with string keys and JSON values cannot fail to serialise.
    serde_json::to_vec(&snap).unwrap_or_default()
}

pub type Loaded = (BTreeMap<Coll, Collection>, Vec<Stored>);

/// Reads the data file; a missing file is an empty ERP, a damaged one an error (starting
/// empty over it would lose the data at the first write).
pub fn load(path: &Path) -> io::Result<Option<Loaded>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |m: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {m}", path.display()),
        )
    };
    let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if snap.format != FORMAT {
        return Err(bad(format!(
            "format {:?}, expected {FORMAT:?}",
            snap.format
        )));
    }
    let mut colls = BTreeMap::new();
    for (name, mut coll) in snap.collections {
        let c = Coll::parse(&name).ok_or_else(|| bad(format!("unknown collection {name:?}")))?;
        coll.reindex(c).map_err(bad)?;
        colls.insert(c, coll);
    }
    Ok(Some((colls, snap.idempotency)))
}

/// Writes snapshots in order of their generation: a writer that finds a newer one already on
/// disk skips its own, since the newer one contains its change too.
#[derive(Debug)]
pub struct Persister {
    path: PathBuf,
    written: Mutex<u64>,
}

impl Persister {
    pub fn new(path: PathBuf) -> Persister {
        Persister {
            path,
            written: Mutex::new(0),
        }
    }

    pub fn write(&self, generation: u64, bytes: &[u8]) -> io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if *written >= generation {
            return Ok(());
        }
        write_atomically(&self.path, bytes)?;
        *written = generation;
        Ok(())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    // The rename is durable only once the folder is; not every platform can open one.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_empty_damaged_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("erp.json");
        assert!(load(&p).unwrap().is_none());
        fs::write(&p, b"{not json").unwrap();
        assert_eq!(load(&p).unwrap_err().kind(), io::ErrorKind::InvalidData);
        fs::write(
            &p,
            br#"{"format":"other/9","collections":{},"idempotency":[]}"#,
        )
        .unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("other/9"));
    }

    #[test]
    fn encode_then_load_gives_the_records_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("erp.json");
        let mut colls = BTreeMap::new();
        let mut orders = Collection::default();
        let body = serde_json::json!({"external_ref": "O1", "order_no": "O1"});
        orders
            .create(Coll::Orders, body.as_object().cloned().unwrap(), "t", true)
            .unwrap();
        colls.insert(Coll::Orders, orders);
        Persister::new(p.clone())
            .write(1, &encode(&colls, vec![]))
            .unwrap();
        let (back, idem) = load(&p).unwrap().unwrap();
        assert_eq!(back[&Coll::Orders].lookup("O1")[0]["id"], "ord_1");
        assert!(idem.is_empty());
    }

    #[test]
    fn older_generations_never_overwrite_newer_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("erp.json");
        let w = Persister::new(p.clone());
        w.write(2, b"two").unwrap();
        w.write(1, b"one").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        assert!(!dir.path().join(".erp.json.tmp").exists());
    }
}
