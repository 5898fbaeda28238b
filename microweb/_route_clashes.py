"""``RouteClash``: a route refused at registration or startup, and the words that say why."""

from __future__ import annotations

from ._route_nodes import MethodMap
from ._routing import Route


class RouteClash(ValueError):
    """A method and template registered twice; ``routes`` holds the first and the second."""

    def __init__(self, message: str, routes: tuple[Route, Route]) -> None:
        super().__init__(message)
        self.routes = routes


def refuse_shadowed(methods: MethodMap, route: Route) -> None:
    """Raise ``RouteClash`` if a route of another template with the same shape (only its
    parameters' names differ: the same branch) has one of ``route``'s methods."""
    for method in sorted(route.methods):
        known = methods.get(method)
        if known is not None and known[2] != route.param_names:
            # NOTE: a request that matches one matches the other, and the first one wins:
            # the second handler was never called, without a word (review167).
            first = known[0]
            raise RouteClash(
                f"{_what(method, route)} {route.template} ({route.name!r}) is never reached: "
                f"{first.template} ({first.name!r}) matches the same requests first; only "
                "their parameters' names differ",
                (first, route),
            )


def refuse_twice(methods: MethodMap, route: Route) -> None:
    for method in route.methods:
        if method in methods:
            known = methods[method][0]
            raise RouteClash(
                f"{_what(method, route)} {route.template} is registered twice ({known.name!r} "
                f"and {route.name!r})",
                (known, route),
            )


def _what(method: str, route: Route) -> str:
    """How a clash names ``route``'s kind: its method, or ``WebSocket`` (whose GET is the
    handshake, not a route of the app's own)."""
    return "WebSocket" if route.kind == "websocket" else method


def unreached(method: str, route: Route, first: Route, would: bool = False) -> RouteClash:
    """The refusal of ``route``, whose every request for ``method`` ``first`` takes first
    (``would``: once ``first`` is added)."""
    return RouteClash(
        f"{_what(method, route)} {route.template} ({route.name!r}) "
        f"{'would never be' if would else 'is never'} reached: {first.template} "
        f"({first.name!r}) matches every request it would, and is tried first (a segment's "
        "converters are tried in the order routes first used them): add the route with the "
        "narrower converter first",
        (first, route),
    )
