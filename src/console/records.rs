//! Record history — for one business key, every version (its data with sensitive fields
//! masked), every document that carried the key, every delivery and each attempt with
//! status, latency and the target's masked response — and the audit trail page.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::app::{with_ledger, AppState, Page};
use super::auth::Sess;
use super::files::delivery_table;
use super::html::{badge, csrf, enc, name, record_href, when};
use crate::canonical::Entity;
use crate::ledger::{AttemptView, AuditRow, DeliveryView, KeyDocument, VersionView};

#[derive(Deserialize)]
pub struct Q {
    key: Option<String>,
    entity: Option<String>,
}

struct History {
    versions: Vec<VersionView>,
    docs: Vec<KeyDocument>,
    deliveries: Vec<(DeliveryView, Vec<AttemptView>)>,
    similar: Vec<(String, String)>,
}

/// `data` with the entity's sensitive fields masked, at any depth.
pub fn masked(entity: &str, data: &Value) -> Value {
    let sensitive = Entity::parse(entity).map_or(&[][..], |e| e.sensitive_fields());
    mask_in(sensitive, data.clone())
}

fn mask_in(sensitive: &[&str], v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Null => Value::Null,
                        Value::String(s) if sensitive.contains(&k.as_str()) => {
                            Value::String(crate::unit::mask(&s))
                        }
                        other if sensitive.contains(&k.as_str()) => {
                            Value::String(crate::unit::mask(&other.to_string()))
                        }
                        other => mask_in(sensitive, other),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(|v| mask_in(sensitive, v)).collect()),
        other => other,
    }
}

pub async fn page(
    State(st): State<Arc<AppState>>,
    Extension(sess): Extension<Sess>,
    Query(q): Query<Q>,
) -> Page {
    let key = q.key.clone().filter(|k| !k.is_empty());
    let entity = q.entity.clone().filter(|e| !e.is_empty());
    let h = match key.clone() {
        None => None,
        Some(k) => Some(
            with_ledger(&st, move |l, _| {
                let versions = l.key_versions(entity.as_deref(), &k)?;
                let mut deliveries = Vec::new();
                let entities: std::collections::BTreeSet<String> =
                    versions.iter().map(|v| v.entity.clone()).collect();
                for e in entities {
                    for d in l.key_deliveries(&e, &k)? {
                        let attempts = l.attempt_views(d.id)?;
                        deliveries.push((d, attempts));
                    }
                }
                Ok(History {
                    similar: if versions.is_empty() {
                        l.keys_starting(&k, 20)?
                    } else {
                        Vec::new()
                    },
                    docs: l.key_documents(&k)?,
                    versions,
                    deliveries,
                })
            })
            .await?,
        ),
    };
    let body = html! {
        form.box method="get" action="/records" {
            label { "Business key " input type="text" name="key" value=(q.key.as_deref().unwrap_or("")) placeholder="PO-10011, C-1002, ACME/PO-4711"; }
            " " select name="entity" {
                option value="" { "any entity" }
                @for e in Entity::ALL { option value=(e.as_str()) selected[q.entity.as_deref() == Some(e.as_str())] { (e.as_str()) } }
            }
            " " button type="submit" { "Show history" }
        }
        @if let (Some(h), Some(k)) = (&h, &key) { (history(h, k, &sess)) }
    };
    Ok(super::html::page("Record history", &sess, "/records", body))
}

fn history(h: &History, key: &str, sess: &Sess) -> Markup {
    html! {
        @if h.versions.is_empty() {
            p { "No record has the key " strong { (name(key)) } "." }
            @if !h.similar.is_empty() {
                p { "Keys starting so: " @for (e, k) in &h.similar { a href=(record_href(e, k)) { (name(k)) " (" (e) ")" } " " } }
            }
        }
        @if !h.versions.is_empty() {
            h2 { "Versions" }
            table {
                tr { th { "entity" } th.num { "version" } th { "set by" } th { "when (UTC)" } th { "data (sensitive fields masked)" } }
                @for v in &h.versions { (version_row(v, sess)) }
            }
        }
        @if !h.docs.is_empty() {
            h2 { "Documents that carried this key" }
            table {
                tr { th { "file" } th { "document" } th { "outcome" } }
                @for d in &h.docs {
                    tr {
                        td { a href={ "/files/" (d.file_id) } { "#" (d.file_id) " " (name(&d.file_name)) } }
                        td { (name(&d.label)) } td { (badge(&d.status)) }
                    }
                }
            }
        }
        @if !h.deliveries.is_empty() {
            h2 { "Deliveries" }
            @for (d, attempts) in &h.deliveries {
                (delivery_table(std::slice::from_ref(d)))
                @if !attempts.is_empty() { (attempts_table(attempts)) }
            }
        }
    }
}

fn version_row(v: &VersionView, sess: &Sess) -> Markup {
    let shown = v.data.as_ref().map(|d| masked(&v.entity, d));
    let has_sensitive = Entity::parse(&v.entity).is_some_and(|e| !e.sensitive_fields().is_empty());
    html! {
        tr {
            td { (v.entity) } td.num { (v.version) }
            td { a href=(super::html::line_href(v.file_id, v.ordinal)) { "#" (v.file_id) " " (name(v.file_name.as_deref().unwrap_or("?"))) } }
            td { (when(&v.created_at)) }
            td {
                @if let Some(d) = &shown { details { summary { "data" } pre { (serde_json::to_string_pretty(d).unwrap_or_default()) } } }
                @if has_sensitive && shown.is_some() {
                    form.inline.noprint method="post" action="/records/reveal" {
                        (csrf(sess))
                        input type="hidden" name="entity" value=(v.entity);
                        input type="hidden" name="key" value=(v.key);
                        input type="hidden" name="version" value=(v.version);
                        button.secondary type="submit" title="recorded in the audit trail" { "reveal masked fields" }
                    }
                }
            }
        }
    }
}

fn attempts_table(attempts: &[AttemptView]) -> Markup {
    html! {
        table {
            tr { th.num { "attempt" } th { "started (UTC)" } th { "requests" } th.num { "status" } th { "outcome" } th.num { "latency" } th { "response (masked)" } }
            @for a in attempts {
                tr {
                    td.num { (a.n) } td { (when(&a.started_at)) } td { (a.operation) }
                    td.num { (a.status.map(|s| s.to_string()).unwrap_or_default()) }
                    td { @if let Some(o) = &a.outcome { (badge(o)) } }
                    td.num { (a.latency_ms.map(|m| format!("{m} ms")).unwrap_or_default()) }
                    td { @if let Some(r) = &a.response { details { summary { (r.len()) " bytes" } pre { (name(r)) } } } }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct AuditQ {
    before: Option<i64>,
    action: Option<String>,
}

const AUDIT_PAGE: i64 = 100;

pub async fn audit(
    State(st): State<Arc<AppState>>,
    Extension(sess): Extension<Sess>,
    Query(q): Query<AuditQ>,
) -> Page {
    let action = q.action.clone().filter(|a| !a.is_empty());
    let a2 = action.clone();
    let rows = with_ledger(&st, move |l, _| {
        Ok(l.audit_page(q.before, a2.as_deref(), AUDIT_PAGE + 1)?)
    })
    .await?;
    let more = rows
        .get(AUDIT_PAGE as usize - 1)
        .filter(|_| rows.len() as i64 > AUDIT_PAGE)
        .map(|r| r.id);
    let current = action.unwrap_or_default();
    let body = html! {
        p.tabs {
            @for a in ["", "resolve", "retry", "replay", "release", "release --reject", "reveal", "upload-correction", "reconcile", "process --force"] {
                a href={ "/audit?action=" (enc(a)) } class=[(a == current).then_some("on")] { (if a.is_empty() { "all" } else { a }) }
            }
        }
        table {
            tr { th { "when (UTC)" } th { "who" } th { "action" } th { "subject" } th { "why" } th { "affected" } }
            @for r in rows.iter().take(AUDIT_PAGE as usize) { (audit_row(r)) }
        }
        @if let Some(before) = more { p { a href={ "/audit?action=" (enc(&current)) "&before=" (before) } { "older →" } } }
    };
    Ok(super::html::page("Audit trail", &sess, "/audit", body))
}

fn audit_row(r: &AuditRow) -> Markup {
    html! {
        tr {
            td { (when(&r.at)) } td { (name(&r.actor)) } td { (r.action) }
            td { (name(r.subject.as_deref().unwrap_or(""))) }
            td { (name(r.reason.as_deref().unwrap_or(""))) }
            td { code.raw { (r.detail.as_ref().map(|d| name(&d.to_string())).unwrap_or_default()) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_fields_are_masked_at_any_depth() {
        let v = serde_json::json!({"supplier_id": "S-1", "iban": "DE89370400440532013000", "bank_account": 12345678,
                                   "nested": [{"account_holder": "Erika Mustermann"}], "account_holder": null});
        let m = masked("supplier", &v);
        assert_eq!(m["iban"], "********************00");
        assert_eq!(m["bank_account"], "******78");
        assert_eq!(m["nested"][0]["account_holder"], "**************nn");
        assert_eq!(m["supplier_id"], "S-1");
        assert_eq!(m["account_holder"], Value::Null);
        assert_eq!(
            masked("order", &v)["iban"],
            v["iban"],
            "orders have no sensitive fields"
        );
    }
}
