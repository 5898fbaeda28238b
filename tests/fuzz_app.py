"""The app that ``test_servers_fuzz.py`` runs under Waitress and Uvicorn: it says what it read.

Each handler reads the request as an app would (path, query, headers, cookies, host, URL, the
body as a form, JSON, bytes, or streamed parts or chunks, as ``X-Read`` asks) and answers
with a JSON report of what each step gave, an ``HTTPError`` included: the same request must
give the same report under every server.
``/s/...`` is a ``def`` handler, ``/a/...`` an ``async def`` one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from microweb import App, HTTPError, Limits, Request, Response, UploadFile

app = App(limits=Limits(max_body_size=4096, max_query_params=12, max_form_memory=2048))
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _step(report: dict[str, Any], name: str, read: Callable[[], Any]) -> None:
    try:
        report[name] = read()
    except HTTPError as exc:
        report[name] = f"HTTPError {exc.status}: {exc.detail}"


def _field(value: str | UploadFile) -> Any:
    if isinstance(value, UploadFile):
        data = value.file.read()
        return [value.filename, value.content_type, len(data), hashlib.sha1(data).hexdigest()]
    return value


def _head(request: Request, rest: str) -> dict[str, Any]:
    report: dict[str, Any] = {"method": request.method, "rest": rest}
    _step(report, "path", lambda: request.path)
    _step(report, "query", lambda: list(request.query.items()))
    _step(report, "cookies", lambda: sorted(request.cookies.items()))
    _step(report, "host", lambda: request.host)
    _step(report, "url", lambda: str(request.url))
    _step(report, "content_type", lambda: request.headers.get("content-type"))
    # NOTE: joined, as a WSGI server joins the lines of one name (docs/requests.md).
    _step(report, "x_values", lambda: ", ".join(request.headers.getlist("x-value")))
    return report


def _body_kind(request: Request) -> str:
    """How the handler reads the body: ``X-Read`` names a stream (``parts``, ``chunks``),
    else the content type picks ``form()``, ``json()`` or ``read()``."""
    read = request.headers.get("x-read")
    if read in ("parts", "chunks"):
        return read
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return "form"
    return "json" if media == "application/json" else "bytes"


def _digest(body: bytes) -> list[Any]:
    return [len(body), hashlib.sha1(body).hexdigest()]


def _parts(request: Request) -> list[Any]:
    return [
        [part.name, part.filename, part.content_type, _digest(b"".join(part.iter_bytes()))]
        for part in request.iter_parts()
    ]


async def _aparts(request: Request) -> list[Any]:
    parts = []
    async for part in request.aiter_parts():
        data = b"".join([chunk async for chunk in part.aiter_bytes()])
        parts.append([part.name, part.filename, part.content_type, _digest(data)])
    return parts


async def _achunks(request: Request) -> list[Any]:
    return _digest(b"".join([chunk async for chunk in request.aiter_bytes()]))


@app.route("/s/{rest:path}", methods=METHODS)
def sync_echo(request: Request, rest: str) -> Response:
    report = _head(request, rest)
    kind = _body_kind(request)
    if kind == "form":
        _step(report, "form", lambda: [[k, _field(v)] for k, v in request.form().items()])
    elif kind == "parts":
        _step(report, "parts", lambda: _parts(request))
    elif kind == "chunks":
        _step(report, "chunks", lambda: _digest(b"".join(request.iter_bytes())))
    elif kind == "json":
        _step(report, "json", request.json)
    else:
        _step(report, "body", lambda: _digest(request.read()))
    return Response.json(report)


@app.route("/a/{rest:path}", methods=METHODS)
async def async_echo(request: Request, rest: str) -> Response:
    report = _head(request, rest)
    kind = _body_kind(request)
    try:
        if kind == "form":
            report["form"] = [[k, _field(v)] for k, v in (await request.aform()).items()]
        elif kind == "parts":
            report["parts"] = await _aparts(request)
        elif kind == "chunks":
            report["chunks"] = await _achunks(request)
        elif kind == "json":
            report["json"] = await request.ajson()
        else:
            report["body"] = _digest(await request.aread())
    except HTTPError as exc:
        report["body" if kind == "bytes" else kind] = f"HTTPError {exc.status}: {exc.detail}"
    return Response.json(report)
