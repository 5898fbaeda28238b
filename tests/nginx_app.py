"""The app that ``test_behind_nginx.py`` serves behind nginx, with ``microweb serve``.

It is served with ``--forwarded-allow-ips 127.0.0.1`` (nginx's address), as the deployment
docs say; with ``$NGINX_APP_FORWARDED`` set, it installs ``ProxyHeaders`` that reads
``Forwarded`` instead. Endpoints:

- ``/whoami`` (also ``/events`` and under ``/events/`` and ``/ws/``, nginx's other
  locations): the request ID
  (``RequestID`` is installed, as in ``examples/deploy/app.py``), the client,
  scheme, host and URL the app sees, and an absolute URL built from them and ``url_for``.
- ``/go``: a redirect to ``/whoami``, absolute, built the same way.
- ``POST /echo``: the length of the body read.
- ``POST /small``: a body limit of ``SMALL_LIMIT`` bytes (413 past it).
- ``POST /private``: 401 before the body is read.
- ``/boom``: an error in the handler (500).
- ``/cookie/{size}``: sets cookie ``big``, name and value ``size`` bytes together (a browser
  keeps up to 4096), as a ``Sessions`` cookie grows.
- ``/events/ticks``: an event stream, one event every ``TICK`` seconds; when the stream ends,
  the generator's ``finally`` prints ``ticks: stream closed`` to stderr (the server's log).
- ``/events/lines``: a line every ``TICK`` seconds, a plain stream without
  ``X-Accel-Buffering``: only the location's ``proxy_buffering off`` lets it through as it goes.
  ``/lines`` is the same stream in nginx's buffering ``location /``, with
  ``X-Accel-Buffering: no``, as docs/streaming.md says to send it there.
- ``/ws/echo`` and ``/ws`` (WebSockets): echo text; ``close:CODE`` closes with ``CODE``; when
  the client closes, prints ``ws: client closed CODE`` to stderr.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

from microweb import App, HTTPError, Request, Response, WebSocket, WebSocketDisconnect
from microweb.plugins import ProxyHeaders, RequestID

SMALL_LIMIT = 1000
TICK = 0.3

app = App()
app.install(RequestID())
if os.environ.get("NGINX_APP_FORWARDED"):
    # NOTE: behind nginx that writes Forwarded (docs/plugins-proxy.md's line), not X-Forwarded-*.
    app.install(ProxyHeaders(["127.0.0.1"], forwarded=True))


def _seen(request: Request) -> dict[str, object]:
    client = request.client
    return {
        "client": None if client is None else [client.host, client.port],
        "scheme": request.scheme,
        "host": request.host,
        "url": request.url,
        "external": f"{request.scheme}://{request.host}{request.url_for('whoami')}",
        "forwarded_for": request.headers.get("x-forwarded-for"),
        "forwarded": request.headers.get("forwarded"),
        "request_id": request.state.request_id,
    }


@app.get("/whoami")
@app.get("/events", name="events_itself")
@app.get("/events/whoami", name="events_whoami")
@app.get("/ws/whoami", name="ws_whoami")
def whoami(request: Request) -> dict[str, object]:
    """Tell what the app sees of the client and of the URL."""
    return _seen(request)


@app.get("/go")
def go(request: Request) -> Response:
    """Redirect to ``/whoami`` with an absolute URL."""
    return Response.redirect(f"{request.scheme}://{request.host}{request.url_for('whoami')}")


@app.post("/echo")
def echo(request: Request) -> dict[str, int]:
    """Read the whole body and tell its length."""
    return {"length": len(request.read())}


@app.post("/small", limits={"max_body_size": SMALL_LIMIT})
def small(request: Request) -> dict[str, int]:
    """Read a body of at most ``SMALL_LIMIT`` bytes."""
    return {"length": len(request.read())}


@app.post("/private")
def private(request: Request) -> str:
    """Refuse every request before reading its body."""
    raise HTTPError(401, headers={"www-authenticate": "Bearer"})


@app.get("/cookie/{size:int}")
def big_cookie(request: Request, size: int) -> Response:
    response = Response.text("set")
    response.set_cookie("big", "x" * (size - len("big")), httponly=True, secure=True)
    return response


@app.get("/boom")
def boom(request: Request) -> str:
    """Fail."""
    raise RuntimeError("boom")


@app.get("/events/ticks")
def ticks(request: Request) -> Response:
    """Send an event every ``TICK`` seconds until the client leaves."""

    def events() -> Iterator[str]:
        try:
            n = 0
            while True:
                yield f"tick {n}"
                n += 1
                time.sleep(TICK)
        finally:
            print("ticks: stream closed", file=sys.stderr, flush=True)

    return Response.sse(events())


@app.get("/events/lines")
@app.get("/lines", name="unbuffered_lines")
def lines(request: Request) -> Response:
    """Send a line every ``TICK`` seconds until the client leaves, as a plain stream."""

    def numbered() -> Iterator[bytes]:
        n = 0
        while True:
            yield b"line %d\n" % n
            n += 1
            time.sleep(TICK)

    response = Response.stream(numbered(), media_type="text/plain")
    if request.path == "/lines":
        response.headers["x-accel-buffering"] = "no"
    return response


@app.websocket("/ws/echo")
@app.websocket("/ws", name="ws_itself")
async def ws_echo(ws: WebSocket) -> None:
    """Echo text with the scheme and client seen; ``close:CODE`` closes with that code."""
    await ws.accept()
    request = ws.request
    while True:
        try:
            text = await ws.receive_text()
        except WebSocketDisconnect as left:
            print(f"ws: client closed {left.code}", file=sys.stderr, flush=True)
            return
        if text.startswith("close:"):
            await ws.close(int(text.removeprefix("close:")))
            return
        client = request.client.host if request.client else None
        await ws.send_text(f"{request.scheme} {client} {text}")
