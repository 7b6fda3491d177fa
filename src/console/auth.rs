//! Who is at the console, and whether a request may act: the token from the environment,
//! sessions in memory (an HttpOnly, SameSite=Strict cookie), the per-session CSRF secret
//! every form carries, and the checks every request passes first — the `Host` a loopback
//! console answers to (so a web page cannot reach it by DNS rebinding), and a POST's
//! `Origin`/`Sec-Fetch-Site` (a cross-site form is refused even before its token is read).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::app::AppState;

/// The environment variable holding the console token: `name:secret`, or just `secret`
/// (named "console").
pub const TOKEN_ENV: &str = "TALLYMAN_CONSOLE_TOKEN";

const COOKIE: &str = "tallyman_session";

/// A guessable token would make the console's protections moot.
const MIN_SECRET: usize = 16;

/// Sessions unused this long are forgotten.
const IDLE: Duration = Duration::from_secs(12 * 3600);

/// More sessions than this and the least recently used go first.
const MAX_SESSIONS: usize = 1000;

/// The console token: its name is the actor of audit rows.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({})", self.name)
    }
}

impl Token {
    /// `name:secret` or `secret`. Refuses a short secret and a name with odd characters.
    pub fn parse(s: &str) -> Result<Token, String> {
        let (name, secret) = match s.split_once(':') {
            Some((n, sec)) if !n.is_empty() => (n, sec),
            Some((_, sec)) => ("console", sec),
            None => ("console", s),
        };
        if secret.chars().count() < MIN_SECRET {
            return Err(format!(
                "{TOKEN_ENV}: the secret must be at least {MIN_SECRET} characters (format name:secret)"
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        {
            return Err(format!(
                "{TOKEN_ENV}: the name may use letters, digits and - _ . @ only"
            ));
        }
        Ok(Token {
            name: name.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The token from the environment, if set (and not empty).
    pub fn from_env() -> Result<Option<Token>, String> {
        match std::env::var(TOKEN_ENV) {
            Ok(s) if !s.is_empty() => Token::parse(&s).map(Some),
            _ => Ok(None),
        }
    }

    /// Compares in constant time, so the answer's timing says nothing about the secret.
    pub fn matches(&self, given: &str) -> bool {
        ct_eq(given, &self.secret)
    }
}

pub(super) fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The OS user running the console, the actor when there is no token.
pub fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            #[cfg(unix)]
            // SAFETY: getuid cannot fail and has no preconditions.
            let uid = unsafe { libc::getuid() };
            #[cfg(not(unix))]
            let uid = 0;
            format!("uid {uid}")
        })
}

/// What a page knows about its visitor: who, and the secret its forms must carry.
#[derive(Clone, Debug)]
pub struct Sess {
    pub actor: String,
    pub csrf: String,
}

struct Entry {
    sess: Sess,
    last_seen: Instant,
}

/// Sessions by id, in memory: a restart logs everybody out, which is fine for a console.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    fn get(&self, id: &str) -> Option<Sess> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.get_mut(id)?;
        if e.last_seen.elapsed() > IDLE {
            map.remove(id);
            return None;
        }
        e.last_seen = Instant::now();
        Some(e.sess.clone())
    }

    /// A new session for `actor`; returns its id.
    pub fn create(&self, actor: &str) -> (String, Sess) {
        let id = random_hex();
        let sess = Sess {
            actor: actor.to_string(),
            csrf: random_hex(),
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| e.last_seen.elapsed() <= IDLE);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Entry {
                sess: sess.clone(),
                last_seen: Instant::now(),
            },
        );
        (id, sess)
    }

    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// 32 random bytes as hex.
fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source failed");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

pub(super) fn set_cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/"))
        .expect("hex is a valid header value")
}

pub(super) fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("tallyman_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// The `Host` a console without a token answers to: a loopback address or `localhost`.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A state-changing request must come from the console's own pages.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(o), Some(h)) => o == format!("http://{h}") || o == format!("https://{h}"),
        _ => false,
    }
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, super::html::error_page(status, why)).into_response()
}

/// Runs before every handler: host and origin checks, then the session (made on the spot
/// for a loopback console without a token), put into the request for the handlers.
pub(super) async fn guard(
    State(st): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    if st.token.is_none() && !loopback_host(headers) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this console answers to localhost only",
        );
    }
    let post = req.method() == Method::POST;
    if post && !same_origin(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "a cross-site request may not act on the console",
        );
    }
    let path = req.uri().path().to_string();
    if path == "/login" || path.starts_with("/static/") {
        return next.run(req).await;
    }
    if path == "/metrics" {
        if metrics_allowed(&st, req.headers()) {
            return next.run(req).await;
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            "log in, or send the console token as a bearer token",
        );
    }
    let known = session_id(req.headers()).and_then(|id| st.sessions.get(&id));
    match known {
        Some(sess) => {
            req.extensions_mut().insert(sess);
            next.run(req).await
        }
        None if post => refuse(
            StatusCode::FORBIDDEN,
            "no session: open the page again and repeat the action",
        ),
        None if st.token.is_none() => {
            let (id, sess) = st.sessions.create(&st.os_user);
            req.extensions_mut().insert(sess);
            let mut resp = next.run(req).await;
            resp.headers_mut()
                .append(header::SET_COOKIE, set_cookie(&id));
            resp
        }
        None => {
            let query = req
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            let next_url = super::html::enc(&format!("{path}{query}"));
            Redirect::to(&format!("/login?next={next_url}")).into_response()
        }
    }
}

fn metrics_allowed(st: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = &st.token else { return true };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.is_some_and(|b| token.matches(b))
        || session_id(headers).is_some_and(|id| st.sessions.get(&id).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_a_name_and_a_long_secret() {
        let t = Token::parse("ops:0123456789abcdef").unwrap();
        assert_eq!(t.name, "ops");
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert_eq!(Token::parse("0123456789abcdef").unwrap().name, "console");
        assert_eq!(Token::parse(":0123456789abcdef").unwrap().name, "console");
        assert!(Token::parse("ops:short").is_err());
        assert!(Token::parse("o p:0123456789abcdef").is_err());
        assert!(
            !format!("{t:?}").contains("0123"),
            "the secret is never printed"
        );
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_loopback_console_answers_to_loopback_names_only() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:80",
            "LOCALHOST",
            "127.3.4.5",
        ] {
            assert!(loopback_host(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "10.0.0.1:8080",
            "127.0.0.1.evil.example",
        ] {
            assert!(!loopback_host(&headers(&[("host", bad)])), "{bad}");
        }
        assert!(!loopback_host(&HeaderMap::new()));
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let h = |o: &str| headers(&[("host", "127.0.0.1:8080"), ("origin", o)]);
        assert!(same_origin(&h("http://127.0.0.1:8080")));
        assert!(!same_origin(&h("http://evil.example")));
        assert!(!same_origin(&h("null")));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(same_origin(&HeaderMap::new()), "curl sends neither header");
    }

    #[test]
    fn sessions_are_found_by_cookie_and_can_end() {
        let s = Sessions::default();
        let (id, sess) = s.create("ann");
        assert_eq!(sess.csrf.len(), 64);
        let h = headers(&[("cookie", &format!("a=b; {COOKIE}={id}"))]);
        let found = s.get(&session_id(&h).unwrap()).unwrap();
        assert_eq!((found.actor.as_str(), found.csrf), ("ann", sess.csrf));
        s.remove(&id);
        assert!(s.get(&id).is_none());
    }
}
