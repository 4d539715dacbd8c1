-- Matches the Postgres migration of the same number: listing runs by status walks
-- the primary key newest first, and a run's status updates touch no index.
DROP INDEX IF EXISTS runs_status;
