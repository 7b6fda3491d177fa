//! The simulated ERP's records: seven collections of JSON objects with server-assigned ids,
//! kept in creation order and indexed by `external_ref` (the business key tallyman looks
//! records up by). Pure data operations with no HTTP in them, so the rules — unique business
//! keys, merge-patch updates, versions — are tested directly.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A collection of the REST API, `/api/v1/{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Coll {
    Customers,
    Products,
    Suppliers,
    Orders,
    Invoices,
    Shipments,
    OrderAcks,
}

impl Coll {
    pub const ALL: [Coll; 7] = [
        Coll::Customers,
        Coll::Products,
        Coll::Suppliers,
        Coll::Orders,
        Coll::Invoices,
        Coll::Shipments,
        Coll::OrderAcks,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Coll::Customers => "customers",
            Coll::Products => "products",
            Coll::Suppliers => "suppliers",
            Coll::Orders => "orders",
            Coll::Invoices => "invoices",
            Coll::Shipments => "shipments",
            Coll::OrderAcks => "order-acks",
        }
    }

    /// Ids carry their collection (`ord_17`), so an id pasted into the wrong URL is a 404.
    fn prefix(self) -> &'static str {
        match self {
            Coll::Customers => "cus",
            Coll::Products => "prd",
            Coll::Suppliers => "sup",
            Coll::Orders => "ord",
            Coll::Invoices => "inv",
            Coll::Shipments => "shp",
            Coll::OrderAcks => "ack",
        }
    }

    pub fn parse(s: &str) -> Option<Coll> {
        Coll::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// Fields the server owns; a body cannot set them.
pub const SERVER_FIELDS: [&str; 4] = ["id", "created_at", "updated_at", "version"];

pub type Record = Map<String, Value>;

/// One collection. Sequence numbers grow forever (never reused after a delete), so the
/// `BTreeMap` order is creation order and paging is stable.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Collection {
    next_seq: u64,
    records: BTreeMap<u64, Record>,
    #[serde(skip)]
    by_ref: HashMap<String, BTreeSet<u64>>,
}

#[derive(Debug, PartialEq)]
pub enum StoreError {
    NotFound,
    /// The business key belongs to another record already.
    RefTaken {
        id: String,
    },
}

/// The string form of an `external_ref` for indexing and lookup.
pub fn ref_key(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Collection {
    fn id_of(coll: Coll, seq: u64) -> String {
        format!("{}_{seq}", coll.prefix())
    }

    fn seq_of(coll: Coll, id: &str) -> Option<u64> {
        id.strip_prefix(coll.prefix())?
            .strip_prefix('_')?
            .parse()
            .ok()
    }

    fn index(&mut self, seq: u64) {
        if let Some(k) = self
            .records
            .get(&seq)
            .and_then(|r| ref_key(r.get("external_ref")))
        {
            self.by_ref.entry(k).or_default().insert(seq);
        }
    }

    fn unindex(&mut self, seq: u64) {
        let Some(k) = self
            .records
            .get(&seq)
            .and_then(|r| ref_key(r.get("external_ref")))
        else {
            return;
        };
        if let Some(set) = self.by_ref.get_mut(&k) {
            set.remove(&seq);
            if set.is_empty() {
                self.by_ref.remove(&k);
            }
        }
    }

    /// The id of a record other than `except` holding this business key.
    fn holder(&self, coll: Coll, key: &str, except: Option<u64>) -> Option<String> {
        let seq = self.by_ref.get(key)?.iter().find(|s| Some(**s) != except)?;
        Some(Self::id_of(coll, *seq))
    }

    /// Adds a record. With `unique`, a taken business key is refused; without, the record is
    /// added anyway and the second value says it duplicates another.
    pub fn create(
        &mut self,
        coll: Coll,
        fields: Record,
        now: &str,
        unique: bool,
    ) -> Result<(Record, bool), StoreError> {
        let key = ref_key(fields.get("external_ref"));
        let taken = key.as_deref().and_then(|k| self.holder(coll, k, None));
        if let (true, Some(id)) = (unique, &taken) {
            return Err(StoreError::RefTaken { id: id.clone() });
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let mut rec = without_server_fields(fields);
        rec.insert("id".into(), Value::String(Self::id_of(coll, seq)));
        rec.insert("created_at".into(), Value::String(now.into()));
        rec.insert("updated_at".into(), Value::String(now.into()));
        rec.insert("version".into(), Value::from(1));
        self.records.insert(seq, rec.clone());
        self.index(seq);
        Ok((rec, taken.is_some()))
    }

    pub fn get(&self, coll: Coll, id: &str) -> Option<&Record> {
        self.records.get(&Self::seq_of(coll, id)?)
    }

    pub fn lookup(&self, key: &str) -> Vec<&Record> {
        let seqs = self.by_ref.get(key).into_iter().flatten();
        seqs.filter_map(|s| self.records.get(s)).collect()
    }

    pub fn all(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The record as it would be after a JSON merge patch (RFC 7396), without changing it.
    pub fn merged(&self, coll: Coll, id: &str, patch: &Record) -> Option<Record> {
        let mut rec = Value::Object(self.get(coll, id)?.clone());
        merge_patch(
            &mut rec,
            &Value::Object(without_server_fields(patch.clone())),
        );
        match rec {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// Replaces a record by its merged form (from [`Collection::merged`]), bumping its version.
    pub fn update(
        &mut self,
        coll: Coll,
        id: &str,
        mut next: Record,
        now: &str,
        unique: bool,
    ) -> Result<Record, StoreError> {
        let seq = Self::seq_of(coll, id).filter(|s| self.records.contains_key(s));
        let seq = seq.ok_or(StoreError::NotFound)?;
        if let Some(k) = ref_key(next.get("external_ref")) {
            if let (true, Some(other)) = (unique, self.holder(coll, &k, Some(seq))) {
                return Err(StoreError::RefTaken { id: other });
            }
        }
        let old = &self.records[&seq];
        let version = old.get("version").and_then(Value::as_u64).unwrap_or(1) + 1;
        for f in ["id", "created_at"] {
            next.insert(f.into(), old.get(f).cloned().unwrap_or(Value::Null));
        }
        next.insert("updated_at".into(), Value::String(now.into()));
        next.insert("version".into(), Value::from(version));
        self.unindex(seq);
        self.records.insert(seq, next.clone());
        self.index(seq);
        Ok(next)
    }

    pub fn delete(&mut self, coll: Coll, id: &str) -> bool {
        let Some(seq) = Self::seq_of(coll, id).filter(|s| self.records.contains_key(s)) else {
            return false;
        };
        self.unindex(seq);
        self.records.remove(&seq);
        true
    }

    /// Business keys held by more than one record, with their ids in creation order.
    pub fn duplicates(&self, coll: Coll) -> Vec<(String, Vec<String>)> {
        let mut d: Vec<(String, Vec<String>)> = self
            .by_ref
            .iter()
            .filter(|(_, seqs)| seqs.len() > 1)
            .map(|(k, seqs)| {
                (
                    k.clone(),
                    seqs.iter().map(|s| Self::id_of(coll, *s)).collect(),
                )
            })
            .collect();
        d.sort();
        d
    }

    /// Rebuilds the index after loading from disk, and refuses files whose ids do not match
    /// their place (a hand-edited file would otherwise corrupt lookups silently).
    pub fn reindex(&mut self, coll: Coll) -> Result<(), String> {
        self.by_ref.clear();
        let seqs: Vec<u64> = self.records.keys().copied().collect();
        for seq in seqs {
            let id = self.records[&seq]
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("");
            if Self::seq_of(coll, id) != Some(seq) || seq > self.next_seq {
                return Err(format!("{}: record {seq} has id {id:?}", coll.name()));
            }
            self.index(seq);
        }
        Ok(())
    }
}

fn without_server_fields(mut fields: Record) -> Record {
    for f in SERVER_FIELDS {
        fields.remove(f);
    }
    fields
}

/// RFC 7396: objects merge recursively, `null` removes a member, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Record {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn create_assigns_server_fields_and_refuses_a_taken_key() {
        let mut c = Collection::default();
        let body = obj(json!({"external_ref": "C1", "name": "A", "id": "forged", "version": 9}));
        let (r, dup) = c.create(Coll::Customers, body.clone(), "t0", true).unwrap();
        assert!(!dup);
        assert_eq!(r["id"], "cus_1");
        assert_eq!(r["version"], 1);
        assert_eq!(r["created_at"], "t0");
        let again = c.create(Coll::Customers, body, "t1", true);
        assert_eq!(again, Err(StoreError::RefTaken { id: "cus_1".into() }));
    }

    #[test]
    fn duplicates_are_created_and_listed_when_keys_are_not_unique() {
        let mut c = Collection::default();
        let body = obj(json!({"external_ref": "O1"}));
        c.create(Coll::Orders, body.clone(), "t", false).unwrap();
        let (_, dup) = c.create(Coll::Orders, body, "t", false).unwrap();
        assert!(dup);
        assert_eq!(c.lookup("O1").len(), 2);
        assert_eq!(
            c.duplicates(Coll::Orders),
            vec![("O1".into(), vec!["ord_1".into(), "ord_2".into()])]
        );
    }

    #[test]
    fn update_merges_bumps_version_and_moves_the_index() {
        let mut c = Collection::default();
        c.create(
            Coll::Products,
            obj(json!({"external_ref": "S1", "sku": "S1", "price": "1"})),
            "t0",
            true,
        )
        .unwrap();
        let patch = obj(json!({"price": "2", "external_ref": "S2", "id": "x", "gtin": null}));
        let next = c.merged(Coll::Products, "prd_1", &patch).unwrap();
        let r = c.update(Coll::Products, "prd_1", next, "t1", true).unwrap();
        assert_eq!(
            (r["price"].clone(), r["version"].clone()),
            (json!("2"), json!(2))
        );
        assert_eq!(
            (r["id"].clone(), r["created_at"].clone()),
            (json!("prd_1"), json!("t0"))
        );
        assert!(c.lookup("S1").is_empty());
        assert_eq!(c.lookup("S2").len(), 1);
    }

    #[test]
    fn update_refuses_a_key_another_record_holds() {
        let mut c = Collection::default();
        c.create(Coll::Products, obj(json!({"external_ref": "A"})), "t", true)
            .unwrap();
        c.create(Coll::Products, obj(json!({"external_ref": "B"})), "t", true)
            .unwrap();
        let next = c
            .merged(Coll::Products, "prd_2", &obj(json!({"external_ref": "A"})))
            .unwrap();
        let e = c.update(Coll::Products, "prd_2", next, "t", true);
        assert_eq!(e, Err(StoreError::RefTaken { id: "prd_1".into() }));
    }

    #[test]
    fn ids_of_other_collections_or_deleted_records_are_not_found() {
        let mut c = Collection::default();
        c.create(Coll::Orders, obj(json!({"external_ref": "O"})), "t", true)
            .unwrap();
        assert!(c.get(Coll::Orders, "cus_1").is_none());
        assert!(c.get(Coll::Orders, "ord_x").is_none());
        assert!(c.delete(Coll::Orders, "ord_1"));
        assert!(!c.delete(Coll::Orders, "ord_1"));
        assert!(c.lookup("O").is_empty());
        let (r, _) = c
            .create(Coll::Orders, obj(json!({"external_ref": "O"})), "t", true)
            .unwrap();
        assert_eq!(r["id"], "ord_2");
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 1});
        merge_patch(
            &mut t,
            &json!({"a": {"b": null, "z": 3}, "d": [3], "e": null}),
        );
        assert_eq!(t, json!({"a": {"c": 2, "z": 3}, "d": [3]}));
    }

    #[test]
    fn reindex_rejects_ids_out_of_place() {
        let mut c = Collection::default();
        c.create(Coll::Orders, obj(json!({"external_ref": "O"})), "t", true)
            .unwrap();
        let mut back: Collection =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        back.reindex(Coll::Orders).unwrap();
        assert_eq!(back.lookup("O").len(), 1);
        back.records
            .get_mut(&1)
            .unwrap()
            .insert("id".into(), json!("ord_9"));
        assert!(back.reindex(Coll::Orders).is_err());
    }
}
