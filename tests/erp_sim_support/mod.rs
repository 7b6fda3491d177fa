//! A small HTTP client over ureq for the ERP simulator tests: every call returns the status,
//! headers and JSON body (4xx and 5xx are answers, not errors), and transport failures stay
//! distinguishable, since telling "the ERP said no" from "the connection died" is the point.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use tallyman::erpsim::{SimConfig, Simulator};
use ureq::http::{HeaderMap, Request};
use ureq::Agent;

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `id` of the record in the body.
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
            .to_owned()
    }
}

pub fn start(cfg: SimConfig) -> Simulator {
    Simulator::start("127.0.0.1:0", cfg).expect("simulator starts")
}

pub fn agent(timeout: Option<Duration>) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(timeout.or(Some(Duration::from_secs(30))))
        .build()
        .into()
}

pub struct Client {
    pub agent: Agent,
    pub base: String,
    pub headers: Vec<(String, String)>,
}

impl Client {
    pub fn new(sim: &Simulator) -> Client {
        Client {
            agent: agent(None),
            base: sim.base_url(),
            headers: vec![],
        }
    }

    pub fn with_timeout(sim: &Simulator, t: Duration) -> Client {
        Client {
            agent: agent(Some(t)),
            ..Client::new(sim)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Client {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// One request; `Err` only for transport failures (reset, timeout, refused).
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<Reply, ureq::Error> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied())
        {
            b = b.header(k, v);
        }
        let resp = match body {
            Some(s) => {
                let req = b
                    .header("content-type", "application/json")
                    .body(s.to_owned())?;
                self.agent.run(req)?
            }
            None => self.agent.run(b.body(())?)?,
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.into_body().read_to_string()?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let text = body.map(|b| b.to_string());
        self.try_send(method, path, text.as_deref(), extra)
            .unwrap_or_else(|e| panic!("{method} {path}: transport error {e}"))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, &[])
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, Some(body), &[])
    }

    pub fn post_key(&self, path: &str, body: &Value, key: &str) -> Reply {
        self.send("POST", path, Some(body), &[("idempotency-key", key)])
    }

    pub fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send("PATCH", path, Some(body), &[])
    }

    pub fn put(&self, path: &str, body: &Value) -> Reply {
        self.send("PUT", path, Some(body), &[])
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None, &[])
    }

    /// The records holding a business key.
    pub fn lookup(&self, collection: &str, key: &str) -> Vec<Value> {
        let r = self.get(&format!("/api/v1/{collection}?external_ref={key}"));
        assert_eq!(r.status, 200, "{}", r.body);
        r.body.as_array().cloned().unwrap_or_default()
    }

    pub fn script(&self, faults: &[&str]) {
        let r = self.put("/_sim/faults", &serde_json::json!(faults));
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

pub fn customer(key: &str) -> Value {
    serde_json::json!({"external_ref": key, "customer_id": key, "name": format!("Customer {key}")})
}

pub fn order(key: &str, customer_id: &str) -> Value {
    serde_json::json!({
        "external_ref": key, "order_no": key, "customer_id": customer_id, "currency": "EUR",
        "lines": [{"line_no": "1", "sku": "SKU-1", "quantity": "2", "unit_price": "19.99"}]
    })
}

pub fn product(key: &str) -> Value {
    serde_json::json!({"external_ref": key, "sku": key, "price": "1.00"})
}

/// Waits until `cond` holds, polling; fails the test after ~10 s rather than hanging.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("gave up waiting for {what}");
}
