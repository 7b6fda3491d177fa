//! The values the ledger binds and reads, one shape for both databases: SQLite's five
//! storage classes. Every Rust type the ledger stores converts to and from them, so no
//! ledger module names a driver's types.

/// A value bound to a statement or read from a row, borrowed where it can be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A Rust value the ledger binds as a statement parameter.
pub trait ToSql {
    fn to_arg(&self) -> Value<'_>;
}

macro_rules! int_to_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_arg(&self) -> Value<'_> {
                Value::Int(*self as i64)
            }
        }
    )*};
}
int_to_sql!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

impl ToSql for bool {
    fn to_arg(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl ToSql for f64 {
    fn to_arg(&self) -> Value<'_> {
        Value::Real(*self)
    }
}

impl ToSql for f32 {
    fn to_arg(&self) -> Value<'_> {
        Value::Real(f64::from(*self))
    }
}

impl ToSql for str {
    fn to_arg(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToSql for String {
    fn to_arg(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToSql for [u8] {
    fn to_arg(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl ToSql for Vec<u8> {
    fn to_arg(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_arg(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_arg(),
            None => Value::Null,
        }
    }
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_arg(&self) -> Value<'_> {
        (**self).to_arg()
    }
}

impl<T: ToSql + ?Sized> ToSql for Box<T> {
    fn to_arg(&self) -> Value<'_> {
        (**self).to_arg()
    }
}

impl ToSql for Value<'_> {
    fn to_arg(&self) -> Value<'_> {
        *self
    }
}

/// A Rust value read from a column. The conversions are SQLite's (an integer is not a
/// real unless asked for one), so both databases answer the ledger alike.
pub trait FromSql: Sized {
    fn from_value(v: Value<'_>) -> Result<Self, String>;
}

fn kind(v: &Value<'_>) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

fn wrong<T>(v: &Value<'_>, want: &str) -> Result<T, String> {
    Err(format!("{} where {want} was expected", kind(v)))
}

impl FromSql for i64 {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(i),
            other => wrong(&other, "an integer"),
        }
    }
}

macro_rules! int_from_sql {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn from_value(v: Value<'_>) -> Result<Self, String> {
                let i = i64::from_value(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
int_from_sql!(i32, u32, u64, usize, u16, i16, u8);

impl FromSql for bool {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}

impl FromSql for f64 {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(i as f64),
            Value::Real(f) => Ok(f),
            other => wrong(&other, "a number"),
        }
    }
}

impl FromSql for String {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.to_owned()),
            other => wrong(&other, "text"),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.to_vec()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            other => wrong(&other, "a blob"),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Which column of a row: its place or its name.
pub trait RowIndex {
    fn at(&self) -> Column<'_>;
}

#[derive(Clone, Copy)]
pub enum Column<'a> {
    Place(usize),
    Name(&'a str),
}

impl RowIndex for usize {
    fn at(&self) -> Column<'_> {
        Column::Place(*self)
    }
}

impl RowIndex for &str {
    fn at(&self) -> Column<'_> {
        Column::Name(self)
    }
}

/// Statement parameters: `params![...]`, an array, `()` or [`params_from_iter`].
pub trait Params {
    fn args(&self) -> Vec<Value<'_>>;
}

impl Params for () {
    fn args(&self) -> Vec<Value<'_>> {
        Vec::new()
    }
}

impl Params for &[&dyn ToSql] {
    fn args(&self) -> Vec<Value<'_>> {
        self.iter().map(|a| a.to_arg()).collect()
    }
}

impl Params for [&dyn ToSql; 0] {
    fn args(&self) -> Vec<Value<'_>> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn args(&self) -> Vec<Value<'_>> {
                self.iter().map(|a| a.to_arg()).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);

/// Parameters gathered from an iterator (a list built at run time).
pub struct ParamsFromIter<T>(Vec<T>);

pub fn params_from_iter<I>(iter: I) -> ParamsFromIter<I::Item>
where
    I: IntoIterator,
    I::Item: ToSql,
{
    ParamsFromIter(iter.into_iter().collect())
}

impl<T: ToSql> Params for ParamsFromIter<T> {
    fn args(&self) -> Vec<Value<'_>> {
        self.0.iter().map(|a| a.to_arg()).collect()
    }
}

/// `params![a, b, c]`: mixed parameter types, as rusqlite spells it.
#[macro_export]
macro_rules! ledger_params {
    () => {
        &[] as &[&dyn $crate::ledger::db::ToSql]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::ledger::db::ToSql),+] as &[&dyn $crate::ledger::db::ToSql]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_follow_sqlite() {
        assert_eq!(i64::from_value(Value::Int(3)), Ok(3));
        assert!(i64::from_value(Value::Real(3.0)).is_err());
        assert_eq!(f64::from_value(Value::Int(3)), Ok(3.0));
        assert_eq!(Option::<String>::from_value(Value::Null), Ok(None));
        assert_eq!(bool::from_value(Value::Int(2)), Ok(true));
        assert!(u32::from_value(Value::Int(-1)).is_err());
        assert_eq!(Some("a").to_arg(), Value::Text("a"));
        assert_eq!(None::<i64>.to_arg(), Value::Null);
    }
}
