"""The flows and error handlers that ``App`` and ``Router`` register, checked and given
their colour as they are registered."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ._effects import Colored
from ._errors import ClientDisconnect
from ._plan import ErrorHandler
from ._routing import (
    check_arguments,
    check_colour,
    is_async_callable,
    is_generator_callable,
    unwrap_staticmethod,
)


def as_flow(flow: Callable[..., Any]) -> Colored:
    """Return ``flow`` with its colour, checking that it is a generator function.

    Raises:
        TypeError: If ``flow`` is not a generator function (sync or async).
    """
    where = f"flow {getattr(flow, '__qualname__', flow)!r}"
    function = unwrap_staticmethod(flow)
    if inspect.isasyncgenfunction(function):
        check_arguments(flow, where, "(request)")
        return Colored(flow, True)
    if inspect.isgeneratorfunction(function):
        check_arguments(flow, where, "(request)")
        return Colored(flow, False)
    if is_generator_callable(flow):
        # NOTE: a middleware class's port (Falcon's, Starlette's) whose __call__ yields: the
        # bare "must be a generator function" read as wrong, since its code is one.
        raise TypeError(
            f"{where} is an object whose __call__ is a generator function; a flow is a "
            "generator function or method: register the bound method, "
            "app.middleware(instance.__call__)"
        )
    raise TypeError(
        f"{where} must be a generator function: "
        "write `response = yield` where the rest of the stack runs"
    )


def check_error_key(key: int | type[Exception]) -> None:
    """Check what an error handler is registered for: a 4xx/5xx status or an exception class.

    Raises:
        ValueError: If a status is not 4xx or 5xx.
        TypeError: If the key is neither a status nor a subclass of ``Exception``, or is one
            that no handler would see (``ClientDisconnect``, ``StopIteration``).
    """
    if isinstance(key, int) and not 400 <= key <= 599:
        raise ValueError(f"error handlers take a 4xx or 5xx status, got {key}")
    if isinstance(key, int):
        return
    if not (isinstance(key, type) and issubclass(key, BaseException)):
        raise TypeError(f"error_handler() takes a status or an exception class, got {key!r}")
    if issubclass(key, ClientDisconnect):
        # NOTE: registered, it never ran: nobody is left to answer (review172).
        raise TypeError(
            f"error_handler() got {key.__name__}: a client that left gets no answer, so no "
            "error handler runs for it; clean up in a try/finally around the body's read"
        )
    if issubclass(key, StopIteration):
        # NOTE: registered, it never ran: see the errors page on StopIteration.
        raise TypeError(
            f"error_handler() got {key.__name__}: app code's StopIteration reaches error "
            "handlers as a RuntimeError, with it as the __cause__ (PEP 479); register "
            "RuntimeError"
        )
    if not issubclass(key, Exception):
        # NOTE: KeyboardInterrupt, SystemExit, CancelledError stop the server or the task; no
        # request ever reaches a handler for them, so registering one is a mistake to tell.
        raise TypeError(
            f"error_handler() takes a subclass of Exception, got {key.__name__}: a request's "
            "error is always an Exception (register Exception to catch them all), and "
            "KeyboardInterrupt, SystemExit or CancelledError end the server or the task"
        )


def error_handler_entry(key: int | type[Exception], handler: Callable[..., Any]) -> ErrorHandler:
    """Return ``handler`` for ``key`` with its colour.

    Raises:
        TypeError: If ``handler`` is a generator function, a ``def`` wrapper of an
            ``async def`` function, or cannot be called as ``(request, exc)``.
    """
    where = f"error handler {getattr(handler, '__qualname__', handler)!r}"
    if is_generator_callable(handler):
        # NOTE: taken, it answered each of its errors with a logged 500 ("a handler returned
        # generator"), as a route handler would: refused at registration as one is.
        raise TypeError(
            f"{where} is a generator function; to stream, return Response.stream(generator()) "
            "from a def or async def error handler"
        )
    check_colour(handler, where)
    check_arguments(handler, where, "(request, exc)")
    return ErrorHandler(key, Colored(handler, is_async_callable(handler)))
