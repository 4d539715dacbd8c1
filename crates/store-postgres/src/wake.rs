//! Wake-ups across nodes: a `LISTEN` task on the store's wake channel that tells the
//! subscriber the earliest `available_at` each committed transaction made available.

use std::time::Duration;

use sluice_core::Millis;
use sluice_store::{Result, WakeFn};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::task::JoinHandle;

use crate::error::SqlxResultExt;
use crate::queue;

/// The wake channel of a store in `schema` (stores in different schemas of one
/// database do not wake each other).
pub(crate) fn channel(schema: Option<&str>) -> String {
    match schema {
        Some(schema) => format!("sluice_wake_{schema}"),
        None => "sluice_wake".to_string(),
    }
}

/// Starts listening on `channel` with a connection of its own (not one of the store's
/// pool) and spawns the task calling `wake`. Notifications missed while the connection
/// was down are made up for by waking with the earliest due time after reconnecting.
pub(crate) async fn spawn(
    options: PgConnectOptions,
    pool: PgPool,
    channel: String,
    wake: WakeFn,
) -> Result<JoinHandle<()>> {
    let listen_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options);
    let mut listener = PgListener::connect_with(&listen_pool).await.db()?;
    listener.listen(&channel).await.db()?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(note)) => match note.payload().parse::<i64>() {
                    Ok(at) => wake(Millis(at)),
                    Err(_) => tracing::warn!("ignoring a malformed wake notification"),
                },
                // The connection dropped; the next call reconnects and listens again.
                Ok(None) => catch_up(&pool, &wake).await,
                Err(err) => {
                    tracing::warn!(error = %err, "wake listener failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    catch_up(&pool, &wake).await;
                }
            }
        }
    }))
}

/// Wakes with the earliest due time, if any (after possibly missed notifications).
async fn catch_up(pool: &PgPool, wake: &WakeFn) {
    let next = match pool.acquire().await {
        Ok(mut conn) => queue::next_due(&mut conn).await,
        Err(err) => Err(crate::error::from_sqlx(err)),
    };
    match next {
        Ok(Some(at)) => wake(at),
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "could not read the next due time"),
    }
}
