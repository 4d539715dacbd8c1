-- A run's row is updated twice in its life (running, then ended). With no index on
-- a column those updates change, and room left on each page, Postgres updates it in
-- place (a HOT update): no new entry in any of the runs' indexes. Listing runs by
-- status walks the primary key newest first instead.
DROP INDEX IF EXISTS runs_status;
ALTER TABLE runs SET (fillfactor = 80);
