-- A run's row is updated twice in its life (running, then ended). With no index on
-- a column those updates change, and room left on each page, Postgres updates it in
-- place (a HOT update): no new entry in any of the runs' indexes. Listing runs by
-- status walks the primary key newest first instead.
DROP INDEX IF EXISTS runs_status;
ALTER TABLE runs SET (fillfactor = 80);
-- The same for the queue item a run continues on (Disposition::Continue changes no
-- indexed column).
ALTER TABLE queue_items SET (fillfactor = 80);

-- Payload columns are never filtered on in SQL (expressions run in Sluice), so
-- ANALYZE skips them: Sluice refreshes statistics as tables grow (Store::maintain),
-- and sampling large JSON values was most of that cost.
ALTER TABLE events ALTER COLUMN data SET STATISTICS 0,
                   ALTER COLUMN "user" SET STATISTICS 0;
ALTER TABLE runs ALTER COLUMN event_ids SET STATISTICS 0,
                 ALTER COLUMN output SET STATISTICS 0,
                 ALTER COLUMN error SET STATISTICS 0;
ALTER TABLE steps ALTER COLUMN result SET STATISTICS 0,
                  ALTER COLUMN error SET STATISTICS 0,
                  ALTER COLUMN opts SET STATISTICS 0;
ALTER TABLE queue_items ALTER COLUMN payload SET STATISTICS 0,
                        ALTER COLUMN last_error SET STATISTICS 0;
ALTER TABLE waits ALTER COLUMN trigger_event SET STATISTICS 0;
