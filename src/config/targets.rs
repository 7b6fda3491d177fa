//! `[[targets]]`: the systems records are delivered into, and `[delivery]`.
//!
//! A target is a name, a kind and the entities it takes. The `outbox` kind is the JSON
//! Lines folder (`paths.outbox`), written when a file is published; the `http` kind is an
//! ERP's REST API, fed by the delivery relay with retries, a rate limit and dead letters.
//! Without any `[[targets]]` every record goes to the outbox, as before targets existed.
//! Secrets never live here: an HTTP target names the environment variable that holds its
//! token. Each target is parsed on its own and checked as a whole, so every mistake is
//! reported at once, with its line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::canonical::Entity;
use crate::format::Diagnostics;

/// One `[[targets]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    kind: String,
    base_url: Option<String>,
    token_env: Option<String>,
    entities: Option<Vec<String>>,
    rate_limit_per_minute: Option<u32>,
    #[serde(default)]
    owned: BTreeMap<String, Vec<String>>,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_max_age")]
    max_age_hours: u64,
    #[serde(default = "default_backoff_base")]
    backoff_base_ms: u64,
    #[serde(default = "default_backoff_cap")]
    backoff_cap_seconds: u64,
    #[serde(default)]
    endpoints: BTreeMap<String, Endpoint>,
    reconcile_scope: Option<RawScope>,
    reconcile_entities: Option<Vec<String>>,
    #[serde(default = "default_page_size")]
    reconcile_page_size: u32,
    reconcile_every_hours: Option<u32>,
}

/// `reconcile_scope`: one pattern for every entity, or one per entity.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawScope {
    All(String),
    PerEntity(BTreeMap<String, String>),
}

fn default_page_size() -> u32 {
    100
}

fn default_timeout() -> u64 {
    30
}
fn default_concurrency() -> usize {
    4
}
fn default_max_attempts() -> u32 {
    12
}
fn default_max_age() -> u64 {
    72
}
fn default_backoff_base() -> u64 {
    1000
}
fn default_backoff_cap() -> u64 {
    900
}

/// How one entity is reached on an HTTP target; the reference API by default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The collection's path below `base_url` (default `/api/v1/<collection>`).
    pub path: Option<String>,
    /// The method that creates (default `POST`).
    pub create_method: Option<String>,
    /// The method that updates `<path>/<id>` (default `PATCH`).
    pub update_method: Option<String>,
    /// The query parameter that looks a record up by business key (default `external_ref`).
    pub lookup_param: Option<String>,
    /// The body field that carries the business key (default `external_ref`).
    pub key_field: Option<String>,
    /// Canonical field → the ERP's name for it, in bodies sent (`{ name = "name1" }`).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Constant fields added to every create (`{ source_system = "tallyman" }`).
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// How a target is reconciled against what the ledger delivered to it (`tallyman
/// reconcile`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reconcile {
    /// The ERP's records that are ours to account for, by external reference (a regex):
    /// other channels' records outside it are never called orphans. Per entity; an entity
    /// without a pattern has every record in scope.
    pub scope: BTreeMap<Entity, String>,
    /// The entities whose collections are listed (default: every entity the target takes).
    pub entities: Vec<Entity>,
    /// Records asked for per page of the list endpoint.
    pub page_size: u32,
    /// Reconcile on a schedule, at the end of `run`/`watch` passes, this often.
    pub every: Option<Duration>,
}

impl Reconcile {
    pub fn scope_of(&self, e: Entity) -> Option<&str> {
        self.scope.get(&e).map(String::as_str)
    }
    /// What the scope says, for reports: `customer=^C-; product=^SKU-`, or `all records`.
    pub fn scope_text(&self) -> String {
        if self.scope.is_empty() {
            return "all records".into();
        }
        let parts: Vec<String> = self.scope.iter().map(|(e, p)| format!("{e}={p}")).collect();
        parts.join("; ")
    }
}

/// Retries and dead letters.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub max_age: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

/// An HTTP target's connection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpTarget {
    pub base_url: String,
    /// The environment variable holding the bearer token.
    pub token_env: String,
    pub rate_limit_per_minute: Option<u32>,
    pub timeout: Duration,
    pub concurrency: usize,
    pub endpoints: BTreeMap<Entity, Endpoint>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TargetKind {
    Outbox,
    Http(HttpTarget),
}

/// A checked target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    pub entities: Vec<Entity>,
    /// Per entity, the fields tallyman is the source of truth for. An update sends only
    /// these (and only those that changed); the ERP owns every other field.
    pub owned: BTreeMap<Entity, Vec<String>>,
    pub retry: RetryPolicy,
    pub reconcile: Reconcile,
}

impl Target {
    pub fn takes(&self, entity: Entity) -> bool {
        self.entities.contains(&entity)
    }
    pub fn is_http(&self) -> bool {
        matches!(self.kind, TargetKind::Http(_))
    }
    /// The implicit target when none is configured: the outbox, every entity.
    pub fn default_outbox() -> Target {
        Target {
            name: "outbox".into(),
            kind: TargetKind::Outbox,
            entities: Entity::ALL.to_vec(),
            owned: BTreeMap::new(),
            retry: RetryPolicy {
                max_attempts: default_max_attempts(),
                max_age: Duration::from_secs(default_max_age() * 3600),
                backoff_base: Duration::from_millis(default_backoff_base()),
                backoff_cap: Duration::from_secs(default_backoff_cap()),
            },
            reconcile: Reconcile {
                scope: BTreeMap::new(),
                entities: Vec::new(),
                page_size: default_page_size(),
                every: None,
            },
        }
    }
}

/// `[delivery]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// How long `run` delivers after processing before it leaves the rest queued for the
    /// next pass (fits a 5-minute timer).
    pub budget_seconds: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            budget_seconds: 240,
        }
    }
}

/// Parses and checks every `[[targets]]` table, reporting all problems.
pub fn parse(
    value: Option<&toml::Value>,
    file: &Path,
    text: &str,
    diags: &mut Diagnostics,
) -> Vec<Target> {
    let Some(value) = value else {
        return vec![Target::default_outbox()];
    };
    let Some(items) = value.as_array() else {
        diags.error(file, None, "targets must be written as [[targets]] tables");
        return Vec::new();
    };
    let lines = table_lines(text);
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let line = lines.get(i).copied();
        match item.clone().try_into::<RawTarget>() {
            Ok(raw) => {
                let mut errs = Vec::new();
                let t = check(raw, &mut errs);
                for e in errs {
                    diags.error(file, line, e);
                }
                out.extend(t);
            }
            Err(e) => diags.error(
                file,
                line,
                format!("[[targets]] #{}: {}", i + 1, e.message()),
            ),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, t) in out.iter().enumerate() {
        if !seen.insert(t.name.clone()) {
            diags.error(
                file,
                lines.get(i).copied(),
                format!("two targets are named '{}'", t.name),
            );
        }
    }
    if out.iter().filter(|t| !t.is_http()).count() > 1 {
        diags.error(
            file,
            None,
            "at most one target may be of kind \"outbox\" (there is one outbox folder)",
        );
    }
    out
}

/// The line of each `[[targets]]` header, in order.
fn table_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[targets]]")
        .map(|(i, _)| i + 1)
        .collect()
}

fn check(raw: RawTarget, errs: &mut Vec<String>) -> Option<Target> {
    let name = raw.name.clone();
    let who = format!("target '{name}'");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        errs.push(format!("{who}: a name is letters, digits, '-' and '_'"));
    }
    let entities = match &raw.entities {
        None => Entity::ALL.to_vec(),
        Some(list) => list.iter().filter_map(|e| entity(&who, e, errs)).collect(),
    };
    let owned = owned_fields(&who, &raw.owned, &entities, errs);
    let kind = match raw.kind.as_str() {
        "outbox" => Some(TargetKind::Outbox),
        "http" => http(&who, &raw, errs).map(TargetKind::Http),
        other => {
            errs.push(format!(
                "{who}: unknown kind '{other}' (expected \"outbox\" or \"http\")"
            ));
            None
        }
    };
    if raw.max_attempts == 0 {
        errs.push(format!("{who}: max_attempts must be at least 1"));
    }
    let retry = RetryPolicy {
        max_attempts: raw.max_attempts,
        max_age: Duration::from_secs(raw.max_age_hours.saturating_mul(3600)),
        backoff_base: Duration::from_millis(raw.backoff_base_ms.max(1)),
        backoff_cap: Duration::from_secs(raw.backoff_cap_seconds.max(1)),
    };
    let reconcile = reconcile(&who, &raw, &entities, errs);
    let kind = kind?;
    if !matches!(kind, TargetKind::Http(_)) && has_reconcile_settings(&raw) {
        errs.push(format!(
            "{who}: reconcile_* settings need a target of kind \"http\" (the outbox has nothing to list)"
        ));
    }
    Some(Target {
        name,
        kind,
        entities,
        owned,
        retry,
        reconcile,
    })
}

fn has_reconcile_settings(raw: &RawTarget) -> bool {
    raw.reconcile_scope.is_some()
        || raw.reconcile_entities.is_some()
        || raw.reconcile_every_hours.is_some()
        || raw.reconcile_page_size != default_page_size()
}

/// The `reconcile_*` settings: patterns that compile, entities the target takes.
fn reconcile(who: &str, raw: &RawTarget, entities: &[Entity], errs: &mut Vec<String>) -> Reconcile {
    let taken = |name: &str, errs: &mut Vec<String>| {
        let e = entity(who, name, errs)?;
        if !entities.contains(&e) {
            errs.push(format!(
                "{who}: reconcile setting for '{name}', which the target does not take"
            ));
        }
        Some(e)
    };
    let mut scope = BTreeMap::new();
    match &raw.reconcile_scope {
        None => {}
        Some(RawScope::All(p)) => {
            scope.extend(entities.iter().map(|e| (*e, p.clone())));
        }
        Some(RawScope::PerEntity(m)) => {
            for (name, p) in m {
                if let Some(e) = taken(name, errs) {
                    scope.insert(e, p.clone());
                }
            }
        }
    }
    for p in scope.values().collect::<std::collections::BTreeSet<_>>() {
        if let Err(e) = regex::Regex::new(p) {
            errs.push(format!(
                "{who}: reconcile_scope '{p}' is not a valid regex: {e}"
            ));
        }
    }
    let list = match &raw.reconcile_entities {
        None => entities.to_vec(),
        Some(names) => names.iter().filter_map(|n| taken(n, errs)).collect(),
    };
    if !(1..=10_000).contains(&raw.reconcile_page_size) {
        errs.push(format!(
            "{who}: reconcile_page_size must be between 1 and 10000"
        ));
    }
    if raw.reconcile_every_hours == Some(0) {
        errs.push(format!(
            "{who}: reconcile_every_hours must be at least 1 (leave it out to reconcile only on demand)"
        ));
    }
    Reconcile {
        scope,
        entities: list,
        page_size: raw.reconcile_page_size.clamp(1, 10_000),
        every: raw
            .reconcile_every_hours
            .filter(|h| *h > 0)
            .map(|h| Duration::from_secs(u64::from(h) * 3600)),
    }
}

fn entity(who: &str, name: &str, errs: &mut Vec<String>) -> Option<Entity> {
    let e = Entity::parse(name);
    if e.is_none() {
        let known: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
        errs.push(format!(
            "{who}: unknown entity '{name}' (known: {})",
            known.join(", ")
        ));
    }
    e
}

fn owned_fields(
    who: &str,
    raw: &BTreeMap<String, Vec<String>>,
    entities: &[Entity],
    errs: &mut Vec<String>,
) -> BTreeMap<Entity, Vec<String>> {
    let mut out = BTreeMap::new();
    for (name, fields) in raw {
        let Some(e) = entity(who, name, errs) else {
            continue;
        };
        if !entities.contains(&e) {
            errs.push(format!(
                "{who}: owned fields for '{name}', which the target does not take"
            ));
        }
        let known = crate::records::fields_of(e);
        for f in fields {
            if !known.contains(&f.as_str()) {
                let hint = crate::format::keys::did_you_mean(f, &known)
                    .map(|k| format!("; did you mean '{k}'?"))
                    .unwrap_or_default();
                errs.push(format!(
                    "{who}: owned field '{f}' is not a field of {name}{hint}"
                ));
            }
        }
        out.insert(e, fields.clone());
    }
    out
}

/// Whether `s` can name an environment variable (letters, digits, `_`).
pub(super) fn is_env_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn http(who: &str, raw: &RawTarget, errs: &mut Vec<String>) -> Option<HttpTarget> {
    let base_url = raw.base_url.clone().unwrap_or_default();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        errs.push(format!(
            "{who}: base_url must be an http:// or https:// URL (got '{base_url}')"
        ));
    }
    let token_env = raw.token_env.clone().unwrap_or_default();
    if !is_env_name(&token_env) {
        errs.push(format!(
            "{who}: token_env must name the environment variable that holds the token (the token itself never goes into this file)"
        ));
    }
    if raw.rate_limit_per_minute == Some(0) {
        errs.push(format!(
            "{who}: rate_limit_per_minute must be at least 1 (leave it out for no limit)"
        ));
    }
    if raw.timeout_seconds == 0 {
        errs.push(format!("{who}: timeout_seconds must be at least 1"));
    }
    if !(1..=64).contains(&raw.concurrency) {
        errs.push(format!("{who}: concurrency must be between 1 and 64"));
    }
    let mut endpoints = BTreeMap::new();
    for (name, ep) in &raw.endpoints {
        if let Some(e) = entity(who, name, errs) {
            endpoints.insert(e, ep.clone());
        }
    }
    Some(HttpTarget {
        base_url: base_url.trim_end_matches('/').to_string(),
        token_env,
        rate_limit_per_minute: raw.rate_limit_per_minute,
        timeout: Duration::from_secs(raw.timeout_seconds.max(1)),
        concurrency: raw.concurrency.clamp(1, 64),
        endpoints,
    })
}

#[cfg(test)]
#[path = "targets_tests.rs"]
mod tests;
