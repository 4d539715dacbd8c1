// An Express app that serves its Inngest functions to Sluice and sends events.
//
//   INNGEST_DEV=1 node src/server.js      # with `sluice dev` running on :8288
//   curl -X POST localhost:3000/orders -H 'content-type: application/json' \
//        -d '{"item": "mug", "qty": 2, "email": "ada@example.com"}'
const { randomUUID } = require("node:crypto");
const express = require("express");
const { serve } = require("inngest/express");
const { inngest } = require("./client");
const { functions } = require("./functions");

const app = express();
app.use(express.json());

// Sluice calls this endpoint to sync the app and to run each function step by step.
app.use("/api/inngest", serve({ client: inngest, functions }));

// Place an order: send an event; the functions run in the background.
app.post("/orders", async (req, res) => {
  const orderId = randomUUID();
  const { ids } = await inngest.send({ name: "shop/order.placed", data: { orderId, ...req.body } });
  res.status(202).json({ orderId, eventId: ids[0] });
});

// The warehouse reports a shipment: resumes the order's waiting run.
app.post("/orders/:orderId/shipped", async (req, res) => {
  const data = { orderId: req.params.orderId, carrier: req.body.carrier || "post" };
  const { ids } = await inngest.send({ name: "shop/order.shipped", data });
  res.status(202).json({ eventId: ids[0] });
});

// Cancel an order: its run stops (cancelOn).
app.post("/orders/:orderId/cancel", async (req, res) => {
  const { ids } = await inngest.send({ name: "shop/order.cancelled", data: { orderId: req.params.orderId } });
  res.status(202).json({ eventId: ids[0] });
});

const port = Number(process.env.PORT || 3000);
const host = process.env.HOST || "127.0.0.1";
app.listen(port, host, () => console.log(`shop-example listening on http://${host}:${port}`));
