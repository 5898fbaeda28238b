"""Falcon (WSGI and ASGI) and Starlette apps for every cell of ``cell_apps.CELLS``.

Each handler does what the microweb handler does, in the framework's own idiom: Falcon's
``req.get_param``/``req.get_media()``/``resp.media``, Starlette's ``query_params``,
``await request.json()`` and ``JSONResponse``. For the upload, Falcon's multipart media handler
streams the parts (the file part's stream is read to the end in 64 KiB chunks, nothing is kept),
and Starlette's ``await request.form()`` spools the file to a temporary file past 1 MiB, as
microweb's ``form()`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench_apps import HELLO, TEXT_TYPE
from cell_apps import QUERY_NAMES, READ_CHUNK, ROUTE_COUNT, route_answer

# -- Falcon, WSGI -----------------------------------------------------------------------------


class _Hello:
    def on_get(self, req: Any, resp: Any) -> None:
        resp.content_type = TEXT_TYPE
        resp.text = HELLO


class _JSON:
    def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"message": HELLO}


class _Query:
    def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {name: req.get_param(name) for name in QUERY_NAMES}


class _Echo:
    def on_post(self, req: Any, resp: Any) -> None:
        resp.media = req.get_media()


class _Upload:
    def on_post(self, req: Any, resp: Any) -> None:
        note, size = None, 0
        for part in req.get_media():
            if part.filename is None:
                note = part.get_text()
                continue
            while chunk := part.stream.read(READ_CHUNK):
                size += len(chunk)
        resp.media = {"note": note, "size": size}


class _Route:
    def __init__(self, index: int) -> None:
        self.index = index

    def on_get(self, req: Any, resp: Any, id: int) -> None:
        resp.content_type = TEXT_TYPE
        resp.text = route_answer(self.index, id)


def falcon_main() -> Any:
    """Return a ``falcon.App`` (WSGI) serving the main cells."""
    import falcon

    return _falcon_main(falcon.App(), (_Hello, _JSON, _Query, _Echo, _Upload))


def falcon_routes() -> Any:
    """Return a ``falcon.App`` with the 1,000 dynamic routes."""
    import falcon

    return _falcon_routes(falcon.App(), _Route)


def _falcon_main(app: Any, resources: tuple[type, ...]) -> Any:
    for path, resource in zip(("/", "/json", "/query", "/echo", "/upload"), resources, strict=True):
        app.add_route(path, resource())
    return app


def _falcon_routes(app: Any, resource: Callable[[int], Any]) -> Any:
    for index in range(ROUTE_COUNT):
        app.add_route(f"/r{index}/items/{{id:int}}", resource(index))
    return app


# -- Falcon, ASGI -----------------------------------------------------------------------------


class _AHello:
    async def on_get(self, req: Any, resp: Any) -> None:
        resp.content_type = TEXT_TYPE
        resp.text = HELLO


class _AJSON:
    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"message": HELLO}


class _AQuery:
    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {name: req.get_param(name) for name in QUERY_NAMES}


class _AEcho:
    async def on_post(self, req: Any, resp: Any) -> None:
        resp.media = await req.get_media()


class _AUpload:
    async def on_post(self, req: Any, resp: Any) -> None:
        note, size = None, 0
        async for part in await req.get_media():
            if part.filename is None:
                note = await part.get_text()
                continue
            async for chunk in part.stream:
                size += len(chunk)
        resp.media = {"note": note, "size": size}


class _ARoute:
    def __init__(self, index: int) -> None:
        self.index = index

    async def on_get(self, req: Any, resp: Any, id: int) -> None:
        resp.content_type = TEXT_TYPE
        resp.text = route_answer(self.index, id)


def falcon_asgi_main() -> Any:
    """Return a ``falcon.asgi.App`` serving the main cells."""
    import falcon.asgi

    return _falcon_main(falcon.asgi.App(), (_AHello, _AJSON, _AQuery, _AEcho, _AUpload))


def falcon_asgi_routes() -> Any:
    """Return a ``falcon.asgi.App`` with the 1,000 dynamic routes."""
    import falcon.asgi

    return _falcon_routes(falcon.asgi.App(), _ARoute)


# -- Starlette --------------------------------------------------------------------------------


def starlette_main() -> Any:
    """Return a ``Starlette`` app serving the main cells."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> Any:
        return PlainTextResponse(HELLO)

    async def json_(request: Any) -> Any:
        return JSONResponse({"message": HELLO})

    async def query(request: Any) -> Any:
        params = request.query_params
        return JSONResponse({name: params[name] for name in QUERY_NAMES})

    async def echo(request: Any) -> Any:
        return JSONResponse(await request.json())

    async def upload(request: Any) -> Any:
        async with request.form() as form:
            return JSONResponse({"note": form["note"], "size": form["file"].size})

    return Starlette(
        routes=[
            Route("/", hello),
            Route("/json", json_),
            Route("/query", query),
            Route("/echo", echo, methods=["POST"]),
            Route("/upload", upload, methods=["POST"]),
        ]
    )


def starlette_routes() -> Any:
    """Return a ``Starlette`` app with the 1,000 dynamic routes (matched by a linear scan)."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    def endpoint(index: int) -> Callable[[Any], Any]:
        async def route(request: Any) -> Any:
            return PlainTextResponse(route_answer(index, request.path_params["id"]))

        return route

    return Starlette(
        routes=[Route(f"/r{i}/items/{{id:int}}", endpoint(i)) for i in range(ROUTE_COUNT)]
    )
