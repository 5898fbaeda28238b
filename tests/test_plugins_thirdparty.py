"""Third-party plugins written from docs/plugins.md alone, as a plugin author would, under both
interfaces and both handler colours: timing, a database pool, auth, routes of their own, config
checked at construction, one plugin in two apps, and the bundled plugins in any install order."""

from __future__ import annotations

import asyncio
import functools
import itertools
import signal
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import MakeClient, in_colour
from servers import read_log
from test_cli_signals import Served

import microweb
from microweb import App, HTTPError, Request, Response, Route, Router
from microweb.plugins import CORS, CSRF, ProxyHeaders, RequestID, Sessions, Static, TrustedHosts
from microweb.testing import TestClient

Handler = Callable[..., Any]
Flow = Generator[None, Response, None]


class Timing:
    """Adds ``Server-Timing`` to every response, and records each request after the response."""

    name = "timing"

    def __init__(self) -> None:
        self.recorded: list[tuple[str, int]] = []

    def setup(self, app: App) -> None:
        app.middleware(self.flow)

    def flow(self, request: Request) -> Flow:
        started = time.perf_counter()
        response = yield
        elapsed = (time.perf_counter() - started) * 1000
        response.headers["server-timing"] = f"app;dur={elapsed:.3f}"
        request.after_response(self.recorded.append, (request.path, response.status))


class Connection:
    def __init__(self, pool: DBPool) -> None:
        self.pool, self.open = pool, True

    def query(self) -> str:
        assert self.pool.started and self.open, "query on a closed connection or pool"
        return "row"

    def close(self) -> None:
        self.open = False
        self.pool.returned += 1


class DBPool:
    """A pool opened at startup and closed at shutdown; each request gets a connection in a
    flow, given back after the response (so a streamed body can still use it)."""

    name = "db"

    def __init__(self) -> None:
        self.started = False
        self.closed = 0
        self.handed = 0
        self.returned = 0

    def setup(self, app: App) -> None:
        app.on_startup(self.start)
        app.middleware(self.flow)

    async def start(self) -> None:
        await asyncio.sleep(0)
        self.started = True

    def flow(self, request: Request) -> Flow:
        connection = Connection(self)
        self.handed += 1
        request.state.db = connection
        request.after_response(connection.close)
        yield

    async def close(self) -> None:
        await asyncio.sleep(0)
        self.started = False
        self.closed += 1


class TokenAuth:
    """Refuses requests without the right bearer token (401), with an error handler of its own."""

    name = "auth"

    def __init__(self, tokens: dict[str, str], *, public: tuple[str, ...] = ()) -> None:
        if not tokens:
            raise ValueError("TokenAuth needs at least one token")
        for path in public:
            if not path.startswith("/"):
                raise ValueError(f"TokenAuth public path {path!r} must start with '/'")
        self.tokens, self.public = dict(tokens), public

    def setup(self, app: App) -> None:
        app.middleware(self.flow)
        app.error_handler(401)(self.refused)

    def flow(self, request: Request) -> Flow:
        if request.path not in self.public:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            user = self.tokens.get(token) if scheme.lower() == "bearer" else None
            if user is None:
                raise HTTPError(401)
            request.state.user = user
        yield

    def refused(self, request: Request, exc: HTTPError) -> Response:
        return Response.json(
            {"error": "login required"}, status=401, headers={"www-authenticate": "Bearer"}
        )


class Admin:
    """Adds routes under a prefix, with names for ``url_for``."""

    name = "admin"

    def __init__(self, prefix: str = "/admin") -> None:
        self.prefix = prefix

    def setup(self, app: App) -> None:
        router = Router(prefix=self.prefix)
        router.get("/", name="admin_index")(self.index)
        router.get("/users/{user_id:int}", name="admin_user")(self.user)
        app.include(router)

    async def index(self, request: Request) -> dict[str, str]:
        return {"user": request.url_for("admin_user", user_id=7)}

    def user(self, request: Request, user_id: int) -> dict[str, int]:
        return {"id": user_id}


class Trace:
    """An ``apply`` plugin that tags what it wrapped, in the handler's colour."""

    def __init__(self, name: str) -> None:
        self.name = name

    def apply(self, handler: Handler, route: Route) -> Handler:
        if route.is_async:

            @functools.wraps(handler)
            async def traced_async(request: Request, **params: Any) -> Any:
                request.state.trace = [*getattr(request.state, "trace", []), self.name]
                return await handler(request, **params)

            return traced_async

        @functools.wraps(handler)
        def traced(request: Request, **params: Any) -> Any:
            request.state.trace = [*getattr(request.state, "trace", []), self.name]
            return handler(request, **params)

        return traced


def test_timing_plugin_sets_a_header_and_records_after_the_response(
    make_client: MakeClient, colour: str
) -> None:
    app = App()
    timing = app.install(Timing())
    app.get("/")(in_colour(colour, lambda request: "ok"))
    client = make_client(app)
    answer = client.get("/")
    assert answer.text == "ok"
    assert answer.headers["server-timing"].startswith("app;dur=")
    assert client.get("/missing").headers["server-timing"].startswith("app;dur=")
    assert timing.recorded == [("/", 200), ("/missing", 404)]


def test_db_pool_hands_a_connection_per_request_and_closes_at_shutdown(
    interface: str, colour: str
) -> None:
    app = App()
    pool = app.install(DBPool())

    def rows(request: Request) -> Response:
        db = request.state.db
        return Response.stream(db.query() for _ in range(2))

    app.get("/rows")(in_colour(colour, rows))
    app.get("/one", name="one")(in_colour(colour, lambda request: request.state.db.query()))
    with TestClient(app, interface=interface) as client:
        assert client.get("/rows").text == "rowrow"
        assert client.get("/one").text == "row"
        assert (pool.handed, pool.returned) == (2, 2)
        assert pool.closed == 0
    assert (pool.started, pool.closed) == (False, 1)


def test_db_pool_gets_its_connection_back_on_every_error_path(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()
    pool = app.install(DBPool())

    def crash(request: Request) -> str:
        raise RuntimeError("handler bug")

    def teapot(request: Request) -> str:
        raise HTTPError(418)

    app.get("/crash", name="crash")(in_colour(colour, crash))
    app.get("/teapot", name="teapot")(in_colour(colour, teapot))
    client = make_client(app)
    assert client.get("/crash").status_code == 500
    assert client.get("/teapot").status_code == 418
    assert client.get("/missing").status_code == 404
    assert (pool.handed, pool.returned) == (3, 3)


def test_auth_plugin_refuses_with_its_error_handler(make_client: MakeClient, colour: str) -> None:
    app = App()
    app.install(TokenAuth({"secret": "alice"}, public=("/health",)))
    app.get("/me", name="me")(in_colour(colour, lambda request: {"user": request.state.user}))
    app.get("/health", name="health")(in_colour(colour, lambda request: "up"))
    client = make_client(app)
    refused = client.get("/me")
    assert refused.status_code == 401
    assert refused.json() == {"error": "login required"}
    assert refused.headers["www-authenticate"] == "Bearer"
    assert client.get("/me", headers={"authorization": "Bearer nope"}).status_code == 401
    assert client.get("/me", headers={"authorization": "Bearer secret"}).json() == {"user": "alice"}
    assert client.get("/health").text == "up"
    # NOTE: refused before routing: an unknown path is a 401 too, not a 404 that tells it apart.
    assert client.get("/nowhere").status_code == 401


def test_plugin_config_is_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        TokenAuth({})
    with pytest.raises(ValueError, match="must start with '/'"):
        TokenAuth({"t": "u"}, public=("health",))


def test_plugin_routes_under_a_prefix_with_names(make_client: MakeClient) -> None:
    app = App()
    app.install(Admin())
    client = make_client(app)
    assert client.get("/admin").json() == {"user": "/admin/users/7"}
    assert client.get("/admin/users/7").json() == {"id": 7}
    assert app.url_for("admin_index") == "/admin"
    assert {route.added_by for route in app.routes} == {"admin"}


def test_apply_wraps_routes_added_after_install_and_by_later_plugins(
    make_client: MakeClient, colour: str
) -> None:
    app = App()
    app.install(Trace("outer"))
    app.install(Admin())  # its routes are wrapped by outer, installed before it
    app.install(Trace("inner"))
    app.get("/later")(in_colour(colour, lambda request: request.state.trace))
    client = make_client(app)
    assert client.get("/later").json() == ["outer", "inner"]
    assert client.get("/admin/users/1").json() == {"id": 1}


def test_one_plugin_instance_in_two_apps(interface: str) -> None:
    pool = DBPool()
    first, second = App(), App()
    first.install(pool)
    second.install(pool)
    for app in (first, second):
        app.get("/")(lambda request: request.state.db.query())
    one, two = TestClient(first, interface=interface), TestClient(second, interface=interface)
    with one, two:
        assert one.get("/").text == two.get("/").text == "row"
    # NOTE: each app closes the plugins it installed: the shared pool is closed once per app.
    assert pool.closed == 2


def test_a_plugin_that_installs_its_dependency(make_client: MakeClient) -> None:
    class Suite:
        name = "suite"

        def setup(self, app: App) -> None:
            if not any(plugin.name == "db" for plugin in app.plugins):
                app.install(DBPool())
            app.install(Admin("/suite"))

    app = App()
    app.install(Suite())
    assert [plugin.name for plugin in app.plugins] == ["suite", "db", "admin"]
    client = make_client(app)
    assert client.get("/suite/users/3").json() == {"id": 3}
    again = App()
    again.install(DBPool())
    again.install(Suite())
    assert [plugin.name for plugin in again.plugins] == ["db", "suite", "admin"]


def test_a_failed_setup_takes_back_what_a_router_a_hook_and_a_handler_added(
    make_client: MakeClient,
) -> None:
    class Flaky(Admin):
        name = "flaky"
        fail = True

        def setup(self, app: App) -> None:
            super().setup(app)
            app.on_startup(lambda: None)
            app.error_handler(401)(lambda request, exc: "never")
            app.add_converter("hex", lambda text: int(text, 16))
            app.state.flaky = True
            if self.fail:
                raise RuntimeError("config server down")

    app = App()
    flaky = Flaky()
    with pytest.raises(RuntimeError, match="config server down"):
        app.install(flaky)
    assert (app.plugins, app.routes, vars(app.state)) == ([], [], {})
    flaky.fail = False
    app.install(flaky)
    assert make_client(app).get("/admin/users/2").json() == {"id": 2}


def test_install_after_startup_is_refused(interface: str) -> None:
    app = App()
    with TestClient(app, interface=interface) as client:
        client.get("/")
        with pytest.raises(ValueError, match="install plugins before"):
            app.install(DBPool())
    assert app.plugins == []


# -- the bundled plugins together --------------------------------------------------------------


BUNDLED = ("sessions", "csrf", "cors", "requestid", "proxy", "hosts", "static")


def bundled_app(order: tuple[str, ...], folder: Path) -> App:
    plugins = {
        "sessions": Sessions("s" * 32),
        "csrf": CSRF(),
        "cors": CORS(["https://good.example"]),
        "requestid": RequestID(),
        "proxy": ProxyHeaders(["0.0.0.0/0", "::/0"]),
        "hosts": TrustedHosts(["testserver"]),
        "static": Static(folder),
    }
    app = App()
    for name in order:
        app.install(plugins[name])

    @app.get("/count")
    def count(request: Request) -> str:
        request.session["n"] = request.session.get("n", 0) + 1
        return str(request.session["n"])

    @app.post("/post")
    async def post(request: Request) -> str:
        return "posted"

    return app


ORDERS = [BUNDLED, BUNDLED[::-1], *itertools.islice(itertools.permutations(BUNDLED), 1, 5000, 997)]


@pytest.mark.parametrize("order", ORDERS, ids=lambda order: "-".join(order))
def test_bundled_plugins_in_any_install_order(
    make_client: MakeClient, files: Path, order: tuple[str, ...]
) -> None:
    client = make_client(bundled_app(order, files))
    css = client.get("/static/site.css")
    assert css.status_code == 200 and "x-request-id" in css.headers
    assert client.get("/static/site.css", headers={"host": "evil.example"}).status_code == 400
    forwarded = {"x-forwarded-host": "evil.example"}
    assert client.get("/static/site.css", headers=forwarded).status_code == 400
    assert client.get("/count").text == "1"
    assert client.get("/count").text == "2"
    cross = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    assert client.post("/post", headers=cross).status_code == 403
    assert client.post("/post").text == "posted"
    preflight = client.options(
        "/post",
        headers={"origin": "https://good.example", "access-control-request-method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://good.example"
    hello = client.get("/static/site.css", headers={"origin": "https://good.example"})
    assert hello.headers["access-control-allow-origin"] == "https://good.example"


# -- close() and hooks checked early -----------------------------------------------------------


def test_a_close_that_needs_an_argument_is_refused_at_install() -> None:
    class Pool:
        name = "pool"

        def close(self, timeout: float) -> None:
            pass

    app = App()
    with pytest.raises(TypeError, match=r"plugin 'pool' close\(\) must accept being called as"):
        app.install(Pool())
    assert app.plugins == []


def test_a_def_close_wrapping_an_async_one_is_refused_at_install() -> None:
    class Pool:
        name = "pool"

        async def aclose(self) -> None:
            pass

        @functools.wraps(aclose)
        def close(self) -> Any:  # a decorator's wrapper: returns the coroutine
            return self.aclose()

    with pytest.raises(TypeError, match=r"plugin 'pool' close\(\) is a def function wrapping"):
        App().install(Pool())


def test_a_close_that_is_not_callable_is_refused_at_install() -> None:
    class Pool:
        name = "pool"
        close = "soon"

    with pytest.raises(TypeError, match=r"plugin 'pool' close\(\) must be a method"):
        App().install(Pool())


def test_a_def_close_returning_a_coroutine_fails_at_shutdown_rather_than_passing(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []

    class Pool:
        name = "pool"

        def __init__(self) -> None:
            self.close = lambda: self.aclose()  # no __wrapped__: only its result tells

        async def aclose(self) -> None:
            events.append("closed")

    app = App()
    app.install(Pool())
    failed = pytest.raises(RuntimeError, match="returned a coroutine, which nobody awaits")
    with failed, TestClient(app, interface=interface):
        pass
    assert events == []
    assert "shutdown step" in caplog.text


def test_a_def_startup_hook_returning_a_coroutine_fails_startup(interface: str) -> None:
    events: list[str] = []

    async def connect() -> None:
        events.append("connected")

    app = App()
    app.on_startup(lambda: connect())
    # NOTE: the TypeError itself under WSGI; under ASGI, the lifespan's failure names it.
    failed = pytest.raises((TypeError, RuntimeError), match="def startup step returned a coroutine")
    with failed, TestClient(app, interface=interface):
        pass
    assert events == []


def test_close_does_not_run_when_startup_fails_but_a_plugins_lifespan_exits(
    interface: str,
) -> None:
    events: list[str] = []

    class Pool:
        name = "pool"

        def setup(self, app: App) -> None:
            app.lifespan(self.held)
            app.on_startup(self.fail)

        def held(self, app: App) -> Generator[None, None, None]:
            events.append("opened")
            yield
            events.append("released")

        def fail(self) -> None:
            raise ConnectionError("db down")

        def close(self) -> None:
            events.append("closed")

    app = App()
    app.install(Pool())
    failed = pytest.raises((ConnectionError, RuntimeError), match="db down")
    with failed, TestClient(app, interface=interface):
        pass
    assert events == ["opened", "released"]


def test_a_wrapper_that_drops_the_path_parameters_names_the_plugin() -> None:
    class Lossy:
        name = "lossy"

        def apply(self, handler: Handler, route: Route) -> Handler:
            def wrapper(request: Request) -> Any:
                return handler(request)

            return wrapper

    app = App()
    app.install(Lossy())

    @app.get("/users/{user_id:int}")
    def user(request: Request, user_id: int) -> str:
        return str(user_id)

    with pytest.raises(TypeError, match=r"as the plugin 'lossy' wrapped it: its apply\(\)"):
        app.as_wsgi()


def test_a_handler_that_cannot_take_the_request_is_blamed_under_a_passing_wrapper() -> None:
    class Logged:
        name = "logged"

        def apply(self, handler: Handler, route: Route) -> Handler:
            @functools.wraps(handler)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return handler(*args, **kwargs)

            return wrapper

    app = App()
    app.install(Logged())

    @app.get("/users/{user_id:int}")
    def user(user_id: int) -> str:  # no request
        return str(user_id)

    with pytest.raises(TypeError, match="must accept being called as") as raised:
        app.as_wsgi()
    assert "plugin" not in str(raised.value)


def test_the_plugin_protocol_takes_a_name_however_it_is_declared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = pytest.importorskip("mypy.api")
    # NOTE: the microweb under test, not the one mypy would find from the current folder.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MYPYPATH", str(Path(microweb.__file__).parent.parent))
    module = tmp_path / "typed_plugins.py"
    module.write_text(
        "from typing import ClassVar, Final\n"
        "from microweb import Plugin\n"
        "class Plain:\n    name = 'plain'\n"
        "class Classy:\n    name: ClassVar[str] = 'classy'\n"
        "class Fixed:\n    name: Final = 'fixed'\n"
        "class Computed:\n    @property\n    def name(self) -> str:\n        return 'computed'\n"
        "class Own:\n    def __init__(self) -> None:\n        self.name = 'own'\n"
        "class Numbered:\n    name = 3\n"
        "fine: list[Plugin] = [Plain(), Classy(), Fixed(), Computed(), Own()]\n"
        "wrong: Plugin = Numbered()\n"
    )
    # NOTE: silent: errors of the modules it imports are not this check's; microweb's own
    # "import multipart" (untyped) is allowed by the project's config, not read from here.
    out, _, status = api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", str(module)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "typed_plugins.py:19:" in errors[0], out
    assert status == 1


@pytest.mark.servers
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("server", ["waitress", "uvicorn"])
def test_microweb_serve_closes_plugins_on_sigterm_after_the_hooks(
    tmp_path: Path, server: str
) -> None:
    served = Served(tmp_path, server, env={"SERVING_LIFESPAN": "1", "SERVING_PLUGINS": "1"})
    assert httpx.get(f"{served.url}/where", timeout=5).status_code == 200
    served.process.send_signal(signal.SIGTERM)
    served.ended_within(timeout=5)
    assert served.recorded() == [
        "lifespan-entered",
        "shutdown",
        "lifespan-exited",
        "close-async",
        "close-sync",
    ], read_log(served.log)
