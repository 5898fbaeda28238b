"""The fast paths answer as the general paths they cut short (differential tests).

An app with no flows takes every shortcut (a handler called with no effect generator, a plain
answer sent with no ``Response``, its two headers at once); a no-op flow, sync or async, sends
the same request down the general path. Both must send the same status, headers (in order)
and body, for every kind of answer, under both interfaces and both colours. The body's
readers (``read()``, ``iter_bytes()`` and their twins, whose whole reads skip the generators)
must read the same body or refuse it alike, and the router's first way through the templates
must find what the full search finds first.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from answer_fuzz_app import KINDS, SIZES, encode_spec, spec_of
from answer_fuzz_app import build as build_answer
from conftest import in_colour
from drive import asgi_call, body_messages, http_scope, response_body, wsgi_environ
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from microweb import App, Limits, Request, Response
from microweb._asgi_body import ASGIBody
from microweb._body import parse_content_length
from microweb._errors import HTTPError
from microweb._route_table import RouteTable
from microweb._wsgi import WSGIDriver
from microweb.testing import TestClient

# NOTE: FUZZ_EXAMPLES=2000 for a longer hunt.
EXAMPLES = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MODES = ("plain", "sync flow", "async flow")


class _Text(str):
    __slots__ = ()


class _Mapping(dict[str, Any]):
    pass


def _stream(pieces: list[Any]) -> Iterator[Any]:
    yield from pieces


async def _astream(pieces: list[Any]) -> AsyncIterator[Any]:
    for piece in pieces:
        yield piece


# NOTE: each value a handler may return, the odd ones included: the shortcuts take some (an
# exact str, dict or list) and leave the rest (subclasses, values that fail to encode) to the
# general path, which must answer them as it answers them behind a flow.
ANSWERS: dict[str, Callable[[], Any]] = {
    "str": lambda: "h\u00e9llo",
    "empty str": lambda: "",
    "lone surrogate": lambda: "\ud800",
    "dict": lambda: {"a": "\u00e9", "b": [1, 2.5, None, True]},
    "list": lambda: [1, "x", {}],
    "empty list": lambda: [],
    "NaN": lambda: {"x": math.nan},
    "unencodable": lambda: [object()],
    "non-str keys": lambda: {1: "a", None: 2, 2.5: True},
    "str subclass": lambda: _Text("sub"),
    "dict subclass": lambda: _Mapping(a=1),
    "bytes": lambda: b"raw",
    "empty bytes": lambda: b"",
    "bytearray": lambda: bytearray(b"ba"),
    "None": lambda: None,
    "tuple with status": lambda: ("x", 201),
    "tuple with headers": lambda: ({"a": 1}, 200, {"X-A": "1", "Content-Type": "text/x"}),
    "tuple 204": lambda: ("x", 204),
    "tuple 205": lambda: ("x", 205),
    "tuple 304": lambda: ("x", 304),
    "tuple of a Response": lambda: (Response("x"), 202),
    "Response": lambda: Response("hi"),
    "Response.json": lambda: Response.json([1]),
    "Response with a header": lambda: Response("hi", headers={"X-Y": "z"}),
    "Response with its length": lambda: Response("hi", headers={"Content-Length": "99"}),
    "Response with no type": lambda: Response(b"x", headers={"X-Y": "z"}),
    "Response of another type": lambda: Response("hi", media_type="text/x; charset=latin-1"),
    "Response 204": lambda: Response("hi", 204),
    "Response 205": lambda: Response("hi", 205),
    "Response 304": lambda: Response("hi", 304),
    "Response 404": lambda: Response("gone", 404),
    "stream": lambda: Response.stream(_stream([b"a", "\u00e9", b"", bytearray(b"c")])),
    "async stream": lambda: Response.stream(_astream([b"a", "\u00e9", b""])),
    "int": lambda: 5,
    "iterator": lambda: iter([b"a"]),
}


def _app(mode: str, colour: str, limits: Limits | None = None) -> App:
    app = App(limits=limits)
    if mode == "sync flow":

        @app.middleware
        def passing(request: Request) -> Iterator[None]:
            yield

    elif mode == "async flow":

        @app.middleware
        async def apassing(request: Request) -> AsyncIterator[None]:
            yield

    for name, make in ANSWERS.items():

        def answer(request: Request, make: Callable[[], Any] = make) -> Any:
            return make()

        app.route(f"/{name}", methods=["GET", "POST"], name=name)(in_colour(colour, answer))

    def templated(request: Request, name: str) -> Any:
        return ANSWERS[name]()

    app.route("/templated/{name}", methods=["GET", "POST"])(in_colour(colour, templated))
    return app


def _seen(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in ("date", "server")]
    return response.status_code, headers, response.content


@pytest.fixture
def clients(interface: str, colour: str) -> Iterator[dict[str, TestClient]]:
    made = {mode: TestClient(_app(mode, colour), interface=interface) for mode in MODES}
    yield made
    for client in made.values():
        client.close()


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_every_answer_goes_out_alike_with_flows_or_without(
    clients: dict[str, TestClient], method: str
) -> None:
    for name in ANSWERS:
        seen = {mode: _seen(client.request(method, f"/{name}")) for mode, client in clients.items()}
        assert seen["sync flow"] == seen["plain"], name
        assert seen["async flow"] == seen["plain"], name


def test_a_head_answer_is_its_get_answer_without_the_body(clients: dict[str, TestClient]) -> None:
    for client in clients.values():
        for name in ANSWERS:
            get, head = client.get(f"/{name}"), client.head(f"/{name}")
            status, headers, _ = _seen(get)
            assert _seen(head) == (status, headers, b""), name


def test_a_templated_route_answers_as_a_route_without_parameters(
    clients: dict[str, TestClient],
) -> None:
    # NOTE: a route without parameters is found with two dict lookups and called with no **;
    # a templated one goes through the templates and gets its parameter.
    client = clients["plain"]
    for name in ANSWERS:
        for method in ("GET", "HEAD"):
            direct = _seen(client.request(method, f"/{name}"))
            assert _seen(client.request(method, f"/templated/{name}")) == direct, name


# NOTE: the answers of tests/answer_fuzz_app.py (whose app has GZip, so its flow always runs),
# built here in apps with no flow and with a passing one, and asked for as a client would.
HEADER_POOL = [
    ("x-a", "1"),
    ("x-a", "2"),
    ("cache-control", "no-store"),
    ("content-type", "application/problem+json"),
    ("etag", '"v1"'),
    ("x-name", "caf\u00e9"),
    ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
]
REQUEST_HEADERS = [
    ("range", "bytes=0-9"),
    ("range", "bytes=-5"),
    ("range", "bytes=99999-"),
    ("if-none-match", '"v1"'),
    ("if-none-match", "*"),
    ("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT"),
    ("if-range", '"stale"'),
    ("if-match", '"other"'),
    ("accept", "application/json"),
]


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    statuses = (301, 302, 303, 307, 308) if kind == "redirect" else (200, 201, 204, 205, 304, 404)
    headers = draw(st.lists(st.sampled_from(HEADER_POOL), max_size=3, unique=True))
    if kind in ("tuple", "file"):
        headers = list(dict(headers).items())  # NOTE: a mapping there: one value a name.
    return {
        "kind": kind,
        "status": draw(st.sampled_from(statuses)),
        "size": draw(st.sampled_from(SIZES)),
        "chunks": draw(st.integers(1, 4)),
        "empty_first": draw(st.booleans()),
        "declare": draw(st.sampled_from([False, True, "short", "long"])),
        "fail": draw(st.integers(0, 5)) == 0,
        "text": draw(st.booleans()),
        "headers": headers,
        "cookies": draw(st.lists(st.sampled_from([("a", "1"), ("b", "two words")]), max_size=2)),
    }


def _built_app(mode: str) -> App:
    app = _app(mode, "sync")

    @app.route("/built/{spec}", methods=["GET", "HEAD", "POST"])
    def built(request: Request, spec: str) -> Any:
        return build_answer(spec_of(spec))

    app.route("/abuilt/{spec}", methods=["GET", "HEAD", "POST"], name="abuilt")(
        in_colour("async", built)
    )
    return app


@pytest.fixture
def built_clients(interface: str) -> Iterator[dict[str, TestClient]]:
    made = {mode: TestClient(_built_app(mode), interface=interface) for mode in MODES}
    yield made
    for client in made.values():
        client.close()


def _outcome(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    try:
        return _seen(client.request(method, path, headers=headers))
    except Exception as exc:
        # NOTE: a stream that failed or broke its declared length is cut off: alike, too.
        return type(exc).__name__


@EXAMPLES
@given(
    spec=specs(),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    prefix=st.sampled_from(["/built/", "/abuilt/"]),
    headers=st.lists(st.sampled_from(REQUEST_HEADERS), max_size=3, unique_by=lambda h: h[0]),
)
def test_a_random_answer_goes_out_alike_with_flows_or_without(
    built_clients: dict[str, TestClient],
    spec: dict[str, Any],
    method: str,
    prefix: str,
    headers: list[tuple[str, str]],
) -> None:
    path = prefix + encode_spec(spec)
    seen = {
        mode: _outcome(client, method, path, dict(headers))
        for mode, client in built_clients.items()
    }
    assert seen["sync flow"] == seen["plain"]
    assert seen["async flow"] == seen["plain"]


# -- the body's readers --------------------------------------------------------------------------

LIMITS = Limits(max_body_size=40, max_json_size=30)
READERS = {
    "read": lambda request: request.read(),
    "read twice": lambda request: request.read() and request.read(),
    "iter_bytes": lambda request: b"".join(request.iter_bytes()),
}
JSON_READERS = {"json": lambda request: [request.json()]}
# NOTE: read() holds the body to max_body_size, which json() then holds to max_json_size.
READ_THEN_JSON = {"read then json": lambda request: request.read() is not None and [request.json()]}


def _reader_app() -> App:
    app = App(limits=LIMITS)
    for name, read in {**READERS, **JSON_READERS, **READ_THEN_JSON}.items():
        app.post(f"/{name}", name=name)(read)

        async def aread(request: Request, name: str = name) -> Any:
            if name.startswith("read then"):
                await request.aread()
                return [await request.ajson()]
            if name == "json":
                return [await request.ajson()]
            if name == "iter_bytes":
                return b"".join([chunk async for chunk in request.aiter_bytes()])
            body = await request.aread()
            return await request.aread() if name == "read twice" else body

        app.post(f"/a/{name}", name=f"a {name}")(aread)
    return app


READER_APP = _reader_app()
BODIES = [b"", b"[1]", b"[1, 2]", b'"' + b"x" * 33 + b'"', b"x" * 45, b"[" + b"1," * 19 + b"1]"]


@pytest.fixture(scope="module")
def reader_wsgi() -> Iterator[WSGIDriver]:
    # NOTE: closed at the end, or its app loop's thread was left running, and the lifespan
    # tests that count such threads failed after this module.
    driver = READER_APP.as_wsgi()
    yield driver
    driver.close()


def _wsgi_answer(
    driver: WSGIDriver, path: str, body: bytes, length: str | None, chunked: bool
) -> tuple[str, bytes]:
    extra: dict[str, Any] = {"wsgi.input": io.BytesIO(body), "CONTENT_TYPE": "application/json"}
    if length is not None:
        extra["CONTENT_LENGTH"] = length
    if chunked:
        extra["HTTP_TRANSFER_ENCODING"] = "chunked"
        extra["wsgi.input_terminated"] = True
    seen: list[str] = []
    result = driver(
        wsgi_environ("POST", path, **extra),
        lambda status, headers, exc_info=None: seen.append(status) or (lambda data: None),
    )
    try:
        return seen[0][:3], b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()


def _asgi_answer(path: str, parts: list[bytes], length: str | None) -> tuple[str, bytes]:
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", length.encode()))
    else:
        headers.append((b"transfer-encoding", b"chunked"))
    sent = asyncio.run(
        asgi_call(READER_APP, http_scope("POST", path, headers), body_messages(*parts))
    )
    return str(sent[0]["status"]), response_body(sent)


@pytest.mark.parametrize(
    "readers", [READERS, JSON_READERS, READ_THEN_JSON], ids=["bytes", "json", "read then json"]
)
@pytest.mark.parametrize("body", BODIES, ids=[str(len(body)) for body in BODIES])
def test_every_reader_reads_a_body_alike(
    reader_wsgi: WSGIDriver, readers: dict[str, Any], body: bytes
) -> None:
    # NOTE: read() and aread() read a whole body with no generator, and a small one inline;
    # iter_bytes() and aiter_bytes() go through the chunk generators: the same body, or the
    # same refusal (413 past a limit, 400 for a body shorter than its Content-Length).
    for length, chunked in ((str(len(body)), False), (None, True), ("3", False), ("100", False)):
        answers = {
            _wsgi_answer(reader_wsgi, f"/{prefix}{name}", body, length, chunked)
            for name in readers
            for prefix in ("", "a/")
        }
        assert len(answers) == 1, (length, chunked, answers)
    splits = [[body], [body[:1], body[1:]], [bytes([byte]) for byte in body] or [b""]]
    for length in (str(len(body)), None):
        answers = {
            _asgi_answer(f"/{prefix}{name}", parts, length)
            for name in readers
            for prefix in ("", "a/")
            for parts in splits
        }
        assert len(answers) == 1, (length, answers)


# NOTE: digits alone (the fast path's), and values it leaves to parse_content_length(): spaces,
# signs, underscores (int() takes them), digits beyond ASCII, too many digits.
CONTENT_LENGTHS = [
    b"0",
    b"5",
    b"0005",
    b"9" * 18,
    b"0" * 30 + b"7",
    b"9" * 19,
    b" 5",
    b"5\t",
    b"+5",
    b"-5",
    b"5.0",
    b"1_000",
    b"0x5",
    b"\xb2",
    "\u0665".encode(),
]


@pytest.mark.parametrize("value", CONTENT_LENGTHS, ids=repr)
def test_an_asgi_content_length_reads_as_parse_content_length_reads_it(value: bytes) -> None:
    def answer(read: Callable[[], int | None]) -> Any:
        try:
            return read()
        except HTTPError as exc:
            return exc.status

    loop = asyncio.new_event_loop()
    try:
        source = ASGIBody([(b"content-length", value)], _no_message, loop)
        assert answer(lambda: source.content_length) == answer(
            lambda: parse_content_length(value.decode("latin-1"))
        )
    finally:
        loop.close()


async def _no_message() -> dict[str, Any]:
    raise AssertionError("no message is read")


# -- the router's first way ----------------------------------------------------------------------

SEGMENTS = ["a", "b", "", "{x}", "{y:int}", "{z:float}", "{p:path}", "{u:uuid}"]
PATH_SEGMENTS = [
    "a",
    "b",
    "1",
    "1.5",
    "-1",
    "",
    "01",
    "1e3",
    "12345678-1234-5678-1234-567812345678",
]
TEMPLATES = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map(
    lambda segments: "/" + "/".join(segments)
)
PATHS = st.lists(st.sampled_from(PATH_SEGMENTS), min_size=1, max_size=4).map(
    lambda segments: "/" + "/".join(segments)
)


def _searched(table: RouteTable[Any], method: str, path: str) -> tuple[Any, dict[str, Any]]:
    """What the full search finds first for ``method``: the route without parameters of
    ``path``, else the first template in the search's order."""
    static = table.static.get(path)
    if static is not None and method in static:
        return static[method][1], {}
    for methods, values in table._matches(table._root, path[1:].split("/"), 0, []):
        if method in methods:
            _, value, names = methods[method]
            return value, dict(zip(names, values, strict=True))
    return None, {}


@EXAMPLES
@given(
    routes=st.lists(st.tuples(TEMPLATES, st.sampled_from(["GET", "POST"])), min_size=1, max_size=6),
    paths=st.lists(PATHS, min_size=1, max_size=5),
    method=st.sampled_from(["GET", "POST"]),
)
def test_the_router_finds_what_its_full_search_finds_first(
    routes: list[tuple[str, str]], paths: list[str], method: str
) -> None:
    app = App()
    for index, (template, route_method) in enumerate(routes):
        try:
            app.route(template, methods=[route_method], name=f"r{index}")(lambda request, **_: "")
        except ValueError:
            continue  # NOTE: a clash, or a template refused: not this test's matter.
    try:
        table = app.compile().http
    except ValueError:
        assume(False)
        return
    for path in paths:
        value, params, _ = table.lookup(method, path)
        assert (value, params) == _searched(table, method, path), path
