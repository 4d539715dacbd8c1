// The Inngest client: one per app. In development, INNGEST_DEV=1 points it at
// `sluice dev` on http://localhost:8288; in production, set INNGEST_BASE_URL,
// INNGEST_SIGNING_KEY and INNGEST_EVENT_KEY to those of your `sluice start`.
const { Inngest } = require("inngest");

const inngest = new Inngest({ id: "shop-example" });

module.exports = { inngest };
