"""WebSocket connections (ASGI only): the object a ``@app.websocket`` handler receives."""

from __future__ import annotations

from codecs import BOM_UTF8
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._datastructures import Headers
from ._media import encode_json
from ._strict_json import RefusedJSON, loads_json
from ._types import Message, Receive, Send
from ._ws_handshake import HANDSHAKE_HEADERS

if TYPE_CHECKING:
    from ._request import Request

T = TypeVar("T")

CONNECTING, OPEN, CLOSED = "connecting", "open", "closed"


class WebSocketDisconnect(Exception):
    """The connection ended: the client left, or the app closed it after a protocol error.

    Args:
        code: The close code (1000 normal, 1001 going away, 1009 message too big, ...).
        reason: The close reason, if any.
    """

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        self.code, self.reason = code, reason
        super().__init__(code, reason)


class WebSocket:
    """A WebSocket connection, handed to an ``async def`` handler registered with
    ``app.websocket(path)``.

    The handshake's head is ``ws.request`` (path, headers, query, cookies, client, state);
    ``ws.path_params`` holds the converted template parameters.
    """

    def __init__(
        self,
        request: Request,
        receive: Receive,
        send: Send,
        subprotocols: list[str],
        max_message_size: int,
    ) -> None:
        self.request = request
        self.subprotocols = subprotocols
        self.max_message_size = max_message_size
        self._receive, self._send = receive, send
        self.state = CONNECTING
        self.close_code: int | None = None
        # NOTE: the client's leaving, noticed by a send but not yet raised by a receive.
        self._gone_unreceived = False
        # NOTE: ended by the client (its close, a send that found it gone, a message that broke
        # the rules), not by the handler's close().
        self._client_gone = False

    @property
    def path_params(self) -> dict[str, Any]:
        """The template parameters of the route."""
        return self.request.path_params

    @property
    def headers(self) -> Headers:
        """The handshake request's headers."""
        return self.request.headers

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Mapping[str, str] | Headers | None = None,
    ) -> None:
        """Accept the connection, optionally choosing one of the client's subprotocols.

        ``headers`` go out with the acceptance, over those the flows set on the handshake of
        the same name; a ``Set-Cookie`` is added to theirs.

        Raises:
            RuntimeError: If called twice or after close.
            ValueError: If the client did not offer ``subprotocol``, or ``headers`` (or the
                flows) set ``Upgrade``, ``Sec-WebSocket-Accept`` or
                ``Sec-WebSocket-Extensions``, which the server sets, or
                ``Sec-WebSocket-Protocol``, which ``subprotocol`` sets.
            WebSocketDisconnect: If the client left during the handshake.
        """
        if self.state != CONNECTING:
            raise RuntimeError(f"accept() on a WebSocket that is {self.state}")
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(
                f"the client did not offer subprotocol {subprotocol!r} (it offered "
                f"{self.subprotocols})"
            )
        from_flows = getattr(self.request.state, HANDSHAKE_HEADERS, None)
        merged = Headers(from_flows.items() if from_flows is not None else None)
        given = headers.items() if isinstance(headers, Headers) else Headers(headers).items()
        replaced = set()
        for name, value in given:
            if name == "set-cookie":
                # NOTE: one header per cookie: replaced, the flows' cookies (the session's)
                # were lost.
                merged.add(name, value)
            elif name in replaced:
                merged.add(name, value)  # NOTE: a Headers given may hold a name twice.
            else:
                merged[name] = value
                replaced.add(name)
        if "sec-websocket-protocol" in merged:
            # NOTE: past the check above: the client got a subprotocol it may not have offered
            # (and failed the handshake), or two, and the test client saw none.
            raise ValueError(
                "choose the subprotocol with accept(subprotocol=...), not a "
                "Sec-WebSocket-Protocol header"
            )
        clash = sorted(_SERVERS_OWN.intersection(merged.keys()))
        if clash:
            raise ValueError(
                f"header {clash[0]!r} of the handshake's answer is the server's to set: "
                "another one fails the handshake in the client"
            )
        # SPEC: RFC 9110 8.6, no Content-Length on a 1xx answer; the framework sets it, and
        # drops one the app set, as on any answer (every server sent it on the 101).
        merged.pop("content-length")
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]
        # NOTE: the client's websocket.connect is taken once the answer is known to be good: taken
        # before a refused header, it was gone, and a second accept() waited for a message the
        # client sends only once accepted (the handshake hung until the client gave up).
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self._closed_by_client(message)
        await self._transmit(
            {"type": "websocket.accept", "subprotocol": subprotocol, "headers": raw}
        )
        self.state = OPEN

    def _closed_by_client(self, message: Message) -> None:
        self.state, self.close_code = CLOSED, int(message.get("code", 1005))
        # NOTE: this raise is the receive's one, even when a send noticed the departure first.
        self._client_gone, self._gone_unreceived = True, False
        raise WebSocketDisconnect(self.close_code, message.get("reason") or "")

    async def _next(self, json: bool = False) -> tuple[str | None, bytes | None]:
        if self.state == CONNECTING:
            raise RuntimeError("receive before accept(): call `await ws.accept()` first")
        if self.state == CLOSED:
            if self._gone_unreceived:
                # NOTE: a send noticed first, maybe in another task (a broadcast that skips
                # clients that left): the receiving loop is told once too, and ends.
                self._gone_unreceived = False
                raise WebSocketDisconnect(1006, _GONE)
            if not self._client_gone:
                # NOTE: no WebSocketDisconnect was raised: the message said it was.
                raise RuntimeError(
                    f"receive after close(): the app closed this WebSocket (close code "
                    f"{self.close_code})"
                )
            raise RuntimeError(
                f"receive on a closed WebSocket (close code {self.close_code}); "
                "WebSocketDisconnect was raised already"
            )
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self._closed_by_client(message)
        text, data = message.get("text"), message.get("bytes")
        if data is not None:
            size = len(data)
        elif text is None:
            size = 0
        else:
            # PERF: an ASCII text's length is its size in UTF-8, with no copy of it (isascii()
            # reads a flag): a 1 MiB message 26.2 us -> 0.04 us, 100 bytes 63 -> 34 ns (timeit,
            # 2026-12-03).
            size = len(text) if text.isascii() else len(text.encode("utf-8"))
        limit = self.max_message_size
        if size > limit:
            await self._fail(1009, f"message larger than {limit} bytes")
        if json and size > (json_limit := self.request.limits.max_json_size):
            # NOTE: parsed JSON weighs far more than its text, as for request.json().
            await self._fail(1009, f"JSON message larger than {json_limit} bytes")
        return text, data

    async def _fail(self, code: int, reason: str) -> None:
        # NOTE: the client's fault: a broadcast from another task gets WebSocketDisconnect, as
        # for a client that left, not a RuntimeError that failed its own handler with 1011.
        self._client_gone = True
        await self.close(code, reason)
        raise WebSocketDisconnect(code, reason)

    async def receive_text(self) -> str:
        """Wait for a text message (a bytes message closes with 1003)."""
        text, _ = await self._next()
        if text is None:
            await self._fail(1003, "expected a text message")
        assert text is not None
        return text

    async def receive_bytes(self) -> bytes:
        """Wait for a binary message (a text message closes with 1003)."""
        _, data = await self._next()
        if data is None:
            await self._fail(1003, "expected a binary message")
        assert data is not None
        return data

    async def receive_json(self) -> Any:
        """Wait for a JSON message, text or binary.

        The parser is the one of ``request.json()``: invalid JSON, ``NaN``, a number beyond a
        float's range, an integer of more than 4,300 digits (whatever ``int()`` allows), a
        lone surrogate or lists and objects nested more than ``max_json_depth`` deep (512 by
        default) closes the connection with 1007 (its reason names which, as the 400 does); a
        message larger than ``max_json_size`` (or ``max_websocket_message``) with 1009. Unlike
        ``request.json()``, it does not skip a byte order mark: a message that starts with one
        closes with 1007 too.
        """
        text, data = await self._next(json=True)
        try:
            payload = text if text is not None else (data or b"").decode("utf-8")
            return loads_json(payload, self.request.limits.max_json_depth)
        except RefusedJSON as exc:
            # NOTE: as request.json()'s 400 says it: "invalid" sent a client whose integer
            # was past the digit limit looking for a syntax error.
            await self._fail(1007, f"JSON message {exc}")
        except ValueError:
            # NOTE: a BOM is not skipped, as request.json() skips a body's (RFC 8259 8.1: a
            # parser may): a message is UTF-8 by its frame, senders must not add one, and
            # Starlette's receive_json() refuses it too. Named, since nobody sees it (review311).
            marked = (text or "").startswith("\ufeff") or (data or b"").startswith(BOM_UTF8)
            await self._fail(1007, _BOM_REFUSED if marked else "invalid JSON message")

    def iter_text(self) -> AsyncIterator[str]:
        """Yield text messages until the client disconnects."""
        return _until_disconnect(self.receive_text)

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Yield binary messages until the client disconnects."""
        return _until_disconnect(self.receive_bytes)

    def iter_json(self) -> AsyncIterator[Any]:
        """Yield JSON messages (as ``receive_json()`` reads them) until the client disconnects."""
        return _until_disconnect(self.receive_json)

    async def _transmit(self, message: Message) -> None:
        # SPEC: ASGI servers raise an OSError subclass from send() once the client has gone.
        try:
            await self._send(message)
        except OSError:
            self.state, self.close_code = CLOSED, 1006
            self._gone_unreceived = self._client_gone = True
            raise WebSocketDisconnect(1006, _GONE) from None

    def _check_open(self, call: str) -> None:
        if self.state == CONNECTING:
            raise RuntimeError(f"{call} before accept(): call `await ws.accept()` first")
        if self.state == CLOSED:
            if self._client_gone:
                # NOTE: a send from another task (a broadcast) after the handler's receive saw
                # the client leave: the client is gone, as for a send that finds it so, where
                # a RuntimeError escaped the broadcaster's `except WebSocketDisconnect`.
                raise WebSocketDisconnect(self.close_code or 1006, _GONE)
            raise RuntimeError(f"{call} on a closed WebSocket (close code {self.close_code})")

    async def send_text(self, text: str) -> None:
        """Send a text message.

        Raises:
            TypeError: If ``text`` is not a ``str``; nothing is sent.
        """
        self._check_open("send_text()")
        if not isinstance(text, str):
            hint = ": send_bytes() sends bytes" if isinstance(text, _BINARY) else ""
            raise TypeError(f"send_text() takes a str, not {type(text).__name__}{hint}")
        await self._transmit({"type": "websocket.send", "text": text})

    async def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Send a binary message.

        Raises:
            TypeError: If ``data`` is not bytes-like; nothing is sent.
        """
        self._check_open("send_bytes()")
        if not isinstance(data, _BINARY):
            hint = ": send_text() sends a str" if isinstance(data, str) else ""
            raise TypeError(f"send_bytes() takes bytes, not {type(data).__name__}{hint}")
        # SPEC: an ASGI websocket.send message carries bytes, not any bytes-like object.
        payload = data if type(data) is bytes else bytes(data)
        await self._transmit({"type": "websocket.send", "bytes": payload})

    async def send_json(self, value: Any) -> None:
        """Send ``value`` as a JSON text message."""
        self._check_open("send_json()")
        await self._transmit({"type": "websocket.send", "text": encode_json(value).decode("utf-8")})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (before accept, the handshake is refused with an empty 403
        that carries the flows' headers, where the server can send one).

        Args:
            code: The close code: 1000-1003, 1007-1014, or 3000-4999 for the app's own.
            reason: A short reason, at most 123 bytes in UTF-8.

        Raises:
            ValueError: If the code may not be sent, or the reason is too long; the connection
                is left as it was.
            TypeError: If the code is not an ``int``, or the reason not a ``str``; the
                connection is left as it was.
        """
        _check_close(code, reason)
        if self.state == CLOSED:
            return
        self.state, self.close_code = CLOSED, code
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except OSError:
            self.close_code = 1006  # NOTE: the client left first; nothing more to say.

    def __repr__(self) -> str:
        return f"<WebSocket {self.request.path!r} {self.state}>"


_GONE = "the client went away"
_BOM_REFUSED = "JSON message starts with a byte order mark"

# NOTE: the server sends its own in a 101; the app's made a second (Upgrade, Sec-WebSocket-
# Accept), or claimed an extension the server did not agree to, and the websockets client
# failed the handshake under Uvicorn's both protocols, while the app took it as accepted.
_SERVERS_OWN = frozenset({"upgrade", "sec-websocket-accept", "sec-websocket-extensions"})

# NOTE: what the servers do with another type differs: Uvicorn's websockets-sansio sends
# nothing for send_text(None) and fails on a str given to send_bytes(); its legacy websockets
# implementation sends that str as a text message, and fails on None. So both check first.
_BINARY = (bytes, bytearray, memoryview)

# SPEC: RFC 6455 7.4.1-7.4.2: 1004 is reserved; 1005, 1006 and 1015 must not be sent; 1012-1014
# are registered since (IANA); 3000-4999 are for libraries and apps. Anything else, or a reason
# that makes the close frame's payload exceed 125 bytes (RFC 6455 5.5), makes the server's
# WebSocket library raise from send(): the client then gets no close frame at all.
_SENDABLE = frozenset((*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)))
MAX_REASON = 123


def _check_close(code: int, reason: str) -> None:
    # NOTE: 1000.0 == 1000 passed the check below, and the server's struct.pack() of it raised
    # from send(): the client got no close frame. An IntEnum code is an int, and is sent.
    if not isinstance(code, int) or isinstance(code, bool):
        raise TypeError(f"close() takes an int code, not {type(code).__name__}")
    if not isinstance(reason, str):
        raise TypeError(f"close() takes a str reason, not {type(reason).__name__}")
    if code not in _SENDABLE:
        raise ValueError(
            f"close code {code!r} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999"
        )
    try:
        size = len(reason.encode("utf-8"))
    except UnicodeEncodeError as exc:
        # NOTE: the codec's own message named no close() and no reason.
        raise ValueError(
            f"close reason {reason[:40]!r} is not UTF-8 text: it holds a lone surrogate at "
            f"position {exc.start}"
        ) from None
    if size > MAX_REASON:
        raise ValueError(f"close reason of {size} bytes: at most {MAX_REASON} bytes fit (UTF-8)")


async def _until_disconnect(receive: Callable[[], Awaitable[T]]) -> AsyncIterator[T]:
    """Yield what ``receive()`` gives until the client disconnects."""
    try:
        while True:
            yield await receive()
    except WebSocketDisconnect:
        return
