"""Live updates: "note added" events to open pages (SSE) and to WebSocket clients (ASGI)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from microweb import Request, Response, Router, WebSocket, WebSocketDisconnect

POLL = 0.25  # seconds between two looks at the feed
KEEP_ALIVE = 15.0  # a comment after this long without an event, so proxies keep the stream
MAX_AGE = 60.0  # a stream ends after this long and the browser reconnects (see sse.md)

router = Router()


class Feed:
    """The latest events, numbered from 1, for streams and sockets to pick up.

    Handlers publish from server threads (WSGI) or pool threads (ASGI); readers poll from
    whatever loop runs them. A lock and polling work in all of these; an ``asyncio.Queue``
    belongs to one loop and is not thread-safe.
    """

    def __init__(self, size: int = 100) -> None:
        self._lock = threading.Lock()
        self._events: deque[tuple[int, dict[str, Any]]] = deque(maxlen=size)
        self.last = 0

    def publish(self, data: dict[str, Any]) -> None:
        """Add an event."""
        with self._lock:
            self.last += 1
            self._events.append((self.last, data))

    def since(self, last: int) -> list[tuple[int, dict[str, Any]]]:
        """The events after event ``last``, as ``(id, data)`` pairs."""
        with self._lock:
            return [(number, data) for number, data in self._events if number > last]


def announce(request: Request, note_id: int, title: str) -> None:
    """Tell the open pages that a note was added."""
    url = request.url_for("note", note_id=note_id)
    request.app.state.feed.publish({"id": note_id, "title": title.strip(), "url": url})


@router.get("/events", name="events")
def events(request: Request) -> Response:
    feed: Feed = request.app.state.feed
    last_id = request.headers.get("last-event-id", "")
    # NOTE: the header is the client's: resume after it only when it is a plain small number,
    # in ASCII digits: isdigit() alone takes "²" (a latin-1 byte), which int() refuses.
    plain = last_id.isascii() and last_id.isdigit() and len(last_id) < 10
    # NOTE: never past the feed's last event: after a restart the count starts again from 0,
    # and a page that came back with the id it had seen (42) missed each note up to the 43rd.
    start = min(int(last_id), feed.last) if plain else feed.last

    async def stream() -> AsyncIterator[dict[str, Any]]:
        yield {"retry": 2000}
        sent, opened, quiet_since = start, time.monotonic(), time.monotonic()
        while time.monotonic() - opened < MAX_AGE and not await request.ais_disconnected():
            for number, data in feed.since(sent):
                yield {"event": "note", "data": json.dumps(data), "id": str(number)}
                sent, quiet_since = number, time.monotonic()
            if time.monotonic() - quiet_since >= KEEP_ALIVE:
                yield {"comment": "keep-alive"}
                quiet_since = time.monotonic()
            await asyncio.sleep(POLL)

    return Response.sse(stream())


@router.websocket("/ws")
async def socket(ws: WebSocket) -> None:
    """Send each new note as JSON; answer a text message with ``{"echo": text}``.

    ASGI only: under WSGI this route answers 501, and the pages use ``/events`` anyway.
    """
    feed: Feed = ws.request.app.state.feed
    await ws.accept()
    sent = feed.last
    while True:
        try:
            text = await asyncio.wait_for(ws.receive_text(), POLL)
        except asyncio.TimeoutError:  # NOTE: not the builtin TimeoutError before Python 3.11.
            text = None
        except WebSocketDisconnect:
            return
        if text is not None:
            await ws.send_json({"echo": text})
        for number, data in feed.since(sent):
            await ws.send_json({"event": "note", "id": number, **data})
            sent = number
