"""The app that ``test_behind_nginx.py`` serves behind nginx, with ``microweb serve``.

It is served with ``--forwarded-allow-ips 127.0.0.1`` (nginx's address), as the deployment
docs say; with ``$NGINX_APP_FORWARDED`` set, it installs ``ProxyHeaders`` that reads
``Forwarded`` instead. Endpoints:

- ``/whoami`` (also under ``/events/`` and ``/ws/``, nginx's other locations): the client,
  scheme, host and URL the app sees, and an absolute URL built from them and ``url_for``.
- ``/go``: a redirect to ``/whoami``, absolute, built the same way.
- ``POST /echo``: the length of the body read (``def``); ``POST /aecho`` the same (``async``).
- ``POST /small``: a body limit of ``SMALL_LIMIT`` bytes (413 past it).
- ``POST /private``: 401 before the body is read.
- ``/boom``: an error in the handler (500).
- ``/nothing``: 204.
- ``/file``: ``Response.file`` of ``FILE_BODY``; ``/static/...`` the same file by the
  ``Static`` plugin; both gzipped (the ``GZip`` plugin) for a client that asks.
- ``/slow``: ``SLOW_CHUNKS`` chunks, 0.2 s apart; with ``?unbuffered``, the response says
  ``X-Accel-Buffering: no``.
- ``/sleep``: answers after ``?s=`` seconds.
- ``/events/ticks``: an event stream, one event every ``TICK`` seconds; when the stream ends,
  the generator's ``finally`` prints ``ticks: stream closed`` to stderr (the server's log).
- ``/events/lines``: a line every ``TICK`` seconds, a plain stream without
  ``X-Accel-Buffering``: only the location's ``proxy_buffering off`` lets it through as it goes.
- ``/ws/echo`` (WebSocket): echoes text; ``close:CODE`` closes with ``CODE``; when the client
  closes, prints ``ws: client closed CODE`` to stderr.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from microweb import App, HTTPError, Request, Response, WebSocket, WebSocketDisconnect
from microweb.plugins import GZip, ProxyHeaders, Static

SMALL_LIMIT = 1000
SLOW_CHUNKS = 5
TICK = 0.3
FILE_BODY = b"".join(b"line %04d of a file served behind nginx\n" % n for n in range(500))

STATIC_DIR = Path(os.environ.get("NGINX_APP_STATIC") or tempfile.mkdtemp(prefix="nginx-app-"))
(STATIC_DIR / "page.txt").write_bytes(FILE_BODY)

app = App()
app.install(GZip())
app.install(Static(STATIC_DIR, prefix="/static"))
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
    }


@app.get("/whoami")
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


@app.post("/aecho")
async def aecho(request: Request) -> dict[str, int]:
    """Read the whole body and tell its length, from async code."""
    return {"length": len(await request.aread())}


@app.post("/small", limits={"max_body_size": SMALL_LIMIT})
def small(request: Request) -> dict[str, int]:
    """Read a body of at most ``SMALL_LIMIT`` bytes."""
    return {"length": len(request.read())}


@app.post("/private")
def private(request: Request) -> str:
    """Refuse every request before reading its body."""
    raise HTTPError(401, headers={"www-authenticate": "Bearer"})


@app.get("/boom")
def boom(request: Request) -> str:
    """Fail."""
    raise RuntimeError("boom")


@app.get("/nothing")
def nothing(request: Request) -> None:
    """Answer 204."""


@app.get("/file")
def file(request: Request) -> Response:
    """Send the file, with ranges and conditional requests."""
    return Response.file(STATIC_DIR / "page.txt", media_type="text/plain")


@app.get("/slow")
def slow(request: Request) -> Response:
    """Stream ``SLOW_CHUNKS`` chunks, 0.2 s apart."""

    def chunks() -> Iterator[bytes]:
        for n in range(SLOW_CHUNKS):
            if n:
                time.sleep(0.2)
            yield b"chunk %d\n" % n

    response = Response.stream(chunks(), media_type="text/plain")
    if "unbuffered" in request.query:
        response.headers["x-accel-buffering"] = "no"
    return response


@app.get("/sleep")
def sleep(request: Request) -> str:
    """Answer after ``?s=`` seconds."""
    time.sleep(float(request.query.get("s", "1")))
    return "slept"


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
def lines(request: Request) -> Response:
    """Send a line every ``TICK`` seconds until the client leaves, as a plain stream."""

    def numbered() -> Iterator[bytes]:
        n = 0
        while True:
            yield b"line %d\n" % n
            n += 1
            time.sleep(TICK)

    return Response.stream(numbered(), media_type="text/plain")


@app.websocket("/ws/echo")
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
