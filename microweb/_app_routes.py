"""How an app keeps its routes: each one resolved, checked and put in the route tables (and,
once compiled, served at once); a router's routes all checked, and made ready, before
``App.include`` adds any; the rules of the routers around a route compiled into the ``Plan``."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from ._effects import Colored
from ._limits import Limits, resolve_limits
from ._plan import Endpoint, ErrorHandler, Plan, RouterRules, endpoint
from ._plugins import check_router_skips, check_skips, wrap_handler
from ._route_clashes import RouteClash
from ._route_table import RouteTable
from ._route_templates import Converter
from ._router import Router, RouteRegistry, compiled_marks_kept
from ._routing import Route, check_call, check_handler, check_name


class AppRoutes(RouteRegistry):
    """The part of ``App`` that registers its routes and those of the routers it includes;
    ``App`` makes the state it reads (in ``App.__init__``)."""

    limits: Limits
    plugins: list[Any]
    _plan: Plan | None
    _installing: str | None
    _converters: dict[str, Converter]
    _http: RouteTable[Route]
    _ws: RouteTable[Route]
    _http_routes: list[Route]
    _ws_routes: list[Route]
    _names: dict[str, list[Route]]
    _routers: dict[int, tuple[Router, ...]]
    _inclusions: list[tuple[Router, bool]]
    _plugin_flows: dict[str, list[Colored]]
    _error_handlers: dict[int | type[Exception], ErrorHandler]

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

    def _rebuild_tables(self) -> None:
        """Make the route tables anew from the routes registered, in their order."""
        self._http = RouteTable(self._converters)
        self._ws = RouteTable(self._converters)
        for route in (*self._http_routes, *self._ws_routes):
            (self._ws if route.kind == "websocket" else self._http).add(route, route)

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
