//! The PostgreSQL side of the ledger's database door. The ledger's statements are written
//! once, in SQL both databases accept; the few SQLite spellings PostgreSQL lacks are
//! rewritten here when a statement is first prepared (numbered `?1` parameters,
//! `INSERT OR IGNORE`, `BEGIN IMMEDIATE`, `AS INTEGER`), and the rest (`julianday`,
//! `json_each`) are functions the PostgreSQL schema defines. Values are bound by the type
//! the server inferred for each parameter, as SQLite's loose typing would take them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use postgres::types::{to_sql_checked, FromSql as PgFromSql, IsNull, ToSql as PgToSql, Type};
use postgres::{Client, NoTls};

use super::{Error, Result, Value};

/// The key of the transaction-scoped advisory lock every `BEGIN IMMEDIATE` takes: the
/// ledger's writers take turns, as on SQLite, so a transaction that reads then writes
/// (a key's holder, a file's attempt number) sees no other writer in between.
pub const WRITER_LOCK: i64 = 0x7a11_7a11;

/// A session with the server. A session the server or the network cut (a restart, a
/// failover, a stopped process's idle transaction ended by the server) is opened again
/// on its next use, with its settings, unless it was inside a transaction: that
/// transaction is gone, and its caller is told so (see `LedgerError::is_connection_lost`).
pub struct PgConn {
    config: postgres::Config,
    client: RefCell<Client>,
    statements: RefCell<HashMap<String, postgres::Statement>>,
    /// `SET` statements replayed on every new session.
    settings: RefCell<Vec<String>>,
    in_transaction: std::cell::Cell<bool>,
}

impl PgConn {
    pub fn connect(url: &str, password: Option<&str>) -> Result<PgConn> {
        let mut config: postgres::Config = url.parse()?;
        if let Some(p) = password {
            config.password(p);
        }
        config.application_name("tallyman");
        config.connect_timeout(std::time::Duration::from_secs(10));
        // Timestamps are written and compared as UTC text; a session in another zone would
        // shift every `julianday`.
        let settings = vec!["SET TIME ZONE 'UTC'".to_owned()];
        let client = open(&config, &settings)?;
        Ok(PgConn {
            config,
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            settings: RefCell::new(settings),
            in_transaction: Default::default(),
        })
    }

    /// Applies a `SET` to this session and every later one.
    pub fn set(&self, statement: &str) -> Result<()> {
        self.settings.borrow_mut().push(statement.to_owned());
        self.batch(statement)
    }

    /// Opens a new session if the server or the network cut this one, outside a
    /// transaction.
    fn ensure_open(&self) -> Result<()> {
        if !self.client.borrow().is_closed() || self.in_transaction.get() {
            return Ok(());
        }
        let client = open(&self.config, &self.settings.borrow())?;
        *self.client.borrow_mut() = client;
        self.statements.borrow_mut().clear();
        tracing::info!("reconnected to the PostgreSQL ledger");
        Ok(())
    }

    /// A connection URL as it may be shown: without its password.
    pub fn shown_url(url: &str) -> String {
        match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                let userinfo = &url[s + 3..at];
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{}{user}@{}", &url[..s + 3], &url[at + 1..])
            }
            _ => url.to_owned(),
        }
    }

    pub fn prepare(&self, sql: &str) -> Result<postgres::Statement> {
        self.ensure_open()?;
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let pg_sql = translate(sql);
        let s = self
            .client
            .borrow_mut()
            .prepare(&pg_sql)
            .map_err(|source| Error::PgPrepare {
                sql: pg_sql,
                source,
            })?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    pub fn batch(&self, sql: &str) -> Result<()> {
        let (sql, begins, ends) = match sql.trim() {
            "BEGIN IMMEDIATE" => (
                format!("BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"),
                true,
                false,
            ),
            "BEGIN DEFERRED" => ("BEGIN".to_owned(), true, false),
            end @ ("COMMIT" | "ROLLBACK") => (end.to_owned(), false, true),
            other => (translate(other), false, false),
        };
        if ends {
            self.in_transaction.set(false);
            if sql == "ROLLBACK" && self.client.borrow().is_closed() {
                // The server ended the session, and the transaction with it.
                return Ok(());
            }
        } else {
            self.ensure_open()?;
        }
        let r = self.client.borrow_mut().batch_execute(&sql);
        if begins && r.is_ok() {
            self.in_transaction.set(true);
        }
        Ok(r?)
    }

    /// Runs a script as written (the PostgreSQL schema).
    pub fn script(&self, sql: &str) -> Result<()> {
        self.ensure_open()?;
        Ok(self.client.borrow_mut().batch_execute(sql)?)
    }

    pub fn execute(&self, s: &postgres::Statement, args: &[Value<'_>]) -> Result<usize> {
        let refs = refs(args);
        Ok(self.client.borrow_mut().execute(s, &refs)? as usize)
    }

    pub fn query(&self, s: &postgres::Statement, args: &[Value<'_>]) -> Result<Vec<postgres::Row>> {
        let refs = refs(args);
        Ok(self.client.borrow_mut().query(s, &refs)?)
    }
}

fn open(config: &postgres::Config, settings: &[String]) -> Result<Client> {
    let mut client = config.connect(NoTls)?;
    for s in settings {
        client.batch_execute(s)?;
    }
    Ok(client)
}

/// Whether an error means the session is gone (server restarted or unreachable, session
/// ended by the server), as opposed to a refused statement.
pub fn is_connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // 08: connection exceptions; 57P0x: the server shutting down, restarting or
        // refusing connections; 25P03: an idle transaction ended by the server.
        Some(c) => {
            let c = c.code();
            c.starts_with("08") || c.starts_with("57P") || c == "25P03"
        }
        // No SQLSTATE: lost only if the socket failed (refused, reset, timed out); a value
        // that cannot be bound or read is the statement's problem, not the session's.
        None => {
            let mut cause = e.source();
            while let Some(c) = cause {
                if c.downcast_ref::<std::io::Error>().is_some() {
                    return true;
                }
                cause = c.source();
            }
            false
        }
    }
}

fn refs<'a>(args: &'a [Value<'a>]) -> Vec<&'a (dyn PgToSql + Sync)> {
    args.iter().map(|a| a as &(dyn PgToSql + Sync)).collect()
}

/// The server's own words for an error (its SQLSTATE and message), not the driver's
/// "db error".
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("PostgreSQL {}: {}", d.code().code(), d.message()),
        None => format!("PostgreSQL: {e}"),
    }
}

/// Rewrites a statement written for both databases where PostgreSQL spells it otherwise.
pub fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    let mut next_bare = 1;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                out.push('$');
                if chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    while let Some(d) = chars.next_if(|d| d.is_ascii_digit()) {
                        out.push(d);
                    }
                } else {
                    out.push_str(&next_bare.to_string());
                    next_bare += 1;
                }
            }
            _ => out.push(c),
        }
    }
    let mut out = out
        .replace(" AS INTEGER)", " AS BIGINT)")
        .replace(" WITHOUT ROWID", "");
    // SQLite's JSON functions by names of their own: PostgreSQL's built-in `json_each`
    // and `json_array_length` take `json`, and would claim text parameters as json.
    for f in ["json_each(", "json_extract(", "json_array_length("] {
        out = replace_word(&out, f, &format!("tm_{f}"));
    }
    out = replace_word(&out, "temp.", "pg_temp.");
    if let Some(at) = out.find("INSERT OR IGNORE INTO") {
        out.replace_range(at..at + "INSERT OR IGNORE INTO".len(), "INSERT INTO");
        match out.find(" RETURNING ") {
            Some(r) => out.insert_str(r, " ON CONFLICT DO NOTHING"),
            None => out.push_str(" ON CONFLICT DO NOTHING"),
        }
    }
    out
}

/// Replaces `from` where it starts a word (not inside a longer name).
fn replace_word(sql: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().next_back();
        let starts_word = before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        out.push_str(&rest[..at]);
        out.push_str(if starts_word { to } else { from });
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

/// Reads column `n` as one of the ledger's values.
pub fn value(row: &postgres::Row, n: usize) -> Result<Value<'_>> {
    let ty = row
        .columns()
        .get(n)
        .ok_or_else(|| Error::Type {
            column: n.to_string(),
            problem: "no such column".into(),
        })?
        .type_()
        .clone();
    let int = |i: Option<i64>| i.map_or(Value::Null, Value::Int);
    Ok(match ty {
        Type::BOOL => int(row.try_get::<_, Option<bool>>(n)?.map(i64::from)),
        Type::INT2 => int(row.try_get::<_, Option<i16>>(n)?.map(i64::from)),
        Type::INT4 => int(row.try_get::<_, Option<i32>>(n)?.map(i64::from)),
        Type::INT8 => int(row.try_get::<_, Option<i64>>(n)?),
        Type::OID => int(row.try_get::<_, Option<u32>>(n)?.map(i64::from)),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(n)?
            .map_or(Value::Null, |f| Value::Real(f64::from(f))),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(n)?
            .map_or(Value::Null, Value::Real),
        Type::BYTEA => row
            .try_get::<_, Option<&[u8]>>(n)?
            .map_or(Value::Null, Value::Blob),
        Type::NUMERIC => row
            .try_get::<_, Option<Numeric>>(n)?
            .map_or(Value::Null, |x| x.0),
        _ => row
            .try_get::<_, Option<Raw<'_>>>(n)?
            .map_or(Value::Null, |r| Value::Text(r.0)),
    })
}

/// A column read as its text (text, varchar, name, json, jsonb, ...).
struct Raw<'a>(&'a str);

impl<'a> PgFromSql<'a> for Raw<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        // jsonb's binary form is a version byte before the text.
        let raw = match *ty {
            Type::JSONB => raw.get(1..).unwrap_or_default(),
            _ => raw,
        };
        Ok(Raw(std::str::from_utf8(raw)?))
    }
    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::JSON
                | Type::JSONB
                | Type::UNKNOWN
        )
    }
}

/// A `numeric` (what PostgreSQL's `SUM` of integers gives) read as an integer when it is
/// whole, as SQLite would give it.
struct Numeric(Value<'static>);

impl PgFromSql<'_> for Numeric {
    fn from_sql(
        _: &Type,
        raw: &[u8],
    ) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        let word = |i: usize| -> std::result::Result<i16, Box<dyn StdError + Sync + Send>> {
            Ok(i16::from_be_bytes(
                raw.get(i..i + 2).ok_or("short numeric")?.try_into()?,
            ))
        };
        let (ndigits, weight, sign, scale) = (word(0)?, word(2)?, word(4)? as u16, word(6)?);
        if sign == 0xC000 {
            return Ok(Numeric(Value::Real(f64::NAN)));
        }
        let mut x = 0f64;
        let mut whole = 0i128;
        for d in 0..ndigits as usize {
            let digit = word(8 + 2 * d)?;
            let power = i32::from(weight) - d as i32;
            x += f64::from(digit) * 10000f64.powi(power);
            if power >= 0 {
                whole = whole * 10000 + i128::from(digit);
            }
        }
        let trailing = (i32::from(weight) + 1 - i32::from(ndigits)).max(0);
        let negative = sign == 0x4000;
        if scale == 0 {
            let mut w = whole * 10000i128.pow(trailing as u32);
            if negative {
                w = -w;
            }
            if let Ok(i) = i64::try_from(w) {
                return Ok(Numeric(Value::Int(i)));
            }
        }
        Ok(Numeric(Value::Real(if negative { -x } else { x })))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

impl PgToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::FLOAT8 => (i as f64).to_sql(ty, out),
                Type::FLOAT4 => (i as f32).to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::NUMERIC => Err("an integer bound to a numeric parameter: cast it".into()),
                _ => text(&i.to_string(), ty, out),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (f as f32).to_sql(ty, out),
                Type::INT8 if f.fract() == 0.0 => (f as i64).to_sql(ty, out),
                _ => text(&f.to_string(), ty, out),
            },
            Value::Text(s) => match *ty {
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                Type::INT4 => s.parse::<i32>()?.to_sql(ty, out),
                Type::FLOAT8 => s.parse::<f64>()?.to_sql(ty, out),
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                _ => text(s, ty, out),
            },
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn text(
    s: &str,
    ty: &Type,
    out: &mut BytesMut,
) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
    if *ty == Type::JSONB {
        out.put_u8(1);
    }
    out.put_slice(s.as_bytes());
    Ok(IsNull::No)
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn statements_are_rewritten_where_postgres_spells_them_otherwise() {
        assert_eq!(
            translate("SELECT a FROM t WHERE b=?1 AND c='?x' AND d=?12"),
            "SELECT a FROM t WHERE b=$1 AND c='?x' AND d=$12"
        );
        assert_eq!(translate("VALUES (?, ?)"), "VALUES ($1, $2)");
        assert_eq!(
            translate("INSERT OR IGNORE INTO k(a) VALUES (?1)"),
            "INSERT INTO k(a) VALUES ($1) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            translate("INSERT OR IGNORE INTO k(a) VALUES (?1) RETURNING id"),
            "INSERT INTO k(a) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id"
        );
        assert_eq!(
            translate("SELECT CAST(x * 86400 AS INTEGER) FROM t"),
            "SELECT CAST(x * 86400 AS BIGINT) FROM t"
        );
        assert_eq!(
            translate("SELECT value FROM json_each(?1) WHERE my_json_each(a) AND json_extract(v, '$[1]')"),
            "SELECT value FROM tm_json_each($1) WHERE my_json_each(a) AND tm_json_extract(v, '$[1]')"
        );
        assert_eq!(
            translate(
                "CREATE TEMP TABLE t(a TEXT) WITHOUT ROWID; DELETE FROM temp.t; SELECT attemp.x"
            ),
            "CREATE TEMP TABLE t(a TEXT); DELETE FROM pg_temp.t; SELECT attemp.x"
        );
    }
}
