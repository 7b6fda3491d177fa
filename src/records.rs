//! Record identity: what a record with a business key already seen means.
//!
//! Each entity has an identity rule. A *create-once* record (an order, an invoice) exists
//! once: the same key with the same content again is a duplicate, and with different
//! content it is a conflict a person must look at — never applied silently. An *upsert*
//! record (a customer, a product) is master data that changes: different content is a new
//! version, applied as an update; identical content is unchanged and sent nowhere. These
//! are pure decisions over the record's content hash and the key's current version.

use serde::Serialize;
use serde_json::Value;

use crate::canonical::Entity;

pub use crate::canonical::Identity;

/// The top-level fields of an entity's contract, read from its type (for checking field
/// names in a configuration).
pub fn fields_of(entity: Entity) -> Vec<&'static str> {
    use crate::canonical as c;
    use crate::format::keys::{shape_of, Shape};
    let shape = match entity {
        Entity::Order => shape_of::<c::Order>(),
        Entity::OrderAck => shape_of::<c::OrderAck>(),
        Entity::Invoice => shape_of::<c::Invoice>(),
        Entity::Shipment => shape_of::<c::Shipment>(),
        Entity::Customer => shape_of::<c::Customer>(),
        Entity::Product => shape_of::<c::Product>(),
        Entity::Supplier => shape_of::<c::Supplier>(),
    };
    match shape {
        Shape::Struct(_, fields) => fields.iter().map(|(name, _)| *name).collect(),
        _ => Vec::new(),
    }
}

pub use crate::canonical::{content_hash, legacy_content_hash};

/// Whether the content hash a version was stored with (`stored`, as the ledger reads it
/// back) is that of content hashed as `incoming` ([`content_hash`]). The ledger keeps a
/// hash's first 16 hex digits (64 bits; ledger/model.rs `StoredHash`), older ledgers all
/// 32; either is compared as far as it goes.
pub fn same_hash(stored: &str, incoming: &str) -> bool {
    stored == incoming
        || (stored.len() == 16 && incoming.len() == 32 && incoming.starts_with(stored))
}

/// What the ledger holds for a key now.
#[derive(Debug, Clone)]
pub struct Current {
    pub version: i64,
    /// Empty when unknown (a key recorded before versions were kept).
    pub hash: String,
    pub data: Option<Value>,
    pub file_id: i64,
    pub fingerprint: String,
    pub file_name: String,
    pub unit_seq: i64,
    /// Where the unit that set it starts in its file (0 when not known; filled only for a
    /// conflict's message, see `BatchTx::unit_line`).
    pub line: i64,
    /// The file that set it is not decided yet (see `ledger::Holder::pending`).
    pub pending: bool,
}

/// What an incoming record is, given the key's current version.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A key never applied: version 1.
    New,
    /// Changed master data (or a forced re-apply): this version number.
    NewVersion(i64),
    /// The same content again (create-once: a duplicate; upsert: unchanged).
    Same,
    /// A create-once key with other content, or a key twice in one file with other
    /// content: these fields differ.
    Conflict(Vec<Change>),
}

/// One field that differs between the applied version and the incoming record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The facts about the incoming record that `classify` weighs.
pub struct Incoming<'a> {
    pub identity: Identity,
    pub hash: &'a str,
    /// The record's body as JSON.
    pub data: &'a str,
    pub file_id: i64,
    pub unit_seq: i64,
    /// The fingerprint of a forced re-apply (`process --force`): versions its own content
    /// applied before are applied again as new versions.
    pub forced_fp: Option<&'a str>,
}

pub fn classify(inc: &Incoming, current: Option<&Current>) -> Verdict {
    let Some(cur) = current else {
        return Verdict::New;
    };
    let same_file = cur.file_id == inc.file_id;
    if same_file && cur.unit_seq == inc.unit_seq {
        return Verdict::Same;
    }
    if !same_file && inc.forced_fp == Some(cur.fingerprint.as_str()) {
        return Verdict::NewVersion(cur.version + 1);
    }
    let incoming = || serde_json::from_str::<Value>(inc.data).unwrap_or(Value::Null);
    let same = if cur.hash.is_empty() {
        // Recorded before content was hashed: the same for a create-once key (its old rule),
        // a change for master data (applying it is what the old rule failed to do).
        inc.identity == Identity::CreateOnce
    } else {
        // Equal hashes are equal content. Versions written by an older tallyman carry
        // blake3's hash of the body, so a different hash is compared as blake3's too; and
        // as values when the applied data is kept, since older still ones hashed the body
        // with its keys sorted. The same content must not become a new version or a
        // conflict because of how it was hashed.
        same_hash(&cur.hash, inc.hash)
            || same_hash(&cur.hash, &legacy_content_hash(inc.data))
            || cur.data.as_ref().is_some_and(|d| *d == incoming())
    };
    match (same, inc.identity, same_file) {
        (true, _, _) => Verdict::Same,
        (false, Identity::Upsert, false) => Verdict::NewVersion(cur.version + 1),
        _ => Verdict::Conflict(
            cur.data
                .as_ref()
                .map(|d| diff(d, &incoming()))
                .unwrap_or_default(),
        ),
    }
}

/// The fields that differ between two records, by path (`lines[1].quantity`), at most 20.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out.truncate(20);
    out
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<Change>) {
    if old == new || out.len() >= 20 {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let null = Value::Null;
                walk(
                    &join(k),
                    a.get(k).unwrap_or(&null),
                    b.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let null = Value::Null;
                let p = format!("{path}[{i}]");
                walk(
                    &p,
                    a.get(i).unwrap_or(&null),
                    b.get(i).unwrap_or(&null),
                    out,
                );
            }
        }
        _ => out.push(Change {
            path: path.to_string(),
            old: scalar(old),
            new: scalar(new),
        }),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Whether a field path of an entity's record holds a value that must be masked in
/// messages (the contract's sensitive fields, such as a supplier's IBAN).
pub fn sensitive_path(entity: Entity, path: &str) -> bool {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    entity.sensitive_fields().contains(&leaf)
}

/// `a '1' → '2', b (none) → 'x'` for messages, with sensitive paths masked by `mask`.
pub fn describe(changes: &[Change], sensitive: impl Fn(&str) -> bool) -> String {
    let show = |path: &str, v: &Option<String>| match v {
        None => "(none)".to_string(),
        Some(s) if sensitive(path) => format!("'{}'", crate::unit::mask(s)),
        Some(s) => format!("'{}'", crate::unit::cap_raw(s, 60)),
    };
    changes
        .iter()
        .map(|c| {
            format!(
                "{} {} → {}",
                c.path,
                show(&c.path, &c.old),
                show(&c.path, &c.new)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn current(hash: &str, data: Value) -> Current {
        Current {
            version: 3,
            hash: hash.into(),
            data: Some(data),
            file_id: 1,
            fingerprint: "fp1".into(),
            file_name: "a.csv".into(),
            unit_seq: 4,
            line: 0,
            pending: false,
        }
    }

    fn hash(v: &Value) -> String {
        content_hash(&v.to_string())
    }

    fn incoming<'a>(identity: Identity, data: &'a str, hash: &'a str) -> Incoming<'a> {
        Incoming {
            identity,
            hash,
            data,
            file_id: 2,
            unit_seq: 0,
            forced_fp: None,
        }
    }

    /// A version stored without its data, its hash `stored` (kept whole, as older ledgers
    /// did, or by its first 16 digits, as the ledger does now): the same body is the same,
    /// another is a new version or a conflict, by the hash alone.
    fn assert_the_hash_alone_tells(stored: &str) {
        let old = json!({"sku": "S1", "price": "10.00"});
        let new = json!({"sku": "S1", "price": "12.00"});
        let (old_s, new_s) = (old.to_string(), new.to_string());
        let (old_h, new_h) = (hash(&old), hash(&new));
        for stored in [&stored[..16], stored] {
            for (identity, changed) in [
                (Identity::Upsert, Verdict::NewVersion(4)),
                (Identity::CreateOnce, Verdict::Conflict(Vec::new())),
            ] {
                let mut cur = current(stored, old.clone());
                cur.data = None;
                let same = classify(&incoming(identity, &old_s, &old_h), Some(&cur));
                assert_eq!(same, Verdict::Same, "{stored} {identity:?}");
                let got = classify(&incoming(identity, &new_s, &new_h), Some(&cur));
                assert_eq!(got, changed, "{stored} {identity:?}");
            }
        }
    }

    #[test]
    fn a_version_kept_with_the_first_half_of_its_hash_is_told_as_a_whole_one_was() {
        let (old_h, new_h) = (
            hash(&json!({"sku": "S1", "price": "10.00"})),
            hash(&json!({"sku": "S1", "price": "12.00"})),
        );
        assert_the_hash_alone_tells(&old_h);
        // Only a 16-digit stored hash is a prefix; anything shorter is compared whole.
        assert!(same_hash(&old_h[..16], &old_h));
        assert!(!same_hash(&old_h[..15], &old_h));
        assert!(!same_hash(&old_h[..16], &old_h[..31]));
        assert!(!same_hash(&new_h[..16], &old_h));
    }

    #[test]
    fn a_version_stored_with_blake3s_hash_is_the_same_content_as_before() {
        let old = json!({"sku": "S1", "price": "10.00"}).to_string();
        let legacy = legacy_content_hash(&old);
        assert_ne!(legacy, content_hash(&old));
        assert_the_hash_alone_tells(&legacy);
    }

    #[test]
    fn regression_a_changed_price_list_is_a_new_version_not_a_duplicate() {
        let old = json!({"sku": "S1", "price": "10.00"});
        let new = json!({"sku": "S1", "price": "11.50"});
        let cur = current(&hash(&old), old);
        let h = hash(&new);
        let new = new.to_string();
        assert_eq!(
            classify(&incoming(Identity::Upsert, &new, &h), Some(&cur)),
            Verdict::NewVersion(4)
        );
        let same = hash(&cur.data.clone().unwrap());
        let data = cur.data.clone().unwrap().to_string();
        assert_eq!(
            classify(&incoming(Identity::Upsert, &data, &same), Some(&cur)),
            Verdict::Same
        );
    }

    #[test]
    fn a_create_once_key_with_other_content_is_a_conflict_naming_the_fields() {
        let old = json!({"order_no": "PO-1", "currency": "EUR", "lines": [{"quantity": "2"}]});
        let new = json!({"order_no": "PO-1", "currency": "USD", "lines": [{"quantity": "3"}]});
        let cur = current(&hash(&old), old);
        let h = hash(&new);
        let new = new.to_string();
        let Verdict::Conflict(changes) =
            classify(&incoming(Identity::CreateOnce, &new, &h), Some(&cur))
        else {
            panic!("conflict expected")
        };
        let text = describe(&changes, |_| false);
        assert_eq!(text, "currency 'EUR' → 'USD', lines[0].quantity '2' → '3'");
    }

    #[test]
    fn a_key_recorded_before_hashing_is_a_duplicate_for_orders_and_an_update_for_products() {
        let cur = Current {
            hash: String::new(),
            data: None,
            ..current("", Value::Null)
        };
        let d = json!({"x": 1}).to_string();
        assert_eq!(
            classify(&incoming(Identity::CreateOnce, &d, "h"), Some(&cur)),
            Verdict::Same
        );
        assert_eq!(
            classify(&incoming(Identity::Upsert, &d, "h"), Some(&cur)),
            Verdict::NewVersion(4)
        );
    }

    #[test]
    fn twice_in_one_file_with_other_content_is_a_conflict_even_for_master_data() {
        let old = json!({"sku": "S1", "price": "1"});
        let mut cur = current(&hash(&old), old);
        cur.file_id = 2;
        let new = json!({"sku": "S1", "price": "2"});
        let h = hash(&new);
        let new = new.to_string();
        assert!(matches!(
            classify(&incoming(Identity::Upsert, &new, &h), Some(&cur)),
            Verdict::Conflict(_)
        ));
    }

    #[test]
    fn a_forced_re_apply_of_the_same_content_is_a_new_version() {
        let d = json!({"order_no": "PO-1"});
        let cur = current(&hash(&d), d.clone());
        let h = hash(&d);
        let d = d.to_string();
        let mut inc = incoming(Identity::CreateOnce, &d, &h);
        inc.forced_fp = Some("fp1");
        assert_eq!(classify(&inc, Some(&cur)), Verdict::NewVersion(4));
    }

    #[test]
    fn regression_a_version_hashed_with_sorted_keys_is_the_same_content_in_contract_order() {
        // Versions written before records were serialized once hashed the body with its
        // keys sorted; the same record today is serialized in contract order.
        let sorted = json!({"name": "Acme", "sku": "S1"});
        let cur = current(&hash(&sorted), sorted);
        let today = r#"{"sku":"S1","name":"Acme"}"#;
        let h = content_hash(today);
        assert_ne!(h, cur.hash);
        assert_eq!(
            classify(&incoming(Identity::Upsert, today, &h), Some(&cur)),
            Verdict::Same
        );
    }

    #[test]
    fn contract_fields_are_known_per_entity() {
        let f = fields_of(Entity::Product);
        assert!(f.contains(&"price") && f.contains(&"sku"), "{f:?}");
        assert!(!f.contains(&"colour"));
    }

    #[test]
    fn sensitive_values_are_masked_in_descriptions() {
        let c = vec![Change {
            path: "iban".into(),
            old: Some("DE89370400440532013000".into()),
            new: Some("DE89370400440532013001".into()),
        }];
        let text = describe(&c, |p| sensitive_path(Entity::Supplier, p));
        assert!(!text.contains("0532013000"), "{text}");
    }
}
