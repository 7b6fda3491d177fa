//! The ERP's operations on its records — create, query, get, patch, delete — with the
//! business rules the switches turn on and off (validation, the order's customer, unique
//! business keys) and their statistics. Runs under the state lock and never waits, so the
//! HTTP side can put delays and faults around it without holding anything.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::state::State;
use super::store::{Coll, Record, StoreError};
use super::validate::{self, Invalid};

/// What a parsed API request asks for.
#[derive(Debug)]
pub enum Op {
    Create(Record),
    /// List in creation order, or look up by business key; 1-based page.
    Query {
        external_ref: Option<String>,
        page: usize,
        per_page: usize,
    },
    Get(String),
    Patch(String, Record),
    Delete(String),
}

#[derive(Debug)]
pub struct Outcome {
    pub status: StatusCode,
    /// `None` for 204.
    pub body: Option<Value>,
    /// The new record's path, for a 201.
    pub location: Option<String>,
    /// The data changed (something to persist).
    pub changed: bool,
}

fn answer(status: StatusCode, body: Value) -> Outcome {
    Outcome {
        status,
        body: Some(body),
        location: None,
        changed: false,
    }
}

fn unprocessable(e: Invalid) -> Outcome {
    answer(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"error": e.error, "field": e.field}),
    )
}

fn not_found(coll: Coll, id: &str) -> Outcome {
    answer(
        StatusCode::NOT_FOUND,
        json!({"error": format!("no {} record {id:?}", coll.name())}),
    )
}

fn ref_taken(id: String) -> Outcome {
    let msg = "a record with this external_ref exists";
    answer(StatusCode::CONFLICT, json!({"error": msg, "id": id}))
}

pub fn execute(st: &mut State, coll: Coll, op: Op, now: &str) -> Outcome {
    match op {
        Op::Create(fields) => create(st, coll, fields, now),
        Op::Query {
            external_ref,
            page,
            per_page,
        } => {
            let c = st.coll(coll);
            let all: Box<dyn Iterator<Item = &Record>> = match &external_ref {
                Some(k) => Box::new(c.lookup(k).into_iter()),
                None => Box::new(c.all()),
            };
            let skip = (page - 1).saturating_mul(per_page);
            let items = all
                .skip(skip)
                .take(per_page)
                .cloned()
                .map(Value::Object)
                .collect();
            answer(StatusCode::OK, Value::Array(items))
        }
        Op::Get(id) => match st.coll(coll).get(coll, &id) {
            Some(r) => answer(StatusCode::OK, Value::Object(r.clone())),
            None => not_found(coll, &id),
        },
        Op::Patch(id, patch) => update(st, coll, &id, patch, now),
        Op::Delete(id) => {
            if !st.coll(coll).delete(coll, &id) {
                return not_found(coll, &id);
            }
            *st.stats.deletes.entry(coll.name().into()).or_default() += 1;
            Outcome {
                status: StatusCode::NO_CONTENT,
                body: None,
                location: None,
                changed: true,
            }
        }
    }
}

/// Validation as configured: required fields, then (orders) the customer reference.
fn check(st: &mut State, coll: Coll, rec: &Record, customer_changed: bool) -> Result<(), Invalid> {
    if !st.cfg.validate {
        return Ok(());
    }
    validate::check(coll, rec)?;
    if coll == Coll::Orders && st.cfg.check_order_customer && customer_changed {
        validate::check_customer(rec, st.coll(Coll::Customers))?;
    }
    Ok(())
}

fn create(st: &mut State, coll: Coll, fields: Record, now: &str) -> Outcome {
    if let Err(e) = check(st, coll, &fields, true) {
        return unprocessable(e);
    }
    let unique = st.cfg.unique_refs;
    match st.coll(coll).create(coll, fields, now, unique) {
        Err(StoreError::RefTaken { id }) => ref_taken(id),
        Err(StoreError::NotFound) => not_found(coll, ""),
        Ok((rec, duplicate)) => {
            *st.stats.creates.entry(coll.name().into()).or_default() += 1;
            st.stats.duplicate_creates += u64::from(duplicate);
            let id = rec.get("id").and_then(Value::as_str).unwrap_or_default();
            let location = Some(format!("/api/v1/{}/{id}", coll.name()));
            let body = Some(Value::Object(rec));
            Outcome {
                status: StatusCode::CREATED,
                body,
                location,
                changed: true,
            }
        }
    }
}

fn update(st: &mut State, coll: Coll, id: &str, patch: Record, now: &str) -> Outcome {
    let Some(next) = st.coll(coll).merged(coll, id, &patch) else {
        return not_found(coll, id);
    };
    // A customer deleted since the order was created must not block unrelated changes.
    if let Err(e) = check(st, coll, &next, patch.contains_key("customer_id")) {
        return unprocessable(e);
    }
    let unique = st.cfg.unique_refs;
    match st.coll(coll).update(coll, id, next, now, unique) {
        Err(StoreError::RefTaken { id }) => ref_taken(id),
        Err(StoreError::NotFound) => not_found(coll, id),
        Ok(rec) => {
            st.stats.count_update(coll.name(), id);
            Outcome {
                changed: true,
                ..answer(StatusCode::OK, Value::Object(rec))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erpsim::config::SimConfig;
    use crate::erpsim::state::Shared;

    fn create(st: &mut State, coll: Coll, body: Value) -> Outcome {
        execute(
            st,
            coll,
            Op::Create(body.as_object().cloned().unwrap()),
            "t",
        )
    }

    #[test]
    fn a_lookup_pages_too_and_a_read_changes_nothing() {
        let cfg = SimConfig {
            unique_refs: false,
            ..Default::default()
        };
        let sh = Shared::open(cfg).unwrap();
        let mut st = sh.lock();
        for _ in 0..3 {
            let out = create(
                &mut st,
                Coll::Products,
                json!({"external_ref": "S", "sku": "S"}),
            );
            assert_eq!((out.status, out.changed), (StatusCode::CREATED, true));
        }
        let q = |page| Op::Query {
            external_ref: Some("S".into()),
            page,
            per_page: 2,
        };
        let p1 = execute(&mut st, Coll::Products, q(1), "t");
        let p2 = execute(&mut st, Coll::Products, q(2), "t");
        assert!(!p1.changed);
        let ids = |o: &Outcome| {
            o.body
                .as_ref()
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            (ids(&p1), ids(&p2)),
            (vec![json!("prd_1"), json!("prd_2")], vec![json!("prd_3")])
        );
        assert_eq!(st.stats.duplicate_creates, 2);
    }

    #[test]
    fn a_patch_not_touching_the_customer_is_not_blocked_by_its_deletion() {
        let sh = Shared::open(SimConfig::default()).unwrap();
        let mut st = sh.lock();
        create(
            &mut st,
            Coll::Customers,
            json!({"external_ref": "C", "customer_id": "C", "name": "A"}),
        );
        let order =
            json!({"external_ref": "O", "order_no": "O", "customer_id": "C", "lines": [{}]});
        assert_eq!(
            create(&mut st, Coll::Orders, order).status,
            StatusCode::CREATED
        );
        assert_eq!(
            execute(&mut st, Coll::Customers, Op::Delete("cus_1".into()), "t").status,
            StatusCode::NO_CONTENT
        );
        let patch = |v: Value| Op::Patch("ord_1".into(), v.as_object().cloned().unwrap());
        let out = execute(
            &mut st,
            Coll::Orders,
            patch(json!({"currency": "EUR"})),
            "t2",
        );
        assert_eq!(out.status, StatusCode::OK);
        let out = execute(
            &mut st,
            Coll::Orders,
            patch(json!({"customer_id": "C"})),
            "t3",
        );
        assert_eq!(out.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(st.stats.updates["orders"]["ord_1"], 1);
    }
}
