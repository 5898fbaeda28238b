"""The ASGI request: what the scope says of a request beyond its first line, read on first
use (the driver hooks of ``HeadProperties``), and the body source it makes."""

from __future__ import annotations

from collections.abc import Callable

from ._body import ASGIBody
from ._concurrency import ThreadHooks
from ._datastructures import Headers
from ._request import Request
from ._request_head import Address
from ._types import Message, Scope


class ASGIRequest(ThreadHooks, Request):
    """A request as the ASGI driver builds it, from a scope.

    Its ``_channel`` is ``(receive, loop)``: the body may be made in the pool (a ``def``
    handler), so the loop is known here, once the driver has it.
    """

    __slots__ = ()
    interface = "asgi"
    may_block = False
    _raw: Scope
    _raw_path: bytes

    def _read_raw_path(self) -> bytes:
        # NOTE: the driver gives it, once the root path is out of it.
        return self._raw_path

    def _make_body(self, limit: Callable[[], int]) -> ASGIBody:
        receive, loop = self._channel
        scope = self._raw
        if scope["type"] == "http":
            body = ASGIBody(scope["headers"], receive, loop)
        else:
            # NOTE: a WebSocket handshake has no body, and its receive() gives the socket's
            # messages, websocket.connect first, which accept() waits for: it is never read.
            body = ASGIBody([], _no_body, loop)
        body.limit = limit
        return body

    def _read_root_path(self) -> str:
        return str(self._raw.get("root_path", ""))

    def _read_headers(self) -> Headers:
        return Headers(
            _trusted=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw["headers"]]
        )

    def _read_content_type(self) -> str | None:
        for name, value in self._raw["headers"]:
            if name == b"content-type":
                return str(value.decode("latin-1"))
        return None

    def _read_server(self) -> tuple[str, int | None] | None:
        server = self._raw.get("server")
        return (server[0], server[1]) if server else None

    def _read_client(self) -> Address | None:
        client = self._raw.get("client")
        return Address(client[0], client[1]) if client else None


async def _no_body() -> Message:
    """The one message of an empty body: a WebSocket handshake's."""
    return {"type": "http.request", "body": b"", "more_body": False}
