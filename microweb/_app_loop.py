"""Threads that wait on an event loop: the hop to a loop, and the app loop (WSGI).

A server thread hands an awaitable to a loop running in another thread and blocks until it
ends; under WSGI that loop is the ``AppLoop``, the app's one long-lived event loop. An async
stream runs there in one task, ahead of the server thread that sends its chunks
(``_stream_ahead.iterate_on_loop``). A ``SystemExit`` or ``KeyboardInterrupt`` that a task or
callback of no request lets out of the loop is logged, and the loop runs on
(``run_until_stopped``). ``ContextRecord`` is a context recorded as code begins to run in it,
whose changes ``adopt()`` later sets in the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from ._effects import FLOW_STEP
from ._errors import own_cancellation
from ._pool import forget_threads_after_fork

T = TypeVar("T")
logger = logging.getLogger("microweb")
# NOTE: the hop tasks that AppLoop.cut_waiting() cancelled: their CancelledError is the server's
# stop, while a CancelledError of any later call (a shutdown hook's own) is the app's.
CUT_TASKS: weakref.WeakSet[asyncio.Task[None]] = weakref.WeakSet()
# NOTE: what a thread waiting on a loop that has run nothing else for SLOW_START seconds is
# told: how long the loop has run nothing (seconds); it returns whether it has said what it
# had to (no more calls then).
Stalled = Callable[[float], bool]
# NOTE: the default of a context variable's get(): set by no one.
_UNSET: Any = object()
# NOTE: the loops that have stopped and run only the cleanup of the tasks left on them
# (run_until_stopped()): a call handed over now is refused (Hop.start()).
_CLEANING: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
# NOTE: the loops that run_until_stopped() runs, from its start to the end of their cleanup.
_RUN_TO_THE_END: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
# NOTE: the loops that stop_loop() has stopped.
_STOPPED: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


# NOTE: how often a thread waiting for the loop checks that the loop still runs (seconds).
STOP_CHECK = 0.1
# NOTE: how long a loop that a thread waits on may run nothing else (busy, or blocked) before
# the thread asks its ``stalled`` whether what holds it will ever let go (seconds; tests make
# it small).
SLOW_START = 2.0
# NOTE: how long the tasks left on a stopping loop get to end once cancelled, and then its
# async generators to close (seconds each); well below the 10 s AppLoop.stop() waits. Also how
# long the requests cut off after a server's grace period get to run their cleanup (a stream's
# finally, a flow's) before the shutdown hooks, under both servers of microweb serve: one app,
# one grace (Uvicorn gave 1 s, Waitress up to 2 s, review371).
CLEANUP_WAIT = 2.0


class LoopStopped(RuntimeError):
    """The loop stopped before a call on it ended: the app was closed under a waiting thread.

    A server's stop cut the call off (Waitress at the end of its grace period); the thread that
    waited is no error of the app's.
    """

    # NOTE: whether the loop had begun the call (its task made) when it stopped; the call's
    # task, where it was still pending then (it ignored its cancellation).
    began = True
    pending: asyncio.Task[None] | None = None


class AppClosed(LoopStopped):
    """The loop was stopped before the call began: the WSGI app had been closed."""


class Hop:
    """One awaitable handed from a thread to an event loop, and what came of it."""

    __slots__ = (
        "awaitable",
        "context",
        "cut",
        "done",
        "error",
        "late",
        "result",
        "run_in",
        "task",
    )

    def __init__(
        self, awaitable: Awaitable[Any], run_in: contextvars.Context | None = None
    ) -> None:
        self.awaitable, self.run_in = awaitable, run_in
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.context: contextvars.Context | None = None
        self.task: asyncio.Task[None] | None = None
        # NOTE: whether the thread stopped waiting for it (``within``), the call running on.
        self.cut = self.late = False

    def start(self) -> None:
        # NOTE: runs on the loop, in the copy of the caller's context that call_soon_threadsafe
        # made; the task copies it again, so the awaitable sees the caller's values. The task
        # is kept here: the loop holds its tasks weakly.
        loop = asyncio.get_running_loop()
        if loop in _CLEANING:
            # NOTE: handed over by a thread that took the loop before its stop: its task, made
            # after the tasks left were cancelled, ran on uncancelled and was destroyed
            # pending as the loop closed ("Task was destroyed but it is pending!", review380).
            # Refused as a call after the app's close; it never runs.
            close_unrun(self.awaitable)
            self.error = AppClosed("the app loop was stopped: this WSGI app was closed")
            self.done.release()
            return
        if self.run_in is None:
            self.task = loop.create_task(_run_hop(self))
        elif sys.version_info >= (3, 11):
            # NOTE: in run_in itself, where the caller runs too: a token made in one step
            # resets in the next.
            self.task = loop.create_task(_run_hop(self), context=self.run_in)
        else:
            self.task = self.run_in.run(loop.create_task, _run_hop(self))  # NOTE: a copy.


async def _run_hop(hop: Hop) -> None:
    try:
        hop.result = await hop.awaitable
    except BaseException as exc:
        hop.error = exc
        if isinstance(exc, asyncio.CancelledError):
            hop.cut = asyncio.current_task() in CUT_TASKS
    finally:
        hop.context = contextvars.copy_context()
        loop = asyncio._get_running_loop()
        if loop is not None and hop.run_in is not None and sys.version_info >= (3, 11):
            # NOTE: on the loop's next turn, once this task's step has left run_in: the caller
            # enters it at once, and a context is entered by one thread at a time.
            loop.call_soon(hop.done.release)
        else:
            # NOTE: released here, not from a done callback: one turn of the loop less. Also
            # where no loop runs: a task the loop's stop left pending (it ignored its
            # cancellation), closed at its collection, raised "no running event loop" here,
            # an "Exception ignored" with its traceback (review364).
            hop.done.release()


def hop_to_loop(
    loop: asyncio.AbstractEventLoop,
    awaitable: Awaitable[T],
    run_in: contextvars.Context | None = None,
    stalled: Stalled | None = None,
    within: float | None = None,
) -> Hop:
    """Run ``awaitable`` as a task on ``loop`` (running in another thread) and wait for it.

    The task sees this thread's context variables: it runs in a copy of this thread's context,
    or in ``run_in`` (a copy of it on Python 3.10). Returns the finished hop: its ``result``,
    ``error`` and ``context`` (the task's, at its end). ``stalled`` is called when the loop has
    run nothing for ``SLOW_START`` seconds meanwhile (see ``wait_for``). Given ``within``, the
    wait ends after as many seconds: the hop is then ``late``, its task running on.
    """
    hop = Hop(awaitable, run_in)
    # PERF: a plain lock released by the task, instead of run_coroutine_threadsafe's chained
    # futures and the Condition of Future.result(): a round trip to the loop, 43 us -> 21 us
    # (best of 7 x 2,000, 2-CPU VM).
    try:
        try:
            loop.call_soon_threadsafe(hop.start)
        except RuntimeError:
            close_unrun(awaitable)  # NOTE: the loop is closed; it will never run.
            raise
        hop.late = not wait_for(hop, loop, stalled, within)
    except (KeyboardInterrupt, SystemExit):
        # NOTE: Ctrl+C in this thread (the main one: as_wsgi()'s startup, close()'s shutdown)
        # while the call ran on the loop: it is cancelled and ended before the interrupt goes
        # on, so that what handles it (the exits of the lifespans entered) runs after it, not
        # beside it. A second Ctrl+C gives up waiting. Also as the call is handed over: one
        # handled between the hand-over and the wait left the call running (seen under load).
        if _cancel_soon(hop, loop):
            with contextlib.suppress(LoopStopped):
                wait_for(hop, loop)
        raise
    if not hop.late:
        hop.task = None  # NOTE: a late one's is kept by whoever gave up on it, on the loop.
    return hop


def _cancel_soon(hop: Hop, loop: asyncio.AbstractEventLoop) -> bool:
    """Have ``hop``'s call cancelled on ``loop``; ``False`` if the loop has closed."""
    try:
        loop.call_soon_threadsafe(_cancel, hop)
    except RuntimeError:
        # NOTE: the loop closed meanwhile (the app closed from another thread): nothing to
        # cancel or wait for. Let out, this "Event loop is closed" took the interrupt's place,
        # thrown into the request as its error (a 500) or into the startup as its failure.
        _close_unstarted(hop)
        return False
    return True


def close_unrun(awaitable: object) -> None:
    """Close ``awaitable``, a coroutine that will never run, so that it does not warn "never
    awaited"; an error of its closing is logged, not raised.

    NOTE: an async flow's step (``gen.asend()``, which the core yields bare) is one too, and on
    Python 3.13 its close() throws GeneratorExit into the flow, whose cleanup runs here: its
    error ("coroutine ignored GeneratorExit" where it awaits) took the place of the loop's
    stop (``AppClosed``, ``LoopStopped``), and the request failed as if by an error of its own,
    logged as unhandled and seen by the flows' handlers of errors (review341).
    """
    if not asyncio.iscoroutine(awaitable) or type(awaitable) is FLOW_STEP:
        # NOTE: an async flow's step is closed by the driver once the flow is
        # (_cut_closing._close_as_cut): closed first, on 3.13, the flow's cleanup stopped at
        # its first await here, and the flow could not be closed after (review345).
        return
    close_step(awaitable)


def close_step(awaitable: Any) -> None:
    """Close ``awaitable``, a call that will never run, as ``close_unrun`` does, an async
    flow's step too."""
    try:
        awaitable.close()
    except Exception:
        logger.warning(
            "the closing of %r, a call that will never run (the app loop has stopped), failed",
            awaitable,
            exc_info=True,
        )


def _close_unstarted(hop: Hop) -> None:
    if hop.task is None:
        close_unrun(hop.awaitable)  # NOTE: it never started.


def wait_for(
    hop: Hop,
    loop: asyncio.AbstractEventLoop,
    stalled: Stalled | None = None,
    within: float | None = None,
) -> bool:
    """Wait in this thread until ``hop`` has ended, or its loop has stopped (``LoopStopped``;
    an awaitable it never started is closed), or ``within`` seconds have passed (checked every
    ``STOP_CHECK``; then ``False``, the call running on).

    Once the loop has run nothing else for ``SLOW_START`` seconds (see ``_LoopHeld``),
    ``stalled(held)`` is called at each check until it returns ``True``; the wait goes on.
    """
    held = None
    until = None if within is None else time.monotonic() + within
    while not hop.done.acquire(timeout=STOP_CHECK):
        # NOTE: a loop stopped under the call (the app closed at exit, the server gone) never
        # ends it: without this check the thread would wait forever.
        # PERF: the timed wait costs nothing measurable (22.8 -> 22.4 us a round trip); what
        # follows runs only once a wait has lasted STOP_CHECK.
        if loop_stopped(loop) and not hop.done.acquire(blocking=False):
            stopped = LoopStopped("the event loop stopped before the call ended")
            stopped.began = hop.task is not None
            if hop.task is not None and not hop.task.done():
                stopped.pending = hop.task
            _close_unstarted(hop)
            raise stopped
        if stalled is not None:
            held = held or _LoopHeld(hop, loop)
            if held.check() and stalled(held.held()):
                stalled = None
        if until is not None and time.monotonic() >= until:
            return False
    return True


class _LoopHeld:
    """Whether the loop a thread waits on has run nothing for ``SLOW_START`` seconds, checked
    every ``STOP_CHECK`` seconds.

    A call the loop has not started tells by itself (its start was queued as the wait began);
    one started (awaiting the body, say) is told by a probe, a callback queued on the loop
    that a held loop never runs; a new one once ``SLOW_START`` after the last one ran.
    """

    __slots__ = ("hop", "loop", "probe", "since", "waited")

    def __init__(self, hop: Hop, loop: asyncio.AbstractEventLoop) -> None:
        self.hop, self.loop = hop, loop
        self.waited = self.since = 0.0
        self.probe: list[bool] | None = None

    def check(self) -> bool:
        """Count one more ``STOP_CHECK`` of waiting; tell whether the loop is held."""
        self.waited += STOP_CHECK
        if self.hop.task is None:
            return self.waited >= SLOW_START
        probe = self.probe
        if probe is not None and not probe:
            return self.waited - self.since >= SLOW_START
        if probe is None or self.waited - self.since >= SLOW_START:
            self.probe, self.since = [], self.waited
            with contextlib.suppress(RuntimeError):  # NOTE: the loop closed meanwhile.
                self.loop.call_soon_threadsafe(self.probe.append, True)
        return False

    def held(self) -> float:
        """How long the loop has run nothing (seconds), once ``check()`` has said it is held."""
        # NOTE: not the whole wait: a read that waited a minute for a slow client (the probes
        # run) and then two seconds for a held loop said it had waited 62 s for a loop that
        # "has run nothing else meanwhile". The call's own start, or the last probe, was queued
        # that long ago and has not run.
        if self.hop.task is None:
            return self.waited
        return self.waited - self.since


def _cancel(hop: Hop) -> None:
    # NOTE: on the loop, after hop.start (both came through call_soon_threadsafe, in order).
    task = hop.task
    if task is None:
        if hop.error is not None:
            return  # NOTE: refused by a loop that was cleaning up (Hop.start()): let go.
        # NOTE: its start was never queued (Ctrl+C within call_soon_threadsafe): nothing ran,
        # and the waiting thread is let go.
        _close_unstarted(hop)
        hop.done.release()
        return
    if inspect.getcoroutinestate(task.get_coro()) == inspect.CORO_CREATED:  # type: ignore[arg-type]
        # NOTE: Ctrl+C before the loop had run hop.start: both ran in one turn, and a task
        # cancelled before its first step never runs _run_hop(), which releases the waiting
        # thread (it waited for good, the step never run); cancelled once that step has run.
        asyncio.get_running_loop().call_soon(task.cancel)
    else:
        task.cancel()


def adopt_hop(hop: Hop) -> None:
    """Set in this thread what the hop's task changed of its context variables."""
    # NOTE: this thread's context is as it was when the hop began (callers check that the task
    # was not cancelled: then nothing crosses back).
    if hop.context is not None:
        adopt(hop.context)


def adopt(context: contextvars.Context) -> None:
    """Set in the current context what ``context``, a copy of it made earlier, has changed."""
    for var, value in context.items():
        if var.get(_UNSET) is not value:
            var.set(value)


class ContextRecord:
    """A context as code began to run in it (``began``), and the context it runs in, or a copy
    of it taken later (``context``): ``adopt()`` sets in the current context what the code
    changed of it since.

    ``ContextRecord()`` records a copy of the current context, for code to run in
    (``record.context.run(...)``, in another thread, say), or as a task begins, for what the
    task's own code changes of its context: ``now()`` copies that as it is then.
    """

    __slots__ = ("began", "context")

    def __init__(
        self, began: contextvars.Context | None = None, context: contextvars.Context | None = None
    ) -> None:
        if context is None:
            context = contextvars.copy_context()
        self.context = context
        self.began = context.copy() if began is None else began

    def now(self) -> ContextRecord:
        """The record with a copy of the current context as it is now (code running in it)."""
        return ContextRecord(self.began, contextvars.copy_context())

    def copy(self) -> ContextRecord:
        """The record with a copy of its ``context`` as it is now (code running in it)."""
        return ContextRecord(self.began, self.context.copy())

    def adopt(self) -> None:
        """Set in the current context what the code that ran in ``context`` changed of it since
        it began, where the current context may have changed meanwhile (what it set since is
        kept, unless that code set the same variable)."""
        began = self.began
        for var, value in self.context.items():
            if began.get(var, _UNSET) is not value:
                var.set(value)


def outcome(hop: Hop) -> Any:
    """Return the hop's result, or raise its exception (with its traceback)."""
    error = hop.error
    if error is None:
        return hop.result
    hop.error = None
    try:
        if isinstance(error, asyncio.CancelledError):
            # NOTE: what run_coroutine_threadsafe(...).result() raised for a cancelled task.
            raise own_cancellation(error)
        raise error
    finally:
        del error  # NOTE: no cycle through this frame and the traceback.


def run_on_loop(
    loop: asyncio.AbstractEventLoop, awaitable: Awaitable[T], stalled: Stalled | None = None
) -> T:
    """Run ``awaitable`` on ``loop`` (running in another thread); return or raise its outcome.

    ``stalled``: as ``hop_to_loop``'s.
    """
    result: T = outcome(hop_to_loop(loop, awaitable, stalled=stalled))
    return result


class AppLoop:
    """The app's one long-lived event loop for async code under WSGI, on a daemon thread.

    Started on first need; every server thread hands its coroutines to this loop, so resources
    made by an async startup hook work in every request.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        forget_threads_after_fork(self)

    def _after_fork(self) -> None:
        # NOTE: in a forked child (gunicorn --preload) the loop's thread is gone: the next
        # request starts a loop of its own instead of waiting on one that never runs.
        self._loop = self._thread = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started if need be."""
        loop = self._loop
        if loop is None:
            with self._lock:
                if self._stopped:
                    # NOTE: a request the server let in after the app's close (its grace
                    # period over) is cut off as a call in flight is: no error of the app's.
                    raise AppClosed("the app loop was stopped: this WSGI app was closed")
                if self._loop is None:
                    self._start()
                loop = self._loop
        assert loop is not None
        return loop

    def _start(self) -> None:
        loop = new_loop()
        ready = threading.Event()
        loop.call_soon(ready.set)
        self._thread = threading.Thread(
            target=run_until_stopped, args=(loop,), name="microweb-app-loop", daemon=True
        )
        self._thread.start()
        ready.wait()
        self._loop = loop

    def run(
        self,
        awaitable: Awaitable[T],
        run_in: contextvars.Context | None = None,
        within: float | None = None,
        late: Callable[[Hop, asyncio.AbstractEventLoop], None] | None = None,
    ) -> T:
        """Run ``awaitable`` on the app loop and wait for its result in this thread.

        Context variables cross both ways: the coroutine sees this thread's values, and what it
        sets is set here afterwards, as if it had run in this thread. Given ``run_in``, a
        context the caller runs in too (``drive_sync``'s), the coroutine runs in it instead,
        on Python 3.11 and later, and a ``ContextVar`` token made in one call resets in the
        next; on 3.10 in a copy, and what it sets is set in ``run_in`` afterwards.

        Given ``within`` (and ``late``), a call that has not ended after as many seconds runs
        on, and this thread returns ``None`` once it has called ``late(hop, loop)`` (the hop's
        task may not be made yet: its start is queued on the loop); nothing crosses back to
        this thread's context.
        """
        try:
            loop = self.loop
        except RuntimeError:
            close_unrun(awaitable)  # NOTE: it will never run.
            raise
        if asyncio._get_running_loop() is loop:
            # NOTE: it will never run (an async shutdown hook of a close() that an async
            # handler called).
            close_unrun(awaitable)
            raise RuntimeError("the app loop cannot wait for itself; await instead")
        try:
            hop = hop_to_loop(loop, awaitable, run_in, within=within)
        except LoopStopped as stopped:
            # NOTE: a call the loop had begun, that ignored its cancellation past the loop's
            # stop: closed by the time this thread saw it, it was taken for a call made after
            # the app's close ("reached async code after the app was closed") (review371).
            if stopped.began or not loop.is_closed():
                raise
            raise AppClosed("the app loop was stopped: this WSGI app was closed") from None
        except RuntimeError:
            if not loop.is_closed():
                raise
            # NOTE: taken just before another thread's stop() closed it: "Event loop is
            # closed" was the request's own error, logged as unhandled (review356).
            raise AppClosed("the app loop was stopped: this WSGI app was closed") from None
        if hop.late:
            cast("Callable[[Hop, asyncio.AbstractEventLoop], None]", late)(hop, loop)
            return cast("T", None)
        if isinstance(hop.error, asyncio.CancelledError) and (self._stopped or hop.cut):
            # NOTE: cancelled by stop() or cut_waiting(): no error of the app's. Only the calls
            # that cut_waiting() cancelled: a later call's own CancelledError (a shutdown
            # hook's) is an error like others, and the shutdown's other steps still run.
            hop.error = None
            raise LoopStopped("the event loop stopped before the call ended")
        # NOTE: an error's too, a CancelledError of the app's own included (the cut ones are
        # LoopStopped above): a def handler that sets one and raises leaves it set in this
        # thread, and an async handler under ASGI in the request's task.
        if run_in is None:
            adopt_hop(hop)
        elif sys.version_info < (3, 11):
            run_in.run(adopt_hop, hop)  # NOTE: the task ran in a copy of run_in.
        result: T = outcome(hop)
        return result

    def cut_waiting(self) -> None:
        """Cancel the calls that threads wait on now; each such thread gets ``LoopStopped``.

        A server's stop at the end of its grace period: the calls' ``finally`` blocks run now,
        before the shutdown hooks, not once ``stop()`` cancels what is left on the loop. The
        loop runs on (the shutdown hooks need it), and calls made later are not cut.
        """
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # NOTE: the loop closed meanwhile.
            loop.call_soon_threadsafe(_cancel_hops, loop)

    @property
    def started(self) -> bool:
        """Whether the loop has been started."""
        return self._loop is not None

    @property
    def runs_here(self) -> bool:
        """Whether the calling thread is the loop's own: code that the loop runs now."""
        thread = self._thread
        return thread is not None and thread is threading.current_thread()

    @property
    def stopped(self) -> bool:
        """Whether ``stop()`` has been called: the loop runs nothing more, and starts no more."""
        return self._stopped

    def stop(self) -> None:
        """Stop the loop and join its thread (a no-op when it never started).

        The tasks still pending on the loop are cancelled and get up to ``CLEANUP_WAIT``
        seconds to end (their ``finally`` blocks run); then its async generators are closed.
        A thread still waiting on a call, or calling later, gets ``LoopStopped``. Returns
        after at most 10 s, even if a task ignores its cancellation; called on the loop
        itself, it returns at once, and the loop stops when the calling task next yields.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            self._stopped = True
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            # NOTE: called on the loop (an async handler closing its app): a thread cannot
            # join itself; the loop stops once this step of the task ends, and closes itself.
            stop_loop(loop)
            return
        try:
            loop.call_soon_threadsafe(stop_loop, loop)
        except RuntimeError:
            # NOTE: closed already: its run_forever() ended by an exception (a task's
            # SystemExit), not by a stop. The app's close raised "Event loop is closed"
            # (review404).
            if not loop.is_closed():
                raise
        thread.join(timeout=10)


def _cancel_hops(loop: asyncio.AbstractEventLoop) -> None:
    # NOTE: the tasks that threads wait on are those of _run_hop(); a startup hook's own tasks
    # and the lifespans held open are left to stop(), after the shutdown hooks.
    for task in asyncio.all_tasks(loop):
        coroutine = task.get_coro()
        if getattr(coroutine, "cr_code", None) is _run_hop.__code__:
            CUT_TASKS.add(task)
            # NOTE: cr_code told it is _run_hop()'s coroutine, which mypy cannot see.
            state = inspect.getcoroutinestate(coroutine)  # type: ignore[arg-type]
            if state == inspect.CORO_CREATED:
                # NOTE: a task cancelled before its first step never runs _run_hop(), which
                # releases the waiting thread: cancelled once its first step, already
                # scheduled, has run.
                loop.call_soon(task.cancel)
            else:
                task.cancel()


def loop_stopped(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` has stopped for good: it runs no more, nor will it cancel what is left
    on it and let that end (``run_until_stopped``)."""
    # NOTE: between the end of run_until_stopped()'s run_forever() and the start of its
    # cleanup the loop does not run: a thread waiting on a call that looked then said the call
    # "ignored its cancellation", not yet sent, and answered before its finally ran (review399).
    return not loop.is_running() and loop not in _RUN_TO_THE_END


def new_loop() -> asyncio.AbstractEventLoop:
    """Return a new event loop that holds none of this thread's context variables."""
    # NOTE: a selector loop's self-pipe reader is a handle made with a copy of the context of
    # new_event_loop()'s caller, kept as long as the loop. Started by a request, the app loop
    # kept that request's ContextVar values (and all they hold) for the app's life.
    return contextvars.Context().run(asyncio.new_event_loop)


def run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    """Run ``loop`` in this thread until it stops; then cancel its tasks and let them end.

    A ``SystemExit`` or ``KeyboardInterrupt`` that a task or a callback lets out of the loop
    (a background task's ``sys.exit()``), or a stop made by ``loop.stop()`` itself, is logged,
    and the loop runs on, until stopped by ``stop_loop``. Each task left then gets
    ``CancelledError`` and up to ``CLEANUP_WAIT`` seconds to run its cleanup (an exit it raises
    is logged too); then the loop's async generators are closed, as ``asyncio.run()`` does at
    its end, and the loop is closed.
    """
    _RUN_TO_THE_END.add(loop)
    try:
        _run_through_exits(loop)
        # NOTE: here, not in the cleanup: a call handed over before the cleanup's first step
        # ran made its task then, which the cleanup cancelled before its own first step: its
        # coroutine was never awaited, and its thread got LoopStopped for a call begun, not
        # AppClosed (review404).
        _CLEANING.add(loop)
        # NOTE: without this, a request cut off by stop() or a startup hook's background task
        # would be destroyed pending ("Task was destroyed but it is pending!"), its cleanup unrun.
        # NOTE: an exit a cancelled task raises in its finally is logged, and the cleanup runs
        # on: it ended the loop's thread, unlogged, the other tasks destroyed pending (review421).
        _run_through_exits(loop, loop.create_task(_clean_up(loop)))
    finally:
        # NOTE: here, not in stop(): the loop's thread is the one that knows when it is done,
        # also when stop() did not wait for it (called on the loop, or after its 10 s).
        _RUN_TO_THE_END.discard(loop)
        loop.close()


def stop_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Stop ``loop``, which ``run_until_stopped`` runs; called on the loop itself."""
    _STOPPED.add(loop)
    loop.stop()


def _run_through_exits(
    loop: asyncio.AbstractEventLoop, until: asyncio.Future[None] | None = None
) -> None:
    """Run ``loop`` until stopped by ``stop_loop``, or given ``until``, until it is done."""
    while True:
        try:
            if until is None:
                loop.run_forever()
            else:
                loop.run_until_complete(until)
        except (SystemExit, KeyboardInterrupt) as exc:
            # NOTE: asyncio lets these two out of a task (and a callback), and out of the loop:
            # the loop's thread ended for good, every later call was refused as after the app's
            # close, and a call waiting then was said to have ignored its cancellation. No
            # request raised it (a request's own goes to the server, from _run_hop()), so no
            # server sees it: logged here. The ready callbacks not run yet run on the next turn.
            logger.error(
                "%s raised on the event loop by a task or callback outside any request: "
                "logged, and the loop runs on",
                type(exc).__name__,
                exc_info=exc,
            )
            del exc  # NOTE: no cycle through this frame and the traceback.
            # NOTE: run_forever() forgets a stop made in the turn that the exception ended; one
            # asked for and not made yet is still queued.
            if loop in _STOPPED if until is None else until.done():
                return
        else:
            if until is not None or loop in _STOPPED:
                return
            # NOTE: a stop the app's own code made (asyncio.get_running_loop().stop()) ran the
            # cleanup and closed the loop, the app open: under WSGI every later async request
            # was a 500 "reached async code after the app was closed" (review421).
            logger.error(
                "the event loop was stopped by a call of its stop() outside microweb: "
                "ignored, and the loop runs on (the app's close stops it)"
            )


async def _clean_up(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop) - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    if tasks:
        # NOTE: asyncio.wait, not wait_for(gather()): a task that ignores its cancellation
        # would keep the gather, and this loop, waiting forever.
        done, _ = await asyncio.wait(tasks, timeout=CLEANUP_WAIT)
        for task in done:
            # NOTE: an exit is logged by _run_through_exits() as it is raised.
            if not task.cancelled() and not isinstance(
                task.exception(), (type(None), SystemExit, KeyboardInterrupt)
            ):
                loop.call_exception_handler(
                    {
                        "message": "a task raised while its event loop stopped",
                        "exception": task.exception(),
                        "task": task,
                    }
                )
    closing = loop.create_task(loop.shutdown_asyncgens())
    await asyncio.wait([closing], timeout=CLEANUP_WAIT)
