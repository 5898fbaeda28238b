"""Routing at its edges: templates no request can reach, templates that shadow each other,
converters that return or raise what they should not, and the links ``url_for`` builds then."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from conftest import MakeClient
from drive import handshake_messages, websocket_scope

from microweb import App, HTTPError, Request, Router


def _text(request: Request, **params: object) -> str:
    return "ok"


# -- templates no request can reach ----------------------------------------------------------


@pytest.mark.parametrize("template", ["//evil.example/x", "//{host}/x", "//", "///x"])
def test_a_template_that_starts_with_two_slashes_is_refused(template: str) -> None:
    # NOTE: a request's leading slashes collapse into one, so "//evil.example/x" was a route
    # no request reached, and url_for() built "//evil.example/x": another host to a browser.
    app = App()
    with pytest.raises(ValueError, match="starts with '//'"):
        app.get(template)(_text)
    assert app.routes == []


def test_a_router_prefix_that_starts_with_two_slashes_is_refused() -> None:
    with pytest.raises(ValueError, match="starts with '//'"):
        Router(prefix="//evil.example")


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("api", "must start with '/' and not end with '/'"),
        ("/api/", "must start with '/' and not end with '/'"),
        # NOTE: taken, each of these made a router whose routes no request reached (or only a
        # request no client means: "/a%252Fb/x" for "/a%2Fb"), or failed at the first route
        # with a message about its template rather than the prefix.
        ("/a//b", "holds '//'"),
        ("/a/", "must start with '/' and not end with '/'"),
        ("/api?x", "must be a path alone, with no '?' or '#'"),
        ("/api#top", "must be a path alone, with no '?' or '#'"),
        ("/a%2Fb", "is matched with the decoded path"),
        ("/caf%C3%A9", "is matched with the decoded path"),
        ("/api\n", "must be printable UTF-8 text"),
        ("/a\tb", "must be printable UTF-8 text"),
        ("/api ", "a segment that begins or ends with a space"),
        ("/ api/v1", "a segment that begins or ends with a space"),
        ("/a/../b", "'.' or '..' segment"),
        ("/.", "'.' or '..' segment"),
        ("/a{", "is not a parameter"),
        ("/<int:id>", "{id:int}"),
        ("/{x}/{x}", "names parameter 'x' twice"),
        ("/{rest:path}", "{rest:path} takes the rest of the path"),
    ],
)
def test_a_router_prefix_no_request_could_reach_is_refused_at_once(
    prefix: str, reason: str
) -> None:
    with pytest.raises(ValueError) as refused:
        Router(prefix=prefix)
    message = str(refused.value)
    assert message.startswith(f"Router prefix {prefix!r}") and reason in message


@pytest.mark.parametrize("prefix", [b"/api", None, 5, ["/api"]])
def test_a_router_prefix_that_is_no_string_is_a_type_error(prefix: object) -> None:
    # NOTE: b"/api" failed with "startswith first arg must be bytes or a tuple of bytes, not
    # str", None with an AttributeError.
    with pytest.raises(
        TypeError, match=rf"^Router prefix must be a str, not {type(prefix).__name__}"
    ):
        Router(prefix=prefix)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prefix", "path", "params"),
    [
        ("/my files", "/my%20files/items", {}),
        ("/café", "/caf%C3%A9/items", {}),
        # NOTE: Persian writes a zero-width non-joiner inside words: refused by 4f323035 as
        # no printable text, though a browser sends it as %E2%80%8C (review307).
        (
            "/\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "/%D9%85%DB%8C%E2%80%8C%D8%AE%D9%88%D8%A7%D9%87%D9%85/items",
            {},
        ),
        ("/{tenant}", "/acme/items", {"tenant": "acme"}),
        ("/shop/{shop:int}/v1", "/shop/7/v1/items", {"shop": "7"}),
    ],
)
def test_router_prefixes_with_spaces_text_or_parameters_are_served(
    make_client: MakeClient, prefix: str, path: str, params: dict[str, str]
) -> None:
    router = Router(prefix=prefix)

    @router.get("/items", name="items")
    def items(request: Request, **found: object) -> dict[str, object]:
        return {"path": request.path, "params": {k: str(v) for k, v in found.items()}}

    @router.get("/", name="root")
    def root(request: Request, **found: object) -> str:
        return "root"

    app = App()
    app.include(router)
    assert app.url_for("items", **params) == path
    with make_client(app) as client:
        answer = client.get(path).json()
        assert answer["params"] == params
        assert client.get(path.removesuffix("/items")).text == "root"


def test_empty_segments_after_the_first_stay_allowed(make_client: MakeClient) -> None:
    app = App()
    app.get("/a//b", name="inner")(_text)
    Router(prefix="/api").get("//x")(_text)  # NOTE: "/api//x", reachable.
    assert app.url_for("inner") == "/a//b"
    with make_client(app) as client:
        assert client.get("/a//b").text == "ok"


async def _socket(socket: object, **params: object) -> None:
    pass


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        # NOTE: taken, each was reached by no request a client means: "/a%2Fb" by "/a%252Fb"
        # alone, "/x?y" by "/x%3Fy" alone (a client's "?" ends the path), "/api\n" by
        # "/api%0A", "/ x" by "/%20x", under both interfaces.
        ("/a%2Fb", "is matched with the decoded path"),
        ("/caf%C3%A9", "is matched with the decoded path"),
        ("/x?y", "must be a path alone, with no '?' or '#'"),
        ("/items/{id}?full", "is not a parameter"),
        ("/a#b", "must be a path alone, with no '?' or '#'"),
        ("/api\n", "must be printable UTF-8 text"),
        ("/a\tb/{id}", "must be printable UTF-8 text"),
        ("/ x", "a segment that begins or ends with a space"),
        ("/x /{id}", "a segment that begins or ends with a space"),
    ],
)
def test_a_template_no_client_means_is_refused_naming_it(template: str, reason: str) -> None:
    app = App()
    with pytest.raises(ValueError) as refused:
        app.get(template)(_text)
    message = str(refused.value)
    assert message.startswith(f"route template {template!r}") and reason in message
    router = Router(prefix="/api")
    with pytest.raises(ValueError, match=re.escape(f"route template {'/api' + template!r}")):
        router.post(template)(_text)
    with pytest.raises(ValueError, match=re.escape(reason)):
        app.websocket(template)(_socket)
    assert app.routes == [] and router.routes == []


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/my files", "/my%20files"),
        ("/café/{id}", "/caf%C3%A9/7"),
        ("/100%", "/100%25"),
        ("/a+b;c:d@e~f!$&'()*,=", "/a+b;c:d@e~f!$&'()*,="),
        ("/xn--caf-dma/{id:int}", "/xn--caf-dma/7"),
        ("/a//b", "/a//b"),
        ("/a/", "/a/"),
        # NOTE: a family emoji is three joined by zero-width joiners, and a no-break space is
        # text too: neither is a control character (review307).
        (
            "/\U0001f468\u200d\U0001f469\u200d\U0001f467",
            "/%F0%9F%91%A8%E2%80%8D%F0%9F%91%A9%E2%80%8D%F0%9F%91%A7",
        ),
        ("/10\u00a0km", "/10%C2%A0km"),
    ],
)
def test_templates_a_client_reaches_stay_taken(
    make_client: MakeClient, template: str, path: str
) -> None:
    app = App()
    app.get(template, name="here")(_text)
    params = {"id": 7} if "{id" in template else {}
    with make_client(app) as client:
        assert client.get(path).text == "ok"
        assert client.get(app.url_for("here", **params)).text == "ok"


# -- converters ------------------------------------------------------------------------------


def _dots(text: str) -> str:
    if text not in (".", ".."):
        raise ValueError(text)
    return text


def _dots_app(*templates: str) -> App:
    app = App()
    app.add_converter("dots", _dots)
    app.add_converter("hex", lambda text: int(text, 16))
    for index, template in enumerate(templates):
        app.get(template, name=f"r{index}")(lambda request, index=index, **_: f"r{index}")
    return app


@pytest.mark.parametrize(
    ("templates", "path", "reached"),
    [
        (("/u/{name}", "/u/{d:dots}"), "/u/..", "r1"),
        (("/u/{name}", "/u/{d:dots}"), "/u/.", "r1"),
        (("/u/{name}", "/u/{d:dots}"), "/u/%2E%2E", "r1"),
        (("/u/{name}/{rest:path}", "/u/{h:hex}/{d:dots}"), "/u/ff/..", "r1"),
        (("/u/{name}/x", "/u/{d:dots}/x"), "/u/./x", "r1"),
    ],
)
def test_a_custom_converter_that_takes_a_dot_segment_is_reached_behind_a_str_parameter(
    make_client: MakeClient, templates: tuple[str, ...], path: str, reached: str
) -> None:
    # NOTE: the startup check took a {name} (or a {rest:path}) for one that takes whatever
    # another converter takes; neither takes "." or "..", which a client that sends them as
    # they are (curl --path-as-is; Waitress and Uvicorn pass them on) brings to the custom
    # converter after it. The route was refused at startup as never reached.
    with make_client(_dots_app(*templates)) as client:
        assert client.get(path).text == reached
        assert client.get(path.replace(".", "a").replace("%2E", "b")).text == "r0"


@pytest.mark.parametrize(
    "templates", [("/u/{name}", "/u/{h:hex}"), ("/u/{name}/{rest:path}", "/u/{h:hex}/{n:hex}")]
)
def test_a_custom_converter_that_refuses_dot_segments_behind_a_str_parameter_is_refused(
    templates: tuple[str, ...],
) -> None:
    with pytest.raises(ValueError, match=r"^GET /u/\{h:hex\}\S* \('r1'\) is never reached"):
        _dots_app(*templates).as_wsgi()


def test_a_converter_that_raises_another_error_for_a_dot_segment_is_reached(
    make_client: MakeClient,
) -> None:
    # NOTE: only a ValueError is "no match": another exception is the converter's answer (an
    # HTTPError it chose, or its bug's logged 500), so a request reaches it.
    app = App()
    app.add_converter("touchy", lambda text: _touchy("secret" if "." in text else text))
    app.get("/u/{name}")(_text)
    app.get("/u/{t:touchy}")(_text)
    with make_client(app) as client:
        assert client.get("/u/..").status_code == 403


def test_the_startup_check_asks_a_converter_about_each_dot_segment_once_in_order() -> None:
    # NOTE: asked in a frozenset's order until one was taken: a converter with effects saw "."
    # alone in some runs and ".." alone in others (the hash seed's choice).
    asked: list[str] = []

    def takes_all(text: str) -> str:
        asked.append(text)
        return text

    app = App()
    app.add_converter("all", takes_all)
    app.get("/u/{name}")(_text)
    app.get("/u/{a:all}")(_text)
    app.as_wsgi()
    assert asked == [".", ".."]


class _User:
    def __init__(self, user_id: int) -> None:
        self.id = user_id


@pytest.mark.parametrize("to_url", [lambda user: user.id, lambda user: None], ids=["int", "None"])
def test_a_to_url_that_returns_no_str_is_a_type_error_naming_it(to_url: object) -> None:
    # NOTE: it was an AttributeError, "'int' object has no attribute 'isascii'", from inside
    # url_for, which named neither the converter nor the parameter.
    app = App()
    app.add_converter("user", lambda text: _User(int(text)), to_url)  # type: ignore[arg-type]
    app.get("/users/{user:user}", name="user")(_text)
    with pytest.raises(TypeError, match=r"parameter 'user'.*converter 'user'.*not a str"):
        app.url_for("user", user=_User(3))


def _touchy(text: str) -> str:
    if text == "boom":
        raise KeyError(text)  # NOTE: a bug in the converter: no ValueError.
    if text == "secret":
        raise HTTPError(403)  # NOTE: an answer the converter chose.
    return text


def test_a_converter_s_bug_on_a_websocket_route_is_logged_and_the_handshake_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: the KeyError went out of the ASGI callable, to the server: not on the "microweb"
    # logger, and no answer of the app's. An HTTP route's converter gives a logged 500.
    app = App()
    app.add_converter("touchy", _touchy)

    @app.websocket("/rooms/{room:touchy}")
    async def room(ws: object, room: str) -> None:
        raise AssertionError("never called")

    asgi = app.as_asgi()
    with caplog.at_level(logging.ERROR, logger="microweb"):
        sent = handshake_messages(asgi, websocket_scope("/rooms/boom"))
    assert sent == [{"type": "websocket.close", "code": 1008}]
    logged = [r for r in caplog.records if r.name == "microweb" and r.exc_info]
    assert len(logged) == 1
    assert isinstance(logged[0].exc_info[1], KeyError)  # type: ignore[index]
    assert "/rooms/boom" in logged[0].getMessage()


def test_a_converter_s_bug_that_a_class_handler_answers_is_answered_inside_the_flows(
    make_client: MakeClient,
) -> None:
    # NOTE: thrown into the flows and answered outside them, its 410 lacked what a flow adds
    # to every answer, where a handler's KeyError's 410 had it.
    app = App()
    app.add_converter("touchy", _touchy)

    @app.middleware
    def stamp(request: Request) -> Iterator[None]:
        response = yield
        response.headers["x-stamped"] = "yes"

    @app.error_handler(KeyError)
    def gone(request: Request, exc: KeyError) -> tuple[str, int]:
        return "gone", 410

    @app.get("/items/{item:touchy}")
    def item(request: Request, item: str) -> str:
        raise KeyError(item)

    with make_client(app) as client:
        for path in ("/items/boom", "/items/other"):
            answer = client.get(path)
            assert (answer.status_code, answer.text) == (410, "gone")
            assert answer.headers.get("x-stamped") == "yes", path


# -- links url_for builds --------------------------------------------------------------------


@pytest.mark.parametrize("rest", ["/", "//", "///"])
def test_url_for_refuses_a_value_of_slashes_only_at_the_start_of_a_template(rest: str) -> None:
    # NOTE: "/%2F" is "//" decoded, whose leading slashes collapse: the link was "/", a 404
    # or another route (the home page), never {rest:path} with the value given (review167).
    app = App()
    app.get("/{rest:path}", name="anything")(_text)
    with pytest.raises(ValueError, match="nothing is left"):
        app.url_for("anything", rest=rest)


def test_url_for_keeps_slashes_only_where_they_route_back(make_client: MakeClient) -> None:
    app = App()

    @app.get("/files/{rest:path}", name="file")
    def file(request: Request, rest: str) -> str:
        return rest

    @app.get("/{rest:path}", name="anything")
    def anything(request: Request, rest: str) -> str:
        return rest

    with make_client(app) as client:
        assert client.get(app.url_for("file", rest="/")).text == "/"
        assert client.get(app.url_for("file", rest="//")).text == "//"
        # NOTE: at the start of a template the leading slashes are lost, as documented.
        assert client.get(app.url_for("anything", rest="//x")).text == "x"


def test_an_http_error_of_a_converter_on_a_websocket_route_refuses_it_unlogged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()
    app.add_converter("touchy", _touchy)

    @app.websocket("/rooms/{room:touchy}")
    async def room(ws: object, room: str) -> None:
        raise AssertionError("never called")

    with caplog.at_level(logging.ERROR, logger="microweb"):
        sent = handshake_messages(app.as_asgi(), websocket_scope("/rooms/secret"))
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert caplog.records == []


DOT_SEGMENT_PATHS = [
    "/files/%2E%2E",
    "/files/%2e",
    "/files/.%2E",
    "/tree/a/%2E%2E/b",
    "/tree/%2E",
    "/tree/a/%2e",
]


@pytest.mark.parametrize("path", DOT_SEGMENT_PATHS)
def test_a_dot_segment_a_client_sends_as_it_is_reaches_no_route(
    make_client: MakeClient, path: str
) -> None:
    # NOTE: a client resolves "." and ".." away before it asks; sent as they are (or encoded),
    # they reached the handler: one that built its own link got url_for's ValueError, a 500,
    # and a {rest:path} of "a/../b" reached code that may join it to a folder.
    app = App()

    @app.get("/files/{name}")
    def file(request: Request, name: str) -> str:
        return request.url_for("file", name=name)

    @app.get("/tree/{rest:path}")
    def tree(request: Request, rest: str) -> str:
        return rest

    client = make_client(app)
    assert client.get(path).status_code == 404
    # NOTE: dots inside a segment are a name like any other.
    assert client.get("/files/.env").text == "/files/.env"
    assert client.get("/files/a..b").text == "/files/a..b"
    assert client.get("/tree/a/...b/.c").text == "a/...b/.c"


@pytest.mark.parametrize("sent", ["..\\..\\secret", "..%5C..%5Csecret"])
def test_a_backslash_is_kept_in_a_parameter_as_the_docs_say(
    make_client: MakeClient, sent: str
) -> None:
    # NOTE: no separator in a URL, as Werkzeug and Starlette take it: docs/routing.md warns
    # an app that joins the value onto a path on Windows.
    app = App()
    app.get("/one/{name}", name="one")(lambda request, name: name)
    app.get("/rest/{rest:path}", name="rest")(lambda request, rest: rest)
    client = make_client(app)
    for prefix in ("/one/", "/rest/"):
        assert client.get(prefix + sent).text == "..\\..\\secret"
