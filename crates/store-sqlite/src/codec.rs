//! Text encodings of domain values in SQLite columns (JSON as TEXT, ids as their
//! canonical text, booleans as 0/1).

use std::fmt::Display;
use std::str::FromStr;

use serde_json::Value;
use sqlx::{Encode, QueryBuilder, Sqlite, Type};

use crate::error::{Error, Result};

/// Rows (or list items) per multi-row statement: at most 12 binds a row, far below
/// SQLite's bind limit.
pub(crate) const CHUNK: usize = 500;

/// Appends a parenthesised list of bound values, `(?, ?, …)`, for `IN`.
pub(crate) fn push_in<'a, T>(qb: &mut QueryBuilder<'a, Sqlite>, items: impl IntoIterator<Item = T>)
where
    T: 'a + Encode<'a, Sqlite> + Type<Sqlite>,
{
    qb.push("(");
    let mut list = qb.separated(", ");
    for item in items {
        list.push_bind(item);
    }
    list.push_unseparated(")");
}

/// JSON as stored.
pub(crate) fn json(value: &Value) -> String {
    value.to_string()
}

/// Optional JSON as stored: `None` is SQL NULL, `Some(null)` is the text `null`.
pub(crate) fn opt_json(value: Option<&Value>) -> Option<String> {
    value.map(json)
}

pub(crate) fn parse_json(text: &str) -> Result<Value> {
    Ok(serde_json::from_str(text)?)
}

pub(crate) fn parse_opt_json(text: Option<&str>) -> Result<Option<Value>> {
    text.map(parse_json).transpose()
}

/// An id or enum from its stored text.
pub(crate) fn parse<T>(what: &str, text: &str) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    text.parse().map_err(|e| Error::decode(what, e))
}

pub(crate) fn parse_opt<T>(what: &str, text: Option<&str>) -> Result<Option<T>>
where
    T: FromStr,
    T::Err: Display,
{
    text.map(|t| parse(what, t)).transpose()
}
