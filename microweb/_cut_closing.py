"""The closing of a request's core that the WSGI app loop's stop (or a server's cut) cut off.

``close_stopped`` is the WSGI driver's (``_concurrency._drive``): the core's async flows are
closed innermost first, on the app loop while it runs, else on a loop of the request thread's
own, each cleanup bounded by ``CLEANUP_WAIT`` and run in the request's context. The app's close
waits for the closings under way before its shutdown hooks (``wait_for_cut_closings``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from . import _app_loop
from ._app_loop import STOP_CHECK, AppLoop, LoopStopped, adopt, close_step
from ._effects import FLOW_STEP, CleanupCut, Effects, Offload

logger = logging.getLogger("microweb")
# NOTE: the cut closings under way, each with its app loop, its thread, and when its wait
# (CLEANUP_WAIT from its start) is over; told of each end by _CLOSING_ENDED.
_UNDER_WAY: dict[object, tuple[AppLoop, int, float]] = {}
_CLOSING_ENDED = threading.Condition()


def close_stopped(
    effects: Effects,
    effect: Any,
    app_loop: AppLoop,
    run: Callable[..., Any],
    steps: contextvars.Context | None,
) -> None:
    """Close ``effects``, whose call ``effect`` the app loop's stop (or a server's cut) cut off."""
    if steps is None:
        run(effects.close)  # NOTE: a startup's or shutdown's (drive_in_thread).
    else:
        with _under_way(app_loop):
            _close_as_cut(effects, app_loop, run, steps)
    if type(effect) is FLOW_STEP:
        close_step(effect)  # NOTE: its flow closed first (close_unrun).


@contextlib.contextmanager
def _under_way(app_loop: AppLoop) -> Iterator[None]:
    """Count a cut closing as under way for ``wait_for_cut_closings`` while it runs."""
    token = object()
    ends = time.monotonic() + _app_loop.CLEANUP_WAIT
    with _CLOSING_ENDED:
        _UNDER_WAY[token] = (app_loop, threading.get_ident(), ends)
    try:
        yield
    finally:
        with _CLOSING_ENDED:
            del _UNDER_WAY[token]
            _CLOSING_ENDED.notify_all()


def wait_for_cut_closings(app_loop: AppLoop) -> None:
    """Wait until the cut closings under way on ``app_loop`` (other threads') have ended, or
    each has run ``CLEANUP_WAIT`` seconds, and ``CLEANUP_WAIT`` seconds at most in all; at
    once on the app loop itself.

    For the app's close, before its shutdown hooks: a flow's cleanup that a server's cut
    began (Waitress's, at the end of its grace period) ran on the app loop beside them, until
    the app loop's stop, and a hook closed what it still used (review364).
    """
    if app_loop.runs_here:
        # NOTE: blocked, the app loop would run the cleanups no further meanwhile. Another
        # loop running in this thread (a caller's asyncio.run()) runs none of them: the cut
        # closings run on the app loop, or on a loop of their own thread's; skipped there
        # too, the shutdown hooks ran beside them (review387).
        return
    here = threading.get_ident()
    # NOTE: those under way now end their wait by then; one begun meanwhile (a call cut again
    # and again) moved the end on, and closings that kept coming held the close for as long
    # as they came (review371).
    latest = time.monotonic() + _app_loop.CLEANUP_WAIT
    with _CLOSING_ENDED:
        while True:
            ends = [
                end
                for loop, thread, end in _UNDER_WAY.values()
                if loop is app_loop and thread != here
            ]
            left = min(max(ends, default=0.0), latest) - time.monotonic()
            if left <= 0:
                return
            _CLOSING_ENDED.wait(left)


def _close_as_cut(
    effects: Effects,
    app_loop: AppLoop,
    run: Callable[..., Any],
    steps: contextvars.Context,
) -> None:
    """Close ``effects``, a request's core that the app loop's stop (or a server's cut) cut
    off, as a cut: its async flows are closed, innermost first (their ``aclose()``), on the
    app loop while it runs, else on a loop of this thread's own, which the app loop's is no
    more.

    NOTE: closed as a whole (``effects.close()``), the core left them to their collection, in
    whichever thread let go of them, where a ``finally`` stopped at its first ``await``
    ("async generator ignored GeneratorExit"); an ``async with`` around their ``yield`` never
    exited (review345).
    """
    own: list[asyncio.AbstractEventLoop] = []  # NOTE: made on first need.
    cut = asyncio.CancelledError()
    try:
        effect = run(effects.throw, cut)
        while True:
            try:
                value = _closing_step(effect, app_loop, run, steps, own)
            except LoopStopped as stopped:
                # NOTE: a closing on the app loop cut off in its turn (its stop after the
                # server's cut, or a second cut): the cut, thrown in as it, goes on closing the
                # flows outside; as an error it was logged as the failure of the flow whose
                # closing was cut (review356).
                named_by_its_flow(stopped)
                error: BaseException = asyncio.CancelledError()
            except BaseException as exc:
                error = exc
            else:
                effect = run(effects.send, value)
                continue
            try:
                effect = run(effects.throw, error)
            finally:
                del error
    except StopIteration:
        pass
    except (KeyboardInterrupt, SystemExit):
        raise  # NOTE: a flow's cleanup's, which ends the process: not the cut's to take.
    except Exception as exc:
        if not isinstance(exc, LoopStopped):
            logger.warning(
                "a request cut off by the app loop's stop failed as it closed", exc_info=exc
            )
        del exc
    except BaseException:
        pass  # NOTE: the cut itself, or a cancellation of the closing: the stop goes on.
    finally:
        run(effects.close)
        if own:
            _close_own(own[0])


def named_by_its_flow(stopped: LoopStopped) -> None:
    """Let the task of a flow's step or closing that ignored its cancellation past the app
    loop's stop (``stopped.pending``) go unsaid by asyncio once collected: the flow, still
    running, is named in one warning as it is left to its collection (``_flow_closing``).

    NOTE: asyncio's "Task was destroyed but it is pending!" named a task of the app loop's
    (``_run_hop()``), after microweb's warning had named the flow (review371).
    """
    task, stopped.pending = stopped.pending, None
    if task is not None and not task.done():
        task._log_destroy_pending = False  # type: ignore[attr-defined]


def _closing_step(
    effect: Any,
    app_loop: AppLoop,
    run: Callable[..., Any],
    steps: contextvars.Context,
    own: list[asyncio.AbstractEventLoop],
) -> Any:
    """Run ``effect``, a step of a cut request's closing (``_close_as_cut``): on the app loop
    while it runs, else on the thread's own loop, made into ``own`` on first need."""
    if type(effect) is Offload:
        return run(effect.fn, *effect.args, **effect.kwargs)
    if not app_loop.stopped:
        return app_loop.run(effect, steps)
    if asyncio._get_running_loop() is not None:
        # NOTE: a WSGI call made from a coroutine: no loop of this thread's own can run here
        # (review356). The flow is logged as failed, the cut goes on.
        close_step(effect)
        raise RuntimeError(
            "its cleanup cannot run: the app loop has stopped, and this thread runs another"
        )
    if not own:
        own.append(asyncio.new_event_loop())
    return own[0].run_until_complete(_cleaned_up_in_time(effect, steps))


def _close_own(loop: asyncio.AbstractEventLoop) -> None:
    """Close ``loop``, a request thread's own for a cut's closing, as the app loop is closed
    (``_app_loop.run_until_stopped``): the async generators begun on it first, within
    ``CLEANUP_WAIT`` seconds.

    NOTE: closed at once, one that a flow's cleanup left open never ran its ``finally``
    (review356).
    """
    try:
        loop.run_until_complete(_asyncgens_closed(loop))
    finally:
        loop.close()


async def _asyncgens_closed(loop: asyncio.AbstractEventLoop) -> None:
    closing = loop.create_task(loop.shutdown_asyncgens())
    await asyncio.wait([closing], timeout=_app_loop.CLEANUP_WAIT)


async def _cleaned_up_in_time(awaitable: Any, steps: contextvars.Context) -> Any:
    """Await ``awaitable``, a cut request's flow's closing on a loop of the request thread's
    own, as the app loop's stop awaits a task left on it: up to ``CLEANUP_WAIT`` seconds, then
    cancelled; one still not ended is left behind, its coroutine closed. It runs in ``steps``,
    as on the app loop (``AppLoop.run``): in a copy on 3.10, what it set set there after.

    Raises:
        CleanupCut: It did not end in time; the closing of the flows outside goes on.

    NOTE: unbounded, a cleanup that awaited what never came held the request's thread for
    ever (a server's worker; a non-daemon one kept the process from exiting) (review356).
    """
    coroutine = _awaited(awaitable)  # NOTE: a flow's aclose() is no coroutine to close.
    loop = asyncio.get_running_loop()
    # NOTE: in a copy of steps, a flow's token "was created in a different Context", and a
    # sync flow outside it saw what it had set (review356).
    if sys.version_info >= (3, 11):
        task = loop.create_task(coroutine, context=steps)
    else:
        copied = steps.copy()
        task = copied.run(loop.create_task, coroutine)
    wait = _app_loop.CLEANUP_WAIT
    failure: Exception | None = None
    done, _ = await asyncio.wait({task}, timeout=wait)
    if not done:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_CHECK)
    if not done:
        # NOTE: its loop closes after this closing: it would be destroyed pending.
        task._log_destroy_pending = False  # type: ignore[attr-defined]
        try:
            # NOTE: its finally blocks run now, up to their next await.
            coroutine.close()
        except Exception as exc:
            # NOTE: suppressed, what they raised went with no word (review393).
            failure = exc
        # NOTE: the task, stepped again (a cleanup that kept yielding), raised "cannot reuse
        # already awaited coroutine": asyncio's "Task exception was never retrieved" (review387).
        task.add_done_callback(_retrieved)
    if not task.done() or task.cancelled():
        raise CleanupCut(
            f"its cleanup did not end within {wait:g} s of the app loop's stop",
            stubborn=not task.done(),
            failure=failure,
        )
    if sys.version_info < (3, 11):
        steps.run(adopt, copied)
    returned, ended = task.result()
    if ended is not None:
        try:
            raise ended  # NOTE: this task is the loop's to run until complete: it takes it.
        finally:
            del ended
    return returned


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _awaited(awaitable: Awaitable[Any]) -> tuple[Any, BaseException | None]:
    """Await ``awaitable``; return what it returned, or the ``KeyboardInterrupt`` or
    ``SystemExit`` that ended it (``None`` beside).

    NOTE: raised out of this task, it left the loop at once, the task awaiting this one
    pending: the next flow's closing ran it, and it was raised there a second time, that
    flow left unclosed, and asyncio logged "Task exception was never retrieved" (review356).
    """
    try:
        return await awaitable, None
    except (KeyboardInterrupt, SystemExit) as exc:
        return None, exc
