"""Another framework's name imported from microweb (Flask's ``abort``, Starlette's
``JSONResponse``, Falcon's ``HTTPNotFound``): the ``ImportError`` says what to write, where
Python's said only "cannot import name"; read as ``microweb.name``, the ``AttributeError`` does.
And Starlette's ``Route(path, endpoint)`` called on microweb's ``Route``, or its routes given to
``include()``: the ``TypeError`` says how to add them."""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import pickle
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeClient

import microweb
from microweb import App, Limits, Request, Route, Router
from microweb._other_names import MODULE_NAMES

ROOT = Path(__file__).resolve().parent.parent

_CASES = [
    ("abort", "Flask's", "raise HTTPError(status, detail)"),
    ("jsonify", "Flask's", "Response.json(value)"),
    ("redirect", "Flask's", "Response.redirect(url, status=302)"),
    ("render_template", "Flask's", "templates.render(request, name, context)"),
    ("Blueprint", "Flask's", "Router(prefix=...)"),
    ("g", "Flask's", "request.state"),
    ("current_app", "Flask's", "request.app"),
    ("request", "Flask's", "the request argument"),
    ("Flask", "Flask's", "App()"),
    ("HTTPException", "Starlette's and Flask's", "raise HTTPError(status, detail)"),
    ("JSONResponse", "Starlette's", "Response.json(value, status=...)"),
    ("StreamingResponse", "Starlette's", "Response.stream(iterable"),
    ("BackgroundTasks", "Starlette's", "request.after_response(fn, *args, **kwargs)"),
    ("Starlette", "Starlette's", "App()"),
    ("status", "Starlette's", "status=404"),
    ("HTTPNotFound", "Falcon's", "raise HTTPError(404)"),
    ("HTTPUnprocessableEntity", "Falcon's", "raise HTTPError(422)"),
    ("HTTPSeeOther", "Falcon's", "return Response.redirect(url, status=303)"),
    ("HTTP_201", "Falcon's", "the int 201"),
]


@pytest.mark.parametrize(("name", "origin", "advice"), _CASES)
def test_an_import_of_another_frameworks_name_says_what_to_write(
    name: str, origin: str, advice: str
) -> None:
    with pytest.raises(ImportError) as raised:
        exec(f"from microweb import {name}", {})
    message = str(raised.value)
    assert message.startswith(f"cannot import name {name!r} from 'microweb' ({origin} name): ")
    assert advice in message
    assert (raised.value.name, raised.value.path) == ("microweb", microweb.__file__)
    assert not isinstance(raised.value, AttributeError)


@pytest.mark.parametrize(("name", "origin", "advice"), _CASES[:3])
def test_an_import_among_others_and_in_a_function_says_it_too(
    name: str, origin: str, advice: str
) -> None:
    def imported() -> None:
        exec(f"from microweb import App, {name} as alias, Response", {})

    with pytest.raises(ImportError, match=rf"\({origin} name\): .*{advice[:10]}"):
        imported()


@pytest.mark.parametrize(("name", "origin", "advice"), _CASES)
def test_an_attribute_of_another_frameworks_name_says_what_to_write(
    name: str, origin: str, advice: str
) -> None:
    with pytest.raises(AttributeError) as raised:
        getattr(microweb, name)
    message = str(raised.value)
    assert message.startswith(f"module 'microweb' has no attribute {name!r} ({origin} name): ")
    assert advice in message
    assert (raised.value.name, raised.value.obj) == (name, microweb)
    assert not hasattr(microweb, name)


def test_other_names_leave_the_module_as_it_was() -> None:
    assert not hasattr(microweb, "nothing_of_the_kind")
    with pytest.raises(AttributeError, match=r"^module 'microweb' has no attribute 'nope'$"):
        microweb.nope  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ImportError, match=r"^cannot import name 'nope' from 'microweb'"):
        exec("from microweb import nope", {})
    assert not [name for name in MODULE_NAMES if name in dir(microweb)]
    assert not {"TYPE_CHECKING", "module_getattr"} & set(dir(microweb))
    star: dict[str, object] = {}
    exec("from microweb import *", star)
    assert sorted(name for name in star if name != "__builtins__") == sorted(microweb.__all__)
    # NOTE: microweb's own names are found as before; a submodule imports as before.
    assert importlib.import_module("microweb.testing").TestClient
    assert getattr(microweb, "HTTPError", None) is microweb.HTTPError


def test_an_optional_import_of_another_name_still_falls_back() -> None:
    namespace: dict[str, object] = {}
    exec(
        "try:\n    from microweb import jsonify\nexcept ImportError:\n    jsonify = None\n",
        namespace,
    )
    assert namespace["jsonify"] is None


def test_each_starlette_and_falcon_name_is_theirs() -> None:
    falcon = pytest.importorskip("falcon")
    starlette = [
        importlib.import_module(f"starlette.{module}")
        for module in ("applications", "background", "exceptions", "responses", "routing")
        if pytest.importorskip("starlette")
    ]
    starlette.append(importlib.import_module("starlette.status") and sys.modules["starlette"])
    for name, (origin, _) in MODULE_NAMES.items():
        if "Falcon" in origin:
            assert hasattr(falcon, name), name
        elif "Starlette" in origin:
            assert [module for module in starlette if hasattr(module, name)], name
    assert [name for name in dir(falcon) if name.startswith("HTTP_")]


def test_mypy_still_flags_another_frameworks_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = pytest.importorskip("mypy.api")
    # NOTE: the microweb under test, not the one mypy would find from the current folder.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MYPYPATH", str(ROOT))
    user = tmp_path / "ported.py"
    user.write_text("from microweb import App, jsonify\nimport microweb\nmicroweb.abort(404)\n")
    out, _, status = api.run(["--strict", "--no-incremental", "--follow-imports=silent", str(user)])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 2, out
    assert 'ported.py:1: error: Module "microweb" has no attribute "jsonify"' in errors[0]
    assert 'ported.py:3: error: Module has no attribute "abort"' in errors[1]
    assert status == 1


def test_an_import_after_256_names_says_what_to_write_too() -> None:
    # NOTE: the name's index past 255 puts EXTENDED_ARG before IMPORT_FROM; 3.10 leaves
    # f_lasti on the prefix.
    source = "".join(f"n{index} = {index}\n" for index in range(300))
    with pytest.raises(ImportError, match=r"\(Flask's name\): write raise HTTPError"):
        exec(compile(source + "from microweb import abort\n", "ported", "exec"), {})


def _imported(
    monkeypatch: pytest.MonkeyPatch, name: str, module: types.ModuleType, source: str
) -> dict[str, object]:
    """Put ``module`` in sys.modules as ``name``, run ``source``, and return the names it
    bound."""
    monkeypatch.setitem(sys.modules, name, module)
    namespace: dict[str, object] = {}
    exec(source, namespace)
    del namespace["__builtins__"]
    return namespace


def test_a_submodule_in_sys_modules_imports_as_python_finds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: a submodule still being imported (a circular import) is in sys.modules and not
    # yet an attribute of its package: `from package import sub` falls back to sys.modules
    # only after an AttributeError.
    sub = types.ModuleType("microweb.status")
    source = "from microweb import status\nimport microweb.status as aliased\n"
    imported = _imported(monkeypatch, "microweb.status", sub, source)
    assert imported == {"status": sub, "aliased": sub}  # NOTE: a module is equal to itself only.


def test_a_lookup_from_c_code_under_another_modules_import_is_no_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: a module whose __getattr__ is C code (functools.partial here, a compiled lazy
    # loader elsewhere) runs with no frame of its own: the frame below is the one importing
    # from that module, at its IMPORT_FROM. hasattr() must still say False.
    import functools

    lazy = types.ModuleType("lazy_port")
    lazy.__getattr__ = functools.partial(hasattr, microweb)  # type: ignore[method-assign]
    imported = _imported(monkeypatch, "lazy_port", lazy, "from lazy_port import abort, App\n")
    assert imported == {"abort": False, "App": True}


def test_a_lookup_from_a_thread_with_no_python_frame_is_an_attribute_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: C code in a thread of its own (here _thread's, running list.extend over a map of
    # hasattr) has no frame below the package's __getattr__: sys._getframe(1) raised
    # ValueError out of hasattr().
    import _thread
    import time

    raised: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", raised.append)
    found: list[bool] = []
    lookups = map(hasattr, [microweb, microweb], ["abort", "nope"])
    _thread.start_new_thread(found.extend, (lookups,))
    until = time.monotonic() + 5
    while not (found or raised) and time.monotonic() < until:
        time.sleep(0.01)
    assert (found, raised) == ([False, False], [])


def _endpoint(request: Request) -> str:
    return "listed"


_STARLETTE_ROUTES = [
    (lambda: Route("/links", _endpoint), "app.route('/links')(_endpoint)"),  # type: ignore[call-arg]
    (
        lambda: Route("/links", endpoint=_endpoint, methods=["GET", "POST"]),  # type: ignore[call-arg]
        "app.route('/links', methods=['GET', 'POST'])(_endpoint)",
    ),
    (
        lambda: Route("/links", _endpoint, methods=["POST"], name="links"),  # type: ignore[call-arg]
        "app.route('/links', methods=['POST'], name='links')(_endpoint)",
    ),
]


@pytest.mark.parametrize(("call", "written"), _STARLETTE_ROUTES)
def test_a_starlette_route_says_how_to_add_it(
    make_client: MakeClient, call: Any, written: str
) -> None:
    # NOTE: microweb's Route is what a plugin's apply() is given: Python's message asked for
    # its handler, name and is_async, which no port should write.
    with pytest.raises(TypeError) as raised:
        call()
    message = str(raised.value)
    assert message.startswith("Route.__init__() ")
    assert "(Starlette's Route(path, endpoint)): microweb's Route is made by the app" in message
    assert message.endswith(f"write {written}, or the decorator @app.route(...) on the function")
    app = App()
    # NOTE: what the message says to write works.
    exec(written, {"app": app, "_endpoint": _endpoint})
    response = make_client(app).request("POST" if "POST" in written else "GET", "/links")
    assert (response.status_code, response.text) == (200, "listed")


def test_microwebs_own_route_and_other_errors_are_left_as_they_were() -> None:
    route = Route("/x", frozenset({"GET"}), _endpoint, "x", False)
    assert (route.template, route.handler) == ("/x", _endpoint)
    with pytest.raises(TypeError) as raised:
        Route("/x", frozenset({"GET"}))  # type: ignore[call-arg]
    assert "Starlette" not in str(raised.value)


def _starlettes(name: str) -> type:
    """A class of Starlette's routing module, as a port imports it (no Starlette needed)."""

    def init(self: object, path: str, endpoint: Any = None, **options: Any) -> None:
        vars(self).update(path=path, endpoint=endpoint, **options)

    return type(name, (), {"__init__": init, "__module__": "starlette.routing"})


@pytest.mark.parametrize("many", [False, True])
def test_starlettes_route_given_to_include_says_how_to_add_it(
    make_client: MakeClient, many: bool
) -> None:
    # NOTE: Python's part of the message named the class alone: "include() takes a Router,
    # not Route", which read as if microweb's Route were the one wanted.
    route = _starlettes("Route")("/links", _endpoint, methods=["GET"])
    app = App()
    with pytest.raises(TypeError) as raised:
        app.include([route] if many else route)  # type: ignore[arg-type]
    assert str(raised.value) == (
        "include() takes a Router, not Starlette's Route: add each route with "
        "app.route(path, methods=[...])(endpoint), or put them on a Router(prefix=...) and "
        "include that"
    )
    app.route("/links", methods=["GET"])(_endpoint)
    assert make_client(app).get("/links").text == "listed"


def test_starlettes_mount_and_other_values_given_to_include() -> None:
    app = App()
    with pytest.raises(TypeError, match=r"^include\(\) takes a Router, not Starlette's Mount: "):
        app.include(_starlettes("Mount")("/api"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^include\(\) takes a Router, not list: \[1\]$"):
        app.include([1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^include\(\) takes a Router, not list: \[\]$"):
        app.include([])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^include\(\) takes a Router, not a Route \(what"):
        app.include(Route("/x", frozenset({"GET"}), _endpoint, "x", False))  # type: ignore[arg-type]


def _theirs(module: str, name: str) -> object:
    """An instance of ``module``'s class ``name``, as a port has it (no Starlette needed)."""
    return type(name, (), {"__module__": module})()


@pytest.mark.parametrize(
    ("module", "name", "said"),
    [
        ("starlette.routing", "Router", "Starlette's Router: add its routes to a Router"),
        ("starlette.applications", "Starlette", "a Starlette app: add its routes to a Router"),
        ("fastapi.routing", "APIRouter", "FastAPI's APIRouter: add its routes to a Router"),
        ("fastapi.applications", "FastAPI", "a FastAPI app: add its routes to a Router"),
        ("fastapi.routing", "APIRoute", "FastAPI's APIRoute: add each route with app.route("),
        ("fastapi.routing", "APIWebSocketRoute", "FastAPI's APIWebSocketRoute: add each one"),
    ],
)
def test_starlettes_and_fastapis_routers_and_apps_given_to_include(
    module: str, name: str, said: str
) -> None:
    # NOTE: Starlette's Router read "include() takes a Router, not Router: <...>", as if it
    # were the one wanted; FastAPI's routes and routers (what app.routes holds) had no advice.
    app = App()
    for given in (_theirs(module, name), [_theirs(module, name)]):
        with pytest.raises(TypeError) as raised:
            app.include(given)  # type: ignore[arg-type]
        assert str(raised.value).startswith(f"include() takes a Router, not {said}")


def test_only_starlettes_and_fastapis_own_modules_get_their_advice() -> None:
    app = App()
    for module in ("starlette_extras", "fastapi_utils.routing", "mystarlette.routing"):
        with pytest.raises(TypeError, match=r"^include\(\) takes a Router, not Router: <"):
            app.include(_theirs(module, "Router"))  # type: ignore[arg-type]


class _Listed(list):  # type: ignore[type-arg]
    """A list of the app's own class, whose reads raise: none of them is made."""

    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("read")

    def __len__(self) -> int:
        raise AssertionError("read")

    def __bool__(self) -> bool:
        raise AssertionError("read")

    def __repr__(self) -> str:
        return "_Listed"


def test_a_list_subclass_of_starlettes_routes_given_to_include() -> None:
    # NOTE: a list of another class (routes kept in one of the app's) had no advice.
    app = App()
    with pytest.raises(TypeError, match=r"^include\(\) takes a Router, not Starlette's Route: "):
        app.include(_Listed([_starlettes("Route")("/links", _endpoint)]))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^include\(\) takes a Router, not _Listed: _Listed$"):
        app.include(_Listed())  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [list, tuple, _Listed])
def test_routers_listed_given_to_include_say_to_include_each(
    make_client: MakeClient, kind: type
) -> None:
    # NOTE: it read "include() takes a Router, not list: [<microweb...Router object ...>, ...]",
    # where the fix is one include() each (review424).
    first, second = Router(prefix="/a"), Router(prefix="/b")
    first.get("/links")(_endpoint)
    second.get("/links")(_endpoint)
    app = App()
    for registry in (app, Router()):
        with pytest.raises(TypeError) as raised:
            registry.include(kind([first, second]))
        assert str(raised.value) == (
            f"include() takes one Router, not a {kind.__name__} of 2: call include() once "
            "for each of them (for router in routers: app.include(router))"
        )
    for router in (first, second):
        app.include(router)
    client = make_client(app)
    assert [client.get(f"{p}/links").text for p in ("/a", "/b")] == ["listed", "listed"]


def test_a_value_whose_repr_raises_given_to_include_gets_the_type_error() -> None:
    # NOTE: the message showed repr(value), whose error went out of include() in its place.
    class Shown:
        def __repr__(self) -> str:
            raise RuntimeError("repr")

    with pytest.raises(TypeError, match=r"^include\(\) takes a Router, not Shown: <.*Shown object"):
        App().include(Shown())  # type: ignore[arg-type]


class _Routes(Router):
    """A router class of the app's own."""


@pytest.mark.parametrize("including", ["app", "router"])
@pytest.mark.parametrize(("given", "said"), [(Router, "Router"), (_Routes, "_Routes")])
def test_the_router_class_given_to_include_says_to_call_it(
    including: str, given: type[Router], said: str
) -> None:
    # NOTE: app.include(Router) read "include() takes a Router, not type: <class ...>", which
    # looked as if a Router was what it had been given.
    host = App() if including == "app" else Router()
    with pytest.raises(TypeError) as raised:
        host.include(given)  # type: ignore[arg-type]
    assert str(raised.value) == (
        f"include() takes a Router, not the class {said} itself: call it, {said}() (or "
        f"{said}(prefix=...)), add the routes to the router it makes, and include that"
    )


@pytest.mark.parametrize("including", ["app", "router"])
def test_the_app_class_given_to_include_says_what_to_include(including: str) -> None:
    host = App() if including == "app" else Router()
    with pytest.raises(TypeError) as raised:
        host.include(App)  # type: ignore[arg-type]
    assert str(raised.value).startswith(
        "include() takes a Router, not the class App: register the routes on a Router(), "
    )


def test_the_classes_given_to_the_test_client_say_what_to_give(make_client: MakeClient) -> None:
    # NOTE: TestClient(App) failed at the first request with "App.as_wsgi() missing 1
    # required positional argument: 'self'", and a router with "'Router' object has no
    # attribute 'as_wsgi'".
    with pytest.raises(TypeError, match=r"^TestClient takes an App, not the class App: call "):
        make_client(App)  # type: ignore[arg-type]
    for given in (Router, Router()):
        with pytest.raises(TypeError) as raised:
            make_client(given)  # type: ignore[arg-type]
        assert str(raised.value).startswith("TestClient takes an App, not a Router")
        assert "app.include(router)" in str(raised.value)
    app = App()
    router = Router(prefix="/api")
    router.get("/links")(_endpoint)
    app.include(router)
    assert make_client(app).get("/api/links").text == "listed"


def _plain_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"plain"]


async def _plain_asgi(scope: Any, receive: Any, send: Any) -> None:
    pass


def test_a_driver_or_another_callable_given_to_the_test_client_says_what_to_give(
    make_client: MakeClient,
) -> None:
    # NOTE: TestClient(app.as_asgi()), as Starlette's client takes an ASGI app, failed only at
    # the first request, with "'ASGIDriver' object has no attribute 'as_wsgi'".
    app = App()
    app.get("/links")(_endpoint)
    wsgi_driver = app.as_wsgi()
    for driver in (wsgi_driver, app.as_asgi()):
        with pytest.raises(TypeError) as raised:
            make_client(driver)  # type: ignore[arg-type]
        made = "as_wsgi()" if "WSGI" in type(driver).__name__ else "as_asgi()"
        assert str(raised.value) == (
            f"TestClient takes an App, not what its {made} made: give the app itself, "
            "TestClient(app), which drives as_wsgi() and as_asgi() as the interface says"
        )
    wsgi_driver.close()
    for other, kind in ((_plain_wsgi, "function"), (_plain_asgi, "function"), (None, "NoneType")):
        with pytest.raises(TypeError) as raised:
            make_client(other)  # type: ignore[arg-type]
        assert str(raised.value) == (
            f"TestClient takes a microweb App, not {kind}: it drives the app's own as_wsgi() "
            "and as_asgi(); another WSGI or ASGI callable is for httpx's own transports"
        )
    assert make_client(app).get("/links").text == "listed"


def _shown(request: Request, item_id: int) -> str:
    return f"item {item_id}"


def _registered() -> tuple[App, list[Route]]:
    """An app whose routes carry every field: config (nested), limits, skip, a router's."""
    app = App()
    api = Router(prefix="/api", skip=["db"], config={"audit": True})
    api.get(
        "/items/{item_id:int}",
        name="item",
        config={"db": False, "tags": ["a"]},
        limits=Limits(max_body_size=10),
    )(_shown)
    app.include(api)
    app.get("/plain/{item_id:int}")(_shown)
    return app, sorted(app.routes, key=lambda route: route.template)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_route_is_copied_and_pickled_with_its_config(how: str) -> None:
    # NOTE: both raised "cannot pickle 'mappingproxy' object" on the read-only config, where
    # a plugin that keeps routes (a cache, a process pool's task) copies them.
    _, routes = _registered()
    for route in routes:
        copied = copy.deepcopy(route) if how == "deepcopy" else pickle.loads(pickle.dumps(route))
        assert copied == route and copied is not route
        assert (copied.handler, copied.param_names, copied.skip) == (
            _shown,
            ("item_id",),
            route.skip,
        )
        assert (copied.limits, copied.segments, copied.added_by) == (
            route.limits,
            route.segments,
            route.added_by,
        )
        assert dict(copied.config) == dict(route.config)
        with pytest.raises(TypeError):
            copied.config["db"] = True  # type: ignore[index]
    [item, plain] = [pickle.loads(pickle.dumps(route)) for route in routes]
    assert dict(item.config) == {"audit": True, "db": False, "tags": ["a"]}
    assert item.skip == ("db",) and plain.config == {}
    deep = copy.deepcopy(routes[0])
    assert deep.config["tags"] == ["a"] and deep.config["tags"] is not routes[0].config["tags"]
    assert copy.copy(routes[0]) == routes[0]


@dataclasses.dataclass(frozen=True, slots=True)
class _TaggedRoute(Route):
    """A plugin's route subclass, with a field that ``__init__`` does not take."""

    tag: str = dataclasses.field(default="", init=False)


class _NotedRoute(Route):
    """A route subclass that is no dataclass: it has a ``__dict__`` of its own."""


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_a_route_subclass_is_copied_with_its_own_fields(how: str) -> None:
    # NOTE: the copy was made by calling the class with every field: "__init__() got an
    # unexpected keyword argument 'tag'" for an init=False field, and an attribute of a
    # subclass's __dict__ was lost.
    made: dict[str, Route] = {
        "tagged": _TaggedRoute("/t", frozenset({"GET"}), _shown, "t", False, config={"db": 1}),
        "noted": _NotedRoute("/n", frozenset({"GET"}), _shown, "n", False),
    }
    object.__setattr__(made["tagged"], "tag", "kept")
    made["noted"].__dict__["note"] = "kept"
    for route in made.values():
        if how == "copy":
            copied = copy.copy(route)
        elif how == "deepcopy":
            copied = copy.deepcopy(route)
        else:
            copied = pickle.loads(pickle.dumps(route))
        assert type(copied) is type(route) and copied == route and copied is not route
        assert copied.template == route.template and dict(copied.config) == dict(route.config)
    assert _copied_attr(made["tagged"], how, "tag") == "kept"
    assert _copied_attr(made["noted"], how, "note") == "kept"


def _copied_attr(route: Route, how: str, name: str) -> Any:
    """Return the attribute ``name`` of ``route`` copied as ``how`` says."""
    if how == "copy":
        return getattr(copy.copy(route), name)
    if how == "deepcopy":
        return getattr(copy.deepcopy(route), name)
    return getattr(pickle.loads(pickle.dumps(route)), name)


class _View:
    """A view object holding what cannot be copied, whose method is a handler."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def show(self, request: Request) -> str:
        return "shown"

    def __call__(self, request: Request) -> str:
        return "called"


def _with_extra(request: Request, extra: list[int]) -> str:
    return str(extra)


def test_a_deep_copied_route_shares_a_handler_that_is_no_function() -> None:
    # NOTE: a deep copy copied a bound method's object ("cannot pickle '_thread.lock'"), a
    # callable object or a partial: the copy's handler was another, the copy unequal.
    view = _View()
    app = App()
    app.get("/method")(view.show)
    app.get("/object", name="object")(view)
    app.get("/partial", name="partial")(functools.partial(_with_extra, extra=[1]))
    for route in app.routes:
        copied = copy.deepcopy(route)
        assert copied.handler is route.handler and copied == route
    assert [copy.deepcopy(route) for route in app.routes] == app.routes


def _route_kept(request: Request) -> dict[str, Any]:
    """Answer with what a pickled copy of the request's route holds."""
    assert request.route is not None
    kept = pickle.loads(pickle.dumps(request.route))
    return {"template": kept.template, "config": dict(kept.config), "same": kept == request.route}


def test_a_copied_route_serves_as_the_original(make_client: MakeClient) -> None:
    _, [item, _] = _registered()
    app = App()
    app.get(item.template, name="copied")(copy.deepcopy(item).handler)
    app.get("/route", config={"db": False})(_route_kept)
    client = make_client(app)
    assert client.get("/api/items/7").text == "item 7"
    assert client.get("/route").json() == {
        "template": "/route",
        "config": {"db": False},
        "same": True,
    }


def test_a_route_whose_handler_pickles_not_is_deep_copied_but_not_pickled() -> None:
    # NOTE: a lambda, or a function defined in another, is pickled by reference and cannot
    # be: pickle's own error names it. A deep copy shares functions, as Python's always does.
    app = App()
    app.get("/x")(lambda request: "x")
    [route] = app.routes
    assert copy.deepcopy(route).handler is route.handler
    with pytest.raises((pickle.PicklingError, AttributeError), match="lambda"):
        pickle.dumps(route)


def test_a_route_whose_config_copies_not_names_the_key() -> None:
    # NOTE: a deep copy said "cannot pickle '_thread.lock' object" alone, naming neither the
    # route nor the key (review424). pickle.dumps fails in pickle's own code, after
    # Route.__reduce__ returned, where no note can be added: Python 3.14 adds its own
    # ("when serializing dict item 'lock'").
    app = App()
    app.get("/items/{item_id:int}", config={"db": False, "lock": threading.Lock()})(_shown)
    [route] = app.routes
    with pytest.raises(TypeError, match=r"_thread\.lock") as raised:
        copy.deepcopy(route)
    notes = getattr(raised.value, "__notes__", [])
    if sys.version_info >= (3, 11):
        assert notes == [
            "deep-copying the route '/items/{item_id:int}': its config['lock'] could not be copied"
        ]
    else:
        assert notes == []
    with pytest.raises(TypeError, match=r"_thread\.lock"):
        pickle.dumps(route)


def test_routers_in_a_dict_or_a_set_given_to_include_say_to_include_each() -> None:
    # NOTE: app.include(routers.values()) read "include() takes a Router, not dict_values:
    # dict_values([<microweb.Router object at ...>])", where a list said to include each
    # (attack424).
    routers = {"a": Router(prefix="/a"), "b": Router(prefix="/b")}
    for given in (routers.values(), set(routers.values()), frozenset(routers.values())):
        for registry in (App(), Router()):
            with pytest.raises(TypeError) as raised:
                registry.include(given)  # type: ignore[arg-type]
            assert str(raised.value) == (
                f"include() takes one Router, not a {type(given).__name__} of 2: call "
                "include() once for each of them (for router in routers: app.include(router))"
            )


@pytest.mark.parametrize("kind", ["generator", "list_iterator", "map"])
def test_a_generator_given_to_include_says_to_include_each(kind: str) -> None:
    # NOTE: it read "include() takes a Router, not generator: <generator object ...>"; it is
    # not read (its routers would be used up) to say so (attack424).
    routers = [Router(prefix="/a"), Router(prefix="/b")]
    for registry in (App(), Router()):
        given = {
            "generator": (router for router in routers),
            "list_iterator": iter(routers),
            "map": map(lambda router: router, routers),
        }[kind]
        with pytest.raises(TypeError) as raised:
            registry.include(given)  # type: ignore[arg-type]
        assert str(raised.value) == (
            f"include() takes one Router, not a {kind}: call include() once for each "
            "router it gives (for router in routers: app.include(router))"
        )
        assert list(given) == routers
