"""Request IDs (``request.state.request_id``, echoed in a header) and one access log line per
request."""

from __future__ import annotations

import inspect
import logging
import re
import uuid
from collections.abc import Callable, Generator
from functools import partial
from time import perf_counter
from urllib.parse import quote

from microweb import App, Headers, Request, Response
from microweb._asgi_websocket import when_answered
from microweb._parsing import header_value
from microweb._request import logged_method, logged_path
from microweb._routing import is_async_callable, is_generator_callable
from microweb._ws_refusal import refused_status

# NOTE: what an IP address (v4, v6, with a zone) or RFC 7239's obfuscated node holds.
_HOST_SAFE = ":.[]_-%"

Flow = Generator[Response | None, Response, None]
# NOTE: an incoming ID ends up in logs and headers: visible ASCII only, and not too long.
VALID_ID = re.compile(r"[\x21-\x7e]{1,200}")
# NOTE: nginx's status for a request whose client left before the answer; never sent.
CLIENT_CLOSED = 499
# SPEC: RFC 9110 5.1: a field name is a token.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def new_request_id() -> str:
    """Return a fresh random ID: 32 hexadecimal digits."""
    return uuid.uuid4().hex


class RequestID:
    """Give every request an ID in ``request.state.request_id`` and in a response header.

    Args:
        header: The header that carries the ID, in requests and responses.
        trust_incoming: Reuse the ID a client or proxy sent in ``header`` when it is valid
            (1 to 200 visible ASCII characters); otherwise, or with ``False``, make a new one.
        generator: Makes new IDs; random UUID hex by default.

    Raises:
        ValueError: If ``header`` is not a valid header name, or is a hop-by-hop one
            (``Connection``, ``TE``...).
        TypeError: If ``header`` is not a ``str``, or ``generator`` is not a ``def``
            function it can call with no arguments (a value, an ``async def`` function, one
            that yields or needs arguments).
    """

    name = "request_id"

    def __init__(
        self,
        header: str = "x-request-id",
        trust_incoming: bool = True,
        generator: Callable[[], str] = new_request_id,
    ) -> None:
        # NOTE: checked now, or every request would fail with a 500 when the header is set:
        # a name that is no token, or a hop-by-hop one (Connection, TE...), which no response
        # may carry.
        if not isinstance(header, str):
            raise TypeError(f"RequestID header must be a str, not {header!r}")
        if not TOKEN.fullmatch(header):
            raise ValueError(f"RequestID header must be a header name, got {header!r}")
        try:
            Headers()[header] = "0"
        except ValueError as exc:
            raise ValueError(f"RequestID header name cannot be {header!r}: {exc}") from None
        # NOTE: checked now too: a value or an async def function failed every request, with
        # a 500 whose error named the header, not the generator; so did a function that
        # yields (def or async def), whose call makes a generator, not an ID.
        if (
            not callable(generator)
            or is_async_callable(generator)
            or is_generator_callable(generator)
        ):
            raise TypeError(
                "RequestID generator must be a def function that returns a new ID (a str), "
                f"not {generator!r}"
            )
        if _needs_arguments(generator):
            # NOTE: it is called with none: each request failed with a 500 (TypeError).
            raise TypeError(f"RequestID generator must take no arguments: {generator!r} needs some")
        self.header = header.lower()
        self.trust_incoming = trust_incoming
        self.generator = generator

    def setup(self, app: App) -> None:
        """Add the flow that sets and echoes the ID."""
        app.middleware(self.flow)

    def request_id(self, request: Request) -> str:
        """Return the ID for ``request``: the trusted incoming one, or a new one.

        Raises:
            TypeError: If the generator returned something else than a ``str``.
            ValueError: If it returned an empty ``str``, or one no header can carry.
        """
        if self.trust_incoming:
            incoming = header_value(request.headers, self.header)
            if incoming is not None and VALID_ID.fullmatch(incoming):
                return incoming
        return self._new_id()

    def _new_id(self) -> str:
        # NOTE: generator=uuid.uuid4 (a UUID, not a str) ran the handler, a POST's writes
        # included, and failed only as the ID was echoed: a 500 after the work was done.
        made = self.generator()
        if not isinstance(made, str):
            raise TypeError(
                f"RequestID generator {self.generator!r} returned {type(made).__name__}, not a "
                "str, such as uuid.uuid4().hex"
            )
        if VALID_ID.fullmatch(made):
            return made  # PERF: 0.2 us; the check of a header value below takes 2.
        try:
            Headers()[self.header] = made
            carried = bool(made)
        except ValueError:
            carried = False
        if not carried:
            raise ValueError(
                f"RequestID generator {self.generator!r} returned {made!r}: an ID is one or "
                "more characters a header can carry (no line breaks, nothing past latin-1)"
            )
        return made

    def flow(self, request: Request) -> Flow:
        """Set ``request.state.request_id`` on the way in, echo it on the way out."""
        request_id = self.request_id(request)
        request.state.request_id = request_id
        try:
            response = yield None
        except Exception:
            # NOTE: not ours to answer: wait for the response the error becomes, and label it.
            response = yield None
        response.headers[self.header] = request_id


def _needs_arguments(function: Callable[..., object]) -> bool:
    """Tell whether calling ``function`` with no arguments fails for its signature."""
    try:
        inspect.signature(function).bind()
    except TypeError:
        return True
    except ValueError:
        return False  # NOTE: a built-in without a signature; its call will tell.
    return False


# NOTE: the schemes of a WebSocket handshake's request.
_HANDSHAKE_SCHEMES = ("ws", "wss")


def _sent_status(request: Request, response: Response) -> int:
    """Return the status the client gets for ``response``.

    A refused WebSocket handshake's client gets 403 where the server cannot send the response
    (plain ASGI can only refuse), where it streams, and for a 2xx (see ``refused_status``).
    """
    status = response.status
    if request.scheme in _HANDSHAKE_SCHEMES and status != 101:
        return refused_status(request, response)
    return status


class AccessLog:
    """Log one line per request, at INFO: method, path, status, duration, client and request ID.

    The duration runs until the handler's response is ready; a streamed body is still being
    sent then. A request that raised is logged with the status of the response its error
    became (500 for an unexpected exception), and one whose client left before it was answered
    with 499, as nginx logs it. A WebSocket handshake is logged once answered, with the status
    its client gets: 101 when the handler accepts it, a refusal's (a flow's or the handler's),
    or 403 where the server can only refuse. Each record also carries
    the fields as attributes (``http_method``, ``http_path``, ``http_status``, ``duration_ms``,
    ``client_addr``, ``request_id``) for structured formatters.

    Args:
        logger: The logger, or its name.
    """

    name = "access_log"

    def __init__(self, logger: str | logging.Logger = "microweb.access") -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def setup(self, app: App) -> None:
        """Add the flow that times and logs each request."""
        app.middleware(self.flow)

    def flow(self, request: Request) -> Flow:
        """Time the rest of the stack and log the outcome."""
        started = perf_counter()
        try:
            try:
                response = yield None
            except Exception:
                response = yield None  # NOTE: log the response the error becomes (500, usually).
        except GeneratorExit:
            # NOTE: closed unanswered: the client left while its body was read. Logged as
            # nginx does, so that the request still shows.
            self.log(request, CLIENT_CLOSED, started)
            raise
        status = _sent_status(request, response)
        if status == 101:
            # NOTE: the handler answers the handshake after this flow, and may refuse it (a
            # close's 403, its error's answer): logged once it has, with what the client got.
            when_answered(request, partial(self._log_answer, request, started))
            return
        self.log(request, status, started)

    def _log_answer(self, request: Request, started: float, status: int | None) -> None:
        # NOTE: no answer went out: the client left, or the server stopped the handler.
        self.log(request, CLIENT_CLOSED if status is None else status, started)

    def log(self, request: Request, status: int, started: float) -> None:
        """Log one request that ended with ``status``, timed from ``started``."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        duration_ms = (perf_counter() - started) * 1000
        request_id = getattr(request.state, "request_id", None)
        # NOTE: the path the client asked for: under a root path (a mount, --root-path), the
        # app's own path is only its end.
        path = logged_path(request, whole=True)
        method = logged_method(request)
        peer = request.client
        # NOTE: a proxy's Forwarded may name a client by a token of its own: one field still.
        client = quote(peer.host, safe=_HOST_SAFE) if peer is not None else None
        fields = {
            "http_method": method,
            "http_path": path,
            "http_status": status,
            "duration_ms": duration_ms,
            "client_addr": client,
            "request_id": request_id,
        }
        suffix = f" client={client}" if client is not None else ""
        if request_id is not None:
            suffix += f" id={request_id}"
        self.logger.info(
            "%s %s %d %.2fms%s", method, path, status, duration_ms, suffix, extra=fields
        )
