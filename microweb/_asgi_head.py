"""The ASGI request head: what the scope says of a request beyond its first line, read on
first use (a ``RequestHead``), and the body source it makes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._body import ASGIBody
from ._concurrency import ThreadSpooler, run_blocking, sync_only
from ._datastructures import Headers
from ._request_head import Address
from ._types import Receive, Scope

if TYPE_CHECKING:
    from ._request import Request


class ASGIHead:
    """The request head in the scope, read on first use (``RequestHead``)."""

    __slots__ = ("_body_headers", "_loop", "_receive", "_scope", "made", "raw_path_bytes")
    interface = "asgi"
    may_block = False
    sync_only = staticmethod(sync_only)
    run_blocking = staticmethod(run_blocking)
    spooler = ThreadSpooler
    raw_path_bytes: bytes

    def __init__(self, scope: Scope, receive: Receive, body_headers: list[Any]) -> None:
        # NOTE: raw_path_bytes is set by the driver, once the root path is out of it.
        self._scope, self._receive, self._body_headers = scope, receive, body_headers
        # NOTE: the body may be made in the pool (a def handler); the loop is known here.
        self._loop = asyncio.get_running_loop()
        self.made: ASGIBody | None = None  # NOTE: the body source, once made.

    def raw_path(self) -> bytes:
        return self.raw_path_bytes

    def body(self, limit: Callable[[], int]) -> ASGIBody:
        self.made = ASGIBody(self._body_headers, self._receive, self._loop)
        self.made.limit = limit
        return self.made

    def source(self, request: Request) -> ASGIBody:
        """The body source, made now if the request has not read its body."""
        request._body_source()
        assert self.made is not None
        return self.made

    def root_path(self) -> str:
        return str(self._scope.get("root_path", ""))

    def headers(self) -> Headers:
        return Headers(
            _trusted=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._scope["headers"]]
        )

    def content_type(self) -> str | None:
        for name, value in self._scope["headers"]:
            if name == b"content-type":
                return str(value.decode("latin-1"))
        return None

    def server(self) -> tuple[str, int | None] | None:
        server = self._scope.get("server")
        return (server[0], server[1]) if server else None

    def client(self) -> Address | None:
        client = self._scope.get("client")
        return Address(client[0], client[1]) if client else None
