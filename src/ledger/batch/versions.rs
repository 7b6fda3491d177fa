//! The record versions a batch adds, and the lookups that decide them. A batch asks the
//! current version of nearly every key it touches, so the keys that have none are found
//! together up front (`prefetch_versions`), and new versions are held back and written a
//! hundred a statement (`flush_versions`) before anything reads versions again.

use super::rows::{defer, insert_many, VERSIONS_OF_SQL};
use super::BatchTx;
use crate::ledger::db::{params, OptionalExtension, Value};
use crate::ledger::model::{HashHex, StoredHash};
use crate::ledger::Result;
use crate::records::Current;

/// A version waiting to be written with the next hundred.
pub(super) struct OwnedVersion {
    entity: &'static str,
    key: String,
    version: i64,
    hash: StoredHash,
    data: Option<String>,
    file_id: i64,
    unit_seq: i64,
    ordinal: i64,
}

/// A record version to store with its batch.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// An entity's name ([`crate::canonical::Entity::as_str`]): kept as it is until the
    /// version is written, not copied.
    pub entity: &'static str,
    pub key: &'a str,
    pub version: i64,
    pub hash: &'a str,
    /// The record's data as JSON, kept when a target is sent it (the outbox has it
    /// otherwise, and the input can make it again).
    pub data: Option<&'a str>,
    pub file_id: i64,
    pub unit_seq: i64,
    /// Its place among the unit's records.
    pub ordinal: i64,
}

impl BatchTx<'_> {
    /// Whether a version of `entity` must keep its data: a remote target is sent it from
    /// the ledger. Other versions are in the outbox, and their input can make them again.
    pub fn keeps_data(&self, entity: &str) -> bool {
        self.routes
            .iter()
            .any(|(_, entities)| entities.iter().any(|e| e == entity))
    }

    /// The key's current (highest) version, with the file that set it.
    pub fn current_version(&self, entity: &str, key: &str) -> Result<Option<Current>> {
        if self.with_key(entity, key, |k| self.absent.borrow().contains(k)) {
            return Ok(None);
        }
        self.flush_versions()?;
        let mut st = self.tx.prepare_cached(
            "SELECT v.version, v.hash, v.data, v.file_id, f.fingerprint, f.name, v.unit_seq, \
             f.state IN ('reading', 'held') \
             FROM versions v JOIN files f ON f.id = v.file_id \
             WHERE v.entity=?1 AND v.key=?2 ORDER BY v.version DESC LIMIT 1",
        )?;
        let row = st
            .query_row(params![entity, key], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, HashHex>(1)?.0,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, bool>(7)?,
                ))
            })
            .optional()?;
        let Some((version, hash, data, file_id, fingerprint, file_name, unit_seq, pending)) = row
        else {
            return Ok(None);
        };
        Ok(Some(Current {
            version,
            hash,
            data: data.map(|d| serde_json::from_str(&d)).transpose()?,
            file_id,
            fingerprint,
            file_name,
            unit_seq,
            line: 0,
            pending,
        }))
    }

    /// The first line of a file's unit (0 if the ledger has no such unit): asked apart
    /// from [`BatchTx::current_version`] because only a conflict's message needs it, and
    /// an applied unit's is in a packed run.
    pub fn unit_line(&self, file_id: i64, seq: i64) -> Result<i64> {
        Ok(crate::ledger::runs::unit_at(&self.tx, file_id, seq)?.map_or(0, |u| u.first.0))
    }

    /// Looks up which of `keys` (entity, key) have a version, a few hundred a statement, so
    /// that [`BatchTx::current_version`] need not ask for each key that has none.
    pub fn prefetch_versions<'k>(
        &self,
        keys: impl IntoIterator<Item = (&'k str, &'k str)>,
    ) -> Result<()> {
        self.flush_versions()?;
        *self.absent.borrow_mut() = self.without_rows(VERSIONS_OF_SQL, keys)?;
        Ok(())
    }

    pub fn add_version(&self, v: &NewVersion) -> Result<()> {
        let row = OwnedVersion {
            entity: v.entity,
            key: v.key.to_owned(),
            version: v.version,
            hash: StoredHash::of(v.hash),
            data: v.data.map(str::to_owned),
            file_id: v.file_id,
            unit_seq: v.unit_seq,
            ordinal: v.ordinal,
        };
        let full = self.with_key(v.entity, v.key, |k| {
            defer(&self.absent, &self.pending, k, row)
        });
        if full {
            self.flush_versions()?;
        }
        Ok(())
    }

    /// Writes the versions added since the last write.
    pub(super) fn flush_versions(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        if pending.is_empty() {
            return Ok(());
        }
        let mut made = self.made.borrow_mut();
        for v in &pending {
            made.push(
                v.file_id, v.entity, &v.key, v.version, v.unit_seq, v.ordinal,
            );
        }
        drop(made);
        let values: Vec<Value<'_>> = pending
            .iter()
            .flat_map(|v| {
                [
                    Value::Text(v.entity),
                    Value::Text(&v.key),
                    Value::Int(v.version),
                    v.hash.value(),
                    v.data.as_deref().map_or(Value::Null, Value::Text),
                    Value::Int(v.file_id),
                    Value::Int(v.unit_seq),
                    Value::Int(v.ordinal),
                ]
            })
            .collect();
        insert_many(
            &self.tx,
            "INSERT INTO versions(entity, key, version, hash, data, file_id, unit_seq, ordinal)",
            "ON CONFLICT (entity, key, version) DO UPDATE SET hash=excluded.hash, data=excluded.data, \
             file_id=excluded.file_id, unit_seq=excluded.unit_seq, ordinal=excluded.ordinal",
            8,
            &values,
        )
    }
}
