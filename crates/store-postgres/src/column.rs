//! Conversions between column values and domain values (ids stored as text, lists
//! stored as JSONB).

use std::fmt::Display;
use std::str::FromStr;

use serde_json::Value;
use sluice_store::Result;

use crate::error::corrupt;

/// Parses a text column into a domain value (ids, statuses, kinds).
pub(crate) fn parse<T>(what: &str, text: &str) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    text.parse().map_err(|e| corrupt(what, e))
}

/// Parses an optional text column.
pub(crate) fn parse_opt<T>(what: &str, text: Option<&str>) -> Result<Option<T>>
where
    T: FromStr,
    T::Err: Display,
{
    text.map(|t| parse(what, t)).transpose()
}

/// Reads a JSONB column into a typed value.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| corrupt(what, e))
}

/// Writes a typed value as a JSONB column value.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Value {
    // Domain types serialize infallibly (no maps with non-string keys).
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Text forms of ids, for `text[]` parameters.
pub(crate) fn texts<T: Display>(ids: impl IntoIterator<Item = T>) -> Vec<String> {
    ids.into_iter().map(|id| id.to_string()).collect()
}
