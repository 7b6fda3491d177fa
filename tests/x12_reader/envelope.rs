//! The envelope: each group read as its own version, trailer counts, ISA and GS errors
//! answered with a TA1 or the AK9, delimiters per interchange, and sets too large to buffer.

use super::*;

/// What a group's sets share with their jobs (GS08 among it) is made per group: the second
/// group of an interchange, of a version without definitions, is read as that version.
#[test]
fn each_group_s_sets_are_read_as_their_own_group_s_version() {
    let text = format!(
        "{ISA_OK}GS*PO*PARTNER*US*20240131*1100*7*X*004010~\nST*850*0001~\n{PO_BODY}SE*4*0001~\nGE*1*7~\n\
         GS*PO*PARTNER*US*20240131*1100*8*X*009999~\nST*850*0002~\n{PO_BODY}SE*4*0002~\nGE*1*8~\n\
         GS*PO*PARTNER*US*20240131*1100*9*X*004010~\nST*850*0003~\n{PO_BODY}SE*4*0003~\nGE*1*9~\n\
         IEA*3*000000007~\n"
    );
    let r = read_text(format().as_ref(), &text);
    assert!(r.error.is_none(), "{:?}", r.error);
    let sets = sets(&r, "850");
    assert_eq!(sets.len(), 3);
    assert_eq!(sets[0].eval.records.len(), 1, "{:?}", sets[0].eval);
    assert!(sets[1].eval.unmapped, "{:?}", sets[1].eval);
    assert!(sets[1].eval.records.is_empty());
    assert_eq!(sets[2].eval.records.len(), 1, "{:?}", sets[2].eval);
}

#[test]
fn wrong_se01_is_rejected_unless_the_partner_tolerates_it() {
    let text = one_set(ISA_OK, PO_BODY, 9);
    let strict = read_text(format().as_ref(), &text);
    assert_eq!(rejected_fields(&strict)[0].0, "x12-se01-count");
    let (tolerant, d) = format_with(&[(
        "p.toml",
        "kind = \"x12-partner\"\nsenders = [\"PARTNER\"]\ntolerate = [\"se01-count\"]\n",
    )]);
    assert!(d.is_empty());
    let r = read_text(tolerant.as_ref(), &text);
    let set = r.units.iter().find(|u| u.label.starts_with("850")).unwrap();
    assert_eq!(set.status(), UnitStatus::Applied);
    assert_eq!(set.eval.tolerated, vec!["x12-se01-count".to_string()]);
}

#[test]
fn bad_isa_header_rejects_its_sets_and_answers_with_ta1() {
    let isa = ISA_OK.replace("*1100*U*", "*3399*U*");
    let r = read_text(format().as_ref(), &one_set(&isa, PO_BODY, 4));
    assert!(r.error.is_none());
    let isa_unit = &r.units[0];
    assert_eq!(isa_unit.status(), UnitStatus::Rejected);
    let set = r.units.iter().find(|u| u.label.starts_with("850")).unwrap();
    assert_eq!(set.eval.unit_errors[0].rule, "x12-interchange-rejected");
    assert!(ack_text(&r).contains("*R*015~"), "{}", ack_text(&r));
}

#[test]
fn trailer_count_mismatch_fails_the_file_with_ta1_and_group_code() {
    let text = one_set(ISA_OK, PO_BODY, 4).replace("IEA*1*", "IEA*2*");
    let r = read_text(format().as_ref(), &text);
    let err = r.error.as_ref().unwrap();
    assert_eq!(err.reason.rule, "x12-iea01-count");
    assert_eq!(err.pos.as_ref().unwrap().line, 8);
    let ack = ack_text(&r);
    assert!(ack.contains("TA1*000000007*240131*1100*R*021~"), "{ack}");
    // The whole file is rejected, so no set is acknowledged as accepted; the set itself
    // is fine (code 5, rejected with its interchange), the cause is in the TA1.
    assert!(
        ack.contains("AK5*R*5~") && ack.contains("AK9*R*1*1*0~"),
        "{ack}"
    );
}

#[test]
fn interchanges_with_different_delimiters_in_one_file() {
    let first = one_set(ISA_OK, PO_BODY, 4);
    let second = one_set(ISA_OK, PO_BODY, 4)
        .replace('*', "|")
        .replace('~', "!")
        .replace("|>!", "|^!")
        .replace("000000007", "000000008")
        .replace("PO1|1|2|EA|3||VN|X", "PO1|1|2|EA|3||VN|Y");
    let r = read_text(format().as_ref(), &format!("{first}\r\n{second}"));
    assert!(r.error.is_none(), "{:?}", r.error);
    let recs = records(&r);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].body()["lines"][0]["sku"], "Y");
    assert_eq!(r.acks.len(), 2);
}

#[test]
fn bad_gs_rejects_its_sets_and_the_ak9_says_so() {
    let text = one_set(ISA_OK, PO_BODY, 4)
        .replace("*7*X*004010~", "*7A*X*004010~")
        .replace("GE*1*7~", "GE*1*7A~");
    let r = read_text(format().as_ref(), &text);
    assert!(r.error.is_none(), "{:?}", r.error);
    let set = r.units.iter().find(|u| u.label.starts_with("850")).unwrap();
    assert_eq!(set.status(), UnitStatus::Rejected);
    assert_eq!(rejected_fields(&r)[0].1, "GS06");
    assert!(ack_text(&r).contains("AK9*R*1*1*0*6~"), "{}", ack_text(&r));
}

#[test]
fn oversized_set_is_rejected_not_buffered() {
    let body: String = (1..=8)
        .map(|i| format!("PO1*{i}*1*EA*1**VN*S{i}~\n"))
        .collect();
    let text = one_set(ISA_OK, &format!("BEG*00*SA*PO1**20240131~\n{body}"), 11);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.x12");
    std::fs::write(&p, text).unwrap();
    let mut ctx = tallyman::format::testing::ctx_for(&p);
    ctx.limits.max_unit_lines = 5;
    let r = tallyman::format::testing::read_all_with(format().as_ref(), &p, &ctx);
    let set = r.units.iter().find(|u| u.label.starts_with("850")).unwrap();
    assert_eq!(set.lines.len(), 6, "5 kept plus SE");
    let rules: Vec<&str> = set
        .eval
        .unit_errors
        .iter()
        .map(|e| e.rule.as_str())
        .collect();
    assert_eq!(
        rules,
        vec!["x12-set-too-large"],
        "SE01 still counts every segment"
    );
}

#[test]
fn element_errors_of_one_segment_share_one_ak3() {
    let r = read_all(
        format().as_ref(),
        &root().join("tests/corpus/x12/ediengine_850.SyntaxNotes.ERR.edi"),
    );
    let ack = ack_text(&r);
    assert!(
        ack.contains("AK3*PO1*13**8~\nAK4*7**2~\nAK3*PO4*30**8~\nAK4*6**2~\nAK4*6**2~\nAK5*R*5~"),
        "{ack}"
    );
}
