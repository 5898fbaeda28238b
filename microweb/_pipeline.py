"""Handling one request, free of I/O: routing, flows and the handler call, with the fast paths
that need no effect (the flows in ``_flows``, the handler inside them in ``_endpoint_call``;
``_calls`` calls the app's code and answers its errors).

Design rules of the core (checked by tests/test_sansio.py):

1. The core never imports ``asyncio`` or ``threading`` and never sees an environ or a scope; only
   the drivers (``_wsgi``, ``_asgi``), the body sources (``_body``) and the bridges
   (``_app_loop``, ``_concurrency``, ``_file_threads``) do I/O.
2. Handling a request is a generator that *yields effects* and is driven by a driver. An effect is
   either an awaitable (an ``async def`` handler, hook or flow step) or an ``Offload`` (a ``def``
   handler that may block). The WSGI driver runs awaitables on the app's loop and offloads
   inline; the ASGI driver awaits them and runs offloads in its thread pool. Everything else,
   sync flows included, runs inline in the generator.
3. Colour is decided at registration. Nothing here inspects a callable per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import CoroutineType, GeneratorType
from typing import TYPE_CHECKING, Any

from ._calls import error_response
from ._effects import Effects, Offload
from ._emission import negotiate_file, plain_answer
from ._endpoint_call import call_endpoint
from ._errors import ClientDisconnect, own_stop
from ._flows import Flows, through_flows, unrouted
from ._plan import Endpoint
from ._response import Response
from ._results import to_response

if TYPE_CHECKING:
    from ._plan import Plan
    from ._request import Request


# NOTE: what respond() returns that the driver does not await (a response, a plain answer, an
# effect generator to drive); anything else is the awaitable of an async def handler.
# PERF: tuple first, a def handler's plain answer under WSGI: one isinstance check, not two
# (with three other cuts, a WSGI hello 20,070 -> 19,700 instructions; docs/performance.md).
NOT_AWAITED = (tuple, Response, GeneratorType)


def respond(
    plan: Plan, request: Request
) -> Response | Effects | tuple[bytes, str] | Awaitable[Any]:
    """Handle ``request`` through the flows and the handler.

    Returns:
        The ``Response`` when no effect was needed; where the thread may block (WSGI), the
        ``plain_answer`` tuple ``(body, content type)`` of a ``def`` handler's plain result
        outside flows; the awaitable of an ``async def`` handler outside flows (anything that
        is none of the others: ``NOT_AWAITED``), whose result or error the driver hands to
        ``settle`` or ``fail``; or else the effect generator that the driver runs to get the
        response.

    Raises:
        ClientDisconnect: If the client left while its body was read; nothing should be sent.
    """
    if plan.flows:
        return through_flows(plan, request, plan.flows, None)
    try:
        found = plan.route(request)
        if not isinstance(found, Endpoint):
            return unrouted(plan, request, found)
        if found.blocking and request.may_block:
            # PERF: a def handler under WSGI without flows is a plain call, with no generator
            # and no effect to drive: 4.7 us a request instead of 5.7 (bench/cells.py --quick,
            # hello, medians of 3 runs).
            params = request.path_params
            # PERF: a route without parameters called with no ** at all: 470 instructions less
            # a call (valgrind, 2026-11-30); here and for an async def handler below.
            result = found.target.fn(request, **params) if params else found.target.fn(request)
            # PERF: a str, dict or list goes to the driver as it is, with no Response (the WSGI
            # driver sends it): a WSGI hello 29,500 -> 22,700 instructions (valgrind).
            plain = plain_answer(result, request.method)
            if plain is not None:
                return plain
        elif found.inline:
            result = _call_inline(found.target.fn, request)
        elif found.rules is not None and found.rules.flows:
            return _through_route_flows(plan, request, found, found.rules.flows)
        elif found.target.is_async:
            # PERF: the driver awaits the handler itself, with no generator to drive: 0.65 us
            # less a request (1.25 us for generator and driver against 0.58 awaited directly);
            # and with no object wrapped around the awaitable, 0.1 us less again (timeit).
            params = request.path_params
            awaitable: Awaitable[Any] = (
                found.target.fn(request, **params) if params else found.target.fn(request)
            )
            if type(awaitable) is not CoroutineType and isinstance(awaitable, NOT_AWAITED):
                # NOTE: a def said to be async (inspect.markcoroutinefunction) may give a
                # Response, tuple or generator, which the driver would take for one of ours
                # (NOT_AWAITED): a 500, as awaiting it gave. PERF: 0.014 us for a coroutine,
                # 0.004 with no check at all (timeit, 2026-11-30).
                raise TypeError(f"{type(awaitable).__name__} returned where an awaitable was due")
            return awaitable
        else:
            return _handled(plan, request, found)
        response = to_response(result)
        # NOTE: settled here, so that flows see the final 304 or 206 of a file response.
        return negotiate_file(response, request) if response.file_info else response
    except ClientDisconnect:
        raise
    except Exception as exc:
        if isinstance(exc, StopIteration):
            # NOTE: a def handler's, called here with no generator between: the error that
            # raise_own() makes of it where there is one.
            return error_response(plan, request, own_stop(exc))
        return error_response(plan, request, exc)


def settle(plan: Plan, request: Request, result: Any) -> Response | Effects:
    """Turn an awaited handler's result into the response (an error's, if it is no value)."""
    try:
        response = to_response(result)
        return negotiate_file(response, request) if response.file_info else response
    except Exception as exc:
        return error_response(plan, request, exc)


def fail(plan: Plan, request: Request, exc: Exception) -> Effects:
    """Answer the error an awaited handler raised.

    Raises:
        ClientDisconnect: If the client left while its body was read; nothing should be sent.
    """
    if isinstance(exc, ClientDisconnect):
        # NOTE: this frame would hold the error that holds it in its traceback: a cycle that
        # kept the request, its body and its form until a full collection.
        try:
            raise exc
        finally:
            del exc
    return error_response(plan, request, exc)


def _through_route_flows(plan: Plan, request: Request, found: Endpoint, flows: Flows) -> Effects:
    # PERF: the closure made here, not in respond(), where it made plan, request and found
    # cells for every request (made, read and freed): a WSGI hello 19,304 -> 18,578 instructions
    # a request, an ASGI one 28,239 -> 27,511 (bench/icount.sh, PYTHONHASHSEED=0, 2026-12-07).
    return through_flows(plan, request, flows, lambda: call_endpoint(plan, request, found))


def _call_inline(fn: Callable[..., Any], request: Request) -> Any:
    request._inline = request._thread_id()
    try:
        return fn(request, **request.path_params)
    finally:
        request._inline = 0


def _handled(plan: Plan, request: Request, found: Endpoint) -> Effects:
    # NOTE: a def handler under ASGI: one effect, the handler's call in the pool.
    target = found.target
    try:
        result = yield Offload(target.fn, (request,), request.path_params)
        response = to_response(result)
        return negotiate_file(response, request) if response.file_info else response
    except ClientDisconnect:
        raise
    except Exception as exc:
        return (yield from error_response(plan, request, exc))
