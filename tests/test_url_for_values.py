"""``url_for`` builds only URLs that route back to the values it was given."""

from __future__ import annotations

import asyncio
import enum
import re
from typing import Any

import pytest
from conftest import MakeClient
from drive import asgi_call, body_messages, http_scope, response_body

from microweb import App, Request, WebSocket
from microweb.testing import TestClient


def values_app() -> App:
    app = App()

    @app.get("/f/{value:float}", name="float")
    @app.get("/i/{value:int}", name="int")
    @app.get("/s/{value}", name="str")
    def echo(request: Request, value: Any) -> dict:
        return {"value": value}

    return app


@pytest.mark.parametrize(
    ("name", "value", "url"),
    [
        ("float", 1e20, "/f/100000000000000000000"),
        ("float", 1e-7, "/f/0.0000001"),
        ("float", 2.5, "/f/2.5"),
        ("int", 7, "/i/7"),
    ],
)
def test_url_for_a_number_routes_back_to_it(
    make_client: MakeClient, name: str, value: float, url: str
) -> None:
    app = values_app()
    assert app.url_for(name, value=value) == url
    assert make_client(app).get(url).json() == {"value": value}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("int", -3),
        ("float", -1.5),
        ("float", float("inf")),
        ("float", float("nan")),
        # NOTE: an OverflowError, which url_for does not document, and which named neither
        # the route nor the parameter.
        ("float", 10**400),
    ],
)
def test_url_for_refuses_a_value_no_request_can_match(name: str, value: object) -> None:
    # NOTE: "/i/-3" would answer 404: {value:int} takes no sign.
    with pytest.raises(ValueError, match="'value'"):
        values_app().url_for(name, value=value)


@pytest.mark.parametrize("name", ["str", "int"])
@pytest.mark.parametrize("value", [None, b"pen", bytearray(b"pen"), memoryview(b"pen")])
def test_url_for_refuses_none_and_bytes_rather_than_their_str(name: str, value: object) -> None:
    # NOTE: str() made "/s/None" and "/s/b'pen'", links to values nobody gave (Flask's
    # url_for refuses None too); _query= refuses them already.
    with pytest.raises(TypeError, match=r"url_for\('\w+'\): parameter 'value' is "):
        values_app().url_for(name, value=value)


@pytest.mark.parametrize("value", [None, [2.5], 1j, object()])
def test_url_for_names_the_float_parameter_it_cannot_write(value: object) -> None:
    # NOTE: float() raised its own TypeError, which named neither the route nor the parameter.
    with pytest.raises(TypeError, match=r"^url_for\('float'\): parameter 'value': float\(\)"):
        values_app().url_for("float", value=value)


class Status(str, enum.Enum):
    OPEN = "open"


class Level(enum.IntEnum):
    HIGH = 3


class Ratio(float, enum.Enum):
    HALF = 0.5


@pytest.mark.parametrize(
    ("name", "value", "url"),
    [
        ("str", Status.OPEN, "/s/open"),
        ("int", Level.HIGH, "/i/3"),
        ("str", Level.HIGH, "/s/3"),
        ("float", Level.HIGH, "/f/3.0"),
        ("str", Ratio.HALF, "/s/0.5"),
    ],
)
def test_url_for_writes_an_enum_of_a_str_or_number_as_its_value(
    make_client: MakeClient, name: str, value: object, url: str
) -> None:
    # NOTE: str() wrote "/s/Status.OPEN", a link to a value nobody gave, and an IntEnum
    # "Level.HIGH" before Python 3.11 ("3" after).
    app = values_app()
    assert app.url_for(name, value=value) == url
    assert make_client(app).get(url).status_code == 200


def test_url_for_writes_an_enum_of_a_str_or_number_in_a_query_as_its_value() -> None:
    query = {"status": Status.OPEN, "level": [Level.HIGH], "ratio": Ratio.HALF}
    assert (
        query_app().url_for("search", where="x", _query=query)
        == "/search/x?status=open&level=3&ratio=0.5"
    )


def test_url_for_refuses_none_in_a_path_parameter() -> None:
    app = App()

    @app.get("/files/{rest:path}", name="file")
    def file(request: Request, rest: str) -> str:
        return rest

    with pytest.raises(TypeError, match="None"):
        app.url_for("file", rest=None)


def looked_up_app(calls: list[str]) -> App:
    app = App()

    def load(text: str) -> str:
        calls.append(text)
        if text == "broken":
            raise LookupError("the store is down")
        return text.upper()

    app.add_converter("user", load)

    @app.get("/users/{user:user}", name="user")
    def user(request: Request, user: str) -> str:
        return user

    return app


def test_url_for_names_the_parameter_a_custom_to_url_refuses() -> None:
    app = App()

    def to_url(value: object) -> str:
        raise ValueError("not a known colour")

    app.add_converter("colour", str, to_url)

    @app.get("/paint/{shade:colour}", name="paint")
    def paint(request: Request, shade: str) -> str:
        return shade

    with pytest.raises(ValueError, match=r"^url_for\('paint'\): parameter 'shade': not a known"):
        app.url_for("paint", shade="mauve")


def test_url_for_does_not_call_a_custom_to_python() -> None:
    calls: list[str] = []
    assert looked_up_app(calls).url_for("user", user="ann") == "/users/ann"
    assert calls == []


def test_a_custom_converter_failing_otherwise_than_with_value_error_is_a_500(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    with make_client(looked_up_app(calls)) as client:
        assert client.get("/users/ann").text == "ANN"
        failed = client.get("/users/broken")
    assert (failed.status_code, failed.text) == (500, "Internal Server Error")
    assert any(record.exc_info and record.exc_info[0] is LookupError for record in caplog.records)


def dots_app() -> App:
    app = App()

    @app.get("/s/{value}", name="str")
    def one(request: Request, value: str) -> dict:
        return {"value": value}

    @app.get("/files/{value:path}", name="file")
    def file(request: Request, value: str) -> dict:
        return {"value": value}

    @app.get("/admin")
    def admin(request: Request) -> str:
        return "admin"

    return app


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("str", "."),
        ("str", ".."),
        ("file", ".."),
        ("file", "../admin"),
        ("file", "a/../../admin"),
        ("file", "a/./b"),
        ("file", "a/."),
        ("file", "/.."),
    ],
)
def test_url_for_refuses_a_dot_segment_that_clients_resolve(name: str, value: str) -> None:
    # NOTE: url_for("file", value="../admin") was "/files/../admin", which a browser, httpx
    # and curl ask for as "/admin": a link built from a client's value led to another route
    # (hunt60). An encoded "%2E%2E" is a dot segment to a browser as well (WHATWG URL).
    app = dots_app()
    with pytest.raises(ValueError, match=r"'value'.*resolved away by clients"):
        app.url_for(name, value=value)


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"value": "\ud800"}, "parameter 'value'"),
        ({"value": "a\udcffb"}, "parameter 'value'"),
        ({"value": "x", "_query": {"q": "\udc80"}}, "query value for 'q'"),
        ({"value": "x", "_query": [("\udc80", "v")]}, "a query name"),
    ],
)
def test_url_for_names_a_lone_surrogate_no_url_can_carry(
    make_client: MakeClient, params: dict[str, Any], where: str
) -> None:
    # NOTE: it was quote()'s UnicodeEncodeError, which named no parameter (say, a value taken
    # from a filename decoded with surrogateescape).
    app = values_app()

    @app.get("/link")
    def link(request: Request) -> str:
        try:
            return request.url_for("str", **params)
        except ValueError as exc:
            return f"refused: {exc}"

    with pytest.raises(ValueError, match=re.escape(where)) as refused:
        app.url_for("str", **params)
    assert type(refused.value) is ValueError
    assert make_client(app).get("/link").text == f"refused: {refused.value}"


@pytest.mark.parametrize(
    ("name", "value", "url"),
    [
        ("str", "...", "/s/..."),
        ("str", ".a", "/s/.a"),
        ("file", "a..b/.c/d.", "/files/a..b/.c/d."),
        ("file", "%2e%2e", "/files/%252e%252e"),
    ],
)
def test_url_for_keeps_dots_that_are_no_dot_segment(
    make_client: MakeClient, name: str, value: str, url: str
) -> None:
    app = dots_app()
    assert app.url_for(name, value=value) == url
    assert make_client(app).get(url).json() == {"value": value}


def test_url_for_refuses_an_empty_path_value(make_client: MakeClient) -> None:
    # NOTE: it built "/files/", which no {value:path} matches: a link that answered 404.
    app = dots_app()
    assert make_client(app).get("/files/").status_code == 404
    with pytest.raises(ValueError, match="'value' is empty"):
        app.url_for("file", value="")


def query_app() -> App:
    app = App()

    @app.get("/search/{where}", name="search")
    def search(request: Request, where: str) -> dict:
        return {"where": where, "query": list(request.query.multi_items())}

    @app.get("/link")
    def link(request: Request) -> dict:
        return {"link": request.url_for("search", where="all", _query={"q": "a b"})}

    return app


@pytest.mark.parametrize(
    ("query", "url"),
    [
        ({"q": "a b&c=d", "page": 2}, "/search/x?q=a%20b%26c%3Dd&page=2"),
        ({"tag": ["é", "/"], "none": None, "f": 0.5}, "/search/x?tag=%C3%A9&tag=%2F&f=0.5"),
        ([("a", "1"), ("a", "2"), ("b", "")], "/search/x?a=1&a=2&b="),
        ({}, "/search/x"),
        ({"only": None}, "/search/x"),
    ],
)
def test_url_for_query_routes_back_to_its_pairs(
    make_client: MakeClient, query: Any, url: str
) -> None:
    app = query_app()
    assert app.url_for("search", where="x", _query=query) == url
    pairs = query.items() if isinstance(query, dict) else query
    sent = [
        [name, str(item)]
        for name, value in pairs
        for item in (value if isinstance(value, list) else [value])
        if item is not None
    ]
    assert make_client(app).get(url).json() == {"where": "x", "query": sent}


def test_request_url_for_takes_a_query(make_client: MakeClient) -> None:
    assert make_client(query_app()).get("/link").json() == {"link": "/search/all?q=a%20b"}


def test_url_for_keeps_every_value_of_a_request_s_query(make_client: MakeClient) -> None:
    app = query_app()

    @app.get("/next")
    def next_page(request: Request) -> dict:
        return {"link": request.url_for("search", where="all", _query=request.query)}

    client = make_client(app)
    link = client.get("/next?tag=a&tag=b%20c&page=2&tag=").json()["link"]
    assert link == "/search/all?tag=a&tag=b%20c&page=2&tag="
    assert client.get(link).json()["query"] == [
        ["tag", "a"],
        ["tag", "b c"],
        ["page", "2"],
        ["tag", ""],
    ]


@pytest.mark.parametrize("value", [b"bytes", object(), {"nested": "dict"}, True, False])
def test_url_for_refuses_a_query_value_that_is_no_text_or_number(value: object) -> None:
    with pytest.raises(TypeError, match="query value for 'q'"):
        query_app().url_for("search", where="x", _query={"q": value})


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({None: "x"}, "query name None must be a str"),
        ({1: "x"}, "query name 1 must be a str"),
        ([(b"q", "x")], "query name b'q' must be a str"),
        ("q=x", "_query takes a dict or a list of pairs, not 'q=x'"),
        (b"q=x", "_query takes a dict or a list of pairs"),
    ],
)
def test_url_for_refuses_a_query_name_that_is_no_str(query: Any, message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        query_app().url_for("search", where="x", _query=query)


@pytest.mark.parametrize("name", ["_query", "_external"])
def test_a_route_parameter_named_like_an_option_of_url_for_is_refused(name: str) -> None:
    app = App()
    with pytest.raises(ValueError, match="is an argument of url_for"):
        app.get(f"/items/{{{name}}}")(lambda request, **params: "")


@pytest.mark.parametrize(
    ("base_url", "headers", "expected"),
    [
        ("http://testserver", {}, "http://testserver/search/all?q=a%20b"),
        ("https://shop.example:8443", {}, "https://shop.example:8443/search/all?q=a%20b"),
        ("http://testserver", {"host": "[::1]:8000"}, "http://[::1]:8000/search/all?q=a%20b"),
    ],
)
def test_request_url_for_external_is_absolute(
    interface: str, base_url: str, headers: dict[str, str], expected: str
) -> None:
    app = query_app()

    @app.get("/external")
    def external(request: Request) -> str:
        return request.url_for("search", _external=True, where="all", _query={"q": "a b"})

    with TestClient(app, interface=interface, base_url=base_url) as client:
        assert client.get("/external", headers=headers).text == expected


def test_request_url_for_external_without_any_host_is_400() -> None:
    # NOTE: ASGI only: a WSGI environ always has SERVER_NAME. On a Unix socket a request with
    # no Host has no server address either, and the URL was "http:///search/all", a link to
    # the host "search" for a browser.
    app = query_app()

    @app.get("/external")
    def external(request: Request) -> str:
        return request.url_for("search", _external=True, where="all")

    # NOTE: HTTP/1.0, which may omit Host; in HTTP/1.1 its absence is 400 by itself.
    scope = {**http_scope("GET", "/external"), "headers": [], "server": None}
    sent = asyncio.run(asgi_call(app, {**scope, "http_version": "1.0"}, body_messages(b"")))
    assert sent[0]["status"] == 400
    assert response_body(sent) == b"the request names no host: no absolute URL can be built"
    sent = asyncio.run(asgi_call(app, scope, body_messages(b"")))
    assert (sent[0]["status"], response_body(sent)) == (400, b"missing Host header")


def test_request_url_for_takes_no_positional_option(interface: str) -> None:
    # NOTE: app.url_for's second place is the query: here it made an absolute URL without it.
    app = query_app()

    @app.get("/positional")
    def positional(request: Request) -> str:
        try:
            return request.url_for("search", {"q": "a"}, where="all")  # type: ignore[misc]
        except TypeError:
            return "refused"

    with TestClient(app, interface=interface) as client:
        assert client.get("/positional").text == "refused"


def test_request_url_for_external_from_a_websocket_is_http() -> None:
    app = query_app()

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text(socket.request.url_for("search", _external=True, where="x"))

    client = TestClient(app, interface="asgi", base_url="https://shop.example")
    with client, client.websocket_connect("/ws") as session:
        assert session.receive_text() == "https://shop.example/search/x"


def chat_app() -> App:
    """An app with a page and a WebSocket route, each able to link to the other."""
    app = App()

    @app.websocket("/chat/{room}")
    async def chat(socket: WebSocket, room: str) -> None:
        await socket.accept()
        request = socket.request
        urls = [request.url_for(name, _external=True, room=room) for name in ("chat", "lobby")]
        await socket.send_text(" ".join(urls))

    @app.get("/lobby/{room}")
    def lobby(request: Request, room: str) -> str:
        return request.url_for("chat", _external=True, room=room)

    return app


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://testserver", "ws://testserver/chat/a%20b"),
        ("https://shop.example:8443", "wss://shop.example:8443/chat/a%20b"),
    ],
)
def test_request_url_for_external_of_a_websocket_route_is_ws(
    interface: str, base_url: str, expected: str
) -> None:
    # NOTE: it was "http://testserver/chat/a%20b", no URL a WebSocket client opens; as in
    # Starlette, the route's kind decides the scheme, the request only whether it is secure.
    with TestClient(chat_app(), interface=interface, base_url=base_url) as client:
        assert client.get("/lobby/a b").text == expected


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://testserver", "ws://testserver/chat/x http://testserver/lobby/x"),
        ("https://shop.example", "wss://shop.example/chat/x https://shop.example/lobby/x"),
    ],
)
def test_request_url_for_external_from_a_websocket_follows_the_route(
    base_url: str, expected: str
) -> None:
    client = TestClient(chat_app(), interface="asgi", base_url=base_url)
    with client, client.websocket_connect("/chat/x") as session:
        assert session.receive_text() == expected


@pytest.mark.parametrize("websocket_first", [True, False])
def test_request_url_for_external_of_a_name_of_both_kinds_follows_the_request(
    interface: str, websocket_first: bool
) -> None:
    # NOTE: a page and its WebSocket at one path, under one name: the scheme was the kind of
    # the route registered first, so that the page linked to itself as ws:// (review155).
    app = App()

    def page(request: Request) -> str:
        return request.url_for("chat", _external=True)

    async def socket(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(ws.request.url_for("chat", _external=True))

    if websocket_first:
        app.websocket("/chat", name="chat")(socket)
    app.get("/chat", name="chat")(page)
    if not websocket_first:
        app.websocket("/chat", name="chat")(socket)
    with TestClient(app, interface=interface, base_url="https://shop.example") as client:
        assert client.get("/chat").text == "https://shop.example/chat"
    if interface == "asgi":
        client = TestClient(app, interface="asgi", base_url="https://shop.example")
        with client, client.websocket_connect("/chat") as session:
            assert session.receive_text() == "wss://shop.example/chat"


def test_app_url_for_has_no_external() -> None:
    # NOTE: only a request knows a scheme and a host.
    with pytest.raises(TypeError, match=r"needs a request: call request\.url_for"):
        query_app().url_for("search", _external=True, where="x")


def test_url_for_with_a_keyword_the_template_lacks_says_how_to_add_a_query() -> None:
    # NOTE: Flask's url_for("page", page=2) puts page in the query string; a port of it got a
    # TypeError that named the parameters but not the way to write the query.
    app = App()

    @app.get("/items/{item_id:int}")
    def item(request: Request, item_id: int) -> str:
        return str(item_id)

    with pytest.raises(TypeError, match=re.escape("pass _query={'page': ...}")):
        app.url_for("item", item_id=1, page=2)
    with pytest.raises(TypeError) as refused:
        app.url_for("item", item_id=1, _anchor="top")
    assert "_query" not in str(refused.value)
    assert app.url_for("item", item_id=1, _query={"page": 2}) == "/items/1?page=2"


def test_url_for_with_a_keyword_in_place_of_a_missing_one_names_the_missing_one() -> None:
    # NOTE: Flask's url_for("static", filename=...) was told to pass _query={'filename': ...},
    # which then failed for the path parameter it still lacked.
    app = App()

    @app.get("/static/{path:path}", name="static")
    def static(request: Request, path: str) -> str:
        return path

    with pytest.raises(TypeError) as refused:
        app.url_for("static", filename="site.css")
    assert "_query" not in str(refused.value)
    assert "lacks 'path'" in str(refused.value)


def test_url_for_keeps_the_text_of_a_str_subclass_of_ones_own() -> None:
    class Slug(str):
        def __str__(self) -> str:
            return self.lower()

    assert values_app().url_for("str", value=Slug("Spring-Sale")) == "/s/spring-sale"
