//! STATUS acknowledgements: the SYSTAT01 IDoc SAP expects back for the IDocs it sent.
//!
//! SAP's ALE status processing reads a SYSTAT01 IDoc (message type STATUS) whose E1STATS
//! segments each point at one original DOCNUM with a status code: 53 (application document
//! posted) or 51 (application document not posted), a text and up to four parameters. We
//! send one SYSTAT01 per original sender in the file, with sender and receiver swapped and
//! our own DOCNUM from the ledger's control numbers, built only from what the ledger
//! recorded (`UnitOutcomes`), so the reader holds nothing per IDoc while streaming.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use std::sync::Arc;

use super::def::Catalog;
use super::eval::valid_docnum;
use crate::format::{AckBody, AckContext, FileError, Outbound, UnitOutcomes, UnitStatus};

/// Most E1STATS written for one rejected IDoc (its first reasons).
const MAX_REASONS: usize = 10;

pub struct AckState {
    units: u64,
    catalog: Arc<Catalog>,
}

struct Entry {
    docnum: String,
    mandt: String,
    status: String,
    statyp: &'static str,
    text: String,
    params: [String; 4],
    field: String,
}

struct Route {
    /// Control record fields of the first IDoc from this sender.
    dc: serde_json::Map<String, Value>,
    entries: Vec<Entry>,
}

fn s(dc: &serde_json::Map<String, Value>, k: &str) -> String {
    dc.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Truncates to `max` characters (SAP field lengths are in characters).
fn cut(v: &str, max: usize) -> String {
    v.chars().take(max).collect()
}

fn esc(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn field(out: &mut String, indent: &str, name: &str, v: &str) {
    if !v.is_empty() {
        let _ = writeln!(out, "{indent}<{name}>{}</{name}>", esc(v));
    }
}

/// Keeps file names portable whatever the partner id contains.
fn safe(v: &str) -> String {
    let s: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if s.is_empty() {
        "UNKNOWN".into()
    } else {
        s
    }
}

impl AckState {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        AckState { units: 0, catalog }
    }

    /// The type's STATUS codes (applied, rejected); SAP's inbound 53/51 for unknown types.
    fn codes(&self, idoctyp: &str) -> (String, String) {
        self.catalog
            .get(idoctyp)
            .map(|t| (t.status_applied.clone(), t.status_rejected.clone()))
            .unwrap_or_else(|| ("53".into(), "51".into()))
    }

    pub fn seen(&mut self, seq: u64) {
        self.units = self.units.max(seq + 1);
    }

    pub fn build(
        &mut self,
        outcomes: &dyn UnitOutcomes,
        acks: &mut dyn AckContext,
        error: Option<&FileError>,
    ) -> Result<Vec<Outbound>, FileError> {
        let mut routes: BTreeMap<String, Route> = BTreeMap::new();
        for seq in 0..self.units {
            let Some(sum) = outcomes.get(seq) else {
                continue;
            };
            let Value::Object(dc) = &sum.detail else {
                continue;
            };
            let docnum = s(dc, "DOCNUM");
            if !valid_docnum(&docnum) {
                // Empty or not a number: nothing the sender's SAP could match a status to
                // (E1STATS-DOCNUM is NUMC 16). The IDoc's own reject row and its ledger
                // detail (`status_ack`) say why no status was sent.
                continue;
            }
            // NUMC 16: SAP pads with zeros, so the status names the IDoc as SAP stores it.
            let docnum = format!("{docnum:0>16}");
            let (ok_code, bad_code) = self.codes(&s(dc, "IDOCTYP"));
            let entries = match (error, sum.status) {
                (Some(e), _) => vec![Entry {
                    docnum: docnum.clone(),
                    mandt: s(dc, "MANDT"),
                    status: bad_code.clone(),
                    statyp: "E",
                    text: cut(&format!("File rejected: {}", e.reason.message), 70),
                    params: [
                        cut(&e.reason.rule, 50),
                        String::new(),
                        String::new(),
                        e.pos
                            .as_ref()
                            .map(|p| cut(&p.to_string(), 50))
                            .unwrap_or_default(),
                    ],
                    field: String::new(),
                }],
                (
                    None,
                    UnitStatus::Applied
                    | UnitStatus::Duplicate
                    | UnitStatus::Unmapped
                    | UnitStatus::Unchanged,
                ) => {
                    vec![Entry {
                        docnum: docnum.clone(),
                        mandt: s(dc, "MANDT"),
                        status: ok_code.clone(),
                        statyp: "S",
                        text: if sum.status == UnitStatus::Duplicate {
                            "Already posted earlier: duplicate not applied again".into()
                        } else {
                            "Application document posted".into()
                        },
                        params: Default::default(),
                        field: String::new(),
                    }]
                }
                (None, UnitStatus::Rejected) => {
                    let mut v: Vec<Entry> = sum
                        .reasons
                        .iter()
                        .take(MAX_REASONS)
                        .map(|(pos, r)| Entry {
                            docnum: docnum.clone(),
                            mandt: s(dc, "MANDT"),
                            status: bad_code.clone(),
                            statyp: "E",
                            text: cut(&r.message, 70),
                            params: [
                                cut(&r.rule, 50),
                                cut(r.field.as_deref().unwrap_or(""), 50),
                                cut(r.value.as_deref().unwrap_or(""), 50),
                                cut(pos.locator.as_deref().unwrap_or(""), 50),
                            ],
                            field: cut(r.field.as_deref().unwrap_or(""), 30),
                        })
                        .collect();
                    if v.is_empty() {
                        v.push(Entry {
                            docnum: docnum.clone(),
                            mandt: s(dc, "MANDT"),
                            status: bad_code.clone(),
                            statyp: "E",
                            text: "Application document not posted".into(),
                            params: Default::default(),
                            field: String::new(),
                        });
                    }
                    v
                }
                (None, UnitStatus::Skipped) => continue,
            };
            let partner = s(dc, "SNDPRN");
            routes
                .entry(partner)
                .or_insert_with(|| Route {
                    dc: dc.clone(),
                    entries: Vec::new(),
                })
                .entries
                .extend(entries);
        }
        let now = chrono::Utc::now();
        let date = now.format("%Y%m%d").to_string();
        let time = now.format("%H%M%S").to_string();
        let mut out = Vec::new();
        for (partner, route) in routes {
            let partner_id = if partner.is_empty() {
                "UNKNOWN".to_string()
            } else {
                partner.clone()
            };
            let control = acks.next_control_number(&partner_id, "STATUS")?;
            let content = render(&route, control, &date, &time);
            out.push(Outbound {
                file_name: format!("STATUS_{}_{control:016}.xml", safe(&partner_id)),
                kind: "STATUS".into(),
                partner: partner_id,
                control_no: Some(control),
                content: AckBody::from_text(content.as_bytes()),
            });
        }
        Ok(out)
    }
}

fn render(route: &Route, control: u64, date: &str, time: &str) -> String {
    let dc = &route.dc;
    let mut x = String::with_capacity(512 + route.entries.len() * 300);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SYSTAT01>\n<IDOC BEGIN=\"1\">\n");
    x.push_str("<EDI_DC40 SEGMENT=\"1\">\n");
    let i = "  ";
    field(&mut x, i, "TABNAM", "EDI_DC40");
    field(&mut x, i, "MANDT", &s(dc, "MANDT"));
    field(&mut x, i, "DOCNUM", &format!("{control:016}"));
    field(&mut x, i, "DIRECT", "2");
    field(&mut x, i, "IDOCTYP", "SYSTAT01");
    field(&mut x, i, "MESTYP", "STATUS");
    // The answer travels the other way: their receiver is our sender and vice versa.
    field(&mut x, i, "SNDPOR", &s(dc, "RCVPOR"));
    field(&mut x, i, "SNDPRT", &s(dc, "RCVPRT"));
    field(&mut x, i, "SNDPRN", &s(dc, "RCVPRN"));
    field(&mut x, i, "RCVPOR", &s(dc, "SNDPOR"));
    field(&mut x, i, "RCVPRT", &s(dc, "SNDPRT"));
    field(&mut x, i, "RCVPRN", &s(dc, "SNDPRN"));
    field(&mut x, i, "CREDAT", date);
    field(&mut x, i, "CRETIM", time);
    x.push_str("</EDI_DC40>\n");
    for e in &route.entries {
        x.push_str("<E1STATS SEGMENT=\"1\">\n");
        field(&mut x, i, "TABNAM", "EDI_DS");
        field(&mut x, i, "MANDT", &e.mandt);
        field(&mut x, i, "DOCNUM", &e.docnum);
        field(&mut x, i, "LOGDAT", date);
        field(&mut x, i, "LOGTIM", time);
        field(&mut x, i, "STATUS", &e.status);
        field(&mut x, i, "STATXT", &e.text);
        field(&mut x, i, "SEGFLD", &e.field);
        for (n, p) in e.params.iter().enumerate() {
            field(&mut x, i, &format!("STAPA{}", n + 1), p);
        }
        field(&mut x, i, "STATYP", e.statyp);
        x.push_str("</E1STATS>\n");
    }
    x.push_str("</IDOC>\n</SYSTAT01>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(esc("a<b&\"c\u{1}"), "a&lt;b&amp;&quot;c ");
        assert_eq!(safe("ACME/../x"), "ACME____x");
        assert_eq!(cut("ééé", 2), "éé");
    }
}
