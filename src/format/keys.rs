//! Every unknown key of a definition file at once, with its line and a suggestion.
//!
//! `#[serde(deny_unknown_fields)]` is what makes a typo an error instead of a silently
//! ignored setting, but serde stops at the first one: a file with three misspelt keys
//! needed three rounds of `tallyman check`. So before deserialising, [`check_keys`] walks
//! the parsed document against the key set of the target type, reports every key that
//! type does not know (`unknown key 'delimeter' in [csv]; did you mean 'delimiter'?`) and
//! removes it, so deserialisation and the kind's semantic checks still run and report
//! their own errors in the same pass.
//!
//! The key sets are not a second, drifting list: they are read from the types' derived
//! `Deserialize` impls by [`shape_of`], a deserializer that only watches which struct
//! fields, maps and sequences a type asks for. Parts whose keys serde cannot tell in
//! advance (a `toml::Value`, an untagged enum, a hand-written impl, `flatten`) are left
//! to serde itself, which still refuses their unknown keys (one at a time, as before).

use std::cell::RefCell;

use serde::de::{self, Deserialize, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The keys a place in a definition may hold, as far as they are known in advance.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Anything: a scalar, or keys only the type's own code knows. Not checked here.
    Any,
    /// A struct: exactly these keys, each with its own shape.
    Struct(&'static str, Vec<(&'static str, Shape)>),
    /// The struct of that name again (a recursive type such as nested loops).
    Again(&'static str),
    /// A table with free keys (a name → value map), every value of this shape.
    Map(Box<Shape>),
    /// An array, every element of this shape.
    Seq(Box<Shape>),
}

/// One unknown key found by [`check_keys`].
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownKey {
    /// Byte span of the key in the text.
    pub span: std::ops::Range<usize>,
    pub message: String,
}

/// Reports every key of `doc` that `T` does not know, and removes it from `doc`.
pub fn check_keys<'de, T: Deserialize<'de>>(doc: &mut DeTable<'_>) -> Vec<UnknownKey> {
    let shape = shape_of::<T>();
    let mut out = Vec::new();
    let mut stack = Vec::new();
    walk_table(&shape, doc, &Where::Top, &mut stack, &mut out);
    out.sort_by_key(|u| u.span.start);
    out
}

/// The key shape of `T`, read from its `Deserialize` impl.
pub fn shape_of<'de, T: Deserialize<'de>>() -> Shape {
    build::<T>(&mut Vec::new(), &mut Vec::new())
}

// ---------------------------------------------------------------------------------------
// Walking a document
// ---------------------------------------------------------------------------------------

/// Where a table sits, for messages: `[csv]`, `[[fields]]`, `[map.header]`.
enum Where {
    Top,
    Table(String),
    ArrayItem(String),
}

impl Where {
    fn child(&self, key: &str, array: bool) -> Where {
        let path = match self {
            Where::Top => key.to_string(),
            Where::Table(p) | Where::ArrayItem(p) => format!("{p}.{key}"),
        };
        if array {
            Where::ArrayItem(path)
        } else {
            Where::Table(path)
        }
    }
    fn describe(&self) -> String {
        match self {
            Where::Top => "at the top level".to_string(),
            Where::Table(p) => format!("in [{p}]"),
            Where::ArrayItem(p) => format!("in [[{p}]]"),
        }
    }
}

fn walk_table<'s>(
    shape: &'s Shape,
    table: &mut DeTable<'_>,
    at: &Where,
    stack: &mut Vec<&'s Shape>,
    out: &mut Vec<UnknownKey>,
) {
    let shape = resolve(shape, stack);
    match shape {
        Shape::Struct(_, keys) => {
            let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
            let mut unknown = Vec::new();
            for (k, _) in table.iter() {
                if !names.contains(&k.get_ref().as_ref()) {
                    unknown.push(k.get_ref().to_string());
                    out.push(UnknownKey {
                        span: k.span(),
                        message: unknown_message(k.get_ref(), &names, at),
                    });
                }
            }
            for k in &unknown {
                table.remove(k.as_str());
            }
            stack.push(shape);
            for (k, v) in table.iter_mut() {
                if let Some((_, child)) = keys.iter().find(|(n, _)| *n == k.get_ref().as_ref()) {
                    walk_value(child, v.get_mut(), at, k.get_ref(), stack, out);
                }
            }
            stack.pop();
        }
        Shape::Map(inner) => {
            for (k, v) in table.iter_mut() {
                walk_value(inner, v.get_mut(), at, k.get_ref(), stack, out);
            }
        }
        Shape::Any | Shape::Seq(_) | Shape::Again(_) => {}
    }
}

fn walk_value<'s>(
    shape: &'s Shape,
    value: &mut DeValue<'_>,
    parent: &Where,
    key: &str,
    stack: &mut Vec<&'s Shape>,
    out: &mut Vec<UnknownKey>,
) {
    let shape = resolve(shape, stack);
    match (shape, value) {
        (Shape::Struct(..) | Shape::Map(_), DeValue::Table(t)) => {
            walk_table(shape, t, &parent.child(key, false), stack, out)
        }
        (Shape::Seq(inner), DeValue::Array(items)) => {
            let at = parent.child(key, true);
            for item in items.iter_mut() {
                if let DeValue::Table(t) = item.get_mut() {
                    walk_table(inner, t, &at, stack, out);
                }
            }
        }
        // A wrong type is serde's to report, with its own message.
        _ => {}
    }
}

/// Follows `Again` to the enclosing struct of that name.
fn resolve<'s>(shape: &'s Shape, stack: &[&'s Shape]) -> &'s Shape {
    match shape {
        Shape::Again(name) => stack
            .iter()
            .rev()
            .find(|s| matches!(s, Shape::Struct(n, _) if n == name))
            .copied()
            .unwrap_or(&Shape::Any),
        other => other,
    }
}

fn unknown_message(key: &str, known: &[&str], at: &Where) -> String {
    let mut msg = format!("unknown key '{key}' {}", at.describe());
    match did_you_mean(key, known) {
        Some(s) => msg.push_str(&format!("; did you mean '{s}'?")),
        None => {
            let mut list = known.to_vec();
            list.sort_unstable();
            msg.push_str(&format!(" (known: {})", list.join(", ")));
        }
    }
    msg
}

/// The known key closest to `key` by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edit distance where swapping two neighbours counts once (`nmae` is one typo of `name`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

// ---------------------------------------------------------------------------------------
// Reading a type's shape from its Deserialize impl
// ---------------------------------------------------------------------------------------

/// One step from a node to a child while probing.
#[derive(Debug, Clone)]
enum Step {
    Field(&'static str),
    MapValue,
    Element,
}

/// What the probe saw at the end of its path.
#[derive(Debug, Clone)]
enum Node {
    Any,
    Struct(&'static str, &'static [&'static str]),
    Map,
    Seq,
}

/// Builds the shape at `path`, one probe per node. `names` are the structs on the way
/// down, so a recursive type ends in `Again` instead of recursing for ever.
fn build<'de, T: Deserialize<'de>>(path: &mut Vec<Step>, names: &mut Vec<&'static str>) -> Shape {
    if path.len() > 32 {
        return Shape::Any;
    }
    match probe::<T>(path) {
        Node::Any => Shape::Any,
        Node::Struct(name, _) if names.contains(&name) => Shape::Again(name),
        Node::Struct(name, fields) => {
            names.push(name);
            let keys = fields
                .iter()
                .map(|f| {
                    path.push(Step::Field(f));
                    let s = build::<T>(path, names);
                    path.pop();
                    (*f, s)
                })
                .collect();
            names.pop();
            Shape::Struct(name, keys)
        }
        Node::Map => {
            path.push(Step::MapValue);
            let s = build::<T>(path, names);
            path.pop();
            Shape::Map(Box::new(s))
        }
        Node::Seq => {
            path.push(Step::Element);
            let s = build::<T>(path, names);
            path.pop();
            Shape::Seq(Box::new(s))
        }
    }
}

fn probe<'de, T: Deserialize<'de>>(path: &[Step]) -> Node {
    let seen = RefCell::new(None);
    let _ = T::deserialize(Probe { path, seen: &seen });
    seen.into_inner().unwrap_or(Node::Any)
}

/// A deserializer that walks `path` into the type and records what the type asks for
/// there, then fails: the error only ends the probe.
struct Probe<'p> {
    path: &'p [Step],
    seen: &'p RefCell<Option<Node>>,
}

impl Probe<'_> {
    fn record(&self, node: Node) -> de::value::Error {
        *self.seen.borrow_mut() = Some(node);
        de::Error::custom("probe")
    }
    fn next(&self) -> Probe<'_> {
        Probe {
            path: &self.path[1..],
            seen: self.seen,
        }
    }
}

// toml's `Spanned<T>` deserialises as a struct of this name; the probe looks through it.
const SPANNED: &str = "$__serde_spanned_private_Spanned";
const SPANNED_FIELDS: [&str; 3] = [
    "$__serde_spanned_private_start",
    "$__serde_spanned_private_end",
    "$__serde_spanned_private_value",
];

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, _v: V) -> Result<V::Value, Self::Error> {
        Err(self.record(Node::Any))
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        v.visit_some(self)
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Self::Error> {
        if name == SPANNED {
            return v.visit_map(SpannedAccess {
                probe: Some(self),
                at: 0,
            });
        }
        match self.path.first() {
            None => Err(self.record(Node::Struct(name, fields))),
            Some(Step::Field(f)) => {
                let f = *f;
                v.visit_map(OneEntry {
                    key: Some(f),
                    value: Some(self.next()),
                })
            }
            Some(_) => Err(de::Error::custom("probe: not a map or sequence here")),
        }
    }

    fn deserialize_map<V: de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        match self.path.first() {
            None => Err(self.record(Node::Map)),
            Some(Step::MapValue) => v.visit_map(OneEntry {
                key: Some("key"),
                value: Some(self.next()),
            }),
            Some(_) => Err(de::Error::custom("probe: path mismatch")),
        }
    }

    fn deserialize_seq<V: de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        match self.path.first() {
            None => Err(self.record(Node::Seq)),
            Some(Step::Element) => v.visit_seq(OneElement(Some(self.next()))),
            Some(_) => Err(de::Error::custom("probe: path mismatch")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct enum identifier ignored_any
    }
}

/// A map with one entry: the key the probe's path goes through, and the probe as value.
struct OneEntry<'p> {
    key: Option<&'static str>,
    value: Option<Probe<'p>>,
}

impl<'de> MapAccess<'de> for OneEntry<'_> {
    type Error = de::value::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.key.take() {
            Some(k) => seed
                .deserialize(de::value::BorrowedStrDeserializer::new(k))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some(p) => seed.deserialize(p),
            None => Err(de::Error::custom("probe: no value")),
        }
    }
}

struct OneElement<'p>(Option<Probe<'p>>);

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = de::value::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        match self.0.take() {
            Some(p) => seed.deserialize(p).map(Some),
            None => Ok(None),
        }
    }
}

/// Feeds `Spanned<T>` a dummy span and the probe as its value.
struct SpannedAccess<'p> {
    probe: Option<Probe<'p>>,
    at: usize,
}

impl<'de> MapAccess<'de> for SpannedAccess<'_> {
    type Error = de::value::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match SPANNED_FIELDS.get(self.at) {
            Some(k) => seed
                .deserialize(de::value::BorrowedStrDeserializer::new(k))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.at += 1;
        if self.at < SPANNED_FIELDS.len() {
            return seed.deserialize(0usize.into_deserializer());
        }
        match self.probe.take() {
            Some(p) => seed.deserialize(p),
            None => Err(de::Error::custom("probe: no value")),
        }
    }
}

/// A problem found while parsing: the byte span it is about (when known) and the message.
pub type ParseError = (Option<std::ops::Range<usize>>, String);

/// Parses `text`, checks its keys against `T` and deserialises the rest: every unknown
/// key and the first serde error (a wrong type, a missing key), each as (span, message).
pub fn parse_lenient<T: serde::de::DeserializeOwned>(text: &str) -> (Option<T>, Vec<ParseError>) {
    let mut doc: Spanned<DeTable> = match DeTable::parse(text) {
        Ok(d) => d,
        Err(e) => return (None, vec![(e.span(), e.message().to_string())]),
    };
    let mut errors: Vec<ParseError> = check_keys::<T>(doc.get_mut())
        .into_iter()
        .map(|u| (Some(u.span), u.message))
        .collect();
    match T::deserialize(toml::de::Deserializer::from(doc)) {
        Ok(v) => (Some(v), errors),
        Err(e) => {
            errors.push((e.span(), e.message().to_string()));
            (None, errors)
        }
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
