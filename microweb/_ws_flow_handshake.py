"""The answers to a WebSocket handshake that ``microweb serve``'s protocol
(``_ws_flow.FlowControlledWebSockets``) gives itself, where Uvicorn's gave none, or the wrong one.

- It refuses a handshake with 503 once the server's connections, its own included, reach
  Uvicorn's ``limit_concurrency`` (``microweb serve --connection-limit``): Uvicorn checks the
  limit only for HTTP requests, after it has upgraded a WebSocket's, so WebSockets went past it.
- A handshake that offers more than ``MAX_OFFERS`` extensions or subprotocols (their
  parameters counted) is refused with 431 before websockets parses them, in Python: 120,000
  extensions, within the 256 KiB head, took 220 ms of CPU with the event loop held.
- A handshake websockets refuses (more than 128 header lines, say) is answered and closed:
  Uvicorn sent no answer, kept the connection, and failed on it at shutdown.
- A handshake the app refused with a response of its own (the denial-response extension) is
  complete once that response is sent: Uvicorn logged an error for every such refusal.
- A handshake the app has not answered when the server stops gets 503: Uvicorn sent 500.
- A path with escapes is decoded in C, not by Uvicorn's ``urllib.parse.unquote()``.

The refusals it writes have Uvicorn's ``Date`` and ``Server``, as its HTTP answers have them,
and an app's own refusal those of them the app gave not.
"""

from __future__ import annotations

import asyncio
import dataclasses
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.exceptions import SecurityError
from websockets.http11 import Request, Response

from ._asgi_request import DENIAL_SENT_WHOLE
from ._emission import no_body_status
from ._percent import percent_decode
from ._uvicorn_shared import with_default_fields

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

_BAD_HANDSHAKE = (
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8"
    b"\r\nContent-Length: 30\r\n\r\nInvalid WebSocket handshake.\r\n"
)
_LARGE_HANDSHAKE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 23\r\n\r\n"
    b"Headers are too large.\n"
)
# NOTE: header lines, elements and parameters of a handshake's Sec-WebSocket-Extensions, and
# of its Sec-WebSocket-Protocol; browsers offer one extension with a parameter, apps a few
# subprotocols. PERF: websockets parses each in Python, 2 us an extension (120,000 took
# 220 ms of CPU) and 1 us a subprotocol (review339); 256 take 0.5 ms at most.
MAX_OFFERS = 256
_OFFERED = ("Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol")


class HandshakeAnswers(WebSocketsSansIOProtocol):
    """How ``FlowControlledWebSockets`` answers a handshake; its first base, so that these
    methods are found before those of ``NoUnixAddress`` and ``StallTimer``, as when they were
    its own."""

    # NOTE: the raw path, with a "%", of the handshake whose app's task is made, for its scope.
    escaped_path = ""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # NOTE: Uvicorn's protocol keeps the default fields of its start (default_headers),
        # whose Date Uvicorn replaces each second in server_state: the refusals read them there.
        self.server_state = server_state

    def handle_handshake_exception(self) -> None:
        """Answer a head websockets could not parse as ``refuse_handshake()`` does.

        NOTE: Uvicorn 0.55 writes websockets' refusal itself here (0.54 wrote none), without
        its Server field; and handshake_initiated stayed False, so refuse_handshake() wrote a
        second refusal after it on the closing connection (review338).
        """
        self.refuse_handshake()

    def refuse_handshake(self) -> None:
        """Send the refusal of a head websockets could not parse (Uvicorn sent none), and close."""
        # NOTE: websockets 17 wrote its 431 (a line over 8 KiB, more than 128 lines) into its
        # output and ended it, or ended it with nothing (another error: a 400 is due); 15
        # writes no 431, and its error's cause says the head was too large. Uvicorn wrote
        # neither and kept the connection, and its 500 for it at shutdown raised.
        refusal = b"".join(self.conn.data_to_send())
        if not refusal:
            cause = getattr(self.conn.handshake_exc, "__cause__", None)
            refusal = _LARGE_HANDSHAKE if isinstance(cause, SecurityError) else _BAD_HANDSHAKE
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        # NOTE: with Uvicorn's Date and Server, as the HTTP protocols' own refusals (review330):
        # websockets' had its own Date alone (kept under --no-date-header), and this
        # protocol's own neither (review338).
        self.transport.write(with_default_fields(self.server_state, refusal, own_date=True))
        self.transport.close()

    def shutdown(self) -> None:
        """Close as Uvicorn does at the server's stop; a connection closed already just ends."""
        if self.close_sent:
            # NOTE: as Uvicorn does from 0.53 on: before, it sent a close frame (1012) even
            # after a refused handshake, which raised (websockets was still connecting), and
            # the server stopped with a traceback before the app's shutdown hooks ran.
            self.stop_keepalive()
            self.transport.close()
            return
        if not self.handshake_complete and self.initial_response is None:
            # NOTE: a handshake the app has not answered yet: Uvicorn answered 500, a server
            # error, where the server is stopping. SPEC: RFC 9110 15.6.4, 503.
            self.stop_keepalive()
            self.handshake_initiated = self.handshake_complete = self.close_sent = True
            refusal = self.conn.reject(HTTPStatus.SERVICE_UNAVAILABLE, "The server is stopping.\n")
            self.send_own_refusal(refusal)
            return
        super().shutdown()

    def send_refusal(self, message: Any) -> None:
        """Add to the app's answer to a handshake it refused; send it once it is whole."""
        assert self.initial_response is not None  # NOTE: set by the answer's start.
        status, headers, body = self.initial_response
        body += message["body"]
        self.initial_response = (status, headers, body)
        if message.get("more_body"):
            return
        # NOTE: the app's headers, and Uvicorn's defaults where it gave none: Uvicorn 0.51
        # sent both, two Content-Length lines among them, which the websockets client refused
        # as no valid response.
        fields = Headers(headers)
        fields.setdefault("Connection", "close")
        if not no_body_status(status):
            # SPEC: RFC 9110 8.6: no Content-Length on a 204, and on a 304 only the length
            # of a representation the refusal does not have (Uvicorn added "0" to both).
            fields.setdefault("Content-Length", str(len(body)))
            fields.setdefault("Content-Type", "text/plain; charset=utf-8")
        # NOTE: typed Any, as below: Uvicorn 0.55's queue takes its own event TypedDicts.
        gone: Any = {"type": "websocket.disconnect", "code": 1006}
        self.queue.put_nowait(gone)
        self.conn.send_response(Response(status, HTTPStatus(status).phrase, fields, body))
        # NOTE: complete: Uvicorn (0.54 still) logged an error for every such refusal once
        # the app returned ("ASGI callable returned without completing handshake").
        self.handshake_complete = self.close_sent = True
        # NOTE: Uvicorn's Date and Server too, those the app gave not, as its HTTP answers have
        # them: the app's 404 to a handshake no route takes had no Server, its 404 to any other
        # request one (review338).
        answer = b"".join(self.conn.data_to_send())
        self.transport.write(with_default_fields(self.server_state, answer))
        self.transport.close()

    def refuse_for_close(self) -> None:
        """Answer the app's close before accept with 403, as Uvicorn does, and close.

        NOTE: Uvicorn wrote websockets' 403 as it was: websockets' Date (kept under
        ``--no-date-header``), no Server, none of ``--header``'s fields (review351). microweb
        sends such a close for a refusal the server cannot send (``sends_refusal()``).
        """
        # NOTE: typed Any, as in send_refusal(): Uvicorn 0.55's queue takes its own TypedDicts.
        gone: Any = {"type": "websocket.disconnect", "code": 1006}
        self.queue.put_nowait(gone)
        client, target = get_client_addr(self.scope), get_path_with_query_string(self.scope)
        self.logger.info('%s - "WebSocket %s" 403', client, target)
        self.handshake_complete = self.close_sent = True
        self.send_own_refusal(self.conn.reject(HTTPStatus.FORBIDDEN, ""))

    def handle_connect(self, event: Request) -> None:
        """Answer a handshake as Uvicorn does, unless the connections are at the limit: 503."""
        for name in _OFFERED:
            values = event.headers.get_all(name)
            if sum(1 + value.count(",") + value.count(";") for value in values) > MAX_OFFERS:
                # SPEC: RFC 6585 5, 431: a header field too large; the client may send fewer.
                self.refuse_connect(
                    event,
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"{name} offers more than {MAX_OFFERS} elements and parameters.\n",
                )
                return
        limit = self.config.limit_concurrency
        if limit is None or (len(self.connections) < limit and len(self.tasks) < limit):
            response = self.conn.accept(event)
            if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
                # NOTE: websockets refused the handshake (no Sec-WebSocket-Key, say): Uvicorn
                # wrote its refusal as it was, with websockets' Date and no Server.
                self.refuse_with(event, response)
                return
            # NOTE: Uvicorn's handle_connect() takes the handshake accepted, not accepted a
            # second time (websockets hashes the key, and reads the offers, again).
            self.conn.accept = lambda request: response  # type: ignore[method-assign]
            try:
                self.connect(event)
            finally:
                del self.conn.accept
            return
        # NOTE: the checks and the warning of Uvicorn's HTTP protocols, for their 503.
        self.logger.warning("Exceeded concurrency limit.")
        self.refuse_connect(event, HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable")

    def connect(self, event: Request) -> None:
        """Answer a handshake websockets accepts as Uvicorn does (the app's task made; its
        scope completed as it starts, ``run_asgi()``)."""
        # NOTE: Uvicorn decodes the path with urllib.parse.unquote(), a Python loop that raises
        # and catches a KeyError for each "%" that starts no escape, in the event loop: 8 KB of
        # "%" (websockets' cap on a line) took 3 ms of CPU a handshake (review325). It reads a
        # stand-in; the scope gets this one's path as it would.
        raw_path, question, query = event.path.partition("?")
        if "%" not in raw_path or not raw_path.isascii():
            super().handle_connect(event)
        else:
            self.escaped_path = raw_path
            super().handle_connect(dataclasses.replace(event, path=f"/{question}{query}"))
            self.request = event

    async def run_asgi(self) -> None:
        """Run the app as Uvicorn does, once its scope has this protocol's own: the path of
        escapes (``connect()``), and that an app's refusal is sent whole (``send_refusal``).

        NOTE: completed here, as the app's task starts, not after Uvicorn's handle_connect()
        made the task: under an eager task factory (Python 3.12's, from a loop factory given
        to ``--loop``) the app ran inside it first, and routed a path of escapes as "/"
        (review351).
        """
        raw_path, self.escaped_path = self.escaped_path, ""
        if raw_path:
            self.scope["path"] = self.root_path + percent_decode(raw_path)
            self.scope["raw_path"] = (self.root_path + raw_path).encode("ascii")
        self.scope["extensions"][DENIAL_SENT_WHOLE] = {}
        await super().run_asgi()

    def refuse_connect(self, event: Request, status: HTTPStatus, text: str) -> None:
        """Answer the handshake ``event`` with ``status`` and ``text``, and close."""
        self.refuse_with(event, self.conn.reject(status, text))

    def refuse_with(self, event: Request, response: Response) -> None:
        """Answer the handshake ``event`` with websockets' refusal ``response``, and close."""
        self.request, self.response = event, response
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.send_own_refusal(response)

    def send_500_response(self) -> None:
        """Answer 500 as Uvicorn does, to an app that failed before answering the handshake,
        with Uvicorn's fields (``write_own_refusal()``); ``run_asgi()`` then closes."""
        if self.initial_response or self.handshake_complete:
            return
        reason = "Internal Server Error"
        self.write_own_refusal(self.conn.reject(HTTPStatus.INTERNAL_SERVER_ERROR, reason))

    def send_own_refusal(self, response: Response) -> None:
        """Send websockets' refusal ``response`` (``write_own_refusal()``), and close."""
        self.write_own_refusal(response)
        self.transport.close()

    def write_own_refusal(self, response: Response) -> None:
        """Write websockets' refusal ``response`` with Uvicorn's Date (not websockets') and
        Server, as Uvicorn's HTTP answers have them: websockets' had its own Date, kept under
        ``--no-date-header``, and no Server."""
        self.conn.send_response(response)
        answer = b"".join(self.conn.data_to_send())
        self.transport.write(with_default_fields(self.server_state, answer, own_date=True))
