//! `apps` and `functions`, and the registry version counter (a `kv` row).

use std::collections::HashMap;

use serde_json::Value;
use sluice_core::{AppId, FunctionId, Millis};
use sluice_store::{App, AppSync, Error, Function, Result, Synced, Trigger};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::column::{from_json, to_json};
use crate::error::SqlxResultExt;

/// The `kv` key of the registry version.
const VERSION_KEY: &str = "sluice.registry_version";

/// An `apps` row with its function count.
#[derive(sqlx::FromRow)]
struct AppRow {
    id: Uuid,
    name: String,
    url: String,
    sdk: Option<String>,
    framework: Option<String>,
    function_count: i64,
    last_synced_at: Option<i64>,
    sync_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<AppRow> for App {
    fn from(r: AppRow) -> Self {
        App {
            id: AppId(r.id),
            name: r.name,
            url: r.url,
            sdk: r.sdk,
            framework: r.framework,
            function_count: r.function_count,
            last_synced_at: r.last_synced_at.map(Millis),
            sync_error: r.sync_error,
            created_at: Millis(r.created_at),
            updated_at: Millis(r.updated_at),
        }
    }
}

const APP_COLUMNS: &str = "a.id, a.name, a.url, a.sdk, a.framework,
    (SELECT count(*) FROM functions f WHERE f.app_id = a.id) AS function_count,
    a.last_synced_at, a.sync_error, a.created_at, a.updated_at";

/// A `functions` row.
#[derive(sqlx::FromRow)]
struct FunctionRow {
    id: Uuid,
    app_id: Uuid,
    slug: String,
    name: String,
    triggers: Value,
    config: Value,
    created_at: i64,
    updated_at: i64,
}

impl FunctionRow {
    fn into_function(self) -> Result<Function> {
        Ok(Function {
            id: FunctionId(self.id),
            app_id: AppId(self.app_id),
            slug: self.slug,
            name: self.name,
            triggers: from_json::<Vec<Trigger>>("function triggers", self.triggers)?,
            config: self.config,
            created_at: Millis(self.created_at),
            updated_at: Millis(self.updated_at),
        })
    }
}

fn into_functions(rows: Vec<FunctionRow>) -> Result<Vec<Function>> {
    rows.into_iter().map(FunctionRow::into_function).collect()
}

async fn app_where(conn: &mut PgConnection, clause: &str, id: Uuid) -> Result<Option<App>> {
    let row: Option<AppRow> =
        sqlx::query_as(&format!("SELECT {APP_COLUMNS} FROM apps a WHERE {clause}"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    Ok(row.map(App::from))
}

pub(crate) async fn get_app(conn: &mut PgConnection, id: AppId) -> Result<App> {
    app_where(conn, "a.id = $1", id.0)
        .await?
        .ok_or_else(|| Error::NotFound(format!("app {id}")))
}

pub(crate) async fn list_apps(conn: &mut PgConnection) -> Result<Vec<App>> {
    let rows: Vec<AppRow> =
        sqlx::query_as(&format!("SELECT {APP_COLUMNS} FROM apps a ORDER BY a.name"))
            .fetch_all(&mut *conn)
            .await
            .db()?;
    Ok(rows.into_iter().map(App::from).collect())
}

async fn app_functions(conn: &mut PgConnection, app: Uuid) -> Result<Vec<Function>> {
    let rows: Vec<FunctionRow> =
        sqlx::query_as("SELECT * FROM functions WHERE app_id = $1 ORDER BY slug")
            .bind(app)
            .fetch_all(&mut *conn)
            .await
            .db()?;
    into_functions(rows)
}

/// Bumps the registry version.
async fn bump_version(conn: &mut PgConnection) -> Result<()> {
    sqlx::query(
        "INSERT INTO kv (key, value) VALUES ($1, '1')
         ON CONFLICT (key) DO UPDATE SET value = to_jsonb((kv.value #>> '{}')::bigint + 1)",
    )
    .bind(VERSION_KEY)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

pub(crate) async fn version(conn: &mut PgConnection) -> Result<i64> {
    let v: Option<Value> = sqlx::query_scalar("SELECT value FROM kv WHERE key = $1")
        .bind(VERSION_KEY)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    Ok(v.and_then(|v| v.as_i64()).unwrap_or(0))
}

/// Applies a successful sync (inside the caller's transaction).
pub(crate) async fn sync(conn: &mut PgConnection, sync: &AppSync) -> Result<Synced> {
    // Serialise syncs: the function set is read, compared and replaced.
    sqlx::query("LOCK TABLE apps IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await
        .db()?;
    let now = sync.now.0;
    let existing: Option<(Uuid, String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, url, sdk, framework FROM apps WHERE name = $1")
            .bind(&sync.name)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    // A placeholder from a failed sync of the same URL (named by its URL).
    let placeholder: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM apps WHERE name = $1 AND url = $1 AND name <> $2")
            .bind(&sync.url)
            .bind(&sync.name)
            .fetch_optional(&mut *conn)
            .await
            .db()?;

    let mut modified = false;
    let app_id = match (existing, placeholder) {
        (Some((id, url, sdk, framework)), placeholder) => {
            if let Some(p) = placeholder {
                sqlx::query("DELETE FROM apps WHERE id = $1")
                    .bind(p)
                    .execute(&mut *conn)
                    .await
                    .db()?;
            }
            modified |= url != sync.url || sdk != sync.sdk || framework != sync.framework;
            sqlx::query(
                "UPDATE apps SET url = $2, sdk = $3, framework = $4, last_synced_at = $5,
                                 sync_error = NULL, updated_at = $5
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&sync.url)
            .bind(&sync.sdk)
            .bind(&sync.framework)
            .bind(now)
            .execute(&mut *conn)
            .await
            .db()?;
            id
        }
        (None, Some(p)) => {
            // The placeholder becomes the app, keeping its id.
            modified = true;
            sqlx::query(
                "UPDATE apps SET name = $2, sdk = $3, framework = $4, last_synced_at = $5,
                                 sync_error = NULL, updated_at = $5
                 WHERE id = $1",
            )
            .bind(p)
            .bind(&sync.name)
            .bind(&sync.sdk)
            .bind(&sync.framework)
            .bind(now)
            .execute(&mut *conn)
            .await
            .db()?;
            p
        }
        (None, None) => {
            modified = true;
            let id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO apps (id, name, url, sdk, framework, last_synced_at, created_at,
                                   updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
            )
            .bind(id)
            .bind(&sync.name)
            .bind(&sync.url)
            .bind(&sync.sdk)
            .bind(&sync.framework)
            .bind(now)
            .execute(&mut *conn)
            .await
            .db()?;
            id
        }
    };

    // The function set: keep ids by slug, refuse slugs of other apps.
    let slugs: Vec<&str> = sync.functions.iter().map(|f| f.slug.as_str()).collect();
    let current: Vec<FunctionRow> =
        sqlx::query_as("SELECT * FROM functions WHERE app_id = $1 OR slug = ANY($2)")
            .bind(app_id)
            .bind(&slugs)
            .fetch_all(&mut *conn)
            .await
            .db()?;
    let mut by_slug: HashMap<String, FunctionRow> = HashMap::new();
    for row in current {
        if row.app_id != app_id {
            return Err(Error::Conflict(format!(
                "function {} is registered by another app",
                row.slug
            )));
        }
        by_slug.insert(row.slug.clone(), row);
    }
    let removed: Vec<Uuid> = by_slug
        .values()
        .filter(|r| !slugs.contains(&r.slug.as_str()))
        .map(|r| r.id)
        .collect();
    modified |= !removed.is_empty();
    if !removed.is_empty() {
        sqlx::query("DELETE FROM functions WHERE id = ANY($1)")
            .bind(&removed)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    let n = sync.functions.len();
    let (mut ids, mut fslugs, mut names, mut triggers, mut configs, mut created) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for f in &sync.functions {
        let triggers_json = to_json(&f.triggers);
        let (id, created_at) = match by_slug.get(&f.slug) {
            Some(row) => {
                modified |=
                    row.name != f.name || row.triggers != triggers_json || row.config != f.config;
                (row.id, row.created_at)
            }
            None => {
                modified = true;
                (Uuid::new_v4(), now)
            }
        };
        ids.push(id);
        fslugs.push(f.slug.as_str());
        names.push(f.name.as_str());
        triggers.push(Json(triggers_json));
        configs.push(Json(&f.config));
        created.push(created_at);
    }
    if n > 0 {
        sqlx::query(
            "INSERT INTO functions (id, app_id, slug, name, triggers, config, created_at,
                                    updated_at)
             SELECT id, $1, slug, name, tr, cf, ca, $8
             FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[],
                         $7::bigint[]) AS t(id, slug, name, tr, cf, ca)
             ON CONFLICT (id) DO UPDATE SET
                 name = EXCLUDED.name, triggers = EXCLUDED.triggers, config = EXCLUDED.config,
                 updated_at = EXCLUDED.updated_at",
        )
        .bind(app_id)
        .bind(&ids)
        .bind(&fslugs)
        .bind(&names)
        .bind(&triggers)
        .bind(&configs)
        .bind(&created)
        .bind(now)
        .execute(&mut *conn)
        .await
        .db()?;
    }
    if modified {
        bump_version(conn).await?;
    }
    let app = get_app(conn, AppId(app_id)).await?;
    let functions = app_functions(conn, app_id).await?;
    Ok(Synced {
        app,
        functions,
        modified,
    })
}

/// Records a failed sync of the app at `url`, creating a placeholder named by the URL.
pub(crate) async fn record_sync_error(
    conn: &mut PgConnection,
    url: &str,
    error: &str,
    now: Millis,
) -> Result<App> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "UPDATE apps SET sync_error = $2, updated_at = $3
         WHERE id = (SELECT id FROM apps WHERE url = $1 ORDER BY created_at, id LIMIT 1)
         RETURNING id",
    )
    .bind(url)
    .bind(error)
    .bind(now.0)
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    let id = match id {
        Some(id) => id,
        None => sqlx::query_scalar(
            "INSERT INTO apps (id, name, url, sync_error, created_at, updated_at)
             VALUES ($1, $2, $2, $3, $4, $4)
             ON CONFLICT (name) DO UPDATE SET sync_error = EXCLUDED.sync_error,
                                              updated_at = EXCLUDED.updated_at
             RETURNING id",
        )
        .bind(Uuid::new_v4())
        .bind(url)
        .bind(error)
        .bind(now.0)
        .fetch_one(&mut *conn)
        .await
        .db()?,
    };
    get_app(conn, AppId(id)).await
}

/// Deletes an app and its functions.
pub(crate) async fn delete_app(conn: &mut PgConnection, id: AppId) -> Result<()> {
    let done = sqlx::query("DELETE FROM apps WHERE id = $1")
        .bind(id.0)
        .execute(&mut *conn)
        .await
        .db()?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("app {id}")));
    }
    bump_version(conn).await
}

pub(crate) async fn list_functions(conn: &mut PgConnection) -> Result<Vec<Function>> {
    let rows: Vec<FunctionRow> = sqlx::query_as("SELECT * FROM functions ORDER BY slug")
        .fetch_all(&mut *conn)
        .await
        .db()?;
    into_functions(rows)
}

pub(crate) async fn get_function(conn: &mut PgConnection, id: FunctionId) -> Result<Function> {
    let row: Option<FunctionRow> = sqlx::query_as("SELECT * FROM functions WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    row.ok_or_else(|| Error::NotFound(format!("function {id}")))?
        .into_function()
}

pub(crate) async fn get_function_by_slug(conn: &mut PgConnection, slug: &str) -> Result<Function> {
    let row: Option<FunctionRow> = sqlx::query_as("SELECT * FROM functions WHERE slug = $1")
        .bind(slug)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    row.ok_or_else(|| Error::NotFound(format!("function {slug}")))?
        .into_function()
}
