// The shop's background work, as durable functions. Each `step.run` runs once: when a
// later step fails and is retried, earlier results come back from Sluice instead.
const { NonRetriableError } = require("inngest");
const { inngest } = require("./client");

// Pretend services. Real code would call a database, a payment provider, a mailer.
const prices = { mug: 12, poster: 20, sticker: 2 };

const processOrder = inngest.createFunction(
  {
    id: "process-order",
    retries: 3,
    // Runs once every retry is spent: undo what the order did.
    onFailure: async ({ event, step }) => {
      const order = event.data.event.data;
      return step.run("release-stock", () => ({ released: order.item, orderId: order.orderId }));
    },
    // A cancelled order stops its run wherever it is, even mid-wait.
    cancelOn: [{ event: "shop/order.cancelled", if: "async.data.orderId == event.data.orderId" }],
    triggers: [{ event: "shop/order.placed" }],
  },
  async ({ event, step }) => {
    const { orderId, item, qty } = event.data;
    if (!(item in prices)) throw new NonRetriableError(`unknown item ${item}`);

    const reservation = await step.run("reserve-stock", () => ({ item, qty, reservedAt: Date.now() }));
    const charge = await step.run("charge-card", () => ({ amount: prices[item] * qty, currency: "EUR" }));

    // Pause (without holding a process) until the warehouse reports the shipment.
    const shipped = await step.waitForEvent("wait-for-shipment", {
      event: "shop/order.shipped",
      timeout: "1h",
      if: "async.data.orderId == event.data.orderId",
    });
    if (!shipped) {
      await step.sendEvent("report-delay", { name: "shop/order.delayed", data: { orderId } });
      return { orderId, status: "delayed" };
    }

    // Ask for a review a little later.
    await step.sleep("before-review-request", "2s");
    await step.sendEvent("request-review", { name: "shop/review.requested", data: { orderId } });
    return { orderId, status: "shipped", carrier: shipped.data.carrier, charged: charge.amount, reservation };
  },
);

// A second function on the same event: Sluice fans one event out to both.
const sendReceipt = inngest.createFunction(
  { id: "send-receipt", triggers: [{ event: "shop/order.placed" }] },
  async ({ event, step }) => {
    const total = await step.run("compute-total", () => prices[event.data.item] * event.data.qty);
    return { to: event.data.email, total };
  },
);

// A cron: a summary every morning at 9.
const dailySummary = inngest.createFunction(
  { id: "daily-summary", triggers: [{ cron: "0 9 * * *" }] },
  async ({ step }) => step.run("summarise", () => ({ orders: "…" })),
);

module.exports = { functions: [processOrder, sendReceipt, dailySummary] };
