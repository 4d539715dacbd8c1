"""A Flask shop whose background work runs on Sluice, with the official `inngest` SDK.

    INNGEST_DEV=1 python app.py      # with `sluice dev` running on :8288
    curl -X POST localhost:3000/orders -H 'content-type: application/json' \\
         -d '{"item": "mug", "qty": 2, "email": "ada@example.com"}'
"""

import datetime
import logging
import os
import uuid

import flask
import inngest
import inngest.flask

# One client per app. INNGEST_DEV=1 points it at `sluice dev` on http://localhost:8288;
# in production set INNGEST_BASE_URL, INNGEST_SIGNING_KEY and INNGEST_EVENT_KEY.
client = inngest.Inngest(app_id="shop-example-py", logger=logging.getLogger("shop"))

# Pretend services. Real code would call a database, a payment provider, a mailer.
PRICES = {"mug": 12, "poster": 20, "sticker": 2}


def release_stock(ctx: inngest.ContextSync) -> dict:
    """Runs once every retry of process-order is spent: undo what the order did."""
    order = ctx.event.data["event"]["data"]
    return ctx.step.run("release-stock", lambda: {"released": order["item"], "orderId": order["orderId"]})


@client.create_function(
    fn_id="process-order",
    trigger=inngest.TriggerEvent(event="shop/order.placed"),
    retries=3,
    on_failure=release_stock,
    # A cancelled order stops its run wherever it is, even mid-wait.
    cancel=[inngest.Cancel(event="shop/order.cancelled", if_exp="async.data.orderId == event.data.orderId")],
)
def process_order(ctx: inngest.ContextSync) -> dict:
    order = ctx.event.data
    if order["item"] not in PRICES:
        raise inngest.NonRetriableError(f"unknown item {order['item']}")

    # Each step runs once: on a retry, earlier results come back from Sluice.
    reservation = ctx.step.run("reserve-stock", lambda: {"item": order["item"], "qty": order["qty"]})
    charge = ctx.step.run("charge-card", lambda: {"amount": PRICES[order["item"]] * order["qty"]})

    # Pause (without holding a process) until the warehouse reports the shipment.
    shipped = ctx.step.wait_for_event(
        "wait-for-shipment",
        event="shop/order.shipped",
        if_exp="async.data.orderId == event.data.orderId",
        timeout=datetime.timedelta(hours=1),
    )
    if shipped is None:
        ctx.step.send_event("report-delay", inngest.Event(name="shop/order.delayed", data={"orderId": order["orderId"]}))
        return {"orderId": order["orderId"], "status": "delayed"}

    # Ask for a review a little later.
    ctx.step.sleep("before-review-request", datetime.timedelta(seconds=2))
    ctx.step.send_event("request-review", inngest.Event(name="shop/review.requested", data={"orderId": order["orderId"]}))
    return {
        "orderId": order["orderId"],
        "status": "shipped",
        "carrier": shipped.data["carrier"],
        "charged": charge["amount"],
        "reservation": reservation,
    }


# A second function on the same event: Sluice fans one event out to both.
@client.create_function(fn_id="send-receipt", trigger=inngest.TriggerEvent(event="shop/order.placed"))
def send_receipt(ctx: inngest.ContextSync) -> dict:
    total = ctx.step.run("compute-total", lambda: PRICES[ctx.event.data["item"]] * ctx.event.data["qty"])
    return {"to": ctx.event.data.get("email"), "total": total}


# A cron: a summary every morning at 9.
@client.create_function(fn_id="daily-summary", trigger=inngest.TriggerCron(cron="0 9 * * *"))
def daily_summary(ctx: inngest.ContextSync) -> dict:
    return ctx.step.run("summarise", lambda: {"orders": "…"})


app = flask.Flask(__name__)
# Sluice calls /api/inngest to sync the app and to run each function step by step.
inngest.flask.serve(app, client, [process_order, send_receipt, daily_summary])


@app.post("/orders")
def place_order() -> tuple[flask.Response, int]:
    """Place an order: send an event; the functions run in the background."""
    order_id = str(uuid.uuid4())
    data = {"orderId": order_id, **flask.request.get_json()}
    ids = client.send_sync(inngest.Event(name="shop/order.placed", data=data))
    return flask.jsonify({"orderId": order_id, "eventId": ids[0]}), 202


@app.post("/orders/<order_id>/shipped")
def order_shipped(order_id: str) -> tuple[flask.Response, int]:
    """The warehouse reports a shipment: resumes the order's waiting run."""
    carrier = (flask.request.get_json(silent=True) or {}).get("carrier", "post")
    ids = client.send_sync(inngest.Event(name="shop/order.shipped", data={"orderId": order_id, "carrier": carrier}))
    return flask.jsonify({"eventId": ids[0]}), 202


@app.post("/orders/<order_id>/cancel")
def cancel_order(order_id: str) -> tuple[flask.Response, int]:
    """Cancel an order: its run stops (cancel)."""
    ids = client.send_sync(inngest.Event(name="shop/order.cancelled", data={"orderId": order_id}))
    return flask.jsonify({"eventId": ids[0]}), 202


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "3000")))
