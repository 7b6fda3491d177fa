//! The tests of `keys` (shapes, every unknown key with the rest parsed, suggestions),
//! apart so the module reads as the code alone.

use super::*;
use std::collections::BTreeMap;

#[allow(dead_code)]
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Def {
    name: Spanned<String>,
    #[serde(rename = "match", default)]
    matching: Option<Inner>,
    #[serde(default)]
    fields: Vec<Spanned<Inner>>,
    #[serde(default)]
    map: BTreeMap<String, toml::Value>,
    #[serde(default)]
    loops: Vec<Loop>,
}

#[allow(dead_code)]
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Inner {
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    required: bool,
}

#[allow(dead_code)]
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Loop {
    id: String,
    #[serde(default)]
    loops: Vec<Loop>,
}

#[test]
fn shapes_see_through_options_spans_vectors_and_recursion() {
    let Shape::Struct("Def", keys) = shape_of::<Def>() else {
        panic!("{:?}", shape_of::<Def>())
    };
    let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
    assert_eq!(names, ["name", "match", "fields", "map", "loops"]);
    assert_eq!(keys[0].1, Shape::Any);
    assert!(matches!(&keys[1].1, Shape::Struct("Inner", k) if k.len() == 2));
    assert!(matches!(&keys[2].1, Shape::Seq(s) if matches!(**s, Shape::Struct("Inner", _))));
    assert_eq!(keys[3].1, Shape::Map(Box::new(Shape::Any)));
    let Shape::Seq(l) = &keys[4].1 else { panic!() };
    let Shape::Struct("Loop", lk) = &**l else {
        panic!()
    };
    assert_eq!(lk[1].1, Shape::Seq(Box::new(Shape::Again("Loop"))));
}

#[test]
fn every_unknown_key_is_reported_and_the_rest_still_parses() {
    let text = "name = \"x\"\nnmae = 1\n[match]\nfilenme = \"a*\"\n[[fields]]\nrequird = true\n[[fields]]\nrequired = true\n[map]\nanything = 1\n[[loops]]\nid = \"a\"\n[[loops.loops]]\nid = \"b\"\nidd = 2\n";
    let (def, errors) = parse_lenient::<Def>(text);
    let msgs: Vec<(usize, &str)> = errors
        .iter()
        .map(|(s, m)| {
            (
                crate::format::defs::line_at(text, s.clone().unwrap().start),
                m.as_str(),
            )
        })
        .collect();
    assert_eq!(
        msgs,
        vec![
            (
                2,
                "unknown key 'nmae' at the top level; did you mean 'name'?"
            ),
            (
                4,
                "unknown key 'filenme' in [match]; did you mean 'filename'?"
            ),
            (
                6,
                "unknown key 'requird' in [[fields]]; did you mean 'required'?"
            ),
            (
                15,
                "unknown key 'idd' in [[loops.loops]]; did you mean 'id'?"
            ),
        ]
    );
    let def = def.unwrap();
    assert!(def.fields[1].get_ref().required);
    assert_eq!(def.loops[0].loops[0].id, "b");
}

#[test]
fn a_type_error_is_reported_after_the_unknown_keys() {
    let (def, errors) = parse_lenient::<Def>("name = 3\nzzz = 1\n");
    assert!(def.is_none());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].1.contains("'zzz'")
            && errors[0]
                .1
                .contains("(known: fields, loops, map, match, name)")
    );
    assert!(errors[1].1.contains("invalid type"), "{errors:?}");
}

#[test]
fn suggestions_only_for_near_misses() {
    assert_eq!(
        did_you_mean("delimeter", &["delimiter", "quote"]),
        Some("delimiter")
    );
    assert_eq!(did_you_mean("Encoding", &["encoding"]), Some("encoding"));
    assert_eq!(did_you_mean("colour", &["delimiter", "quote"]), None);
}
