"""Effects: what the sans-IO core asks a driver to run, and the coloured callables behind them.

The core handles a request as a generator that yields effects. An effect is either an awaitable
(an ``async def`` handler, hook or flow step) or an ``Offload`` (a ``def`` handler that may
block). The drivers run them through ``_concurrency``: under WSGI awaitables go to the app loop
and offloads run inline; under ASGI awaitables are awaited and offloads go to the thread pool.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import raise_own, report_unhandled

logger = logging.getLogger("microweb")

Effects = Generator[Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Offload:
    """An effect: call a blocking ``def`` function (inline under WSGI, in the pool under ASGI)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Apart:
    """An effect: await ``awaitable`` (an ``async def`` after-response callback's carrier, or
    an ``async def`` startup or shutdown hook's call) in an asyncio task of its own, and give
    back what it returned, or throw back in, as ``Ending``, the ``KeyboardInterrupt``,
    ``SystemExit`` or ``GeneratorExit`` that ended it.

    asyncio throws the ``GeneratorExit`` of a task (or ``gather()``) that a callback awaited
    into the task that awaits it, where it closes every coroutine below the task's own: in
    the request's task, the driver was closed with the callback, and the callbacks after it
    never ran. The task of its own takes that throw (review319). A hook's: the startup's or
    the shutdown's generator was closed as a whole, the lifespans entered left unexited, the
    later shutdown steps unrun (review345).
    """

    awaitable: Awaitable[Any]


@dataclass(frozen=True, slots=True)
class Colored:
    """A callable with its colour, decided once at registration."""

    fn: Callable[..., Any]
    is_async: bool
    offload: bool = False


@dataclass(frozen=True, slots=True)
class Lifespan:
    """A lifespan registered with ``app.lifespan``: ``factory(app)`` returns a context manager,
    entered at startup and exited at shutdown (sync or async: known from what it returns)."""

    factory: Callable[[Any], Any]
    name: str


class ShutdownError(RuntimeError):
    """Some shutdown steps failed; each was logged, and every other step ran."""


class CleanupCut(TimeoutError):
    """A cut flow's cleanup, run on a request thread's own loop once the app loop had stopped,
    did not end within ``CLEANUP_WAIT``: it was cancelled, and ``stubborn`` when it ignored
    that too (then its ``aclose()`` was closed, which closes the flow on Python 3.13 only;
    ``failure`` is what its finally blocks raised then).

    What became of the flow is told from its generator by ``_flow_closing``.
    """

    def __init__(self, message: str, stubborn: bool, failure: Exception | None = None) -> None:
        super().__init__(message)
        self.stubborn = stubborn
        self.failure = failure


class Ending(Exception):
    """An ``async def`` startup or shutdown step's ``SystemExit`` or ``KeyboardInterrupt``, or
    an after-response callback's, or the ``GeneratorExit`` of either or of a ``def`` step,
    ``ended``, carried to the step's or the callbacks' generator: the drivers throw only
    exceptions back in."""

    def __init__(self, ended: BaseException) -> None:
        super().__init__(repr(ended))
        self.ended = ended


async def carried(awaitable: Awaitable[Any]) -> Any:
    """Await ``awaitable``; its ``SystemExit``, ``KeyboardInterrupt`` or ``GeneratorExit``
    comes out as ``Ending``.

    Raises:
        Ending: Carrying what ended it.
    """
    try:
        return await awaitable
    except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
        if closing_here(exc):
            raise  # NOTE: this coroutine's closing.
        # NOTE: let out, it went past the startup's or shutdown's generator: a def step's
        # sys.exit() exited the lifespans entered and ran the later shutdown steps, an async
        # def step's did not. A GeneratorExit thrown in as it was closed that generator as a
        # whole: the lifespans entered were left to their collection, and the later shutdown
        # steps never ran (review341).
        raise Ending(exc) from None


def run_shutdown(steps: list[Colored]) -> Effects:
    """Run every shutdown step (hooks, then plugins' ``close()``), even after one fails.

    Each failure is logged on the ``"microweb"`` logger as it happens.

    Raises:
        BaseException: Once all ran, the first ``SystemExit`` or ``KeyboardInterrupt`` a step
            raised, as it was raised.
        ShutdownError: Once all ran, naming the steps that failed.
    """
    failed = []
    ended: BaseException | None = None
    for step in steps:
        name = getattr(step.fn, "__qualname__", repr(step.fn))
        try:
            if step.is_async:
                yield Apart(step.fn())
            else:
                call_sync(step.fn, "shutdown")
        except Ending as carrier:
            logger.error("shutdown step %s failed", name, exc_info=carrier.ended)
            ended = ended or carrier.ended
        except Exception as exc:
            logger.error("shutdown step %s failed", name, exc_info=exc)
            failed.append(f"{name} ({type(exc).__name__}: {exc})")
        except (KeyboardInterrupt, SystemExit) as exc:
            # NOTE: a step that ends the process (sys.exit(), Ctrl+C) skipped the steps after
            # it: a lifespan's exit and the plugins' close() never ran. Nested with blocks exit
            # all the same: raised once all ran. (A server's cancellation still ends it: the
            # server gave up waiting.)
            logger.error("shutdown step %s failed", name, exc_info=exc)
            ended = ended or exc
    if ended is not None:
        raise ended
    if failed:
        raise ShutdownError(
            f"{len(failed)} of {len(steps)} shutdown steps failed: {'; '.join(failed)}"
        )


# NOTE: a callback given to request.after_response(), with its arguments.
AfterCall = tuple[Colored, tuple[Any, ...], dict[str, Any]]


class AfterCalls(list[AfterCall]):
    """A request's after-response callbacks; ``ran`` once ``run_after`` has run them (or was
    cut off), after which a callback added would never run."""

    __slots__ = ("ran",)

    def __init__(self, calls: list[AfterCall]) -> None:
        super().__init__(calls)
        self.ran = False


class _Ended(AfterCalls):
    """The callbacks of every request that ended with none: shared, so never added to."""

    __slots__ = ()

    def _refuse(self, *args: Any) -> None:
        raise RuntimeError("the request has ended: a callback added now would never run")

    append = insert = extend = _refuse


# NOTE: one added later would never run, and request.after_response() refuses it, as it does
# once a request's own callbacks ran.
ENDED = _Ended([])
ENDED.ran = True


def run_after(calls: AfterCalls, named: Callable[[], str]) -> Effects:
    """Run the after-response callbacks in order; each failure is logged (and reported), and
    the rest run.

    A callback may add another (``request.after_response`` again): it runs too, at the end.
    ``named`` gives the request's method and path, for the log line of a failure.

    Raises:
        BaseException: Once all ran, the first ``KeyboardInterrupt``, ``SystemExit`` or
            ``GeneratorExit`` a callback raised, as it was raised, for the server (as a
            handler's goes there).
    """
    # PERF: taken from a deque, not by calls.pop(0), which moved every later entry: 100,000
    # callbacks of one request took 1.43 s under WSGI, quadratic in their number (0.04 s for
    # 10,000). A callback's own additions go to calls, and run after those taken before.
    pending: deque[AfterCall] = deque()
    # NOTE: the callbacks run where the server or the driver ends the request, in its finally:
    # past a stream's error, a callback's own was chained to it, and logged as raised "during
    # handling of" an error it had no part in (under WSGI, and under ASGI for async callbacks).
    passing = sys.exc_info()[1]
    try:
        yield from _run_pending(pending, calls, named, passing)
    finally:
        calls.ran = True
        del passing


def _run_pending(
    pending: deque[AfterCall],
    calls: AfterCalls,
    named: Callable[[], str],
    passing: BaseException | None,
) -> Effects:
    ended: BaseException | None = None
    while pending or calls:
        if not pending:
            pending.extend(calls)
            calls.clear()
        target, args, kwargs = pending.popleft()
        try:
            if target.is_async:
                awaitable = target.fn(*args, **kwargs)
                carrier = _await_carried(awaitable)
                try:
                    yield Apart(carrier)
                finally:
                    # NOTE: the app loop closes the carrier unstarted once the WSGI app was
                    # closed: the callback's coroutine, never awaited, was left to a warning.
                    # The task that awaits the carrier too (Apart), which leaves it unstarted.
                    carrier.close()
                    if isinstance(awaitable, Coroutine):
                        awaitable.close()
            else:
                returned = yield Offload(_call_carried, (target.fn, *args), kwargs)
                if isinstance(returned, Coroutine):
                    _never_awaited(returned)
                elif isinstance(returned, (Generator, AsyncGenerator)):
                    _never_iterated(returned)
        except Ending as carrier:
            # NOTE: the callbacks after it never ran, though no served process ends for it
            # (both servers log it and serve on): a lock or a file they were to release stayed
            # held. Not logged here: it goes on to the server, which logs it.
            ended = ended or carrier.ended
        except Exception as exc:
            if passing is not None:
                _unchain(exc, passing)
            name = getattr(target.fn, "__qualname__", repr(target.fn))
            # NOTE: the request named, as the response is long logged: Waitress's threads
            # run callbacks of several requests at once.
            logger.error("after-response callback %s of %s failed", name, named(), exc_info=exc)
            report_unhandled(exc)
    if ended is not None:
        if passing is not None:
            _unchain(ended, passing)
            # NOTE: raised here, where passing is handled, it takes it as its context again:
            # the server logged it "during handling of" a stream's error, logged before.
            ended.__suppress_context__ = ended.__context__ is None or ended.__suppress_context__
        try:
            raise ended
        finally:
            del ended  # NOTE: no cycle through this frame and the error's traceback.


# NOTE: what app code raises that is no error of its request (see docs/errors.md): it goes on
# to the server.
_ENDING = (KeyboardInterrupt, SystemExit, GeneratorExit)


def _call_carried(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call a ``def`` callback; its ``KeyboardInterrupt``, ``SystemExit`` or ``GeneratorExit``
    comes out as ``Ending``, which the drivers throw back in (an ``Offload``'s own went past
    the callbacks' generator under WSGI, and a ``GeneratorExit`` under ASGI too).

    Raises:
        Ending: Carrying what ended it.
    """
    try:
        return fn(*args, **kwargs)
    except _ENDING as exc:
        raise Ending(exc) from None


async def _await_carried(awaitable: Awaitable[Any]) -> Any:
    """Await an ``async def`` callback, as ``_call_carried`` calls a ``def`` one.

    Raises:
        Ending: Carrying what ended it.
    """
    try:
        return await awaitable
    except _ENDING as exc:
        if closing_here(exc):
            raise  # NOTE: or close() would fail.
        raise Ending(exc) from None


async def own_exit_carried(awaitable: Awaitable[Any]) -> Any:
    """Await ``awaitable``, app code; its own ``GeneratorExit`` comes out as ``Ending``.

    NOTE: thrown back in as it was, a driver's throw() at a ``yield from`` closes the whole
    core generator, and no flow can be closed by an effect then.

    Raises:
        Ending: Carrying that ``GeneratorExit``.
    """
    try:
        return await awaitable
    except GeneratorExit as exc:
        if closing_here(exc):
            raise  # NOTE: this coroutine's closing.
        raise Ending(exc) from None


def call_own_exit_carried(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``, a ``def`` handler in the pool; its ``GeneratorExit`` comes out as ``Ending``
    (see ``own_exit_carried``).

    Raises:
        Ending: Carrying that ``GeneratorExit``.
    """
    try:
        return fn(*args, **kwargs)
    except GeneratorExit as exc:
        raise Ending(exc) from None


async def _a_flow() -> AsyncGenerator[None, None]:
    return
    yield  # NOTE: unreached; it makes this an async generator.


def _flow_step_type() -> type[Any]:
    step = _a_flow().asend(None)
    # NOTE: run to its end, the generator with it. Closed unrun, it warned "never awaited"
    # (3.13); and a generator never begun, which the hooks of a loop running at this import
    # took as first iterated, queued its aclose() on that loop as it was collected: a task
    # destroyed pending where the loop closed without asyncio.run()'s care (3.10-3.12)
    # (review341).
    with contextlib.suppress(StopAsyncIteration):
        step.send(None)
    return type(step)


# NOTE: the type of an async flow's step (``gen.asend(value)``), which the core yields bare:
# the drivers throw back in, as ``Ending``, the ``GeneratorExit`` that such a step raised of
# its own (``flow_step_ending``).
FLOW_STEP: type[Any] = _flow_step_type()


def flow_step_ending(effect: object, exc: BaseException) -> BaseException:
    """Return what a driver throws back into the core for ``exc``, which awaiting ``effect``
    raised: an async flow step's own ``GeneratorExit`` as ``Ending``, else ``exc``.

    NOTE: thrown back in as it was, a throw() at a ``yield from`` closes the whole core, and
    the flows outside the step could not be closed by an effect (their ``aclose()``), only
    when collected ("ignored GeneratorExit"). ``Ending`` reaches the step's ``yield`` as any
    error does. PERF: told here, on the error's way, not by a carrier coroutine around every
    step: that cost 1.5-1.8 us a request of three async flows, 14.1 -> 15.9 (review336's
    carrier, 3.11, 2026-12-07).
    """
    if type(effect) is FLOW_STEP and isinstance(exc, GeneratorExit):
        return Ending(exc)
    return exc


def closing_here(exc: BaseException) -> bool:
    """Tell whether ``exc``, caught at an ``await``, is the awaiting coroutine's own closing,
    not app code's ``GeneratorExit``: raised there with no frame below (``close()`` closes
    what it awaits first, then raises a new one at the ``await``)."""
    traceback = exc.__traceback__
    return isinstance(exc, GeneratorExit) and traceback is not None and traceback.tb_next is None


def _unchain(exc: BaseException, passing: BaseException) -> None:
    """Cut ``passing``, the error that went by as the callbacks began, from ``exc``'s context."""
    seen = {id(exc)}
    while (context := exc.__context__) is not None and id(context) not in seen:
        if context is passing:
            exc.__context__ = None
            return
        seen.add(id(context))
        exc = context


def _never_iterated(returned: Generator[Any, Any, Any] | AsyncGenerator[Any, Any]) -> None:
    # NOTE: a generator function (sync or async) as a callback ran none of its code: called,
    # it only makes the generator. Not started, it needs no closing.
    what = "an async generator" if isinstance(returned, AsyncGenerator) else "a generator"
    raise TypeError(
        f"it returned {what}, which nobody iterates: a generator "
        "function's code runs only when iterated; give after_response() a def or async def "
        "function without yield"
    )


def call_sync(fn: Callable[[], Any], kind: str) -> Any:
    """Call a ``def`` startup or shutdown step (``kind``); return what it returned.

    Raises:
        concurrent.futures.CancelledError: For asyncio's ``CancelledError`` that it raised,
            which no server made (it cancels at an ``await``): an error of the step, as an
            ``async def`` step's own is.
        RuntimeError: For a ``StopIteration`` that it raised, as sync app code's is in a
            request (see ``own_stop``).
        TypeError: If it returned a coroutine (see ``refuse_coroutine``).
        Ending: Carrying a ``GeneratorExit`` that it raised.
    """
    try:
        returned = fn()
    except BaseException as exc:
        # NOTE: a def shutdown hook's own (an asyncio.run() of a cancelled call) skipped the
        # steps after it, where an async def hook's failed that step alone. A StopIteration
        # left the startup's generator as Python's "generator raised StopIteration".
        raise_own(exc)
        if isinstance(exc, GeneratorExit):
            # NOTE: carried as an async def step's is (Apart): let out, it skipped the
            # later shutdown steps and left the lifespans entered to their collection, where
            # a SystemExit runs them (review341).
            raise Ending(exc) from None
        raise
    refuse_coroutine(returned, kind)
    return returned


def refuse_coroutine(returned: object, kind: str) -> None:
    """Raise if a ``def`` startup or shutdown step (``kind``) returned a coroutine, closed.

    Raises:
        TypeError: Saying to register the ``async def`` function itself.
    """
    if isinstance(returned, Coroutine):
        # NOTE: a lambda around an async call (close = lambda: self.aclose()) ran nothing: its
        # coroutine was dropped with a "never awaited" warning, and the step counted as done.
        returned.close()
        raise TypeError(
            f"a def {kind} step returned a coroutine, which nobody awaits: register the "
            "async def function itself (or make the step async def and await it)"
        )


def _never_awaited(returned: Coroutine[Any, Any, Any]) -> None:
    # NOTE: a def callback (a lambda around an async call, say) made a coroutine that runs only
    # if awaited; closed and told, rather than lost with a "never awaited" warning.
    returned.close()
    raise TypeError(
        "it returned a coroutine, which nobody awaits: give after_response() the async def "
        "function and its arguments"
    )
