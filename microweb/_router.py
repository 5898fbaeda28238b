"""Route decorators, shared by ``App`` and ``Router``, and ``Router``. How a route is placed
under a prefix and its routers is in ``_route_nesting``; the checks of the flows and error
handlers they register, in ``_handler_checks``."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from ._effects import Colored
from ._handler_checks import as_flow, check_error_key, error_handler_entry
from ._limits import RouteLimits, check_route_limits
from ._other_names import add_other_names, listed_first, routing_advice
from ._plan import ErrorHandler
from ._route_nesting import check_prefix_template, join_prefix, with_options
from ._route_templates import parse_template
from ._routing import (
    HTTP_METHODS,
    NO_CONFIG,
    Handler,
    Route,
    check_name,
    check_prefix,
    check_reached,
    is_async_callable,
    skip_names,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

H = TypeVar("H", bound=Handler)
F = TypeVar("F", bound=Callable[..., Any])
ErrorKey = int | type[Exception]


class RouteOptions(TypedDict, total=False):
    """The keyword options every route decorator takes."""

    name: str | None
    offload: bool
    limits: RouteLimits | None
    skip: Iterable[str]
    config: Mapping[str, Any] | None


class RouteRegistry:
    """The decorators that register routes; subclasses decide where a route goes."""

    prefix: str = ""

    def _add_route(self, route: Route) -> None:
        raise NotImplementedError

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        *,
        name: str | None = None,
        offload: bool = True,
        limits: RouteLimits | None = None,
        skip: Iterable[str] = (),
        config: Mapping[str, Any] | None = None,
    ) -> Callable[[H], H]:
        """Register the decorated function as the handler of ``path`` for ``methods``.

        Args:
            path: A template such as ``"/users/{user_id:int}"``.
            methods: HTTP methods, any case.
            name: The name for ``url_for``; the function's name by default.
            offload: For a ``def`` handler under ASGI: run it in the thread pool (the default) or,
                with ``False``, inline on the event loop (only for handlers that never block).
            limits: A ``Limits`` for this route, or a mapping that changes some of the app's.
            skip: Names of plugins that must not wrap this handler (added to a router's).
            config: Settings for plugins, which read them as ``route.config`` (a read-only
                copy), such as ``{"db": False}``; they win over a router's of the same key.

        Raises:
            ValueError: If the template or a method is invalid, another template has the
                same name, ``limits`` names ``max_headers`` (the app's only) or gives a limit
                a value ``Limits`` refuses, or (a router) the router was included already.
            TypeError: If the handler does not take the template's parameters as keyword
                arguments, is a generator function, or is a ``def`` wrapper of an
                ``async def`` function; if ``methods`` or ``skip`` is one string instead
                of a list; or if ``limits`` is neither a ``Limits`` nor a mapping, or names
                no limit.
        """
        if isinstance(methods, str):
            # NOTE: methods="POST" read as the methods P, O, S and T (review140).
            raise TypeError(f"methods takes a list of methods, not one string: [{methods!r}]")
        method_set = frozenset(m.upper() for m in methods)
        unknown = method_set - HTTP_METHODS
        if unknown or not method_set:
            raise ValueError(f"unknown HTTP methods {sorted(unknown)} for route {path!r}")
        skipped = skip_names(skip)
        check_route_limits(limits, path)
        if isinstance(limits, Mapping):
            # NOTE: a router's route kept the caller's dict, read at include(): changed after
            # the check, it gave limits never checked, or failed there naming no route
            # (attack424). The values checked are the ones kept.
            limits = dict(limits)

        def decorator(handler: H) -> H:
            route = self._make_route(path, method_set, handler, name, offload, limits)
            self._add_route(self._with_options(route, skipped, config))
            return handler

        return decorator

    def _make_route(
        self,
        path: str,
        methods: frozenset[str],
        handler: Handler,
        name: str | None,
        offload: bool,
        limits: RouteLimits | None,
        kind: str = "http",
    ) -> Route:
        template = join_prefix(self.prefix, path)
        segments = parse_template(template)
        check_reached(template, f"route template {template!r}")
        return Route(
            template=template,
            methods=methods,
            handler=handler,
            name=name or str(getattr(handler, "__name__", repr(handler))),
            is_async=is_async_callable(handler),
            offload=offload,
            limits=limits,
            kind=kind,
            segments=segments,
        )

    def _with_options(
        self, route: Route, skip: tuple[str, ...], config: Mapping[str, Any] | None
    ) -> Route:
        """Return ``route`` with the ``skip`` and ``config`` given to its decorator."""
        return with_options(route, skip, config or NO_CONFIG)

    def websocket(
        self,
        path: str,
        *,
        name: str | None = None,
        skip: Iterable[str] = (),
        config: Mapping[str, Any] | None = None,
    ) -> Callable[[H], H]:
        """Register an ``async def handler(ws, **params)`` for WebSocket connections (ASGI).

        Args:
            path: A template such as ``"/rooms/{room}"``.
            name: The name for ``url_for``; the function's name by default.
            skip: Names of plugins whose flows must leave this route's handshakes alone (no
                ``apply`` wraps a WebSocket handler). A plugin that added no flow cannot be
                skipped here: that is an error at startup.
            config: Settings for the flows around the handshake, which read them as
                ``request.route.config``.

        Raises:
            ValueError: If the template is invalid, or another route has the same name.
            TypeError: If the handler is not ``async def``, or ``skip`` is one string.
        """
        skipped = skip_names(skip)

        def decorator(handler: H) -> H:
            if not is_async_callable(handler):
                raise TypeError(
                    f"WebSocket handler {getattr(handler, '__qualname__', handler)!r} must be "
                    "async def"
                )
            route = self._make_route(
                path, frozenset({"GET"}), handler, name, True, None, kind="websocket"
            )
            self._add_route(self._with_options(route, skipped, config))
            return handler

        return decorator

    def _method(self, method: str, path: str, options: RouteOptions) -> Callable[[H], H]:
        return self.route(path, [method], **options)

    def get(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]:
        """Register a ``GET`` handler (``HEAD`` is answered from it); options as in ``route``."""
        return self._method("GET", path, options)

    def post(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]:
        """Register a ``POST`` handler; options as in ``route``."""
        return self._method("POST", path, options)

    def put(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]:
        """Register a ``PUT`` handler; options as in ``route``."""
        return self._method("PUT", path, options)

    def patch(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]:
        """Register a ``PATCH`` handler; options as in ``route``."""
        return self._method("PATCH", path, options)

    def delete(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]:
        """Register a ``DELETE`` handler; options as in ``route``."""
        return self._method("DELETE", path, options)

    def options(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]:
        """Register an ``OPTIONS`` handler, replacing the automatic answer for ``path``."""
        return self._method("OPTIONS", path, options)


def error_registrar(handlers: dict[ErrorKey, ErrorHandler], key: ErrorKey) -> Callable[[F], F]:
    """Check ``key`` (``check_error_key()``); return the decorator of ``App.error_handler``
    and ``Router.error_handler``, which puts ``error_handler_entry()`` in ``handlers``."""
    check_error_key(key)

    def decorator(handler: F) -> F:
        handlers[key] = error_handler_entry(key, handler)
        return handler

    return decorator


class Router(RouteRegistry):
    """A group of routes under a common prefix, added to an app with ``app.include(router)``.

    A router may have its own flows and error handlers, for its routes only: its flows run
    inside the app's, and its error handlers are looked up before the app's.

    Args:
        prefix: Prepended to every template, such as ``"/api"`` (no trailing slash).
        skip: Plugin names that every route of this router skips, those of the routers it
            includes too, added to each route's own ``skip=``.
        config: Settings for plugins on every route of this router, those of the routers it
            includes too; a route's own ``config=`` (or an inner router's) wins for a key
            both set.

    Raises:
        ValueError: If the prefix does not start with ``/``, holds ``//`` or ends
            with ``/`` (``"/"`` too: leave the prefix out for routes at the root), holds a
            ``?``, ``#``, %-escape, control character, ``.`` or ``..`` segment, a segment that
            begins or ends with a space, or a parameter that is malformed, named twice or
            ``{name:path}``.
        TypeError: If ``skip`` is one string instead of a list, or the prefix is no ``str``.
    """

    def __init__(
        self,
        prefix: str = "",
        *,
        skip: Iterable[str] = (),
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if prefix == "/":
            raise ValueError(
                "Router prefix '/' ends with '/', which a prefix must not: for routes at the "
                "root, leave it out, Router()"
            )
        check_prefix(prefix, "Router", "routes")
        check_prefix_template(prefix)
        self.prefix = prefix
        self.skip = skip_names(skip)
        # NOTE: a read-only copy: changed after routes were added, it would not reach them.
        self.config: Mapping[str, Any] = MappingProxyType(dict(config or {}))
        self.routes: list[Route] = []
        self.flows: list[Colored] = []
        self.error_handlers: dict[ErrorKey, ErrorHandler] = {}
        # NOTE: for each route that came from an included router, by id(): the routers between
        # this one and the route, outermost first.
        self._inner: dict[int, tuple[Router, ...]] = {}
        # NOTE: an app or a router copied its routes (include): a route added later would not
        # be served there. An app compiled its flows: ones added later would not run. Either is
        # refused loudly rather than ignored. (Error handlers are read on each error.)
        self._included = self._compiled = False

    def include(self, router: Router) -> None:
        """Add every route of ``router`` under this router's prefix, with the router's flows
        and error handlers (inside this router's).

        Raises:
            ValueError: If ``router`` is this router or includes it, or a route (or another
                template of the same name) is registered here.
            TypeError: If ``router`` is no ``Router`` (an ``App``, say, or the class
                ``Router`` itself).
        """
        check_includable(router)
        if router is self:
            raise ValueError("a router cannot include itself")
        if any(self in chain for chain in router._inner.values()):
            # NOTE: its routes would run this router's flows twice, once as each of two levels.
            raise ValueError(
                "this router is included in that one; two routers cannot include each other"
            )
        if any(chain[0] is router for chain in self._inner.values()):
            raise included_again(router)
        count = len(self.routes)
        try:
            for route in list(router.routes):
                path = join_prefix(self.prefix, route.template)
                moved = dataclasses.replace(route, template=path, segments=parse_template(path))
                nested = with_options(moved, self.skip, self.config, router=True)
                self._add_route(nested)
                self._inner[id(nested)] = (router, *router._inner.get(id(route), ()))
        except BaseException:
            # NOTE: all or nothing: a clash takes back the routes added before it.
            for added in self.routes[count:]:
                self._inner.pop(id(added), None)
            del self.routes[count:]
            raise
        router._included = True

    def _with_options(
        self, route: Route, skip: tuple[str, ...], config: Mapping[str, Any] | None
    ) -> Route:
        own = with_options(route, skip, config or NO_CONFIG)
        return with_options(own, self.skip, self.config, router=True)

    def _scopes_of(self, route: Route) -> tuple[Router, ...]:
        """The routers whose flows and error handlers apply to ``route``, outermost first."""
        return (self, *self._inner.get(id(route), ()))

    def _add_route(self, route: Route) -> None:
        if self._included:
            raise ValueError(
                f"{route.template} is added to a router already included: add a router's "
                "routes before include(), which copies them"
            )
        check_name([known for known in self.routes if known.name == route.name], route)
        for known in self.routes:
            if known.template == route.template and known.kind == route.kind:
                twice = known.methods & route.methods
                if twice:
                    raise ValueError(f"{sorted(twice)} {route.template} is registered twice")
        self.routes.append(route)

    def middleware(self, flow: F) -> F:
        """Register a flow for this router's routes, inside the app's flows.

        It is written as for ``App.middleware``; the first registered is the outermost of the
        router's flows. It runs once the request matched one of this router's routes.

        Raises:
            TypeError: If ``flow`` is not a generator function (sync or async), or cannot be
                called with the request alone.
            ValueError: If an app that includes this router has been compiled.
        """
        if self._compiled:
            raise ValueError(
                "a router's flows are read when an app that includes it is compiled (as_wsgi(), "
                "as_asgi()): register them before"
            )
        self.flows.append(as_flow(flow))
        return flow

    def error_handler(self, key: ErrorKey) -> Callable[[F], F]:
        """Register ``handler(request, exc)`` for errors of this router's routes.

        It is written as for ``App.error_handler``; for a request that matched one of this
        router's routes, the router's handlers are looked up first, then the app's.

        Raises:
            ValueError: If a status is not 4xx or 5xx.
            TypeError: If the key is neither a status nor a subclass of ``Exception``, or the
                handler cannot be called as ``(request, exc)`` or is a ``def`` wrapper of an
                ``async def`` function.
        """
        return error_registrar(self.error_handlers, key)


def included_again(router: Router) -> ValueError:
    """The error of ``include(router)`` where ``router`` is included already."""
    # NOTE: it said "GET /api/x is registered twice ('x' and 'x')", naming no mistake.
    named = f"Router(prefix={router.prefix!r})" if router.prefix else "Router()"
    return ValueError(
        f"{named} is included here already: include() copied its routes, and a second "
        "would register each of them twice"
    )


def check_includable(router: object) -> None:
    """Raise ``TypeError`` unless ``router`` is a ``Router``, which ``include()`` takes.

    An ``App`` has routes too, but its flows, plugins and hooks would be left behind: including
    one read its private tables and failed with ``AttributeError`` (review140).
    """
    if isinstance(router, Router):
        return
    if isinstance(router, type) and issubclass(router, RouteRegistry):
        raise TypeError(_class_included(router))
    if isinstance(router, RouteRegistry):
        raise TypeError(
            "include() takes a Router, not an App, whose plugins, flows and hooks would be "
            "left out: register the routes on a Router, with its own flows, and include it"
        )
    counted = listed_first(router)
    if counted and isinstance(counted[1], Router):
        # NOTE: it read "include() takes a Router, not list: [<microweb...Router object at
        # ...>, ...]", where the fix is one include() each (review424).
        raise TypeError(
            f"include() takes one Router, not a {type(router).__name__} of {counted[0]}: call "
            "include() once for each of them (for router in routers: app.include(router))"
        )
    if isinstance(router, Iterator):
        # NOTE: it read "include() takes a Router, not generator: <generator object ...>";
        # not read, as that would use up its routers (attack424).
        raise TypeError(
            f"include() takes one Router, not a {type(router).__name__}: call include() once "
            "for each router it gives (for router in routers: app.include(router))"
        )
    advice = routing_advice(router)
    if advice:
        raise TypeError(f"include() takes a Router, not {advice}")
    try:
        shown = repr(router)
    except Exception:
        # NOTE: its repr's error went out of include() in place of this one.
        shown = object.__repr__(router)
    raise TypeError(f"include() takes a Router, not {type(router).__name__}: {shown}")


def _class_included(cls: type[RouteRegistry]) -> str:
    """Say what to include in place of ``cls``, the class ``Router`` or ``App`` (or a
    subclass of either) given to ``include()``."""
    # NOTE: it read "include() takes a Router, not type: <class 'microweb.Router'>", as if
    # a Router were what it had been given.
    name = cls.__name__
    if issubclass(cls, Router):
        return (
            f"include() takes a Router, not the class {name} itself: call it, {name}() (or "
            f"{name}(prefix=...)), add the routes to the router it makes, and include that"
        )
    return (
        f"include() takes a Router, not the class {name}: register the routes on a "
        "Router(), with its own flows, and include it"
    )


@contextlib.contextmanager
def compiled_marks_kept(routers: Iterable[Router]) -> Iterator[None]:
    """Put back each of ``routers``' compiled mark if the block raises: a compile that failed
    compiled nothing, and their flows may still be registered."""
    marks = {id(router): (router, router._compiled) for router in routers}
    try:
        yield
    except BaseException:
        for router, was in marks.values():
            router._compiled = was
        raise


add_other_names(Router, "router")
