//! What the console tests share: a working directory whose run left rejects (one of them a
//! masked IBAN), delivered records and dead letters in the ledger — made by the real
//! `tallyman run` against the ERP simulator — and a console serving it on a loopback port,
//! plus a small HTTP client that keeps the session cookie.
#![allow(dead_code)]

use std::collections::BTreeMap;

use tallyman::config::Config;
use tallyman::console::{Console, Hooks, Options, Token};
use tallyman::erpsim::{SimConfig, Simulator};
use tallyman::ledger::Ledger;

use crate::common::{orders_csv, text, Work};

pub const ERP_TOKEN: &str = "console-test-token";
pub const GOOD_IBAN: &str = "DE89370400440532013000";
pub const BAD_IBAN: &str = "DE00370400440532013000";

pub fn suppliers() -> String {
    format!(
        "supplier_id,name,address,city,region,postal_code,country,vat_id,email,phone,payment_terms,currency,iban,bic,bank_account,bank_code,bank_country,account_holder,active\n\
         S-1,Brightwater GmbH,Weg 7,Stuttgart,BW,70565,DE,DE123456789,ap@bw.example,+49 711 1,NT30,EUR,{GOOD_IBAN},COBADEFFXXX,,,DE,Brightwater GmbH,yes\n\
         S-2,Harbour Ltd,Dock Rd,Southampton,,SO14 3TJ,GB,GB123456789,b@h.example,+44 23 1,NT60,GBP,{BAD_IBAN},NWBKGB2L,,,GB,Harbour Ltd,yes\n"
    )
}

/// A run's aftermath, served by a console.
pub struct Env {
    pub sim: Simulator,
    pub work: Work,
    pub console: Console,
}

impl Env {
    /// Ten orders (two rejected for a bad quantity, eight dead-lettered: their customers
    /// are unknown to the ERP) and suppliers (one rejected for its IBAN), run once.
    pub fn new(token: Option<&str>) -> Env {
        let sim = Simulator::start(
            "127.0.0.1:0",
            SimConfig {
                token: Some(ERP_TOKEN.into()),
                ..SimConfig::default()
            },
        )
        .unwrap();
        let work = Work::new(100);
        let cfg = std::fs::read_to_string(work.config()).unwrap();
        let target = format!(
            "\n[[targets]]\nname = \"erp\"\nkind = \"http\"\nbase_url = \"{}\"\ntoken_env = \"ERP_TOKEN\"\ntimeout_seconds = 5\nbackoff_base_ms = 50\nbackoff_cap_seconds = 1\n",
            sim.base_url()
        );
        std::fs::write(work.config(), cfg + &target).unwrap();
        work.drop_file("orders-1.csv", &orders_csv(10, 5, "T"));
        work.drop_file("suppliers-1.csv", suppliers().as_bytes());
        let out = work
            .cmd()
            .arg("run")
            .env("ERP_TOKEN", ERP_TOKEN)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "rejects and dead letters: {}",
            text(&out)
        );
        let console = start(&work, token, "127.0.0.1:0").unwrap();
        Env { sim, work, console }
    }

    pub fn config(&self) -> Config {
        Config::load(&self.work.config()).unwrap()
    }

    pub fn ledger(&self) -> Ledger {
        Ledger::open_in(&self.config().paths).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.console.base_url())
    }

    /// The ledger id of a file by name.
    pub fn file_id(&self, name: &str) -> i64 {
        self.ledger().find_files(name).unwrap()[0].id
    }

    /// Runs a tallyman command in the working directory.
    pub fn tallyman(&self, args: &[&str]) -> std::process::Output {
        self.work
            .cmd()
            .args(args)
            .env("ERP_TOKEN", ERP_TOKEN)
            .output()
            .unwrap()
    }
}

pub fn start(
    work: &Work,
    token: Option<&str>,
    listen: &str,
) -> Result<Console, tallyman::console::StartError> {
    Console::start(
        Config::load(&work.config()).unwrap(),
        Options {
            listen: listen.into(),
            token: token.map(|t| Token::parse(t).unwrap()),
            os_user: "tester".into(),
            hooks: Hooks::default(),
        },
    )
}

/// An HTTP client that follows no redirects and keeps the console's session cookie.
pub struct Client {
    agent: ureq::Agent,
    pub cookie: Option<String>,
}

pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub content_type: String,
}

impl Client {
    pub fn new() -> Client {
        let agent = ureq::Agent::new_with_config(
            ureq::config::Config::builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .max_redirects_will_error(false)
                // A connection per request: the console closes a connection whose request
                // body it refused unread, and a pooled one reused after that fails as
                // "Peer disconnected" (seen once in the full suite).
                .max_idle_connections(0)
                .max_idle_connections_per_host(0)
                .build(),
        );
        Client {
            agent,
            cookie: None,
        }
    }

    fn finish(&mut self, r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut r = r.unwrap();
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let pair = c.split(';').next().unwrap().to_string();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
        Reply {
            status: r.status().as_u16(),
            location: header("location"),
            content_type: header("content-type").unwrap_or_default(),
            body: r.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    pub fn get(&mut self, url: &str) -> Reply {
        self.get_with(url, &[])
    }

    pub fn get_with(&mut self, url: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.agent.get(url);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.call();
        self.finish(r)
    }

    pub fn post(&mut self, url: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Reply {
        let mut req = self.agent.post(url);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send_form(form.iter().copied());
        self.finish(r)
    }
}

/// The CSRF token in a page's forms.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + 64].to_string()
}

/// Audit rows by action.
pub fn audit_actions(l: &Ledger) -> BTreeMap<String, Vec<tallyman::ledger::AuditRow>> {
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in l.audit_log(1000).unwrap() {
        out.entry(r.action.clone()).or_default().push(r);
    }
    out
}
