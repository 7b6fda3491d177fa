//! Tests of the definition checker: whole definitions in, the checked definition or
//! every error (with its line) out.

use super::*;
use crate::tabular::checksum::Checksum;
use crate::tabular::def::MapValue;

fn load(text: &str) -> (Option<TabularDef>, Diagnostics) {
    let table: toml::Table = toml::from_str(text).unwrap();
    let def = DefFile {
        path: "t.toml".into(),
        text: text.into(),
        kind: table["kind"].as_str().unwrap().to_string(),
        table,
    };
    let mut d = Diagnostics::default();
    let r = check(&def, &mut d);
    (r, d)
}

const GOOD: &str = r#"
kind = "csv"
name = "t"
key = "{order_no}"
group_by = "order_no"
policy = "accept-valid"
max_reject_ratio = 0.5
[match]
filename = "orders*.csv"
[[fields]]
name = "order_no"
required = true
[[fields]]
name = "qty"
type = "decimal"
exclusive_min = 0
[[fields]]
name = "d"
type = "date"
format = "%d.%m.%Y"
[map]
entity = "order"
[map.header]
order_no = "{order_no}"
order_date = "d"
[map.lines]
line_no = "1"
quantity = "{qty}"
"#;

#[test]
fn good_definition_loads() {
    let (def, d) = load(GOOD);
    assert!(d.is_empty(), "{:?}", d.errors);
    let def = def.unwrap();
    assert_eq!(def.group_by, Some(0));
    assert!(matches!(def.map.header[0].1, MapValue::Const(_)));
    assert!(matches!(def.map.header[1].1, MapValue::Field(0)));
}

#[test]
fn the_corrections_error_column_cannot_be_bound() {
    let text = GOOD.replace(
        "name = \"qty\"\n",
        "name = \"qty\"\ncolumn = \"Tallyman_Error\"\n",
    );
    let (def, d) = load(&text);
    assert!(def.is_none());
    assert!(
        d.errors[0].to_string().contains("reserved"),
        "{:?}",
        d.errors
    );
}

#[test]
fn every_error_is_reported_with_its_line() {
    let text = r#"kind = "csv"
name = "bad"
key = "{nope}"
group_by = "missing"
[match]
filename = "x*.csv"
[[fields]]
name = "a"
type = "decimal"
regex = "("
[[fields]]
name = "b"
type = "date"
format = "%H:%M"
[[fields]]
name = "c"
type = "colour"
[map]
entity = "planet"
[map.header]
x = "{zzz}"
"#;
    let (def, d) = load(text);
    assert!(def.is_none());
    let msgs: Vec<String> = d.errors.iter().map(|e| e.to_string()).collect();
    let all = msgs.join("\n");
    for needle in [
        "t.toml:3: key: template \"{nope}\" refers to unknown field 'nope'",
        "t.toml:4: group_by refers to unknown field 'missing'",
        "t.toml:7: field 'a': bad regex '(': error: unclosed group",
        "t.toml:11: field 'b': date pattern '%H:%M' cannot identify a day",
        "t.toml:15: field 'c': unknown type 'colour'",
        "t.toml:19: unknown entity 'planet'",
        "t.toml:21: [map.header] x: template \"{zzz}\" refers to unknown field 'zzz'",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in\n{all}");
    }
    assert!(d.errors.iter().all(|e| e.line.is_some()), "{all}");
}

#[test]
fn contract_fields_are_checked() {
    let text = GOOD.replace("order_date = \"d\"", "order_colour = \"d\"");
    let (def, d) = load(&text);
    assert!(def.is_none());
    assert!(
        d.errors[0]
            .message
            .contains("'order_colour' is not a field of the canonical contract"),
        "{:?}",
        d.errors
    );
    let text = GOOD.replace("quantity = \"{qty}\"", "");
    let (_, d) = load(&text);
    assert!(d.errors[0].message.contains("must produce 'quantity'"));
}

const SUPPLIERS: &str = r#"
kind = "csv"
name = "s"
key = "{id}"
[match]
filename = "s*.csv"
[[fields]]
name = "id"
required = true
[[fields]]
name = "iban"
checksum = "iban"
sensitive = true
[[fields]]
name = "holder"
sensitive = true
[map]
entity = "supplier"
[map.header]
supplier_id = "{id}"
name = "{id}"
iban = "{iban}"
account_holder = "Holder: {holder}"
"#;

#[test]
fn sensitive_contract_fields_must_come_from_sensitive_fields() {
    let (def, d) = load(SUPPLIERS);
    assert!(d.is_empty(), "{:?}", d.errors);
    let def = def.unwrap();
    assert_eq!(def.fields[1].checksum, Some(Checksum::Iban));
    // Each way of reading a field counts: a plain reference and a template.
    let leaky = SUPPLIERS
        .replace("checksum = \"iban\"\nsensitive = true", "")
        .replace("name = \"holder\"\nsensitive = true", "name = \"holder\"");
    let (def, d) = load(&leaky);
    assert!(def.is_none());
    let msgs: Vec<(Option<usize>, &str)> = d
        .errors
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs[0]
        .1
        .contains("declare field 'holder' with sensitive = true"));
    let holder_line = leaky
        .lines()
        .position(|l| l.starts_with("account_holder"))
        .map(|i| i + 1);
    assert_eq!(msgs[0].0, holder_line, "{msgs:?}");
    assert!(msgs[1].1.contains("'iban' as sensitive"), "{msgs:?}");
    // A constant reads nothing and is fine.
    let constant = leaky.replace("\"Holder: {holder}\"", "\"n/a\"");
    let (_, d) = load(&constant.replace("iban = \"{iban}\"", ""));
    assert!(d.is_empty(), "{:?}", d.errors);
}

#[test]
fn unknown_checksum_is_refused_with_the_known_ones() {
    let (def, d) = load(&SUPPLIERS.replace("checksum = \"iban\"", "checksum = \"luhn\""));
    assert!(def.is_none());
    assert!(
        d.errors[0]
            .message
            .contains("unknown checksum 'luhn' (known: iban)"),
        "{:?}",
        d.errors
    );
}

#[test]
fn unknown_keys_are_refused() {
    let (def, d) = load(&GOOD.replace("required = true", "requird = true"));
    assert!(def.is_none());
    assert!(d.errors[0].message.contains("requird"), "{:?}", d.errors);
    assert!(d.errors[0].line.is_some());
}

#[test]
fn regression_unknown_keys_were_reported_one_per_check() {
    // Three misspelt keys and a wrong type: one `tallyman check` pass shows all four.
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD
        .replace("group_by =", "descripton = \"x\"\ngroup_by =")
        .replace(
            "[match]",
            "[csv]\ndelimeter = \";\"\nskip_rows = \"two\"\n[match]",
        )
        .replace("required = true", "requird = true");
    std::fs::write(dir.path().join("t.toml"), &text).unwrap();
    let mut d = Diagnostics::default();
    let set = crate::format::registry::load_formats(dir.path(), &mut d);
    assert!(set.formats.is_empty());
    let got: Vec<(Option<usize>, &str)> = d
        .errors
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(
        got[0],
        (
            Some(5),
            "unknown key 'descripton' at the top level; did you mean 'description'?"
        )
    );
    assert_eq!(
        got[1],
        (
            Some(10),
            "unknown key 'delimeter' in [csv]; did you mean 'delimiter'?"
        )
    );
    assert_eq!(
        got[2],
        (
            Some(16),
            "unknown key 'requird' in [[fields]]; did you mean 'required'?"
        )
    );
    assert_eq!(got[3].0, Some(11));
    assert!(got[3].1.contains("invalid type: string \"two\""), "{got:?}");
}

#[test]
fn unknown_keys_do_not_hide_semantic_errors() {
    let (def, d) = load(
        &GOOD
            .replace("required = true", "requird = true")
            .replace("type = \"date\"", "type = \"colour\""),
    );
    assert!(def.is_none());
    let msgs: Vec<&str> = d.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert!(msgs[0].contains("'requird'"));
    assert!(msgs[1].contains("unknown type 'colour'"));
    assert!(msgs[2].contains("`format` applies only to date"));
}

#[test]
fn datetime_fields_need_a_timezone_unless_the_pattern_has_an_offset() {
    let with = |extra: &str| {
        GOOD.replace(
            "type = \"date\"\nformat = \"%d.%m.%Y\"",
            &format!("type = \"datetime\"\n{extra}"),
        )
        .replace("order_date = \"d\"", "order_date = \"{d}\"")
    };
    let (def, d) = load(&with("format = \"%d.%m.%Y %H:%M\""));
    assert!(def.is_none());
    assert!(
        d.errors[0].message.contains("timezone = \"UTC\""),
        "{:?}",
        d.errors
    );
    let (def, d) = load(&with("format = \"%d.%m.%Y %H:%M %z\""));
    assert!(d.is_empty(), "{:?}", d.errors);
    // The date field mapped to order_date takes the day of the instant.
    assert!(matches!(def.unwrap().map.header[0].1, MapValue::DateOf(2)));
    let (_, d) = load(&with("timezone = \"Europe/Paris\"\nmin = \"2020-01-01\""));
    let all: Vec<&str> = d.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].contains("named zones"));
    assert!(all[1].contains("min must be an ISO date-time"));
    let (_, d) = load(&with("timezone = \"UTC\"\nmin = 2020-01-01T00:00:00Z"));
    assert!(d.is_empty(), "{:?}", d.errors);
    let (_, d) = load(&GOOD.replace("required = true", "required = true\ntimezone = \"UTC\""));
    assert!(d.errors[0]
        .message
        .contains("`timezone` applies only to datetime"));
}

#[test]
fn templates_parse_literals_and_escapes() {
    let find = |n: &str| (n == "a").then_some(0);
    let t = parse_template("x-{a}-{{y}}", &find).unwrap();
    assert_eq!(
        t.0,
        vec![
            Piece::Text("x-".into()),
            Piece::Field(0),
            Piece::Text("-{y}".into())
        ]
    );
    assert!(parse_template("{a", &find).is_err());
    assert!(parse_template("a}", &find).is_err());
}
