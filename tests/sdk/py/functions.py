"""The end-to-end test functions for the official Python SDK (PyPI `inngest` 0.5.x).

The twin of tests/sdk/ts/functions.js: the same function ids, events and outputs, so
crates/server/tests/sdk.rs checks every SDK with one table.
"""

import collections
import datetime
import time

import inngest

def build_functions(client: inngest.Inngest) -> list[inngest.Function]:
    """Every test function, registered on `client`."""

    # How many times each step body ran, per run: memoized steps must not run again.
    executions: collections.Counter[str] = collections.Counter()

    def on(event: str, expression: str | None = None) -> inngest.TriggerEvent:
        return inngest.TriggerEvent(event=event, expression=expression)

    @client.create_function(fn_id="fanout-a", trigger=on("e2e/fanout"))
    def fanout_a(ctx: inngest.ContextSync) -> dict:
        return {"fn": "a", "n": ctx.event.data["n"]}

    @client.create_function(fn_id="fanout-b", trigger=on("e2e/fanout"))
    def fanout_b(ctx: inngest.ContextSync) -> dict:
        return {"fn": "b", "n": ctx.event.data["n"]}

    @client.create_function(fn_id="filtered", trigger=on("e2e/filter", "event.data.ok == true"))
    def filtered(ctx: inngest.ContextSync) -> dict:
        return {"tag": ctx.event.data["tag"]}

    @client.create_function(fn_id="shop-any", trigger=on("shop/*"))
    def shop_any(ctx: inngest.ContextSync) -> dict:
        return {"name": ctx.event.name}

    @client.create_function(fn_id="echo", trigger=on("e2e/echo"))
    def echo(ctx: inngest.ContextSync) -> object:
        return dict(ctx.event.data)

    @client.create_function(fn_id="hideable", trigger=on("e2e/hideable"))
    def hideable(ctx: inngest.ContextSync) -> str:
        return "visible"

    @client.create_function(fn_id="chain", trigger=on("e2e/chain"))
    def chain(ctx: inngest.ContextSync) -> dict:
        def step_a() -> dict:
            executions[f"{ctx.run_id}/a"] += 1
            return {"v": ctx.event.data["n"] + 1}

        a = ctx.step.run("a", step_a)

        def step_b() -> int:
            executions[f"{ctx.run_id}/b"] += 1
            return a["v"] * 2

        b = ctx.step.run("b", step_b)
        return {
            "a": a,
            "b": b,
            "runsOfA": executions[f"{ctx.run_id}/a"],
            "runsOfB": executions[f"{ctx.run_id}/b"],
        }

    @client.create_function(fn_id="loop", trigger=on("e2e/loop"))
    def loop(ctx: inngest.ContextSync) -> list:
        return [ctx.step.run("item", lambda i=i: i * 10) for i in range(3)]

    @client.create_function(fn_id="parallel", trigger=on("e2e/parallel"))
    def parallel(ctx: inngest.ContextSync) -> dict:
        x, y = ctx.group.parallel(
            (
                lambda: ctx.step.run("p1", lambda: "one"),
                lambda: ctx.step.run("p2", lambda: "two"),
            )
        )
        z = ctx.step.run("after", lambda: f"{x}+{y}")
        return {"x": x, "y": y, "z": z}

    @client.create_function(fn_id="sleeper", trigger=on("e2e/sleep"))
    def sleeper(ctx: inngest.ContextSync) -> str:
        ctx.step.sleep("nap", datetime.timedelta(seconds=2))
        until = datetime.datetime.fromisoformat(ctx.event.data["until"].replace("Z", "+00:00"))
        ctx.step.sleep_until("until", until)
        return "awake"

    @client.create_function(fn_id="waiter", trigger=on("e2e/wait.start"))
    def waiter(ctx: inngest.ContextSync) -> dict:
        got = ctx.step.wait_for_event(
            "reply",
            event="e2e/wait.reply",
            if_exp="async.data.id == event.data.id",
            timeout=_duration(ctx.event.data["timeout"]),
        )
        return {"got": got.data["v"] if got is not None else None}

    @client.create_function(fn_id="child", trigger=on("e2e/child.never-sent"))
    def child(ctx: inngest.ContextSync) -> dict:
        return {"doubled": ctx.event.data["x"] * 2}

    @client.create_function(fn_id="invoker", trigger=on("e2e/invoke"))
    def invoker(ctx: inngest.ContextSync) -> dict:
        result = ctx.step.invoke("call-child", function=child, data={"x": ctx.event.data["x"]})
        return {"child": result}

    @client.create_function(fn_id="sender", trigger=on("e2e/send"))
    def sender(ctx: inngest.ContextSync) -> str:
        batch = ctx.event.data["batch"]
        ctx.step.send_event(
            "emit",
            [
                inngest.Event(name="e2e/sent.item", data={"i": 1, "batch": batch}),
                inngest.Event(name="e2e/sent.item", data={"i": 2, "batch": batch}),
            ],
        )
        return "sent"

    @client.create_function(fn_id="sent-item", trigger=on("e2e/sent.item"))
    def sent_item(ctx: inngest.ContextSync) -> object:
        return ctx.event.data["i"]

    @client.create_function(fn_id="flaky", trigger=on("e2e/flaky"), retries=3)
    def flaky(ctx: inngest.ContextSync) -> dict:
        def attempt() -> str:
            if ctx.attempt == 0:
                raise Exception("first attempt fails")
            return f"ok on attempt {ctx.attempt}"

        return {"result": ctx.step.run("flaky", attempt)}

    @client.create_function(fn_id="non-retriable", trigger=on("e2e/nonretriable"), retries=3)
    def non_retriable(ctx: inngest.ContextSync) -> None:
        raise inngest.NonRetriableError("not retrying this")

    @client.create_function(fn_id="retry-after", trigger=on("e2e/retryafter"), retries=2)
    def retry_after(ctx: inngest.ContextSync) -> str:
        if ctx.attempt == 0:
            raise inngest.RetryAfterError("slow down", 1000)
        return f"done on attempt {ctx.attempt}"

    def always_fails_failure(ctx: inngest.ContextSync) -> dict:
        error = ctx.event.data.get("error") or {}
        return {"failedFn": ctx.event.data.get("function_id"), "message": error.get("message")}

    @client.create_function(
        fn_id="always-fails",
        trigger=on("e2e/always-fails"),
        retries=1,
        on_failure=always_fails_failure,
    )
    def always_fails(ctx: inngest.ContextSync) -> None:
        def boom() -> None:
            raise Exception("always fails")

        ctx.step.run("boom", boom)

    @client.create_function(
        fn_id="cancellable",
        trigger=on("e2e/cancellable"),
        cancel=[inngest.Cancel(event="e2e/cancel", if_exp="async.data.id == event.data.id")],
    )
    def cancellable(ctx: inngest.ContextSync) -> str:
        ctx.step.sleep("long", datetime.timedelta(minutes=10))
        return "not cancelled"

    @client.create_function(fn_id="slow", trigger=on("e2e/slow"))
    def slow(ctx: inngest.ContextSync) -> dict:
        def slow_step() -> str:
            time.sleep(ctx.event.data["ms"] / 1000)
            return "slept"

        return {"a": ctx.step.run("slow-step", slow_step)}

    return [
        fanout_a,
        fanout_b,
        filtered,
        shop_any,
        echo,
        hideable,
        chain,
        loop,
        parallel,
        sleeper,
        waiter,
        child,
        invoker,
        sender,
        sent_item,
        flaky,
        non_retriable,
        retry_after,
        always_fails,
        cancellable,
        slow,
    ]

def _duration(text: str) -> datetime.timedelta:
    """A `"3s"` / `"2m"` test duration."""
    units = {"s": 1, "m": 60, "h": 3600}
    return datetime.timedelta(seconds=int(text[:-1]) * units[text[-1]])

