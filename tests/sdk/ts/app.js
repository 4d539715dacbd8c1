// The end-to-end test app for the official TS SDK (3.x or 4.x), served with Express.
//
//   node tests/sdk/ts/app.js <package dir>
//
// <package dir> holds the `node_modules` to load `inngest` and `express` from:
// examples/typescript (inngest 4.x) or tests/sdk/ts-v3 (inngest 3.x). Configuration
// comes from the environment, as in any app: PORT, INNGEST_DEV / INNGEST_BASE_URL,
// INNGEST_SIGNING_KEY, INNGEST_EVENT_KEY; APP_ID (default `e2e-ts-v<major>`) and
// E2E_HIDE (comma-separated function ids left out of `serve`, to test re-syncs).
//
// Routes: the SDK handler at /api/inngest, and `POST /send` (an event or an array),
// which sends through the SDK's own `inngest.send` and answers its result; `GET /inflight`
// lists the runs whose slow step is executing (for the node-kill test).

"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { createRequire } = require("node:module");
const { buildFunctions, inflight } = require("./functions");

const packageDir = path.resolve(process.argv[2] || path.join(__dirname, "../../../examples/typescript"));
const sdkRequire = createRequire(path.join(packageDir, "package.json"));
const lib = sdkRequire("inngest");
const { serve } = sdkRequire("inngest/express");
const express = sdkRequire("express");
const version = JSON.parse(
  fs.readFileSync(path.join(packageDir, "node_modules/inngest/package.json"), "utf8"),
).version;
const major = Number(version.split(".")[0]);

const appId = process.env.APP_ID || `e2e-ts-v${major}`;
const inngest = new lib.Inngest({ id: appId });
const hidden = new Set((process.env.E2E_HIDE || "").split(",").filter(Boolean));
const functions = buildFunctions(lib, inngest, major).filter(
  (fn) => !hidden.has(fn.id().replace(`${appId}-`, "")),
);

const app = express();
app.use(express.json({ limit: "10mb" }));
app.use("/api/inngest", serve({ client: inngest, functions }));
app.post("/send", async (req, res) => {
  try {
    res.json(await inngest.send(req.body));
  } catch (err) {
    res.status(500).json({ error: String(err && err.message ? err.message : err) });
  }
});
app.get("/inflight", (_req, res) => res.json([...inflight]));
app.get("/ready", (_req, res) => res.json({ sdk: version, functions: functions.length }));

// Exit when the test that started this app dies without stopping it (its Drop never ran).
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1000).unref();

const port = Number(process.env.PORT || 3000);
app.listen(port, "127.0.0.1", () => {
  console.log(`${appId}: inngest ${version}, ${functions.length} functions on http://127.0.0.1:${port}/api/inngest`);
});
