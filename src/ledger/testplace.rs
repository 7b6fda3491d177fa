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
