"""An app whose streamed response's close takes ``SLOW_CLOSE`` seconds, for
``test_servers_closing.py``; ``CLOSE_WAIT`` is cut to ``CLOSE_WAIT`` here, in the server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import microweb._close_wait
from microweb import App, Request, Response

CLOSE_WAIT = 0.3
SLOW_CLOSE = 1.5
microweb._close_wait.CLOSE_WAIT = CLOSE_WAIT


class SlowClose:
    """Two chunks, then a sync ``close()`` that takes ``SLOW_CLOSE`` seconds (a close blocked
    on a connection that does not answer)."""

    def __iter__(self) -> Iterator[bytes]:
        return iter([b"ne", b"ne"])

    def close(self) -> None:
        time.sleep(SLOW_CLOSE)


app = App()


@app.get("/slow-close")
def slow_close(request: Request) -> Response:
    return Response.stream(SlowClose(), "text/plain")
