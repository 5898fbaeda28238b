"""The application: registration, startup decisions and the two entrypoints."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

from ._app_registries import ConverterRegistry, HookRegistry
from ._checkpoint import Checkpoint
from ._effects import Colored
from ._errors import InterfaceWarning
from ._handler_checks import as_flow
from ._limits import Limits, resolve_limits
from ._other_names import add_other_names
from ._plan import Endpoint, ErrorHandler, Plan, RouterRules, StartupSteps, endpoint
from ._plugins import check_plugin, check_router_skips, check_skips, closers, wrap_handler
from ._route_clashes import RouteClash
from ._route_table import RouteTable
from ._route_templates import BUILTIN_CONVERTERS, Converter
from ._router import (
    Router,
    RouteRegistry,
    check_includable,
    compiled_marks_kept,
    error_registrar,
    included_again,
)
from ._routing import (
    Route,
    check_call,
    check_handler,
    check_name,
)
from ._url_paths import Query, build_path, build_query

if TYPE_CHECKING:
    from ._asgi import ASGIDriver
    from ._wsgi import WSGIDriver

F = TypeVar("F", bound=Callable[..., Any])
P = TypeVar("P")


class App(RouteRegistry, HookRegistry, ConverterRegistry):
    """A web application, served under WSGI with ``as_wsgi()`` or under ASGI with ``as_asgi()``.

    Args:
        debug: Put tracebacks in 500 responses. Never in production.
        limits: Bounds on request bodies and forms (see ``Limits``).
        max_threads: Threads of the pool that runs ``def`` handlers under ASGI.

    Raises:
        TypeError: If ``debug`` is not a ``bool`` (a setting's string, ``"0"`` say).
        ValueError: If ``max_threads`` is less than 1.
    """

    def __init__(
        self, *, debug: bool = False, limits: Limits | None = None, max_threads: int = 40
    ) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.debug = debug
        self.limits = limits or Limits()
        self.max_threads = max_threads
        self.state = SimpleNamespace()
        self.flows: list[Colored] = []
        # NOTE: how many flows at the front of self.flows are ProxyHeaders': they stay outside
        # flows registered later with outermost=True (_pin_outermost).
        self._pinned = 0
        # NOTE: hooks and lifespans in one list: they start in the order they were registered.
        self.startup_steps = StartupSteps()
        self.shutdown_hooks: list[Colored] = []
        self.plugins: list[Any] = []
        self._plan: Plan | None = None
        self._ws_warned = False
        self._converters: dict[str, Converter] = dict(BUILTIN_CONVERTERS)
        self._http: RouteTable[Route] = RouteTable(self._converters)
        self._ws: RouteTable[Route] = RouteTable(self._converters)
        # NOTE: in registration order, which decides between templates that match alike.
        self._http_routes: list[Route] = []
        self._ws_routes: list[Route] = []
        # NOTE: every route of each name, in registration order; url_for builds the first.
        self._names: dict[str, list[Route]] = {}
        # NOTE: by id() of each route of an included router: the routers whose flows and error
        # handlers apply to it, outermost first (read when the app is compiled).
        self._routers: dict[int, tuple[Router, ...]] = {}
        self._installing: str | None = None
        # NOTE: each router include() marked, with its mark before: a setup() that raised
        # takes the marks back (install).
        self._inclusions: list[tuple[Router, bool]] = []
        # NOTE: the flows each plugin's setup() registered, by the plugin's name.
        self._plugin_flows: dict[str, list[Colored]] = {}
        self._error_handlers: dict[int | type[Exception], ErrorHandler] = {}

    @property
    def debug(self) -> bool:
        """Whether a 500 response holds the error's traceback. Never in production.

        Raises:
            TypeError: When set to anything but a ``bool``.
        """
        return self._debug

    @debug.setter
    def debug(self, debug: bool) -> None:
        if not isinstance(debug, bool):
            # NOTE: App(debug=os.environ.get("DEBUG")) turned debug on for DEBUG=0 or false
            # (any non-empty string is true): every 500 then showed its traceback.
            raise TypeError(
                f"debug must be True or False, got {debug!r}: read a setting as a bool "
                '(debug=os.environ.get("DEBUG") == "1")'
            )
        self._debug = debug

    # -- registration --------------------------------------------------------------------------

    def _add_route(self, route: Route, routers: tuple[Router, ...] = ()) -> None:
        route = self._resolved(route)
        if self._plan is not None:
            # NOTE: before anything is registered.
            check_skips(route, self.plugins, self._plugin_flows)
            if route.kind == "websocket":
                # NOTE: as at startup; unchecked, each handshake logged its TypeError.
                check_call(route.handler, route, "ws")
        self._put(route, routers)

    def _resolved(self, route: Route) -> Route:
        """Return ``route`` as this app registers it: its limits resolved, its plugin named."""
        return dataclasses.replace(
            route, limits=resolve_limits(self.limits, route.limits), added_by=self._installing
        )

    def _put(
        self,
        route: Route,
        routers: tuple[Router, ...],
        served: Endpoint | None = None,
        *,
        reached: bool = False,
    ) -> None:
        """Register ``route`` (resolved and checked); once compiled, serve it with ``served``
        (made here when ``None``). ``reached``: ``_check_reached`` has checked it already."""
        with self._clash_advised():
            if self._plan is not None and not reached:
                # NOTE: compile() refused a route never reached, not one added after it: a
                # startup hook's took every request of a route that was serving them.
                (self._ws if route.kind == "websocket" else self._http).refuse_unreached_by(route)
            _register(route, self._http, self._ws, self._names)
        if routers:
            self._routers[id(route)] = routers
        if route.kind == "websocket":
            self._ws_routes.append(route)
            if self._plan is not None:
                self._router_rules(route, self._plan)
            return
        self._http_routes.append(route)
        if self._plan is not None:
            # NOTE: added after startup (by a startup hook, say): served from now on.
            try:
                if served is None:
                    served = self._endpoint(route, self._plan)
            except BaseException:
                # NOTE: refused as its call is checked (the handler takes no request): left
                # registered, no one served it (404), yet url_for built it and its template
                # and name were taken, "registered twice" for the route that fixed it.
                self._unregister(route)
                raise
            self._plan.http.add(route, served)

    def _unregister(self, route: Route) -> None:
        """Take back ``route``, the last HTTP route registered."""
        self._http_routes.pop()
        named = self._names[route.name]
        named.pop()
        if not named:
            del self._names[route.name]
        self._routers.pop(id(route), None)
        if self._plan is not None:
            self._plan.router_rules.pop(id(route), None)
        # NOTE: the HTTP table alone: the plan serves the app's WebSocket table itself.
        self._http = RouteTable(self._converters)
        for known in self._http_routes:
            self._http.add(known, known)

    @contextlib.contextmanager
    def _clash_advised(self) -> Iterator[None]:
        """Say, in a clash with a route a plugin added, which plugin, and its advice."""
        try:
            yield
        except RouteClash as clash:
            # NOTE: Static(prefix="") with its index took "/", and the app's home page was
            # refused with no word of index=None (builder143).
            notes = [self._plugin_note(route) for route in clash.routes if route.added_by]
            message = f"{clash}: {'; '.join(notes)}" if notes else str(clash)
            raise ValueError(message) from None

    def _plugin_note(self, route: Route) -> str:
        """Name the plugin that added ``route``; add what it advises, if it says."""
        named = (p for p in self.plugins if getattr(p, "name", None) == route.added_by)
        advice = getattr(next(named, None), "_clash_advice", None)
        note = f"{route.name!r} is the route of the plugin {route.added_by!r}"
        return f"{note}, {advice(route)}" if advice is not None else note

    def _endpoint(
        self, route: Route, plan: Plan, routers: tuple[Router, ...] | None = None
    ) -> Endpoint:
        # NOTE: App._add_route resolved the route's limits to a Limits.
        limits: Limits = route.limits  # type: ignore[assignment]
        rules = self._router_rules(route, plan, routers)
        return endpoint(route, wrap_handler(route, self.plugins), limits, rules)

    def _router_rules(
        self, route: Route, plan: Plan, routers: tuple[Router, ...] | None = None
    ) -> RouterRules | None:
        """Compile the flows and error handlers of ``route``'s routers (its registered ones
        unless given) into ``plan``."""
        if routers is None:
            routers = self._routers.get(id(route), ())
        if not routers:
            return None
        for router in routers:
            router._compiled = True
        # NOTE: outer routers' flows outside inner ones'; inner error handlers looked up
        # first, each router's own dict, so that one registered after this counts too.
        flows = tuple(flow for router in routers for flow in router.flows)
        handlers = [router.error_handlers for router in reversed(routers)]
        rules = RouterRules(flows, (*handlers, self._error_handlers))
        plan.router_rules[id(route)] = rules
        return rules

    def install(self, plugin: P) -> P:
        """Install a plugin: its ``setup(app)`` runs now, its ``apply`` at startup.

        All or nothing: if ``setup`` raises, what it added (routes, flows, hooks, lifespans,
        converters, error handlers, plugins it installed, ``app.state`` attributes, ``debug``,
        ``limits`` and ``max_threads``) is taken back, the plugin is not installed, and the
        error propagates.

        Raises:
            TypeError: If the plugin has no ``name``, is a class that needs an instance, or has
                a ``close`` that cannot be called without arguments.
            ValueError: If a plugin of that name is installed, or the app has started.
        """
        if self._plan is not None:
            raise ValueError("install plugins before calling as_wsgi() or as_asgi()")
        name = check_plugin(plugin, self.plugins)
        setup = getattr(plugin, "setup", None)
        if setup is None:
            self.plugins.append(plugin)
            return plugin
        # NOTE: all or nothing: a setup() that raised left its routes, flows, hooks, converters
        # and the plugin itself on the app, and installing it again was refused as a duplicate.
        checkpoint, included = Checkpoint(self, _REGISTRIES), len(self._inclusions)
        self.plugins.append(plugin)
        # NOTE: a setup() may install another plugin: what it adds after that is its own.
        outer, self._installing = self._installing, name
        try:
            setup(self)
        except BaseException:
            for router, mark in reversed(self._inclusions[included:]):
                router._included = mark
            checkpoint.restore()
            self._rebuild_tables()
            raise
        finally:
            self._installing = outer
        return plugin

    def _rebuild_tables(self) -> None:
        """Make the route tables anew from the routes registered, in their order."""
        self._http = RouteTable(self._converters)
        self._ws = RouteTable(self._converters)
        for route in (*self._http_routes, *self._ws_routes):
            (self._ws if route.kind == "websocket" else self._http).add(route, route)

    def compile(self) -> Plan:
        """Return the plan the drivers serve, compiled on the first call.

        Plugins wrap every handler here, and each route gets the way its handler is called;
        ``as_wsgi()`` and ``as_asgi()`` call it, so errors surface there, before any request.

        Raises:
            TypeError: If a plugin changes a handler's colour or returns no callable, or a
                handler (as the plugins wrapped it) cannot take the request (or WebSocket) and
                the path parameters.
            ValueError: If a route skips a plugin that is not installed, or a WebSocket route
                one that added no flow; if a route is never reached, for one of its methods,
                because one tried before it takes all its requests (``RouteClash``).
        """
        if self._plan is None:
            self._http.refuse_unreached()
            self._ws.refuse_unreached()
            plan = Plan(
                app=self,
                http=RouteTable(self._converters),
                websocket=self._ws,
                flows=self.flows,
                error_handlers=self._error_handlers,
                startup_steps=self.startup_steps,
                shutdown_hooks=self.shutdown_hooks,
                closers=tuple(closers(self.plugins)),
                limits=self.limits,
                plugin_flows=self._plugin_flows,
            )
            # NOTE: all or nothing: a route refused after others left their routers marked
            # compiled, and a flow registered on one before the compile that served was refused.
            with compiled_marks_kept(r for scopes in self._routers.values() for r in scopes):
                self._compile_routes(plan)
            self._plan = plan
        return self._plan

    def _compile_routes(self, plan: Plan) -> None:
        """Make the endpoints of the routes into ``plan`` and check them.

        Raises:
            TypeError, ValueError: As ``compile`` says.
        """
        for route in self._http_routes:
            plan.http.add(route, self._endpoint(route, plan))
        for route in self._ws:
            check_skips(route, self.plugins, self._plugin_flows)
            check_call(route.handler, route, "ws")
            self._router_rules(route, plan)
        scoped = [
            (route, self._routers.get(id(route), ())) for route in [*self._http_routes, *self._ws]
        ]
        check_router_skips(scoped, self.plugins, self._plugin_flows)

    def include(self, router: Router) -> None:
        """Add every route of ``router`` to this app, with the router's flows and error handlers.

        All or nothing: when it raises, none of the router's routes is added.

        Raises:
            ValueError: If a route, or another template of the same name, is registered here;
                or, once the app has started, if a route is never reached, or would take
                every request of one served (as ``compile`` refuses it).
            TypeError: If ``router`` is no ``Router`` (another ``App``, say, or the class
                ``Router`` itself); or, once the app has started, if a handler (as the
                plugins wrap it) cannot be called with the request and its path parameters.
        """
        check_includable(router)
        if any(included is router for included, _ in self._inclusions):
            raise included_again(router)
        self._check_all(router)
        if self._plan is None:
            for route in router.routes:
                self._add_route(route, router._scopes_of(route))
        else:
            for route, routers, served in self._served(router, self._plan):
                self._put(route, routers, served, reached=True)
        self._inclusions.append((router, router._included))
        router._included = True

    def _check_all(self, router: Router) -> None:
        """Raise as adding the routes of ``router`` one by one would, adding none of them.

        Raises:
            TypeError: If a handler cannot take its route's parameters.
            ValueError: If a route clashes with one registered or one before it in ``routes``.
        """
        # NOTE: all or nothing: each route is checked against the app's tables, and against
        # the ones before it on tables of their own, so a clash leaves the app as it was.
        # PERF: the app's routes are not registered again on copies of its tables, which is
        # quadratic: 100 includes of 50 routes took 6.1 s so, 0.32 s this way (0.2 with no
        # checks first; routes of one int parameter, one run each, 2026-12-01).
        http, ws = RouteTable[Route](self._converters), RouteTable[Route](self._converters)
        names: dict[str, list[Route]] = {}
        for route in router.routes:
            check_handler(route.handler, route.template, route.param_names)
            if self._plan is not None:
                check_skips(route, self.plugins, self._plugin_flows)
            check_name([*self._names.get(route.name, ()), *names.get(route.name, ())], route)
            websocket = route.kind == "websocket"
            with self._clash_advised():
                (self._ws if websocket else self._http).check(route)
            (ws if websocket else http).add(route, route)
            names.setdefault(route.name, []).append(route)
        if self._plan is not None:
            scoped = [(route, router._scopes_of(route)) for route in router.routes]
            check_router_skips(scoped, self.plugins, self._plugin_flows)
            self._check_reached(router)

    def _check_reached(self, router: Router) -> None:
        """Raise ``ValueError`` if a route of ``router``, included once the app is compiled, is
        never reached, or would take every request of one that is (see ``_put``)."""
        # NOTE: in order, on copies of the app's tables: each route is checked with those
        # before it in, as _put adds them, so that none is added if one is refused.
        copies: dict[str, RouteTable[Route]] = {}
        for route in router.routes:
            table = copies.get(route.kind)
            if table is None:
                table = copies[route.kind] = RouteTable(self._converters)
                for known in self._ws_routes if route.kind == "websocket" else self._http_routes:
                    table.add(known, known)
            with self._clash_advised():
                table.refuse_unreached_by(route)
            table.add(route, route)

    def _served(
        self, router: Router, plan: Plan
    ) -> list[tuple[Route, tuple[Router, ...], Endpoint | None]]:
        """Resolve each route of ``router`` and make its endpoint (the plugins wrap its
        handler, its call is checked), before any is registered: all or nothing.

        Raises:
            TypeError: If a handler, as the plugins wrapped it, cannot be called; or what a
                plugin's ``apply()`` raised. ``plan`` then keeps no rules of these routes, and
                the routers are compiled as they were.
        """
        # NOTE: made as each was added, a handler refused there left the routes before it
        # served and named, and the router fixed was refused as "registered twice".
        tried: list[Route] = []
        ready: list[tuple[Route, tuple[Router, ...], Endpoint | None]] = []
        levels = {level for route in router.routes for level in router._scopes_of(route)}
        try:
            with compiled_marks_kept(levels):
                for route in router.routes:
                    resolved, routers = self._resolved(route), router._scopes_of(route)
                    tried.append(resolved)
                    if resolved.kind == "websocket":
                        check_call(resolved.handler, resolved, "ws")
                        ready.append((resolved, routers, None))
                    else:
                        served = self._endpoint(resolved, plan, routers)
                        ready.append((resolved, routers, served))
        except BaseException:
            for resolved in tried:
                plan.router_rules.pop(id(resolved), None)
            raise
        return ready

    def middleware(self, flow: F, *, outermost: bool = False) -> F:
        """Register a flow: a generator function of ``request`` that wraps the rest of the stack.

        ``response = yield`` runs the inner stack; yielding a ``Response`` before that answers
        instead, after it replaces the response. The first registered flow is the outermost.

        Args:
            flow: The generator function, sync or async.
            outermost: Put the flow outside every flow registered so far, instead of inside
                them. For flows that must see the request first whatever the order of
                registration (``TrustedHosts``); among such flows, the last one wins.
                ``ProxyHeaders``' flow stays outside them all.

        Raises:
            TypeError: If ``flow`` is not a generator function (sync or async), or cannot be
                called with the request alone.
        """
        colored = as_flow(flow)
        self._add_flow(self._pinned if outermost else len(self.flows), colored)
        return flow

    def _pin_outermost(self, flow: F) -> F:
        """Register a flow outside every other, even those registered later with
        ``outermost=True``: for ``ProxyHeaders``, whose corrected request every flow must see.

        Raises:
            TypeError: If ``flow`` is not a generator function (sync or async).
        """
        self._add_flow(0, as_flow(flow))
        self._pinned += 1
        return flow

    def _add_flow(self, index: int, colored: Colored) -> None:
        self.flows.insert(index, colored)
        if self._installing is not None:
            self._plugin_flows.setdefault(self._installing, []).append(colored)

    def error_handler(self, key: int | type[Exception]) -> Callable[[F], F]:
        """Register ``handler(request, exc)`` for a status code or an exception class.

        A status handler sees ``HTTPError`` with that status (and, for 500, any unexpected error);
        a class handler sees that class and its subclasses. It returns what a route handler may.

        Raises:
            ValueError: If a status is not 4xx or 5xx.
            TypeError: If the key is neither a status nor a subclass of ``Exception``, or the
                handler cannot be called as ``(request, exc)`` or is a ``def`` wrapper of an
                ``async def`` function.
        """
        return error_registrar(self._error_handlers, key)

    # -- the registry ----------------------------------------------------------------------------

    @property
    def websocket_routes(self) -> list[Route]:
        """Every WebSocket route."""
        return list(self._ws)

    @property
    def routes(self) -> list[Route]:
        """Every registered route."""
        return list(self._http)

    def url_for(self, name: str, /, _query: Query | None = None, **params: Any) -> str:
        """Build the path of the route called ``name`` (without the root path).

        A ``{name:path}`` value that starts with ``/`` has that slash percent-encoded
        (``%2F``), so that the result never starts with ``//``. ``_query`` (a mapping, a
        ``MultiDict`` such as ``request.query``, whose every pair goes in, or a list of pairs)
        adds a query string: see ``build_query``. An ``enum.Enum`` of ``str``, ``int`` or
        ``float`` goes into the path or the query as its value (``open``, not
        ``Status.OPEN``).

        Raises:
            KeyError: If no route has that name.
            TypeError: If the parameters do not fit the template, a parameter is ``None`` or
                ``bytes`` (unless its converter's ``to_url`` takes it), or a query value is
                not a ``str``, ``int``, ``float`` or ``None``.
            ValueError: If a one-segment parameter is empty or holds ``/``, a ``{name:path}``
                value is empty (or, at the template's start, only slashes), a value is or
                holds a ``.`` or ``..`` segment, or a value is one its built-in converter does
                not take back (``-3`` for ``{n:int}``): the link would answer 404 or lead
                elsewhere; if a converter's ``to_url`` raises it (the built-in ``float`` for
                an ``int`` beyond a float's range). Also if a value, or a query name or value,
                holds a lone surrogate, which UTF-8 (and so a URL) cannot carry.
        """
        if "_external" in params:
            # NOTE: it was named among the route's parameters, as if the template lacked it.
            raise TypeError("url_for(_external=True) needs a request: call request.url_for")
        try:
            route = self._names[name][0]
        except KeyError:
            raise KeyError(f"no route is named {name!r}") from None
        path = build_path(route, self._converters, params)
        return path if _query is None else path + build_query(_query)

    def _kind_of(self, name: str, preferred: str) -> str:
        """Return the kind (``"http"`` or ``"websocket"``) of the route ``url_for`` builds:
        ``preferred`` (the kind of the request that asks) when routes of both kinds have the
        name, one template served as a page and as a WebSocket.

        Raises:
            KeyError: If no route has that name.
        """
        try:
            routes = self._names[name]
        except KeyError:
            raise KeyError(f"no route is named {name!r}") from None
        # NOTE: not the kind registered first: which one that was flipped a page's link to
        # itself to ws:// (review155).
        if any(route.kind == preferred for route in routes):
            return preferred
        return routes[0].kind

    # -- entrypoints ---------------------------------------------------------------------------

    def _ws_warning_due(self) -> bool:
        if self._ws_warned or not self.websocket_routes:
            return False
        self._ws_warned = True
        return True

    def as_wsgi(self) -> WSGIDriver:
        """Return the PEP 3333 callable; startup hooks run now, shutdown on ``close()``."""
        from ._wsgi import WSGIDriver

        plan = self.compile()
        if self._ws_warning_due():
            warnings.warn(
                "this app has WebSocket routes, which need the ASGI entrypoint (as_asgi()); "
                "under WSGI a handshake to them is answered 501",
                InterfaceWarning,
                stacklevel=2,
            )
        return WSGIDriver(plan)

    def as_asgi(self) -> ASGIDriver:
        """Return the ASGI 3 callable (``http``, ``websocket`` and ``lifespan`` scopes)."""
        from ._asgi import ASGIDriver

        return ASGIDriver(self.compile())


# NOTE: what a plugin's setup() can add to an App, taken back when it raises.
_REGISTRIES = (
    "flows", "_pinned", "startup_steps", "shutdown_hooks", "plugins", "state", "_converters",
    "_http_routes", "_ws_routes", "_names", "_routers", "_plugin_flows", "_error_handlers",
    "_inclusions", "_plan", "debug", "limits", "max_threads",
)  # fmt: skip


def _register(
    route: Route, http: RouteTable[Route], ws: RouteTable[Route], names: dict[str, list[Route]]
) -> None:
    """Check ``route`` and add it to the tables and the names (of the app, or copies of them).

    Raises:
        TypeError: If the handler cannot take the route's parameters.
        ValueError: If the route clashes with one registered, or its converter is unknown.
    """
    check_handler(route.handler, route.template, route.param_names)
    check_name(names.get(route.name, ()), route)
    (ws if route.kind == "websocket" else http).add(route, route)
    names.setdefault(route.name, []).append(route)


add_other_names(App, "app")
