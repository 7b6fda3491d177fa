//! The canonical business records every format maps into: order, order acknowledgement,
//! invoice, shipment, customer, product and supplier.
//!
//! These are the data contracts sinks rely on, so they are typed structs, not free-form
//! JSON: a declarative map builds a body ([`Body`], borrowed from what it read), and
//! [`Record::build_body`] checks it against the contract (unknown fields, missing required
//! ones, bad decimals or dates are rejected with a reason). Money and quantities are exact
//! decimals serialised as strings; dates are ISO 8601 `YYYY-MM-DD`. The pipeline adds the
//! `source` (file fingerprint and position) when writing.
//!
//! The contract also says what the formats must treat with care: [`Entity::sensitive_fields`]
//! (bank details, which definitions must mask in the ledger and reports) and
//! [`Entity::identity`] (whether a key arriving again is a duplicate or a newer version).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use crate::canonical_body::Body;
use crate::unit::Reason;

/// The kinds of canonical record. The string form names the outbox folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Order,
    OrderAck,
    Invoice,
    Shipment,
    Customer,
    Product,
    Supplier,
}

/// What a business key arriving again means for an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Identity {
    /// A business document: applied once; the same key again is a duplicate, not a change
    /// (an order is changed by a change order, which has its own document).
    CreateOnce,
    /// Master data: the same key again is a newer version of the record and replaces it
    /// (a supplier's new bank account is sent as the whole supplier again).
    Upsert,
}

impl Identity {
    pub fn as_str(self) -> &'static str {
        match self {
            Identity::CreateOnce => "create-once",
            Identity::Upsert => "upsert",
        }
    }
}

impl Entity {
    pub const ALL: [Entity; 7] = [
        Entity::Order,
        Entity::OrderAck,
        Entity::Invoice,
        Entity::Shipment,
        Entity::Customer,
        Entity::Product,
        Entity::Supplier,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Order => "order",
            Entity::OrderAck => "order_ack",
            Entity::Invoice => "invoice",
            Entity::Shipment => "shipment",
            Entity::Customer => "customer",
            Entity::Product => "product",
            Entity::Supplier => "supplier",
        }
    }

    pub fn parse(s: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The default meaning of a key sent again: documents are created once, master data
    /// is upserted.
    pub fn identity(self) -> Identity {
        match self {
            Entity::Order | Entity::OrderAck | Entity::Invoice | Entity::Shipment => {
                Identity::CreateOnce
            }
            Entity::Customer | Entity::Product | Entity::Supplier => Identity::Upsert,
        }
    }

    /// Canonical fields whose values must never reach the ledger, reports or logs in clear:
    /// a definition that maps one of them must read it from a field it declares sensitive
    /// (checked when the definition loads), so a new partner layout cannot leak them by
    /// forgetting `sensitive = true`. The outbox carries the real value.
    pub fn sensitive_fields(self) -> &'static [&'static str] {
        match self {
            Entity::Supplier => Supplier::SENSITIVE,
            Entity::Customer => Customer::SENSITIVE,
            _ => &[],
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A business party (buyer, seller, ship-to, bill-to...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// `buyer`, `seller`, `ship_to`, `bill_to`, `ship_from`, `remit_to`, `supplier`...
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub line_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub quantity: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uom: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_date: Option<String>,
}

/// A purchase order (CSV order lines, X12 850, IDoc ORDERS05).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub order_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_date: Option<String>,
    /// `original`, `change`, `cancel`... (X12 BEG01 / IDoc BSART translated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parties: Vec<Party>,
    pub lines: Vec<OrderLine>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderAckLine {
    pub line_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uom: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Decimal>,
    /// `accepted`, `rejected`, `changed`, `backordered`... (X12 ACK01 translated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_date: Option<String>,
}

/// A seller's answer to an order (X12 855, IDoc ORDERS05 as ORDRSP).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderAck {
    pub order_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_date: Option<String>,
    /// `accepted`, `accepted_with_changes`, `rejected`... (X12 BAK02 translated).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parties: Vec<Party>,
    #[serde(default)]
    pub lines: Vec<OrderAckLine>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLine {
    pub line_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub quantity: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uom: Option<String>,
    pub unit_price: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Decimal>,
}

/// An invoice (X12 810, IDoc INVOIC01/02).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    pub invoice_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parties: Vec<Party>,
    pub lines: Vec<InvoiceLine>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipmentLine {
    pub line_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub quantity: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uom: Option<String>,
    /// Package (SSCC / carton id) the item travels in, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_id: Option<String>,
}

/// A ship notice / delivery (X12 856, IDoc DELVRY/DESADV).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shipment {
    pub shipment_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_no: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_nos: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parties: Vec<Party>,
    pub lines: Vec<ShipmentLine>,
}

/// A customer master record (CSV customers, IDoc DEBMAS).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub customer_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// A product / material / price-list entry (CSV products, spreadsheet price lists,
/// IDoc MATMAS).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uom: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_order_qty: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_kg: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// A supplier (vendor) master record (CSV suppliers, IDoc CREMAS).
///
/// Bank details are flat fields of the one account payments go to, like every other master
/// record here: neither definition language builds a nested object, a table sink stores
/// them as columns, and a partner's CSV has one account per row. `iban` is the electronic
/// form (no spaces); `bank_account` and `bank_code` carry domestic details where there is
/// no IBAN (a US account number and ABA routing number).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supplier {
    pub supplier_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The sender's payment terms code (`NT30`, SAP's `ZTERM` such as `0001`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_terms: Option<String>,
    /// Order currency (ISO 4217).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_holder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

impl Supplier {
    /// The account identifiers and the holder's name (often a person's, for a sole
    /// trader), and how to reach a person. The BIC, bank code and bank country name a
    /// bank, not an account, and stay readable so a reviewer can tell which bank a
    /// rejected line meant.
    pub const SENSITIVE: &'static [&'static str] =
        &["iban", "bank_account", "account_holder", "email", "phone"];
}

impl Customer {
    /// How to reach a person: many customers are people, and their e-mail address and
    /// phone number are personal data wherever they appear.
    pub const SENSITIVE: &'static [&'static str] = &["email", "phone"];
}

/// A canonical record ready for the sinks: entity, business key and the contract-checked
/// body, already serialized — on the worker that mapped it, so the sequential commit stage
/// only moves bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub entity: Entity,
    /// The business key: unique per entity across all files (idempotency key). Formats build
    /// it from the document number, prefixed by the partner where numbers are only unique per
    /// partner (X12 `sender/PO number`).
    pub key: String,
    /// The body as JSON of the typed struct (fields in contract order): what the outbox
    /// and the targets are sent.
    pub json: String,
    /// The content hash of `json` (see [`content_hash`]).
    pub hash: String,
}

/// The content hash of a record's serialized body: XXH3-128, in 32 hex digits. It tells a
/// key's changed content from unchanged. It is not a cryptographic hash: a body made to
/// collide could only make its own change look unchanged (not applied), which whoever can
/// send that key's records can do anyway. blake3 took about a twentieth of a worker's time
/// on record-sized bodies, XXH3 under a hundredth.
pub fn content_hash(json: &str) -> String {
    hex32(twox_hash::XxHash3_128::oneshot(json.as_bytes()))
}

/// `format!("{:032x}", h)` by table: the formatter's general path was half of making a
/// record's hash, and every record gets one.
fn hex32(h: u128) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for b in h.to_be_bytes() {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// The content hash versions were stored with before [`content_hash`] (blake3's first 128
/// bits in hex): the same content must still be found the same in a ledger they wrote.
pub fn legacy_content_hash(json: &str) -> String {
    blake3::hash(json.as_bytes()).to_hex()[..32].to_string()
}

pub(crate) fn is_date_field(name: &str) -> bool {
    name.ends_with("_date") || name == "valid_from"
}

/// A `%Y-%m-%d` date naming a real day.
pub(crate) fn is_iso_date(s: &str) -> bool {
    parse_iso_date(s).is_some()
}

/// Reads `%Y-%m-%d` as chrono does. Text of exactly the shape `DDDD-DD-DD` (nearly every
/// date) is read by hand: chrono reads those ten bytes the same way, and parsing its
/// pattern for every date was a measurable share of a CSV run.
pub fn parse_iso_date(s: &str) -> Option<chrono::NaiveDate> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    }
    let num =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0'));
    let year = i32::try_from(num(0..4)).ok()?;
    chrono::NaiveDate::from_ymd_opt(year, num(5..7), num(8..10))
}

/// A date as `%Y-%m-%d` writes it, without interpreting the pattern for years that need
/// no sign (chrono's own output for them).
pub fn format_iso_date(d: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    if (0..=9999).contains(&d.year()) {
        format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    } else {
        d.format("%Y-%m-%d").to_string()
    }
}

/// Every field whose name says it is a date holds a valid ISO date, or the reason naming
/// the first that does not.
fn check_dates(body: &Body<'_>) -> Result<(), Reason> {
    match body.find_bad_text(&is_date_field, &|t| !is_iso_date(t)) {
        None => Ok(()),
        Some((path, text)) => Err(Reason::new(
            "contract",
            format!("{path} must be an ISO date YYYY-MM-DD"),
        )
        .field(path)
        .value(text)),
    }
}

/// The contract's `T` made of `body` and serialized (fields in contract order).
fn typed_json<'a, T: Deserialize<'a> + Serialize>(body: Body<'a>) -> Result<String, Reason> {
    let typed = T::deserialize(body).map_err(invalid)?;
    serde_json::to_string(&typed).map_err(|e| Reason::new("contract", e.to_string()))
}

fn business_key(key: String) -> Result<String, Reason> {
    if key.trim().is_empty() {
        return Err(Reason::new("business-key", "business key is empty"));
    }
    Ok(key)
}

fn invalid(e: serde_json::Error) -> Reason {
    Reason::new("contract", format!("canonical record invalid: {e}"))
}

impl Record {
    /// Checks `body` against the entity's contract and returns the normalised record.
    pub fn build(
        entity: Entity,
        key: impl Into<String>,
        body: serde_json::Value,
    ) -> Result<Record, Reason> {
        Record::build_body(entity, key, Body::Json(&body))
    }

    /// [`Record::build`] of a body borrowed from where a mapping found its values, as the
    /// formats build it: no JSON copy of it first. A body that plainly fits the contract is
    /// written by `canonical_json`; the typed structs answer the rest.
    pub fn build_body(
        entity: Entity,
        key: impl Into<String>,
        body: Body<'_>,
    ) -> Result<Record, Reason> {
        let key = business_key(key.into())?;
        match crate::canonical_json::write(entity, &body) {
            Some(json) => Ok(Record::finish(entity, key, json)),
            None => Record::build_typed(entity, key, body),
        }
    }

    /// `body` made into the contract's struct and serialized from it: the definition of
    /// what a body means, errors and their messages included.
    pub(crate) fn build_typed(
        entity: Entity,
        key: String,
        body: Body<'_>,
    ) -> Result<Record, Reason> {
        check_dates(&body)?;
        let json = match entity {
            Entity::Order => typed_json::<Order>(body)?,
            Entity::OrderAck => typed_json::<OrderAck>(body)?,
            Entity::Invoice => typed_json::<Invoice>(body)?,
            Entity::Shipment => typed_json::<Shipment>(body)?,
            Entity::Customer => typed_json::<Customer>(body)?,
            Entity::Product => typed_json::<Product>(body)?,
            Entity::Supplier => typed_json::<Supplier>(body)?,
        };
        Ok(Record::finish(entity, key, json))
    }

    fn finish(entity: Entity, key: String, json: String) -> Record {
        let hash = content_hash(&json);
        Record {
            entity,
            key,
            json,
            hash,
        }
    }

    /// The body as a JSON value (for tests and the rare paths that look inside).
    pub fn body(&self) -> serde_json::Value {
        serde_json::from_str(&self.json).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
#[path = "canonical_tests.rs"]
mod tests;
