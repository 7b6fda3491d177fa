//! STATUS acknowledgements: the SYSTAT01 IDoc SAP expects back for the IDocs it sent.
//!
//! SAP's ALE status processing reads a SYSTAT01 IDoc (message type STATUS) whose E1STATS
//! segments each point at one original DOCNUM with a status code: 53 (application document
//! posted) or 51 (application document not posted), a text and up to four parameters. We
//! send one SYSTAT01 per original sender in the file, with sender and receiver swapped and
//! our own DOCNUM from the ledger's control numbers, built only from what the ledger
//! recorded (`UnitOutcomes`), so the reader holds nothing per IDoc while streaming. The
//! committing thread answers each batch's IDocs after its commit (`Answering`), and the end
//! of the file only its last ones: answering a 50 MB file's 18,000 IDocs at its end took
//! ~80 ms on one core while the other waited. What is answered so far is held deflated
//! (`Route`), as the whole STATUS was while it was made at the end, and kept beside the
//! file's staged output after each batch (`keep`), so that a resumed file answers only the
//! IDocs its stopped read had not.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use super::def::Catalog;
use super::eval::valid_docnum;
use crate::format::{
    AckBody, AckContext, FileError, Outbound, UnitOutcomes, UnitStatus, UnitSummary,
};

mod keep;

/// Most E1STATS written for one rejected IDoc (its first reasons).
const MAX_REASONS: usize = 10;

pub struct AckState {
    units: u64,
    answered: Arc<Mutex<Answered>>,
}

/// The E1STATS of the IDocs answered so far, in file order: shared by the reader, which
/// finishes them, and the [`Answering`] handle the committing thread fills them through.
struct Answered {
    catalog: Arc<Catalog>,
    routes: Routes,
    /// The next unit to answer.
    next: u64,
    when: When,
    /// Where the answers are kept for a restart, once the engine gave a place.
    keeper: Option<keep::Keeper>,
}

/// Answers IDocs as their batches commit (see [`crate::format::Answering`]).
pub struct Answering(Arc<Mutex<Answered>>);

impl crate::format::Answering for Answering {
    fn committed(&mut self, outcomes: &dyn UnitOutcomes, upto: u64) {
        let mut answered = lock(&self.0);
        answered.answer_to(upto, outcomes, None);
        let Answered {
            routes,
            next,
            when,
            keeper,
            ..
        } = &mut *answered;
        if let Some(keeper) = keeper {
            keeper.keep(routes, *next, when);
        }
    }
}

/// The answers, whatever a thread that held them before did.
fn lock(answered: &Mutex<Answered>) -> MutexGuard<'_, Answered> {
    answered.lock().unwrap_or_else(|e| e.into_inner())
}

/// One E1STATS, its values borrowed from the outcome it answers where they can be: the
/// STATUS answers every IDoc of the file, and a string made per value was most of it.
struct Entry<'a> {
    docnum: &'a str,
    mandt: &'a str,
    status: &'a str,
    statyp: &'static str,
    text: Cow<'a, str>,
    params: [Cow<'a, str>; 4],
    field: Cow<'a, str>,
}

/// Plain text of E1STATS a route holds before deflating it into a piece of its body.
const ROUTE_PLAIN: usize = 64 * 1024;
/// Plain text of E1STATS all routes together hold before every route deflates its own:
/// a file from many senders keeps no more than this in plain text.
const ALL_PLAIN: usize = 4 * 1024 * 1024;

/// One SYSTAT01 being written: its E1STATS go through zlib as they are made, so the
/// STATUS of a file is held deflated while its IDocs are answered (see
/// `format::ack_body`). Its head, which names the DOCNUM the ledger hands out only once
/// the routes are known, is deflated on its own and put in front.
struct Route {
    /// Control record fields of the first IDoc from this sender.
    dc: serde_json::Map<String, Value>,
    /// The E1STATS deflated so far, a piece each, and the plain text since.
    body: Vec<AckBody>,
    plain: String,
    /// Where the first of `body` are kept for a restart (see `keep`).
    kept: Vec<u64>,
}

impl Route {
    /// Deflates the plain text into a piece of the body, and lets its buffer go: a route
    /// that keeps 64 KiB of room is as much as one that keeps 64 KiB of text.
    fn deflate(&mut self) {
        if !self.plain.is_empty() {
            let text = std::mem::take(&mut self.plain);
            self.body.push(AckBody::from_text(text.as_bytes()));
        }
    }
}

#[derive(Default)]
struct Routes {
    by_sender: BTreeMap<String, Route>,
    /// Plain text the routes hold together.
    plain: usize,
}

impl Routes {
    /// Writes `entries` into the route of `sender` (started with `dc`).
    fn add(
        &mut self,
        sender: &str,
        dc: &serde_json::Map<String, Value>,
        entries: &[Entry],
        when: &When,
    ) {
        if !self.by_sender.contains_key(sender) {
            let route = Route {
                dc: dc.clone(),
                body: Vec::new(),
                plain: String::new(),
                kept: Vec::new(),
            };
            self.by_sender.insert(sender.to_string(), route);
        }
        let Some(route) = self.by_sender.get_mut(sender) else {
            return;
        };
        let before = route.plain.len();
        entries
            .iter()
            .for_each(|e| render_entry(&mut route.plain, e, when));
        self.plain += route.plain.len() - before;
        if route.plain.len() >= ROUTE_PLAIN {
            self.plain -= route.plain.len();
            route.deflate();
        }
        if self.plain >= ALL_PLAIN {
            self.by_sender.values_mut().for_each(Route::deflate);
            self.plain = 0;
        }
    }
}

/// The date and time a STATUS is written at, as its fields spell them.
struct When {
    date: String,
    time: String,
}

impl When {
    fn now() -> When {
        let now = chrono::Utc::now();
        When {
            date: now.format("%Y%m%d").to_string(),
            time: now.format("%H%M%S").to_string(),
        }
    }
}

fn s<'a>(dc: &'a serde_json::Map<String, Value>, k: &str) -> &'a str {
    dc.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Truncates to `max` characters (SAP field lengths are in characters).
fn cut(v: &str, max: usize) -> Cow<'_, str> {
    // No more bytes than `max` is no more characters.
    match v.len() <= max {
        true => Cow::Borrowed(v),
        false => Cow::Owned(v.chars().take(max).collect()),
    }
}

/// Appends `v` with markup escaped and control characters made spaces.
fn push_escaped(out: &mut String, v: &str) {
    let plain =
        |b: u8| !matches!(b, b'<' | b'>' | b'&' | b'"' | b'\'') && (b >= 0x20 || b == b'\t');
    if v.bytes().all(plain) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
fn esc(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    push_escaped(&mut o, v);
    o
}

/// `indent<name>v</name>` and a line end; nothing for an empty value.
fn field(out: &mut String, indent: &str, name: &str, v: &str) {
    if !v.is_empty() {
        out.push_str(indent);
        out.push('<');
        out.push_str(name);
        out.push('>');
        push_escaped(out, v);
        out.push_str("</");
        out.push_str(name);
        out.push_str(">\n");
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
        AckState {
            units: 0,
            answered: Arc::new(Mutex::new(Answered::new(catalog))),
        }
    }

    pub fn seen(&mut self, seq: u64) {
        self.units = self.units.max(seq + 1);
    }

    /// Keeps what is answered in `file` as batches commit (see `keep`).
    pub fn keep_in(&mut self, file: std::path::PathBuf) {
        lock(&self.answered).keeper = Some(keep::Keeper::new(file));
    }

    /// Takes up what was answered before IDoc `upto`, as kept by a read of the same file
    /// that stopped; false (nothing taken up) when nothing usable was kept.
    pub fn restore(&mut self, upto: u64) -> bool {
        let mut answered = lock(&self.answered);
        let Some(mut keeper) = answered.keeper.take() else {
            return false;
        };
        let restored = keeper.restore(&mut answered, upto);
        answered.keeper = Some(keeper);
        restored
    }

    /// The handle that answers committed IDocs ahead of [`Self::build`].
    pub fn answering(&self) -> Answering {
        Answering(Arc::clone(&self.answered))
    }

    pub fn build(
        &mut self,
        outcomes: &dyn UnitOutcomes,
        acks: &mut dyn AckContext,
        error: Option<&FileError>,
    ) -> Result<Vec<Outbound>, FileError> {
        let mut answered = lock(&self.answered);
        let catalog = Arc::clone(&answered.catalog);
        let file = error.map(FileRejected::of);
        if file.is_some() {
            // Every E1STATS of a file rejected whole says so: those made before are wrong.
            *answered = Answered::new(Arc::clone(&catalog));
        }
        answered.answer_to(self.units, outcomes, file.as_ref());
        let Answered { routes, when, .. } =
            std::mem::replace(&mut *answered, Answered::new(catalog));
        let mut out = Vec::new();
        for (partner, route) in routes.by_sender {
            let partner_id = if partner.is_empty() {
                "UNKNOWN".to_string()
            } else {
                partner.clone()
            };
            let control = acks.next_control_number(&partner_id, "STATUS")?;
            let head = render_head(&route.dc, control, &when);
            let tail = route.plain + "</IDOC>\n</SYSTAT01>\n";
            let content = AckBody::join(
                std::iter::once(AckBody::from_text(head.as_bytes()))
                    .chain(route.body)
                    .chain([AckBody::from_text(tail.as_bytes())]),
            );
            out.push(Outbound {
                file_name: format!("STATUS_{}_{control:016}.xml", safe(&partner_id)),
                kind: "STATUS".into(),
                partner: partner_id,
                control_no: Some(control),
                content,
            });
        }
        Ok(out)
    }
}

impl Answered {
    fn new(catalog: Arc<Catalog>) -> Answered {
        Answered {
            catalog,
            routes: Routes::default(),
            next: 0,
            when: When::now(),
            keeper: None,
        }
    }

    /// Answers the IDocs from `next` to `upto` (those the ledger holds an outcome of).
    fn answer_to(&mut self, upto: u64, outcomes: &dyn UnitOutcomes, file: Option<&FileRejected>) {
        for seq in self.next..upto {
            let Some(sum) = outcomes.take(seq) else {
                continue;
            };
            let Value::Object(dc) = &sum.detail else {
                continue;
            };
            let docnum = s(dc, "DOCNUM");
            if !valid_docnum(docnum) {
                // Empty or not a number: nothing the sender's SAP could match a status to
                // (E1STATS-DOCNUM is NUMC 16). The IDoc's own reject row and its ledger
                // detail (`status_ack`) say why no status was sent.
                continue;
            }
            // NUMC 16: SAP pads with zeros, so the status names the IDoc as SAP stores it.
            let mut padded = String::with_capacity(16);
            (docnum.len()..16).for_each(|_| padded.push('0'));
            padded.push_str(docnum);
            if let Some(entries) = entries(&self.catalog, &sum, dc, &padded, file) {
                self.routes.add(s(dc, "SNDPRN"), dc, &entries, &self.when);
            }
        }
        self.next = self.next.max(upto);
    }
}

/// The type's STATUS codes (applied, rejected); SAP's inbound 53/51 for unknown types.
fn codes<'a>(catalog: &'a Catalog, idoctyp: &str) -> (&'a str, &'a str) {
    catalog
        .get(idoctyp)
        .map_or(("53", "51"), |t| (&t.status_applied, &t.status_rejected))
}

/// The E1STATS answering one IDoc (control record `dc`, `docnum` padded), or `None` for
/// one that gets no status (skipped).
fn entries<'a>(
    catalog: &'a Catalog,
    sum: &'a UnitSummary,
    dc: &'a serde_json::Map<String, Value>,
    docnum: &'a str,
    file: Option<&'a FileRejected>,
) -> Option<Vec<Entry<'a>>> {
    let (ok_code, bad_code) = codes(catalog, s(dc, "IDOCTYP"));
    let entry = |status, statyp, text: &'a str| Entry {
        docnum,
        mandt: s(dc, "MANDT"),
        status,
        statyp,
        text: Cow::Borrowed(text),
        params: Default::default(),
        field: Cow::Borrowed(""),
    };
    let entries = match (file, sum.status) {
        (Some(f), _) => vec![Entry {
            params: [(&*f.rule).into(), "".into(), "".into(), (&*f.pos).into()],
            ..entry(bad_code, "E", &f.text)
        }],
        (
            None,
            UnitStatus::Applied
            | UnitStatus::Duplicate
            | UnitStatus::Unmapped
            | UnitStatus::Unchanged,
        ) => vec![entry(
            ok_code,
            "S",
            match sum.status == UnitStatus::Duplicate {
                true => "Already posted earlier: duplicate not applied again",
                false => "Application document posted",
            },
        )],
        (None, UnitStatus::Rejected) => {
            let mut v: Vec<Entry> = sum
                .reasons
                .iter()
                .take(MAX_REASONS)
                .map(|(pos, r)| Entry {
                    text: cut(&r.message, 70),
                    params: [
                        cut(&r.rule, 50),
                        cut(r.field.as_deref().unwrap_or(""), 50),
                        cut(r.value.as_deref().unwrap_or(""), 50),
                        cut(pos.locator.as_deref().unwrap_or(""), 50),
                    ],
                    field: cut(r.field.as_deref().unwrap_or(""), 30),
                    ..entry(bad_code, "E", "")
                })
                .collect();
            if v.is_empty() {
                v.push(entry(bad_code, "E", "Application document not posted"));
            }
            v
        }
        (None, UnitStatus::Skipped) => return None,
    };
    Some(entries)
}

/// What every E1STATS of a file rejected whole says, cut to its fields' lengths once.
struct FileRejected {
    text: String,
    rule: String,
    pos: String,
}

impl FileRejected {
    fn of(e: &FileError) -> FileRejected {
        FileRejected {
            text: cut(&format!("File rejected: {}", e.reason.message), 70).into_owned(),
            rule: cut(&e.reason.rule, 50).into_owned(),
            pos: e
                .pos
                .as_ref()
                .map(|p| cut(&p.to_string(), 50).into_owned())
                .unwrap_or_default(),
        }
    }
}

/// The SYSTAT01's start, through its control record.
fn render_head(dc: &serde_json::Map<String, Value>, control: u64, when: &When) -> String {
    let mut x = String::with_capacity(1024);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SYSTAT01>\n<IDOC BEGIN=\"1\">\n");
    x.push_str("<EDI_DC40 SEGMENT=\"1\">\n");
    let i = "  ";
    field(&mut x, i, "TABNAM", "EDI_DC40");
    field(&mut x, i, "MANDT", s(dc, "MANDT"));
    field(&mut x, i, "DOCNUM", &format!("{control:016}"));
    field(&mut x, i, "DIRECT", "2");
    field(&mut x, i, "IDOCTYP", "SYSTAT01");
    field(&mut x, i, "MESTYP", "STATUS");
    // The answer travels the other way: their receiver is our sender and vice versa.
    field(&mut x, i, "SNDPOR", s(dc, "RCVPOR"));
    field(&mut x, i, "SNDPRT", s(dc, "RCVPRT"));
    field(&mut x, i, "SNDPRN", s(dc, "RCVPRN"));
    field(&mut x, i, "RCVPOR", s(dc, "SNDPOR"));
    field(&mut x, i, "RCVPRT", s(dc, "SNDPRT"));
    field(&mut x, i, "RCVPRN", s(dc, "SNDPRN"));
    field(&mut x, i, "CREDAT", &when.date);
    field(&mut x, i, "CRETIM", &when.time);
    x.push_str("</EDI_DC40>\n");
    x
}

/// One E1STATS, appended to `x`.
fn render_entry(x: &mut String, e: &Entry, when: &When) {
    let i = "  ";
    x.push_str("<E1STATS SEGMENT=\"1\">\n");
    field(x, i, "TABNAM", "EDI_DS");
    field(x, i, "MANDT", e.mandt);
    field(x, i, "DOCNUM", e.docnum);
    field(x, i, "LOGDAT", &when.date);
    field(x, i, "LOGTIM", &when.time);
    field(x, i, "STATUS", e.status);
    field(x, i, "STATXT", &e.text);
    field(x, i, "SEGFLD", &e.field);
    for (name, p) in ["STAPA1", "STAPA2", "STAPA3", "STAPA4"]
        .iter()
        .zip(&e.params)
    {
        field(x, i, name, p);
    }
    field(x, i, "STATYP", e.statyp);
    x.push_str("</E1STATS>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// E1STATS written into routes a piece at a time read back as written whole, per
    /// sender: a few senders with long routes (pieces at `ROUTE_PLAIN`), then many with
    /// short ones (every route's plain text deflated at `ALL_PLAIN`).
    #[test]
    fn routes_deflated_in_pieces_read_back_as_written_whole() {
        let when = When {
            date: "20261205".into(),
            time: "120000".into(),
        };
        let dc = serde_json::Map::new();
        let mut routes = Routes::default();
        let mut want: BTreeMap<String, String> = BTreeMap::new();
        let senders = |i: usize| if i < 30_000 { i % 3 } else { 3 + i % 2_000 };
        for i in 0..50_000 {
            let sender = format!("S{}", senders(i));
            let docnum = format!("{i:016}");
            let e = Entry {
                docnum: &docnum,
                mandt: "100",
                status: "53",
                statyp: "S",
                text: "Application document posted".into(),
                params: Default::default(),
                field: "".into(),
            };
            render_entry(want.entry(sender.clone()).or_default(), &e, &when);
            routes.add(&sender, &dc, std::slice::from_ref(&e), &when);
            assert!(routes.plain < ALL_PLAIN);
        }
        let short = &routes.by_sender["S7"];
        assert!(!short.body.is_empty() && short.plain.len() < ROUTE_PLAIN);
        assert!(routes.by_sender["S0"].body.len() > 10);
        assert_eq!(routes.by_sender.len(), want.len());
        for (sender, r) in routes.by_sender {
            let mut got = AckBody::join(r.body).bytes().unwrap();
            got.extend(r.plain.as_bytes());
            assert_eq!(String::from_utf8(got).unwrap(), want[&sender], "{sender}");
        }
    }

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(esc("a<b&\"c\u{1}"), "a&lt;b&amp;&quot;c ");
        assert_eq!(esc("Müller\tGmbH 42\u{7f}"), "Müller\tGmbH 42\u{7f}");
        assert_eq!(esc("O'Neil >"), "O&apos;Neil &gt;");
        assert_eq!(safe("ACME/../x"), "ACME____x");
        assert_eq!(cut("ééé", 2), "éé");
    }
}
