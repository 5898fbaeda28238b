"""The app that ``test_servers_fuzz_answers.py`` runs under Waitress and Uvicorn: answers to order.

``/r/<spec>`` (a ``def`` handler) and ``/ra/<spec>`` (an ``async def`` one) build the answer
that ``spec`` describes: URL-safe base64 of a JSON object with the kind of body (a plain value,
a factory, a stream of either colour, of bytes or str, with or without a declared length, one
that fails or breaks its length, server-sent events, a file), its status, its size, extra
headers and cookies. The same answer must go out alike under every server.
The files are made at import, each time the same bytes with one fixed time, in one folder of
the system's temporary directory, so that every server process (and the test's own) serves
them under the same validators.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from microweb import App, Request, Response, ServerSentEvent
from microweb.plugins import GZip

FOLDER = Path(tempfile.gettempdir()) / "microweb-answer-fuzz"
SIZES = (0, 1, 37, 300, 70_000)
FILE_TIME = 1_700_000_000  # NOTE: one time, so that ETag and Last-Modified agree everywhere.
# NOTE: every kind of answer build() makes, for the tests that draw specs of them.
KINDS = ("str", "dict", "bytes", "none", "tuple", "redirect", "stream", "astream", "file", "sse")
KINDS += ("text", "html", "json")
TEXT = "fuzzy café text; "


def _make_files() -> None:
    # NOTE: every process that imports this module makes them (each pytest-xdist worker, each
    # server under test, another run on the same machine), in one folder, while others serve
    # them: rewritten in place, a file was empty, short or of the current time for a moment,
    # and an answer read then was cut off or had another ETag (review386). A file already
    # right is left alone; one that is not is written aside and put in place whole.
    FOLDER.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        path = FOLDER / f"{size}.txt"
        data = (TEXT.encode() * (size // len(TEXT) + 1))[:size]
        try:
            found = path.stat()
            if found.st_mtime == FILE_TIME and path.read_bytes() == data:
                continue
        except FileNotFoundError:
            pass
        aside = FOLDER / f"{size}.txt.{os.getpid()}"
        aside.write_bytes(data)
        os.utime(aside, (FILE_TIME, FILE_TIME))
        os.replace(aside, path)


_make_files()
app = App()
app.install(GZip(minimum_size=100))


def spec_of(text: str) -> dict[str, Any]:
    """The spec a path segment holds (the test writes it with ``encode_spec``)."""
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text.encode()))
    return value


def encode_spec(spec: dict[str, Any]) -> str:
    """The path segment of ``spec``."""
    return base64.urlsafe_b64encode(json.dumps(spec).encode()).decode()


def _body(spec: dict[str, Any]) -> bytes:
    size = spec["size"]
    return (TEXT.encode() * (size // len(TEXT) + 1))[:size]


def _pieces(spec: dict[str, Any]) -> list[bytes]:
    body, count = _body(spec), spec["chunks"]
    step = max(1, -(-len(body) // count)) if body else 1
    pieces = [body[start : start + step] for start in range(0, len(body), step)]
    return [b"", *pieces] if spec.get("empty_first") else pieces


def _sync_stream(pieces: list[Any], fail: bool) -> Iterator[bytes | str]:
    yield from pieces
    if fail:
        raise RuntimeError("the stream fails after its pieces")


async def _async_stream(pieces: list[Any], fail: bool) -> AsyncIterator[bytes | str]:
    for piece in pieces:
        await asyncio.sleep(0)
        yield piece
    if fail:
        raise RuntimeError("the stream fails after its pieces")


def _events(spec: dict[str, Any]) -> list[Any]:
    text = _body(spec).decode()
    return [
        text,
        {"data": text[:5] + "\nsecond line", "event": "kind", "id": "7"},
        ServerSentEvent(comment="ping"),
        ServerSentEvent(data="", retry=1000),
    ][: spec["chunks"]]


def build(spec: dict[str, Any]) -> Any:
    """The handler's return value for ``spec``: a plain value, or a ``Response``."""
    kind, body = spec["kind"], _body(spec)
    plain = {
        "str": lambda: body.decode(),
        "dict": lambda: {"body": body.decode(), "n": spec["size"]},
        "bytes": lambda: body,
        "none": lambda: None,
        "tuple": lambda: (body.decode(), spec["status"], dict(spec["headers"])),
    }.get(kind)
    if plain is not None:
        return plain()
    response = _response(spec, body)
    for name, value in spec["cookies"]:
        response.set_cookie(name, value, max_age=60)
    return response


def _response(spec: dict[str, Any], body: bytes) -> Response:
    kind, status, headers = spec["kind"], spec["status"], dict(spec["headers"])
    if kind == "redirect":
        return Response.redirect("/r/elsewhere?q=" + body.decode()[:20], status=status)
    if kind in ("stream", "astream"):
        pieces: list[Any] = _pieces(spec)
        if spec["text"]:
            pieces = [piece.decode("utf-8", "replace") for piece in pieces]
        fail = spec["fail"]
        chunks = _sync_stream(pieces, fail) if kind == "stream" else _async_stream(pieces, fail)
        response = Response.stream(chunks, "text/plain", status, headers)
        declare = spec["declare"]
        if declare:
            # NOTE: "short" and "long" declare a length the stream does not keep to: cut.
            response.length = max(0, len(body) + {"short": -1, "long": 1}.get(declare, 0))
        return response
    if kind == "sse":
        own = {k: v for k, v in headers.items() if k != "content-type"}
        return Response.sse(_events(spec), status, own)
    if kind == "file":
        return Response.file(FOLDER / f"{spec['size']}.txt", status=status, headers=headers)
    media = {"text": "text/plain", "html": "text/html", "json": "application/json"}[kind]
    return Response(body, status, headers, media_type=media)


@app.route("/r/{spec}", methods=["GET", "HEAD", "POST"])
def sync_answer(request: Request, spec: str) -> Any:
    return build(spec_of(spec))


@app.route("/ra/{spec}", methods=["GET", "HEAD", "POST"])
async def async_answer(request: Request, spec: str) -> Any:
    return build(spec_of(spec))
