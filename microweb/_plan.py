"""The plan: an app compiled for serving, and the per-request lookups made on it (sans-IO).

``App.compile()`` (called by ``as_wsgi()`` and ``as_asgi()``) builds one ``Plan``; the drivers
and the pipeline take it and never see the ``App``. Every decision that needs all registrations
is made there, once: plugins wrap each handler, each route's limits are resolved, and each
route gets its ``Endpoint``, which says how to call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._effects import Colored, Lifespan
from ._errors import HTTPError, refused, status_of
from ._limits import Limits
from ._route_table import Conversions, RouteTable
from ._routing import Route
from ._types import AppLike

if TYPE_CHECKING:
    from ._request import Request


@dataclass(frozen=True, slots=True)
class ErrorHandler:
    """An error handler and what it was registered for (a status or an exception class)."""

    key: int | type[Exception]
    target: Colored


ErrorHandlers = Mapping[int | type[Exception], ErrorHandler]


@dataclass(frozen=True, slots=True)
class RouterRules:
    """What a router adds to its routes: flows inside the app's, and error handlers.

    ``error_handlers`` are searched in order: the router's, then the app's.
    """

    flows: tuple[Colored, ...]
    error_handlers: tuple[ErrorHandlers, ...]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A route as served: its handler (wrapped by the plugins) and the way to call it.

    ``blocking`` is a ``def`` handler that may block: a plain call under WSGI, an offload to the
    pool under ASGI. ``inline`` is a ``def`` handler with ``offload=False``: a plain call under
    both, with blocking body reads refused. Neither: an ``async def`` handler, awaited, or a
    route whose router has flows (``rules``), which run around the handler's call.
    """

    route: Route
    target: Colored
    limits: Limits
    blocking: bool
    inline: bool
    rules: RouterRules | None = None


def endpoint(
    route: Route, target: Colored, limits: Limits, rules: RouterRules | None = None
) -> Endpoint:
    """Compile ``route`` with its wrapped handler (and its router's rules) into an ``Endpoint``."""
    direct = not target.is_async and (rules is None or not rules.flows)
    return Endpoint(
        route, target, limits, direct and target.offload, direct and not target.offload, rules
    )


class StartupSteps(list[Colored | Lifespan]):
    """An app's startup hooks and lifespans, in registration order, and how many of its
    callables (``as_wsgi()``, ``as_asgi()``) ran them and have not shut down since.

    While one of them serves, a step registered would never run in it: ``App`` refuses it.
    """

    serving: int = 0

    def stopped(self) -> None:
        """Count one callable fewer serving: it shut down, or was dropped without a shutdown."""
        self.serving = max(0, self.serving - 1)


@dataclass(frozen=True, slots=True)
class Plan:
    """An app compiled for serving: what the drivers and the pipeline need, and nothing else.

    ``app`` is what ``request.app`` returns; ``debug`` and ``max_threads`` are read from it
    where needed, so that settings changed before serving count. The lists and mappings are the
    app's own: something registered after startup (a route or a flow added by a startup hook)
    is served, as it was before plans existed.
    """

    app: AppLike
    http: RouteTable[Endpoint]
    websocket: RouteTable[Route]
    flows: list[Colored]
    error_handlers: ErrorHandlers
    startup_steps: StartupSteps
    shutdown_hooks: list[Colored]
    closers: tuple[Colored, ...]
    limits: Limits
    # NOTE: by id() of each route of a router with flows or error handlers; read on errors only.
    router_rules: dict[int, RouterRules] = field(default_factory=dict)
    # NOTE: the flows each plugin's setup() added, by the plugin's name: what a WebSocket
    # route's skip= leaves out of its handshakes.
    plugin_flows: Mapping[str, list[Colored]] = field(default_factory=dict)

    def shutdown_sequence(self, exits: list[Colored]) -> list[Colored]:
        """The shutdown hooks, then the ``exits`` of the lifespans entered (the last entered
        first), then the plugins' ``close()`` (the last installed first)."""
        return [*self.shutdown_hooks, *exits[::-1], *self.closers]

    def match(self, request: Request) -> Endpoint | list[str]:
        """Route ``request``: set its route, path parameters and limits.

        Returns:
            The endpoint, or for an ``OPTIONS`` request answered automatically, the methods
            of its ``Allow`` (those of every template that matches the path, with ``HEAD``
            and ``OPTIONS``; of every route for ``OPTIONS *``), sorted.

        Raises:
            HTTPError: 400 for a target that is not a path or not UTF-8, 404 or 405 (with
                ``Allow``).
        """
        found = self.route(request)
        if isinstance(found, HTTPError):
            raise found
        return found

    def route(self, request: Request) -> Endpoint | HTTPError | list[str]:
        """``match()``, with the ``HTTPError`` of a request no route takes returned, not raised.

        Raises:
            HTTPError: Only where a path converter raised one (its chosen answer).
        """
        if not request.path_is_valid:
            return HTTPError(400, _invalid_target(request))
        method = request.method
        # PERF: a route without parameters is found with two dict lookups here, with no call,
        # no tuple and no new params dict (the request's own empty one stays): a WSGI hello
        # 18,800 -> 17,300 instructions (valgrind, PYTHONHASHSEED=0, 2026-11-30).
        methods = self.http.static.get(request.path)
        hit = methods.get(method) if methods is not None else None
        if hit is not None:
            static: Endpoint = hit[1]
            request.route, request.limits = static.route, static.limits
            if request.path_params:
                # NOTE: an app flow wrote to it before routing: the route's own are none.
                request.path_params = {}
            return static
        # NOTE: what the search converted (None where the first way found the route) is kept
        # for the WebSocket routes' search that a 404 falls back to: it converted the segments
        # again, and a converter ran twice.
        # PERF: the search makes it, where it runs: an empty one was made here for every
        # template lookup in an app with a WebSocket route. plan.route in such an app
        # (2026-12-06): GET /users/{uid:int} 1.17 -> 1.09 us (timeit), 13,150 -> 12,760
        # instructions (callgrind); a HEAD of a GET template 12,330 -> 11,980; a 404 4.47 ->
        # 3.32 us, 42,500 -> 32,300 (see RouteTable.lookup()'s PERF).
        if method == "HEAD" and not self.http.template_heads:
            # NOTE: no template takes HEAD itself, so a GET answers it: one search, where the
            # templates were searched for HEAD in vain first, and a path converter ran three
            # times.
            found, params, allowed, converted = self.http.lookup_keeping("GET", request.path)
        else:
            # NOTE: one search, where a HEAD that no template took was searched again for GET.
            instead = "GET" if method == "HEAD" else None
            found, params, allowed, converted = self.http.lookup_templates(
                method, request.path, instead
            )
        if found is None:
            # PERF: an app with no WebSocket route is not searched for one: a second router
            # search, 0.9 us of each 404 (timeit, 2026-12-05).
            if self.websocket.size and request.path != "*":
                beside = self._plain_http_to_websocket(request, converted, allowed)
                if beside is not None:
                    return beside
            if not allowed:
                if request.path == "*":
                    # NOTE: OPTIONS * (the server as a whole) allows the methods of every route,
                    # a WebSocket route's GET too, as its path's Allow lists it.
                    every = {m for route in self.http for m in route.methods}
                    return _with_implied({*every, "GET"} if self.websocket.size else every)
                return refused(404)
            if method == "OPTIONS":
                # NOTE: the Allow of the answer, from this search: looked up again, a custom
                # converter ran four times for one OPTIONS.
                return _with_implied(allowed)
            return refused(405, {"allow": ", ".join(_with_implied(allowed))})
        request.route, request.path_params, request.limits = found.route, params, found.limits
        return found

    def _plain_http_to_websocket(
        self, request: Request, converted: Conversions | None, allowed: AbstractSet[str]
    ) -> HTTPError | list[str] | None:
        """Answer a plain HTTP request that no HTTP route takes (``allowed``: the methods of
        those that match its path) on a WebSocket route's path: a GET (or HEAD) needs the
        upgrade, another method is not allowed. ``None`` where no WebSocket route takes it."""
        if self.websocket.lookup("GET", request.path, converted)[0] is None:
            return None
        method = request.method
        # NOTE: the handshake's GET among the methods allowed there, which an HTTP route of
        # another method's 405 left out.
        methods = _with_implied({*allowed, "GET"})
        if method == "OPTIONS":
            return methods  # NOTE: the automatic answer, as for an HTTP route's path.
        if method not in ("GET", "HEAD"):
            # NOTE: it was the 426 (the 501 under WSGI) of a GET without the upgrade: a
            # handshake is a GET, so a POST there is a 405, as Flask answers, under both.
            return refused(405, {"allow": ", ".join(methods)})
        if request.interface == "wsgi":
            return HTTPError(
                501, "this is a WebSocket endpoint: WebSockets need the ASGI entrypoint (as_asgi())"
            )
        return HTTPError(426, "this is a WebSocket endpoint", {"upgrade": "websocket"})

    def match_websocket(self, request: Request) -> Route | Exception | None:
        """Route a WebSocket handshake; set the path parameters. ``None``: no such endpoint;
        an exception, for the error handlers to answer: the 400 of a path that is not one, or
        what a converter raised, other than ``ValueError`` (an ``HTTPError`` it chose, or its
        bug)."""
        if not request.path_is_valid:
            # NOTE: refused as no endpoint, with a close's 403, where an HTTP request gets this
            # 400. SPEC: RFC 6455 4.2.1, a handshake the server cannot read gets a 400.
            return HTTPError(400, _invalid_target(request))
        try:
            route, params, _ = self.websocket.lookup("GET", request.path)
        except Exception as exc:
            # NOTE: a bug in a custom converter went out of the ASGI callable to the server,
            # unlogged here, where an HTTP route's gives a logged 500 (review167). It is
            # answered as a handler's error before accept() is.
            return exc
        if route is not None:
            request.route, request.path_params = route, params
            # NOTE: App._add_route resolved every route's limits to a Limits.
            request.limits = route.limits  # type: ignore[assignment]
        return route

    def error_handler_of(self, exc: BaseException, route: Route | None) -> ErrorHandler | None:
        """Find the error handler for ``exc``: by class, its status coming before ``HTTPError``.

        For a request routed to ``route``, its router's handlers are searched before the app's.
        """
        rules = (
            self.router_rules.get(id(route)) if route is not None and self.router_rules else None
        )
        if rules is None:
            return _search(self.error_handlers, exc)
        for handlers in rules.error_handlers:
            found = _search(handlers, exc)
            if found is not None:
                return found
        return None


def _search(handlers: ErrorHandlers, exc: BaseException) -> ErrorHandler | None:
    # NOTE: an HTTPError's status is looked up where HTTPError comes in its classes: after a
    # subclass of it, before HTTPError and Exception. As in Flask and Starlette, a handler for
    # any exception (a 500 page that logs) does not take the place of a 404 page.
    http = isinstance(exc, HTTPError)
    status = status_of(exc) if isinstance(exc, HTTPError) else 500
    for cls in type(exc).__mro__:
        if cls is HTTPError and status is not None:
            found = handlers.get(status)
            if found is not None:
                return found
        found = handlers.get(cls)
        if found is not None:
            return found
    return None if http else handlers.get(500)


def _invalid_target(request: Request) -> str:
    if request.raw_path[:1] == b"/":
        return "request path is not valid UTF-8"
    return "request target is not a path: it must start with '/' ('*' only for OPTIONS)"


def _with_implied(methods: AbstractSet[str]) -> list[str]:
    implied = set(methods) | {"OPTIONS"}
    if "GET" in implied:
        implied.add("HEAD")
    return sorted(implied)
