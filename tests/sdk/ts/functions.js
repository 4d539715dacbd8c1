// The end-to-end test functions, written once for the official TS SDK 3.x and 4.x.
//
// The only API difference that matters here is where triggers go: v3 takes
// `createFunction(options, trigger, handler)`, v4 takes `triggers` inside the options.
// `define` papers over it; everything else is the SDKs' public API, unmodified.
//
// The Python twin is tests/sdk/py/functions.py: same function ids, events and outputs,
// so crates/server/tests/sdk.rs checks all three SDKs with one table.

"use strict";

/**
 * @param {object} lib the `inngest` module
 * @param {object} inngest the client
 * @param {number} major the SDK's major version (3 or 4)
 */
function buildFunctions(lib, inngest, major) {
  const { NonRetriableError, RetryAfterError } = lib;

  const define = (options, triggers, handler) => {
    const list = Array.isArray(triggers) ? triggers : [triggers];
    return major >= 4
      ? inngest.createFunction({ ...options, triggers: list }, handler)
      : inngest.createFunction(options, list.length === 1 ? list[0] : list, handler);
  };

  // How many times each step body ran, per run: memoized steps must not run again.
  const executions = new Map();
  const ran = (runId, step) => {
    const key = `${runId}/${step}`;
    executions.set(key, (executions.get(key) || 0) + 1);
  };
  const count = (runId, step) => executions.get(`${runId}/${step}`) || 0;

  const child = define({ id: "child" }, { event: "e2e/child.never-sent" }, async ({ event }) => ({
    doubled: event.data.x * 2,
  }));

  return [
    // Fan-out: one event, two functions.
    define({ id: "fanout-a" }, { event: "e2e/fanout" }, async ({ event }) => ({ fn: "a", n: event.data.n })),
    define({ id: "fanout-b" }, { event: "e2e/fanout" }, async ({ event }) => ({ fn: "b", n: event.data.n })),

    // Expression filter.
    define({ id: "filtered" }, { event: "e2e/filter", if: "event.data.ok == true" }, async ({ event }) => ({
      tag: event.data.tag,
    })),

    // Wildcard trigger.
    define({ id: "shop-any" }, { event: "shop/*" }, async ({ event }) => ({ name: event.name })),

    // Echoes its event: dedupe, delayed `ts`, re-sync.
    define({ id: "echo" }, { event: "e2e/echo" }, async ({ event }) => event.data),
    define({ id: "hideable" }, { event: "e2e/hideable" }, async () => "visible"),

    // A chain of steps; the second uses the first's memoized value.
    define({ id: "chain" }, { event: "e2e/chain" }, async ({ event, step, runId }) => {
      const a = await step.run("a", () => {
        ran(runId, "a");
        return { v: event.data.n + 1 };
      });
      const b = await step.run("b", () => {
        ran(runId, "b");
        return a.v * 2;
      });
      return { a, b, runsOfA: count(runId, "a"), runsOfB: count(runId, "b") };
    }),

    // The same step id in a loop.
    define({ id: "loop" }, { event: "e2e/loop" }, async ({ step }) => {
      const out = [];
      for (let i = 0; i < 3; i++) {
        out.push(await step.run("item", () => i * 10));
      }
      return out;
    }),

    // Parallel steps, then one after them.
    define({ id: "parallel" }, { event: "e2e/parallel" }, async ({ step }) => {
      const [x, y] = await Promise.all([
        step.run("p1", () => "one"),
        step.run("p2", () => "two"),
      ]);
      const z = await step.run("after", () => `${x}+${y}`);
      return { x, y, z };
    }),

    // Sleep for a duration, then until a time.
    define({ id: "sleeper" }, { event: "e2e/sleep" }, async ({ event, step }) => {
      await step.sleep("nap", "2s");
      await step.sleepUntil("until", new Date(event.data.until));
      return "awake";
    }),

    // Wait for a matching event, or time out.
    define({ id: "waiter" }, { event: "e2e/wait.start" }, async ({ event, step }) => {
      const got = await step.waitForEvent("reply", {
        event: "e2e/wait.reply",
        timeout: event.data.timeout,
        if: "async.data.id == event.data.id",
      });
      return { got: got ? got.data.v : null };
    }),

    // Invoke another function and use its result.
    child,
    define({ id: "invoker" }, { event: "e2e/invoke" }, async ({ event, step }) => {
      const result = await step.invoke("call-child", { function: child, data: { x: event.data.x } });
      return { child: result };
    }),

    // Send events from a step: they fan out to `sent-item`.
    define({ id: "sender" }, { event: "e2e/send" }, async ({ event, step }) => {
      await step.sendEvent("emit", [
        { name: "e2e/sent.item", data: { i: 1, batch: event.data.batch } },
        { name: "e2e/sent.item", data: { i: 2, batch: event.data.batch } },
      ]);
      return "sent";
    }),
    define({ id: "sent-item" }, { event: "e2e/sent.item" }, async ({ event }) => event.data.i),

    // A step that fails on its first attempt and succeeds on the retry.
    define({ id: "flaky", retries: 3 }, { event: "e2e/flaky" }, async ({ step, attempt }) => {
      const result = await step.run("flaky", () => {
        if (attempt === 0) throw new Error("first attempt fails");
        return `ok on attempt ${attempt}`;
      });
      return { result };
    }),

    // Never retried.
    define({ id: "non-retriable", retries: 3 }, { event: "e2e/nonretriable" }, async () => {
      throw new NonRetriableError("not retrying this");
    }),

    // Retried after the time the error asks for.
    define({ id: "retry-after", retries: 2 }, { event: "e2e/retryafter" }, async ({ attempt }) => {
      if (attempt === 0) throw new RetryAfterError("slow down", 1000);
      return `done on attempt ${attempt}`;
    }),

    // Exhausts its retries; its onFailure handler runs.
    define(
      {
        id: "always-fails",
        retries: 1,
        onFailure: async ({ event }) => ({
          failedFn: event.data.function_id,
          message: event.data.error && event.data.error.message,
        }),
      },
      { event: "e2e/always-fails" },
      async ({ step }) => {
        await step.run("boom", () => {
          throw new Error("always fails");
        });
      },
    ),

    // A long sleep, cancelled by an event or through the API.
    define(
      { id: "cancellable", cancelOn: [{ event: "e2e/cancel", if: "async.data.id == event.data.id" }] },
      { event: "e2e/cancellable" },
      async ({ step }) => {
        await step.sleep("long", "10m");
        return "not cancelled";
      },
    ),

    // A step that takes a while: the two-node kill test kills the node calling it.
    define({ id: "slow" }, { event: "e2e/slow" }, async ({ event, step, runId }) => {
      const a = await step.run("slow-step", async () => {
        inflight.add(runId);
        await new Promise((resolve) => setTimeout(resolve, event.data.ms));
        inflight.delete(runId);
        return "slept";
      });
      return { a };
    }),
  ];
}

// Runs whose slow step is executing right now (`GET /inflight`).
const inflight = new Set();

module.exports = { buildFunctions, inflight };
