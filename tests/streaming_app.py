"""The app that ``test_servers_streaming.py`` runs under real Waitress and Uvicorn processes.

Every endpoint exists in both colours (``/.../sync`` is a ``def`` handler with a sync generator,
``/.../async`` an ``async def`` handler with an async generator). The test and the server share one
directory, named by the ``STREAMING_APP_DIR`` environment variable: the test puts ``data.bin``
there for the file endpoint, creates ``release-<token>`` files to let a held stream go on, and
reads the ``closed-<token>`` files that generators write in their ``finally`` blocks.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from microweb import (
    App,
    ClientDisconnect,
    HTTPError,
    Request,
    Response,
    ServerSentEvent,
    UploadFile,
)

app = App()

SHARED_DIR = Path(os.environ.get("STREAMING_APP_DIR", "."))
# NOTE: above the app's default of 10 MiB, to show that the route's limit is the one applied.
UPLOAD_LIMIT = 16 * 1024 * 1024
UPLOAD_LIMITS = {"max_body_size": UPLOAD_LIMIT}
HOLD_TIMEOUT = 10.0
POLL_TIMEOUT = 5.0
TICK = 0.1
READ_CHUNK = 256 * 1024
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _token(request: Request) -> str:
    token = request.query.get("token", "")
    if not _TOKEN.fullmatch(token):
        raise HTTPError(400, "a token of letters, digits, '_' or '-' is required")
    return token


def _upload_of(form: Any) -> UploadFile:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPError(400, "the form has no file part called 'file'")
    return upload


def _summary(form: Any, upload: UploadFile, digest: Any, read: int) -> dict[str, Any]:
    return {
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size": upload.size,
        "read": read,
        "sha256": digest.hexdigest(),
        "in_memory": upload.in_memory,
        "note": form.get("note"),
    }


# -- uploads ----------------------------------------------------------------------------------


@app.post("/upload/sync", limits=UPLOAD_LIMITS)
def upload_sync(request: Request) -> dict[str, Any]:
    """Parse the form with ``form()`` and hash the file part."""
    form = request.form()
    upload = _upload_of(form)
    digest, read = hashlib.sha256(), 0
    while chunk := upload.read(READ_CHUNK):
        digest.update(chunk)
        read += len(chunk)
    return _summary(form, upload, digest, read)


@app.post("/upload/async", limits=UPLOAD_LIMITS)
async def upload_async(request: Request) -> dict[str, Any]:
    """Parse the form with ``await aform()`` and hash the file part."""
    form = await request.aform()
    upload = _upload_of(form)
    digest, read = hashlib.sha256(), 0
    while chunk := await upload.aread(READ_CHUNK):
        digest.update(chunk)
        read += len(chunk)
    return _summary(form, upload, digest, read)


def _rss() -> int:
    # NOTE: the resident set, from /proc (Linux): the second field of statm, in pages.
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PartsSummary:
    """What ``/parts/...`` answers: each field, the file's size and hash, the RSS growth."""

    def __init__(self) -> None:
        self.start = self.peak = _rss()
        self.fields: dict[str, str] = {}
        self.digest, self.size, self.filename = hashlib.sha256(), 0, None

    def add(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        self.peak = max(self.peak, _rss())

    def answer(self) -> dict[str, Any]:
        return {
            "fields": self.fields,
            "filename": self.filename,
            "size": self.size,
            "sha256": self.digest.hexdigest(),
            "rss_growth": self.peak - self.start,
        }


@app.post("/parts/sync", limits=UPLOAD_LIMITS)
def parts_sync(request: Request) -> dict[str, Any]:
    """Stream the parts with ``iter_parts()``: keep the fields, hash the file."""
    summary = _PartsSummary()
    for part in request.iter_parts():
        if part.filename is None:
            summary.fields[part.name] = part.text()
            continue
        summary.filename = part.filename
        for chunk in part.iter_bytes():
            summary.add(chunk)
    return summary.answer()


@app.post("/parts/async", limits=UPLOAD_LIMITS)
async def parts_async(request: Request) -> dict[str, Any]:
    """The async twin of ``/parts/sync``, with ``aiter_parts()``."""
    summary = _PartsSummary()
    async for part in request.aiter_parts():
        if part.filename is None:
            summary.fields[part.name] = await part.atext()
            continue
        summary.filename = part.filename
        async for chunk in part.aiter_bytes():
            summary.add(chunk)
    return summary.answer()


# -- a stream held until the test releases it -------------------------------------------------


def _held_sync(release: Path) -> Iterator[bytes]:
    yield b"first"
    deadline = time.monotonic() + HOLD_TIMEOUT
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    yield b"last" if release.exists() else b"timeout"


async def _held_async(release: Path) -> AsyncIterator[bytes]:
    yield b"first"
    deadline = time.monotonic() + HOLD_TIMEOUT
    while not release.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    yield b"last" if release.exists() else b"timeout"


@app.get("/held/sync")
def held_sync(request: Request) -> Response:
    """Send ``first``, then wait for ``release-<token>`` to exist, then send ``last``."""
    return Response.stream(_held_sync(SHARED_DIR / f"release-{_token(request)}"))


@app.get("/held/async")
async def held_async(request: Request) -> Response:
    """The async twin of ``/held/sync``."""
    return Response.stream(_held_async(SHARED_DIR / f"release-{_token(request)}"))


# -- endless streams that record their closing ------------------------------------------------


def _record_closed(token: str, steps: int) -> None:
    # NOTE: written aside, then renamed, so the test never reads a half-written marker.
    partial = SHARED_DIR / f"partial-{token}"
    partial.write_text(str(steps))
    partial.replace(SHARED_DIR / f"closed-{token}")


def _endless_sync(token: str) -> Iterator[bytes]:
    steps = 0
    try:
        while steps < HOLD_TIMEOUT * 3 / TICK:
            yield b"tick %d\n" % steps
            steps += 1
            time.sleep(TICK)
    finally:
        _record_closed(token, steps)


async def _endless_async(token: str) -> AsyncIterator[bytes]:
    steps = 0
    try:
        while steps < HOLD_TIMEOUT * 3 / TICK:
            yield b"tick %d\n" % steps
            steps += 1
            await asyncio.sleep(TICK)
    finally:
        _record_closed(token, steps)


@app.get("/endless/sync")
def endless_sync(request: Request) -> Response:
    """Send a line every 0.1 s (for 30 s at most); ``closed-<token>`` is written on close."""
    return Response.stream(_endless_sync(_token(request)), media_type="text/plain")


@app.get("/endless/async")
async def endless_async(request: Request) -> Response:
    """The async twin of ``/endless/sync``."""
    return Response.stream(_endless_async(_token(request)), media_type="text/plain")


# -- long polling that stops when the client has gone ---------------------------------------


def _record_polling(token: str) -> None:
    (SHARED_DIR / f"polling-{token}").touch()


def _record_noticed(token: str, waited: float) -> None:
    partial = SHARED_DIR / f"partial-{token}"
    partial.write_text(f"{waited:.2f}")
    partial.replace(SHARED_DIR / f"noticed-{token}")


@app.get("/poll/sync")
def poll_sync(request: Request) -> str:
    """Write ``polling-<token>``, then wait up to 5 s; write ``noticed-<token>`` as soon as
    ``is_disconnected()`` says so."""
    token, started = _token(request), time.monotonic()
    _record_polling(token)
    while time.monotonic() - started < POLL_TIMEOUT:
        if request.is_disconnected():
            _record_noticed(token, time.monotonic() - started)
            return "gone"
        time.sleep(0.05)
    return "still here"


@app.get("/poll/async")
async def poll_async(request: Request) -> str:
    """The async twin of ``/poll/sync``, with ``await ais_disconnected()``."""
    token, started = _token(request), time.monotonic()
    _record_polling(token)
    while time.monotonic() - started < POLL_TIMEOUT:
        if await request.ais_disconnected():
            _record_noticed(token, time.monotonic() - started)
            return "gone"
        await asyncio.sleep(0.05)
    return "still here"


# -- a stream that asks, chunk by chunk, whether its client has gone ----------------------------


@app.get("/asking/sync")
def asking_sync(request: Request) -> Response:
    """Five chunks, each ``0`` or ``1``: what ``is_disconnected()`` said as it was made."""

    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"%d" % request.is_disconnected()
            time.sleep(TICK)

    return Response.stream(chunks(), media_type="text/plain")


@app.get("/asking/async")
async def asking_async(request: Request) -> Response:
    """The async twin of ``/asking/sync``, with ``await ais_disconnected()``."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"%d" % await request.ais_disconnected()
            await asyncio.sleep(TICK)

    return Response.stream(chunks(), media_type="text/plain")


# -- server-sent events -----------------------------------------------------------------------

FIRST_EVENTS: list[Any] = [
    "hello",
    ServerSentEvent(data="line one\nline two", event="tick", id="1", retry=2500),
]


def _events_sync() -> Iterator[Any]:
    yield from FIRST_EVENTS
    for n in range(int(HOLD_TIMEOUT / TICK)):
        time.sleep(TICK)
        yield ServerSentEvent(comment=f"ping {n}")


async def _events_async() -> AsyncIterator[Any]:
    for event in FIRST_EVENTS:
        yield event
    for n in range(int(HOLD_TIMEOUT / TICK)):
        await asyncio.sleep(TICK)
        yield ServerSentEvent(comment=f"ping {n}")


@app.get("/sse/sync")
def sse_sync(request: Request) -> Response:
    """Two events at once, then a comment every 0.1 s."""
    return Response.sse(_events_sync())


@app.get("/sse/async")
async def sse_async(request: Request) -> Response:
    """The async twin of ``/sse/sync``."""
    return Response.sse(_events_async())


@app.get("/sse/resume")
def sse_resume(request: Request) -> Response:
    """One event with the id ``é``, whose data is the ``Last-Event-ID`` the request carried."""
    last = request.headers.get("last-event-id", "")
    return Response.sse([ServerSentEvent(data=last, id="é")])


# -- files ------------------------------------------------------------------------------------


@app.get("/gone/sync")
def gone_sync(request: Request) -> str:
    """App code's own ``ClientDisconnect``, while the client is there: a 400 under both."""
    raise ClientDisconnect("given up")


@app.get("/gone/async")
async def gone_async(request: Request) -> str:
    """The async twin of ``/gone/sync``."""
    raise ClientDisconnect("given up")


@app.get("/file/sync")
def file_sync(request: Request) -> Response:
    """Serve ``data.bin`` from the shared directory."""
    return Response.file(SHARED_DIR / "data.bin")


@app.get("/file/async")
async def file_async(request: Request) -> Response:
    """The async twin of ``/file/sync``."""
    return Response.file(SHARED_DIR / "data.bin")
