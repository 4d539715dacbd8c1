//! `kv`: small key/value state.

use serde_json::Value;
use sluice_store::Result;
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::error::SqlxResultExt;

pub(crate) async fn get(conn: &mut PgConnection, key: &str) -> Result<Option<Value>> {
    sqlx::query_scalar("SELECT value FROM kv WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .db()
}

pub(crate) async fn put(conn: &mut PgConnection, key: &str, value: &Value) -> Result<()> {
    sqlx::query(
        "INSERT INTO kv (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    )
    .bind(key)
    .bind(Json(value))
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}
