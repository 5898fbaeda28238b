"""What other frameworks call an App's and a Router's own methods.

Flask's ``@app.before_request``, Starlette's ``app.add_middleware``, Falcon's ``app.add_route``:
each such name, read on an ``App`` or a ``Router`` that was given no attribute of that name,
raises ``AttributeError`` saying what to write here, where Python's own message named only the
missing name. They are descriptors on the classes (``OtherName``), so a name that is found costs
nothing more; an instance may be given one, its own attribute (``app.config = {...}``).
"""

from __future__ import annotations

from ._errors import OtherName, refuse_other_spellings

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
