"""A ``--workers`` worker process: what runs in it (an ``OrderlyUvicorn`` on the shared
sockets), and the main process's view of one (``Worker``): its pipe, on which it says that it
started, and its beats, from which the main process tells whether its event loop makes
progress, and stops or kills it. The care of them all is ``_workers``."""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import time
from collections.abc import MutableSequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn

from ._stopping import end_by, interrupts_held, take_interrupts
from ._uvicorn import OrderlyUvicorn
from ._watcher import HOOKS, LOOKS, PASSED_ON, PROGRESS, SLOTS, STARTED, TURNS, say_started

logger = logging.getLogger("microweb")


def _run_worker(
    config: uvicorn.Config,
    sockets: list[socket.socket],
    pipe: Connection,
    beats: MutableSequence[int],
    timeout: float,
    supervisor: int,
) -> None:
    server: OrderlyUvicorn | None = None
    try:
        take_interrupts()
        config.configure_logging()
        passed_on = functools.partial(beats.__getitem__, PASSED_ON)
        server = OrderlyUvicorn(config, escalate=False, supervisor=supervisor, passed_on=passed_on)
        # NOTE: the serving loggers are on again by then, as a single process's are: the
        # server looks once the startup hooks ran (OrderlyUvicorn.startup()).
        server.announce = functools.partial(say_started, pipe, beats, timeout, server)
        server.run(sockets)
    except KeyboardInterrupt:
        # NOTE: Uvicorn re-raises SIGINT once stopped; the main process reports it. One that
        # came before Uvicorn took SIGINT over (kill -INT of a starting worker) ended the
        # worker with status 0 (1 and a traceback as it took SIGINT back), a failed start
        # for the main process (status 3 for all).
        if server is None or not server.started:
            end_by(signal.SIGINT)


# NOTE: how long a worker told of a second signal has to end its wait for the requests in
# flight and begin its shutdown hooks (a poll, the requests' cancellation, a beat) before it is
# killed.
HURRY_MARGIN = 2.0


class Worker:
    """One worker process, its pipe, on which it says that it started, and its beats.

    Args:
        context: The ``multiprocessing`` context to start it in.
        config: Uvicorn's ``Config``.
        sockets: The bound sockets it serves on.
        timeout: How long its event loop may make no progress before it is stopped.
        killed_starts: How many workers in a row in its place were ended by a signal before
            they started.
    """

    def __init__(
        self,
        context: Any,
        config: uvicorn.Config,
        sockets: list[socket.socket],
        timeout: float,
        killed_starts: int = 0,
    ) -> None:
        self.killed_starts = killed_starts
        self.pipe, child_end = context.Pipe()
        try:
            self.beats: MutableSequence[int] = context.RawArray("Q", SLOTS)
            self.process: BaseProcess = context.Process(
                target=_run_worker,
                args=(config, sockets, child_end, self.beats, timeout, os.getpid()),
            )
            with interrupts_held():
                self.process.start()
        except OSError:
            self.pipe.close()
            raise
        finally:
            child_end.close()  # NOTE: so that the pipe ends (EOF) when the worker does.
        self.started = False
        self.born = self.progressed = self.ran = time.monotonic()
        # NOTE: its start's time, which a pause of this process does not count; born stays,
        # for a worker that ends young.
        self.start_counted = self.born
        self.looks = self.progress = 0
        # NOTE: when it was sent SIGTERM for a loop found stuck (None: never); stuck since.
        self.stopped_stuck: float | None = None
        self.stuck = False
        self.killed = False
        self.said_slow_start = False
        # NOTE: when it was told of a second signal (None: never).
        self.hurried: float | None = None

    def hear(self) -> None:
        """Read what the worker said (that it started); close the pipe once it has ended."""
        # NOTE: read even once it has started: a pipe that has ended and stays open is always
        # ready, and every wait returned at once (a busy loop while the others stopped).
        try:
            said = self.pipe.recv_bytes()
        except (EOFError, OSError):
            self.pipe.close()
        else:
            if said == STARTED and not self.started:
                # NOTE: its loop is watched from its start's end: startup hooks have no limit.
                self.started, self.progressed, self.ran = True, time.monotonic(), time.monotonic()

    def read_the_rest(self) -> None:
        """Read what the worker said before it ended (its pipe then ends as well)."""
        while not self.pipe.closed and self.pipe.poll():
            self.hear()

    def look(self, now: float) -> None:
        """Note when the worker's watcher last ran, and when its event loop last made progress
        (found by the watcher, or a turn of the loop)."""
        looks, progress = self.beats[LOOKS], self.beats[PROGRESS] + self.beats[TURNS]
        if looks != self.looks:
            self.looks, self.ran = looks, now
        if progress != self.progress:
            self.progress, self.progressed, self.stuck = progress, now, False

    def restart_clocks(self, now: float) -> None:
        """Count the worker's time without progress, or to start, from ``now`` (this process
        did not run)."""
        self.progressed = self.ran = self.start_counted = now
        if self.stopped_stuck is not None:
            self.stopped_stuck = now

    def check_health(self, timeout: float) -> None:
        """Stop the worker once started if its event loop has made no progress for ``timeout``
        seconds (SIGTERM), and kill it if it makes none for as long again. Say it once of a
        worker still starting after ``timeout`` seconds."""
        if self.killed or self.process.exitcode is not None:
            return
        now = time.monotonic()
        if not self.started:
            self._say_slow_start(now, timeout)
            return
        self.look(now)
        if self.stopped_stuck is None:
            if now - self.progressed >= timeout:
                logger.error("%s; stopping it", self._why_stuck(now))
                # NOTE: a loop that turns again in time stops in order.
                self.stopped_stuck = now
                self.stuck = True
                self.signal(signal.SIGTERM)
        elif now - max(self.progressed, self.stopped_stuck) >= timeout:
            logger.error("%s, nor stopped; killing it", self._why_stuck(now))
            self.kill()

    def _say_slow_start(self, now: float, timeout: float) -> None:
        # NOTE: a start is not timed, as under Uvicorn: a start that is slow but sound (a model
        # loaded, migrations run) would be cut, and one that waits for a database that never
        # answers would wait again in the worker started in its place. A startup that hung
        # was said nowhere: the worker served nothing, and "serving on" never came.
        if not self.said_slow_start and now - self.start_counted >= timeout:
            self.said_slow_start = True
            logger.warning(
                "worker [%d] has not finished starting after %.1f s (the app's import, its "
                "factory or its startup hooks run on); it serves nothing until it has, and is "
                "watched from then on",
                self.process.pid,
                now - self.start_counted,
            )

    def check_stopping(self, timeout: float, began: float) -> None:
        """While the main process stops, which began at ``began``: kill the worker if its
        event loop has made no progress for ``timeout`` seconds since, outside its shutdown
        hooks."""
        if self.killed or self.process.exitcode is not None:
            return
        now = time.monotonic()
        if self._too_slow_to_hurry(now):
            logger.error(
                "worker [%d] has not begun its shutdown hooks %.1f s after the second signal; "
                "killing it",
                self.process.pid,
                now - (self.hurried or now),
            )
            self.kill()
            return
        if not self.started:
            return
        self.look(now)
        if self.beats[HOOKS]:
            # NOTE: microweb gives the shutdown hooks no time limit; a second signal cuts them.
            return
        if now - max(self.progressed, began) >= timeout:
            logger.error("%s, nor stopped as the server stops; killing it", self._why_stuck(now))
            self.kill()

    def _too_slow_to_hurry(self, now: float) -> bool:
        """Return whether the worker, told of a second signal ``HURRY_MARGIN`` seconds or more
        before ``now``, has not begun its shutdown hooks."""
        if self.hurried is None or now - self.hurried < HURRY_MARGIN:
            return False
        return not (self.started and self.beats[HOOKS])

    def _why_stuck(self, now: float) -> str:
        """Say what was seen of a worker whose event loop made no progress."""
        stuck = now - self.progressed
        if now - self.ran < stuck:
            return (
                f"worker [{self.process.pid}]'s event loop has made no progress for "
                f"{stuck:.1f} s: one task (or callback) ran all along (an async def handler, hook, "
                "stream or callback that calls something blocking, or computes?)"
            )
        return (
            f"worker [{self.process.pid}] has not run its watcher thread for {stuck:.1f} s: "
            "the whole process is held (one call that keeps the GIL, such as a regular "
            "expression, in a def handler too?)"
        )

    def pass_on(self, count: int) -> None:
        """Tell the worker that ``count`` signals past the first came (SIGTERM after it):
        it ends its wait for the requests in flight and runs its shutdown hooks, or ends if
        they run, as a lone process does on a second signal."""
        self.beats[PASSED_ON] = count
        if self.hurried is None:
            self.hurried = time.monotonic()
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the worker (SIGKILL) if it is still running."""
        self.killed = True
        self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the worker if it is still running."""
        if self.process.pid is not None and self.process.exitcode is None:
            os.kill(self.process.pid, signum)
