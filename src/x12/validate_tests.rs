//! The tests of `validate` (occurrence counts, calendar dates, required elements, types),
//! apart so the module reads as the code alone.

use super::*;

/// Counts come zeroed and as many as asked, on the stack or, past its room, not.
#[test]
fn occurrence_counts_are_zeroed_on_the_stack_and_past_it() {
    for n in [0, 1, 60, 128, 129, 500] {
        let (len, zero) = with_counts(n, |c| {
            let zero = c.iter().all(|&x| x == 0);
            c.iter_mut().for_each(|x| *x += 1);
            (c.len(), zero)
        });
        assert_eq!((len, zero), (n, true));
    }
}

#[test]
fn calendar_dates_are_read_as_chrono_reads_them() {
    for v in [
        "20240229",
        "20230229",
        "00000101",
        "99991231",
        "20261301",
        "20260010",
        "20260132",
        "20260431",
        "20261231",
        "19000229",
        "20000229",
        "240229",
        "230229",
        "991231",
        "000101",
        "261301",
        "260100",
        "2026110",
        "202611020",
        "",
        "2026",
    ] {
        let chrono = match v.len() {
            8 => chrono::NaiveDate::parse_from_str(v, "%Y%m%d").is_ok(),
            6 => chrono::NaiveDate::parse_from_str(&format!("20{v}"), "%Y%m%d").is_ok(),
            _ => false,
        };
        assert_eq!(is_calendar_date(v), chrono, "{v:?}");
    }
}

/// The element checks stop past the segment's last element and the definition's last
/// required one: a required element after what the segment carries is still reported,
/// an optional one is not, and one the segment carries past the required ones is
/// still checked.
#[test]
fn a_required_element_past_the_segments_end_is_still_reported() {
    use crate::x12::defs::ElementDef;
    use crate::x12::segments::{SegmentReader, Sep};
    let el = |required, max| ElementDef {
        required,
        ty: ElType::An,
        min: 1,
        max,
        codes: None,
    };
    let def = SegmentDef {
        elements: vec![
            el(true, 9),
            el(false, 9),
            el(true, 9),
            el(false, 2),
            el(false, 9),
        ],
        required_through: 3,
        ..SegmentDef::default()
    };
    let d = Delims {
        elem: Sep::new('*'),
        comp: Sep::new(':'),
        term: Sep::new('~'),
        rep: None,
    };
    let issues = |text: &str| {
        let seg = SegmentReader::new(text.as_bytes(), 1 << 20)
            .read_segment(&d)
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        check_element_values(&def, 0, &seg, &d, &mut out);
        out.iter()
            .map(|i| (i.element.as_ref().unwrap().pos, i.reason.rule.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(issues("ZZZ*a~"), [(3, "x12-required".to_string())]);
    assert_eq!(issues("ZZZ*a**b~"), []);
    assert_eq!(issues("ZZZ*a**b*long~"), [(4, "x12-length".to_string())]);
    assert_eq!(issues("ZZZ~").len(), 2);
}

#[test]
fn values_are_typed() {
    assert!(check_value(ElType::N(0), 1, 5, None, "12a").is_some());
    assert!(check_value(ElType::N(0), 1, 5, None, "-12").is_none());
    assert!(check_value(ElType::R, 1, 5, None, "1.5").is_none());
    assert!(check_value(ElType::R, 1, 5, None, "1.5.1").is_some());
    assert_eq!(
        check_value(ElType::Dt, 8, 8, None, "19461301").unwrap().0,
        8
    );
    assert!(check_value(ElType::Dt, 6, 8, None, "240229").is_none());
    assert_eq!(check_value(ElType::Tm, 4, 8, None, "2561").unwrap().0, 9);
    assert_eq!(check_value(ElType::An, 1, 3, None, "abcd").unwrap().0, 5);
    let codes = CodeTable::list(vec!["00".to_string()]);
    assert_eq!(
        check_value(ElType::Id, 2, 2, Some(&codes), "01").unwrap().0,
        7
    );
}

/// A list of any length, looked up by hash, must answer as a scan of the whole list would,
/// and a message names a long list's first twelve codes only.
#[test]
fn a_code_list_answers_alike_short_or_long_and_a_message_names_its_first_codes() {
    for n in [1, 2, 8, 9, 256] {
        let listed: Vec<String> = (0..n)
            .map(|i| format!("{:02}", i % 100 + i / 100 * 7))
            .collect();
        let codes = CodeTable::list(listed.clone());
        for v in ["00", "07", "99", "AA", "", "000"] {
            assert_eq!(
                check_value(ElType::Id, 0, 3, Some(&codes), v).is_none(),
                listed.iter().any(|c| c == v),
                "{v} in a list of {n}"
            );
        }
    }
    let many = CodeTable::list((0..256).map(|i| format!("C{i}")).collect());
    let (code, rule, msg) = check_value(ElType::Id, 1, 4, Some(&many), "ZZ").unwrap();
    assert_eq!((code, rule), (7, "x12-code"));
    assert_eq!(
        msg,
        "'ZZ' is not a valid code (C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, …)"
    );
    let few = CodeTable::list(vec!["BY".into(), "ST".into()]);
    let (_, _, msg) = check_value(ElType::Id, 2, 2, Some(&few), "ZZ").unwrap();
    assert_eq!(msg, "'ZZ' is not a valid code (BY, ST)");
}
