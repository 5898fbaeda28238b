"""Routes and the checks made as they are registered: ``Route``, a handler's colour and
arguments, route names. Their lookup is ``_route_table``'s; templates and converters are parsed in
``_route_templates``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from ._limits import RouteLimits
from ._route_templates import Param, Segment
from ._target import root_path_refused

Handler = Callable[..., Any]

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


def is_async_callable(obj: object) -> bool:
    """Tell whether calling ``obj`` returns a coroutine (functions, partials, callable objects)."""
    if inspect.iscoroutinefunction(obj):
        return True
    while isinstance(obj, functools.partial):
        # NOTE: inspect unwraps a partial only down to a function; a partial of an object with
        # an async __call__ (partial(Resource(), ...)) was taken for def and its coroutine lost.
        obj = obj.func
    if isinstance(obj, staticmethod):
        # NOTE: after the partials: a partial of an async staticmethod was taken for def.
        return is_async_callable(unwrap_staticmethod(obj))
    if isinstance(obj, type):
        return False  # NOTE: calling a class builds an instance; its __call__ is the instances'.
    call = getattr(obj, "__call__", None)  # noqa: B004
    return not inspect.isfunction(obj) and inspect.iscoroutinefunction(call)


def unwrap_staticmethod(obj: Any) -> Any:
    """Return the function under a ``staticmethod``, or ``obj`` itself.

    A function registered inside its class body, under ``@staticmethod``, is callable (since
    Python 3.10), but ``inspect`` does not look inside it: its colour, and whether it is a
    generator function, are its function's.
    """
    return obj.__func__ if isinstance(obj, staticmethod) else obj


def is_generator_callable(obj: object) -> bool:
    """Tell whether calling ``obj`` returns a generator or an async generator (functions,
    partials, staticmethods, callable objects)."""
    while isinstance(obj, (functools.partial, staticmethod)):
        obj = obj.func if isinstance(obj, functools.partial) else obj.__func__
    if not isinstance(obj, type) and not inspect.isfunction(obj) and not inspect.ismethod(obj):
        # NOTE: an object whose __call__ yields was taken, where a function that yields was
        # refused: its code never ran, or each call was a 500.
        obj = getattr(obj, "__call__", obj)  # noqa: B004
    return inspect.isgeneratorfunction(obj) or inspect.isasyncgenfunction(obj)


def _hides_async(fn: Callable[..., Any]) -> bool:
    """Tell whether ``fn`` is ``def`` but wraps (``__wrapped__``) an ``async def`` callable."""
    # NOTE: functools.wraps sets __wrapped__; a def wrapper of an async def handler would be
    # called as def and return its coroutine, a 500 on every request instead of a startup error.
    # Only a plain function: a callable object (asgiref's async_to_sync) runs the coroutine.
    fn = unwrap_staticmethod(fn)
    if inspect.ismethod(fn):
        fn = fn.__func__  # NOTE: a resource's bound method (Falcon's on_get) is checked too.
    if not inspect.isfunction(fn) or inspect.iscoroutinefunction(fn):
        return False  # NOTE: an async def wrapper is the right one.
    try:
        inner = inspect.unwrap(fn)
    except ValueError:  # a __wrapped__ cycle
        return False
    return inner is not fn and is_async_callable(inner)


def check_colour(fn: Callable[..., Any], where: str) -> None:
    """Refuse a ``def`` function that wraps an ``async def`` one: its colour would be wrong.

    Raises:
        TypeError: With what to write instead; ``where`` names ``fn``'s use.
    """
    if _hides_async(fn):
        raise TypeError(
            f"{where} is a def function wrapping an async def one (a decorator's wrapper?): "
            "one that returns the coroutine leaves it unawaited, one that runs it "
            "(asyncio.run, asyncer.runnify) runs it away from the app's event loop; make the "
            "wrapper async def and await the function, or register the async def function itself"
        )


def check_arguments(
    fn: Callable[..., Any], where: str, called_as: str, keywords: Sequence[str] = ()
) -> None:
    """Refuse a function that cannot be called the way microweb calls it (``called_as``).

    ``called_as`` is the call's shape, such as ``"(request, exc)"``; its names stand for the
    positional arguments given, then the ``keywords`` (a route's path parameters).

    Raises:
        TypeError: Naming the call, where the call would have failed with a 500 on the
            first request that needed ``fn``.
    """
    count = called_as.count(",") + 1 - len(keywords) if called_as != "()" else 0
    if not _takes(unwrap_staticmethod(fn), count, keywords):
        raise TypeError(f"{where} must accept being called as {called_as}{_responder(fn)}")


def _responder(fn: Callable[..., Any]) -> str:
    """Say that no response object is passed, if ``fn`` takes one second as Falcon's do."""
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ""
    if len(names) < 2 or names[1] not in ("resp", "response"):
        return ""
    return f": no {names[1]} is passed (Falcon's): return the answer, a dict, a str or a Response"


def _takes(
    fn: Callable[..., Any], count: int, keywords: Sequence[str], *, partly: bool = False
) -> bool:
    """Tell whether ``fn`` takes ``count`` positional arguments and the ``keywords``
    (``partly``: and maybe others besides).

    A decorator's wrapper (``functools.wraps``) is what gets called, and it may take other
    arguments than the function it names: one that supplies a dependency itself (injector's
    @inject) wraps an error handler of three parameters and takes two, and a plugin's may
    take the request and not pass it on. So each wrapper is checked by its own signature,
    and what a wrapper of only ``*args``/``**kwargs`` wraps is checked after it: such a
    wrapper passes on what it is given (a logging decorator's) and may supply more, so what
    it wraps must take at least what it is given.
    """
    seen: set[int] = set()
    while id(getattr(fn, "__func__", fn)) not in seen:  # NOTE: a __wrapped__ cycle ends it.
        seen.add(id(getattr(fn, "__func__", fn)))
        try:
            own: inspect.Signature | None = inspect.signature(fn, follow_wrapped=False)
        except (TypeError, ValueError):
            own = None  # NOTE: a builtin, or lru_cache's wrapper: no signature to check.
        if own is not None and not _binds(own, count, keywords, partly=partly):
            return False
        inner = getattr(fn, "__wrapped__", None)
        if inner is None or not callable(inner) or (own is not None and not _passes_on(own)):
            return True
        if inspect.ismethod(fn):
            # NOTE: a method's __wrapped__ is its function's, unbound: bound again, so
            # that self is not counted among the arguments given.
            inner = types.MethodType(inner, fn.__self__)
        fn, partly = unwrap_staticmethod(inner), True
    return True


def _binds(
    signature: inspect.Signature, count: int, keywords: Sequence[str] = (), *, partly: bool = False
) -> bool:
    """Tell whether ``signature`` takes ``count`` positional arguments and the ``keywords``
    (``partly``: and maybe others besides)."""
    bind = signature.bind_partial if partly else signature.bind
    try:
        bind(*[None] * count, **dict.fromkeys(keywords))
    except TypeError:
        return False
    return True


def _passes_on(signature: inspect.Signature) -> bool:
    """Tell whether ``signature`` is a wrapper's of only ``*args``/``**kwargs``."""
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return all(p.kind in variadic for p in signature.parameters.values())


def check_handler(handler: Handler, template: str, param_names: Sequence[str]) -> None:
    """Refuse, at registration, a handler that could never be called correctly.

    Raises:
        TypeError: With a message that says what to write instead.
    """
    where = f"handler {getattr(handler, '__qualname__', handler)!r} for {template!r}"
    if is_generator_callable(handler):
        raise TypeError(
            f"{where} is a generator function; to stream, return Response.stream(generator()) "
            "from a def or async def handler"
        )
    if not callable(handler):
        raise TypeError(f"{where} is not callable")
    check_colour(handler, where)
    # NOTE: partly: a plugin's apply() may supply other arguments, checked at startup. By
    # the signature of what is called: a decorator that loads the user of a {user_id} and
    # hands the function the user was refused, by the function's own signature (review141).
    if _takes(unwrap_staticmethod(handler), 0, param_names, partly=True):
        return
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    accepted = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    missing = [name for name in param_names if name not in accepted] or list(param_names)
    raise TypeError(f"{where} must accept the path parameters {missing} as keyword arguments")


def check_call(handler: Callable[..., Any], route: Route, first: str = "request") -> None:
    """Refuse, at startup, a handler that cannot be called as ``(first, **path_params)``.

    ``handler`` is the one the plugins' ``apply()`` gave, which may supply arguments of the
    route's handler itself (a database connection).

    Raises:
        TypeError: Naming the call, which would have failed with a 500 on every request.
    """
    # NOTE: Flask's `def index():` (no request), or a path parameter in the request's place,
    # passed registration and failed on every request (review140).
    where = (
        f"handler {getattr(route.handler, '__qualname__', route.handler)!r} for {route.template!r}"
    )
    called_as = ", ".join([first, *(f"{name}=..." for name in route.param_names)])
    check_arguments(handler, where, f"({called_as})", route.param_names)


NO_CONFIG: Mapping[str, Any] = MappingProxyType({})


def check_prefix(prefix: str, owner: str, reached: str) -> None:
    """Refuse a ``Router`` or ``Static`` prefix (``owner``) that no request could reach its
    ``reached`` under, or only one that no client means.

    Raises:
        TypeError: For a prefix that is no ``str`` (``b"/api"``, ``None``).
        ValueError: For one that does not start with ``/``, ends with one, holds ``//``, a
            ``?`` or ``#``, a %-escape, a control character, a ``.`` or ``..`` segment, or a
            segment that begins or ends with a space; the message names it and says why.
    """
    if not isinstance(prefix, str):
        # NOTE: b"/api" failed with "startswith first arg must be bytes...", None with an
        # AttributeError, neither naming the prefix.
        raise TypeError(f"{owner} prefix must be a str, not {type(prefix).__name__}: {prefix!r}")
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(f"{owner} prefix {prefix!r} must start with '/' and not end with '/'")
    if prefix.startswith("//"):
        # NOTE: said here, where the mistake is, rather than at the first route's template.
        raise ValueError(
            f"{owner} prefix {prefix!r} starts with '//': the leading slashes of a request's "
            f"path collapse into one, so no request could reach its {reached}"
        )
    if "//" in prefix:
        # NOTE: a prefix glued from two ("/api/" + "/v1"): reached only by "/api//v1/...",
        # which a proxy that merges slashes never passes on. A template may still hold one.
        raise ValueError(
            f"{owner} prefix {prefix!r} holds '//', an empty segment that only a request "
            f"with '//' reaches: write {re.sub('/+', '/', prefix)!r}"
        )
    check_reached(prefix, f"{owner} prefix {prefix!r}")


def check_reached(path: str, named: str) -> None:
    """Refuse a prefix or route template, ``path`` (``named`` so in the message), that no
    request reaches, or only one that no client means.

    Raises:
        ValueError: For a ``?`` or ``#``, a %-escape, a control character, a ``.`` or ``..``
            segment, or a segment that begins or ends with a space.
    """
    # NOTE: taken, "/api?x" and "/a%2Fb" were reached by no request ("/a%252Fb" alone, "?"
    # by "%3F"), and "/api\n" (a setting read with its newline) by "/api%0A" alone.
    refused = root_path_refused(path, named)
    if refused is not None:
        raise ValueError(refused)
    if any(segment != segment.strip(" ") for segment in path.split("/")):
        stripped = "/".join(segment.strip(" ") for segment in path.split("/"))
        raise ValueError(
            f"{named} has a segment that begins or ends with a space, which only a request "
            f"with %20 there reaches: write {stripped!r}"
        )


def skip_names(skip: Iterable[str]) -> tuple[str, ...]:
    """Return the plugin names of a ``skip=`` argument.

    Raises:
        TypeError: If ``skip`` is one string: ``skip="csrf"`` would skip ``c``, ``s``, ``r``.
    """
    if isinstance(skip, str):
        raise TypeError(f"skip takes a list of plugin names, not one string: [{skip!r}]")
    return tuple(skip)


@dataclass(frozen=True, slots=True)
class Route:
    """One registered route, as plugins see it in ``apply(handler, route)``.

    Attributes:
        name: The name for ``url_for``: the ``name=`` given, or the handler's ``__name__``.
        template: The full template, router prefix included, such as ``"/api/items/{id:int}"``.
        methods: The HTTP methods it answers, upper case (``HEAD`` is implied by ``GET``).
        handler: The handler as registered, before any plugin wrapped it.
        is_async: Whether the handler is ``async def``: a wrapper must keep that colour.
        offload: For a ``def`` handler under ASGI: whether it runs in the thread pool.
        limits: The route's limits (the app's, changed by those given at registration).
        kind: ``"http"`` or ``"websocket"``.
        skip: Names of the plugins that must not wrap this handler (for a WebSocket route:
            whose flows must leave its handshakes alone), its routers' included.
        config: The read-only mapping given as ``config=`` at registration (empty without one),
            over those of its routers: free settings for plugins, such as ``{"db": False}``.
        added_by: The ``name`` of the plugin whose ``setup()`` added the route; ``None`` for the
            app's own routes.

    A route can be deep-copied, and pickled when its handler can (a module-level function).
    """

    template: str
    methods: frozenset[str]
    handler: Handler
    name: str
    is_async: bool
    offload: bool = True
    limits: RouteLimits | None = None
    kind: str = "http"
    skip: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=lambda: NO_CONFIG, compare=False)
    added_by: str | None = None
    segments: tuple[Segment, ...] = field(default=(), compare=False, repr=False)
    # NOTE: the names of skip that came from its routers: one that changes nothing on this
    # route (a flow-only plugin on an HTTP route) is let be, if it changes something on another.
    _router_skip: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def param_names(self) -> tuple[str, ...]:
        """The names of the template's parameters, in order."""
        return tuple(s.name for s in self.segments if isinstance(s, Param))

    def __reduce__(
        self,
    ) -> tuple[Callable[..., Route], tuple[type[Route], dict[str, Any], dict[str, Any]]]:
        # NOTE: config as a dict, made read-only again by _restored: a mappingproxy is neither
        # pickled nor deep-copied, so a route was neither, where a plugin may keep routes (a
        # cache) or send them on (a process pool's task). The handler is pickled by reference,
        # as Python pickles any function: a lambda's or a nested function's pickle fails so.
        # A subclass's attributes outside the fields (it has a __dict__) go along.
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["config"] = dict(self.config)
        return _restored, (type(self), values, dict(getattr(self, "__dict__", {})))

    def __deepcopy__(self, memo: dict[int, Any]) -> Route:
        # NOTE: the handler is shared, as a deep copy shares a function: a bound method's
        # object, a callable object or a partial was copied ("cannot pickle '_thread.lock'"
        # for a view holding a lock), and the copy was unequal to the route.
        memo[id(self.handler)] = self.handler
        _, (cls, values, attributes) = self.__reduce__()
        try:
            return _restored(cls, copy.deepcopy(values, memo), copy.deepcopy(attributes, memo))
        except Exception as exc:
            _note_uncopied_config(exc, self, memo)
            raise


def _note_uncopied_config(exc: Exception, route: Route, memo: dict[int, Any]) -> None:
    """Note on ``exc``, a deep copy's error, the key of ``route.config`` that could not be
    copied (Python 3.11 on: 3.10 has no notes); nothing where every value copies."""
    # NOTE: it said "cannot pickle '_thread.lock' object" alone, naming neither the route nor
    # the key (review424). Only here, once the copy failed: the copy of each value again, to
    # find it. pickle.dumps(route) fails in pickle's own code, after __reduce__ returned, where
    # no note can be added (Python 3.14 adds its own: "when serializing dict item 'lock'").
    if sys.version_info < (3, 11):
        return
    for key, value in route.config.items():
        try:
            copy.deepcopy(value, dict(memo))
        except Exception:
            note = (
                f"deep-copying the route {route.template!r}: its config[{key!r}] could not be "
                "copied"
            )
            with contextlib.suppress(Exception):
                if note not in getattr(exc, "__notes__", ()):
                    exc.add_note(note)
            return


def _restored(
    cls: type[Route], values: dict[str, Any], attributes: dict[str, Any] | None = None
) -> Route:
    """Make the route that ``Route.__reduce__`` took apart into ``values`` (its fields) and
    ``attributes`` (a subclass's ``__dict__``)."""
    # NOTE: set as Python's own copy of an object sets them, without __init__: a subclass's
    # init=False field is no parameter of it ("unexpected keyword argument").
    route = object.__new__(cls)
    for name, value in values.items():
        if name == "config":
            value = MappingProxyType(value) if value else NO_CONFIG
        object.__setattr__(route, name, value)
    for name, value in (attributes or {}).items():
        object.__setattr__(route, name, value)
    return route


def _refusing_starlettes_call(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``Route.__init__`` so that a call of Starlette's ``Route(path, endpoint)`` says
    how to add the route, where Python's message asked for a ``handler``, ``name`` and
    ``is_async``; the routes the app makes go through as before."""

    @functools.wraps(init)
    def __init__(self: Route, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except TypeError as exc:
            written = _starlette_route_written(args, kwargs)
            if written is None:
                raise
            raise TypeError(
                f"{exc} (Starlette's Route(path, endpoint)): microweb's Route is made by the "
                f"app, for a plugin's apply() to read; write {written}, or the decorator "
                "@app.route(...) on the function"
            ) from None

    return __init__


def _starlette_route_written(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Spell ``app.route(...)(endpoint)`` for Starlette's ``Route(path, endpoint, ...)``
    given as ``args`` and ``kwargs``; ``None`` for any other call."""
    path = args[0] if args else kwargs.get("path")
    # NOTE: microweb's second field is methods, never a callable: Starlette's endpoint.
    endpoint = kwargs.get("endpoint", args[1] if len(args) > 1 else None)
    if not isinstance(path, str) or not callable(endpoint):
        return None
    options = [repr(path)]
    methods = kwargs.get("methods")
    if isinstance(methods, (list, tuple)) and all(isinstance(m, str) for m in methods):
        options.append(f"methods={list(methods)!r}")
    if isinstance(kwargs.get("name"), str):
        options.append(f"name={kwargs['name']!r}")
    # NOTE: a function's own name; any other callable's lookup may run the app's code.
    named = endpoint.__name__ if inspect.isfunction(endpoint) else "endpoint"
    return f"app.route({', '.join(options)})({named})"


# NOTE: set on the class after it is made: the dataclass writes its own __init__.
Route.__init__ = _refusing_starlettes_call(Route.__init__)  # type: ignore[method-assign]


def check_name(known: Iterable[Route], route: Route) -> None:
    """Refuse a route whose name is taken by routes of other templates and other handlers.

    One template under several methods is one route for ``url_for``; one handler under
    several templates (stacked decorators, or a router included in two places) keeps its
    name, and ``url_for`` builds the first. ``known`` holds the routes of that name so far.

    Raises:
        ValueError: If ``url_for(route.name)`` could mean either of two handlers' templates.
    """
    first = None
    for other in known:
        if other.template == route.template or other.handler == route.handler:
            return
        first = first or other
    if first is not None:
        raise ValueError(
            f"two routes are named {route.name!r} ({first.template} and {route.template}): "
            "url_for() could build only one; pass name= to tell them apart"
        )
