"""The WebSocket side of ``TestClient``: ``WebSocketSession`` and ``WebSocketRefused``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from ._errors import unhandled_errors
from ._testing_http import Ended, ended_in_place_of, served
from ._websocket import WebSocketDisconnect

if TYPE_CHECKING:
    from ._asgi import ASGIDriver
    from ._testing_asgi import LoopThread

# NOTE: seconds a WebSocket session waits for the app: its answer to the handshake, a message,
# the handler's end once the client has closed.
WAIT = 10
# NOTE: how long a WebSocket handler has to end once the client stops (seconds).
STOPPING = 2
# NOTE: what a session used once its client was closed says.
SESSION_CUT_OFF = (
    "the TestClient was closed while this WebSocket session was open: the app's session was "
    "cut off as a server's shutdown cuts it off"
)


class WebSocketSession:
    """The client side of a WebSocket connection to the app under test (sync API).

    Made by ``TestClient.websocket_connect()``; use it as a context manager. With the
    client's ``raise_server_exceptions=True``, an error that ends the handler (and that it
    would close with 1011) is raised, as the very object, by the call that sees the end:
    a ``receive_*()`` that gets the close, ``close()``, or the end of the ``with`` block
    (unless the block ends with an error of its own); one refused at the handshake is raised
    by ``websocket_connect()``. It is raised once.
    """

    __test__ = False

    def __init__(
        self,
        loop: LoopThread,
        app: ASGIDriver,
        scope: dict[str, Any],
        raise_server_exceptions: bool = False,
        *,
        owner: object = None,
        handshake: httpx.Request | None = None,
    ) -> None:
        self._loop = loop
        # NOTE: the TestClient, kept alive while the session is: dropped, it would close the
        # loop (TestClient(app).websocket_connect(...) in one line, or in a fixture).
        self._owner = owner
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # NOTE: what the app reports as unhandled, when watched; emptied once raised.
        self._errors: list[BaseException] | None = [] if raise_server_exceptions else None
        # NOTE: the close the session has seen (the app's, or the test's own): (code, reason).
        self._ended: tuple[int, str] | None = None
        # NOTE: the messages put for the app, and those it took; once the client side has
        # closed (the test's close(), the server's stop), the app's sends fail, as a server's
        # do once its client has gone, when it has taken the ``_closed_at`` messages sent
        # before the close: a server reads on only once the app took what it read before.
        self._put = self._taken = 0
        self._closed_at: int | None = None
        self._returned = False  # NOTE: whether the handler returned (raised nothing).
        self._task: asyncio.Future[Any] = loop.run(self._start(app, scope))
        self.accepted = loop.run(self._answer_to_handshake())
        if self.accepted["type"] != "websocket.accept":
            refused = loop.run(self._refusal(self.accepted, handshake))
            self._loop.run(self._finish())
            self._raise_reported()
            raise refused
        self.subprotocol: str | None = self.accepted.get("subprotocol")

    async def _start(self, app: ASGIDriver, scope: dict[str, Any]) -> asyncio.Task[None]:
        async def send(message: Any) -> None:
            closed_at = self._closed_at
            if closed_at is not None and self._taken >= closed_at and message["type"] in _SENT:
                # SPEC: ASGI servers raise an OSError subclass from send() once the client has
                # gone. Taken in silence, a handler that only sends (a ticker, a feed) never
                # heard that the test had closed: close() waited 10 s, then raised TimeoutError.
                raise ConnectionResetError("the client closed the WebSocket")
            text = message.get("text")
            if type(text) is str and not text.isascii():
                # NOTE: as Uvicorn's WebSocket protocols do, which encode it first: a lone
                # surrogate raises UnicodeEncodeError into the app, and nothing is sent.
                text.encode("utf-8")
            await self._from_app.put(dict(message))
            if message["type"] == "websocket.close":
                # SPEC: ASGI, websocket.disconnect is sent when the server closes the
                # connection too; Uvicorn sends it with the app's close code and reason. A
                # receive pending in another task (a watchdog closed an idle socket) waited
                # until the test's own close, and got its code.
                gone = {"type": "websocket.disconnect", "code": message.get("code", 1000)}
                await self._deliver({**gone, "reason": message.get("reason") or ""})

        async def receive() -> dict[str, Any]:
            message = await self._to_app.get()
            self._taken += 1
            return message

        # NOTE: set in this task's own context, which the app's task copies: the list is
        # this session's, for as long as the connection lasts.
        unhandled_errors.set(self._errors)
        await self._deliver({"type": "websocket.connect"})
        return asyncio.ensure_future(self._served(app(scope, receive, send)))

    async def _served(self, call: Awaitable[None]) -> None:
        await served(call)
        self._returned = True

    async def _deliver(self, message: dict[str, Any]) -> None:
        self._put += 1
        await self._to_app.put(message)

    async def _client_closes(self, code: int, at_once: bool = False) -> None:
        """Tell the app that the client closed with ``code``: after the messages sent before,
        or, ``at_once``, before them (the server's stop, which reads no more)."""
        if self._closed_at is None:
            self._closed_at = 0 if at_once else self._put
        await self._deliver({"type": "websocket.disconnect", "code": code})

    async def _answer_to_handshake(self) -> dict[str, Any]:
        """Return the app's accept or close; give up on an app that sends neither in time.

        Raises:
            TimeoutError: If the app neither accepted nor refused within ``WAIT`` seconds; its
                handler is cancelled, as a server's shutdown would.
        """
        try:
            return await asyncio.wait_for(self._next_message(), timeout=WAIT)
        except asyncio.TimeoutError:  # NOTE: not yet the builtin TimeoutError on Python 3.10.
            # NOTE: a handler that never calls accept() nor close() held the test for ever.
            await _give_up(self._task)
            raise TimeoutError(
                f"the app neither accepted nor refused the WebSocket handshake in {WAIT} s"
            ) from None

    async def _refusal(
        self, answer: dict[str, Any], handshake: httpx.Request | None
    ) -> WebSocketRefused:
        """Return the refusal the client sees, as a server sends it: the app's response (the
        denial-response extension), or 403 for a close before accept."""
        if answer["type"] != "websocket.http.response.start":
            empty = httpx.Response(403, request=handshake)
            return WebSocketRefused(empty, answer.get("code", 1000))
        body = bytearray()
        while True:
            message = await asyncio.wait_for(self._next_message(), timeout=WAIT)
            if message["type"] != "websocket.http.response.body":
                break  # NOTE: the app ended, its answer unfinished: the server sends none.
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = [(bytes(name), bytes(value)) for name, value in answer.get("headers", [])]
        response = httpx.Response(
            answer["status"], headers=headers, content=bytes(body), request=handshake
        )
        return WebSocketRefused(response)

    async def _next_message(self) -> dict[str, Any]:
        """Return the app's next message; if the app ends first, what a server makes of it.

        Raises:
            Exception: An error that escaped the app, as a server would log it.
        """
        if self._from_app.empty() and not self._task.done():
            waiting = asyncio.ensure_future(self._from_app.get())
            try:
                await asyncio.wait([waiting, self._task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                # NOTE: also when this receive is cancelled (its timeout): a wait left running
                # would take the app's next message from the receive after it.
                if not waiting.done():
                    waiting.cancel()
            if waiting.done():
                return waiting.result()
        if not self._from_app.empty():
            return self._from_app.get_nowait()
        # NOTE: the app ended and said nothing more (a server closes the connection): its error
        # is raised; after an accept, the client sees 1006, the code of a connection that
        # ended without a close frame; before, a refused handshake.
        self._task.result()
        return {"type": "websocket.close", "code": 1006}

    async def _finish(self) -> None:
        await asyncio.wait([self._task], timeout=WAIT)
        if not self._task.done():
            await _give_up(self._task)
            raise TimeoutError(f"the WebSocket handler did not end within {WAIT} s of the close")
        self._task.result()

    def _raise_reported(self) -> None:
        if self._errors:
            error = self._errors[0]
            self._errors.clear()
            raise error

    def _check_client(self) -> None:
        if self._loop.stopping:
            # NOTE: "Event loop is closed" said nothing; the close cancelled the handler.
            raise RuntimeError(SESSION_CUT_OFF)

    def _check_open(self) -> None:
        """Raise the close the session has seen, as a WebSocket client raises it on a send.

        Raises:
            WebSocketDisconnect: With the close's code and reason.
        """
        self._check_client()
        if self._ended is not None:
            # NOTE: a send after the close went nowhere without a word, where a real client
            # raises (the websockets library's ConnectionClosed).
            raise WebSocketDisconnect(*self._ended)

    def send_text(self, text: str) -> None:
        """Send a text message to the app.

        Raises:
            TypeError: If ``text`` is not a ``str``; nothing is sent.
            UnicodeEncodeError: If ``text`` has a lone surrogate, which UTF-8 cannot carry.
            WebSocketDisconnect: If the session has seen the connection close.
        """
        # NOTE: the app got what it was given: bytes from receive_text(), a lone surrogate a
        # real client cannot send (a WebSocket client encodes text in UTF-8 first).
        if not isinstance(text, str):
            raise TypeError(f"send_text() takes a str, not {type(text).__name__}")
        text.encode("utf-8")
        self._check_open()
        self._loop.run(self._deliver({"type": "websocket.receive", "text": text}))

    def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Send a binary message to the app.

        Raises:
            TypeError: If ``data`` is not bytes-like; nothing is sent.
            WebSocketDisconnect: If the session has seen the connection close.
        """
        # NOTE: the app got what it was given: a str from receive_bytes(); a bytearray where
        # a server's message carries bytes.
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"send_bytes() takes bytes, not {type(data).__name__}")
        self._check_open()
        message = {"type": "websocket.receive", "bytes": bytes(data)}
        self._loop.run(self._deliver(message))

    def send_json(self, value: Any) -> None:
        """Send ``value`` as a JSON text message."""
        self.send_text(json.dumps(value))

    def _receive(self) -> dict[str, Any]:
        self._check_open()
        try:
            message = self._loop.run(asyncio.wait_for(self._next_message(), timeout=WAIT))
        except asyncio.TimeoutError:  # NOTE: not yet the builtin TimeoutError on Python 3.10.
            raise TimeoutError(f"the app sent no message in {WAIT} s") from None
        except Exception:
            self._check_client()  # NOTE: a close from another thread cancelled the wait.
            raise
        if message["type"] == "websocket.close":
            self._ended = (message.get("code", 1000), message.get("reason") or "")
            self._raise_reported()
            raise WebSocketDisconnect(*self._ended)
        return message

    def receive_text(self) -> str:
        """Wait for a text message from the app.

        Raises:
            WebSocketDisconnect: If the app closed the connection (or the session saw it
                closed before: with that close's code).
            TypeError: If the app sent a binary message (it is consumed).
        """
        message = self._receive()
        if message.get("text") is None:
            raise TypeError("the app sent a binary message, not text: receive_bytes() takes it")
        return str(message["text"])

    def receive_bytes(self) -> bytes:
        """Wait for a binary message from the app.

        Raises:
            WebSocketDisconnect: If the app closed the connection (or the session saw it
                closed before: with that close's code).
            TypeError: If the app sent a text message (it is consumed).
        """
        message = self._receive()
        if message.get("bytes") is None:
            raise TypeError("the app sent a text message, not binary: receive_text() takes it")
        return bytes(message["bytes"])

    def receive_json(self) -> Any:
        """Wait for a JSON message from the app."""
        message = self._receive()
        return json.loads(message.get("text") or message.get("bytes") or b"")

    def close(self, code: int = 1000) -> None:
        """Disconnect (as a client) and wait for the handler to finish.

        Raises:
            Exception: The handler's unhandled error, not raised yet, under the client's
                ``raise_server_exceptions=True``.
        """
        self._end(code)
        self._raise_reported()

    def _server_stopped(self) -> None:
        """End the session as a server's stop does, before the app's shutdown hooks run: the
        client gets a 1012 close, the handler a 1012 disconnect and ``STOPPING`` seconds to end
        (then it is left to the loop's closing, which cancels it)."""
        if self._task.done():
            return
        # NOTE: the server's close frame: after what the app sent before, before what it
        # sends once told (a server that stops sends nothing more).
        self._loop.run(self._from_app.put({"type": "websocket.close", "code": 1012}))
        self._loop.run(self._client_closes(1012, at_once=True))
        self._loop.run(asyncio.wait([self._task], timeout=STOPPING))

    def _end(self, code: int) -> None:
        if self._ended is None:
            # NOTE: a receive after the test's own close raised 1006, the code of a connection
            # that dropped, as after the app's close (4001, say) did from the second on.
            self._ended = (code, "")
        if not self._task.done():
            self._loop.run(self._client_closes(code))
            self._loop.run(self._finish())
        if self._returned and self._task.done() and not isinstance(self._task, Ended):
            # NOTE: a handler that returned has nothing left to raise: its task, which kept
            # the ContextVar values it set, is let go (one that raised is kept, its error too).
            self._task = ended_in_place_of(self._task)

    def __enter__(self) -> WebSocketSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            # NOTE: the test's own error says more than the app's, which the log has.
            self._end(1000)


class WebSocketRefused(WebSocketDisconnect):
    """The app refused the WebSocket handshake; ``response`` is the HTTP answer the client got.

    That is the response the app refused it with: a flow's or an error handler's, an empty
    403 where the handler closed before accepting or no route takes the path, the router's
    400 for a malformed path. The test client announces the denial-response extension, as
    ``microweb serve`` does; a server that cannot send such an answer sends a bare 403.
    ``code`` is 1008 (policy violation), or the app's own close code where its close went out
    as a close.

    Args:
        response: The answer to the handshake.
        code: The close code.
    """

    def __init__(self, response: httpx.Response, code: int = 1008) -> None:
        super().__init__(code, f"handshake refused ({response.status_code})")
        self.response = response


async def _give_up(task: asyncio.Future[Any]) -> None:
    """Cancel the app's ``task`` and let it end, for ``WAIT`` seconds at most."""
    task.cancel()
    # NOTE: bounded, unlike wait_for()'s own cancel: a handler that catches CancelledError and
    # goes on waiting held the test for ever. The loop's stop cancels it again, also bounded.
    await asyncio.wait([task], timeout=WAIT)


# NOTE: what an app sends on an open connection; an accept or a refusal has no client to miss.
_SENT = frozenset({"websocket.send", "websocket.close"})
