//! The console's ledger questions over a small hand-made ledger: two decided files with
//! rejected documents, deliveries delivered and dead, a reconciliation.

use super::super::testplace::{on_both, plan, Place};
use super::super::*;

on_both!(
    window_totals_count_documents_rejects_and_deliveries,
    rejected_documents_group_by_the_rule_their_first_broken_line_broke,
    a_file_level_error_is_open_until_resolved,
    a_dead_letter_group_is_retried_alone_and_its_progress_followed,
    files_lines_deliveries_and_history_of_a_key,
    the_latest_reconciliation_per_target_and_sample_pruning,
    audit_pages_go_back_in_time,
    a_decided_file_supersedes_older_versions_of_its_keys_still_waiting_for_the_same_target,
);

const FIXTURE: &str = r#"
INSERT INTO files(id, fingerprint, name, source_path, size, state, outcome, units_applied, units_rejected,
                  claimed_at, finished_at, final_path, format, error_rule)
VALUES (1, 'aa', 'orders.csv', '/in/orders.csv', 10, 'done', 'applied_with_rejects', 3, 2,
        '2026-01-01T10:00:00.000Z', '2026-01-01T10:00:05.000Z', '/arch/orders.csv', 'orders-csv', NULL),
       (2, 'bb', 'junk.bin', '/in/junk.bin', 5, 'done', 'rejected', 0, 0,
        '2026-01-01T11:00:00.000Z', '2026-01-01T11:00:01.000Z', '/rej/junk.bin', NULL, 'no-format'),
       (3, 'cc', 'held.x12', '/in/held.x12', 5, 'held', NULL, 0, 0,
        '2026-01-01T12:00:00.000Z', NULL, NULL, 'x12', NULL);
INSERT INTO units(file_id, seq, label, status, key, first_ordinal, line_count) VALUES
  (1, 1, 'order A', 'applied', 'A', 1, 1),
  (1, 2, 'order B', 'rejected', 'B', 2, 2),
  (1, 3, 'order C', 'rejected', 'C', 4, 1);
INSERT INTO lines(file_id, ordinal, unit_seq, line, byte, record, status, key, rule, field, value, message, raw) VALUES
  (1, 0, 0, 1, 0, 1, 'skipped', NULL, NULL, NULL, NULL, NULL, NULL),
  (1, 1, 1, 2, 20, 2, 'applied', 'A', NULL, NULL, NULL, NULL, NULL),
  (1, 2, 2, 3, 40, 3, 'rejected', 'B', 'rejected-with-document', NULL, NULL, 'with its document', 'B,1,x'),
  (1, 3, 2, 4, 60, 4, 'rejected', 'B', 'min', 'quantity', '-1', 'must be at least 0', 'B,2,-1'),
  (1, 4, 3, 5, 80, 5, 'rejected', 'C', 'min', 'quantity', '-2', 'must be at least 0', 'C,1,-2');
INSERT INTO versions(entity, key, version, hash, data, file_id, unit_seq) VALUES
  ('order', 'A', 1, 'h1', '{"order_no":"A"}', 1, 1);
INSERT INTO deliveries(id, target, entity, key, version, state, attempts, next_at, file_id, settled_at, created_at,
                       delivered_at, last_status, last_error) VALUES
  (1, 'erp', 'order', 'A', 1, 'delivered', 1, '', 1, '2026-01-01T10:00:00.000Z', '2026-01-01T10:00:05.000Z',
   '2026-01-01T10:00:10.000Z', 201, NULL),
  (2, 'erp', 'order', 'D', 1, 'dead', 1, '', 1, NULL, '2026-01-01T10:00:05.000Z', NULL, 422, 'unknown customer "C-1"'),
  (3, 'erp', 'order', 'E', 1, 'dead', 1, '', 1, NULL, '2026-01-01T10:00:05.000Z', NULL, 422, 'unknown customer "C-2"'),
  (4, 'erp', 'order', 'F', 1, 'dead', 3, '', 1, NULL, '2026-01-01T10:00:05.000Z', NULL, NULL, NULL);
INSERT INTO attempts(delivery_id, n, started_at, operation, status, outcome, latency_ms, response) VALUES
  (1, 1, '2026-01-01T10:00:09.000Z', 'create 201', 201, 'delivered', 12, '{"id":"o1"}');
INSERT INTO reconciliations(target, at, remote_records, missing, orphans, drift) VALUES
  ('erp', '2026-01-01T09:00:00.000Z', 5, 0, 1, 0),
  ('erp', '2026-01-01T12:00:00.000Z', 5, 0, 2, 1);
"#;

fn ledger(p: &Place) -> Ledger {
    let l = p.open();
    l.conn.execute_batch(FIXTURE).unwrap();
    if l.is_postgres() {
        // Rows inserted with their ids leave the id sequences behind.
        l.conn
            .execute_batch(
                "SELECT setval(pg_get_serial_sequence('files', 'id'), 100); \
                 SELECT setval(pg_get_serial_sequence('deliveries', 'id'), 100)",
            )
            .unwrap();
    }
    l
}

fn window_totals_count_documents_rejects_and_deliveries(p: Place) {
    let l = ledger(&p);
    let t = l.window_totals("2026-01-01T00:00:00Z").unwrap();
    assert_eq!(
        t,
        WindowTotals {
            documents: 5,
            rejected_documents: 2,
            deliveries: 4,
            dead_letters: 3,
            delivered: 1,
        }
    );
    assert_eq!(l.window_totals("2026-01-02").unwrap().documents, 0);
    let hours = l.documents_by_bucket("2026-01-01", 13).unwrap();
    assert_eq!(hours.len(), 2, "{hours:?}");
    assert_eq!(
        (hours[0].at.as_str(), hours[0].total, hours[0].part),
        ("2026-01-01T10", 5, 2)
    );
    let lat = l.sync_latencies(None, "2026-01-01", 10).unwrap();
    assert_eq!(lat.len(), 1);
    assert!((lat[0].1 - 10.0).abs() < 0.01, "{lat:?}");
}

fn rejected_documents_group_by_the_rule_their_first_broken_line_broke(p: Place) {
    let l = ledger(&p);
    let groups = l.reject_groups().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!((groups[0].rule.as_str(), groups[0].documents), ("min", 2));
    let docs = l.open_rejects_of_rule("min", 10).unwrap();
    assert_eq!(docs.len(), 2);
    // Document B's first line was rejected only with its document: its own rule is line 4.
    assert_eq!((docs[0].ordinal, docs[0].line), (Some(3), Some(4)));
    assert_eq!(docs[0].field.as_deref(), Some("quantity"));
    l.resolve_units(1, &[2], "ann", "sent by phone").unwrap();
    assert_eq!(l.open_reject_units_of_rule("min").unwrap(), vec![(1, 3)]);
    let mine = l.rejected_docs_of_file(1).unwrap();
    let r = mine[0].resolution.as_ref().unwrap();
    assert_eq!(
        (r.actor.as_deref(), r.note.as_deref()),
        (Some("ann"), Some("sent by phone"))
    );
}

fn a_file_level_error_is_open_until_resolved(p: Place) {
    let l = ledger(&p);
    assert_eq!(l.open_file_errors().unwrap().len(), 1);
    assert_eq!(l.resolve_file_error(2, "ann", "partner told").unwrap(), 1);
    assert!(l.open_file_errors().unwrap().is_empty());
    assert_eq!(l.file_error_resolution(2).unwrap().unwrap().how, "resolved");
    assert_eq!(l.resolve_file_error(1, "ann", "no error here").unwrap(), 0);
}

fn a_dead_letter_group_is_retried_alone_and_its_progress_followed(p: Place) {
    let l = ledger(&p);
    let groups = l.dead_groups().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        (groups[0].count, groups[0].cause.as_str()),
        (2, "unknown customer \"…\"")
    );
    let sel = DeadGroupSel {
        target: "erp".into(),
        entity: "order".into(),
        status: Some(422),
        cause: "unknown customer \"…\"".into(),
    };
    assert_eq!(l.retry_dead_group(&sel, true).unwrap(), vec![2, 3]);
    assert_eq!(
        l.dead_groups().unwrap().len(),
        2,
        "a dry run changes nothing"
    );
    assert_eq!(l.retry_dead_group(&sel, false).unwrap(), vec![2, 3]);
    assert_eq!(
        l.delivery_states(&[2, 3]).unwrap(),
        vec![("pending".into(), 2)]
    );
    // The group without a message is untouched.
    let rest = l.dead_groups().unwrap();
    assert_eq!((rest.len(), rest[0].cause.as_str()), (1, ""));
    let none = DeadGroupSel {
        target: "erp".into(),
        entity: "order".into(),
        status: None,
        cause: String::new(),
    };
    assert_eq!(l.dead_of_group(&none, 10).unwrap()[0].key, "F");
}

fn files_lines_deliveries_and_history_of_a_key(p: Place) {
    let l = ledger(&p);
    let all = l.file_list(None, 0, 10).unwrap();
    assert_eq!(
        all.iter().map(|f| f.file.id).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    let held = l.file_list(Some("held"), 0, 10).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(l.file_lines(1, 0, 100, true).unwrap().len(), 3);
    assert_eq!(l.file_lines(1, 2, 1, false).unwrap()[0].ordinal, 2);
    let src = l.line_source(1, 3).unwrap().unwrap();
    assert_eq!((src.byte, src.end, src.has_byte), (60, Some(80), true));
    assert_eq!(l.file_deliveries(1, 10).unwrap().len(), 4);
    let counts = l.file_delivery_counts(1).unwrap();
    assert!(counts.contains(&StateCount {
        target: "erp".into(),
        state: "dead".into(),
        count: 3
    }));
    let v = l.key_versions(None, "A").unwrap();
    assert_eq!(
        (v.len(), v[0].file_name.as_deref()),
        (1, Some("orders.csv"))
    );
    let d = l.key_deliveries("order", "A").unwrap();
    assert_eq!(l.attempt_views(d[0].id).unwrap()[0].latency_ms, Some(12));
    assert_eq!(
        l.keys_starting("A", 5).unwrap(),
        vec![("order".into(), "A".into())]
    );
    // Applied A through its version, rejected B through the units index.
    let docs = |k: &str| -> Vec<(i64, String)> {
        let d = l.key_documents(k).unwrap();
        d.into_iter().map(|d| (d.seq, d.status)).collect()
    };
    assert_eq!(docs("A"), vec![(1, "applied".to_string())]);
    assert_eq!(docs("B"), vec![(2, "rejected".to_string())]);
    assert_eq!(docs("Z"), vec![]);
    assert_eq!(
        l.file_state_counts().unwrap(),
        vec![("held".into(), 1), ("rejected".into(), 1)]
    );
}

fn the_latest_reconciliation_per_target_and_sample_pruning(p: Place) {
    let l = ledger(&p);
    let r = l.latest_reconciliations().unwrap();
    assert_eq!((r.len(), r[0].orphans), (1, 2));
    assert_eq!(l.reconciliations_since("2026-01-01T10").unwrap().len(), 1);
    l.sample_metrics(&[("x", "", 1.0)]).unwrap();
    assert!(l.last_sample_at("x").unwrap().is_some());
    assert_eq!(l.prune_metric_samples("9999").unwrap(), 1);
    assert_eq!(l.last_sample_at("x").unwrap(), None);
}

fn audit_pages_go_back_in_time(p: Place) {
    let l = ledger(&p);
    for i in 0..5 {
        l.audit(
            "ann",
            if i % 2 == 0 { "resolve" } else { "retry" },
            None,
            None,
            &serde_json::json!({}),
        )
        .unwrap();
    }
    let first = l.audit_page(None, None, 2).unwrap();
    assert_eq!(first.iter().map(|a| a.id).collect::<Vec<_>>(), vec![5, 4]);
    let next = l.audit_page(Some(4), None, 2).unwrap();
    assert_eq!(next[0].id, 3);
    assert_eq!(l.audit_page(None, Some("retry"), 10).unwrap().len(), 2);
    assert_eq!(l.audit_entry(3).unwrap().unwrap().action, "resolve");
}

fn a_decided_file_supersedes_older_versions_of_its_keys_still_waiting_for_the_same_target(
    p: Place,
) {
    let l = ledger(&p);
    l.conn
        .execute_batch(
            "INSERT INTO deliveries(id, target, entity, key, version, state, attempts, next_at, file_id, created_at) \
             VALUES (5, 'crm', 'order', 'D', 1, 'pending', 0, '', 1, '2026-01-01T10:00:05.000Z'); \
             INSERT INTO versions(entity, key, version, hash, data, file_id, unit_seq) VALUES \
             ('order', 'A', 2, 'h2', NULL, 3, 1), ('order', 'D', 2, 'h3', NULL, 3, 2), \
             ('order', 'E', 2, 'h4', NULL, 3, 3); \
             INSERT INTO version_runs(file_id, first_seq, end_seq, versions, packed) VALUES (3, 1, 4, 3, NULL);",
        )
        .unwrap();
    let tx = l
        .conn
        .transaction_with_behavior(super::super::db::TransactionBehavior::Immediate)
        .unwrap();
    let routes = [("erp".to_string(), vec!["order".to_string()])];
    super::super::delivery::queue_file(&tx, 3, &routes).unwrap();
    tx.commit().unwrap();
    let mut st = l
        .conn
        .prepare("SELECT target, key, version, state FROM deliveries ORDER BY target, key, version")
        .unwrap();
    let rows: Vec<(String, String, i64, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let rows: Vec<String> = rows
        .into_iter()
        .map(|(t, k, v, s)| format!("{t} {k}{v} {s}"))
        .collect();
    // A delivered version stays delivered; dead ones with a newer version are
    // superseded; F has none; another target's waiting row is not this file's business.
    assert_eq!(
        rows,
        [
            "crm D1 pending",
            "erp A1 delivered",
            "erp A2 pending",
            "erp D1 superseded",
            "erp D2 pending",
            "erp E1 superseded",
            "erp E2 pending",
            "erp F1 dead",
        ]
    );
}

/// Versions are keyed by entity first; a question about a key of any entity scanned
/// every version (seconds per console page on a ledger of millions), as did the prefix
/// search, and the documents of a key are no longer all in `units_key` (migration 13).
#[test]
fn regression_questions_about_a_key_of_any_entity_search_indexes_instead_of_scanning() {
    let p = Place::sqlite();
    let l = ledger(&p);
    for sql in [
        super::key_versions_sql(),
        super::KEYS_STARTING_SQL.to_string(),
        super::KEY_DOCUMENTS_HELD_SQL.to_string(),
        super::key_documents_made_sql(),
    ] {
        let plan = plan(&l, &sql);
        assert!(
            !plan.lines().any(|s| s.starts_with("SCAN v")
                || s.starts_with("SCAN u")
                || s.starts_with("SCAN versions")
                || s.starts_with("SCAN units")),
            "{sql}\n{plan}"
        );
    }
    assert!(plan(&l, super::KEY_DOCUMENTS_HELD_SQL).contains("units_key"));
}

/// Statements traced on a test's SQLite connection (see `a_pass_a_scrape_and_…`).
static TRACED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn trace(e: rusqlite::trace::TraceEvent<'_>) {
    if let rusqlite::trace::TraceEvent::Stmt(_, sql) = e {
        TRACED.lock().unwrap().push(sql.to_string());
    }
}

/// The tables a statement names, by name and by alias.
fn tables_of(sql: &str) -> std::collections::HashMap<String, String> {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let mut map = std::collections::HashMap::new();
    for (i, w) in words.iter().enumerate() {
        if !(w.eq_ignore_ascii_case("FROM") || w.eq_ignore_ascii_case("JOIN")) {
            continue;
        }
        let Some(table) = words.get(i + 1) else {
            continue;
        };
        map.insert(table.to_string(), table.to_string());
        let alias = match words.get(i + 2) {
            Some(a) if a.eq_ignore_ascii_case("AS") => words.get(i + 3),
            a => a,
        };
        if let Some(a) = alias.filter(|a| a.chars().all(|c| c.is_ascii_lowercase() || c == '_')) {
            map.insert(a.to_string(), table.to_string());
        }
    }
    map
}

/// Tables that gain rows with every file, document, delivery, run or sample; a statement
/// asked at every pass, scrape or console page must search them, not read them whole.
const GROWING: &[&str] = &[
    "files",
    "units",
    "unit_runs",
    "versions",
    "lines",
    "keys",
    "deliveries",
    "attempts",
    "runs",
    "metric_samples",
    "acks",
    "chunks",
    "resolutions",
];

/// Partial indexes hold only the rows asked for: scanning one is not reading the table.
const PARTIAL: &[&str] = &[
    "units_rejected",
    "units_key",
    "deliveries_dead",
    "deliveries_latency",
    "deliveries_delivered",
    "runs_live",
];

/// The steps of `sql`'s plan that read a growing table whole.
fn whole_reads(l: &Ledger, sql: &str) -> Vec<String> {
    let tables = tables_of(sql);
    plan(l, sql)
        .lines()
        .filter(|step| {
            let Some(rest) = step.strip_prefix("SCAN ") else {
                return false;
            };
            let name = rest.split_whitespace().next().unwrap_or("");
            let table = tables.get(name).map_or(name, String::as_str);
            GROWING.contains(&table)
                && !PARTIAL.iter().any(|i| step.contains(&format!("INDEX {i}")))
        })
        .map(str::to_string)
        .collect()
}

/// What every pass (metrics sample), every metrics scrape and the console's dashboard,
/// exceptions and records pages ask read tables that only grow, whole: the reject tally
/// every unit of every decided file, the health window every delivery, the latency
/// percentiles sorted every delivered row of a target, the decision of each file every
/// delivery ever queued, the file states every file. Each statement they run is traced
/// and its plan checked.
#[test]
fn regression_a_pass_a_scrape_and_the_console_pages_search_growing_tables_instead_of_reading_them_whole(
) {
    let p = Place::sqlite();
    let l = ledger(&p);
    l.conn.sqlite().unwrap().trace_v2(
        rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
        Some(trace),
    );
    let since = "2026-01-01";
    l.reject_tally(None).unwrap();
    l.reject_tally(Some(1)).unwrap();
    l.reject_groups().unwrap();
    l.open_rejects_of_rule("min", 10).unwrap();
    l.open_reject_units_of_rule("min").unwrap();
    l.window_totals(since).unwrap();
    l.documents_by_bucket(since, 13).unwrap();
    l.delivered_by_bucket(since, 13).unwrap();
    l.deliveries_by_bucket(since, 13).unwrap();
    l.sync_latencies(None, since, 10).unwrap();
    l.sync_latencies(Some("erp"), since, 10).unwrap();
    l.target_counts("erp").unwrap();
    l.dead_letters(&Selection::default()).unwrap();
    l.dead_groups().unwrap();
    l.workers().unwrap();
    l.prune_metric_samples(since).unwrap();
    l.key_versions(None, "A").unwrap();
    l.keys_starting("A", 5).unwrap();
    l.key_documents("A").unwrap();
    l.key_deliveries("order", "A").unwrap();
    l.file_state_counts().unwrap();
    l.open_file_errors().unwrap();
    l.corrections_of(1).unwrap();
    l.conn
        .sqlite()
        .unwrap()
        .trace_v2(rusqlite::trace::TraceEventCodes::empty(), None);
    let mut statements = std::mem::take(&mut *TRACED.lock().unwrap());
    statements.push(super::super::delivery::SUPERSEDE_SQL.to_string());
    statements.sort();
    statements.dedup();
    assert!(statements.len() > 15, "{statements:?}");
    let bad: Vec<String> = statements
        .iter()
        .filter_map(|sql| {
            let reads = whole_reads(&l, sql);
            (!reads.is_empty()).then(|| format!("{sql}\n  {}", reads.join("\n  ")))
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
    // Rejected documents of decided files: searched by `files_state`, the decided files
    // were every file, and each one's units were read through.
    for sql in statements
        .iter()
        .filter(|s| s.contains("u.status = 'rejected' AND f.state = 'done'"))
    {
        assert!(
            plan(&l, sql).contains("units_rejected"),
            "{sql}\n{}",
            plan(&l, sql)
        );
    }
}

/// A file's versions are asked by primary key from the lists its batches made (made.rs),
/// `versions_file` gone: each such statement must search the key, not read every version.
#[test]
fn versions_asked_from_a_files_lists_are_searched_by_primary_key() {
    let p = Place::sqlite();
    let l = ledger(&p);
    for head in ["SELECT entity FROM versions", "DELETE FROM versions"] {
        let sql = super::super::made::by_primary_key(head, 3);
        let plan = plan(&l, &sql);
        assert!(
            plan.contains("SEARCH versions USING PRIMARY KEY (entity=? AND key=? AND version=?)")
                && !plan.contains("SCAN versions"),
            "{sql}\n{plan}"
        );
    }
}
