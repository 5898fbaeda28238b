"""Another framework's name for what an App or a Router spells otherwise (Flask's
``@app.before_request``, Starlette's ``app.add_middleware``, Falcon's ``app.add_route``):
an ``AttributeError`` that says what to write, where Python's named only the missing name."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from microweb import App, Response, Router


@pytest.mark.parametrize(
    ("name", "advice"),
    [
        ("before_request", "a flow, @app.middleware"),
        ("after_request", "a flow, @app.middleware"),
        ("teardown_request", "a flow, @app.middleware, with try/finally"),
        ("errorhandler", "@app.error_handler(key)"),
        ("register_error_handler", "app.error_handler(key)(handler)"),
        ("exception_handler", "@app.error_handler(key)"),
        ("add_exception_handler", "app.error_handler(key)(handler)"),
        ("add_error_handler", "app.error_handler(key)(handler)"),
        ("add_middleware", "a flow, @app.middleware, or a plugin"),
        ("register_blueprint", "app.include(router)"),
        ("mount", "app.include(router)"),
        ("add_route", "app.route(path, methods=[...])(handler)"),
        ("add_url_rule", "app.route(path, methods=[...])(handler)"),
        ("add_event_handler", "@app.on_startup or @app.on_shutdown"),
        ("on_event", "@app.on_startup or @app.on_shutdown"),
        ("run", "microweb serve module:app"),
        ("test_client", "microweb.testing.TestClient(app)"),
        ("config", "app.state"),
        ("url_path_for", "app.url_for(name, **params)"),
    ],
)
def test_an_apps_other_name_says_what_to_write(name: str, advice: str) -> None:
    app = App()
    message = f"'App' object has no attribute {name!r} (another framework's name): write "
    with pytest.raises(AttributeError) as raised:
        getattr(app, name)
    assert str(raised.value).startswith(message)
    assert advice in str(raised.value)
    assert not hasattr(app, name)
    # NOTE: set, as Flask's app.config = {...}, it is the app's own attribute, as it was
    # before the names were refused: a plugin or the app's code reads it.
    setattr(app, name, {"workers": 2})
    assert getattr(app, name) == {"workers": 2}
    delattr(app, name)
    with pytest.raises(AttributeError, match="another framework's name"):
        getattr(app, name)


@pytest.mark.parametrize(
    ("name", "advice"),
    [
        ("before_request", "a flow, @router.middleware"),
        ("errorhandler", "@router.error_handler(key)"),
        ("register_blueprint", "router.include(other)"),
        ("add_url_rule", "router.route(path, methods=[...])(handler)"),
    ],
)
def test_a_routers_other_name_says_what_to_write(name: str, advice: str) -> None:
    with pytest.raises(AttributeError) as raised:
        getattr(Router(prefix="/api"), name)
    assert str(raised.value).startswith(f"'Router' object has no attribute {name!r}")
    assert advice in str(raised.value)


def test_a_subclass_may_use_the_names() -> None:
    class Served(App):
        def run(self) -> str:
            return "ran"

    assert Served().run() == "ran"
    assert not hasattr(Router(), "run")  # NOTE: no app-only name on a router.


def test_a_subclass_may_set_the_names_on_its_instances() -> None:
    # NOTE: an App subclass's own self.config = ... in __init__ (or a Router subclass's
    # self.add_route), which worked before the names were refused, raised "another framework's
    # name"; read or deleted unset, the name is refused.
    class Configured(App):
        config: dict[str, int]

        def __init__(self) -> None:
            super().__init__()
            self.config = {"workers": 2}

    class Mounted(Router):
        def __init__(self) -> None:
            super().__init__()
            self.add_route = "/static"

    app = Configured()
    assert app.config == {"workers": 2}
    assert Mounted().add_route == "/static"
    del app.config
    assert not hasattr(app, "config")
    router = Router()
    router.add_route = "/static"  # type: ignore[attr-defined]
    assert router.add_route == "/static"  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="another framework's name"):
        del App().config  # type: ignore[attr-defined]


class Items:
    def on_get(self, req: object, resp: object) -> None:
        """A Falcon responder, kept as it was."""


def on_post(req: object, response: object) -> None:
    """A responder written as a function."""


@pytest.mark.parametrize(
    ("handler", "name", "resp"),
    [(Items().on_get, "Items.on_get", "resp"), (on_post, "on_post", "response")],
)
def test_a_falcon_responder_is_told_to_return_its_answer(
    handler: object, name: str, resp: str
) -> None:
    # NOTE: on_get(self, req, resp) kept from Falcon: "must accept being called as (request)"
    # did not say that no resp comes.
    app = App()
    app.get("/items")(handler)
    with pytest.raises(TypeError) as raised:
        app.as_wsgi()
    assert str(raised.value) == (
        f"handler {name!r} for '/items' must accept being called as (request): no "
        f"{resp} is passed (Falcon's): return the answer, a dict, a str or a Response"
    )


def test_another_handler_that_takes_too_much_gets_no_falcon_hint() -> None:
    def show(request: object, extra: object) -> str:
        return "x"

    app = App()
    app.get("/")(show)
    with pytest.raises(TypeError, match=r"must accept being called as \(request\)$"):
        app.as_wsgi()


@pytest.mark.parametrize("cls", [App, Router])
def test_the_names_read_on_the_class_are_its_refusals_and_name_what_was_missing(
    cls: type[App] | type[Router],
) -> None:
    # NOTE: read on the class (help(), inspect.getmembers(), a docs tool), a name is its
    # refusal, not an error; read on an instance, the AttributeError names the attribute and
    # the object, as Python's own does (mutations review384).
    names = ("add_route", "config") if cls is App else ("add_route", "register_blueprint")
    members = dict(inspect.getmembers(cls))
    assert all(name in members for name in names)
    instance = cls()
    for name in names:
        with pytest.raises(AttributeError) as raised:
            getattr(instance, name)
        assert raised.value.name == name and raised.value.obj is instance


def test_a_refused_name_set_names_what_was_refused() -> None:
    # NOTE: Python fills in name and obj of an AttributeError raised as an attribute is read,
    # not as it is set (mutation review384: the refusal made without them).
    response = Response("x")
    with pytest.raises(AttributeError) as raised:
        response.status_code = 404  # type: ignore[attr-defined]
    assert raised.value.name == "status_code" and raised.value.obj is response


_CONSTRUCTOR_KEYWORDS = [
    (App, "routes", [], "Starlette's and FastAPI's", "App(), then app.route(path, methods="),
    (App, "middleware", [], "Starlette's and FastAPI's", "App(), then a flow, @app.middleware"),
    (App, "exception_handlers", {}, "Starlette's and FastAPI's", "app.error_handler(key)"),
    (App, "on_startup", [], "Starlette's and FastAPI's", "App(), then app.on_startup(hook)"),
    (App, "on_shutdown", [], "Starlette's and FastAPI's", "App(), then app.on_shutdown(hook)"),
    (App, "lifespan", None, "Starlette's and FastAPI's", "App(), then app.lifespan(lifespan)"),
    (
        Router,
        "routes",
        [],
        "Starlette's and FastAPI's",
        "Router(prefix=...), then router.route(path, methods=",
    ),
    (Router, "url_prefix", "/api", "Flask's Blueprint's", "Router(prefix='/api')"),
    # NOTE: Flask(__name__, static_folder=..., template_folder=...), a port's first line:
    # Python names the keyword before it counts the positional arguments.
    (App, "static_folder", "public", "Flask's", "App(), then app.install(Static('public'))"),
    (App, "template_folder", "pages", "Flask's", "templates = Templates('pages')"),
]


def test_flasks_folders_with_its_import_name_say_what_to_write() -> None:
    with pytest.raises(TypeError) as raised:
        App(__name__, static_folder="public", template_folder="pages")  # type: ignore[call-arg]
    assert str(raised.value) == (
        "App.__init__() got an unexpected keyword argument 'static_folder' (Flask's keyword): "
        "write App(), then app.install(Static('public')), Static from microweb.plugins "
        "(a relative folder is found from the current directory)"
    )


@pytest.mark.parametrize(("cls", "keyword", "value", "whose", "advice"), _CONSTRUCTOR_KEYWORDS)
def test_another_frameworks_constructor_keyword_says_what_to_write(
    cls: type[App] | type[Router], keyword: str, value: object, whose: str, advice: str
) -> None:
    # NOTE: Starlette(routes=[...]) kept as App(routes=[...]): Python's message named the
    # keyword alone, never how the routes are added here.
    with pytest.raises(TypeError) as raised:
        cls(**{keyword: value})
    message = str(raised.value)
    python_said = f"{cls.__name__}.__init__() got an unexpected keyword argument {keyword!r}"
    assert message.startswith(f"{python_said} ({whose} keyword): write ")
    assert advice in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_the_written_spellings_work() -> None:
    def listed(request: object) -> str:
        return "listed"

    app = App()
    app.route("/links", methods=["GET"])(listed)
    router = Router(prefix="/api")
    router.route("/links", methods=["GET"])(listed)
    app.include(router)
    assert [route.template for route in app._http_routes] == ["/links", "/api/links"]


def test_other_constructor_errors_are_left_as_they_were() -> None:
    # NOTE: a keyword no framework has, one given next to another framework's, and the
    # checks of the constructors' own arguments keep Python's (or microweb's) message.
    with pytest.raises(TypeError) as raised:
        App(nope=1)  # type: ignore[call-arg]
    assert str(raised.value).startswith("App.__init__() got an unexpected keyword argument 'nope'")
    assert "keyword): write" not in str(raised.value)
    with pytest.raises(TypeError, match=r"^debug must be True or False"):
        App(debug="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^skip takes a list"):
        Router(skip="csrf")

    class Listed(App):
        def __init__(self, routes: list[object]) -> None:
            super().__init__()
            self.given = routes

    assert Listed(routes=[]).given == []


def test_a_subclass_that_passes_the_keyword_on_gets_the_advice() -> None:
    class Ported(App):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)

    with pytest.raises(TypeError, match=r"\(Starlette's and FastAPI's keyword\): write App\(\)"):
        Ported(routes=[])
    with pytest.raises(TypeError, match=r"^Router\.__init__\(\) got an unexpected keyword"):
        type("Sub", (Router,), {})(routes=[])


def test_the_constructors_signatures_are_unchanged() -> None:
    # NOTE: the API reference, help() and editors read them.
    assert list(inspect.signature(App).parameters) == ["debug", "limits", "max_threads"]
    assert list(inspect.signature(Router).parameters) == ["prefix", "skip", "config"]
    assert App.__init__.__qualname__ == "App.__init__"
    assert App.__init__.__doc__ is None or "routes" not in App.__init__.__doc__


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (
            lambda: App(__name__),
            "(Flask's Flask(__name__)): write App(), which takes no import name",
        ),
        (
            lambda: Router("api", __name__),
            "(Flask's Blueprint(name, import_name)): write Router(prefix=...), which takes no name",
        ),
    ],
)
def test_flasks_import_name_given_to_app_or_router_says_what_to_write(make: Any, said: str) -> None:
    # NOTE: Flask(__name__) kept as App(__name__): "takes 1 positional argument but 2 were
    # given" said nothing of why.
    with pytest.raises(TypeError) as raised:
        make()
    assert "positional argument" in str(raised.value)
    assert str(raised.value).endswith(said)


def test_other_positional_arguments_are_left_as_they_were() -> None:
    for make in (lambda: App(True), lambda: Router("/api", ["db"])):
        with pytest.raises(TypeError) as raised:
            make()
        assert str(raised.value).endswith("were given")
