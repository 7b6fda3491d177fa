//! Where a unit test's ledger lives, so one test body runs on both backends: a SQLite
//! file in a scratch folder, or a database of its own on the test process's PostgreSQL
//! server (started on first use, see tests/common/pg.rs).

use super::{Ledger, Location};

#[path = "../../tests/common/pg.rs"]
mod pg;

pub(crate) struct Place {
    _dir: tempfile::TempDir,
    pub at: Location,
}

impl Place {
    pub fn sqlite() -> Place {
        let dir = tempfile::tempdir().unwrap();
        let at = Location::Sqlite(dir.path().join("l.sqlite"));
        Place { _dir: dir, at }
    }

    pub fn postgres() -> Place {
        Place {
            _dir: tempfile::tempdir().unwrap(),
            at: Location::Postgres {
                url: pg::fresh_database(),
                password: None,
            },
        }
    }

    /// Opens (another connection to) the ledger of this place.
    pub fn open(&self) -> Ledger {
        Ledger::open_at(self.at.clone()).unwrap()
    }
}

/// Runs each named test body (`fn name(p: Place)`) once per backend, as
/// `sqlite::name` and `postgres::name`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name($crate::ledger::testplace::Place::sqlite()) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name($crate::ledger::testplace::Place::postgres()) })*
        }
    };
}
pub(crate) use on_both;

/// The plan SQLite chose for `sql` (parameters left NULL), one step per line.
pub(crate) fn plan(l: &Ledger, sql: &str) -> String {
    let mut st = l
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    // The highest `?N` is the statement's parameter count.
    let count = sql
        .split('?')
        .skip(1)
        .filter_map(|t| {
            let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            t[..end].parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0);
    let nulls = vec![Option::<i64>::None; count];
    let steps = st
        .query_map(super::db::params_from_iter(nulls.iter()), |r| {
            r.get::<_, String>(3)
        })
        .unwrap();
    steps.map(|s| s.unwrap()).collect::<Vec<_>>().join("\n")
}
