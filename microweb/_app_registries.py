"""What an app registers besides routes and flows, checked as it is registered: its startup
and shutdown steps (``on_startup``, ``on_shutdown``, ``lifespan``) and its path converters
(``add_converter``)."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ._effects import Colored, Lifespan
from ._plan import StartupSteps
from ._route_templates import Converter
from ._routing import check_arguments, check_colour, is_async_callable, is_generator_callable

F = TypeVar("F", bound=Callable[..., Any])


class HookRegistry:
    """The decorators that register an app's startup and shutdown steps."""

    startup_steps: StartupSteps
    shutdown_hooks: list[Colored]

    def on_startup(self, hook: F) -> F:
        """Run ``hook()`` (sync or async) before the first request is served.

        Raises:
            TypeError: If ``hook`` is a generator function (``lifespan`` takes those), a
                ``def`` wrapper of an ``async def`` function, or cannot be called without
                arguments.
            RuntimeError: If the app's startup ran already (in ``as_wsgi()``, or on the
                server's ``lifespan.startup``) and it has not shut down: the hook would never
                run.
        """
        step = _hook(hook, "startup")
        self._check_not_started(f"startup hook {getattr(hook, '__qualname__', hook)!r}")
        self.startup_steps.append(step)
        return hook

    def on_shutdown(self, hook: F) -> F:
        """Run ``hook()`` (sync or async) when the server stops.

        Raises:
            TypeError: If ``hook`` is a generator function (``lifespan`` takes those), a
                ``def`` wrapper of an ``async def`` function, or cannot be called without
                arguments.
        """
        self.shutdown_hooks.append(_hook(hook, "shutdown"))
        return hook

    def lifespan(self, fn: F) -> F:
        """Hold ``fn(app)``, a context manager, open while the app serves.

        It is entered at startup, in registration order with the startup hooks, and exited at
        shutdown after the shutdown hooks, the last entered first. A mapping it yields goes on
        ``app.state``.

        Args:
            fn: A function of the app that returns a context manager, async or sync (one
                decorated with ``@asynccontextmanager`` or ``@contextmanager``), or a generator
                function, async or not, that yields once (it is made one).

        Raises:
            TypeError: If ``fn`` is an ``async def`` function without ``yield``, or cannot be
                called with the app alone.
            RuntimeError: If the app's startup ran already (in ``as_wsgi()``, or on the
                server's ``lifespan.startup``) and it has not shut down: ``fn`` would never
                be entered.
        """
        step = _lifespan(fn)
        self._check_not_started(f"lifespan {step.name!r}")
        self.startup_steps.append(step)
        return fn

    def _check_not_started(self, what: str) -> None:
        """Refuse a startup step while a callable of the app that ran the startup serves.

        Raises:
            RuntimeError: If one does.
        """
        # NOTE: accepted, it never ran, with no word (fix154). A step registered by a step
        # during the startup still runs (run_startup reads the live list), and so does one
        # registered after as_asgi() but before the server starts the app.
        if self.startup_steps.serving:
            raise RuntimeError(
                f"{what} registered after the app's startup ran would never run: register it "
                "before as_wsgi() (which runs the startup), or before the ASGI server starts "
                "the app (its lifespan.startup, or the first request). A callable counts as "
                "started until it shuts down: close() under WSGI, lifespan.shutdown under ASGI "
                "(one served without lifespan messages never does), the close of a TestClient"
            )


class ConverterRegistry:
    """The registration of an app's path converters."""

    _converters: dict[str, Converter]

    def add_converter(
        self, name: str, to_python: Callable[[str], Any], to_url: Callable[[Any], str] = str
    ) -> None:
        """Register a path converter usable as ``{param:name}`` in templates added after this.

        Args:
            name: The converter's name in templates.
            to_python: Turns a segment into a value; raises ``ValueError`` when it does not fit.
            to_url: Turns a value back into a segment (a ``str``), for ``url_for``.

        Raises:
            ValueError: If a converter of that name is registered, a built-in one included.
            TypeError: If ``to_python`` or ``to_url`` is ``async def``, a generator function,
                or cannot be called with one value.
        """
        if name in self._converters:
            raise ValueError(f"converter {name!r} is already registered")
        for role, fn in (("to_python", to_python), ("to_url", to_url)):
            where = f"converter {name!r}: {role} {getattr(fn, '__qualname__', fn)!r}"
            if is_async_callable(fn) or is_generator_callable(fn):
                # NOTE: an async def to_python handed the handler a coroutine, never awaited
                # (review140): the path is matched synchronously.
                raise TypeError(
                    f"{where} must be a plain def function returning the value: the path is "
                    "matched synchronously; load what the segment names in the handler"
                )
            check_arguments(fn, where, "(value)")
        self._converters[name] = Converter(name, to_python, to_url)


def _hook(hook: Callable[..., Any], kind: str) -> Colored:
    """Check a startup or shutdown ``hook`` and return it with its colour.

    Raises:
        TypeError: If ``hook`` is a generator function (``@app.lifespan`` takes those), a
            ``def`` wrapper of an ``async def`` function, or cannot be called without
            arguments.
    """
    where = f"{kind} hook {getattr(hook, '__qualname__', hook)!r}"
    if is_generator_callable(hook):
        # NOTE: a lifespan (Starlette's, FastAPI's) given as a hook ran nothing: called, it
        # only makes a generator, which nobody iterated.
        raise TypeError(
            f"{where} is a generator function, whose code would never run: for code around "
            "the app's serving (startup before the yield, shutdown after it), register it "
            "with @app.lifespan, called with the app; else remove the yield"
        )
    check_colour(hook, where)
    check_arguments(hook, where, "()")
    return Colored(hook, is_async_callable(hook))


def _lifespan(fn: Callable[..., Any]) -> Lifespan:
    """Check a lifespan function; make a generator function a context manager's.

    Raises:
        TypeError: If ``fn`` is an ``async def`` function without ``yield``, or cannot be
            called with the app alone.
    """
    name = getattr(fn, "__qualname__", repr(fn))
    where = f"lifespan {name!r}"
    check_arguments(fn, where, "(app)")
    if inspect.isasyncgenfunction(fn):
        return Lifespan(contextlib.asynccontextmanager(fn), name)
    if inspect.isgeneratorfunction(fn):
        return Lifespan(contextlib.contextmanager(fn), name)
    if inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"{where} is an async def function without yield: write `yield` where the app "
            "serves (before it is startup, after it shutdown)"
        )
    return Lifespan(fn, name)
