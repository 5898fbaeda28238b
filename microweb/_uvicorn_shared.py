"""Small pieces that microweb serve's Uvicorn protocols share, under httptools and h11 (and
the WebSocket protocol): the bytes read past a handshake's head handed over, whether a read
went on past a head, Uvicorn's default fields on the refusals they write themselves, and an
Upgrade not taken logged once a connection.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

# NOTE: for the protocols' connection_made(), which may not import asyncio (test_sansio).
Transport = asyncio.Transport


def hand_over(transport: Transport, data: bytes) -> None:
    """Give ``data``, read by an HTTP protocol after a WebSocket handshake's head, to the
    WebSocket protocol ``transport`` now has, if that protocol keeps such bytes until the app
    answers the handshake (``_ws_flow.FlowControlledWebSockets``); else drop them, as Uvicorn
    does: parsed while the handshake waited, a close frame or a bad one made Uvicorn's own
    protocols raise (``AssertionError``)."""
    protocol = transport.get_protocol()
    if isinstance(protocol, asyncio.Protocol) and getattr(protocol, "keeps_early_frames", False):
        protocol.data_received(data)


# NOTE: the blank line that ends a head (a bare LF's, which both parsers refuse, counted too).
_HEAD_END = re.compile(rb"\n\r?\n\Z")


def body_begun(read: bytes) -> bool:
    """Return whether ``read``, in which a request's head ended, goes on past that head.

    A chunked body's first bytes may be a chunk's size line alone, or part of it: no data
    of the body yet, which neither parser hands on, though the client has begun its body.
    A client that expects 100-continue and sends them waits for no 100 Continue.
    """
    return bool(read) and _HEAD_END.search(read) is None


def with_default_fields(server_state: Any, answer: bytes, *, own_date: bool = False) -> bytes:
    """Return ``answer``, an answer's bytes, with the Uvicorn default fields its head lacks
    (``server_state.default_headers``: Date, Server, ``--header``'s) after its status line.

    The one place the refusals microweb serve's Uvicorn protocols write themselves (under
    httptools, h11 and the WebSocket protocol) get them: Date is Uvicorn's, updated each
    second, and ``--no-date-header`` and ``--no-server-header`` hold for them as for the app's
    answers. ``own_date``: a Date the head has is not the app's but a library's (websockets'
    refusal): Uvicorn's takes its place, as Uvicorn's acceptance of a handshake does.
    """
    # SPEC: RFC 9110 6.6.1: an origin server with a clock sends Date in every 4xx and 5xx.
    line, _, rest = answer.partition(b"\r\n")
    # NOTE: a head of the status line alone starts ``rest`` with its blank line.
    head, _, body = rest.partition(b"\r\n\r\n") if rest[:2] != b"\r\n" else (b"", b"", rest[2:])
    lines = head.split(b"\r\n") if head else []
    if own_date:
        lines = [field for field in lines if field[:5].lower() != b"date:"]
    present = {field.partition(b":")[0].strip().lower() for field in lines}
    added = [
        name + b": " + value
        for name, value in server_state.default_headers
        if name.lower() not in present
    ]
    return b"\r\n".join([line, *added, *lines, b""]) + b"\r\n" + body


class UpgradeWarnedOnce:
    """Uvicorn's warning of an Upgrade it does not take, logged once a connection, under
    either parser."""

    # NOTE: whether an Upgrade not taken has been logged on this connection.
    upgrade_warned = False

    def _unsupported_upgrade_warning(self) -> None:
        """Log an Upgrade not taken as Uvicorn does, once a connection."""
        # NOTE: Uvicorn logged each one: 2,000 h2c requests pipelined on a connection were
        # 2,000 lines (a log flood a client can cause). The other refusals close the
        # connection, and so are logged once a connection too.
        if not self.upgrade_warned:
            self.upgrade_warned = True
            super()._unsupported_upgrade_warning()  # type: ignore[misc]
