"""A clock pushed to the browser with Server-Sent Events, from an async and from a sync generator.

``GET /`` is a page whose script listens with ``new EventSource("/clock")`` and shows each time
it receives. ``GET /clock`` answers with ``Response.sse(...)`` of an async generator;
``GET /clock-sync`` does the same from a ``def`` handler with a plain generator that calls
``time.sleep`` (open ``/?sync=1`` to watch that one). Each tick is an event of type ``time``;
between ticks a comment line (``: ping``) keeps proxies from closing an idle connection.

Serve it from the repository root with either server, then open http://127.0.0.1:8000/::

    microweb serve examples/sse_clock.py                    # ASGI, Uvicorn
    microweb serve examples/sse_clock.py --server waitress  # WSGI, Waitress

Or watch the raw stream: ``curl -N http://127.0.0.1:8000/clock``.

When the browser goes away the generator is closed. The async one is closed at once under both
servers: under Waitress, microweb asks it every 0.1 s whether the client left. The sync one
runs in a thread that nothing can interrupt: it is closed when its ``time.sleep`` returns.
Waitress can tell that a client left only with ``channel_request_lookahead``, which
``microweb serve --server waitress`` sets; with ``waitress-serve`` itself, pass
``--channel-request-lookahead=1``, or either stream ends only when a write fails.
Under Waitress each open stream holds one of its threads (4 by default; ``--threads N``), so a
WSGI server suits a few long-lived streams, not thousands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone

from microweb import App, Request, Response, ServerSentEvent

app = App()

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>microweb SSE clock</title></head>
<body>
  <h1>Server time: <span id="clock">waiting...</span></h1>
  <p>Stream: <code id="source"></code> (<a href="/">async</a>, <a href="/?sync=1">sync</a>)</p>
  <script>
    const url = "{source}";
    document.getElementById("source").textContent = url;
    const events = new EventSource(url);
    events.addEventListener("time", (event) => {{
      document.getElementById("clock").textContent = event.data;
    }});
    events.onerror = () => {{
      document.getElementById("clock").textContent = "reconnecting...";
    }};
  </script>
</body>
</html>
"""


def _tick(n: int) -> ServerSentEvent:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return ServerSentEvent(data=now, event="time", id=str(n))


@app.get("/")
def index(request: Request) -> Response:
    """Show the clock page; ``?sync=1`` makes it listen to the sync stream."""
    source = "/clock-sync" if request.query.get("sync") else "/clock"
    return Response.html(PAGE.format(source=source))


async def clock_events() -> AsyncIterator[ServerSentEvent]:
    """Yield the time once a second, with a comment half-way through each second."""
    n = 0
    while True:
        yield _tick(n)
        n += 1
        await asyncio.sleep(0.5)
        yield ServerSentEvent(comment="ping")
        await asyncio.sleep(0.5)


def clock_events_sync() -> Iterator[ServerSentEvent]:
    """The sync twin of ``clock_events``: it blocks in ``time.sleep``."""
    n = 0
    while True:
        yield _tick(n)
        n += 1
        time.sleep(0.5)
        yield ServerSentEvent(comment="ping")
        time.sleep(0.5)


@app.get("/clock")
async def clock(request: Request) -> Response:
    """Stream the time from an async generator."""
    return Response.sse(clock_events())


@app.get("/clock-sync")
def clock_sync(request: Request) -> Response:
    """Stream the time from a sync generator (under Uvicorn each step runs in the thread pool)."""
    return Response.sse(clock_events_sync())
