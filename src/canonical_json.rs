//! A record body written straight as its contract's JSON, when it plainly fits the contract.
//!
//! The contract is the typed structs of [`crate::canonical`]: a body is deserialized into
//! one and the struct serialized. That path allocated a `String` per field only to drop it
//! after writing it, and went through serde's visitors twice: on a CSV run it was a sixth
//! of all the work. This writer walks the body once against a table of each contract's
//! fields (name, kind, in declaration order, which is serde's order) and writes the bytes
//! the typed path writes. It answers only what it can tell the typed path accepts: an
//! unknown, repeated or missing field, a value of the wrong kind, a decimal that does not
//! parse or a date that is not a day is `None`, and the typed path answers it, with its
//! message. So the structs stay the one definition; the tests hold the tables to them.

use std::io::{self, Write};

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use crate::canonical::{is_date_field, is_iso_date, Entity};
use crate::canonical_body::Body;

/// How a contract field is typed, and so how it is read and written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// `String`: required text.
    Text,
    /// `Option<String>`, skipped when absent.
    OptText,
    /// `Decimal`: required, written as serde writes it (a string).
    Dec,
    /// `Option<Decimal>`, skipped when absent.
    OptDec,
    /// `Option<bool>`, skipped when absent.
    OptBool,
    /// `Vec<String>` with `default`, skipped when empty.
    Texts,
    /// `Vec<struct>`: how an absent or empty list is read and written.
    List(&'static [Field], Absent),
}

/// What a list field does when the body has none, or an empty one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Absent {
    /// Required (no `default`); an empty list is written.
    Refused,
    /// `default` and `skip_serializing_if = "Vec::is_empty"`.
    Skipped,
    /// `default` alone: written as `[]`.
    Empty,
}

/// One field of a contract struct.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
}

const fn f(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

use Absent::*;
use Kind::*;

pub(crate) const PARTY: &[Field] = &[
    f("role", Text),
    f("id", OptText),
    f("name", OptText),
    f("address", OptText),
    f("city", OptText),
    f("region", OptText),
    f("postal_code", OptText),
    f("country", OptText),
];

pub(crate) const ORDER_LINE: &[Field] = &[
    f("line_no", Text),
    f("sku", OptText),
    f("buyer_sku", OptText),
    f("gtin", OptText),
    f("description", OptText),
    f("quantity", Dec),
    f("uom", OptText),
    f("unit_price", OptDec),
    f("requested_date", OptText),
];

pub(crate) const ORDER: &[Field] = &[
    f("order_no", Text),
    f("order_date", OptText),
    f("purpose", OptText),
    f("order_type", OptText),
    f("customer_id", OptText),
    f("currency", OptText),
    f("parties", List(PARTY, Skipped)),
    f("lines", List(ORDER_LINE, Refused)),
];

pub(crate) const ORDER_ACK_LINE: &[Field] = &[
    f("line_no", Text),
    f("sku", OptText),
    f("quantity", OptDec),
    f("uom", OptText),
    f("unit_price", OptDec),
    f("status", OptText),
    f("delivery_date", OptText),
];

pub(crate) const ORDER_ACK: &[Field] = &[
    f("order_no", Text),
    f("ack_no", OptText),
    f("ack_date", OptText),
    f("status", Text),
    f("currency", OptText),
    f("parties", List(PARTY, Skipped)),
    f("lines", List(ORDER_ACK_LINE, Empty)),
];

pub(crate) const INVOICE_LINE: &[Field] = &[
    f("line_no", Text),
    f("sku", OptText),
    f("description", OptText),
    f("quantity", Dec),
    f("uom", OptText),
    f("unit_price", Dec),
    f("amount", OptDec),
];

pub(crate) const INVOICE: &[Field] = &[
    f("invoice_no", Text),
    f("invoice_date", OptText),
    f("order_no", OptText),
    f("customer_id", OptText),
    f("currency", OptText),
    f("total", OptDec),
    f("parties", List(PARTY, Skipped)),
    f("lines", List(INVOICE_LINE, Refused)),
];

pub(crate) const SHIPMENT_LINE: &[Field] = &[
    f("line_no", Text),
    f("order_no", OptText),
    f("sku", OptText),
    f("description", OptText),
    f("quantity", Dec),
    f("uom", OptText),
    f("package_id", OptText),
];

pub(crate) const SHIPMENT: &[Field] = &[
    f("shipment_id", Text),
    f("ship_date", OptText),
    f("delivery_date", OptText),
    f("carrier", OptText),
    f("tracking_no", OptText),
    f("order_nos", Texts),
    f("parties", List(PARTY, Skipped)),
    f("lines", List(SHIPMENT_LINE, Refused)),
];

pub(crate) const CUSTOMER: &[Field] = &[
    f("customer_id", Text),
    f("name", Text),
    f("email", OptText),
    f("phone", OptText),
    f("address", OptText),
    f("city", OptText),
    f("region", OptText),
    f("postal_code", OptText),
    f("country", OptText),
    f("vat_id", OptText),
    f("active", OptBool),
];

pub(crate) const PRODUCT: &[Field] = &[
    f("sku", Text),
    f("description", OptText),
    f("gtin", OptText),
    f("uom", OptText),
    f("price", OptDec),
    f("currency", OptText),
    f("supplier_id", OptText),
    f("valid_from", OptText),
    f("min_order_qty", OptDec),
    f("weight_kg", OptDec),
    f("active", OptBool),
];

pub(crate) const SUPPLIER: &[Field] = &[
    f("supplier_id", Text),
    f("name", Text),
    f("address", OptText),
    f("city", OptText),
    f("region", OptText),
    f("postal_code", OptText),
    f("country", OptText),
    f("vat_id", OptText),
    f("email", OptText),
    f("phone", OptText),
    f("payment_terms", OptText),
    f("currency", OptText),
    f("iban", OptText),
    f("bic", OptText),
    f("bank_account", OptText),
    f("bank_code", OptText),
    f("bank_country", OptText),
    f("account_holder", OptText),
    f("active", OptBool),
];

/// The fields of `entity`'s contract struct.
pub(crate) fn fields_of(entity: Entity) -> &'static [Field] {
    match entity {
        Entity::Order => ORDER,
        Entity::OrderAck => ORDER_ACK,
        Entity::Invoice => INVOICE,
        Entity::Shipment => SHIPMENT,
        Entity::Customer => CUSTOMER,
        Entity::Product => PRODUCT,
        Entity::Supplier => SUPPLIER,
    }
}

/// `body` as the typed path writes `entity`'s struct made of it, or `None` where this
/// writer cannot tell that the typed path accepts it.
pub(crate) fn write(entity: Entity, body: &Body<'_>) -> Option<String> {
    let mut out = Vec::with_capacity(512);
    write_struct(fields_of(entity), Node::Body(body), &mut out)?;
    String::from_utf8(out).ok()
}

/// A body node, or a JSON value inside one (a definition's constant, a format's JSON).
#[derive(Clone, Copy)]
enum Node<'b> {
    Body(&'b Body<'b>),
    Json(&'b Value),
}

impl<'b> Node<'b> {
    fn text(self) -> Option<&'b str> {
        match self {
            Node::Body(Body::Str(s)) => Some(s),
            Node::Body(&Body::Json(v)) | Node::Json(v) => v.as_str(),
            Node::Body(_) => None,
        }
    }

    fn boolean(self) -> Option<bool> {
        match self {
            Node::Body(Body::Bool(b)) => Some(*b),
            Node::Body(&Body::Json(v)) | Node::Json(v) => v.as_bool(),
            Node::Body(_) => None,
        }
    }

    /// JSON `null`: an `Option` reads it as absent.
    fn is_null(self) -> bool {
        matches!(
            self,
            Node::Body(Body::Json(Value::Null)) | Node::Json(Value::Null)
        )
    }

    /// Calls `each` with every item of a list; `None` when the node is not a list or
    /// `each` answers `None`.
    fn items(self, mut each: impl FnMut(Node<'b>) -> Option<()>) -> Option<usize> {
        match self {
            Node::Body(Body::List(items)) => {
                items.iter().try_for_each(|i| each(Node::Body(i)))?;
                Some(items.len())
            }
            Node::Body(&Body::Json(Value::Array(items))) | Node::Json(Value::Array(items)) => {
                items.iter().try_for_each(|i| each(Node::Json(i)))?;
                Some(items.len())
            }
            _ => None,
        }
    }

    /// Puts every field of a map into `slots` at the index of its name in `fields`, at
    /// most once each; `None` when the node is not a map, or a name is unknown or
    /// repeated. (Filled in place: returning the array copied it, and iterating it by
    /// value copied it again, for every struct of every record.)
    fn fill_slots(self, fields: &[Field], slots: &mut Slots<'b>) -> Option<()> {
        let mut next = 0;
        let mut put = |name: &str, node: Node<'b>| {
            // Bodies mostly give fields in the contract's order: look from the last one on.
            // (Two ranges, not `% n` on each probe: a division per field of every record.)
            let i = (next.min(fields.len())..fields.len())
                .chain(0..next.min(fields.len()))
                .find(|&i| fields[i].name == name)?;
            next = i + 1;
            slots[i].is_none().then(|| slots[i] = Some(node))
        };
        match self {
            Node::Body(Body::Map(entries)) => {
                for (name, value) in entries {
                    put(name, Node::Body(value))?;
                }
            }
            Node::Body(&Body::Json(Value::Object(map))) | Node::Json(Value::Object(map)) => {
                for (name, value) in map {
                    put(name, Node::Json(value))?;
                }
            }
            _ => return None,
        }
        Some(())
    }
}

/// More fields than any contract struct has (the tests hold every table to it).
const MAX_FIELDS: usize = 24;

/// A struct's fields by their index in its table.
type Slots<'b> = [Option<Node<'b>>; MAX_FIELDS];

fn write_struct(fields: &[Field], node: Node<'_>, out: &mut Vec<u8>) -> Option<()> {
    let mut slots: Slots<'_> = [None; MAX_FIELDS];
    node.fill_slots(fields, &mut slots)?;
    out.push(b'{');
    let mut first = true;
    for (field, &slot) in fields.iter().zip(&slots) {
        let start = out.len();
        let name = |out: &mut Vec<u8>| {
            if !first {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(field.name.as_bytes());
            out.extend_from_slice(b"\":");
        };
        let Some(node) = slot else {
            // What an absent field is: skipped, `[]` for a list that defaults to empty,
            // or refused when required.
            match field.kind {
                Text | Dec | List(_, Refused) => return None,
                List(_, Empty) => {
                    name(out);
                    out.extend_from_slice(b"[]");
                    first = false;
                }
                _ => {}
            }
            continue;
        };
        name(out);
        if write_field(field, node, out)? {
            first = false;
        } else {
            out.truncate(start);
        }
    }
    out.push(b'}');
    Some(())
}

/// Writes the value of `field` (its name is written already): `Some(false)` when the
/// field is skipped, `None` when the typed path must answer.
fn write_field(field: &Field, node: Node<'_>, out: &mut Vec<u8>) -> Option<bool> {
    if node.is_null() {
        return matches!(field.kind, OptText | OptDec | OptBool).then_some(false);
    }
    if is_date_field(field.name) && node.text().is_some_and(|t| !is_iso_date(t)) {
        return None;
    }
    match field.kind {
        Text | OptText => write_text(node.text()?, out),
        Dec | OptDec => write_decimal(node.text()?, out)?,
        OptBool => out.extend_from_slice(if node.boolean()? { b"true" } else { b"false" }),
        Texts => {
            return write_list(node, out, |item, out| {
                write_text(item.text()?, out);
                Some(())
            })
        }
        List(fields, absent) => {
            let any = write_list(node, out, |item, out| write_struct(fields, item, out))?;
            return Some(any || absent != Skipped);
        }
    }
    Some(true)
}

/// A list: `Some(false)` when it is empty.
fn write_list<'b>(
    node: Node<'b>,
    out: &mut Vec<u8>,
    mut item: impl FnMut(Node<'b>, &mut Vec<u8>) -> Option<()>,
) -> Option<bool> {
    out.push(b'[');
    let mut first = true;
    let len = node.items(|i| {
        if !first {
            out.push(b',');
        }
        first = false;
        item(i, out)
    })?;
    out.push(b']');
    Some(len > 0)
}

/// Text as serde_json writes a string: plain text as it is, anything to escape by
/// serde_json itself. The outbox's lines write their strings with it too.
pub(crate) fn json_string(w: &mut impl Write, text: &str) -> io::Result<()> {
    let plain = text
        .bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        w.write_all(b"\"")?;
        w.write_all(text.as_bytes())?;
        w.write_all(b"\"")
    } else {
        serde_json::to_writer(w, text).map_err(io::Error::other)
    }
}

/// [`json_string`] into the record's bytes, which take every write.
fn write_text(text: &str, out: &mut Vec<u8>) {
    let _ = json_string(out, text);
}

/// A decimal read as `rust_decimal`'s serde reads one from text, written as it writes it.
/// Text already in the form it writes (nearly every decimal) is copied.
fn write_decimal(text: &str, out: &mut Vec<u8>) -> Option<()> {
    if is_plain_decimal(text.as_bytes()) {
        write_text(text, out);
        return Some(());
    }
    let d: Decimal = text
        .parse()
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())?;
    Serialize::serialize(&d, &mut serde_json::Serializer::new(out)).ok()
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?` with at most 28 digits, not a negative zero: what a
/// `Decimal` read from it writes back unchanged (its 96-bit mantissa holds 28 digits, so
/// nothing is rounded; only leading zeros, a sign on zero, `+`, `_`, exponents and
/// rounding change the text, and each of them is outside this form).
fn is_plain_decimal(b: &[u8]) -> bool {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let (int, frac) = match digits.iter().position(|&c| c == b'.') {
        Some(p) => (&digits[..p], Some(&digits[p + 1..])),
        None => (digits, None),
    };
    let all_digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let frac_ok = frac.is_none_or(all_digits);
    let count = int.len() + frac.map_or(0, <[u8]>::len);
    let leading_zero = int.len() > 1 && int[0] == b'0';
    let negative_zero = digits.len() < b.len() && digits.iter().all(|&c| c == b'0' || c == b'.');
    all_digits(int) && frac_ok && count <= 28 && !leading_zero && !negative_zero
}

#[cfg(test)]
#[path = "canonical_json_tests.rs"]
mod tests;
