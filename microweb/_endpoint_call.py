"""The route's handler called inside the flows (``call_endpoint``), in its colour: its result
made the response the flows are given, its error answered or thrown in at their ``yield``,
its own ``GeneratorExit`` carried out (``OwnExit``)."""

from __future__ import annotations

from inspect import CORO_CREATED, getcoroutinestate, iscoroutine
from typing import TYPE_CHECKING, Any, cast

from ._calls import call
from ._effects import Colored, Effects, Ending, Offload, call_own_exit_carried, own_exit_carried
from ._emission import negotiate_file
from ._errors import ClientDisconnect, HTTPError, raise_own
from ._flow_closing import OwnExit, answer_in_flows
from ._plan import Endpoint
from ._response import Response
from ._results import copied, to_response

if TYPE_CHECKING:
    from ._plan import Plan
    from ._request import Request


def _called_plainly(target: Colored, request: Request) -> bool:
    """Tell whether ``call()`` calls ``target`` with no ``yield``: a ``def`` one, inline or
    where the thread may block (WSGI)."""
    return not target.is_async and (not target.offload or request.may_block)


def _call_carried(found: Endpoint, request: Request) -> Effects:
    """Call an ``async def`` handler, or a ``def`` one in the pool, inside flows; its own
    ``GeneratorExit`` comes out as ``OwnExit``, as a plainly called ``def`` handler's does.

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
            raise OwnExit(exc) from None
        effect: Any = own_exit_carried(awaitable)
    else:
        effect = Offload(call_own_exit_carried, (target.fn, request), params)
    try:
        return (yield effect)
    except Ending as carrier:
        raise OwnExit(cast("GeneratorExit", carrier.ended)) from None
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


def call_endpoint(plan: Plan, request: Request, found: Endpoint) -> Effects:
    try:
        if found.blocking and request.may_block:
            # NOTE: a def handler under WSGI is a plain call, as in respond(): no effect, no
            # extra generator.
            try:
                result = found.target.fn(request, **request.path_params)
            except BaseException as exc:
                raise_own(exc)
                if isinstance(exc, GeneratorExit):
                    raise OwnExit(exc) from None  # NOTE: see below.
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
                raise OwnExit(exc) from None
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
        return (yield from answer_in_flows(plan, request, exc, in_flows=True))
