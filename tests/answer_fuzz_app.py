"""The app that ``test_servers_fuzz_answers.py`` runs under Waitress and Uvicorn: answers to order.

``/r/<spec>`` (a ``def`` handler) and ``/ra/<spec>`` (an ``async def`` one) build the answer
that ``spec`` describes: URL-safe base64 of a JSON object with the kind of body (a plain value,
a factory, a stream of either colour, with or without a declared length, a file), its status,
its size, extra headers and cookies. The same answer must go out alike under every server.
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

from microweb import App, Request, Response
from microweb.plugins import GZip

FOLDER = Path(tempfile.gettempdir()) / "microweb-answer-fuzz"
SIZES = (0, 1, 37, 300, 70_000)
TEXT = "fuzzy café text; "


def _make_files() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        path = FOLDER / f"{size}.txt"
        path.write_bytes((TEXT.encode() * (size // len(TEXT) + 1))[:size])
        os.utime(path, (1_700_000_000, 1_700_000_000))


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


def _sync_stream(pieces: list[bytes]) -> Iterator[bytes]:
    yield from pieces


async def _async_stream(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        await asyncio.sleep(0)
        yield piece


def build(spec: dict[str, Any]) -> Any:
    """The handler's return value for ``spec``."""
    kind, status, headers = spec["kind"], spec["status"], dict(spec["headers"])
    body = _body(spec)
    if kind == "str":
        return body.decode()
    if kind == "dict":
        return {"body": body.decode(), "n": spec["size"]}
    if kind == "bytes":
        return body
    if kind == "none":
        return None
    if kind == "tuple":
        return body.decode(), status, headers
    if kind == "redirect":
        response = Response.redirect("/r/elsewhere?q=" + body.decode()[:20], status=status)
    elif kind in ("stream", "astream"):
        pieces = _pieces(spec)
        chunks = _sync_stream(pieces) if kind == "stream" else _async_stream(pieces)
        response = Response.stream(chunks, "text/plain", status, headers)
        if spec.get("declare"):
            response.length = len(body)
    elif kind == "file":
        response = Response.file(FOLDER / f"{spec['size']}.txt", status=status, headers=headers)
    else:
        media = {"text": "text/plain", "html": "text/html", "json": "application/json"}[kind]
        response = Response(body, status, headers, media_type=media)
    for name, value in spec["cookies"]:
        response.set_cookie(name, value, max_age=60)
    return response


@app.route("/r/{spec}", methods=["GET", "HEAD", "POST"])
def sync_answer(request: Request, spec: str) -> Any:
    return build(spec_of(spec))


@app.route("/ra/{spec}", methods=["GET", "HEAD", "POST"])
async def async_answer(request: Request, spec: str) -> Any:
    return build(spec_of(spec))
