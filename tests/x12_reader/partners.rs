//! What a partner's definition decides: sets without a definition (applied, held or
//! rejected), all-or-nothing groups and interchanges, and the file policy of the star
//! partner.

use super::*;

/// Regression (hardening item 15): a set with no definition was recorded like an applied
/// one; nothing said it was only envelope-checked.
#[test]
fn regression_set_without_definition_was_not_marked_unmapped() {
    let r = read_text(format().as_ref(), &unmapped_940());
    let set = r.units.iter().find(|u| u.label.starts_with("940")).unwrap();
    assert!(set.eval.unmapped, "{:?}", set.eval);
    assert!(!set.eval.is_rejected());
    assert!(set.eval.records.is_empty());
    assert_eq!(set.eval.hold, None);
    assert_eq!(set.eval.detail["unmapped"], true);
    assert!(set.eval.detail["note"]
        .as_str()
        .unwrap()
        .contains("no definition for transaction set 940 version 004010"));
    // Still claims its interchange, so a resend is a duplicate.
    assert_eq!(
        set.eval.claims,
        vec!["x12-isa:PARTNER:US:000000007".to_string()]
    );
    assert!(ack_text(&r).contains("AK2*940*0001~\nAK5*A~\nAK9*A*1*1*1~"));
    // A mapped set is not unmapped.
    let r = read_text(format().as_ref(), &one_set(ISA_OK, PO_BODY, 4));
    let set = r.units.iter().find(|u| u.label.starts_with("850")).unwrap();
    assert!(!set.eval.unmapped);
    assert_eq!(set.eval.records.len(), 1);
}

#[test]
fn partner_may_hold_unmapped_sets_for_review() {
    let r = read_text(partner_unmapped("hold").as_ref(), &unmapped_940());
    let set = r.units.iter().find(|u| u.label.starts_with("940")).unwrap();
    assert!(set.eval.unmapped && !set.eval.is_rejected());
    assert_eq!(
        set.eval.hold.as_deref(),
        Some(
            "transaction set 940 has no definition; partner PARTNER holds unmapped sets for review"
        )
    );
    // Acknowledged as accepted once released (the pipeline records it as unmapped).
    assert!(ack_text(&r).contains("AK5*A~"));
    // A set that is rejected anyway asks for no review.
    let bad = unmapped_940().replace("SE*3*", "SE*9*");
    let r = read_text(partner_unmapped("hold").as_ref(), &bad);
    let set = r.units.iter().find(|u| u.label.starts_with("940")).unwrap();
    assert!(set.eval.is_rejected());
    assert!(!set.eval.unmapped && set.eval.hold.is_none());
}

#[test]
fn partner_may_reject_unmapped_sets_as_not_supported() {
    let r = read_text(partner_unmapped("reject").as_ref(), &unmapped_940());
    let set = r.units.iter().find(|u| u.label.starts_with("940")).unwrap();
    assert_eq!(set.status(), UnitStatus::Rejected);
    assert!(!set.eval.unmapped);
    let e = &set.eval.unit_errors[0];
    assert_eq!(e.rule, "x12-no-definition");
    assert_eq!(e.field.as_deref(), Some("ST01"));
    assert_eq!(e.value.as_deref(), Some("940"));
    let ack = ack_text(&r);
    assert!(
        ack.contains("AK2*940*0001~\nAK5*R*1~\nAK9*R*1*1*0~"),
        "{ack}"
    );
    // The 999 says the same in IK5.
    let five = unmapped_940()
        .replace("*U*00401*", "*^*00501*")
        .replace("*X*004010~", "*X*005010~");
    let ack = ack_text(&read_text(partner_unmapped("reject").as_ref(), &five));
    assert!(ack.contains("AK2*940*0001~\nIK5*R*1~"), "{ack}");
}

#[test]
fn unmapped_setting_of_the_star_file_applies_to_partner_files_that_do_not_set_it() {
    // The bundled definitions without their `*` partner file, plus a `*` file that rejects.
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "star.toml",
            "kind = \"x12-partner\"\nsenders = [\"*\"]\nunmapped = \"reject\"\n",
        ),
        (
            "p.toml",
            "kind = \"x12-partner\"\nsenders = [\"PARTNER\"]\ntolerate = [\"se01-count\"]\n",
        ),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut d = Diagnostics::default();
    let mut defs: Vec<_> = read_defs(&root().join("formats/x12"), &mut d)
        .into_iter()
        .filter(|def| !def.path.ends_with("partners.toml"))
        .collect();
    defs.extend(read_defs(dir.path(), &mut d));
    let refs: Vec<_> = defs.iter().collect();
    let f = tallyman::x12::load(&refs, &mut d).remove(0);
    assert!(d.is_empty(), "{:?}", d.errors);
    let r = read_text(f.as_ref(), &unmapped_940());
    let set = r.units.iter().find(|u| u.label.starts_with("940")).unwrap();
    assert_eq!(set.eval.unit_errors[0].rule, "x12-no-definition");
}

#[test]
fn unknown_unmapped_setting_is_a_definition_error_with_its_line() {
    let (_, d) = format_with(&[(
        "p.toml",
        "kind = \"x12-partner\"\nsenders = [\"A\"]\nunmapped = \"ignore\"\n",
    )]);
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    assert_eq!(d.errors[0].line, Some(3));
    assert!(d.errors[0].message.contains("accept, hold, reject"));
}

#[test]
fn all_or_nothing_partner_rejects_the_whole_group() {
    let (f, d) = format_with(&[(
        "globex.toml",
        "kind = \"x12-partner\"\nsenders = [\"GLOBEX\"]\natomic = \"group\"\n",
    )]);
    assert!(d.is_empty(), "{:?}", d.errors);
    let r = read_all(
        f.as_ref(),
        &root().join("samples/inbox/globex-invoices.x12"),
    );
    assert!(r.error.is_none());
    // ISA, the merged group (GS..GE), IEA.
    assert_eq!(
        r.units.len(),
        3,
        "{:?}",
        r.units.iter().map(|u| &u.label).collect::<Vec<_>>()
    );
    let group = &r.units[1];
    assert_eq!(group.lines.len(), 16);
    assert_eq!(group.status(), UnitStatus::Rejected);
    assert!(group.eval.records.is_empty());
    assert!(group
        .eval
        .unit_errors
        .iter()
        .any(|e| e.rule == "x12-all-or-nothing"));
    // Positions of the bad set's segments are kept.
    assert!(rejected_fields(&r).contains(&("x12-date".into(), "BIG01".into(), 13)));
    let ack = ack_text(&r);
    // The good set is rejected with its group: code 5, never a bare R.
    assert!(ack.contains("AK2*810*0001~\nAK5*R*5~"), "{ack}");
    assert!(
        ack.contains("AK5*R*4*5~") && ack.contains("AK9*R*2*2*0~"),
        "{ack}"
    );
    // Seqs stay contiguous for resume.
    assert_eq!(
        r.units.iter().map(|u| u.seq).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
}

#[test]
fn all_or_nothing_interchange_applies_everything_when_all_is_good() {
    let (f, _) = format_with(&[(
        "acme.toml",
        "kind = \"x12-partner\"\nsenders = [\"ACME\"]\natomic = \"interchange\"\n",
    )]);
    let r = read_all(f.as_ref(), &root().join("samples/inbox/acme-orders.x12"));
    assert_eq!(r.units.len(), 1);
    assert_eq!(r.units[0].status(), UnitStatus::Applied);
    assert_eq!(r.units[0].eval.records.len(), 2);
    assert!(ack_text(&r).contains("AK9*A*2*2*2~"));
}

#[test]
fn file_policy_belongs_to_the_star_partner_only() {
    let (_, d) = format_with(&[(
        "p.toml",
        "kind = \"x12-partner\"\nsenders = [\"A\"]\npolicy = \"all-or-nothing\"\n",
    )]);
    assert_eq!(d.errors.len(), 1);
    assert_eq!(d.errors[0].line, Some(3));
    assert!(d.errors[0].message.contains("atomic"));
}

#[test]
fn all_or_nothing_group_names_its_documents_and_is_unmapped_only_if_no_set_is_mapped() {
    let (f, _) = format_with(&[(
        "globex.toml",
        "kind = \"x12-partner\"\nsenders = [\"GLOBEX\"]\natomic = \"group\"\n",
    )]);
    let r = read_all(
        f.as_ref(),
        &root().join("samples/inbox/globex-invoices.x12"),
    );
    assert_eq!(r.units[1].eval.key.as_deref(), Some("INV-9001,INV-9002"));
    let (f, _) = format_with(&[(
        "p.toml",
        "kind = \"x12-partner\"\nsenders = [\"PARTNER\"]\natomic = \"group\"\nunmapped = \"hold\"\n",
    )]);
    let only_940 = read_text(f.as_ref(), &unmapped_940());
    let group = &only_940.units[1];
    assert!(
        group.eval.unmapped && group.eval.hold.is_some(),
        "{:?}",
        group.eval
    );
    let mixed = unmapped_940().replace(
        "GE*1*7~",
        "ST*850*0002~\nBEG*00*SA*PO1**20240131~\nPO1*1*2*EA*3**VN*X~\nSE*4*0002~\nGE*2*7~",
    );
    let r = read_text(f.as_ref(), &mixed);
    let group = &r.units[1];
    assert!(!group.eval.unmapped, "{:?}", group.eval);
    assert_eq!(group.eval.records.len(), 1);
    // The 940 still asks for the file to be held.
    assert!(group.eval.hold.is_some());
}
