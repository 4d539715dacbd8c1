//! Wiring: open the store, start the broker, scheduler and executor, serve the API,
//! and shut down gracefully on SIGINT/SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use sluice_store::DynStore;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, Database, Mode};

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
            let location = path.to_string_lossy().into_owned();
            let store = sluice_store_sqlite::SqliteStore::open(
                sluice_store_sqlite::SqliteOptions::new(location),
            )
            .await
            .with_context(|| format!("cannot open the SQLite database at {}", path.display()))?;
            tracing::info!(path = %path.display(), "store: sqlite");
            Arc::new(store)
        }
        Database::Postgres(url) => {
            let store = sluice_store_postgres::PostgresStore::connect(
                sluice_store_postgres::PostgresOptions {
                    url,
                    max_connections: 32,
                    schema: None,
                },
            )
            .await
            .context(
                "cannot connect to Postgres: check --database-url and that the server is up",
            )?;
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

fn signing_keys(config: &Config) -> anyhow::Result<Vec<sluice_protocol::SigningKey>> {
    config
        .signing_key
        .iter()
        .chain(&config.signing_key_fallback)
        .map(|k| {
            sluice_protocol::SigningKey::new(k)
                .map_err(|e| anyhow::anyhow!("invalid signing key: {e}"))
        })
        .collect()
}

fn node_id(config: &Config) -> String {
    config.node_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "node".into());
        format!("{host}-{}", std::process::id())
    })
}

/// Runs the server until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    store.ping().await.context("the store does not answer")?;
    let keys = signing_keys(&config)?;

    let broker =
        sluice_broker::Broker::start(store.clone(), sluice_broker::BrokerOptions::default())
            .await
            .context("cannot start the broker")?;

    let executor = sluice_executor::Executor::new(
        sluice_executor::ExecutorOptions {
            mode: config.mode,
            signing_key: keys.first().cloned(),
            signing_key_fallback: keys.get(1).cloned(),
            env: match config.mode {
                Mode::Dev => "dev".into(),
                Mode::Start => "production".into(),
            },
            request_timeout: config.call_timeout()?,
            checkpointing: config.checkpointing,
            ..Default::default()
        },
        store.clone(),
        Arc::new(broker.clone()),
    )
    .context("cannot start the executor")?;
    let lease = config.lease()?;
    let scheduler = sluice_scheduler::Scheduler::start(
        sluice_scheduler::SchedulerOptions {
            node_id: node_id(&config),
            concurrency: config.concurrency,
            lease,
            heartbeat_every: lease / 3,
            rescue_every: (lease / 6).max(std::time::Duration::from_secs(1)),
            committers: match store.backend() {
                sluice_store::Backend::Sqlite => 1,
                sluice_store::Backend::Postgres => 2,
            },
            ..Default::default()
        },
        store.clone(),
        Arc::new(executor.clone()),
    )
    .await
    .context("cannot start the scheduler")?;

    let listener = tokio::net::TcpListener::bind(config.listen_addr())
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: is another server using the port? pass --port",
                config.listen_addr()
            )
        })?;
    let local = listener.local_addr()?;

    let api_options = sluice_api::ApiOptions {
        mode: config.mode,
        event_keys: config.event_keys.clone(),
        signing_keys: keys.clone(),
        limits: sluice_api::Limits {
            max_event_bytes: config.max_event_bytes,
            max_request_bytes: config.max_request_bytes,
            max_events: config.max_events_per_request,
            ..Default::default()
        },
        dashboard_token: config.dashboard_token.clone(),
    };
    let syncer = sluice_broker::AppSyncer::start(
        store.clone(),
        broker.clone(),
        sluice_broker::SyncOptions {
            urls: config.apps.clone(),
            server_kind: match config.mode {
                Mode::Dev => "dev".into(),
                Mode::Start => "cloud".into(),
            },
            ..Default::default()
        },
    )
    .context("cannot start the app syncer")?;
    let state = sluice_api::AppState::new(store.clone(), broker.clone(), api_options)
        .with_syncer(syncer)
        .with_executor(executor.clone());
    let app = sluice_api::router(state);

    tracing::info!(addr = %local, mode = ?config.mode, "sluice listening");
    // Stop taking requests on a signal, then stop claiming and finish (or release)
    // in-flight calls before exiting.
    axum_serve(listener, app).await?;
    scheduler.shutdown().await;
    tracing::info!("sluice stopped");
    Ok(())
}

async fn axum_serve(
    listener: tokio::net::TcpListener,
    app: sluice_api::HttpRouter,
) -> anyhow::Result<()> {
    sluice_api::serve(listener, app, shutdown_signal())
        .await
        .context("the HTTP server failed")
}
