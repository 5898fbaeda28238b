"""What other frameworks call an App's and a Router's own methods.

Flask's ``@app.before_request``, Starlette's ``app.add_middleware``, Falcon's ``app.add_route``:
each such name, read on an ``App`` or a ``Router`` that was given no attribute of that name,
raises ``AttributeError`` saying what to write here, where Python's own message named only the
missing name. They are descriptors on the classes (``OtherName``), so a name that is found costs
nothing more; an instance may be given one, its own attribute (``app.config = {...}``).

And what they call what a port imports from ``microweb`` (Flask's ``abort``, Starlette's
``JSONResponse``, Falcon's ``HTTPNotFound``): ``module_getattr``, the package's
``__getattr__``, runs only for a name the package does not have, so the names it has cost
nothing more either.

And their arguments given to ``App()`` or ``Router()`` (Starlette's ``routes=``, Flask's
``__name__`` and ``url_prefix=``): the constructor's ``TypeError`` says what to write. Its
signature is kept, and a call that binds costs one call more (construction is no hot path).
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from dis import get_instructions, opmap
from types import FrameType, ModuleType
from typing import Any, NoReturn, cast

from ._errors import OtherName, refuse_other_spellings
from ._routing import Route

_FLOW = "a flow, @{0}.middleware (see Middleware)"

# NOTE: "{0}" is "app" or "router". Names an App and a Router both take.
_SHARED = {
    "before_request": f"{_FLOW}: its code before `response = yield` runs first",
    "after_request": f"{_FLOW}: its code after `response = yield` sees the response",
    "teardown_request": "a flow, @{0}.middleware, with try/finally around its yield",
    "errorhandler": "@{0}.error_handler(key), a status or an exception class",
    "register_error_handler": "{0}.error_handler(key)(handler)",
    "add_url_rule": "{0}.route(path, methods=[...])(handler)",
    "add_route": (
        "{0}.route(path, methods=[...])(handler), one function a route (a Falcon "
        "resource's on_get is a @{0}.get handler)"
    ),
}

_APP_ONLY = {
    "teardown_appcontext": "a flow, @app.middleware, with try/finally around its yield",
    "exception_handler": "@app.error_handler(key), a status or an exception class",
    "add_exception_handler": "app.error_handler(key)(handler)",
    "add_error_handler": "app.error_handler(key)(handler)",
    "add_middleware": (
        "a flow, @app.middleware, or a plugin, app.install(...) (CORS, GZip, Sessions, "
        "TrustedHosts: see Plugins)"
    ),
    "register_blueprint": "app.include(router), with the routes on a Router(prefix=...)",
    "mount": "app.include(router), with the routes on a Router(prefix=...)",
    "add_event_handler": "@app.on_startup or @app.on_shutdown",
    "on_event": "@app.on_startup or @app.on_shutdown",
    "run": (
        "microweb serve module:app on the command line, or hand app.as_wsgi() or "
        "app.as_asgi() to a server"
    ),
    "test_client": "microweb.testing.TestClient(app)",
    "config": "app.state for what the app shares, or module-level settings",
    "url_path_for": "app.url_for(name, **params), or request.url_for in a handler",
}

_ROUTER_ONLY = {
    "register_blueprint": "router.include(other), a Router with a prefix of its own",
}


def add_other_names(cls: type, variable: str) -> None:
    """Put on ``cls`` a refusal for each other framework's name of its methods.

    Args:
        cls: ``App`` or ``Router``.
        variable: What its examples call an instance, ``"app"`` or ``"router"``.
    """
    names = {**_SHARED, **(_APP_ONLY if variable == "app" else _ROUTER_ONLY)}
    advice = {name: text.format(variable) for name, text in names.items()}
    refuse_other_spellings(cls, advice, OtherName)
    # NOTE: the __init__ of the class body is what mypy and the API reference read, and
    # inspect.signature() (by __wrapped__).
    cls.__init__ = _refusing_other_arguments(cls.__init__, variable)  # type: ignore[misc]


_THEIRS = "Starlette's and FastAPI's"

# NOTE: another framework's keyword given to App() or Router(): whose it is, and what to
# write ("{value}" is the value given, shown when it is a str).
_KEYWORDS = {
    "app": {
        "routes": (
            _THEIRS,
            "App(), then app.route(path, methods=[...])(endpoint) for each route, or put them "
            "on a Router(prefix=...) and app.include(router)",
        ),
        "middleware": (
            _THEIRS,
            "App(), then a flow, @app.middleware, or a plugin, app.install(...) (CORS, GZip, "
            "Sessions, TrustedHosts: see Plugins)",
        ),
        "exception_handlers": (_THEIRS, "App(), then app.error_handler(key)(handler) for each"),
        "on_startup": (_THEIRS, "App(), then app.on_startup(hook) for each"),
        "on_shutdown": (_THEIRS, "App(), then app.on_shutdown(hook) for each"),
        "lifespan": (_THEIRS, "App(), then app.lifespan(lifespan)"),
        # NOTE: Flask's folders are found beside the app's module; microweb's from the
        # current directory.
        "static_folder": (
            "Flask's",
            "App(), then app.install(Static({value})), Static from microweb.plugins (a "
            "relative folder is found from the current directory)",
        ),
        "template_folder": (
            "Flask's",
            "App(), and templates = Templates({value}), Templates from microweb.templating, "
            "then templates.render(request, name, context) (a relative folder is found from "
            "the current directory)",
        ),
    },
    "router": {
        "routes": (
            _THEIRS,
            "Router(prefix=...), then router.route(path, methods=[...])(endpoint) for each route",
        ),
        "url_prefix": ("Flask's Blueprint's", "Router(prefix={value})"),
    },
}

# NOTE: the strings a Flask port passes first: Flask(__name__), Blueprint("api", __name__).
# How many, whose call it was, and what to write.
_POSITIONAL = {
    "app": (1, "Flask's Flask(__name__)", "App(), which takes no import name"),
    "router": (
        2,
        "Flask's Blueprint(name, import_name)",
        "Router(prefix=...), which takes no name",
    ),
}

_UNEXPECTED_KEYWORD = re.compile(r"unexpected keyword argument '(\w+)'")


def _refusing_other_arguments(init: Callable[..., None], variable: str) -> Callable[..., None]:
    """Wrap a constructor, ``init``, so that another framework's arguments say what to write,
    where Python's message named the keyword alone, or counted the arguments."""

    @functools.wraps(init)
    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except TypeError as exc:
            advice = _arguments_advice(exc, args, kwargs, variable)
            if advice is None:
                raise
            raise TypeError(f"{exc} {advice}") from None

    return __init__


def _arguments_advice(
    exc: TypeError, args: tuple[Any, ...], kwargs: dict[str, Any], variable: str
) -> str | None:
    """Say what to write for the arguments ``args`` and ``kwargs`` that the call of an
    ``App``'s or a ``Router``'s (``variable``) constructor refused, raising ``exc``, when they
    are another framework's; else ``None``."""
    # NOTE: the call itself refused them when no frame of the constructor's is in the
    # traceback: a TypeError raised inside (a check of its arguments) is left as it is.
    if exc.__traceback__ is None or exc.__traceback__.tb_next is not None:
        return None
    message = str(exc)
    found = _UNEXPECTED_KEYWORD.search(message)
    keywords = _KEYWORDS[variable]
    if found is not None and found[1] in keywords and found[1] in kwargs:
        whose, written = keywords[found[1]]
        value = kwargs[found[1]]
        shown = str.__repr__(value) if isinstance(value, str) else "..."
        return f"({whose} keyword): write {written.format(value=shown)}"
    count, whose, written = _POSITIONAL[variable]
    strings = len(args) >= count and all(isinstance(arg, str) for arg in args[:count])
    if found is None and "positional argument" in message and strings:
        return f"({whose}): write {written}"
    return None


# NOTE: what a Starlette or FastAPI port hands include(): its routes list, or one of its
# items, its router or its app.
_ROUTES = (
    "add each route with app.route(path, methods=[...])(endpoint), or put them on a "
    "Router(prefix=...) and include that"
)
_WEBSOCKET_ROUTES = "add each one with app.websocket(path)(endpoint)"
_ROUTERS = "add its routes to a Router(prefix=...) of microweb's and include that"
_STARLETTE_ROUTING = {
    "Route": _ROUTES,
    "Mount": "put its routes on a Router(prefix=...) and include that",
    "WebSocketRoute": _WEBSOCKET_ROUTES,
    # NOTE: Starlette's Router read "include() takes a Router, not Router: <...>".
    "Router": _ROUTERS,
    "APIRoute": _ROUTES,
    "APIWebSocketRoute": _WEBSOCKET_ROUTES,
    "APIRouter": _ROUTERS,
}
_APPS = {"Starlette": "a Starlette app", "FastAPI": "a FastAPI app"}


def listed_first(given: object) -> tuple[int, object] | None:
    """The length and first item of ``given``, a non-empty list, tuple, set or dict view;
    else ``None``.

    Args:
        given: What ``include()`` was given in place of a ``Router``.
    """
    # NOTE: a subclass's list too (routes kept in one of the app's), read by list's own
    # methods: its __len__ and __getitem__ are the app's code.
    if issubclass(type(given), list):
        listed = cast("list[object]", given)
        count = list.__len__(listed)
        return (count, list.__getitem__(listed, 0)) if count else None
    if issubclass(type(given), tuple):
        kept = cast("tuple[object, ...]", given)
        count = tuple.__len__(kept)
        return (count, tuple.__getitem__(kept, 0)) if count else None
    # NOTE: app.include(routers.values()) had no hint (attack424). A dict's view and a set
    # iterated by their own types' methods, which call none of the app's code.
    for kind in _UNORDERED:
        if issubclass(type(given), kind):
            count = kind.__len__(given)
            return (count, next(kind.__iter__(given))) if count else None
    return None


_UNORDERED: tuple[Any, ...] = (type({}.values()), type({}.keys()), set, frozenset)


def routing_advice(given: object) -> str:
    """Say what to write for ``given``, microweb's ``Route`` or Starlette's or FastAPI's routing
    object or app (or a list of them), that ``include()`` refused; else ``""``.

    Args:
        given: What ``include()`` was given in place of a ``Router``.
    """
    # NOTE: type() alone, no attribute of the app's objects read: this is an error path.
    counted = listed_first(given)
    cls = type(counted[1] if counted else given)
    if issubclass(cls, Route):
        return (
            "a Route (what a plugin's apply() reads, made by the app): add a route with "
            "app.route(path, methods=[...])(handler)"
        )
    package = str(cls.__module__).partition(".")[0]
    if package not in ("starlette", "fastapi"):
        return ""
    if cls.__name__ in _APPS:
        return f"{_APPS[cls.__name__]}: {_ROUTERS}"
    advice = _STARLETTE_ROUTING.get(cls.__name__)
    whose = "FastAPI's" if package == "fastapi" else "Starlette's"
    return f"{whose} {cls.__name__}: {advice}" if advice else ""


_FLASK, _STARLETTE, _FALCON = "Flask's", "Starlette's", "Falcon's"
_TEMPLATES = (
    "templates.render(request, name, context), with templates = Templates(folder) from "
    "microweb.templating"
)
_ROUTER = "Router(prefix=...), its routes added with app.include(router)"
_SESSIONS = "with the Sessions plugin (microweb.plugins)"

# NOTE: what `from microweb import name` or `microweb.name` means in a port: each value is
# (whose name it is, what to write here). Names microweb has itself (App, Request, Response,
# HTTPError, Router, Route, WebSocket, UploadFile) are found before any of these is looked at.
MODULE_NAMES: dict[str, tuple[str, str]] = {
    "Flask": (_FLASK, "App()"),
    "abort": (_FLASK, "raise HTTPError(status, detail)"),
    "jsonify": (_FLASK, "return the dict or list, or Response.json(value)"),
    "make_response": (_FLASK, "Response(body, status=..., headers=...), or Response.json(...)"),
    "redirect": (_FLASK, "return Response.redirect(url, status=302) (307 when no status is given)"),
    "url_for": (_FLASK, "request.url_for(name, **params), or app.url_for outside a request"),
    "render_template": (_FLASK, _TEMPLATES),
    "Blueprint": (_FLASK, _ROUTER),
    "g": (_FLASK, "request.state, a namespace of its own for each request"),
    "current_app": (_FLASK, "request.app"),
    "request": (
        _FLASK,
        "the request argument of each handler, flow and error handler: there is no global one",
    ),
    "session": (_FLASK, f"request.session, {_SESSIONS}"),
    "flash": (_FLASK, f"flash(request, message, category) from microweb.plugins, {_SESSIONS}"),
    "get_flashed_messages": (_FLASK, "get_flashed_messages(request) from microweb.plugins"),
    "send_file": (_FLASK, "return Response.file(path, filename=...)"),
    "send_from_directory": (
        _FLASK,
        "return Response.file(target), target = safe_join(folder, name) from "
        "microweb.plugins.static",
    ),
    "stream_with_context": (_FLASK, "return Response.stream(generator)"),
    "HTTPException": ("Starlette's and Flask's", "raise HTTPError(status, detail)"),
    "Starlette": (_STARLETTE, "App()"),
    "status": (
        _STARLETTE,
        "the status as an int (status=404), or an http.HTTPStatus member (HTTPStatus.NOT_FOUND)",
    ),
    "JSONResponse": (_STARLETTE, "Response.json(value, status=...), or return the dict or list"),
    "PlainTextResponse": (_STARLETTE, "Response.text(text, status=...), or return the str"),
    "HTMLResponse": (_STARLETTE, "Response.html(html, status=...)"),
    "RedirectResponse": (_STARLETTE, "Response.redirect(url, status=...)"),
    "StreamingResponse": (_STARLETTE, "Response.stream(iterable, media_type=...)"),
    "FileResponse": (_STARLETTE, "Response.file(path, filename=...)"),
    "Mount": (_STARLETTE, _ROUTER),
    "WebSocketRoute": (_STARLETTE, "@app.websocket(path) on an async def handler(ws)"),
    "BackgroundTask": (_STARLETTE, "request.after_response(fn, *args, **kwargs)"),
    "BackgroundTasks": (_STARLETTE, "request.after_response(fn, *args, **kwargs)"),
    "API": (_FALCON, "App()"),
    "HTTPBadRequest": (_FALCON, "raise HTTPError(400)"),
    "HTTPUnauthorized": (_FALCON, "raise HTTPError(401)"),
    "HTTPForbidden": (_FALCON, "raise HTTPError(403)"),
    "HTTPNotFound": (_FALCON, "raise HTTPError(404)"),
    "HTTPMethodNotAllowed": (_FALCON, "raise HTTPError(405, headers={'allow': ...})"),
    "HTTPNotAcceptable": (_FALCON, "raise HTTPError(406)"),
    "HTTPConflict": (_FALCON, "raise HTTPError(409)"),
    "HTTPGone": (_FALCON, "raise HTTPError(410)"),
    "HTTPPayloadTooLarge": (_FALCON, "raise HTTPError(413)"),
    "HTTPContentTooLarge": (_FALCON, "raise HTTPError(413)"),
    "HTTPUnsupportedMediaType": (_FALCON, "raise HTTPError(415)"),
    "HTTPUnprocessableEntity": (_FALCON, "raise HTTPError(422)"),
    "HTTPTooManyRequests": (_FALCON, "raise HTTPError(429)"),
    "HTTPInternalServerError": (_FALCON, "raise HTTPError(500)"),
    "HTTPServiceUnavailable": (_FALCON, "raise HTTPError(503)"),
    "HTTPMovedPermanently": (_FALCON, "return Response.redirect(url, status=301)"),
    "HTTPFound": (_FALCON, "return Response.redirect(url, status=302)"),
    "HTTPSeeOther": (_FALCON, "return Response.redirect(url, status=303)"),
    "HTTPTemporaryRedirect": (_FALCON, "return Response.redirect(url, status=307)"),
    "HTTPPermanentRedirect": (_FALCON, "return Response.redirect(url, status=308)"),
}

# NOTE: Falcon's status strings, falcon.HTTP_201 ("201 Created"), one name a status.
_FALCON_STATUS = re.compile(r"HTTP_([1-5][0-9][0-9])")


def refuse_module_name(module: ModuleType, name: str, importing: bool) -> NoReturn:
    """Raise what reading ``name`` on ``module`` (``microweb``) raises: for another
    framework's name, an error that says what to write; else Python's own ``AttributeError``.

    Args:
        module: The ``microweb`` module.
        name: The name looked up on it and not found.
        importing: Whether ``from microweb import name`` looked it up: ``ImportError`` then,
            as Python's ``import`` statement drops an ``AttributeError``'s message.
    """
    other = MODULE_NAMES.get(name)
    status = _FALCON_STATUS.fullmatch(name)
    if status is not None:
        other = (_FALCON, f"the int {status[1]}: status={status[1]}")
    if other is None:
        # NOTE: Python's own words; an import turns it into its own ImportError (with, on
        # 3.12 and later, its "Did you mean" of a near name).
        raise AttributeError(
            f"module {module.__name__!r} has no attribute {name!r}", name=name, obj=module
        )
    advice = f"({other[0]} name): write {other[1]}"
    if importing:
        raise ImportError(
            f"cannot import name {name!r} from {module.__name__!r} {advice}",
            name=module.__name__,
            path=module.__file__,
        )
    raise AttributeError(
        f"module {module.__name__!r} has no attribute {name!r} {advice}", name=name, obj=module
    )


_IMPORT_FROM, _EXTENDED_ARG = opmap["IMPORT_FROM"], opmap["EXTENDED_ARG"]


def module_getattr(name: str) -> NoReturn:
    """Refuse ``name`` on the ``microweb`` module, as its ``__getattr__`` (PEP 562), saying
    what to write when it is another framework's.

    Args:
        name: The name looked up and not found.
    """
    module = sys.modules["microweb"]
    try:
        caller = sys._getframe(1)
    except ValueError:
        # NOTE: no Python frame below this one: C code in a thread of its own looks it up,
        # and no import statement does.
        refuse_module_name(module, name, importing=False)
    try:
        importing = _imports_from(caller, module.__name__, name)
    finally:
        del caller
    refuse_module_name(module, name, importing)


def _imports_from(frame: FrameType, package: str, name: str) -> bool:
    """Whether ``frame`` is at the ``IMPORT_FROM`` of ``from package import name``.

    ``from microweb import name`` asks with that instruction and turns an ``AttributeError``
    into its own "cannot import name", whose message names no advice on any Python from 3.10
    to 3.13: an ``ImportError``, raised for it, goes through. Every other reader gets an
    ``AttributeError``, so ``hasattr()`` and ``getattr(..., default)`` work as before.
    """
    # NOTE: a submodule still being imported (a circular import) is in sys.modules before
    # it is its package's attribute: the import finds it there, after an AttributeError.
    if f"{package}.{name}" in sys.modules:
        return False
    raw = frame.f_code.co_code
    at = frame.f_lasti
    # NOTE: 3.10 leaves f_lasti on an EXTENDED_ARG prefix (a name's index past 255).
    while 0 <= at < len(raw) and raw[at] == _EXTENDED_ARG:
        at += 2
    if not 0 <= at < len(raw) or raw[at] != _IMPORT_FROM:
        return False
    # NOTE: C code with no frame of its own (a compiled module __getattr__, a partial) may
    # look the name up while this frame imports from another module: the instruction must
    # import this very name, and the import it belongs to be of this package.
    imported = None
    for instruction in get_instructions(frame.f_code):
        if instruction.offset >= at:
            return (
                instruction.offset == at
                and instruction.argval == name
                and isinstance(imported, str)
                and (imported == package or imported.startswith(f"{package}."))
            )
        if instruction.opname == "IMPORT_NAME":
            imported = instruction.argval
    return False
