//! Reading request bodies under a size limit, with errors in the API's format.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};

use crate::{Error, Result};

/// The whole body, refused with 413 when over `limit` bytes (by `Content-Length`
/// before reading, or while reading).
pub async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes> {
    let too_large = || Error::TooLarge(format!("request body is over the {limit}-byte limit"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

/// A JSON body of type `T`, read under `limit` bytes; errors are 400 `invalid_json`
/// (or 413).
pub async fn json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T> {
    let bytes = read(headers, body, limit).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid("invalid_json", format!("request body is not valid: {e}")))
}
