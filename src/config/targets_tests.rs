//! The tests of `targets` (targets and reconcile settings read, their mistakes reported),
//! apart so the module reads as the code alone.

use super::*;

fn parse_text(text: &str) -> (Vec<Target>, Vec<String>) {
    let table: toml::Table = toml::from_str(text).unwrap();
    let mut diags = Diagnostics::default();
    let t = parse(table.get("targets"), Path::new("t.toml"), text, &mut diags);
    (t, diags.errors.iter().map(|e| e.to_string()).collect())
}

#[test]
fn no_targets_means_the_outbox_for_everything() {
    let (t, errs) = parse_text("");
    assert!(errs.is_empty());
    assert_eq!(t, vec![Target::default_outbox()]);
}

#[test]
fn an_http_target_is_read_with_its_owned_fields() {
    let text = r#"
[[targets]]
name = "erp"
kind = "http"
base_url = "https://erp.example.com/"
token_env = "ERP_TOKEN"
entities = ["customer", "product", "order", "invoice"]
rate_limit_per_minute = 100
owned = { product = ["description", "price", "currency"] }
"#;
    let (t, errs) = parse_text(text);
    assert!(errs.is_empty(), "{errs:?}");
    let TargetKind::Http(h) = &t[0].kind else {
        panic!()
    };
    assert_eq!(h.base_url, "https://erp.example.com");
    assert_eq!(
        t[0].owned[&Entity::Product],
        vec!["description", "price", "currency"]
    );
    assert!(t[0].takes(Entity::Order) && !t[0].takes(Entity::Shipment));
}

#[test]
fn every_mistake_is_reported_with_its_line() {
    let text = r#"
[[targets]]
name = "erp"
kind = "http"
base_url = "erp.example.com"
token_env = "abc-def"
entities = ["customer", "custmer"]
owned = { customer = ["nmae"] }

[[targets]]
name = "erp"
kind = "ftp"
"#;
    let (_, errs) = parse_text(text);
    let all = errs.join("\n");
    for want in [
        "t.toml:2: target 'erp': unknown entity 'custmer'",
        "base_url must be an http",
        "token_env must name",
        "owned field 'nmae' is not a field of customer; did you mean 'name'?",
        "t.toml:10: target 'erp': unknown kind 'ftp'",
    ] {
        assert!(all.contains(want), "missing '{want}' in:\n{all}");
    }
}

#[test]
fn reconcile_settings_are_read_per_entity_or_for_all() {
    let base = "[[targets]]\nname = \"erp\"\nkind = \"http\"\nbase_url = \"http://e\"\ntoken_env = \"T\"\nentities = [\"customer\", \"product\"]\n";
    let (t, errs) = parse_text(base);
    assert!(errs.is_empty(), "{errs:?}");
    let r = &t[0].reconcile;
    assert_eq!(
        r.scope_of(Entity::Customer),
        None,
        "every record by default"
    );
    assert_eq!(r.entities, vec![Entity::Customer, Entity::Product]);
    assert_eq!((r.page_size, r.every), (100, None));
    let (t, errs) = parse_text(&format!(
        "{base}reconcile_scope = \"^C-\"\nreconcile_every_hours = 6\nreconcile_page_size = 7\n"
    ));
    assert!(errs.is_empty(), "{errs:?}");
    let r = &t[0].reconcile;
    assert_eq!(r.scope_of(Entity::Product), Some("^C-"));
    assert_eq!(r.every, Some(Duration::from_secs(6 * 3600)));
    assert_eq!(r.page_size, 7);
    let (t, errs) = parse_text(&format!(
        "{base}reconcile_scope = {{ product = \"^SKU-\" }}\nreconcile_entities = [\"product\"]\n"
    ));
    assert!(errs.is_empty(), "{errs:?}");
    let r = &t[0].reconcile;
    assert_eq!(r.scope_of(Entity::Product), Some("^SKU-"));
    assert_eq!(r.scope_of(Entity::Customer), None);
    assert_eq!(r.entities, vec![Entity::Product]);
    assert_eq!(r.scope_text(), "product=^SKU-");
}

#[test]
fn reconcile_mistakes_are_reported() {
    let text = "[[targets]]\nname = \"erp\"\nkind = \"http\"\nbase_url = \"http://e\"\ntoken_env = \"T\"\nentities = [\"customer\"]\nreconcile_scope = { customer = \"^(C-\", order = \"x\" }\nreconcile_every_hours = 0\nreconcile_page_size = 0\n\n[[targets]]\nname = \"files\"\nkind = \"outbox\"\nreconcile_every_hours = 1\n";
    let (_, errs) = parse_text(text);
    let all = errs.join("\n");
    for want in [
        "reconcile_scope '^(C-' is not a valid regex",
        "reconcile setting for 'order', which the target does not take",
        "reconcile_every_hours must be at least 1",
        "reconcile_page_size must be between 1 and 10000",
        "target 'files': reconcile_* settings need a target of kind \"http\"",
    ] {
        assert!(all.contains(want), "missing '{want}' in:\n{all}");
    }
}
