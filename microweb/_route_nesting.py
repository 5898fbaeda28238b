"""How a route is placed under a prefix and its routers: its template joined to the prefix,
a router's prefix checked as a template's start, and the ``skip`` and ``config`` of its
decorator and its routers merged into it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ._route_templates import Param, parse_template
from ._routing import NO_CONFIG, Route


def join_prefix(prefix: str, path: str) -> str:
    """The template of ``path`` under ``prefix``: a route on ``"/"`` gets the prefix itself.

    Raises:
        ValueError: If ``path`` does not start with ``/`` (``""`` under a prefix is the
            prefix, as ``"/"`` is).
    """
    if path and not path.startswith("/"):
        # NOTE: glued to the prefix, "users" under "/api" was served at "/apiusers".
        raise ValueError(f"route template {path!r} must start with '/'")
    return prefix + path if path != "/" or not prefix else prefix


def with_options(
    route: Route, skip: tuple[str, ...], config: Mapping[str, Any], *, router: bool = False
) -> Route:
    """Return ``route`` with ``skip`` added to its own and ``config`` under its own.

    Skips add up; of two settings of one key, the route's own wins (a route's over its
    router's, an inner router's over an outer one's). ``router`` says they are a router's.
    """
    if not skip and not config:
        return route
    merged = {**config, **route.config}
    return dataclasses.replace(
        route,
        skip=tuple(dict.fromkeys((*route.skip, *skip))),
        config=MappingProxyType(merged) if merged else NO_CONFIG,
        _router_skip=_router_skip(route, skip) if router else route._router_skip,
    )


def _router_skip(route: Route, skip: tuple[str, ...]) -> tuple[str, ...]:
    # NOTE: a name the route skips itself stays its own, checked strictly (check_skips): the
    # router skipping it too does not let an own skip that changes nothing pass.
    added = (name for name in skip if name not in route.skip)
    return tuple(dict.fromkeys((*route._router_skip, *added)))


def check_prefix_template(prefix: str) -> None:
    """Refuse a router prefix that is no template's start: a malformed parameter, one named
    twice, or a ``{name:path}`` one, which takes the rest of the path.

    A parameter is taken (``"/{tenant}"``): each route of the router gets it.
    """
    if not prefix:
        return
    # NOTE: taken, "/a{" failed at the router's first route, with a message about its template.
    try:
        segments = parse_template(prefix)
    except ValueError as exc:
        raise ValueError(f"Router prefix {prefix!r}: {exc}") from None
    for segment in segments:
        if isinstance(segment, Param) and segment.converter == "path":
            raise ValueError(
                f"Router prefix {prefix!r}: {{{segment.name}:path}} takes the rest of the path, "
                "so it can only end a route's template, not a prefix"
            )
