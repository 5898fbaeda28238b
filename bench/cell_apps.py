"""The apps that ``cells.py`` measures: every cell of issue 7's table, in every framework.

Each framework gets two apps: the **main** app (hello, json, 20 query params, echo of a 1 KB JSON
body, a 10 MiB multipart upload) and the **routes** app (1,000 dynamic routes
``/r{i}/items/{id:int}``; the first and the last registered are requested). ``CELLS`` says what
each cell sends and what the answer must be; ``cells.py`` checks every app against it before it
times anything.

The raw WSGI and raw ASGI callables are the floor: the least honest work for each cell (a dict
lookup on the path, ``urllib.parse.parse_qsl``, ``json.loads``/``json.dumps``, and for the
upload the whole body read in 64 KiB chunks, each fed to the ``multipart`` package's
``PushMultipartParser``: the raw parser loop, which keeps nothing).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from bench_apps import HELLO, MESSAGE, TEXT_TYPE
from multipart import MultipartSegment, PushMultipartParser

JSON_TYPE = "application/json"
MiB = 1024 * 1024
ROUTE_COUNT = 1000
ROUTE_ID = 42
READ_CHUNK = 64 * 1024
UPLOAD_LIMIT = 16 * MiB  # NOTE: microweb's default max_body_size (10 MiB) is below the body.

QUERY_NAMES = tuple(f"p{i}" for i in range(20))
# NOTE: values without escapes, so parse_qsl (the floor) takes its fast path: with one %20 per
# value it costs 3x more here (40 us against 13 us) and is no floor (Falcon's parser is faster).
QUERY_STRING = "&".join(f"p{i}=value-{i}" for i in range(20))
QUERY_ANSWER = {f"p{i}": f"value-{i}" for i in range(20)}

ECHO = {
    "id": 1234567,
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "active": True,
    "tags": ["analytical", "engine", "notes", "poetry"],
    "items": [
        {"sku": f"SKU-{i:05d}", "title": f"Item number {i}", "qty": i, "price": i * 1.25}
        for i in range(11)
    ],
}
ECHO_BODY = json.dumps(ECHO).encode()

UPLOAD_SIZE = 10 * MiB
UPLOAD_NOTE = "cells"
BOUNDARY = "cellsbench7b1f0c2e9d4a"
UPLOAD_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def _upload_body() -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="note"\r\n\r\n'
        f"{UPLOAD_NOTE}\r\n"
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode("ascii")
    # NOTE: random bytes, like a compressed file; the boundary cannot occur in them by chance
    # in practice (22 fixed characters).
    data = random.Random(7).randbytes(UPLOAD_SIZE)
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode("ascii")


UPLOAD_BODY = _upload_body()


@dataclass(frozen=True)
class Cell:
    """One column of the table: the request to send and the answer every app must give."""

    name: str
    method: str
    path: str
    expected: Any  # a str for a text answer, else the decoded JSON
    query: str = ""
    body: bytes = b""
    content_type: str = ""
    routes: bool = False  # served by the 1,000-route app

    @property
    def media_type(self) -> str:
        """The media type the answer must have."""
        return "text/plain" if isinstance(self.expected, str) else JSON_TYPE


def route_answer(index: int, id: int) -> str:
    return f"route {index}, id {id}"


CELLS = {
    cell.name: cell
    for cell in (
        Cell("hello", "GET", "/", HELLO),
        Cell("json", "GET", "/json", MESSAGE),
        Cell("route first", "GET", f"/r0/items/{ROUTE_ID}", route_answer(0, ROUTE_ID), routes=True),
        Cell(
            "route last",
            "GET",
            f"/r{ROUTE_COUNT - 1}/items/{ROUTE_ID}",
            route_answer(ROUTE_COUNT - 1, ROUTE_ID),
            routes=True,
        ),
        Cell("20 query", "GET", "/query", QUERY_ANSWER, query=QUERY_STRING),
        Cell("echo 1KB", "POST", "/echo", ECHO, body=ECHO_BODY, content_type=JSON_TYPE),
        Cell(
            "upload 10MiB",
            "POST",
            "/upload",
            {"note": UPLOAD_NOTE, "size": UPLOAD_SIZE},
            body=UPLOAD_BODY,
            content_type=UPLOAD_TYPE,
        ),
    )
}


# -- raw callables: the floor -----------------------------------------------------------------


def _query_answer(query: str) -> bytes:
    fields = dict(parse_qsl(query))
    return json.dumps({name: fields[name] for name in QUERY_NAMES}).encode()


def _echo_answer(body: bytes) -> bytes:
    return json.dumps(json.loads(body)).encode()


class _UploadCounter:
    """The raw parser loop: feed the parser each chunk, keep the text field, count the file."""

    def __init__(self, content_type: str) -> None:
        self.parser = PushMultipartParser(content_type.partition("boundary=")[2])
        self.note, self.size = bytearray(), 0
        self.segment: MultipartSegment | None = None

    def feed(self, chunk: bytes) -> None:
        for event in self.parser.parse(chunk):
            if isinstance(event, MultipartSegment):
                self.segment = event
            elif event is not None and self.segment is not None:
                if self.segment.filename is None:
                    self.note += event
                else:
                    self.size += len(event)

    def answer(self) -> bytes:
        self.parser.close()
        return json.dumps({"note": self.note.decode(), "size": self.size}).encode()


def _raw_route(path: str) -> bytes | None:
    parts = path.split("/")
    if len(parts) != 4 or parts[2] != "items" or not parts[3].isdecimal():
        return None
    index = _ROUTE_INDEX.get(parts[1])
    return None if index is None else route_answer(index, int(parts[3])).encode()


_ROUTE_INDEX = {f"r{i}": i for i in range(ROUTE_COUNT)}
_TEXT = TEXT_TYPE.encode()
_JSON = JSON_TYPE.encode()


def _wsgi_chunks(environ: dict[str, Any]) -> Iterator[bytes]:
    stream, remaining = environ["wsgi.input"], int(environ["CONTENT_LENGTH"])
    while remaining > 0 and (chunk := stream.read(min(READ_CHUNK, remaining))):
        remaining -= len(chunk)
        yield chunk


def _wsgi_answer(environ: dict[str, Any]) -> tuple[bytes, bytes] | None:
    key = (environ["REQUEST_METHOD"], environ["PATH_INFO"])
    if key == ("GET", "/"):
        return _TEXT, HELLO.encode()
    if key == ("GET", "/json"):
        return _JSON, json.dumps(MESSAGE).encode()
    if key == ("GET", "/query"):
        return _JSON, _query_answer(environ["QUERY_STRING"])
    if key == ("POST", "/echo"):
        return _JSON, _echo_answer(b"".join(_wsgi_chunks(environ)))
    if key == ("POST", "/upload"):
        upload = _UploadCounter(environ["CONTENT_TYPE"])
        for chunk in _wsgi_chunks(environ):
            upload.feed(chunk)
        return _JSON, upload.answer()
    return None


def _wsgi_respond(start_response: Any, answer: tuple[bytes, bytes] | None) -> list[bytes]:
    if answer is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return []
    media_type, body = answer
    start_response(
        "200 OK", [("Content-Type", media_type.decode()), ("Content-Length", str(len(body)))]
    )
    return [body]


def raw_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The WSGI floor for the main app's cells."""
    return _wsgi_respond(start_response, _wsgi_answer(environ))


def raw_wsgi_routes(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The WSGI floor for the route cells: split the path, look its first segment up."""
    body = _raw_route(environ["PATH_INFO"])
    return _wsgi_respond(start_response, None if body is None else (_TEXT, body))


async def _asgi_body(receive: Any, feed: Callable[[bytes], Any]) -> None:
    while True:
        message = await receive()
        if body := message.get("body"):
            feed(body)
        if not message.get("more_body"):
            return


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


async def _asgi_answer(scope: dict[str, Any], receive: Any) -> tuple[bytes, bytes] | None:
    key = (scope["method"], scope["path"])
    if key == ("GET", "/"):
        return _TEXT, HELLO.encode()
    if key == ("GET", "/json"):
        return _JSON, json.dumps(MESSAGE).encode()
    if key == ("GET", "/query"):
        return _JSON, _query_answer(scope["query_string"].decode("latin-1"))
    if key == ("POST", "/echo"):
        chunks: list[bytes] = []
        await _asgi_body(receive, chunks.append)
        return _JSON, _echo_answer(b"".join(chunks))
    if key == ("POST", "/upload"):
        upload = _UploadCounter(_header(scope, b"content-type"))
        await _asgi_body(receive, upload.feed)
        return _JSON, upload.answer()
    return None


async def _asgi_respond(send: Any, answer: tuple[bytes, bytes] | None) -> None:
    status, headers, body = 404, [(b"content-length", b"0")], b""
    if answer is not None:
        media_type, body = answer
        status = 200
        headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def raw_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI floor for the main app's cells (lifespan messages are acknowledged)."""
    if scope["type"] == "lifespan":
        await _raw_lifespan(receive, send)
        return
    await _asgi_respond(send, await _asgi_answer(scope, receive))


async def raw_asgi_routes(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI floor for the route cells."""
    if scope["type"] == "lifespan":
        await _raw_lifespan(receive, send)
        return
    body = _raw_route(scope["path"])
    await _asgi_respond(send, None if body is None else (_TEXT, body))


async def _raw_lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


# -- microweb ---------------------------------------------------------------------------------


def microweb_main(colour: str) -> Any:
    """Return the main microweb ``App``, with ``def`` (``"sync"``) or ``async def`` handlers."""
    from microweb import App

    app = App()
    if colour == "sync":
        _add_microweb_sync(app)
    else:
        _add_microweb_async(app)
    return app


def _add_microweb_sync(app: Any) -> None:
    @app.get("/")
    def hello(request: Any) -> str:
        return HELLO

    @app.get("/json")
    def json_(request: Any) -> dict[str, Any]:
        return {"message": HELLO}

    @app.get("/query")
    def query(request: Any) -> dict[str, Any]:
        return {name: request.query[name] for name in QUERY_NAMES}

    @app.post("/echo")
    def echo(request: Any) -> Any:
        return request.json()

    @app.post("/upload", limits={"max_body_size": UPLOAD_LIMIT})
    def upload(request: Any) -> dict[str, Any]:
        form = request.form()
        return {"note": form["note"], "size": form["file"].size}


def _add_microweb_async(app: Any) -> None:
    @app.get("/")
    async def hello(request: Any) -> str:
        return HELLO

    @app.get("/json")
    async def json_(request: Any) -> dict[str, Any]:
        return {"message": HELLO}

    @app.get("/query")
    async def query(request: Any) -> dict[str, Any]:
        return {name: request.query[name] for name in QUERY_NAMES}

    @app.post("/echo")
    async def echo(request: Any) -> Any:
        return await request.ajson()

    @app.post("/upload", limits={"max_body_size": UPLOAD_LIMIT})
    async def upload(request: Any) -> dict[str, Any]:
        form = await request.aform()
        return {"note": form["note"], "size": form["file"].size}


def microweb_parts(colour: str) -> Any:
    """Return a microweb ``App`` whose upload streams the parts (``iter_parts``/``aiter_parts``).

    The handler keeps the text field and counts the file's bytes, as the raw parser loop does.
    """
    from microweb import App

    app = App()
    if colour == "sync":

        @app.post("/upload", limits={"max_body_size": UPLOAD_LIMIT})
        def upload(request: Any) -> dict[str, Any]:
            answer: dict[str, Any] = {}
            for part in request.iter_parts():
                if part.filename is None:
                    answer[part.name] = part.text()
                else:
                    answer["size"] = sum(len(chunk) for chunk in part.iter_bytes())
            return answer

    else:

        @app.post("/upload", limits={"max_body_size": UPLOAD_LIMIT})
        async def aupload(request: Any) -> dict[str, Any]:
            answer: dict[str, Any] = {}
            async for part in request.aiter_parts():
                if part.filename is None:
                    answer[part.name] = await part.atext()
                else:
                    size = 0
                    async for chunk in part.aiter_bytes():
                        size += len(chunk)
                    answer["size"] = size
            return answer

    return app


def microweb_routes(colour: str) -> Any:
    """Return a microweb ``App`` with the 1,000 dynamic routes, handlers of one colour."""
    from microweb import App

    app = App()
    for index in range(ROUTE_COUNT):
        app.get(f"/r{index}/items/{{id:int}}", name=f"r{index}")(_microweb_route(index, colour))
    return app


def _microweb_route(index: int, colour: str) -> Callable[..., Any]:
    if colour == "sync":

        def handler(request: Any, id: int) -> str:
            return route_answer(index, id)

        return handler

    async def ahandler(request: Any, id: int) -> str:
        return route_answer(index, id)

    return ahandler
