"""How flows end without a response to pass on: closed, innermost first, for a client gone or a
server's cut (``close_all``, ``close_cut_off``), and for app code's own ``GeneratorExit``,
carried out through them as ``OwnExit`` (a handler's, an error handler's, a flow's)."""

from __future__ import annotations

from inspect import CO_GENERATOR
from typing import TYPE_CHECKING, Any

from ._calls import error_response, logger
from ._effects import CleanupCut, Colored, Effects
from ._errors import ClientDisconnect, is_asyncio_cancellation

if TYPE_CHECKING:
    from ._plan import Plan
    from ._request import Request


# NOTE: flows that caught an error and yielded nothing, innermost first, with their generators.
Waiting = list[tuple[Colored, Any]]


def answer_in_flows(
    plan: Plan, request: Request, exc: Exception, in_flows: bool = False
) -> Effects:
    """``error_response()`` where flows wait around it: an error handler's own
    ``GeneratorExit`` comes out as ``OwnExit``, as a handler's does."""
    return (yield from own_exit_out(error_response(plan, request, exc, in_flows=in_flows)))


def own_exit_out(answer: Effects) -> Effects:
    """Run ``answer``, an error handler's where flows wait around it; its ``GeneratorExit``
    comes out as ``OwnExit``. Also for a refusal's answer (a 404 handler's): its own went
    out as it was, and the flows were left to its traceback's collection (review336)."""
    try:
        return (yield from answer)
    except GeneratorExit as ending:
        if _at_a_yield(ending):
            raise  # NOTE: this generator's closing, thrown in where it waited.
        # NOTE: app code's own (a def error handler, called plainly): let go as it was, it
        # left the flows outside open until its traceback was let go (review328). One thrown
        # back in by a driver closes the core as a whole (a yield from hands it to close()).
        raise OwnExit(ending) from None


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


class OwnExit(BaseException):
    """The ``GeneratorExit`` of a handler (``call_endpoint``, ``_call_carried``), an error handler
    (``own_exit_out``) or a flow of either colour (``_advance``), carried out through the flows,
    which close as for a ``KeyboardInterrupt`` (see ``is_cut_off``), and raised again as it was
    by ``through_flows``."""

    def __init__(self, ended: GeneratorExit) -> None:
        super().__init__(repr(ended))
        self.ended = ended


def unmark_failed_handler(request: Request) -> None:
    """Take the mark of an error handler's failure off ``request`` where no error response
    is made for it (see ``error_response``): it holds the request in its traceback.

    PERF: on these paths only, not in a ``finally``: the look-up of the slot, unset, took
    0.22 us a request (timeit of getattr on an unset slot, 2026-12-05).
    """
    if getattr(request, "_failed_handler", None) is not None:
        request._failed_handler = None


def unanswered(exc: BaseException) -> bool:
    """Tell whether ``exc`` ends the request with nobody to answer: the client left, or the
    server cut the request off. The flows that wait are closed then, not given a response."""
    return isinstance(exc, ClientDisconnect) or is_cut_off(exc)


def is_cut_off(exc: BaseException) -> bool:
    """Tell whether ``exc`` ends the request with nothing to answer: a server's cancellation.

    The flows are closed then, as when the client leaves (``GeneratorExit`` at their ``yield``),
    and their ``finally`` blocks run before it goes on; the driver throws it in for that.
    ``GeneratorExit`` itself is the closing of the whole generator, where nothing may be awaited.
    """
    return not isinstance(exc, (Exception, GeneratorExit))


def close_flow(gen: Any, is_async: bool) -> Effects:
    if is_async:
        yield gen.aclose()
    else:
        gen.close()


def close_all(waiting: Waiting, ending: BaseException) -> Effects:
    while waiting:
        flow, gen = waiting.pop(0)
        if is_cut_off(ending):
            yield from close_cut_off(flow, gen, ending)
        else:
            yield from close_flow(gen, flow.is_async)


def close_cut_off(flow: Colored, gen: Any, ending: BaseException) -> Effects:
    """Close a flow that ``ending`` cut off (``is_cut_off``); an error of its cleanup is logged.

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
        yield from close_flow(gen, flow.is_async)
    except CleanupCut as exc:
        said = f"{exc}, {'ignored its cancellation' if exc.stubborn else 'and was cancelled'}"
        if getattr(gen, "ag_frame", None) is not None:
            # NOTE: the closing of its aclose() did not reach it (before Python 3.13): left to
            # its collection with no word (review364).
            _left_to_collection(flow, ending, f"{said}, and could not be closed")
            return
        # NOTE: closed, by its cancellation or (3.13) by the closing of its aclose(): logged
        # as failed, with a traceback that said it was "left behind" (review387).
        closed = f"{said}, and was closed at its await" if exc.stubborn else said
        if exc.failure is not None:
            # NOTE: its finally blocks failed as its closing ran them: a failure of the
            # flow's, said with its traceback (review393).
            logger.error(
                "flow %s failed while %s: %s",
                flow.fn.__qualname__,
                _why_closed(ending),
                closed,
                exc_info=exc.failure,
            )
            return
        logger.warning(
            "flow %s was closed while %s: %s", flow.fn.__qualname__, _why_closed(ending), closed
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
    # NOTE: before Python 3.13 an async generator whose aclose() raised (its cleanup
    # cancelled: a second cut) still said it ran, its frame gone: it was said to have ignored
    # its cancellation (review387).
    return (
        flow.is_async
        and bool(getattr(gen, "ag_running", False))
        and getattr(gen, "ag_frame", None) is not None
    )


def _left_to_collection(flow: Colored, ending: BaseException, why: str) -> None:
    logger.warning(
        "flow %s was left to its collection while %s: %s; its finally blocks run when it is "
        "collected",
        flow.fn.__qualname__,
        _why_closed(ending),
        why,
    )


def _why_closed(ending: BaseException) -> str:
    """Say what closed the flows for a cut (``is_cut_off``): the log of a flow's failing cleanup
    said "its request was cancelled" for a handler's own ``GeneratorExit`` or ``SystemExit``."""
    if is_asyncio_cancellation(ending):
        return "its request was cancelled"
    if type(ending) is OwnExit:
        ending = ending.ended
    return f"closing for a {type(ending).__name__}"
