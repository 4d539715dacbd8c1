//! The multi-table writes: a publish (events and their fan-out) and a commit (one
//! attempt's outcome), each batched so a whole call is a handful of statements in one
//! transaction whatever its size.
//!
//! Both collect the queue items, waits and steps they create in [`Pending`] and write
//! each kind with one statement at the end ([`Pending::flush`]), after the runs that
//! ended in the same transaction are known, so nothing is queued for them.

use std::collections::{HashMap, HashSet};

use sluice_core::{EventId, Millis, RunId};
use sluice_store::{
    Commit, CommitResult, DEDUPE_WINDOW_MS, LeaseRef, NewQueueItem, NewRun, NewWait, Publish,
    Published, Result, RunUpdate, StepRecord,
};
use sqlx::PgConnection;

use crate::error::SqlxResultExt;
use crate::{event, queue, run, wait};

/// Rows a transaction will write last, in one statement per table.
#[derive(Default)]
pub(crate) struct Pending<'a> {
    items: Vec<&'a NewQueueItem>,
    waits: Vec<&'a NewWait>,
    steps: Vec<&'a StepRecord>,
    /// Runs cancelled or ended in this transaction: their pending items and waits
    /// are dropped.
    ended: HashSet<String>,
}

impl<'a> Pending<'a> {
    /// Queues the first items and waits of new runs.
    pub(crate) fn runs(&mut self, runs: impl IntoIterator<Item = &'a NewRun>) {
        for r in runs {
            self.items.push(&r.first);
            self.waits.extend(r.waits.iter());
        }
    }

    /// Writes the pending rows.
    pub(crate) async fn flush(
        self,
        conn: &mut PgConnection,
        channel: &str,
        now: Millis,
    ) -> Result<()> {
        let live = |run: Option<RunId>| run.is_none_or(|r| !self.ended.contains(&r.to_string()));
        let items: Vec<&NewQueueItem> = if self.ended.is_empty() {
            self.items
        } else {
            self.items.into_iter().filter(|i| live(i.run_id)).collect()
        };
        let waits: Vec<&NewWait> = if self.ended.is_empty() {
            self.waits
        } else {
            self.waits
                .into_iter()
                .filter(|w| live(Some(w.run_id)))
                .collect()
        };
        run::upsert_steps(conn, &self.steps, now).await?;
        wait::insert(conn, &waits).await?;
        queue::insert(conn, channel, &items, now).await?;
        Ok(())
    }
}

/// Cancels runs that have not ended, deleting their items and waits; returns those
/// cancelled.
pub(crate) async fn cancel(
    conn: &mut PgConnection,
    ids: &[RunId],
    now: Millis,
    pending: &mut Pending<'_>,
) -> Result<Vec<String>> {
    let cancelled = run::cancel(conn, ids, now).await?;
    end_runs(conn, &cancelled, &[], pending).await?;
    Ok(cancelled)
}

/// Deletes the items (except `keep`) and waits of runs that just ended.
async fn end_runs(
    conn: &mut PgConnection,
    runs: &[String],
    keep: &[i64],
    pending: &mut Pending<'_>,
) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    queue::delete_for_runs(conn, runs, keep).await?;
    wait::delete_for_runs(conn, runs).await?;
    pending.ended.extend(runs.iter().cloned());
    Ok(())
}

/// How one publish of a batch fares before its event is inserted.
enum Fate {
    /// A duplicate of this stored (or earlier-in-batch) event.
    Duplicate(String),
    /// Dedupes to whatever the earlier publish at this index ends up as.
    SameAs(usize),
    /// To be inserted.
    Insert,
}

/// Writes a batch of publishes into the transaction; one [`Published`] per input.
pub(crate) async fn publish<'a>(
    conn: &mut PgConnection,
    batch: &[&'a Publish],
    now: Millis,
    pending: &mut Pending<'a>,
) -> Result<Vec<Published>> {
    // Dedupe inside the batch first: by internal id, then by external id.
    let mut fates = Vec::with_capacity(batch.len());
    let mut by_id: HashMap<EventId, usize> = HashMap::new();
    let mut by_external: HashMap<&str, usize> = HashMap::new();
    for (i, p) in batch.iter().enumerate() {
        let fate = if by_id.contains_key(&p.event.id) {
            Fate::Duplicate(p.event.id.to_string())
        } else if let Some(&first) = p
            .event
            .external_id
            .as_deref()
            .and_then(|x| by_external.get(x))
        {
            Fate::SameAs(first)
        } else {
            Fate::Insert
        };
        if matches!(fate, Fate::Insert) {
            by_id.insert(p.event.id, i);
            if let Some(x) = p.event.external_id.as_deref() {
                by_external.insert(x, i);
            }
        }
        fates.push(fate);
    }

    // Then against the 24 h window of stored external ids.
    let claims: Vec<(&str, EventId)> = batch
        .iter()
        .zip(&fates)
        .filter(|(_, f)| matches!(f, Fate::Insert))
        .filter_map(|(p, _)| p.event.external_id.as_deref().map(|x| (x, p.event.id)))
        .collect();
    let owners =
        event::claim_external_ids(conn, &claims, now.plus_ms(DEDUPE_WINDOW_MS), now).await?;
    for (p, fate) in batch.iter().zip(fates.iter_mut()) {
        if let (Fate::Insert, Some(x)) = (&*fate, p.event.external_id.as_deref()) {
            match owners.get(x) {
                Some(owner) if *owner != p.event.id.to_string() => {
                    *fate = Fate::Duplicate(owner.clone());
                }
                _ => {}
            }
        }
    }

    // Then against stored internal ids, by inserting.
    let candidates: Vec<&sluice_store::Event> = batch
        .iter()
        .zip(&fates)
        .filter(|(_, f)| matches!(f, Fate::Insert))
        .map(|(p, _)| &p.event)
        .collect();
    let inserted = event::insert(conn, &candidates).await?;

    let mut out: Vec<Published> = Vec::with_capacity(batch.len());
    let mut winners: Vec<&'a Publish> = Vec::new();
    for (i, (p, fate)) in batch.iter().zip(&fates).enumerate() {
        let published = match fate {
            Fate::Insert if inserted.contains(&p.event.id.to_string()) => {
                winners.push(p);
                Published {
                    id: p.event.id,
                    duplicate: false,
                }
            }
            Fate::Insert => Published {
                id: p.event.id,
                duplicate: true,
            },
            Fate::Duplicate(id) => Published {
                id: id.parse().unwrap_or(p.event.id),
                duplicate: true,
            },
            Fate::SameAs(first) => Published {
                id: out[*first].id,
                duplicate: true,
            },
        };
        debug_assert!(out.len() == i);
        out.push(published);
    }

    // The fan-out of the events that went in.
    let runs: Vec<NewRun> = winners
        .iter()
        .flat_map(|p| p.runs.iter().cloned())
        .collect();
    run::insert(conn, &runs).await?;
    pending.runs(winners.iter().flat_map(|p| p.runs.iter()));

    let resumes: Vec<_> = winners.iter().flat_map(|p| p.resumes.iter()).collect();
    if !resumes.is_empty() {
        let wait_ids: Vec<_> = resumes.iter().map(|r| r.wait_id).collect();
        let mut taken: HashSet<String> = wait::take(conn, &wait_ids).await?.into_iter().collect();
        for r in resumes {
            // A wait resumes at most once, even if the batch names it twice.
            if taken.remove(&r.wait_id.to_string()) {
                pending.steps.push(&r.step);
                pending.items.push(&r.next);
            }
        }
    }

    let cancels: Vec<RunId> = winners
        .iter()
        .flat_map(|p| p.cancels.iter().copied())
        .collect();
    cancel(conn, &cancels, now, pending).await?;
    Ok(out)
}

/// Applies a batch of commits into the transaction; one [`CommitResult`] per input.
pub(crate) async fn commit<'a>(
    conn: &mut PgConnection,
    channel: &str,
    commits: &'a [Commit],
    now: Millis,
    pending: &mut Pending<'a>,
) -> Result<Vec<CommitResult>> {
    // A lease is used once: a second commit with the same lease in the batch loses it;
    // a commit with a stale token loses whatever the others hold.
    let leases: Vec<LeaseRef> = commits.iter().map(|c| c.lease).collect();
    let mut held: HashSet<LeaseRef> = queue::lock_held(conn, &leases).await?.into_iter().collect();
    let mut results = Vec::with_capacity(commits.len());
    let mut applied: Vec<&'a Commit> = Vec::new();
    for c in commits {
        if held.remove(&c.lease) {
            results.push(CommitResult::Applied);
            applied.push(c);
        } else {
            results.push(CommitResult::LeaseLost);
        }
    }

    let ends: Vec<_> = applied
        .iter()
        .map(|c| (c.lease.item, &c.disposition))
        .collect();
    queue::end(conn, channel, &ends).await?;
    let ended_items: Vec<i64> = applied.iter().map(|c| c.lease.item.0).collect();

    let required: Vec<_> = applied.iter().filter_map(|c| c.require_wait).collect();
    let taken: HashSet<String> = wait::take(conn, &required).await?.into_iter().collect();
    let mut writers: Vec<&'a Commit> = Vec::with_capacity(applied.len());
    for (c, result) in commits.iter().zip(results.iter_mut()) {
        if *result != CommitResult::Applied {
            continue;
        }
        match c.require_wait {
            Some(w) if !taken.contains(&w.to_string()) => *result = CommitResult::Skipped,
            _ => writers.push(c),
        }
    }

    let updates: Vec<(RunId, RunUpdate)> = writers.iter().filter_map(|c| c.run.clone()).collect();
    let ended_runs = run::update(conn, updates).await?;
    end_runs(conn, &ended_runs, &ended_items, pending).await?;

    for c in &writers {
        pending.steps.extend(c.steps.iter());
        pending.items.extend(c.enqueue.iter());
        pending.waits.extend(c.waits.iter());
    }
    let publishes: Vec<&'a Publish> = writers.iter().flat_map(|c| c.publish.iter()).collect();
    if !publishes.is_empty() {
        publish(conn, &publishes, now, pending).await?;
    }
    Ok(results)
}

/// A [`sluice_store::event::is_plain`] batch of publishes in ONE statement (its own transaction, one round
/// trip). Events go in with `ON CONFLICT DO NOTHING`; runs (with their event links and
/// first items) only for the events that went in. With `unless_waited` names, nothing
/// is written when an unexpired wait for one of them exists at the statement's
/// snapshot: then `None`.
pub(crate) async fn publish_at_once(
    conn: &mut PgConnection,
    channel: &str,
    batch: &[Publish],
    unless_waited: &[String],
    now: Millis,
) -> Result<Option<Vec<Published>>> {
    let events: Vec<&sluice_store::Event> = batch.iter().map(|p| &p.event).collect();
    let e = event::EventColumns::new(&events);
    let inserted = if batch.iter().all(|p| p.runs.is_empty()) {
        events_at_once(conn, &e, unless_waited, now).await?
    } else {
        runs_at_once(conn, channel, batch, &e, unless_waited, now).await?
    };
    let Some(inserted) = inserted else {
        return Ok(None);
    };
    let inserted: HashSet<String> = inserted.into_iter().collect();
    Ok(Some(
        batch
            .iter()
            .zip(&e.ids)
            .map(|(p, id)| Published {
                id: p.event.id,
                duplicate: !inserted.contains(id),
            })
            .collect(),
    ))
}

/// The start of both one-statement publishes: `g` says whether no unexpired wait
/// for the names in `$8` exists at `$9` (now); `ev` inserts the events (`$1`–`$7`) only
/// then, and returns the ids inserted.
macro_rules! guarded_events {
    () => {
        r#"WITH g AS (
               SELECT NOT EXISTS (
                   SELECT 1 FROM waits
                   WHERE event_name = ANY($8) AND (expires_at IS NULL OR expires_at > $9)
               ) AS ok),
           ev AS (
               INSERT INTO events (id, external_id, name, data, "user", version, ts, received_at)
               SELECT id, NULL, n, d, u, v, ts, ra
               FROM UNNEST($1::text[], $2::text[], $3::jsonb[], $4::jsonb[], $5::text[],
                           $6::bigint[], $7::bigint[]) AS t(id, n, d, u, v, ts, ra)
               WHERE (SELECT ok FROM g)
               ON CONFLICT (id) DO NOTHING
               RETURNING id)"#
    };
}

/// Binds `$1`–`$9` of [`guarded_events!`].
trait BindGuardedEvents<'q> {
    fn bind_guarded_events(
        self,
        e: &'q event::EventColumns<'_>,
        unless_waited: &'q [String],
        now: Millis,
    ) -> Self;
}

impl<'q, O> BindGuardedEvents<'q>
    for sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
{
    fn bind_guarded_events(
        self,
        e: &'q event::EventColumns<'_>,
        unless_waited: &'q [String],
        now: Millis,
    ) -> Self {
        self.bind(&e.ids)
            .bind(&e.names)
            .bind(&e.data)
            .bind(&e.users)
            .bind(&e.versions)
            .bind(&e.ts)
            .bind(&e.received)
            .bind(unless_waited)
            .bind(now.0)
    }
}

/// Events that trigger nothing: the events insert alone (a statement that also
/// names the runs, links and queue tables locks them and their 11 indexes, even to
/// insert nothing). The ids inserted, or `None` when a wait was there.
async fn events_at_once(
    conn: &mut PgConnection,
    e: &event::EventColumns<'_>,
    unless_waited: &[String],
    now: Millis,
) -> Result<Option<Vec<String>>> {
    let (inserted, unwaited): (Vec<String>, bool) = sqlx::query_as(concat!(
        guarded_events!(),
        " SELECT COALESCE((SELECT array_agg(id) FROM ev), '{}'), (SELECT ok FROM g)"
    ))
    .bind_guarded_events(e, unless_waited, now)
    .fetch_one(&mut *conn)
    .await
    .db()?;
    Ok(unwaited.then_some(inserted))
}

/// Events with the runs they start: events, runs, links and first items in one
/// statement. The event ids inserted, or `None` when a wait was there.
async fn runs_at_once(
    conn: &mut PgConnection,
    channel: &str,
    batch: &[Publish],
    e: &event::EventColumns<'_>,
    unless_waited: &[String],
    now: Millis,
) -> Result<Option<Vec<String>>> {
    let (runs, triggers): (Vec<&NewRun>, Vec<&str>) = batch
        .iter()
        .zip(&e.ids)
        .flat_map(|(p, id)| p.runs.iter().map(move |r| (r, id.as_str())))
        .unzip();
    let r = run::RunColumns::new(&runs);
    let items: Vec<&NewQueueItem> = runs.iter().map(|r| &r.first).collect();
    let q = queue::ItemColumns::new(&items);

    let (inserted, _, unwaited): (Vec<String>, Option<bool>, bool) = sqlx::query_as(concat!(
        guarded_events!(),
        r#",
           r AS (
               INSERT INTO runs (id, function_id, status, event_ids, correlation_id, rerun_of,
                                 created_at)
               SELECT id, f, 'queued', e, c, rr, ca
               FROM UNNEST($10::text[], $11::text[], $12::uuid[], $13::jsonb[], $14::text[],
                           $15::text[], $16::bigint[]) AS t(ev, id, f, e, c, rr, ca)
               WHERE t.ev IN (SELECT id FROM ev)
               RETURNING id),
           re AS (
               INSERT INTO run_events (event_id, run_id)
               SELECT ev, run FROM UNNEST($17::text[], $18::text[]) AS t(ev, run)
               WHERE t.run IN (SELECT id FROM r)
               ON CONFLICT DO NOTHING),
           q AS (
               INSERT INTO queue_items (kind, run_id, function_id, step_id, payload,
                                        available_at, priority, concurrency_keys, dedupe_key,
                                        created_at)
               SELECT k, run, f, s, p, a, pr, ck, d, $9
               FROM UNNEST($19::text[], $20::text[], $21::uuid[], $22::text[], $23::jsonb[],
                           $24::bigint[], $25::int[], $26::jsonb[], $27::text[])
                    WITH ORDINALITY AS t(k, run, f, s, p, a, pr, ck, d, ord)
               WHERE t.run IN (SELECT id FROM r)
               ORDER BY ord
               ON CONFLICT (dedupe_key) DO NOTHING
               RETURNING available_at)
           SELECT COALESCE((SELECT array_agg(id) FROM ev), '{}'),
                  (CASE WHEN (SELECT count(*) FROM q) > 0
                        THEN pg_notify($28, (SELECT min(available_at) FROM q)::text) END) IS NULL,
                  (SELECT ok FROM g)"#
    ))
    .bind_guarded_events(e, unless_waited, now)
    .bind(&triggers)
    .bind(&r.ids)
    .bind(&r.functions)
    .bind(&r.events)
    .bind(&r.correlations)
    .bind(&r.reruns)
    .bind(&r.created)
    .bind(&r.link_events)
    .bind(&r.link_runs)
    .bind(&q.kinds)
    .bind(&q.runs)
    .bind(&q.functions)
    .bind(&q.steps)
    .bind(&q.payloads)
    .bind(&q.available)
    .bind(&q.priorities)
    .bind(&q.keys)
    .bind(&q.dedupe)
    .bind(channel)
    .fetch_one(&mut *conn)
    .await
    .db()?;
    Ok(unwaited.then_some(inserted))
}
