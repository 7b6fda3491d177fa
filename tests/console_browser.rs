//! The console in a real headless Chromium, driven through chromedriver's W3C WebDriver API
//! (plain JSON over HTTP): open the dashboard, follow a reject to its original line,
//! resolve it, retry a dead-letter group, upload a corrections file — with screenshots
//! checked to be more than one colour. Without Debian's `chromium` and `chromedriver` the
//! test says so and passes (CI installs them: `.ci/run`).

mod common;
mod console_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use console_support::*;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver running on a free loopback port, with one browser session.
struct Driver {
    child: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    shots: PathBuf,
    taken: usize,
}

fn tool(name: &str) -> Option<PathBuf> {
    [format!("/usr/bin/{name}"), format!("/usr/local/bin/{name}")]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Driver {
    fn start(profile: &Path, shots: PathBuf) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(tool("chromedriver").unwrap())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent = ureq::Agent::new_with_config(
            ureq::config::Config::builder()
                .http_status_as_error(false)
                .build(),
        );
        let base = format!("http://127.0.0.1:{port}");
        // Up to 30 s for chromedriver to listen (bounded, never part of an assertion).
        let ready = (0..300).any(|_| {
            let up = agent
                .get(&format!("{base}/status"))
                .call()
                .is_ok_and(|r| r.status() == 200);
            if !up {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            up
        });
        assert!(ready, "chromedriver did not start");
        let mut d = Driver {
            child,
            base,
            session: String::new(),
            agent,
            shots,
            taken: 0,
        };
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": tool("chromium").unwrap(), "args": args}
        }}});
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"].as_str().expect("a session").to_string();
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let r = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, b) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(b.unwrap_or(json!({})).to_string()),
        };
        let text = r.unwrap().body_mut().read_to_string().unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["value"].get("error").is_none(), "{method} {path}: {v}");
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {v}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/click"), None);
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap().to_string()
    }

    /// The page source once it contains `needle` (a click that submits a form may return
    /// before the next page is there); up to 100 looks.
    fn wait_for(&self, needle: &str) -> String {
        for _ in 0..100 {
            let s = self.source();
            if s.contains(needle) {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the page never showed {needle:?}: {}", self.source());
    }

    /// Takes a screenshot, saves it, and checks it is not a blank page of one colour.
    fn shot(&mut self, name: &str) -> PathBuf {
        let b64 = self
            .call("GET", "/screenshot", None)
            .as_str()
            .unwrap()
            .to_string();
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        self.taken += 1;
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, &png).unwrap();
        let colours = distinct_colours(&png);
        assert!(
            colours > 8,
            "{} is blank ({colours} colour(s))",
            path.display()
        );
        println!("screenshot: {} ({colours} colours)", path.display());
        path
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(&format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many different colours a PNG has (counting up to 1000).
fn distinct_colours(png: &[u8]) -> usize {
    let mut dec = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    let mut buf = vec![0; dec.output_buffer_size().unwrap()];
    let info = dec.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples()
        * if info.bit_depth == png::BitDepth::Sixteen {
            2
        } else {
            1
        };
    let mut seen = std::collections::HashSet::new();
    for p in buf[..info.buffer_size()].chunks(px) {
        seen.insert(p.to_vec());
        if seen.len() >= 1000 {
            break;
        }
    }
    seen.len()
}

#[test]
fn a_reviewer_follows_a_reject_resolves_it_retries_dead_letters_and_uploads_a_correction() {
    if tool("chromium").is_none() || tool("chromedriver").is_none() {
        println!("note: chromium or chromedriver is not installed; the browser test is skipped (`apt-get install chromium chromium-driver`)");
        return;
    }
    let env = Env::new(None);
    let tmp = tempfile::tempdir().unwrap();
    let shots = std::env::var_os("CONSOLE_SCREENSHOTS")
        .map_or_else(|| tmp.path().join("shots"), PathBuf::from);
    std::fs::create_dir_all(&shots).unwrap();
    let mut d = Driver::start(&tmp.path().join("profile"), shots);

    // The dashboard.
    d.go(&env.url("/"));
    let s = d.wait_for("Integrations health");
    assert!(
        s.contains("Error rate: rejected documents") && s.contains("<svg"),
        "{s}"
    );
    d.shot("dashboard");

    // Exceptions → the rule group → the original line, with its reject beside it.
    d.click("nav a[href='/exceptions']");
    d.wait_for("Rejected documents, by the rule they broke");
    d.shot("exceptions");
    d.click("a[href='/exceptions/rule?rule=min']");
    d.wait_for("open document(s) rejected for rule");
    d.click("a[href*='#l']");
    let s = d.wait_for("Lines (");
    assert!(d.url().contains("#l"), "{}", d.url());
    assert!(
        s.contains("<mark>-1</mark>"),
        "the offending quantity is marked: {s}"
    );
    d.shot("original-line");

    // Resolve the first open document from the file's page.
    let orders = env.file_id("orders-1.csv");
    assert_eq!(env.ledger().reject_tally(Some(orders)).unwrap().open, 2);
    d.type_into(
        "form[action$='/resolve'] input[name=note]",
        "re-keyed by the partner",
    );
    d.click("form[action$='/resolve'] button");
    d.wait_for("re-keyed by the partner");
    assert_eq!(env.ledger().reject_tally(Some(orders)).unwrap().open, 1);

    // Retry the dead-letter group: the count first, then the action, then its progress.
    d.go(&env.url("/exceptions"));
    d.click("a[href^='/deadletters/retry?']");
    d.wait_for("<strong>8 dead letter(s)</strong>");
    d.shot("retry-dry-run");
    d.type_into("input[name=reason]", "customers created in the ERP");
    d.click("form[action='/deadletters/retry'] button");
    d.wait_for("<strong>8 queued</strong>");
    d.shot("retry-progress");
    assert_eq!(env.ledger().target_counts("erp").unwrap().pending, 8);

    // Upload a corrections file for the remaining rejected order.
    let fixed = tmp.path().join("fixed.csv");
    std::fs::write(&fixed, common::orders_csv(1, 0, "T")).unwrap();
    d.go(&env.url(&format!("/files/{orders}")));
    d.type_into("input[type=file]", fixed.to_str().unwrap());
    d.click("form[enctype='multipart/form-data'] button");
    d.wait_for("Corrections file accepted");
    d.shot("correction-uploaded");
    let inbox: Vec<String> = std::fs::read_dir(env.work.dir.join("inbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        inbox
            .iter()
            .any(|n| n.starts_with("orders-1-") && n.ends_with(".corrections.csv")),
        "{inbox:?}"
    );

    // Every step is in the audit trail, under the OS user the console runs as.
    d.go(&env.url("/audit"));
    d.wait_for("upload-correction");
    d.shot("audit");
    let actions = audit_actions(&env.ledger());
    for a in ["resolve", "retry", "upload-correction"] {
        assert_eq!(actions[a][0].actor, "tester", "{a}");
    }
}
