"""The end-to-end test app for the official Python SDK, served with Flask.

    tests/sdk/.venv/bin/python tests/sdk/py/app.py

Configuration comes from the environment, as in any app: PORT, INNGEST_DEV /
INNGEST_BASE_URL, INNGEST_SIGNING_KEY, INNGEST_EVENT_KEY; APP_ID (default `e2e-py`)
and E2E_HIDE (comma-separated function ids left out of `serve`, to test re-syncs).

Routes: the SDK handler at /api/inngest, and `POST /send` (an event or an array), which
sends through the SDK's own `send_sync` and answers `{"ids": [...]}`.
"""

import importlib.metadata
import logging
import os
import threading
import time

import flask
import inngest
import inngest.flask

from functions import build_functions

app_id = os.environ.get("APP_ID", "e2e-py")
client = inngest.Inngest(app_id=app_id, logger=logging.getLogger("e2e"))
hidden = {f for f in os.environ.get("E2E_HIDE", "").split(",") if f}
functions = [fn for fn in build_functions(client) if fn.local_id not in hidden]

app = flask.Flask(__name__)
inngest.flask.serve(app, client, functions)


@app.post("/send")
def send() -> flask.Response:
    body = flask.request.get_json()
    events = body if isinstance(body, list) else [body]
    try:
        ids = client.send_sync([inngest.Event(**e) for e in events])
    except Exception as err:  # reported to the test, which prints it
        return flask.make_response(flask.jsonify({"error": str(err)}), 500)
    return flask.jsonify({"ids": ids})


@app.get("/ready")
def ready() -> flask.Response:
    return flask.jsonify({"sdk": importlib.metadata.version("inngest"), "functions": len(functions)})


def exit_when_orphaned() -> None:
    """Exit when the test that started this app dies without stopping it."""
    parent = os.getppid()
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=exit_when_orphaned, daemon=True).start()
    port = int(os.environ.get("PORT", "3000"))
    print(f"{app_id}: inngest {importlib.metadata.version('inngest')}, {len(functions)} functions on port {port}", flush=True)
    app.run(host="127.0.0.1", port=port, threaded=True)
