-- Sluice schema, SQLite dialect. Same tables, columns and numbers as migrations/postgres.
-- Dialect differences: UUIDs are TEXT, JSON is TEXT holding JSON, booleans are
-- INTEGER 0/1, the queue id is INTEGER PRIMARY KEY AUTOINCREMENT.

CREATE TABLE apps (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    sdk             TEXT,
    framework       TEXT,
    last_synced_at  BIGINT,
    sync_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX apps_url ON apps (url);

CREATE TABLE functions (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    triggers    TEXT NOT NULL,
    config      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX functions_app ON functions (app_id);

CREATE TABLE events (
    id           TEXT PRIMARY KEY,
    external_id  TEXT,
    name         TEXT NOT NULL,
    data         TEXT NOT NULL,
    "user"       TEXT NOT NULL,
    version      TEXT,
    ts           BIGINT NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE INDEX events_received ON events (received_at DESC, id DESC);
CREATE INDEX events_name ON events (name, id DESC);

-- The 24 h dedupe window of external event ids.
CREATE TABLE event_dedupe (
    external_id  TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE TABLE runs (
    id                           TEXT PRIMARY KEY,
    function_id                  TEXT NOT NULL,
    status                       TEXT NOT NULL,
    event_ids                    TEXT NOT NULL,
    output                       TEXT,
    error                        TEXT,
    request_version              INTEGER,
    disable_immediate_execution  INTEGER NOT NULL DEFAULT 0,
    correlation_id               TEXT,
    rerun_of                     TEXT,
    created_at                   BIGINT NOT NULL,
    started_at                   BIGINT,
    ended_at                     BIGINT
);
CREATE INDEX runs_function ON runs (function_id, id DESC);
CREATE INDEX runs_status ON runs (status, id DESC);
CREATE INDEX runs_created ON runs (created_at DESC);

CREATE TABLE run_events (
    event_id  TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    PRIMARY KEY (event_id, run_id)
);
CREATE INDEX run_events_run ON run_events (run_id);

CREATE TABLE steps (
    run_id      TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    op          TEXT NOT NULL,
    status      TEXT NOT NULL,
    result      TEXT,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    opts        TEXT,
    created_at  BIGINT NOT NULL,
    started_at  BIGINT,
    ended_at    BIGINT,
    PRIMARY KEY (run_id, step_id)
);

CREATE TABLE queue_items (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    kind              TEXT NOT NULL,
    run_id            TEXT,
    function_id       TEXT,
    step_id           TEXT,
    payload           TEXT NOT NULL DEFAULT 'null',
    available_at      BIGINT NOT NULL,
    priority          INTEGER NOT NULL DEFAULT 0,
    attempt           INTEGER NOT NULL DEFAULT 0,
    concurrency_keys  TEXT NOT NULL DEFAULT '[]',
    dedupe_key        TEXT UNIQUE,
    last_error        TEXT,
    lease_owner       TEXT,
    lease_token       TEXT,
    lease_expires_at  BIGINT,
    created_at        BIGINT NOT NULL
);
-- The claim scans due, unleased items in (priority, available_at, id) order.
CREATE INDEX queue_items_due ON queue_items (priority, available_at, id) WHERE lease_token IS NULL;
CREATE INDEX queue_items_next ON queue_items (available_at) WHERE lease_token IS NULL;
CREATE INDEX queue_items_leased ON queue_items (lease_expires_at) WHERE lease_token IS NOT NULL;
CREATE INDEX queue_items_run ON queue_items (run_id);

CREATE TABLE waits (
    id              TEXT PRIMARY KEY,
    run_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    step_id         TEXT,
    event_name      TEXT NOT NULL,
    expression      TEXT,
    correlation_id  TEXT,
    trigger_event   TEXT NOT NULL,
    expires_at      BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX waits_event ON waits (event_name);
CREATE INDEX waits_run ON waits (run_id);
CREATE INDEX waits_expires ON waits (expires_at) WHERE expires_at IS NOT NULL;

-- Small key/value state: counters (registry version) and settings.
CREATE TABLE kv (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- Leader leases for singletons (cron ticks, rescuer, pruning).
CREATE TABLE leader_leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
