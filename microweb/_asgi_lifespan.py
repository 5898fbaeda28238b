"""The ASGI driver's startup and shutdown: the ``lifespan`` scope's messages, the startup
that the first requests run when no lifespan came, and the thread pool's release."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from functools import partial
from typing import TYPE_CHECKING, Protocol

from ._concurrency import drive_async
from ._effects import Colored, ShutdownError, closing_here, run_shutdown
from ._errors import log_failure
from ._lifespans import run_startup
from ._pool import WorkerPool
from ._types import Receive, Send

if TYPE_CHECKING:
    from ._plan import Plan
    from ._types import AppLike

logger = logging.getLogger("microweb")


class LifespanHost(Protocol):
    """What the startup and the shutdown need of the ASGI driver, and the state they keep on
    it (see ``ASGIDriver.__init__``)."""

    @property
    def plan(self) -> Plan: ...

    @property
    def app(self) -> AppLike: ...

    @property
    def pool(self) -> WorkerPool: ...

    made_pool: WorkerPool | None
    started: bool
    starting: asyncio.Future[None] | None
    exits: list[Colored]
    app_context: contextvars.Context
    shutdown_ended: BaseException | None


async def start_once(host: LifespanHost) -> None:
    """Run the startup once, for a server without lifespan; the first requests wait for it.

    Raises:
        Exception: What the startup raised; the next call runs it again.
    """
    task = host.starting
    if task is None or (task.done() and not host.started):
        # NOTE: a task of its own, for a server without lifespan, where the first requests
        # start the app: one of them cancelled (its client gone, the server stopping) does
        # not cut the startup off half-way, to be run again from the start by the next
        # request (a second pool opened), and what the hooks set in context variables stays
        # out of that request, as under the lifespan protocol.
        # NOTE: run() for Python 3.10, whose create_task() takes no context.
        create = asyncio.get_running_loop().create_task
        task = host.starting = host.app_context.copy().run(create, _start(host))
        task.add_done_callback(partial(_forget_failed, host))
    if not task.done():
        await asyncio.wait((task,))  # NOTE: a cancelled caller leaves the task running.
    task.result()


def _forget_failed(host: LifespanHost, done: asyncio.Future[None]) -> None:
    # NOTE: as soon as it ends, not when a waiter looks: a failure whose waiters were all
    # cancelled is still retrieved (no "exception was never retrieved" log) and let go of
    # (a failed one still here is run again, not raised again).
    if (done.cancelled() or done.exception() is not None) and host.starting is done:
        host.starting = None


async def _lifespan_startup(host: LifespanHost) -> None:
    """Run the startup on ``lifespan.startup``, in the lifespan's task; once, as requests do.

    Raises:
        Exception: What the startup raised.
    """
    if host.started:
        return  # NOTE: requests of a server that sent none before ran it.
    if host.starting is not None and not host.starting.done():
        # NOTE: a server that called a request before lifespan.startup (the protocol has
        # it the other way round) started it: a second run would open every resource twice
        # and lose the first run's exits, never shut down.
        await start_once(host)
        return
    # NOTE: a request that a server calls before lifespan.startup.complete waits for it.
    done = host.starting = asyncio.get_running_loop().create_future()
    done.add_done_callback(partial(_forget_failed, host))
    try:
        await _start(host)
    except BaseException as exc:
        done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("startup cut off"))
        raise
    done.set_result(None)


async def _start(host: LifespanHost) -> None:
    # NOTE: on lifespan.startup, in the lifespan's task, where the shutdown runs too: a
    # lifespan's token made at startup resets at shutdown.
    startup = run_startup(host.plan.startup_steps, host.app)
    host.exits = await drive_async(startup, host.pool)
    host.started = True


async def _shutdown(host: LifespanHost) -> None:
    if not host.started:
        # NOTE: a lifespan.shutdown with no startup of this callable before it (none, or a
        # second shutdown) ran the shutdown hooks and plugins' close() of an app it never
        # started (again), and counted down the serving of another callable (an as_wsgi()
        # one), whose startup steps App then took, never to run them.
        release_pool(host)
        return
    try:
        exits, host.exits = host.exits, []
        _say_still_running(host.made_pool)
        host.plan.startup_steps.stopped()  # NOTE: as under WSGI (WSGIDriver.close).
        await drive_async(run_shutdown(host.plan.shutdown_sequence(exits)), host.pool)
    finally:
        release_pool(host)
        # NOTE: stopped: a later lifespan.startup (the callable served again) starts it again.
        host.started, host.starting = False, None


def release_pool(host: LifespanHost) -> None:
    """End the threads of the ``def`` handlers' pool, once their calls end (a new pool is
    made if a call comes later)."""
    if host.made_pool is not None:
        host.made_pool.shutdown(wait=False)
        host.made_pool = None


async def run_lifespan(host: LifespanHost, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await _lifespan_startup(host)
            except Exception as exc:
                # NOTE: uvicorn's --lifespan auto would log and serve anyway (TRAPS.md 11).
                log_failure("startup failed", exc_info=True)
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
                if closing_here(exc):
                    raise  # NOTE: this coroutine's closing.
                # NOTE: a hook's sys.exit("DATABASE_URL is not set"), let out alone, was
                # taken by Uvicorn for a lifespan protocol it did not know: it said "serving
                # on", the first request got a 500 and the process ended (review170). Said
                # failed first, then raised on, as out of as_wsgi(): the server exits with
                # its startup failure, a test gets the exception itself.
                log_failure("startup failed", exc_info=True)
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                raise
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await _shutdown(host)
            except ShutdownError as exc:
                # NOTE: every step ran and each failure was logged; report them together.
                await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                return
            except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
                if closing_here(exc):
                    raise  # NOTE: this coroutine's closing.
                # NOTE: every step ran, this one logged: said failed, then raised on, as at
                # startup. Let out alone, Uvicorn took it for a lifespan protocol it did not
                # know ("ASGI 'lifespan' protocol appears unsupported"). Kept for microweb
                # serve, which ends with it, as under Waitress (Uvicorn takes it here).
                host.shutdown_ended = exc
                await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                raise
            await send({"type": "lifespan.shutdown.complete"})
            return


def _say_still_running(pool: WorkerPool | None) -> None:
    """Log, at the lifespan's shutdown, the calls of ``def`` code that ``pool`` still runs."""
    # NOTE: only after a cut-off: a thread whose call has just returned is counted until it
    # is back at the queue, and the request it answered may have ended before that.
    running = pool.running() if pool is not None and pool.cut_off else 0
    if running:
        # NOTE: Uvicorn cancels the requests left at the end of its grace period, then shuts
        # the lifespan down; a def handler (or a sync stream) of a cancelled request goes on in
        # its thread, which no one can stop: the shutdown hooks closed what it used under it,
        # and the process's exit cut it off, and no line said so.
        logger.warning(
            "shutting down with %d call%s of def code still running in the thread pool (a "
            "handler or stream of a request the server cut off): the shutdown hooks run now, "
            "and the process's exit ends %s",
            running,
            "" if running == 1 else "s",
            "it" if running == 1 else "them",
        )
