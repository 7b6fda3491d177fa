//! `[ledger]`: a ledger several machines share (PostgreSQL) instead of the embedded SQLite
//! file `paths.ledger`, and where its password comes from. Checked with the rest of the
//! config: a password written into the URL is refused, since secrets never go in files.

use std::path::Path;

use serde::Deserialize;

use crate::format::Diagnostics;

/// `[ledger]`: where the ledger lives when it is not the embedded SQLite file of
/// `paths.ledger`: a PostgreSQL database several machines share.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// `postgres://user@host:port/database`, without a password.
    pub url: Option<String>,
    /// The environment variable that holds the database password.
    pub password_env: Option<String>,
}

/// The PostgreSQL ledger `[ledger]` names, if any, with its password read from the
/// environment. A password written into the URL is refused: secrets never go in files.
pub(super) fn ledger_location(
    raw: &LedgerConfig,
    file: &Path,
    text: &str,
    diags: &mut Diagnostics,
) -> Option<crate::ledger::Location> {
    let line = |key: &str| super::key_line(text, key);
    let url = raw.url.as_deref()?;
    let mut ok = true;
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        diags.error(
            file,
            line("url"),
            "ledger.url must be a postgres://user@host:port/database URL",
        );
        return None;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(user, _)| user.contains(':'));
    let in_query = query.split('&').any(|p| p.starts_with("password="));
    if in_userinfo || in_query {
        diags.error(
            file,
            line("url"),
            "ledger.url holds a password; name the environment variable that holds it in ledger.password_env instead (secrets never go into this file)",
        );
        ok = false;
    }
    let password = match raw.password_env.as_deref() {
        None => None,
        Some(var) if super::targets::is_env_name(var) => std::env::var(var).ok(),
        Some(_) => {
            diags.error(
                file,
                line("password_env"),
                "ledger.password_env must name the environment variable that holds the password",
            );
            ok = false;
            None
        }
    };
    ok.then(|| crate::ledger::Location::Postgres {
        url: url.to_owned(),
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, env: Option<&str>) -> (Option<crate::ledger::Location>, String) {
        let raw = LedgerConfig {
            url: Some(url.into()),
            password_env: env.map(Into::into),
        };
        let mut d = Diagnostics::default();
        let at = ledger_location(&raw, Path::new("t.toml"), "", &mut d);
        let errors = d.errors.iter().map(|e| e.to_string()).collect();
        (at, errors)
    }

    #[test]
    fn a_password_in_the_url_a_bad_scheme_or_a_bad_variable_name_is_refused() {
        let (at, errors) = check("postgres://u:pw-Xy7@db/l", None);
        assert!(
            at.is_none() && errors.contains("holds a password"),
            "{errors}"
        );
        assert!(!errors.contains("pw-Xy7"), "the password is not repeated");
        let (at, errors) = check("postgres://u@db/l?sslmode=disable&password=pw-Xy7", None);
        assert!(
            at.is_none() && errors.contains("holds a password"),
            "{errors}"
        );
        let (at, errors) = check("mysql://u@db/l", None);
        assert!(at.is_none() && errors.contains("postgres://"), "{errors}");
        let (at, errors) = check("postgres://u@db/l", Some("NOT-A-NAME"));
        assert!(at.is_none() && errors.contains("password_env"), "{errors}");
    }

    #[test]
    fn the_password_comes_from_the_named_variable() {
        std::env::set_var("TALLYMAN_TEST_LEDGER_PW", "from-env");
        let (at, errors) = check(
            "postgresql://u@db:5433/l?connect_timeout=5",
            Some("TALLYMAN_TEST_LEDGER_PW"),
        );
        assert!(errors.is_empty(), "{errors}");
        match at {
            Some(crate::ledger::Location::Postgres { url, password }) => {
                assert_eq!(url, "postgresql://u@db:5433/l?connect_timeout=5");
                assert_eq!(password.as_deref(), Some("from-env"));
            }
            other => panic!("{other:?}"),
        }
    }
}
