// A one-function app on the official TS SDK (npm `inngest` 4.x) that invokes a function
// of the Rust test app by reference, for crates/server/tests/rust_sdk.rs.
//
//   node ts_caller.js <package dir>
//
// <package dir> holds the `node_modules` to load `inngest` and `express` from
// (examples/typescript). Configuration comes from the environment: PORT, INNGEST_DEV /
// INNGEST_BASE_URL, INNGEST_SIGNING_KEY, INNGEST_EVENT_KEY; RUST_APP_ID names the Rust
// app. Routes: the SDK at /api/inngest and `GET /ready`.

"use strict";

const path = require("node:path");
const { createRequire } = require("node:module");

const packageDir = path.resolve(process.argv[2]);
const sdkRequire = createRequire(path.join(packageDir, "package.json"));
const { Inngest, referenceFunction } = sdkRequire("inngest");
const { serve } = sdkRequire("inngest/express");
const express = sdkRequire("express");

const rustApp = process.env.RUST_APP_ID || "e2e-rust";
const inngest = new Inngest({ id: "e2e-ts-caller" });

// Invokes the Rust app's `child` (which triples `x`) and returns its result.
const callRust = inngest.createFunction(
  { id: "call-rust", triggers: [{ event: "rs/ts-invoke" }] },
  async ({ event, step }) => {
    const child = referenceFunction({ appId: rustApp, functionId: "child" });
    const result = await step.invoke("rust-child", { function: child, data: { x: event.data.x } });
    return { rust: result };
  },
);

const app = express();
app.use(express.json({ limit: "10mb" }));
app.use("/api/inngest", serve({ client: inngest, functions: [callRust] }));
app.get("/ready", (_req, res) => res.json({ ok: true }));

// Exit when the test that started this app dies without stopping it.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1000).unref();

const port = Number(process.env.PORT || 3000);
app.listen(port, "127.0.0.1", () => {
  console.log(`e2e-ts-caller on http://127.0.0.1:${port}/api/inngest (invokes ${rustApp})`);
});
