"""The WebSocket app that ``test_servers_websocket.py`` runs under a real Uvicorn process.

Endpoints:

- ``/echo``: accepts the first subprotocol it supports (``echo.v2``, then ``echo.v1``) among
  those the client offers, or none; echoes text messages.
- ``/echo-bytes``: echoes binary messages.
- ``/close/{code:int}``: accepts, then closes with ``code`` and the reason ``?reason=``
  (``"bye"`` by default).
- ``/ticker``: sends a message every 10 ms until the client leaves, then prints
  ``ticker: client left`` to stderr (the server's log).
- ``/send/{case}``: sends a memoryview, or a value of the wrong type (close 1011), then
  ``"after"``.
- ``/relay``: echoes each text message 0.2 s later, ignoring a client that left meanwhile;
  prints ``relay: loop ended`` to stderr when its ``iter_text()`` loop ends.
- ``/boom``: accepts, waits for one message, then fails (close 1011).
- ``/guarded``: like ``/echo``, but the ``guard`` flow refuses the handshake without
  ``?token=s3cret``: with a 401 whose JSON body says why, or, with ``?token=odd``, with a 499
  (a status no server can send as a refusal: the client gets 403), with ``?token=none``,
  with a 304 (no body, no length), or, with ``?token=fine``, with a 200 ``fine`` (a refusal
  that says nothing went wrong: the client gets a 403).
- ``/peeked``: like ``/echo``, but the ``peek`` flow reads the handshake's (empty) body and
  asks whether the client has gone first, as a flow that reads bodies would; the handler sends
  what the flow saw, then echoes.
- ``/unwelcome``: raises ``WebSocketDisconnect`` before accept() (a 403), or with ``?late=1``
  after it (a close with 1000).
- ``/plain``: an HTTP-only route (a WebSocket handshake there is refused).
- ``/held``: an HTTP route that streams ``first``, then ``last`` once ``/release`` is asked
  for (on another connection): a request that is still answered, and watches for its
  client's departure meanwhile, as a stream does.
- ``/watched``: a task of its own closes with 4000 (``"idle"``) while the handler waits for a
  message; prints ``watched: receive ended (code)`` to stderr once the receive has ended.

Messages are limited to ``MAX_MESSAGE`` bytes (a bigger one closes with 1009). The ``guard`` flow
also stamps ``x-served-by: ws_app`` on every answer, handshakes included. ``CORS`` allows the
origin ``ALLOWED_ORIGIN`` only: a handshake with another ``Origin`` is refused (one without any
is not).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator

from microweb import App, Limits, Request, Response, WebSocket, WebSocketDisconnect
from microweb.plugins import CORS

MAX_MESSAGE = 1024
SUPPORTED_SUBPROTOCOLS = ("echo.v2", "echo.v1")
ALLOWED_ORIGIN = "https://app.example"

app = App(limits=Limits(max_websocket_message=MAX_MESSAGE))
app.install(CORS([ALLOWED_ORIGIN]))


@app.middleware
def guard(request: Request) -> Iterator[Response | None]:
    """Refuse ``/guarded`` without the token; stamp every other answer."""
    token = request.query.get("token")
    if request.path == "/guarded" and token != "s3cret":
        refusal = Response.json({"error": "a token is required"}, status=401)
        refusal.headers["www-authenticate"] = "Bearer"
        if token == "odd":
            refusal = Response.text("odd", status=499)
        elif token == "none":
            refusal = Response(b"", status=304)
        elif token == "fine":
            refusal = Response.text("fine")
        yield refusal
        return
    response = yield
    response.headers["x-served-by"] = "ws_app"


@app.middleware
async def peek(request: Request) -> AsyncIterator[None]:
    """On ``/peeked``, ask whether the client has gone and read the body, for the handler."""
    if request.path == "/peeked":
        request.state.peeked = [await request.ais_disconnected(), await request.atext()]
    yield


@app.websocket("/peeked")
async def peeked(ws: WebSocket) -> None:
    """Send what the ``peek`` flow saw, then echo text messages."""
    await ws.accept()
    await ws.send_json(ws.request.state.peeked)
    async for text in ws.iter_text():
        await ws.send_text(text)


@app.websocket("/guarded", name="guarded")
@app.websocket("/echo")
async def echo(ws: WebSocket) -> None:
    """Echo text messages, in the best subprotocol both sides know."""
    chosen = next((p for p in SUPPORTED_SUBPROTOCOLS if p in ws.subprotocols), None)
    await ws.accept(subprotocol=chosen)
    async for text in ws.iter_text():
        await ws.send_text(text)


@app.websocket("/echo-bytes")
async def echo_bytes(ws: WebSocket) -> None:
    """Echo binary messages."""
    await ws.accept()
    async for data in ws.iter_bytes():
        await ws.send_bytes(data)


@app.websocket("/close/{code:int}")
async def close_with(ws: WebSocket, code: int) -> None:
    """Close at once with ``code`` and the reason ``?reason=`` (``"bye"`` by default)."""
    await ws.accept()
    await ws.close(code, ws.request.query.get("reason", "bye"))


@app.websocket("/ticker")
async def ticker(ws: WebSocket) -> None:
    """Send a count until the client leaves (only sending: the departure shows in a send)."""
    await ws.accept()
    count = 0
    try:
        while True:
            await ws.send_text(str(count))
            count += 1
            await asyncio.sleep(0.01)
    except WebSocketDisconnect as exc:
        print(f"ticker: client left ({exc.code})", file=sys.stderr, flush=True)


@app.websocket("/watched")
async def watched(ws: WebSocket) -> None:
    """Close from a watchdog task while a receive waits: the receive ends with that close."""
    await ws.accept()

    async def watchdog() -> None:
        await ws.close(4000, "idle")

    closing = asyncio.create_task(watchdog())
    try:
        await ws.receive_text()
    except WebSocketDisconnect as exc:
        print(f"watched: receive ended ({exc.code})", file=sys.stderr, flush=True)
    await closing


@app.websocket("/send/{case}")
async def send_case(ws: WebSocket, case: str) -> None:
    """Send one message of the kind ``case`` names, then ``"after"``.

    ``memoryview``: ``b"view"`` as a memoryview; ``text-none``: ``send_text(None)``;
    ``bytes-str``: ``send_bytes("a str")``; ``surrogate``: a text with a lone surrogate. The
    last three fail the handler (close 1011).
    """
    await ws.accept()
    if case == "memoryview":
        await ws.send_bytes(memoryview(b"view"))
    elif case == "surrogate":
        await ws.send_text("bad \udc80")
    elif case == "text-none":
        await ws.send_text(None)  # type: ignore[arg-type]
    else:
        await ws.send_bytes("a str")  # type: ignore[arg-type]
    await ws.send_text("after")


@app.websocket("/relay")
async def relay(ws: WebSocket) -> None:
    """Echo each text message 0.2 s later, as a broadcast would deliver it: a client that has
    left meanwhile is skipped. Prints ``relay: loop ended`` once the loop has ended."""
    await ws.accept()
    async for text in ws.iter_text():
        await asyncio.sleep(0.2)
        # NOTE: as examples/chat.py's broadcast, which goes on without a client that left.
        with contextlib.suppress(WebSocketDisconnect):
            await ws.send_text(text)
    print("relay: loop ended", file=sys.stderr, flush=True)


@app.websocket("/boom")
async def boom(ws: WebSocket) -> None:
    """Fail after the first message."""
    await ws.accept()
    await ws.receive_text()
    raise RuntimeError("boom (expected by the test)")


@app.websocket("/token")
async def token(ws: WebSocket) -> None:
    """Echo the X-Token header, read before accept(): without it, its 400 (a 403 where the
    server cannot send that answer)."""
    value = ws.headers["x-token"]
    await ws.accept()
    await ws.send_text(value)


@app.websocket("/unwelcome")
async def unwelcome(ws: WebSocket) -> None:
    """Raise ``WebSocketDisconnect`` before accept() (a 403), or after it with ``?late=1``."""
    if ws.request.query.get("late"):
        await ws.accept()
    raise WebSocketDisconnect(4001, "not welcome")


@app.get("/plain")
def plain(request: Request) -> str:
    """An HTTP route with no WebSocket endpoint."""
    return "plain"


_released = asyncio.Event()


@app.get("/held")
def held(request: Request) -> Response:
    """Stream ``first``, then ``last`` once ``/release`` is asked for."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first "
        await _released.wait()
        _released.clear()
        yield b"last"

    return Response.stream(chunks())


@app.get("/release")
async def release(request: Request) -> str:
    """End the stream of ``/held``."""
    _released.set()
    return "released"
