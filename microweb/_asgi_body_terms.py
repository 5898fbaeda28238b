"""What an ASGI request body source (``_asgi_body``) shares with its neighbours.

The scope extensions of microweb's Uvicorn protocols, the body limit until the driver gives the
request's, the framing the scope's headers give, and a pool thread's waits on the loop: the end
of another read (``LoopReadDone``) and the warning of a read held up by its request's own code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._app_loop import Stalled, run_on_loop
from ._body import DEFAULT_BODY_LIMIT, ReadDone, check_transfer_coding
from ._errors import HTTPError
from ._request import logged_method, logged_path

if TYPE_CHECKING:
    from ._request import Request

logger = logging.getLogger("microweb")

# NOTE: a scope extension that microweb's Uvicorn protocols give a request expecting
# 100-continue (_stall.py): called, once, when the app first waits for the body. Uvicorn sends
# no 100 Continue once the answer has started, so a body read after that is one the client
# need not send; this tells the protocol that the client owes it from now on.
BODY_AWAITED = "microweb.body_awaited"
# NOTE: a scope extension that microweb's Uvicorn protocols give every request (_stall.py):
# called, it says whether the connection is lost or closing (a write failed, the client was
# closed for not reading), so that what the app sends now may never reach the client.
# Uvicorn's send() returns at once then, and the driver's watcher of receive() hears of it only
# some turns of the loop later: an async stream that awaits nothing else ran on for a turn
# (TURN, 5 ms) for each, about 20 ms. The driver asks it at each of the stream's turns.
SENDS_DROPPED = "microweb.sends_dropped"


def default_limit() -> int:
    """The body limit of an ``ASGIBody`` until the driver gives the request's."""
    return DEFAULT_BODY_LIMIT


class LoopReadDone(ReadDone):
    """The end of a read of an ASGI body, which a pool thread's read waits for on the loop.

    The read waited for needs the loop: a thread that waited for it here, with the loop held by
    code that joins that thread, waited for ever with no word, where a read of its own is
    told of (``ASGIBody._stalled``). So it waits through a hop to the loop, as a read does.
    """

    __slots__ = ("_loop", "_stalled")

    def __init__(self, loop: asyncio.AbstractEventLoop, stalled: Stalled) -> None:
        super().__init__()
        self._loop, self._stalled = loop, stalled

    def wait_blocking(self) -> None:
        # NOTE: a hop, not a wait on the event: 20 us more, only where two reads meet.
        if not self._done.is_set():
            run_on_loop(self._loop, self.wait(), self._stalled)


def warn_stalled(request: Request, waited: float) -> None:
    """Warn that a thread's sync read of ``request``'s body has waited ``waited`` seconds for
    the loop (``ASGIBody._stalled``)."""
    logger.warning(
        "%s %s: a thread's sync read of the body (read(), json(), form(), iter_parts(),"
        " is_disconnected()...) has waited %.1f s for the event loop, which has run nothing"
        " else meanwhile: if the code that holds the loop waits for that thread (a join() in"
        " a def handler with offload=False, a sync flow, a sync error handler or async def"
        " code), both wait for ever. Join a thread that reads the body from an offloaded def"
        " handler (drop offload=False), or from async code with"
        " await asyncio.to_thread(thread.join)",
        logged_method(request),
        logged_path(request),
        waited,
    )


def framing(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bool, bytes | None]:
    """Whether ``headers`` say Transfer-Encoding (its codings checked), and their one
    Content-Length."""
    length = None
    codings: list[str] = []
    for name, value in headers:
        if name == b"transfer-encoding":
            codings.append(value.decode("latin-1"))
        elif name == b"content-length":
            if (length is not None and value != length) or not value:
                # SPEC: RFC 9112 6.3, a Content-Length of two values, or of none, frames no
                # body: Uvicorn (h11, httptools) and Waitress answer 400 before the app.
                # Where a client gives the app its headers (the test client), the last
                # line was taken, and "4" then "3" read a body framed as 4 bytes as 3.
                raise HTTPError(400, "invalid Content-Length")
            length = value
    if codings:
        # NOTE: every line at once: "chunked" on two lines is chunked twice.
        check_transfer_coding(codings)
    return bool(codings), length
