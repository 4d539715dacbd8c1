//! `kv` (small JSON state, including the registry version counter) and
//! `leader_leases`.

use serde_json::Value;
use sluice_core::Millis;
use sqlx::SqliteConnection;

use crate::codec::{json, parse_json};
use crate::error::Result;

/// The kv key of the registry version counter.
pub(crate) const REGISTRY_VERSION: &str = "sluice.registry_version";

pub(crate) async fn get(conn: &mut SqliteConnection, key: &str) -> Result<Option<Value>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT value FROM kv WHERE key = ?1")
        .bind(key)
        .fetch_optional(conn)
        .await?;
    row.map(|(v,)| parse_json(&v)).transpose()
}

pub(crate) async fn put(conn: &mut SqliteConnection, key: &str, value: &Value) -> Result<()> {
    sqlx::query(
        "INSERT INTO kv (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(json(value))
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds one to a counter (starting from 0).
pub(crate) async fn bump(conn: &mut SqliteConnection, key: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO kv (key, value) VALUES (?1, '1') \
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
    )
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes or renews the named lease; true when `owner` holds it afterwards.
pub(crate) async fn try_lead(
    conn: &mut SqliteConnection,
    name: &str,
    owner: &str,
    ttl_ms: i64,
    now: Millis,
) -> Result<bool> {
    let held: Option<(String,)> = sqlx::query_as(
        "INSERT INTO leader_leases (name, owner, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
         expires_at = excluded.expires_at \
         WHERE leader_leases.owner = excluded.owner OR leader_leases.expires_at <= ?4 \
         RETURNING owner",
    )
    .bind(name)
    .bind(owner)
    .bind(now.plus_ms(ttl_ms).0)
    .bind(now.0)
    .fetch_optional(conn)
    .await?;
    Ok(held.is_some())
}

pub(crate) async fn resign(conn: &mut SqliteConnection, name: &str, owner: &str) -> Result<()> {
    sqlx::query("DELETE FROM leader_leases WHERE name = ?1 AND owner = ?2")
        .bind(name)
        .bind(owner)
        .execute(conn)
        .await?;
    Ok(())
}
