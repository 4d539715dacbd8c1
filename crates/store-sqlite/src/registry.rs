//! `apps` and `functions`: syncs, sync errors and lookups.

use std::collections::HashMap;

use sluice_core::{AppId, FunctionId, Millis};
use sluice_store::{App, AppSync, Function, Synced, Trigger};
use sqlx::SqliteConnection;

use crate::codec::{json, parse, parse_json};
use crate::error::{Error, Result};
use crate::kv;

macro_rules! app_select {
    () => {
        "SELECT a.id, a.name, a.url, a.sdk, a.framework, a.last_synced_at, a.sync_error, \
         a.created_at, a.updated_at, \
         (SELECT COUNT(*) FROM functions f WHERE f.app_id = a.id) AS function_count \
         FROM apps a"
    };
}

macro_rules! function_select {
    () => {
        "SELECT id, app_id, slug, name, triggers, config, created_at, updated_at FROM functions"
    };
}

#[derive(sqlx::FromRow)]
struct AppRow {
    id: String,
    name: String,
    url: String,
    sdk: Option<String>,
    framework: Option<String>,
    last_synced_at: Option<i64>,
    sync_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    function_count: i64,
}

impl TryFrom<AppRow> for App {
    type Error = Error;
    fn try_from(r: AppRow) -> Result<Self> {
        Ok(App {
            id: parse("app id", &r.id)?,
            name: r.name,
            url: r.url,
            sdk: r.sdk,
            framework: r.framework,
            function_count: r.function_count,
            last_synced_at: r.last_synced_at.map(Millis),
            sync_error: r.sync_error,
            created_at: Millis(r.created_at),
            updated_at: Millis(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct FunctionRow {
    id: String,
    app_id: String,
    slug: String,
    name: String,
    triggers: String,
    config: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<FunctionRow> for Function {
    type Error = Error;
    fn try_from(r: FunctionRow) -> Result<Self> {
        Ok(Function {
            id: parse("function id", &r.id)?,
            app_id: parse("app id", &r.app_id)?,
            slug: r.slug,
            name: r.name,
            triggers: serde_json::from_str(&r.triggers)?,
            config: parse_json(&r.config)?,
            created_at: Millis(r.created_at),
            updated_at: Millis(r.updated_at),
        })
    }
}

fn functions(rows: Vec<FunctionRow>) -> Result<Vec<Function>> {
    rows.into_iter().map(Function::try_from).collect()
}

fn triggers_json(triggers: &[Trigger]) -> Result<String> {
    Ok(serde_json::to_string(triggers)?)
}

async fn app_where(conn: &mut SqliteConnection, column: &str, value: &str) -> Result<Option<App>> {
    // `column` is one of our own literals, never input.
    let row: Option<AppRow> = sqlx::query_as(&format!(
        "{} WHERE a.{column} = ?1 ORDER BY a.last_synced_at IS NULL, a.created_at LIMIT 1",
        app_select!()
    ))
    .bind(value)
    .fetch_optional(conn)
    .await?;
    row.map(App::try_from).transpose()
}

pub(crate) async fn get_app(conn: &mut SqliteConnection, id: AppId) -> Result<App> {
    app_where(conn, "id", &id.to_string())
        .await?
        .ok_or_else(|| sluice_store::Error::NotFound(format!("app {id}")).into())
}

pub(crate) async fn list_apps(conn: &mut SqliteConnection) -> Result<Vec<App>> {
    let rows: Vec<AppRow> = sqlx::query_as(concat!(app_select!(), " ORDER BY a.name"))
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(App::try_from).collect()
}

async fn app_functions(conn: &mut SqliteConnection, app: &str) -> Result<Vec<Function>> {
    let rows: Vec<FunctionRow> = sqlx::query_as(concat!(
        function_select!(),
        " WHERE app_id = ?1 ORDER BY slug"
    ))
    .bind(app)
    .fetch_all(conn)
    .await?;
    functions(rows)
}

/// Records a successful sync; see [`sluice_store::Store::sync_app`].
pub(crate) async fn sync_app(conn: &mut SqliteConnection, sync: &AppSync) -> Result<Synced> {
    let now = sync.now;
    let existing = app_where(conn, "name", &sync.name).await?;
    // A placeholder from a failed sync of this URL is merged away.
    if sync.name != sync.url {
        sqlx::query("DELETE FROM apps WHERE name = ?1 AND url = ?1 AND last_synced_at IS NULL")
            .bind(&sync.url)
            .execute(&mut *conn)
            .await?;
    }
    let (app_id, mut modified) = match &existing {
        Some(app) => (
            app.id,
            app.url != sync.url || app.sdk != sync.sdk || app.framework != sync.framework,
        ),
        None => {
            let id = AppId::new();
            sqlx::query(
                "INSERT INTO apps (id, name, url, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )
            .bind(id.to_string())
            .bind(&sync.name)
            .bind(&sync.url)
            .bind(now.0)
            .execute(&mut *conn)
            .await?;
            (id, true)
        }
    };
    let app_key = app_id.to_string();
    let before: HashMap<String, Function> = app_functions(conn, &app_key)
        .await?
        .into_iter()
        .map(|f| (f.slug.clone(), f))
        .collect();

    for def in &sync.functions {
        let triggers = triggers_json(&def.triggers)?;
        match before.get(&def.slug) {
            Some(old) => {
                if old.name != def.name || old.triggers != def.triggers || old.config != def.config
                {
                    modified = true;
                    sqlx::query(
                        "UPDATE functions SET name = ?1, triggers = ?2, config = ?3, \
                         updated_at = ?4 WHERE id = ?5",
                    )
                    .bind(&def.name)
                    .bind(triggers)
                    .bind(json(&def.config))
                    .bind(now.0)
                    .bind(old.id.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
            }
            None => {
                modified = true;
                let owner: Option<(String,)> =
                    sqlx::query_as("SELECT app_id FROM functions WHERE slug = ?1")
                        .bind(&def.slug)
                        .fetch_optional(&mut *conn)
                        .await?;
                if owner.is_some() {
                    return Err(sluice_store::Error::Conflict(format!(
                        "function {} is registered by another app; delete that app first",
                        def.slug
                    ))
                    .into());
                }
                sqlx::query(
                    "INSERT INTO functions (id, app_id, slug, name, triggers, config, \
                     created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                )
                .bind(FunctionId::new().to_string())
                .bind(&app_key)
                .bind(&def.slug)
                .bind(&def.name)
                .bind(triggers)
                .bind(json(&def.config))
                .bind(now.0)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    for (slug, old) in &before {
        if !sync.functions.iter().any(|d| &d.slug == slug) {
            modified = true;
            sqlx::query("DELETE FROM functions WHERE id = ?1")
                .bind(old.id.to_string())
                .execute(&mut *conn)
                .await?;
        }
    }
    sqlx::query(
        "UPDATE apps SET url = ?1, sdk = ?2, framework = ?3, last_synced_at = ?4, \
         sync_error = NULL, updated_at = ?4 WHERE id = ?5",
    )
    .bind(&sync.url)
    .bind(&sync.sdk)
    .bind(&sync.framework)
    .bind(now.0)
    .bind(&app_key)
    .execute(&mut *conn)
    .await?;
    if modified {
        kv::bump(conn, kv::REGISTRY_VERSION).await?;
    }
    let app = get_app(conn, app_id).await?;
    let functions = app_functions(conn, &app_key).await?;
    Ok(Synced {
        app,
        functions,
        modified,
    })
}

/// Marks the app at `url` (or a new placeholder named by it) with a sync error.
pub(crate) async fn record_sync_error(
    conn: &mut SqliteConnection,
    url: &str,
    error: &str,
    now: Millis,
) -> Result<App> {
    let id = match app_where(conn, "url", url).await? {
        Some(app) => {
            sqlx::query("UPDATE apps SET sync_error = ?1, updated_at = ?2 WHERE id = ?3")
                .bind(error)
                .bind(now.0)
                .bind(app.id.to_string())
                .execute(&mut *conn)
                .await?;
            app.id
        }
        None => {
            let id = AppId::new();
            sqlx::query(
                "INSERT INTO apps (id, name, url, sync_error, created_at, updated_at) \
                 VALUES (?1, ?2, ?2, ?3, ?4, ?4)",
            )
            .bind(id.to_string())
            .bind(url)
            .bind(error)
            .bind(now.0)
            .execute(&mut *conn)
            .await?;
            id
        }
    };
    get_app(conn, id).await
}

pub(crate) async fn delete_app(conn: &mut SqliteConnection, id: AppId) -> Result<()> {
    let done = sqlx::query("DELETE FROM apps WHERE id = ?1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(sluice_store::Error::NotFound(format!("app {id}")).into());
    }
    kv::bump(conn, kv::REGISTRY_VERSION).await
}

pub(crate) async fn list_functions(conn: &mut SqliteConnection) -> Result<Vec<Function>> {
    let rows: Vec<FunctionRow> = sqlx::query_as(concat!(function_select!(), " ORDER BY slug"))
        .fetch_all(conn)
        .await?;
    functions(rows)
}

pub(crate) async fn get_function(conn: &mut SqliteConnection, id: FunctionId) -> Result<Function> {
    let row: Option<FunctionRow> = sqlx::query_as(concat!(function_select!(), " WHERE id = ?1"))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.map(Function::try_from)
        .transpose()?
        .ok_or_else(|| sluice_store::Error::NotFound(format!("function {id}")).into())
}

pub(crate) async fn get_function_by_slug(
    conn: &mut SqliteConnection,
    slug: &str,
) -> Result<Function> {
    let row: Option<FunctionRow> = sqlx::query_as(concat!(function_select!(), " WHERE slug = ?1"))
        .bind(slug)
        .fetch_optional(conn)
        .await?;
    row.map(Function::try_from)
        .transpose()?
        .ok_or_else(|| sluice_store::Error::NotFound(format!("function {slug}")).into())
}

pub(crate) async fn version(conn: &mut SqliteConnection) -> Result<i64> {
    Ok(kv::get(conn, kv::REGISTRY_VERSION)
        .await?
        .and_then(|v| v.as_i64())
        .unwrap_or(0))
}
