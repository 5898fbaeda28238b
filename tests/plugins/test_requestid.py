"""The RequestID and AccessLog plugins under both interfaces."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest
from conftest import MakeClient, in_colour
from drive import (
    asgi_call,
    body_messages,
    handshake_messages,
    http_scope,
    websocket_scope,
    wsgi_get,
)

from microweb import App, HTTPError, Request, Response, WebSocket, WebSocketDisconnect
from microweb.plugins import CORS, AccessLog, ProxyHeaders, RequestID
from microweb.testing import TestClient


def id_app(*plugins: Any) -> App:
    app = App()
    for plugin in plugins:
        app.install(plugin)

    @app.get("/id")
    def sync_id(request: Request) -> str:
        return str(getattr(request.state, "request_id", None))

    @app.get("/aid")
    async def async_id(request: Request) -> str:
        return str(getattr(request.state, "request_id", None))

    @app.get("/fail")
    def fail(request: Request) -> str:
        raise RuntimeError("boom")

    @app.get("/teapot")
    async def teapot(request: Request) -> str:
        raise HTTPError(418)

    return app


def test_request_id_is_generated_and_echoed(make_client: MakeClient) -> None:
    client = make_client(id_app(RequestID()))
    seen = set()
    for path in ("/id", "/aid"):
        response = client.get(path)
        assert re.fullmatch(r"[0-9a-f]{32}", response.text)
        assert response.headers["x-request-id"] == response.text
        seen.add(response.text)
    assert len(seen) == 2
    assert re.fullmatch(r"[0-9a-f]{32}", client.get("/missing").headers["x-request-id"])


def test_request_id_trusts_a_valid_incoming_id(make_client: MakeClient) -> None:
    client = make_client(id_app(RequestID()))
    response = client.get("/id", headers={"x-request-id": "edge-42:abc"})
    assert (response.text, response.headers["x-request-id"]) == ("edge-42:abc", "edge-42:abc")
    for bad in ("a" * 201, "has space", "caf\u00e9", ""):
        replaced = client.get("/id", headers={"x-request-id": bad.encode()})
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.text), bad
    assert client.get("/id", headers={"x-request-id": "a" * 200}).text == "a" * 200


def test_request_id_options(make_client: MakeClient) -> None:
    ids = iter(["one", "two"])
    plugin = RequestID(header="X-Trace", trust_incoming=False, generator=lambda: next(ids))
    client = make_client(id_app(plugin))
    response = client.get("/aid", headers={"x-trace": "from-client"})
    assert (response.text, response.headers["x-trace"]) == ("one", "one")
    assert client.get("/id").headers["x-trace"] == "two"


async def _async_id() -> str:
    return "rid"


def _yielded_id() -> Iterator[str]:
    yield "rid"


async def _async_yielded_id() -> AsyncIterator[str]:
    yield "rid"


@pytest.mark.parametrize(
    "generator",
    ["rid", None, _async_id, _yielded_id, _async_yielded_id],
    ids=["str", "None", "async", "generator", "async-generator"],
)
def test_request_id_refuses_a_generator_it_cannot_call(generator: Any) -> None:
    # NOTE: accepted, each failed every request with a 500 whose error named the header.
    with pytest.raises(TypeError, match="RequestID generator must be a def function"):
        RequestID(generator=generator)


def _id_of(request: Request) -> str:
    return "rid"


def test_request_id_refuses_a_generator_that_needs_arguments() -> None:
    # NOTE: called with none, it failed every request with a 500.
    with pytest.raises(TypeError, match="must take no arguments"):
        RequestID(generator=_id_of)  # type: ignore[arg-type]
    RequestID(generator=lambda *args: "rid")
    RequestID(generator=lambda prefix="r": prefix + "id")


@pytest.mark.parametrize(
    ("generator", "error"),
    [
        (uuid.uuid4, "TypeError: RequestID generator .* returned UUID"),
        (lambda: 7, "TypeError: RequestID generator .* returned int"),
        (lambda: "a b\r\nx", "ValueError: RequestID generator .* returned 'a b"),
        (lambda: "", "ValueError: RequestID generator .* returned ''"),
    ],
    ids=["uuid4", "int", "line-break", "empty"],
)
def test_request_id_a_generator_that_gives_no_id_fails_before_the_handler(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, generator: Any, error: str
) -> None:
    # NOTE: generator=uuid.uuid4 (a UUID, not its str) ran every handler, a POST's writes
    # included, with that object as the ID, and then failed as the header was set: a 500 after
    # the work was done, which clients retry. It is refused before the handler, by its name.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = id_app(RequestID(generator=generator))
    ran: list[str] = []

    @app.post("/write")
    def write(request: Request) -> str:
        ran.append("written")
        return "ok"

    response = make_client(app).post("/write")
    assert (response.status_code, ran) == (500, [])
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1
    exc = logged[0].exc_info[1]  # type: ignore[index]
    assert re.match(error, f"{type(exc).__name__}: {exc}"), exc


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "microweb.access"]


def test_access_log_one_line_per_request(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="microweb.access")
    client = make_client(id_app(AccessLog(), RequestID(generator=lambda: "rid")))
    client.get("/aid")
    client.get("/teapot")
    client.get("/missing")
    records = access_records(caplog)
    assert [r.levelno for r in records] == [logging.INFO] * 3
    messages = [r.getMessage() for r in records]
    assert re.fullmatch(r"GET /aid 200 \d+\.\d\dms client=127\.0\.0\.1 id=rid", messages[0])
    assert messages[1].startswith("GET /teapot 418 ")
    assert messages[2].startswith("GET /missing 404 ")
    first: Any = records[0]
    assert (first.http_method, first.http_path, first.http_status) == ("GET", "/aid", 200)
    assert first.request_id == "rid" and first.duration_ms >= 0
    assert first.client_addr == "127.0.0.1"


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_access_log_names_the_client_and_the_whole_path(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: with AccessLog installed, Uvicorn's own access log is off: no line held the
    # client's address, and under a root path the app's path was logged without it.
    caplog.set_level(logging.INFO, logger="microweb.access")
    app = App()
    app.install(AccessLog())
    app.install(ProxyHeaders(["10.0.0.1"]))

    @app.get("/login")
    def login(request: Request) -> str:
        return "ok"

    forwarded = [(b"x-forwarded-for", b"203.0.113.9")]
    if interface == "wsgi":
        status, _ = wsgi_get(
            validator(app.as_wsgi()),
            "/login",
            QUERY_STRING="",
            SCRIPT_NAME="/app",
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR="203.0.113.9",
        )
        assert status.startswith("200")
    else:
        scope = {**http_scope(path="/app/login", root_path="/app", headers=forwarded)}
        scope["client"] = ("10.0.0.1", 5000)
        sent = asyncio.run(asgi_call(app, scope, body_messages(b"")))
        assert sent[0]["status"] == 200
    [record] = access_records(caplog)
    assert record.getMessage().startswith("GET /app/login 200 ")
    assert record.getMessage().endswith(" client=203.0.113.9")
    fields: Any = record
    assert (fields.http_path, fields.client_addr) == ("/app/login", "203.0.113.9")


def test_access_log_unhandled_error_is_500(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="microweb.access")
    client = make_client(id_app(AccessLog()))
    assert client.get("/fail").status_code == 500
    [record] = access_records(caplog)
    assert record.getMessage().startswith("GET /fail 500 ")
    assert not record.getMessage().endswith("id=None")


@pytest.mark.parametrize("order", ["plugins first", "plugins last"])
def test_unhandled_errors_carry_the_plugins_headers(
    interface: str, colour: str, order: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="microweb.access")
    app = App()
    seen: list[str] = []

    def plugins() -> None:
        app.install(AccessLog())
        app.install(RequestID(generator=lambda: "rid"))
        app.install(CORS(["https://app.example"]))

    if order == "plugins first":
        plugins()

    @app.middleware
    def answer_lookups(request: Request) -> Iterator[Response | None]:
        try:
            yield
        except Exception as exc:
            seen.append(type(exc).__name__)
            if isinstance(exc, LookupError):
                yield Response.text("looked up nothing", status=404)
            else:
                raise

    if order == "plugins last":
        plugins()

    @app.get("/fail")
    def fail(request: Request) -> str:
        raise RuntimeError("boom")

    @app.get("/afail")
    async def afail(request: Request) -> str:
        raise KeyError("nothing")

    headers = {"origin": "https://app.example"}
    path, status = ("/fail", 500) if colour == "sync" else ("/afail", 404)
    with TestClient(app, interface=interface) as client:
        for response in (client.get(path, headers=headers), client.head(path, headers=headers)):
            assert response.status_code == status
            assert response.headers["x-request-id"] == "rid"
            assert response.headers["access-control-allow-origin"] == "https://app.example"
            # NOTE: the default 500 varies by Accept too (its body is JSON or text).
            assert response.headers["vary"] == ("Accept, Origin" if status == 500 else "Origin")
    assert seen == ["RuntimeError" if colour == "sync" else "KeyError"] * 2
    messages = [record.getMessage() for record in access_records(caplog)]
    assert [m.split()[:3] for m in messages] == [
        ["GET", path, str(status)],
        ["HEAD", path, str(status)],
    ]
    assert all(m.endswith(" id=rid") for m in messages)


def test_access_log_escapes_the_path(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="microweb.access")
    make_client(id_app(AccessLog())).get("/a%0d%0aFAKE%20200")
    [record] = access_records(caplog)
    assert "\n" not in record.getMessage() and "\r" not in record.getMessage()
    assert record.getMessage().startswith("GET /a%0D%0AFAKE%20200 404 ")
    assert record.http_path == "/a%0D%0AFAKE%20200"  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/a%FF%20b", "/caf%E9"])
def test_access_log_keeps_a_path_that_is_not_utf8(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    # NOTE: such a path was logged empty ("GET  400"): a reader splitting the line on runs of
    # spaces took the status for the path.
    caplog.set_level(logging.INFO, logger="microweb.access")
    assert make_client(id_app(AccessLog())).get(path).status_code == 400
    [record] = access_records(caplog)
    assert record.getMessage().split()[:3] == ["GET", path, "400"]
    assert record.http_path == path  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("path", "kept"),
    [("/" + "%0A" * 20_000, "/" + "%0A" * 4095), ("/" + "%FF" * 20_000, "/" + "%FF" * 4095)],
    ids=["utf8", "not-utf8"],
)
def test_access_log_cuts_a_long_path_and_says_how_much_it_cut(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, path: str, kept: str
) -> None:
    # NOTE: the whole path was encoded and logged: a client wrote a line as long as its head
    # (256 KiB) into the log with each request, at 26 ns a character encoded.
    caplog.set_level(logging.INFO, logger="microweb.access")
    make_client(id_app(AccessLog())).get(path)
    [record] = access_records(caplog)
    logged = record.http_path  # type: ignore[attr-defined]
    assert logged == kept + "[...+15905]"
    assert record.getMessage().split()[1] == logged


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/" + "a" * 4095, "/" + "a" * 4095),
        ("/" + "a" * 4096, "/" + "a" * 4095 + "[...+1]"),
        ("/" + "%C3%A9" * 5000, "/" + "%C3%A9" * 4095 + "[...+905]"),
        ("/%FF%FF" + "%C3%A9" * 3000, "/%FF%FF" + "%C3%A9" * 2046 + "%C3[...+1907]"),
    ],
    ids=["at-the-cut", "one-past", "two-byte-characters", "not-utf8-cut-in-a-character"],
)
def test_access_log_cuts_a_path_at_its_limit_each_escape_whole(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, path: str, logged: str
) -> None:
    # NOTE: a path is cut by characters, one that is not UTF-8 by bytes: either way each
    # escape in the line is whole (review337).
    caplog.set_level(logging.INFO, logger="microweb.access")
    make_client(id_app(AccessLog())).get(path)
    [record] = access_records(caplog)
    assert record.http_path == logged  # type: ignore[attr-defined]


def test_access_log_cuts_a_long_root_path_with_the_path(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the path was cut, but the root path before it was not: mounted under a prefix
    # that takes a client's text (Starlette's Mount("/{tenant}")), a client still wrote its
    # whole head into the log with each request (review337).
    caplog.set_level(logging.INFO, logger="microweb.access")
    root = "/" + "r" * 10_000
    with TestClient(id_app(AccessLog()), interface=interface, root_path=root) as client:
        client.get(root + "/" + "a" * 100)
    [record] = access_records(caplog)
    logged = record.http_path  # type: ignore[attr-defined]
    assert logged == root[:4096] + "[...+6006]"
    assert record.getMessage().split()[1] == logged


@pytest.mark.parametrize(
    ("method", "logged"),
    [
        ("A" * 64, "A" * 64),
        ("A" * 20_000, "A" * 64 + "[...+19936]"),
        ("B%" * 40, "B%25" * 32 + "[...+16]"),
    ],
    ids=["at-the-cut", "long", "encoded"],
)
def test_access_log_cuts_a_long_method_and_says_how_much_it_cut(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, method: str, logged: str
) -> None:
    # NOTE: a method is any token under h11 (and anything up to a space under Waitress): one
    # as long as the head (256 KiB) was written whole into the log with each request
    # (review337).
    caplog.set_level(logging.INFO, logger="microweb.access")
    make_client(id_app(AccessLog())).request(method, "/")
    [record] = access_records(caplog)
    assert record.http_method == logged  # type: ignore[attr-defined]
    assert record.getMessage().split()[0] == logged


def test_access_log_takes_a_logger_and_respects_its_level(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("tests.access")
    caplog.set_level(logging.WARNING, logger="tests.access")
    client = make_client(id_app(AccessLog(logger)))
    client.get("/id")
    assert not [r for r in caplog.records if r.name == "tests.access"]
    caplog.set_level(logging.INFO, logger="tests.access")
    client.get("/id")
    assert [r.name for r in caplog.records] == ["tests.access"]


@pytest.mark.parametrize(
    "header", ["x request id", "", "x-id\r\n", "x-id:", "Connection", "te", "Keep-Alive"]
)
def test_request_id_refuses_a_bad_header_name_at_once(header: str) -> None:
    with pytest.raises(ValueError, match="header name"):
        RequestID(header=header)


@pytest.mark.parametrize("header", [None, b"x-request-id"])
def test_request_id_refuses_a_header_name_that_is_not_a_str(header: Any) -> None:
    # NOTE: the error was the regular expression's ("expected string or bytes-like object",
    # "cannot use a string pattern on a bytes-like object"), naming neither option nor value.
    with pytest.raises(TypeError, match="RequestID header must be a str"):
        RequestID(header=header)


@pytest.mark.parametrize("fails", [False, True])
def test_access_log_a_client_gone_before_the_answer_is_499(
    colour: str, fails: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: ASGI only: a WSGI server hands the app the whole body, or a short one that is a 400.
    caplog.set_level(logging.INFO, logger="microweb.access")
    app = App()
    app.install(RequestID())
    app.install(AccessLog())

    def read(request: Request) -> str:
        request.read()
        return "never sent"

    async def aread(request: Request) -> str:
        await request.aread()
        return "never sent"

    def read_then_fail(request: Request) -> str:
        raise RuntimeError("boom")

    @app.error_handler(500)
    async def report(request: Request, exc: Exception) -> str:
        return f"{exc} with {len(await request.aread())} bytes"

    if fails:
        app.post("/upload")(in_colour(colour, read_then_fail))
    else:
        app.post("/upload")(read if colour == "sync" else aread)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope("POST", "/upload", headers=[(b"content-length", b"10")])
    asyncio.run(app.as_asgi()(scope, receive, send))
    assert sent == []
    [record] = access_records(caplog)
    assert record.getMessage().startswith("POST /upload 499 ")
    assert record.http_status == 499 and re.fullmatch(r"[0-9a-f]{32}", record.request_id)


@pytest.mark.parametrize("announced", [True, False])
def test_access_log_a_refused_handshake_has_the_status_its_client_gets(
    announced: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a server that sends a denial response whole (microweb serve's protocol, the test
    # client) sends the flow's 401; another can only refuse, with 403.
    caplog.set_level(logging.INFO, logger="microweb.access")
    app = App()
    app.install(AccessLog())

    @app.middleware
    def auth(request: Request) -> Iterator[Response | None]:
        if request.query.get("token") != "s3cret":
            yield Response.text("who are you?", status=401)
            return
        yield

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()

    scope = websocket_scope("/ws")
    if announced:
        scope["extensions"] = {"websocket.http.response": {}, "microweb.denial_response": {}}
    handshake_messages(app.as_asgi(), scope)
    with TestClient(app, interface="asgi") as client:
        with client.websocket_connect("/ws?token=s3cret"):
            pass
        with pytest.raises(WebSocketDisconnect):
            client.websocket_connect("/ws")
    lines = [record.getMessage().split()[:3] for record in access_records(caplog)]
    refused = ["GET", "/ws", "401" if announced else "403"]
    assert lines == [refused, ["GET", "/ws", "101"], ["GET", "/ws", "401"]]
