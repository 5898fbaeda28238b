"""Routers with their own flows and error handlers: for their routes only, inside the app's flows;
the router's error handlers first, then the app's; 404/405 use the app's."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from conftest import MakeClient, in_colour

from microweb import App, HTTPError, Request, Response, Router, WebSocket, WebSocketDisconnect
from microweb.testing import TestClient


def add(registry: App | Router, colour: str, path: str, body: Callable[[Request], Any]) -> None:
    registry.get(path, name=f"{colour} {path}")(in_colour(colour, body))


def tagging_flow(tag: str, trail: list[str], colour: str) -> Any:
    if colour == "sync":

        def sync_flow(request: Request) -> Iterator[None]:
            trail.append(f"{tag} in")
            response = yield
            trail.append(f"{tag} out")
            response.headers.add("x-flow", tag)

        return sync_flow

    async def async_flow(request: Request) -> AsyncIterator[None]:
        trail.append(f"{tag} in")
        response = yield
        trail.append(f"{tag} out")
        response.headers.add("x-flow", tag)

    return async_flow


def nothing(request: Request) -> None:
    raise HTTPError(404, "no such item")


def forbidden(request: Request) -> None:
    raise HTTPError(403, "no")


def broken(request: Request) -> None:
    raise RuntimeError("boom")


def shop(colour: str, trail: list[str], app_flows: bool = True) -> App:
    app = App()
    api = Router(prefix="/api")
    if app_flows:
        app.middleware(tagging_flow("app", trail, colour))
    api.middleware(tagging_flow("api", trail, colour))

    @api.error_handler(HTTPError)
    def api_errors(request: Request, exc: HTTPError) -> Response:
        return Response.json({"error": exc.detail}, status=exc.status)

    @app.error_handler(404)
    def page_not_found(request: Request, exc: HTTPError) -> Response:
        return Response.html("<h1>Not found</h1>", status=404)

    add(api, colour, "/items", lambda request: {"items": []})
    add(api, colour, "/items/missing", nothing)
    add(app, colour, "/", lambda request: "home")
    add(app, colour, "/pages/missing", nothing)
    app.include(api)
    return app


@pytest.mark.parametrize("app_flows", [True, False], ids=["app-flows", "no-app-flows"])
def test_router_flows_run_inside_the_app_flows_for_its_routes_only(
    make_client: MakeClient, colour: str, app_flows: bool
) -> None:
    trail: list[str] = []
    outer = ["app"] if app_flows else []
    with make_client(shop(colour, trail, app_flows)) as client:
        response = client.get("/api/items")
        assert response.json() == {"items": []}
        assert response.headers.get_list("x-flow") == ["api", *outer]
        assert trail == [
            *(f"{t} in" for t in outer),
            "api in",
            "api out",
            *(f"{t} out" for t in outer),
        ]
        trail.clear()
        assert client.get("/").headers.get_list("x-flow") == outer
        assert trail == [f"{t} {d}" for d in ("in", "out") for t in outer]


def test_router_errors_answer_json_while_the_app_answers_html(
    make_client: MakeClient, colour: str
) -> None:
    with make_client(shop(colour, [])) as client:
        api = client.get("/api/items/missing")
        assert (api.status_code, api.json()) == (404, {"error": "no such item"})
        assert api.headers.get_list("x-flow") == ["api", "app"]
        page = client.get("/pages/missing")
        assert (page.status_code, page.text) == (404, "<h1>Not found</h1>")
        assert page.headers["content-type"].startswith("text/html")


def test_no_route_matched_uses_the_app_handlers(make_client: MakeClient, colour: str) -> None:
    with make_client(shop(colour, [])) as client:
        response = client.get("/api/nowhere")
        assert (response.status_code, response.text) == (404, "<h1>Not found</h1>")
        assert client.post("/api/items").status_code == 405


def test_router_handlers_come_first_then_the_app_ones(make_client: MakeClient, colour: str) -> None:
    app = App()
    api = Router(prefix="/api")

    @api.error_handler(404)
    async def api_404(request: Request, exc: HTTPError) -> Any:
        return {"error": "api 404"}

    @app.error_handler(HTTPError)
    def any_http_error(request: Request, exc: HTTPError) -> str:
        return f"app {exc.status}"

    @app.error_handler(500)
    def app_500(request: Request, exc: Exception) -> str:
        return "app 500"

    add(api, colour, "/missing", nothing)
    add(api, colour, "/teapot", lambda request: (_ for _ in ()).throw(HTTPError(418)))
    add(api, colour, "/broken", broken)
    app.include(api)
    with make_client(app) as client:
        response = client.get("/api/missing")
        assert (response.status_code, response.json()) == (404, {"error": "api 404"})
        response = client.get("/api/teapot")
        assert (response.status_code, response.text) == (418, "app 418")
        response = client.get("/api/broken")
        assert (response.status_code, response.text) == (500, "app 500")


def test_an_unexpected_error_passes_the_router_flows_to_the_app_flows(
    make_client: MakeClient, colour: str
) -> None:
    seen: list[str] = []
    app = App()
    api = Router(prefix="/api")

    @app.middleware
    def rollback(request: Request) -> Iterator[None]:
        try:
            yield
        except RuntimeError as exc:
            seen.append(f"app saw {exc}")
            raise

    @api.middleware
    def waits(request: Request) -> Iterator[None]:
        try:
            yield
        except RuntimeError:
            seen.append("api saw it")
            response = yield
            response.headers["x-api"] = "saw the 500"

    @api.error_handler(500)
    def api_500(request: Request, exc: Exception) -> Any:
        return {"error": "internal"}

    add(api, colour, "/broken", broken)
    app.include(api)
    with make_client(app) as client:
        response = client.get("/api/broken")
    assert (response.status_code, response.json()) == (500, {"error": "internal"})
    assert response.headers["x-api"] == "saw the 500"
    assert seen == ["api saw it", "app saw boom"]


def test_a_router_flow_may_answer(make_client: MakeClient, colour: str) -> None:
    api = Router(prefix="/api")

    @api.middleware
    def key_required(request: Request) -> Iterator[Response | None]:
        if request.headers.get("x-key") != "secret":
            yield Response.json({"error": "key required"}, status=401)
            return
        yield

    add(api, colour, "/items", lambda request: [])
    app = App()
    add(app, colour, "/", lambda request: "open")
    app.include(api)
    with make_client(app) as client:
        assert client.get("/api/items").status_code == 401
        assert client.get("/api/items", headers={"x-key": "secret"}).json() == []
        assert client.get("/").text == "open"


def test_a_router_with_handlers_only_keeps_the_direct_call(colour: str) -> None:
    api = Router(prefix="/api")
    api.error_handler(404)(lambda request, exc: {"error": "api"})
    add(api, colour, "/x", nothing)
    app = App()
    app.include(api)
    found = app.compile().http.lookup("GET", "/api/x")[0]
    assert found is not None and found.rules is not None and not found.rules.flows
    assert found.blocking == (colour == "sync")


def test_router_middleware_and_error_handler_check_their_arguments() -> None:
    api = Router()
    with pytest.raises(TypeError, match="generator function"):
        api.middleware(lambda request: None)
    with pytest.raises(ValueError, match="4xx or 5xx"):
        api.error_handler(302)
    with pytest.raises(TypeError, match="status or an exception class"):
        api.error_handler("404")  # type: ignore[arg-type]


# -- nested routers ----------------------------------------------------------------------------


def nested_shop(colour: str, trail: list[str]) -> App:
    """An app with /api (a flow, JSON errors) holding /api/v1 (a flow, 404s of its own)."""
    app = App()
    app.middleware(tagging_flow("app", trail, colour))
    api = Router(prefix="/api")
    v1 = Router(prefix="/v1")
    api.middleware(tagging_flow("api", trail, colour))
    v1.middleware(tagging_flow("v1", trail, colour))

    @api.error_handler(HTTPError)
    def api_errors(request: Request, exc: HTTPError) -> Response:
        return Response.json({"error": exc.detail, "by": "api"}, status=exc.status)

    @v1.error_handler(404)
    def v1_missing(request: Request, exc: HTTPError) -> Response:
        return Response.json({"error": exc.detail, "by": "v1"}, status=404)

    add(v1, colour, "/", lambda request: "v1 root")
    add(v1, colour, "/items/{item_id:int}", lambda request, item_id: {"id": item_id})
    add(v1, colour, "/missing", nothing)
    add(v1, colour, "/forbidden", forbidden)
    add(api, colour, "/health", lambda request: "ok")
    api.include(v1)
    app.include(api)
    return app


def test_a_nested_router_gets_both_prefixes(make_client: MakeClient, colour: str) -> None:
    app = nested_shop(colour, [])
    with make_client(app) as client:
        assert client.get("/api/v1").text == "v1 root"
        assert client.get("/api/v1/items/7").json() == {"id": 7}
        assert client.get("/api/health").text == "ok"
        assert client.get("/v1/items/7").status_code == 404
    assert app.url_for(f"{colour} /items/{{item_id:int}}", item_id=7) == "/api/v1/items/7"


def test_nested_router_flows_run_outer_first(make_client: MakeClient, colour: str) -> None:
    trail: list[str] = []
    with make_client(nested_shop(colour, trail)) as client:
        response = client.get("/api/v1/items/1")
        assert response.headers.get_list("x-flow") == ["v1", "api", "app"]
        assert trail == ["app in", "api in", "v1 in", "v1 out", "api out", "app out"]
        trail.clear()
        assert client.get("/api/health").headers.get_list("x-flow") == ["api", "app"]
        assert trail == ["app in", "api in", "api out", "app out"]


def test_nested_router_error_handlers_inner_first(make_client: MakeClient, colour: str) -> None:
    with make_client(nested_shop(colour, [])) as client:
        missing = client.get("/api/v1/missing")
        assert (missing.status_code, missing.json()) == (404, {"error": "no such item", "by": "v1"})
        forbidden = client.get("/api/v1/forbidden")
        assert (forbidden.status_code, forbidden.json()) == (403, {"error": "no", "by": "api"})


def test_a_router_cannot_include_itself_and_checks_what_it_includes() -> None:
    api = Router(prefix="/api")
    with pytest.raises(ValueError, match="itself"):
        api.include(api)
    inner = Router()
    inner.get("/x")(lambda request: "x")
    api.include(inner)
    with pytest.raises(ValueError, match=r"^Router\(\) is included here already"):
        api.include(inner)
    assert [route.template for route in api.routes] == ["/api/x"]
    assert [route.template for route in inner.routes] == ["/x"]  # NOTE: inner is unchanged.


def test_include_takes_a_router_only() -> None:
    # NOTE: review140: an App (Starlette's Mount of an app) failed with AttributeError
    # '_scopes_of', once it had a route; an empty one was taken, and changed nothing.
    other = App()
    other.get("/hello")(lambda request: "hello")
    for including in (App(), Router(prefix="/api")):
        for included in (other, App()):
            with pytest.raises(TypeError, match="takes a Router, not an App"):
                including.include(included)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="takes a Router, not NoneType"):
            including.include(None)  # type: ignore[arg-type]


def test_a_router_with_two_handlers_under_one_name_can_be_included_in_two_places(
    make_client: MakeClient,
) -> None:
    # NOTE: GET and POST of one template share a name; each copy's pair is the first's pair.
    items = Router(prefix="/items")
    items.get("/", name="items")(lambda request: "list")
    items.post("/", name="items")(lambda request: "add")
    api = Router(prefix="/api")
    api.include(items)
    app = App()
    app.include(items)
    app.include(api)
    with make_client(app) as client:
        assert client.get("/api/items").text == "list"
        assert client.post("/api/items").text == "add"
    assert app.url_for("items") == "/items"  # NOTE: the copy added first.
    other = Router()
    other.get("/elsewhere", name="items")(lambda request: "other")
    with pytest.raises(ValueError, match="two routes are named 'items'"):
        app.include(other)


def test_a_router_refuses_routes_once_included(colour: str) -> None:
    # NOTE: include() copies the routes: one added later would never be served.
    inner, outer = Router(prefix="/inner"), Router(prefix="/outer")
    add(inner, colour, "/x", nothing)
    outer.include(inner)
    with pytest.raises(ValueError, match="/inner/late is added to a router already included"):
        add(inner, colour, "/late", nothing)
    App().include(outer)
    with pytest.raises(ValueError, match="already included"):
        add(outer, colour, "/late", nothing)
    more = Router(prefix="/more")
    add(more, colour, "/y", nothing)
    with pytest.raises(ValueError, match="already included"):
        outer.include(more)
    assert [route.template for route in outer.routes] == ["/outer/inner/x"]


def test_a_router_refuses_flows_once_an_app_compiled_them(colour: str) -> None:
    # NOTE: after include() they still count (see above); after as_wsgi()/as_asgi() they would
    # not run: the app's plan has its routes' flows.
    api, inner = Router(prefix="/api"), Router(prefix="/inner")
    add(inner, colour, "/x", nothing)
    api.include(inner)
    app = App()
    app.include(api)
    api.middleware(tagging_flow("api", [], colour))
    app.as_asgi()
    for router in (api, inner):
        with pytest.raises(ValueError, match="read when an app that includes it is compiled"):
            router.middleware(tagging_flow("late", [], colour))
    assert len(api.flows) == 1 and not inner.flows


def api_app_of_one_missing_item(colour: str) -> tuple[Router, App]:
    """A router ``/api`` whose ``/x`` raises 404, included in a new app; both."""
    api = Router(prefix="/api")
    add(api, colour, "/x", nothing)
    app = App()
    app.include(api)
    return api, app


def test_router_error_handlers_registered_after_the_app_compiled_count(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: they are looked up on each error, in the router's own dict (as the app's are).
    api, app = api_app_of_one_missing_item(colour)
    with make_client(app) as client:
        assert client.get("/api/x").status_code == 404
        api.error_handler(404)(lambda request, exc: ({"by": "api"}, 404))
        response = client.get("/api/x")
    assert (response.status_code, response.json()) == (404, {"by": "api"})


def test_routers_cannot_include_each_other_at_any_depth() -> None:
    # NOTE: include() copies the routes, so this is no loop; but the copies would run a
    # router's flows twice, as two levels of their own.
    a, b, c = Router(prefix="/a"), Router(prefix="/b"), Router(prefix="/c")
    c.get("/x")(lambda request: "x")
    b.include(c)
    a.include(b)
    for includer, included in ((b, a), (c, a), (c, b)):
        with pytest.raises(ValueError, match="cannot include each other"):
            includer.include(included)
    assert [route.template for route in c.routes] == ["/c/x"]
    other = Router(prefix="/other")
    other.include(b)  # NOTE: a router may be included by two others.
    assert [route.template for route in other.routes] == ["/other/b/c/x"]


def test_three_levels_of_routers_keep_every_scope(make_client: MakeClient, colour: str) -> None:
    trail: list[str] = []
    outer, middle, inner = Router(prefix="/a"), Router(prefix="/b"), Router(prefix="/c")
    for tag, router in (("a", outer), ("b", middle), ("c", inner)):
        router.middleware(tagging_flow(tag, trail, colour))
    add(inner, colour, "/x", lambda request: "deep")
    middle.include(inner)
    outer.include(middle)
    app = App()
    app.include(outer)
    with make_client(app) as client:
        response = client.get("/a/b/c/x")
        assert (response.text, response.headers.get_list("x-flow")) == ("deep", ["c", "b", "a"])


def test_router_flows_and_handlers_registered_after_include_still_apply(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: they are read when the app is compiled, whether or not the router had any before.
    api, app = api_app_of_one_missing_item(colour)
    api.middleware(tagging_flow("api", [], colour))
    api.error_handler(404)(lambda request, exc: ({"error": "api"}, 404))
    with make_client(app) as client:
        response = client.get("/api/x")
        assert response.json() == {"error": "api"}
        assert response.headers.get_list("x-flow") == ["api"]


def test_each_level_s_handlers_are_searched_whole_before_the_next_one_out(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: by class, then by status, in one router; only then the next one out: a router's
    # 500 handler answers an unexpected error before the app's handler for its class.
    api = Router(prefix="/api")
    add(api, colour, "/oops", broken)
    api.error_handler(500)(lambda request, exc: ({"by": "api 500"}, 500))
    app = App()
    app.error_handler(RuntimeError)(lambda request, exc: ({"by": "app RuntimeError"}, 500))
    add(app, colour, "/broken", broken)
    app.include(api)
    with make_client(app) as client:
        assert client.get("/api/oops").json() == {"by": "api 500"}
        assert client.get("/broken").json() == {"by": "app RuntimeError"}


def test_a_router_included_in_two_places_keeps_the_scopes_of_each(
    make_client: MakeClient, colour: str
) -> None:
    trail: list[str] = []
    api, v1 = Router(prefix="/api"), Router(prefix="/v1")
    api.middleware(tagging_flow("api", trail, colour))
    v1.middleware(tagging_flow("v1", trail, colour))
    api.error_handler(404)(lambda request, exc: ({"by": "api"}, 404))
    add(v1, colour, "/missing", nothing)
    api.include(v1)
    app = App()
    app.include(api)
    app.include(v1)  # NOTE: the same routes again, under /v1 only: api's rules are not theirs.
    with make_client(app) as client:
        nested = client.get("/api/v1/missing")
        assert (nested.json(), nested.headers.get_list("x-flow")) == ({"by": "api"}, ["v1", "api"])
        direct = client.get("/v1/missing", headers={"accept": "application/json"})
        assert direct.json() == {"status": 404, "detail": "no such item"}
        assert direct.headers.get_list("x-flow") == ["v1"]
    assert app.url_for(f"{colour} /missing") == "/api/v1/missing"  # NOTE: the first added.


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_a_nested_router_s_websocket_route_gets_both_prefixes_and_flows(colour: str) -> None:
    # NOTE: the routers' flows run around the handshake, inside the app's, as around their
    # HTTP routes: they did not, and a router's auth flow left its WebSocket routes open.
    trail: list[str] = []
    api, live = Router(prefix="/api"), Router(prefix="/live")
    api.middleware(tagging_flow("api", trail, colour))
    live.middleware(tagging_flow("live", trail, colour))

    @live.websocket("/feed/{feed_id:int}")
    async def feed(ws: WebSocket, feed_id: int) -> None:
        await ws.accept()
        await ws.send_json({"feed": feed_id})
        await ws.close()

    api.include(live)
    app = App()
    app.middleware(tagging_flow("app", trail, colour))
    app.include(api)
    with (
        TestClient(app, interface="asgi") as client,
        client.websocket_connect("/api/live/feed/3") as ws,
    ):
        assert ws.receive_json() == {"feed": 3}
    assert trail == ["app in", "api in", "live in", "live out", "api out", "app out"]
    assert app.url_for("feed", feed_id=3) == "/api/live/feed/3"


def test_a_router_s_flow_refuses_the_handshakes_of_its_websocket_routes() -> None:
    api = Router(prefix="/api")

    @api.middleware
    def token_required(request: Request) -> Iterator[Response | None]:
        if request.query.get("token") != "s3cret":
            yield Response.text("no token", status=401)
            return
        yield None

    @api.websocket("/live")
    async def live(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("in")

    app = App()
    app.include(api)
    with TestClient(app, interface="asgi") as client:
        with pytest.raises(WebSocketDisconnect, match="refused"):
            client.websocket_connect("/api/live")
        with client.websocket_connect("/api/live?token=s3cret") as ws:
            assert ws.receive_text() == "in"
    # NOTE: a flow registered after the app was compiled would never run around it.
    with pytest.raises(ValueError):
        api.middleware(tagging_flow("late", [], "sync"))


def test_a_failed_compile_leaves_the_routers_uncompiled(colour: str) -> None:
    # NOTE: the routers were marked compiled as their routes' endpoints were made; a route
    # after them that skips a plugin not installed failed the compile, and a flow registered
    # on the router then (before the compile that serves) was refused, as if it never ran.
    trail: list[str] = []
    api = Router(prefix="/api")
    add(api, colour, "/x", lambda request: "x")
    app = App()
    app.include(api)
    app.get("/y", skip=["db"])(in_colour(colour, lambda request: "y"))
    with pytest.raises(ValueError, match="db"):
        app.compile()
    api.middleware(tagging_flow("api", trail, colour))

    class Db:
        name = "db"

        def apply(self, handler: Any, route: Any) -> Any:
            return handler

    app.install(Db())
    with TestClient(app) as client:
        assert client.get("/api/x").headers.get("x-flow") == "api"
    assert trail == ["api in", "api out"]


@pytest.mark.parametrize("started", [False, True], ids=["before start", "after start"])
def test_a_router_included_twice_in_one_app_is_told_so(started: bool) -> None:
    # NOTE: it said "GET /api/x is registered twice ('nothing' and 'nothing')", which named
    # no mistake of the test's: the router was one, included twice.
    api, app = api_app_of_one_missing_item("sync")
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(TestClient(app)) if started else None
        with pytest.raises(ValueError, match=r"^Router\(prefix='/api'\) is included here already"):
            app.include(api)
        assert [route.template for route in app.routes] == ["/api/x"]
        if client is not None:
            assert client.get("/api/x").status_code == 404


def test_a_router_included_twice_in_one_router_is_told_so() -> None:
    api, v1 = Router(prefix="/api"), Router(prefix="/v1")
    add(api, "sync", "/x", nothing)
    v1.include(api)
    with pytest.raises(ValueError, match=r"^Router\(prefix='/api'\) is included here already"):
        v1.include(api)
    assert [route.template for route in v1.routes] == ["/v1/api/x"]


def test_a_router_included_in_two_apps_serves_in_each_with_its_flows_and_handlers(
    make_client: MakeClient, colour: str
) -> None:
    trail: list[str] = []
    api = Router(prefix="/api")
    add(api, colour, "/x", nothing)
    api.middleware(tagging_flow("api", trail, colour))
    api.error_handler(404)(lambda request, exc: ({"by": "api"}, 404))
    first, second = App(), App()
    first.include(api)
    second.include(api)
    with make_client(first) as one, make_client(second) as two:
        for client in (one, two):
            response = client.get("/api/x")
            assert (response.json(), response.headers.get_list("x-flow")) == (
                {"by": "api"},
                ["api"],
            )
        # NOTE: both apps compiled it: a flow added now would run in neither.
        with pytest.raises(ValueError, match="register them before"):
            api.middleware(tagging_flow("late", trail, colour))
        with pytest.raises(ValueError, match="added to a router already included"):
            add(api, colour, "/y", nothing)
    assert first.url_for(f"{colour} /x") == second.url_for(f"{colour} /x") == "/api/x"
    assert trail == ["api in", "api out"] * 2


def test_a_route_name_taken_in_the_app_and_in_a_router_is_refused_either_way() -> None:
    for app_first in (True, False):
        app, api = App(), Router(prefix="/api")
        api.get("/x", name="x")(lambda request: "router")
        if app_first:
            app.get("/x", name="x")(lambda request: "app")
            with pytest.raises(ValueError, match=r"two routes are named 'x'.*pass name="):
                app.include(api)
        else:
            app.include(api)
            with pytest.raises(ValueError, match=r"two routes are named 'x'.*pass name="):
                app.get("/x", name="x")(lambda request: "app")
        assert [route.template for route in app.routes] == ["/x" if app_first else "/api/x"]
