//! The storage conformance suite against a fresh temporary SQLite database per case.

use std::sync::Arc;

use sluice_store::DynStore;
use sluice_store_sqlite::SqliteStore;

async fn fresh() -> DynStore {
    Arc::new(
        SqliteStore::temporary()
            .await
            .expect("open a temporary sqlite store"),
    )
}

sluice_store::conformance_suite!(fresh);
