//! The test database: where it is, whether to skip, fresh schemas.

#![allow(dead_code)] // each test file uses part of it

use std::sync::Arc;

use sluice_store::DynStore;
use sluice_store_postgres::{PostgresOptions, PostgresStore};

/// The test database URL, or `None` (after a note) when the cases should be skipped.
/// Panics under CI when no database is configured or it cannot be reached.
pub async fn database_url() -> Option<String> {
    let ci = std::env::var_os("CI").is_some();
    let url = match std::env::var("SLUICE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if ci => panic!(
            "SLUICE_TEST_DATABASE_URL is not set under CI: start PostgreSQL with \
             `source scripts/postgres.sh start` before the tests"
        ),
        _ => {
            eprintln!("note: SLUICE_TEST_DATABASE_URL unset; skipping the PostgreSQL tests");
            return None;
        }
    };
    let reachable = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        <sqlx::PgConnection as sqlx::Connection>::connect(&url),
    )
    .await;
    match reachable {
        Ok(Ok(conn)) => {
            let _ = sqlx::Connection::close(conn).await;
            Some(url)
        }
        Ok(Err(err)) if ci => panic!("cannot reach SLUICE_TEST_DATABASE_URL under CI: {err}"),
        Err(_) if ci => panic!("timed out reaching SLUICE_TEST_DATABASE_URL under CI"),
        _ => {
            eprintln!("note: SLUICE_TEST_DATABASE_URL unreachable; skipping the PostgreSQL tests");
            None
        }
    }
}

/// A fresh, empty store in a new schema.
pub async fn fresh_store(url: String) -> DynStore {
    Arc::new(connect(url, fresh_schema()).await)
}

/// A new schema name `t_<random>`.
pub fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

/// A store in `schema` (created and migrated if new).
pub async fn connect(url: String, schema: String) -> PostgresStore {
    PostgresStore::connect(PostgresOptions {
        url,
        max_connections: 8,
        schema: Some(schema),
    })
    .await
    .expect("connect and migrate the schema")
}
