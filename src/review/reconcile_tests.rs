//! The tests of `reconcile` (the schedule, the findings cap, the ledger's copy capped),
//! apart so the module reads as the code alone.

use super::*;

#[test]
fn the_schedule_is_due_after_its_interval_and_at_first() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-02T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let h = |n: u64| std::time::Duration::from_secs(n * 3600);
    assert!(is_due(None, h(24), now), "never reconciled");
    assert!(!is_due(Some("2026-11-02T01:00:00.000Z"), h(24), now));
    assert!(is_due(Some("2026-11-01T12:00:00.000Z"), h(24), now));
    assert!(
        is_due(Some("garbage"), h(1), now),
        "an unreadable time is no reason to wait"
    );
}

#[test]
fn findings_beyond_the_cap_are_counted_not_kept() {
    let mut list = vec![0; LIST_CAP - 1];
    let mut truncated = false;
    keep(&mut list, &mut truncated, 1);
    assert!(!truncated);
    keep(&mut list, &mut truncated, 2);
    assert!(truncated && list.len() == LIST_CAP);
}

#[test]
fn the_ledgers_copy_is_capped() {
    let r = ReconcileReport {
        drift: vec![
            Drift {
                entity: "customer".into(),
                external_ref: "C-1".into(),
                erp_id: None,
                field: "name".into(),
                ledger_value: json!("x".repeat(5000)),
                erp_value: json!({"a": "y".repeat(5000)}),
                version: 1,
            };
            300
        ],
        drift_count: 300,
        ..ReconcileReport::default()
    };
    let d = detail(&r);
    assert_eq!(d["drift"].as_array().unwrap().len(), DETAIL_CAP);
    assert_eq!(d["truncated"], true);
    assert!(d.to_string().len() < 100 * 1000, "{}", d.to_string().len());
}
