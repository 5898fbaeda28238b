"""Build the same three endpoints in microweb and in each peer framework.

Every app answers:

- ``GET /``: the text ``Hello, World!`` as ``text/plain; charset=utf-8``;
- ``GET /json``: the JSON object ``{"message": "Hello, World!"}``;
- ``GET /users/{user_id:int}``: the JSON object ``{"user_id": <int>}``.

The zero-argument factories at the bottom (``microweb_wsgi``, ``falcon_asgi``, ...) are the entry
points that ``wrk.sh`` hands to ``waitress-serve --call`` and ``uvicorn --factory``.
"""

from __future__ import annotations

from typing import Any

HELLO = "Hello, World!"
MESSAGE = {"message": HELLO}
TEXT_TYPE = "text/plain; charset=utf-8"

#: Scenario name -> (path to request, expected decoded body).
SCENARIOS: dict[str, tuple[str, Any]] = {
    "hello": ("/", HELLO),
    "json": ("/json", MESSAGE),
    "param": ("/users/42", {"user_id": 42}),
}


# -- microweb ---------------------------------------------------------------------------------


def microweb_app(colour: str = "sync", offload: bool = True) -> Any:
    """Return a microweb ``App`` whose handlers are all ``def`` or all ``async def``.

    Args:
        colour: ``"sync"`` for ``def`` handlers, ``"async"`` for ``async def`` handlers.
        offload: passed to each route; only matters for ``def`` handlers under ASGI.
    """
    from microweb import App

    app = App()
    if colour == "sync":

        @app.get("/", offload=offload)
        def hello(request: Any) -> str:
            return HELLO

        @app.get("/json", offload=offload)
        def json_(request: Any) -> dict[str, Any]:
            return {"message": HELLO}

        @app.get("/users/{user_id:int}", offload=offload)
        def user(request: Any, user_id: int) -> dict[str, Any]:
            return {"user_id": user_id}

    elif colour == "async":

        @app.get("/", offload=offload)
        async def ahello(request: Any) -> str:
            return HELLO

        @app.get("/json", offload=offload)
        async def ajson_(request: Any) -> dict[str, Any]:
            return {"message": HELLO}

        @app.get("/users/{user_id:int}", offload=offload)
        async def auser(request: Any, user_id: int) -> dict[str, Any]:
            return {"user_id": user_id}

    else:
        raise ValueError(f"colour must be 'sync' or 'async', not {colour!r}")
    return app


# -- Falcon -----------------------------------------------------------------------------------


class _FalconHello:
    def on_get(self, req: Any, resp: Any) -> None:
        resp.content_type = TEXT_TYPE
        resp.text = HELLO


class _FalconJSON:
    def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"message": HELLO}


class _FalconUser:
    def on_get(self, req: Any, resp: Any, user_id: int) -> None:
        resp.media = {"user_id": user_id}


class _FalconHelloAsync:
    async def on_get(self, req: Any, resp: Any) -> None:
        resp.content_type = TEXT_TYPE
        resp.text = HELLO


class _FalconJSONAsync:
    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"message": HELLO}


class _FalconUserAsync:
    async def on_get(self, req: Any, resp: Any, user_id: int) -> None:
        resp.media = {"user_id": user_id}


def falcon_wsgi_app() -> Any:
    """Return a ``falcon.App`` (WSGI) serving the three endpoints."""
    import falcon

    app = falcon.App()
    app.add_route("/", _FalconHello())
    app.add_route("/json", _FalconJSON())
    app.add_route("/users/{user_id:int}", _FalconUser())
    return app


def falcon_asgi_app() -> Any:
    """Return a ``falcon.asgi.App`` serving the three endpoints."""
    import falcon.asgi

    app = falcon.asgi.App()
    app.add_route("/", _FalconHelloAsync())
    app.add_route("/json", _FalconJSONAsync())
    app.add_route("/users/{user_id:int}", _FalconUserAsync())
    return app


# -- Bottle -----------------------------------------------------------------------------------


def bottle_app() -> Any:
    """Return a ``bottle.Bottle`` serving the three endpoints."""
    import bottle

    app = bottle.Bottle()

    @app.get("/")
    def hello() -> str:
        bottle.response.content_type = TEXT_TYPE
        return HELLO

    @app.get("/json")
    def json_() -> dict[str, Any]:
        return {"message": HELLO}

    @app.get("/users/<user_id:int>")
    def user(user_id: int) -> dict[str, Any]:
        return {"user_id": user_id}

    return app


# -- Starlette --------------------------------------------------------------------------------


def starlette_app() -> Any:
    """Return a ``starlette.applications.Starlette`` serving the three endpoints."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> Any:
        return PlainTextResponse(HELLO)

    async def json_(request: Any) -> Any:
        return JSONResponse({"message": HELLO})

    async def user(request: Any) -> Any:
        return JSONResponse({"user_id": request.path_params["user_id"]})

    return Starlette(
        routes=[
            Route("/", hello),
            Route("/json", json_),
            Route("/users/{user_id:int}", user),
        ]
    )


# -- Server entry points (zero-argument factories) --------------------------------------------


def microweb_wsgi() -> Any:
    """Return the WSGI callable of the microweb app with ``def`` handlers."""
    return microweb_app("sync").as_wsgi()


def microweb_asgi() -> Any:
    """Return the ASGI callable of the microweb app with ``async def`` handlers."""
    return microweb_app("async").as_asgi()


def falcon_wsgi() -> Any:
    """Return the Falcon WSGI app."""
    return falcon_wsgi_app()


def falcon_asgi() -> Any:
    """Return the Falcon ASGI app."""
    return falcon_asgi_app()


def bottle_wsgi() -> Any:
    """Return the Bottle app (a WSGI callable)."""
    return bottle_app()


def starlette_asgi() -> Any:
    """Return the Starlette app (an ASGI callable)."""
    return starlette_app()


# -- The raw floors and the 1,000-route apps, for wrk.sh (cell_apps.py, cell_peers.py) --------


def raw_wsgi() -> Any:
    """Return the raw WSGI callable of ``cells.py`` (``GET /`` and ``GET /json``)."""
    import cell_apps

    return cell_apps.raw_wsgi


def raw_asgi() -> Any:
    """Return the raw ASGI callable of ``cells.py`` (``GET /`` and ``GET /json``)."""
    import cell_apps

    return cell_apps.raw_asgi


def raw_wsgi_routes() -> Any:
    """Return the raw WSGI callable of the route cells (``/r{i}/items/{id}``)."""
    import cell_apps

    return cell_apps.raw_wsgi_routes


def raw_asgi_routes() -> Any:
    """Return the raw ASGI callable of the route cells."""
    import cell_apps

    return cell_apps.raw_asgi_routes


def microweb_wsgi_routes() -> Any:
    """Return microweb's 1,000-route app with ``def`` handlers, under WSGI."""
    import cell_apps

    return cell_apps.microweb_routes("sync").as_wsgi()


def microweb_asgi_routes() -> Any:
    """Return microweb's 1,000-route app with ``async def`` handlers, under ASGI."""
    import cell_apps

    return cell_apps.microweb_routes("async").as_asgi()


def falcon_wsgi_routes() -> Any:
    """Return Falcon's 1,000-route WSGI app."""
    import cell_peers

    return cell_peers.falcon_routes()


def falcon_asgi_routes() -> Any:
    """Return Falcon's 1,000-route ASGI app."""
    import cell_peers

    return cell_peers.falcon_asgi_routes()


def starlette_asgi_routes() -> Any:
    """Return Starlette's 1,000-route app."""
    import cell_peers

    return cell_peers.starlette_routes()


# -- 200 slow requests (slow_requests.py) -----------------------------------------------------

SLOW_SECONDS = 0.5


def slow_wsgi() -> Any:
    """Return a WSGI app whose ``GET /slow`` is a ``def`` handler sleeping half a second."""
    import time

    from microweb import App

    app = App()

    @app.get("/slow")
    def slow(request: Any) -> str:
        time.sleep(SLOW_SECONDS)
        return "slept"

    return app.as_wsgi()


def slow_asgi() -> Any:
    """Return an ASGI app whose ``GET /slow`` is an ``async def`` handler sleeping half a second."""
    import asyncio

    from microweb import App

    app = App()

    @app.get("/slow")
    async def slow(request: Any) -> str:
        await asyncio.sleep(SLOW_SECONDS)
        return "slept"

    return app.as_asgi()
