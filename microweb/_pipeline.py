"""Handling one request, free of I/O: routing, flows and the handler call (``_calls`` calls
the app's code and answers its errors).

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

from collections.abc import Awaitable, Callable, Sequence
from inspect import CO_GENERATOR, CORO_CREATED, getcoroutinestate, iscoroutine
from types import CoroutineType, GeneratorType
from typing import TYPE_CHECKING, Any, cast

from ._calls import call, error_response, logger, refusal
from ._effects import (
    Colored,
    Effects,
    Ending,
    Offload,
    call_own_exit_carried,
    closing_here,
    own_exit_carried,
)
from ._emission import close_replaced, negotiate_file, plain_answer
from ._errors import (
    ClientDisconnect,
    HTTPError,
    is_asyncio_cancellation,
    own_stop,
    raise_own,
    raise_own_cancellation,
)
from ._errors import refused as router_refusal
from ._plan import Endpoint
from ._response import Response
from ._results import copied, to_response

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
        return _through_flows(plan, request, plan.flows, None)
    try:
        found = plan.route(request)
        if not isinstance(found, Endpoint):
            return _unrouted(plan, request, found)
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
            return _through_flows(
                plan, request, found.rules.flows, lambda: _call(plan, request, found)
            )
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


def _unrouted(
    plan: Plan, request: Request, refused: HTTPError | list[str], in_flows: bool = False
) -> Response | Effects:
    """Answer a request no route takes: ``OPTIONS`` (``refused`` is the methods it allows), or
    the router's refusal (404, 405...), returned by ``Plan.route`` and not raised."""
    if not isinstance(refused, HTTPError):
        return Response(b"", 204, {"allow": ", ".join(refused)})
    # PERF: no exception raised and caught through the generators, and where no error handler
    # can see it, no generator at all: a WSGI 404 113,500 -> 67,700 instructions (refusal()).
    return refusal(plan, request, refused, in_flows)


def dispatch_handshake(plan: Plan, request: Request) -> Effects:
    """Run the flows around a WebSocket handshake.

    Returns:
        ``None`` to accept (with the headers the flows set, in ``request.state``), or the
        ``Response`` a flow answered with instead, which refuses the handshake.
    """
    handshake = Response(b"")
    # NOTE: the status flows see on an accepted handshake; set past the check, which refuses a
    # 1xx from an app, since the server sends this one itself.
    handshake._status = 101
    flows: Flows = plan.flows
    route = request.route
    if route is not None and route.skip:
        flows = _not_skipped(plan, route.skip)
    rules = plan.router_rules.get(id(route)) if plan.router_rules else None
    if rules is not None and rules.flows:
        # NOTE: a router's flows inside the app's, as around its HTTP routes: its auth flow
        # was skipped for its WebSocket routes, which it was there to guard.
        flows = [*flows, *rules.flows]
    response = yield from _through_flows(plan, request, flows, lambda: _accept(handshake))
    # NOTE: by its status, not by identity: each flow passes on a copy (see _finish), and an
    # app's Response cannot have a 1xx.
    if response._status != 101:
        # NOTE: never sent (plain ASGI can only refuse): a stream of it is closed all the same.
        close_replaced(request, response, None)
        return response
    setattr(request.state, HANDSHAKE_HEADERS, response.headers)
    return None


def refuse_handshake(plan: Plan, request: Request, refused: Exception | None) -> Effects:
    """Run the app's flows around the refusal of a WebSocket handshake no route takes.

    Args:
        plan: The app's plan.
        request: The handshake.
        refused: The error that refuses it (the 400 of a malformed path, a path converter's
            error), or ``None`` for a path with no WebSocket route: the 404 an HTTP request
            for it gets, which the error handlers answer.

    Returns:
        The response that refuses the handshake.
    """
    # NOTE: as an HTTP request's 404 goes through the flows: refused before them, the
    # handshake had no request ID, no security header, and no AccessLog line.
    # NOTE: the generator, not a closure over ``refused``: the error's traceback holds the
    # frame that holds the closure, a cycle that kept the request until a full collection.
    refusing = _refused_handshake(plan, request, refused)
    return _through_flows(plan, request, plan.flows, lambda: refusing)


def _refused_handshake(plan: Plan, request: Request, refused: Exception | None) -> Effects:
    yield from ()  # NOTE: an effect generator like _endpoint, with no effects of its own.
    if refused is None:
        # NOTE: it was an empty 403 that no error handler saw (a 404 page's, a handler that
        # logs), where an HTTP request for the path gets its 404 through them.
        refused = router_refusal(404)
    elif request.path_is_valid or not isinstance(refused, HTTPError):
        try:
            raise refused  # NOTE: a converter's error, thrown in at the flows, as over HTTP.
        finally:
            del refused  # NOTE: no cycle through this frame and the traceback.
    # NOTE: the router's 404, or its 400 of a path that is not one, which the flows see as a
    # response, as over HTTP.
    answer = refusal(plan, request, refused, in_flows=True)
    return answer if isinstance(answer, Response) else (yield from _own_exit_out(answer))


# NOTE: the attribute of request.state that holds the headers the flows set on a handshake's
# 101, for accept() and a refusal: a name no app can write as an attribute, since
# request.state is the app's. As "handshake_headers", an app's own dict there went out as
# response headers (request headers a handler kept there, on the refusal and on the 101).
HANDSHAKE_HEADERS = "microweb.handshake_headers"


def _not_skipped(plan: Plan, skip: Sequence[str]) -> list[Colored]:
    """The app's flows but those of the plugins a WebSocket route skips."""
    # NOTE: by identity: one function registered twice makes two equal Colored values.
    left_out = {id(flow) for name in skip for flow in plan.plugin_flows.get(name, ())}
    return [flow for flow in plan.flows if id(flow) not in left_out]


def _accept(handshake: Response) -> Effects:
    yield from ()  # NOTE: an effect generator like _endpoint, with no effects of its own.
    return handshake


Inner = Callable[[], Effects] | None
Flows = Sequence[Colored]
# NOTE: flows that caught an error and yielded nothing, innermost first, with their generators.
Waiting = list[tuple[Colored, Any]]


def _through_flows(plan: Plan, request: Request, flows: Flows, inner: Inner) -> Effects:
    waiting: Waiting = []
    try:
        try:
            return (yield from _layer(plan, request, flows, 0, inner, waiting))
        except ClientDisconnect:
            raise
        except Exception as exc:
            # NOTE: no flow answered: the error's response goes out through the flows that
            # wait. An error handler may find the client gone (ClientDisconnect) meanwhile.
            response = yield from _answer_in_flows(plan, request, exc)
            return (yield from _deliver(plan, request, waiting, response))
    except BaseException as exc:
        _unmark_failed_handler(request)
        if _unanswered(exc):
            yield from _close_all(waiting, exc)
        if type(exc) is not _OwnExit:
            raise
        ended = exc.ended
    # NOTE: raised outside the except clause, or the carrier would be its __context__.
    try:
        raise ended
    finally:
        del ended  # NOTE: no cycle through this frame and the error's traceback.


def _answer_in_flows(
    plan: Plan, request: Request, exc: Exception, in_flows: bool = False
) -> Effects:
    """``error_response()`` where flows wait around it: an error handler's own
    ``GeneratorExit`` comes out as ``_OwnExit``, as a handler's does."""
    return (yield from _own_exit_out(error_response(plan, request, exc, in_flows=in_flows)))


def _own_exit_out(answer: Effects) -> Effects:
    """Run ``answer``, an error handler's where flows wait around it; its ``GeneratorExit``
    comes out as ``_OwnExit``. Also for a refusal's answer (a 404 handler's): its own went
    out as it was, and the flows were left to its traceback's collection (review336)."""
    try:
        return (yield from answer)
    except GeneratorExit as ending:
        if _at_a_yield(ending):
            raise  # NOTE: this generator's closing, thrown in where it waited.
        # NOTE: app code's own (a def error handler, called plainly): let go as it was, it
        # left the flows outside open until its traceback was let go (review328). One thrown
        # back in by a driver closes the core as a whole (a yield from hands it to close()).
        raise _OwnExit(ending) from None


def _at_a_yield(exc: BaseException) -> bool:
    """Tell whether ``exc`` was raised where a generator of ours waited at a ``yield`` (its
    closing), not in app code: every frame of its traceback is a generator's, those of the
    ``yield from`` chain down to that ``yield``.

    NOTE: not by the innermost frame alone: an error handler's GeneratorExit that came out of
    a generator it drove (a throw() it let out) was taken for the core's closing and went out
    as it was, the flows outside left to its traceback's collection (review336). App code's
    passes through a frame that is no generator's: the error handler's own, a coroutine's, the
    pool's.
    """
    traceback = exc.__traceback__
    while traceback is not None:
        if not traceback.tb_frame.f_code.co_flags & CO_GENERATOR:
            return False
        traceback = traceback.tb_next
    return True


def _called_plainly(target: Colored, request: Request) -> bool:
    """Tell whether ``call()`` calls ``target`` with no ``yield``: a ``def`` one, inline or
    where the thread may block (WSGI)."""
    return not target.is_async and (not target.offload or request.may_block)


class _OwnExit(BaseException):
    """The ``GeneratorExit`` of a handler (``_call``, ``_call_carried``), an error handler
    (``_own_exit_out``) or a flow of either colour (``_advance``), carried out through the flows,
    which close as for a ``KeyboardInterrupt`` (see ``_cut_off``), and raised again as it was
    by ``_through_flows``."""

    def __init__(self, ended: GeneratorExit) -> None:
        super().__init__(repr(ended))
        self.ended = ended


def _unmark_failed_handler(request: Request) -> None:
    """Take the mark of an error handler's failure off ``request`` where no error response
    is made for it (see ``error_response``): it holds the request in its traceback.

    PERF: on these paths only, not in a ``finally``: the look-up of the slot, unset, took
    0.22 us a request (timeit of getattr on an unset slot, 2026-12-05).
    """
    if getattr(request, "_failed_handler", None) is not None:
        request._failed_handler = None


def _unanswered(exc: BaseException) -> bool:
    """Tell whether ``exc`` ends the request with nobody to answer: the client left, or the
    server cut the request off. The flows that wait are closed then, not given a response."""
    return isinstance(exc, ClientDisconnect) or _cut_off(exc)


def _cut_off(exc: BaseException) -> bool:
    """Tell whether ``exc`` ends the request with nothing to answer: a server's cancellation.

    The flows are closed then, as when the client leaves (``GeneratorExit`` at their ``yield``),
    and their ``finally`` blocks run before it goes on; the driver throws it in for that.
    ``GeneratorExit`` itself is the closing of the whole generator, where nothing may be awaited.
    """
    return not isinstance(exc, (Exception, GeneratorExit))


def _layer(
    plan: Plan, request: Request, flows: Flows, index: int, inner: Inner, waiting: Waiting
) -> Effects:
    if index == len(flows):
        if inner is not None:
            return (yield from inner())
        return (yield from _endpoint(plan, request, waiting))
    flow = flows[index]
    gen = flow.fn(request)
    first, done = yield from _advance(request, gen, flow.is_async, None, None)
    if done:
        # NOTE: from None: an async flow's StopAsyncIteration, thrown back in by the driver
        # from its except clause, was chained to it in the log, as if the flow had failed.
        raise RuntimeError(f"flow {flow.fn.__qualname__} ended without yielding once") from None
    if first is not None:
        yield from _end_flow(request, flow, gen, first)
        return _flow_response(request, flow, first)
    try:
        response = yield from _layer(plan, request, flows, index + 1, inner, waiting)
    except Exception as exc:
        if isinstance(exc, ClientDisconnect):
            yield from _close(gen, flow.is_async)
            raise
        error = exc
    except BaseException as exc:
        if _cut_off(exc):
            yield from _close_cut_off(flow, gen, exc)
        raise
    else:
        return (yield from _finish(request, flow, gen, response))
    # NOTE: offered outside the except clause: there, an error the flow raised of its own
    # after it had caught this one got it as its __context__ in the log, as if it had failed
    # while handling it.
    try:
        return (yield from _offer(plan, request, flow, gen, error, waiting))
    finally:
        del error  # NOTE: no cycle through this frame and the traceback (see _advance).


def _offer(
    plan: Plan, request: Request, flow: Colored, gen: Any, exc: Exception, waiting: Waiting
) -> Effects:
    """Throw ``exc`` in at the flow's ``yield``: the flow answers it, waits, or lets it pass."""
    try:
        try:
            out, done = yield from _advance(request, gen, flow.is_async, None, exc)
        except BaseException as cut:
            if _cut_off(cut):
                # NOTE: a cut at its step that never ran (see _finish) (review345).
                yield from _close_cut_off(flow, gen, cut)
            raise
        if done:
            raise exc  # NOTE: the flow ended without answering: the error stands.
        if out is None:
            # NOTE: the flow yielded nothing: it gets the response this error becomes, further out.
            waiting.append((flow, gen))
            raise exc
    finally:
        del exc  # NOTE: no cycle through this frame and the traceback (see _advance).
    _unmark_failed_handler(request)  # NOTE: the flow answered it.
    yield from _end_flow(request, flow, gen, out)
    return (yield from _deliver(plan, request, waiting, _flow_response(request, flow, out)))


def _finish(request: Request, flow: Colored, gen: Any, response: Response) -> Effects:
    try:
        out, done = yield from _advance(request, gen, flow.is_async, response, None)
        if not done:
            yield from _end_flow(request, flow, gen, out, response)
        if out is None or out is response:
            # NOTE: a copy goes on out, the same stream in it: the flow may keep the response
            # it was given (a cache of pages), and the flows outside it change theirs for this
            # request alone. Kept, it got the session cookie Sessions adds further out, and
            # gave it to the next client it answered.
            return copied(response, reread=False)
        final = _flow_response(request, flow, out)
    except BaseException as exc:
        close_replaced(request, response, None)  # NOTE: an error's response takes its place.
        if _cut_off(exc):
            # NOTE: a cut at its step that never ran (the WSGI app loop stopped, the step
            # closed unrun): the flow still waits at its yield (review345). One that ran has
            # ended, and its aclose() does nothing.
            yield from _close_cut_off(flow, gen, exc)
        raise
    close_replaced(request, response, final)
    return final


def _end_flow(
    request: Request, flow: Colored, gen: Any, out: Any, kept: Response | None = None
) -> Effects:
    """Close the flow that yielded ``out``; where its cleanup fails, ``out`` goes unsent.

    Its stream is then closed as a replaced one is, unless ``out`` is ``kept`` (the response
    the flow was given, which ``_finish`` closes) or streams the very same object.
    """
    try:
        yield from _close(gen, flow.is_async)
    except BaseException as error:
        if isinstance(out, Response) and out is not kept:
            close_replaced(request, out, kept)
        if not flow.is_async:
            raise_own_cancellation(error)  # NOTE: a sync flow's cleanup's own.
        raise


def _deliver(plan: Plan, request: Request, waiting: Waiting, response: Response) -> Effects:
    """Send ``response`` to the flows waiting for it, innermost first; return the last word."""
    try:
        while waiting:
            flow, gen = waiting.pop(0)
            try:
                response = yield from _finish(request, flow, gen, response)
            except ClientDisconnect:
                raise
            except Exception as exc:
                # NOTE: a waiting flow that fails is answered like any error, for those still
                # waiting (unless the error handler finds the client gone).
                response = yield from _answer_in_flows(plan, request, exc)
    except BaseException as exc:
        if _unanswered(exc):
            yield from _close_all(waiting, exc)  # NOTE: innermost first, before those outside.
        raise
    return response


def _advance(
    request: Request, gen: Any, is_async: bool, value: Any, exc: Exception | None
) -> Effects:
    try:
        if is_async:
            try:
                out = yield (_athrow(gen, exc) if exc is not None else gen.asend(value))
            except Ending as carrier:
                # NOTE: the flow's own GeneratorExit, carried out as a def flow's is (_OwnExit):
                # by _athrow, or by the driver for a step (flow_step_ending). Thrown back in as
                # it was, it closed the core as a whole (a throw() at a yield from closes what
                # it delegates to), and an async flow outside was left to its collection
                # ("ignored GeneratorExit") (review336).
                raise _OwnExit(cast("GeneratorExit", carrier.ended)) from None
            if out is _ENDED:
                return None, True
        else:
            request._inline = request._thread_id()
            try:
                out = gen.throw(exc) if exc is not None else gen.send(value)
            except BaseException as error:
                raise_own_cancellation(error)  # NOTE: a sync flow's own.
                if isinstance(error, GeneratorExit):
                    # NOTE: its own too (send() and throw() are no closing), carried out as a
                    # def handler's is (_OwnExit): raised as it was, it left the flows
                    # outside open until its traceback was let go (review322).
                    raise _OwnExit(error) from None
                raise
            finally:
                request._inline = 0
    except StopAsyncIteration:
        return None, True
    except StopIteration as stop:
        # NOTE: the response it was given, returned as Flask's after_request hooks return
        # theirs, is the one passing anyway.
        if stop.value is not None and stop.value is not value:
            _refuse_returned(gen, stop.value)
        return None, True
    finally:
        # NOTE: the error thrown in comes back out through this frame when the flow lets it
        # pass: kept here, it would make a cycle with its traceback, and the request, its body
        # and form would wait for a full garbage collection.
        del exc
    return out, False


def _refuse_returned(gen: Any, value: Any) -> None:
    # NOTE: a def flow's `return some_response` (an async def one's is a SyntaxError) went
    # nowhere: the response it meant to replace, or the error it meant to answer, went out.
    raise TypeError(
        f"flow {gen.__qualname__} returned {type(value).__name__}: a flow answers by yielding "
        "a Response, so yield it (then return nothing)"
    ) from None


async def _athrow(gen: Any, exc: Exception) -> Any:
    # NOTE: not gen.athrow(exc) as the effect: that object keeps exc, and the frames that held
    # the effect (the drivers', the app loop's) are in its traceback when the flow lets it pass.
    try:
        return await gen.athrow(exc)
    except GeneratorExit as own:
        if closing_here(own):
            raise  # NOTE: this coroutine's closing.
        raise Ending(own) from None  # NOTE: the flow's own (see _advance).
    except StopAsyncIteration:
        # NOTE: the flow ended on it (caught it and returned): told by a value, not thrown
        # back in by the driver from its except clause, where the error that goes on out got
        # the StopAsyncIteration as its __context__ ("During handling of the above exception").
        return _ENDED
    finally:
        del exc


_ENDED = object()


def _close(gen: Any, is_async: bool) -> Effects:
    if is_async:
        yield gen.aclose()
    else:
        gen.close()


def _close_all(waiting: Waiting, ending: BaseException) -> Effects:
    while waiting:
        flow, gen = waiting.pop(0)
        if _cut_off(ending):
            yield from _close_cut_off(flow, gen, ending)
        else:
            yield from _close(gen, flow.is_async)


def _close_cut_off(flow: Colored, gen: Any, ending: BaseException) -> Effects:
    """Close a flow that ``ending`` cut off (``_cut_off``); an error of its cleanup is logged.

    The ending goes on: the error must not take its place, or the flows outside would answer a
    request the server gave up on, and its task would end as if not cancelled.
    """
    if _runs_on(flow, gen):
        # NOTE: a step of it ignored its cancellation past the app loop's stop: its aclose()
        # raised Python's "aclose(): asynchronous generator is already running", logged as
        # the flow's failure (review364).
        _left_to_collection(flow, ending, "a step of it ignored its cancellation and still runs")
        return
    try:
        yield from _close(gen, flow.is_async)
    except TimeoutError as exc:
        if not flow.is_async or getattr(gen, "ag_frame", None) is None:
            logger.exception("flow %s failed while %s", flow.fn.__qualname__, _why_closed(ending))
            return
        # NOTE: its cleanup ignored its cancellation, and the closing of its aclose() did not
        # reach it (before Python 3.13): left to its collection with no word (review364).
        _left_to_collection(
            flow, ending, f"its cleanup ignored its cancellation ({exc}) and could not be closed"
        )
    except Exception:
        logger.exception("flow %s failed while %s", flow.fn.__qualname__, _why_closed(ending))
    except BaseException:
        if _runs_on(flow, gen):
            # NOTE: its cleanup, begun on the app loop (a server's cut), ignored its
            # cancellation past that loop's stop: asyncio's "Task was destroyed but it is
            # pending!" named a task of the loop's, not the flow (review364).
            _left_to_collection(flow, ending, "its cleanup ignored its cancellation")
        raise


def _runs_on(flow: Colored, gen: Any) -> bool:
    """Whether ``gen``, an async flow's, is running (a step of it, or its cleanup)."""
    return flow.is_async and bool(getattr(gen, "ag_running", False))


def _left_to_collection(flow: Colored, ending: BaseException, why: str) -> None:
    logger.warning(
        "flow %s was left to its collection while %s: %s; its finally blocks run when it is "
        "collected",
        flow.fn.__qualname__,
        _why_closed(ending),
        why,
    )


def _why_closed(ending: BaseException) -> str:
    """Say what closed the flows for a cut (``_cut_off``): the log of a flow's failing cleanup
    said "its request was cancelled" for a handler's own ``GeneratorExit`` or ``SystemExit``."""
    if is_asyncio_cancellation(ending):
        return "its request was cancelled"
    if type(ending) is _OwnExit:
        ending = ending.ended
    return f"closing for a {type(ending).__name__}"


def _flow_response(request: Request, flow: Colored, value: Any) -> Response:
    if not isinstance(value, Response):
        raise TypeError(
            f"flow {flow.fn.__qualname__} yielded {type(value).__name__}; yield a Response to "
            "answer, or yield nothing to go on"
        )
    if value.file_info is not None:
        # NOTE: settled as a handler's file is (on a copy): a flow's file (a single-page app's
        # fallback page) sent Last-Modified, yet never answered a 304 or a range.
        return negotiate_file(value, request)
    return copied(value)  # NOTE: the flows outside change it; the app may keep it (see _call).


def _endpoint(plan: Plan, request: Request, waiting: Waiting) -> Effects:
    try:
        found = plan.route(request)
    except ClientDisconnect:
        raise
    except Exception as exc:
        # NOTE: a path converter's error, answered inside the flows as a handler's is: a bug
        # that its class handler answered was thrown into them, and answered outside them.
        handler = plan.error_handler_of(exc, request.route)
        if not isinstance(exc, HTTPError) and (handler is None or handler.key == 500):
            raise
        return (yield from _answer_in_flows(plan, request, exc, in_flows=True))
    if not isinstance(found, Endpoint):
        answer = _unrouted(plan, request, found, in_flows=True)
        return answer if isinstance(answer, Response) else (yield from _own_exit_out(answer))
    rules = found.rules
    if rules is not None and rules.flows:
        # NOTE: the router's flows, inside the app's; they share the flows that wait for an
        # error's response, so an unanswered error still reaches the app's flows.
        inner = lambda: _call(plan, request, found)  # noqa: E731
        return (yield from _layer(plan, request, rules.flows, 0, inner, waiting))
    return (yield from _call(plan, request, found))


def _call_carried(found: Endpoint, request: Request) -> Effects:
    """Call an ``async def`` handler, or a ``def`` one in the pool, inside flows; its own
    ``GeneratorExit`` comes out as ``_OwnExit``, as a plainly called ``def`` handler's does.

    NOTE: carried (own_exit_carried): thrown back in by the driver as it was, it closed the
    core as a whole, and an async flow outside was left to its collection, unclosed where it
    awaited in its finally, and a flow's failing cleanup was no one's to log (review332).
    """
    target, params = found.target, request.path_params
    awaitable: Any = None
    if target.is_async:
        try:
            awaitable = target.fn(request, **params)
        except GeneratorExit as exc:
            # NOTE: a def said to be async (inspect.markcoroutinefunction) raises as it is
            # called, not at the carrier's await: its own, raised as it was, left the flows
            # outside to its traceback's collection (review336).
            raise _OwnExit(exc) from None
        effect: Any = own_exit_carried(awaitable)
    else:
        effect = Offload(call_own_exit_carried, (target.fn, request), params)
    try:
        return (yield effect)
    except Ending as carrier:
        raise _OwnExit(cast("GeneratorExit", carrier.ended)) from None
    except BaseException:
        # NOTE: this generator's closing at the yield (the app loop stopped), or the app
        # loop's refusal (a loop closed as it was handed the call: RuntimeError): where the
        # carrier never began, the handler's coroutine, never awaited, would warn so; the app
        # loop closes the carrier alone (review336).
        # NOTE: a coroutine only: a def said to be async may give anything (a Response, a
        # generator), whose error at the carrier's await, thrown in here, must go on as it is.
        if iscoroutine(awaitable) and getcoroutinestate(awaitable) == CORO_CREATED:
            awaitable.close()
        raise


def _call(plan: Plan, request: Request, found: Endpoint) -> Effects:
    try:
        if found.blocking and request.may_block:
            # NOTE: a def handler under WSGI is a plain call, as in respond(): no effect, no
            # extra generator.
            try:
                result = found.target.fn(request, **request.path_params)
            except BaseException as exc:
                raise_own(exc)
                if isinstance(exc, GeneratorExit):
                    raise _OwnExit(exc) from None  # NOTE: see below.
                raise
        elif found.target.is_async or (found.target.offload and not request.may_block):
            result = yield from _call_carried(found, request)
        else:
            try:
                result = yield from call(found.target, request, **request.path_params)
            except GeneratorExit as exc:
                if not _called_plainly(found.target, request):
                    raise  # NOTE: at call()'s yield: this generator's closing.
                # NOTE: raised by a plain call (a def handler under WSGI, or one with
                # offload=False), not at a yield: app code's own, no closing of this
                # generator. Let go as it was, it left the flows open until its traceback,
                # which held their frames, was let go (review319).
                raise _OwnExit(exc) from None
        # NOTE: the flows change the response they are given; a Response the app keeps and
        # returns again (a module's constant) must not keep what they add for this request:
        # one user's session cookie went to the next client it was returned to (review141).
        if isinstance(result, Response) and result.file_info is None:
            return copied(result)
        # NOTE: a file Response is copied by negotiate_file, which settles here, so that flows
        # see the final 304 or 206 of a file response.
        response = to_response(result)
        return negotiate_file(response, request) if response.file_info else response
    except ClientDisconnect:
        raise
    except Exception as exc:
        handler = plan.error_handler_of(exc, request.route)
        if not isinstance(exc, HTTPError) and (handler is None or handler.key == 500):
            raise  # NOTE: unexpected errors are thrown in at the flows' yield: they may answer.
        return (yield from _answer_in_flows(plan, request, exc, in_flows=True))
