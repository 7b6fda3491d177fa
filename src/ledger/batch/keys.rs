//! The business keys a batch claims and the holders it asks about. An interchange's claim
//! is asked by each of its sets, so holders found are cached for the batch and the keys
//! known to have none are looked up together (`prefetch_holders`); claims are written a
//! hundred a statement (`flush_keys`), except a forced re-apply's, which must replace.

use std::rc::Rc;

use super::rows::{defer, insert_many, HOLDERS_OF_SQL};
use super::{key_of, BatchTx};
use crate::ledger::db::{params, OptionalExtension, Value};
use crate::ledger::Result;

/// Who already holds a key.
#[derive(Debug, Clone)]
pub struct Holder {
    pub file_id: i64,
    pub fingerprint: String,
    pub name: String,
    pub unit_seq: i64,
    /// Its file is not decided yet (still read, or held for a person): it may still be
    /// rejected whole, and then it never held the key.
    pub pending: bool,
}

impl BatchTx<'_> {
    /// Who holds the key, shared: a claim every set of an interchange asks about is
    /// answered from the batch's cache without copying its holder's names.
    pub fn holder(&self, entity: &str, key: &str) -> Result<Option<Rc<Holder>>> {
        let known = self.with_key(entity, key, |k| match self.unheld.borrow().contains(k) {
            true => Some(None),
            false => self.held.borrow().get(k).map(|h| Some(h.clone())),
        });
        if let Some(known) = known {
            return Ok(known);
        }
        self.flush_keys()?;
        // Cached: this runs once per document, so re-parsing the SQL would dominate.
        let mut st = self.tx.prepare_cached(
            "SELECT k.file_id, f.fingerprint, f.name, k.unit_seq, f.state IN ('reading', 'held') \
             FROM keys k JOIN files f ON f.id = k.file_id WHERE k.entity=?1 AND k.key=?2",
        )?;
        let found = st
            .query_row(params![entity, key], |r| {
                Ok(Holder {
                    file_id: r.get(0)?,
                    fingerprint: r.get(1)?,
                    name: r.get(2)?,
                    unit_seq: r.get(3)?,
                    pending: r.get(4)?,
                })
            })
            .optional()?
            .map(Rc::new);
        if let Some(h) = &found {
            self.held
                .borrow_mut()
                .insert(key_of(entity, key), h.clone());
        }
        Ok(found)
    }

    /// Looks up which of `keys` (entity, key) have a holder, as
    /// [`BatchTx::prefetch_versions`] does for versions.
    pub fn prefetch_holders<'k>(
        &self,
        keys: impl IntoIterator<Item = (&'k str, &'k str)>,
    ) -> Result<()> {
        self.flush_keys()?;
        *self.unheld.borrow_mut() = self.without_rows(HOLDERS_OF_SQL, keys)?;
        Ok(())
    }

    /// Takes a key for a unit (replacing an earlier holder only when `steal` — a forced
    /// re-apply of the same content).
    pub fn take_key(
        &self,
        entity: &str,
        key: &str,
        file_id: i64,
        unit_seq: i64,
        steal: bool,
    ) -> Result<()> {
        if !steal {
            // A key found held stays its holder's (`INSERT OR IGNORE`): every set of an
            // interchange takes the interchange's claim, and writing it again for each was
            // a row per set for SQLite to refuse.
            let full = self.with_key(entity, key, |k| {
                if self.held.borrow().contains_key(k) {
                    return false;
                }
                let row = (entity.to_owned(), key.to_owned(), file_id, unit_seq);
                defer(&self.unheld, &self.taken, k, row)
            });
            if full {
                self.flush_keys()?;
            }
            return Ok(());
        }
        self.flush_keys()?;
        self.with_key(entity, key, |k| {
            self.held.borrow_mut().remove(k);
            self.unheld.borrow_mut().remove(k);
        });
        self.tx
            .prepare_cached(
                "INSERT INTO keys(entity, key, file_id, unit_seq) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (entity, key) DO UPDATE SET file_id=excluded.file_id, unit_seq=excluded.unit_seq",
            )?
            .execute(params![entity, key, file_id, unit_seq])?;
        Ok(())
    }

    /// Writes the keys taken since the last write (a key already held stays its holder's).
    pub(super) fn flush_keys(&self) -> Result<()> {
        let taken = std::mem::take(&mut *self.taken.borrow_mut());
        let values: Vec<Value<'_>> = taken
            .iter()
            .flat_map(|(e, k, f, u)| {
                [
                    Value::Text(e),
                    Value::Text(k),
                    Value::Int(*f),
                    Value::Int(*u),
                ]
            })
            .collect();
        insert_many(
            &self.tx,
            "INSERT OR IGNORE INTO keys(entity, key, file_id, unit_seq)",
            "",
            4,
            &values,
        )
    }
}
