"""The flows around a request (``through_flows``): each one stepped to its ``yield``, given the
response (or the error) of those inside it, closed; the route found inside them (a router's
flows inside the app's) and its handler called, or the router's refusal answered."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from ._calls import refusal
from ._effects import Colored, Effects, Ending, closing_here
from ._emission import close_replaced, negotiate_file
from ._endpoint_call import call_endpoint
from ._errors import ClientDisconnect, HTTPError, raise_own_cancellation
from ._flow_closing import (
    OwnExit,
    Waiting,
    answer_in_flows,
    close_all,
    close_cut_off,
    close_flow,
    is_cut_off,
    own_exit_out,
    unanswered,
    unmark_failed_handler,
)
from ._plan import Endpoint
from ._response import Response
from ._results import copied

if TYPE_CHECKING:
    from ._plan import Plan
    from ._request import Request


Inner = Callable[[], Effects] | None
Flows = Sequence[Colored]


def through_flows(plan: Plan, request: Request, flows: Flows, inner: Inner) -> Effects:
    waiting: Waiting = []
    try:
        try:
            return (yield from _layer(plan, request, flows, 0, inner, waiting))
        except ClientDisconnect:
            raise
        except Exception as exc:
            # NOTE: no flow answered: the error's response goes out through the flows that
            # wait. An error handler may find the client gone (ClientDisconnect) meanwhile.
            response = yield from answer_in_flows(plan, request, exc)
            return (yield from _deliver(plan, request, waiting, response))
    except BaseException as exc:
        unmark_failed_handler(request)
        if unanswered(exc):
            yield from close_all(waiting, exc)
        if type(exc) is not OwnExit:
            raise
        ended = exc.ended
    # NOTE: raised outside the except clause, or the carrier would be its __context__.
    try:
        raise ended
    finally:
        del ended  # NOTE: no cycle through this frame and the error's traceback.


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
            yield from close_flow(gen, flow.is_async)
            raise
        error = exc
    except BaseException as exc:
        if is_cut_off(exc):
            yield from close_cut_off(flow, gen, exc)
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
            if is_cut_off(cut):
                # NOTE: a cut at its step that never ran (see _finish) (review345).
                yield from close_cut_off(flow, gen, cut)
            raise
        if done:
            raise exc  # NOTE: the flow ended without answering: the error stands.
        if out is None:
            # NOTE: the flow yielded nothing: it gets the response this error becomes, further out.
            waiting.append((flow, gen))
            raise exc
    finally:
        del exc  # NOTE: no cycle through this frame and the traceback (see _advance).
    unmark_failed_handler(request)  # NOTE: the flow answered it.
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
        if is_cut_off(exc):
            # NOTE: a cut at its step that never ran (the WSGI app loop stopped, the step
            # closed unrun): the flow still waits at its yield (review345). One that ran has
            # ended, and its aclose() does nothing.
            yield from close_cut_off(flow, gen, exc)
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
        yield from close_flow(gen, flow.is_async)
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
                response = yield from answer_in_flows(plan, request, exc)
    except BaseException as exc:
        if unanswered(exc):
            yield from close_all(waiting, exc)  # NOTE: innermost first, before those outside.
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
                # NOTE: the flow's own GeneratorExit, carried out as a def flow's is (OwnExit):
                # by _athrow, or by the driver for a step (flow_step_ending). Thrown back in as
                # it was, it closed the core as a whole (a throw() at a yield from closes what
                # it delegates to), and an async flow outside was left to its collection
                # ("ignored GeneratorExit") (review336).
                raise OwnExit(cast("GeneratorExit", carrier.ended)) from None
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
                    # def handler's is (OwnExit): raised as it was, it left the flows
                    # outside open until its traceback was let go (review322).
                    raise OwnExit(error) from None
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
    return copied(
        value
    )  # NOTE: the flows outside change it; the app may keep it (see call_endpoint).


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
        return (yield from answer_in_flows(plan, request, exc, in_flows=True))
    if not isinstance(found, Endpoint):
        answer = unrouted(plan, request, found, in_flows=True)
        return answer if isinstance(answer, Response) else (yield from own_exit_out(answer))
    rules = found.rules
    if rules is not None and rules.flows:
        # NOTE: the router's flows, inside the app's; they share the flows that wait for an
        # error's response, so an unanswered error still reaches the app's flows.
        inner = lambda: call_endpoint(plan, request, found)  # noqa: E731
        return (yield from _layer(plan, request, rules.flows, 0, inner, waiting))
    return (yield from call_endpoint(plan, request, found))


def unrouted(
    plan: Plan, request: Request, refused: HTTPError | list[str], in_flows: bool = False
) -> Response | Effects:
    """Answer a request no route takes: ``OPTIONS`` (``refused`` is the methods it allows), or
    the router's refusal (404, 405...), returned by ``Plan.route`` and not raised."""
    if not isinstance(refused, HTTPError):
        return Response(b"", 204, {"allow": ", ".join(refused)})
    # PERF: no exception raised and caught through the generators, and where no error handler
    # can see it, no generator at all: a WSGI 404 113,500 -> 67,700 instructions (refusal()).
    return refusal(plan, request, refused, in_flows)
