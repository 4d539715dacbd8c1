//! `leader_leases`: named leases for singletons (cron ticks, rescuer, pruning).

use sluice_core::Millis;
use sluice_store::Result;
use sqlx::PgConnection;

use crate::error::SqlxResultExt;

/// Takes the lease when free or expired, or renews it for its owner; true when
/// `owner` holds it afterwards.
pub(crate) async fn try_lead(
    conn: &mut PgConnection,
    name: &str,
    owner: &str,
    ttl_ms: i64,
    now: Millis,
) -> Result<bool> {
    let holder: Option<String> = sqlx::query_scalar(
        "INSERT INTO leader_leases (name, owner, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
         WHERE leader_leases.owner = EXCLUDED.owner OR leader_leases.expires_at <= $4
         RETURNING owner",
    )
    .bind(name)
    .bind(owner)
    .bind(now.0 + ttl_ms)
    .bind(now.0)
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    Ok(holder.is_some())
}

/// Gives up the lease if `owner` holds it.
pub(crate) async fn resign(conn: &mut PgConnection, name: &str, owner: &str) -> Result<()> {
    sqlx::query("DELETE FROM leader_leases WHERE name = $1 AND owner = $2")
        .bind(name)
        .bind(owner)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}
