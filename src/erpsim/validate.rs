//! The minimal business validation a real ERP does on every write: required fields per
//! collection and one reference check (an order's customer must exist). It is deliberately
//! small — enough to make tallyman's handling of a 422 testable, not a second copy of the
//! canonical contracts in `src/canonical.rs`.

use serde_json::Value;

use super::store::{ref_key, Coll, Collection, Record};

/// A 422: what is wrong and with which field.
#[derive(Debug, PartialEq)]
pub struct Invalid {
    pub error: String,
    pub field: String,
}

fn invalid(field: &str, error: impl Into<String>) -> Invalid {
    Invalid {
        error: error.into(),
        field: field.into(),
    }
}

/// Required fields besides `external_ref`; `lines` is listed apart because orders need at least
/// one line while an invoice may carry none.
fn required(coll: Coll) -> &'static [&'static str] {
    match coll {
        Coll::Customers => &["customer_id", "name"],
        Coll::Products => &["sku"],
        Coll::Suppliers => &["supplier_id", "name"],
        Coll::Orders => &["order_no"],
        Coll::Invoices => &["invoice_no"],
        Coll::Shipments => &["shipment_id"],
        Coll::OrderAcks => &["order_no", "status"],
    }
}

fn present(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

/// Checks a record as it would be stored (after a create, or after merging a patch).
pub fn check(coll: Coll, rec: &Record) -> Result<(), Invalid> {
    if !present(rec.get("external_ref")) {
        return Err(invalid("external_ref", "external_ref is required"));
    }
    for f in required(coll) {
        if !present(rec.get(*f)) {
            return Err(invalid(f, format!("{f} is required")));
        }
    }
    match (coll, rec.get("lines")) {
        (Coll::Orders, Some(Value::Array(l))) if !l.is_empty() => Ok(()),
        (Coll::Orders, _) => Err(invalid("lines", "lines must hold at least one order line")),
        (Coll::Invoices, Some(Value::Array(_))) => Ok(()),
        (Coll::Invoices, _) => Err(invalid("lines", "lines is required (an array)")),
        _ => Ok(()),
    }
}

/// An order naming a customer needs that customer, found by its business key or by its
/// `customer_id` field (ERPs differ in which one an order refers to).
pub fn check_customer(order: &Record, customers: &Collection) -> Result<(), Invalid> {
    let Some(cid) = ref_key(order.get("customer_id")).filter(|c| !c.trim().is_empty()) else {
        return Ok(());
    };
    let by_field = || {
        customers
            .all()
            .any(|c| ref_key(c.get("customer_id")).as_ref() == Some(&cid))
    };
    if !customers.lookup(&cid).is_empty() || by_field() {
        return Ok(());
    }
    Err(invalid("customer_id", format!("unknown customer {cid:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn required_fields_per_collection() {
        let ok = rec(json!({"external_ref": "C1", "customer_id": "C1", "name": "Acme"}));
        assert!(check(Coll::Customers, &ok).is_ok());
        let e = check(
            Coll::Customers,
            &rec(json!({"external_ref": "C1", "customer_id": "C1"})),
        );
        assert_eq!(e.unwrap_err().field, "name");
        let e = check(
            Coll::OrderAcks,
            &rec(json!({"external_ref": "A", "order_no": "1", "status": " "})),
        );
        assert_eq!(e.unwrap_err().field, "status");
        assert_eq!(
            check(Coll::Products, &rec(json!({"sku": "S"})))
                .unwrap_err()
                .field,
            "external_ref"
        );
    }

    #[test]
    fn orders_need_lines_invoices_need_the_array() {
        let order =
            |lines: Value| rec(json!({"external_ref": "O", "order_no": "O", "lines": lines}));
        assert_eq!(
            check(Coll::Orders, &order(json!([]))).unwrap_err().field,
            "lines"
        );
        assert!(check(Coll::Orders, &order(json!([{"line_no": "1"}]))).is_ok());
        let inv = rec(json!({"external_ref": "I", "invoice_no": "I", "lines": []}));
        assert!(check(Coll::Invoices, &inv).is_ok());
        let no_lines = rec(json!({"external_ref": "I", "invoice_no": "I"}));
        assert_eq!(check(Coll::Invoices, &no_lines).unwrap_err().field, "lines");
    }

    #[test]
    fn order_customer_is_found_by_key_or_by_customer_id() {
        let mut customers = Collection::default();
        let c = rec(json!({"external_ref": "K-1", "customer_id": "C-17", "name": "A"}));
        customers.create(Coll::Customers, c, "t", true).unwrap();
        let order = |cid: &str| rec(json!({"customer_id": cid}));
        assert!(check_customer(&order("K-1"), &customers).is_ok());
        assert!(check_customer(&order("C-17"), &customers).is_ok());
        let e = check_customer(&order("C-99"), &customers).unwrap_err();
        assert!(e.error.contains("unknown customer"), "{}", e.error);
        assert!(check_customer(&rec(json!({})), &customers).is_ok());
        assert!(check_customer(&order(""), &customers).is_ok());
    }
}
