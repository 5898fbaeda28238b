"""The application: its state, plugins, include, flows and error handlers, url_for, compile
and the two entrypoints (the route tables are kept by ``AppRoutes``, in ``_app_routes``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

from ._app_registries import ConverterRegistry, HookRegistry
from ._app_routes import AppRoutes
from ._checkpoint import Checkpoint
from ._effects import Colored
from ._errors import InterfaceWarning
from ._handler_checks import as_flow
from ._limits import Limits
from ._other_names import add_other_names
from ._plan import ErrorHandler, Plan, StartupSteps
from ._plugins import check_plugin, check_router_skips, check_skips, closers
from ._route_table import RouteTable
from ._route_templates import BUILTIN_CONVERTERS, Converter
from ._router import (
    Router,
    check_includable,
    compiled_marks_kept,
    error_registrar,
    included_again,
)
from ._routing import Route, check_call
from ._url_paths import Query, build_path, build_query

if TYPE_CHECKING:
    from ._asgi import ASGIDriver
    from ._wsgi import WSGIDriver

F = TypeVar("F", bound=Callable[..., Any])
P = TypeVar("P")


class App(AppRoutes, HookRegistry, ConverterRegistry):
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


add_other_names(App, "app")
