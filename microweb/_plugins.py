"""The plugin protocol and how plugins wrap handlers, decided once at startup."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Container, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from ._effects import Colored
from ._routing import Route, check_arguments, check_call, check_colour, is_async_callable


@runtime_checkable
class Plugin(Protocol):
    """What ``app.install()`` takes. Only ``name`` is required; the methods are optional.

    - ``setup(app)``: called at install; may add routes, flows, hooks, converters, error
      handlers.
    - ``apply(handler, route) -> handler``: called once per route at startup to wrap its
      handler. The wrapper must keep the colour (``route.is_async``).
    - ``close()``: called at shutdown, sync or async.
    """

    # NOTE: read-only, so that a class attribute, a ClassVar or a property is a name too:
    # `name: str` took only an instance variable, and `name: ClassVar[str] = "db"` was refused.
    @property
    def name(self) -> str:
        """Tells plugins apart, unique in the app; ``skip=[...]`` uses it."""
        ...


def check_plugin(plugin: object, installed: Sequence[object]) -> str:
    """Return the plugin's name after checking it can be installed.

    Raises:
        TypeError: If it is a class, has no string ``name``, or has a ``close`` that cannot be
            called without arguments (or is a ``def`` wrapper of an ``async def`` one).
        ValueError: If a plugin of that name is installed already.
    """
    if isinstance(plugin, type) and _needs_instance(plugin):
        # NOTE: install(CSRF) failed in setup() with "missing 1 required positional argument:
        # 'app'", and left the class installed (review140).
        raise TypeError(f"install() takes a plugin, not its class: {plugin.__name__}(...)")
    name = getattr(plugin, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"a plugin needs a non-empty str attribute `name`: {plugin!r}")
    if any(getattr(other, "name", None) == name for other in installed):
        raise ValueError(f"a plugin named {name!r} is installed already")
    close = getattr(plugin, "close", None)
    if close is not None:
        # NOTE: a close() that takes an argument, or a def wrapper of an async def one, failed
        # or was skipped only at shutdown, after the app had served; shutdown hooks are checked
        # when registered.
        where = f"plugin {name!r} close()"
        if not callable(close):
            raise TypeError(f"{where} must be a method, not {close!r}")
        check_colour(close, where)
        check_arguments(close, where, "()")
    return name


def check_skips(route: Route, plugins: Sequence[Any], with_flows: Container[str] = ()) -> None:
    """Check that each plugin ``route`` skips is installed, and that skipping it does something.

    On an HTTP route a skip leaves out the plugin's ``apply``, which it must have. On a
    WebSocket route, whose handler no ``apply`` wraps, a skip leaves out the plugin's flows
    around the handshake: the plugin must have added some (``with_flows`` names those).

    A router's skip (on each of its routes) is let be where it changes nothing, as long as it
    changes something on one of its routes (``check_router_skips``).

    Raises:
        ValueError: If a skipped plugin is not installed, has no ``apply`` (an HTTP route), or
            added no flow (a WebSocket route).
    """
    by_name = {plugin.name: plugin for plugin in plugins}
    unknown = set(route.skip) - set(by_name)
    if unknown:
        raise ValueError(f"route {route.name!r} skips plugins that are not installed: {unknown}")
    own = [name for name in route.skip if name not in route._router_skip]
    idle = [name for name in own if not _skip_changes(route, by_name[name], with_flows)]
    if idle and route.kind == "websocket":
        # NOTE: a skip that did nothing would leave the handshake checked by nobody's word.
        raise ValueError(
            f"WebSocket route {route.name!r} skips plugins that add no flow: {idle}; on a "
            "WebSocket route, skip= leaves out the flows a plugin added (no apply() wraps "
            "a WebSocket handler), so it would change nothing"
        )
    if idle:
        # NOTE: Router(skip=["sessions"]) on an /api router looked like an exemption and was none.
        raise ValueError(
            f"route {route.name!r} skips plugins that have no apply(): {idle}; on an HTTP "
            "route, skip= leaves out a plugin's apply() wrapper, and a plugin's flows see every "
            "request (they run before routing), so it would change nothing"
        )


def _needs_instance(cls: type) -> bool:
    """Tell whether a plugin's class has a method that only an instance can call.

    A class whose hooks are all class or static methods is a plugin as it is (review141).
    """
    for hook in ("setup", "apply", "close"):
        try:
            found = inspect.getattr_static(cls, hook)
        except AttributeError:
            continue
        if not isinstance(found, (classmethod, staticmethod)):
            return True
    return False


def check_router_skips(
    scoped: Iterable[tuple[Route, Sequence[Any]]],
    plugins: Sequence[Any],
    with_flows: Container[str],
) -> None:
    """Check that each router's skip leaves each plugin it names out of one of its routes.

    ``scoped`` pairs each route with its routers (each with ``prefix`` and ``skip``): each
    router is judged on its own routes, so that another router's skip that does something
    does not cover for it.

    Raises:
        ValueError: If a router skips a plugin that changes nothing on any of its routes: one
            without ``apply`` where it has only HTTP routes, say (``Router(skip=["sessions"])``).
    """
    by_name = {plugin.name: plugin for plugin in plugins}
    changed: dict[tuple[int, str], bool] = {}
    routers: dict[int, Any] = {}
    for route, scopes in scoped:
        for router in scopes:
            routers[id(router)] = router
            for name in router.skip:
                works = _skip_changes(route, by_name.get(name), with_flows)
                changed[id(router), name] = changed.get((id(router), name), False) or works
    for key, router in routers.items():
        idle = [name for name in router.skip if not changed.get((key, name), True)]
        if idle:
            # NOTE: Router(skip=["sessions"]) on an /api router looked like an exemption and
            # was none.
            where = f"the router of prefix {router.prefix!r}" if router.prefix else "a router"
            raise ValueError(
                f"{where} skips plugins that change nothing on any of its routes: {idle}; "
                "skip= leaves out a plugin's apply() wrapper around HTTP handlers, and its "
                "flows around WebSocket handshakes (flows see every HTTP request: they run "
                "before routing)"
            )


def _skip_changes(route: Route, plugin: Any, with_flows: Container[str]) -> bool:
    if plugin is None:
        return False
    if route.kind == "websocket":
        return plugin.name in with_flows
    return _applies(plugin)


def _applies(plugin: Any) -> bool:
    return getattr(plugin, "apply", None) is not None


def wrap_handler(route: Route, plugins: Sequence[Any]) -> Colored:
    """Let each plugin wrap ``route``'s handler; the first installed ends up outermost.

    Raises:
        ValueError: If the route skips a plugin that is not installed.
        TypeError: If a plugin returns no callable or changes the handler's colour, or the
            handler as wrapped cannot take the request and the path parameters (naming the
            outermost plugin that wrapped it).
    """
    check_skips(route, plugins)
    handler: Callable[..., Any] = route.handler
    outermost: str | None = None
    for plugin in reversed(plugins):
        apply = getattr(plugin, "apply", None)
        if apply is None or plugin.name in route.skip:
            continue
        wrapped = apply(handler, route)
        if not callable(wrapped):
            raise TypeError(f"plugin {plugin.name!r} apply() returned {wrapped!r}, not a handler")
        if is_async_callable(wrapped) != route.is_async:
            colour = "async def" if route.is_async else "def"
            raise TypeError(
                f"plugin {plugin.name!r} changed the colour of the {colour} handler "
                f"{route.name!r}; wrap it in a {colour} function (route.is_async tells which)"
            )
        if wrapped is not handler:
            outermost = plugin.name
        handler = wrapped
    try:
        check_call(handler, route)
    except TypeError as exc:
        if outermost is None or not _callable_as_routed(route):
            raise
        # NOTE: the handler was blamed for what a plugin's wrapper could not take: the message
        # named a handler that takes its parameters well.
        raise TypeError(
            f"{exc}, as the plugin {outermost!r} wrapped it: its apply() must return a wrapper "
            "that takes the request and the path parameters (as keywords: **params)"
        ) from None
    return Colored(handler, route.is_async, route.offload)


def _callable_as_routed(route: Route) -> bool:
    try:
        check_call(route.handler, route)
    except TypeError:
        return False
    return True


def closers(plugins: Sequence[Any]) -> list[Colored]:
    """Return the ``close()`` methods of ``plugins``, last installed first."""
    found = []
    for plugin in reversed(plugins):
        close = getattr(plugin, "close", None)
        if close is not None:
            found.append(Colored(close, is_async_callable(close)))
    return found
