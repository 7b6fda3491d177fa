//! The operations console over HTTP, on a ledger made by the real `tallyman run` against
//! the ERP simulator: its security (no non-loopback bind without a token, no action without
//! the CSRF token, no foreign Host, no unmasked sensitive value without an audit row), its
//! actions and their audit rows, and `/metrics` with the textfile writer.

mod common;
mod console_support;

use console_support::*;
use tallyman::console::StartError;

#[test]
fn a_non_loopback_bind_is_refused_without_a_token_and_allowed_with_one() {
    let env = Env::new(None);
    let refused = start(&env.work, None, "0.0.0.0:0");
    assert!(
        matches!(refused, Err(StartError::NeedsToken(_))),
        "{:?}",
        refused.err()
    );
    let with_token = start(&env.work, Some("ops:0123456789abcdef"), "0.0.0.0:0").unwrap();
    let port = with_token.local_addr().port();
    let page = Client::new().get(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(page.status, 303, "a token means a login first");
    // The command itself says why and exits 2 (when no token is in the environment).
    if std::env::var_os(tallyman::console::TOKEN_ENV).is_none() {
        assert_eq!(
            tallyman::console::serve(&env.work.config(), "0.0.0.0:0").unwrap(),
            2
        );
    }
}

#[test]
fn actions_are_refused_without_the_right_csrf_token_or_from_another_site() {
    let env = Env::new(None);
    let id = env.file_id("orders-1.csv");
    let mut c = Client::new();
    let page = c.get(&env.url(&format!("/files/{id}")));
    assert_eq!(page.status, 200, "{}", page.body);
    let token = csrf_of(&page.body);
    let url = env.url(&format!("/files/{id}/resolve"));
    let open = env.ledger().reject_tally(Some(id)).unwrap().open;
    assert_eq!(open, 2, "two orders were rejected");
    for form in [vec![("note", "x")], vec![("note", "x"), ("csrf", "0000")]] {
        let r = c.post(&url, &form, &[]);
        assert_eq!(r.status, 403, "{}", r.body);
    }
    let good = [("note", "fixed with the partner"), ("csrf", token.as_str())];
    let cross = c.post(&url, &good, &[("origin", "http://evil.example")]);
    assert_eq!(cross.status, 403);
    let cross = c.post(&url, &good, &[("sec-fetch-site", "cross-site")]);
    assert_eq!(cross.status, 403);
    let mut stranger = Client::new();
    assert_eq!(
        stranger.post(&url, &good, &[]).status,
        403,
        "another session's token"
    );
    assert_eq!(
        env.ledger().reject_tally(Some(id)).unwrap().open,
        2,
        "nothing was resolved"
    );
    assert!(!audit_actions(&env.ledger()).contains_key("resolve"));
    let ok = c.post(&url, &good, &[]);
    assert_eq!(
        (ok.status, ok.location.as_deref()),
        (303, Some(&*format!("/files/{id}")))
    );
    assert_eq!(env.ledger().reject_tally(Some(id)).unwrap().open, 0);
    let audit = audit_actions(&env.ledger());
    let row = &audit["resolve"][0];
    assert_eq!(
        (row.actor.as_str(), row.reason.as_deref()),
        ("tester", Some("fixed with the partner"))
    );
    assert_eq!(row.detail.as_ref().unwrap()["resolved"], 2);
}

#[test]
fn a_loopback_console_answers_to_no_other_host_name() {
    let env = Env::new(None);
    let r = Client::new().get_with(&env.url("/"), &[("host", "evil.example")]);
    assert_eq!(r.status, 421);
    assert!(!r.body.contains("orders-1.csv"));
}

#[test]
fn with_a_token_every_page_and_the_metrics_need_it_and_actions_name_its_owner() {
    let env = Env::new(Some("ops:0123456789abcdef"));
    let mut c = Client::new();
    let r = c.get(&env.url("/exceptions"));
    assert_eq!(
        (r.status, r.location.as_deref()),
        (303, Some("/login?next=%2Fexceptions"))
    );
    assert_eq!(c.get(&env.url("/metrics")).status, 401);
    let wrong = c.post(
        &env.url("/login"),
        &[("token", "0123456789abcdeX"), ("next", "/exceptions")],
        &[],
    );
    assert_eq!(wrong.status, 401);
    assert!(c.cookie.is_none());
    let ok = c.post(
        &env.url("/login"),
        &[("token", "0123456789abcdef"), ("next", "/exceptions")],
        &[],
    );
    assert_eq!(
        (ok.status, ok.location.as_deref()),
        (303, Some("/exceptions"))
    );
    let page = c.get(&env.url("/exceptions"));
    assert!(
        page.body.contains("signed in as <strong>ops</strong>"),
        "{}",
        page.body
    );
    let metrics = Client::new().get_with(
        &env.url("/metrics"),
        &[("authorization", "Bearer 0123456789abcdef")],
    );
    assert_eq!(metrics.status, 200);
    let id = env.file_id("orders-1.csv");
    let token = csrf_of(&page.body);
    let r = c.post(
        &env.url(&format!("/files/{id}/resolve")),
        &[("note", "n"), ("csrf", &token)],
        &[],
    );
    assert_eq!(r.status, 303);
    assert_eq!(audit_actions(&env.ledger())["resolve"][0].actor, "ops");
    // After logging out the session is gone.
    c.post(&env.url("/logout"), &[("csrf", &token)], &[]);
    assert_eq!(c.get(&env.url("/exceptions")).status, 303);
}

/// Every page a person can reach without acting.
fn pages(env: &Env) -> Vec<String> {
    let orders = env.file_id("orders-1.csv");
    let suppliers = env.file_id("suppliers-1.csv");
    [
        "/".to_string(),
        "/?window=30d".into(),
        "/files".into(),
        format!("/files/{orders}"),
        format!("/files/{suppliers}"),
        format!("/files/{suppliers}?rejected=1"),
        "/exceptions".into(),
        "/exceptions/rule?rule=checksum".into(),
        "/records?key=S-1".into(),
        "/records?key=S-2".into(),
        "/audit".into(),
        "/metrics".into(),
    ]
    .into_iter()
    .collect()
}

#[test]
fn sensitive_values_are_never_shown_unmasked_without_an_audit_row() {
    let env = Env::new(None);
    let mut c = Client::new();
    let check_masked = |c: &mut Client| {
        for p in pages(&env) {
            let r = c.get(&env.url(&p));
            assert_eq!(r.status, 200, "{p}: {}", r.body);
            for iban in [GOOD_IBAN, BAD_IBAN] {
                assert!(!r.body.contains(iban), "{p} shows {iban} unmasked");
            }
        }
    };
    check_masked(&mut c);
    let suppliers = env.file_id("suppliers-1.csv");
    let page = c.get(&env.url(&format!("/files/{suppliers}?rejected=1")));
    assert!(
        page.body.contains("********************00"),
        "the masked IBAN is shown"
    );
    let token = csrf_of(&page.body);
    // The rejected line's original, from the archived input.
    let ordinal = env.ledger().file_lines(suppliers, 0, 10, true).unwrap()[0].ordinal;
    let r = c.post(
        &env.url(&format!("/files/{suppliers}/reveal")),
        &[
            ("csrf", &token),
            ("ordinal", &ordinal.to_string()),
            ("reason", "fix the IBAN"),
        ],
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(BAD_IBAN), "{}", r.body);
    // The delivered record's version.
    let r = c.post(
        &env.url("/records/reveal"),
        &[
            ("csrf", &token),
            ("entity", "supplier"),
            ("key", "S-1"),
            ("version", "1"),
        ],
        &[],
    );
    assert!(r.body.contains(GOOD_IBAN), "{}", r.body);
    let reveals = &audit_actions(&env.ledger())["reveal"];
    assert_eq!(reveals.len(), 2);
    assert_eq!(
        reveals[1].subject.as_deref(),
        Some("suppliers-1.csv line 3")
    );
    assert_eq!(reveals[1].reason.as_deref(), Some("fix the IBAN"));
    assert_eq!(
        reveals[0].detail.as_ref().unwrap()["fields"],
        serde_json::json!(["iban", "account_holder", "email", "phone"])
    );
    // Revealing left nothing unmasked behind on any page, the audit trail included.
    check_masked(&mut c);
    // Without the token, nothing is revealed and nothing recorded.
    let r = c.post(
        &env.url("/records/reveal"),
        &[("entity", "supplier"), ("key", "S-1"), ("version", "1")],
        &[],
    );
    assert_eq!(r.status, 403);
    assert!(!r.body.contains(GOOD_IBAN));
    assert_eq!(audit_actions(&env.ledger())["reveal"].len(), 2);
}

#[test]
fn a_dead_letter_group_is_counted_first_then_queued_and_its_progress_shown() {
    let env = Env::new(None);
    let mut c = Client::new();
    let queue = c.get(&env.url("/exceptions"));
    assert!(
        queue.body.contains("8 dead letter(s) in 1 group(s)"),
        "{}",
        queue.body
    );
    let at = queue.body.find("/deadletters/retry?").unwrap();
    let href = queue.body[at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let preview = c.get(&env.url(&href));
    assert!(
        preview.body.contains("<strong>8 dead letter(s)</strong>"),
        "{}",
        preview.body
    );
    assert_eq!(
        env.ledger().target_counts("erp").unwrap().dead,
        8,
        "the preview changed nothing"
    );
    let token = csrf_of(&preview.body);
    let mut form: Vec<(String, String)> = vec![
        ("csrf".into(), token),
        ("reason".into(), "customers added".into()),
    ];
    for name in ["target", "entity", "status", "cause"] {
        let key = format!("name=\"{name}\" value=\"");
        let at = preview.body.find(&key).unwrap() + key.len();
        let v = preview.body[at..]
            .split('"')
            .next()
            .unwrap()
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        form.push((name.into(), v));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = c.post(&env.url("/deadletters/retry"), &form, &[]);
    assert_eq!(r.status, 303, "{}", r.body);
    let progress_url = env.url(r.location.as_deref().unwrap());
    let progress = c.get(&progress_url);
    assert!(
        progress.body.contains("<strong>8 queued</strong>"),
        "{}",
        progress.body
    );
    assert!(
        progress.body.contains("0 of 8 delivered"),
        "{}",
        progress.body
    );
    let q = env.ledger().target_counts("erp").unwrap();
    assert_eq!((q.dead, q.pending), (0, 8));
    // The cause is fixed in the ERP; the next deliver sends them.
    env.sim
        .set_config(tallyman::erpsim::SimConfig {
            token: Some(ERP_TOKEN.into()),
            check_order_customer: false,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(env.tallyman(&["deliver"]).status.code(), Some(0));
    assert!(c.get(&progress_url).body.contains("8 of 8 delivered"));
    let retry = &audit_actions(&env.ledger())["retry"][0];
    assert_eq!(
        (
            retry.actor.as_str(),
            retry.detail.as_ref().unwrap()["queued"].as_i64()
        ),
        ("tester", Some(8))
    );
}

#[test]
fn a_held_file_is_released_from_the_console_with_an_audit_row() {
    let env = Env::new(None);
    let id = env.file_id("orders-1.csv");
    // A file held for a person, as the stall guard leaves one.
    env.ledger()
        .hold(id, "stalled", "the process died 3 times at the same place")
        .unwrap();
    let mut c = Client::new();
    let page = c.get(&env.url("/exceptions"));
    assert!(
        page.body.contains("the process died 3 times"),
        "{}",
        page.body
    );
    let token = csrf_of(&page.body);
    let r = c.post(
        &env.url(&format!("/files/{id}/release")),
        &[
            ("csrf", &token),
            ("decision", "release"),
            ("reason", "fixed the parser"),
        ],
        &[],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(env.ledger().held_files().unwrap().is_empty());
    let row = &audit_actions(&env.ledger())["release"][0];
    assert_eq!(
        (row.reason.as_deref(), row.subject.as_deref()),
        (Some("fixed the parser"), Some("orders-1.csv"))
    );
    let again = c.post(
        &env.url(&format!("/files/{id}/release")),
        &[("csrf", &token), ("decision", "release")],
        &[],
    );
    assert_eq!(again.status, 409, "not held any more");
}

#[test]
fn metrics_carry_the_dashboards_numbers_and_the_textfile_the_same() {
    let env = Env::new(None);
    tallyman::metrics::sample(&env.ledger(), &env.config()).unwrap();
    let r = Client::new().get(&env.url("/metrics"));
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("application/openmetrics-text"),
        "{}",
        r.content_type
    );
    for needle in [
        "tallyman_dead_letters{target=\"erp\"} 8.0",
        "tallyman_records_delivered{target=\"erp\"} 1.0",
        "tallyman_retry_queue_depth{target=\"erp\"} 0.0",
        "tallyman_sync_latency_seconds{target=\"erp\",quantile=\"0.95\"}",
        "tallyman_documents_rejected{window=\"24h\"} 3.0",
        "tallyman_rejected_documents{state=\"open\"} 3.0",
        "tallyman_error_ratio{kind=\"dead_letters\",window=\"24h\"}",
        "tallyman_files{state=\"held\"} 0.0",
        "# EOF",
    ] {
        assert!(r.body.contains(needle), "{needle} in\n{}", r.body);
    }
    let path = env.work.dir.join("tallyman.prom");
    assert_eq!(
        tallyman::metrics::metrics_textfile(&env.work.config(), &path).unwrap(),
        0
    );
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(file.contains("tallyman_dead_letters{target=\"erp\"} 8.0"));
    assert!(
        !file.contains("# EOF"),
        "the Prometheus text format has no EOF line"
    );
    let dash = Client::new().get(&env.url("/"));
    assert!(dash.body.contains("Error rate: rejected documents"));
    assert!(dash.body.contains("3 of 12 documents"), "{}", dash.body);
}
