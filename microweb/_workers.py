"""``--workers``: the worker processes, each an ``OrderlyUvicorn`` on the shared sockets, and
the main process's care of them (``Workers``): started, pinged over a pipe that each worker's
event loop answers, stopped, killed when silent, and replaced."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

from ._errors import log_failure
from ._stopping import STOP_SIGNALS, end_by, interrupts_held, take_interrupts
from ._unix import port_of
from ._uvicorn import OrderlyUvicorn

logger = logging.getLogger("microweb")


def _run_worker(
    config: uvicorn.Config, sockets: list[socket.socket], pipe: Connection, supervisor: int
) -> None:
    server: OrderlyUvicorn | None = None
    try:
        take_interrupts()
        config.configure_logging()
        server = OrderlyUvicorn(
            config, functools.partial(_say_started, pipe), escalate=False, supervisor=supervisor
        )
        server.run(sockets)
    except KeyboardInterrupt:
        # NOTE: Uvicorn re-raises SIGINT once stopped; the main process reports it. One that
        # came before Uvicorn took SIGINT over (kill -INT of a starting worker) ended the
        # worker with status 0 (1 and a traceback as it took SIGINT back), a failed start
        # for the main process (status 3 for all).
        if server is None or not server.started:
            end_by(signal.SIGINT)


# NOTE: what a worker says on its pipe: that it started, and an answer to each ping.
STARTED = b"started"
PONG = b"pong"
PING = b"ping"


def _say_started(pipe: Connection, port: int) -> None:
    """Say on ``pipe`` that the worker started; from now on, its event loop answers pings."""
    # NOTE: the main process may have gone while the app started; the worker sees it soon.
    with contextlib.suppress(OSError):
        pipe.send_bytes(STARTED)
    # NOTE: the event loop itself, not a thread: a loop that an async def handler blocks (a
    # time.sleep(), a CPU-bound loop) answers nothing, and the main process replaces it.
    asyncio.get_running_loop().add_reader(pipe.fileno(), _answer, pipe)


def _answer(pipe: Connection) -> None:
    try:
        pipe.recv_bytes()
        pipe.send_bytes(PONG)
    except (EOFError, OSError):
        # NOTE: the main process has gone (the worker stops within a second, on_tick()); an
        # ended pipe stays readable, which would call this on every turn of the loop.
        asyncio.get_running_loop().remove_reader(pipe.fileno())


# NOTE: how a worker ends when SIGTERM or SIGINT is sent to it alone, as an operator may: as
# one that ends so once started, it is replaced (it has not failed to start). The statuses of
# a worker that failed to start are 3 or 0 (or 1).
_STOPPED_BY_SIGNAL = frozenset({-signal.SIGTERM, -signal.SIGINT})
# NOTE: a worker that ends within RESTART_WINDOW seconds of its start is replaced only after
# RESTART_PAUSE seconds (seconds each).
RESTART_WINDOW = 5.0
RESTART_PAUSE = 1.0
# NOTE: the most time between two pings of a worker, in seconds: the cost is one message each
# way a second.
PING_INTERVAL = 1.0
MIN_PING_INTERVAL = 0.1


class Worker:
    """One worker process and its pipe, on which it says that it started and answers pings."""

    def __init__(self, context: Any, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        self.pipe, child_end = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_run_worker, args=(config, sockets, child_end, os.getpid())
        )
        with interrupts_held():
            self.process.start()
        child_end.close()  # NOTE: so that the pipe ends (EOF) when the worker does.
        self.started = False
        self.born = self.heard = time.monotonic()
        self.pinged: float | None = None
        # NOTE: found silent, and sent SIGTERM; still silent since.
        self.stopped_silent = self.silent = False
        self.killed = False

    def hear(self) -> None:
        """Read what the worker said (that it started, or a pong); close the pipe once it has
        ended."""
        # NOTE: read even once it has started: a pipe that has ended and stays open is always
        # ready, and every wait returned at once (a busy loop while the others stopped).
        try:
            said = self.pipe.recv_bytes()
        except (EOFError, OSError):
            self.pipe.close()
        else:
            self.heard, self.pinged, self.silent = time.monotonic(), None, False
            self.started = self.started or said == STARTED

    def read_the_rest(self) -> None:
        """Read what the worker said before it ended (its pipe then ends as well)."""
        while not self.pipe.closed and self.pipe.poll():
            self.hear()

    def check_health(self, timeout: float) -> None:
        """Ping the worker once it has started; stop it if it has not answered the last ping
        for ``timeout`` seconds (SIGTERM), and kill it if it stays silent as long again."""
        if not self.started or self.pipe.closed or self.killed:
            return
        now = time.monotonic()
        if self.pinged is None:
            self.pinged = now
            with contextlib.suppress(OSError):
                self.pipe.send_bytes(PING)
            return
        if now - self.pinged < timeout:
            return
        silent = now - self.heard
        if not self.stopped_silent:
            logger.error(
                "worker [%d] has not answered for %.1f s: its event loop is blocked (a "
                "blocking call or CPU-bound work in an async def handler?); stopping it",
                self.process.pid,
                silent,
            )
            # NOTE: a loop that turns again in time stops in order; the ping is still unread.
            self.stopped_silent = self.silent = True
            self.pinged = now
            self.signal(signal.SIGTERM)
        else:
            logger.error(
                "worker [%d] has not answered for %.1f s, nor stopped; killing it",
                self.process.pid,
                silent,
            )
            self.killed = True
            self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the worker if it is still running."""
        if self.process.pid is not None and self.process.exitcode is None:
            os.kill(self.process.pid, signum)


class Workers:
    """Run ``count`` workers on ``sockets`` until SIGTERM or SIGINT, then stop them in order.

    Args:
        config: Uvicorn's ``Config`` for every worker.
        count: How many workers to run.
        sockets: The bound sockets they share.
        announce: Called once, with the port, when every worker first has started.
        healthcheck_timeout: How long a started worker's event loop may leave a ping
            unanswered before the worker is stopped, then killed, and replaced.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        count: int,
        sockets: list[socket.socket],
        announce: Callable[[int], None],
        *,
        healthcheck_timeout: float,
    ) -> None:
        # NOTE: spawn, as Uvicorn does: a fork would copy the main process's app and threads.
        self.context = multiprocessing.get_context("spawn")
        self.config = config
        self.count = count
        self.sockets = sockets
        self.announce: Callable[[int], None] | None = announce
        self.workers: list[Worker] = []
        self.signals: list[int] = []
        self.wake_up, self.waker = socket.socketpair()
        self.waker.setblocking(False)
        self.healthcheck_timeout = healthcheck_timeout
        # NOTE: a ping every second, or twice within a shorter timeout, but never more often
        # than MIN_PING_INTERVAL: --timeout-worker-healthcheck 0.001 kept a CPU busy pinging.
        self.ping_interval = min(PING_INTERVAL, max(MIN_PING_INTERVAL, healthcheck_timeout / 2))
        self.next_check = time.monotonic()

    def run(self) -> int | None:
        """Serve until a stop signal; return it, or ``None`` if a worker did not start."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            failed = not self._start_all() or self._serve()
            self._stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.wake_up.close()
            self.waker.close()
        return None if failed else self.signals[-1]

    def _start_all(self) -> bool:
        """Start the workers; return False if the system refused one (logged)."""
        for _ in range(self.count):
            worker = self._new_worker()
            if worker is None:
                return False
            self.workers.append(worker)
        return True

    def _new_worker(self) -> Worker | None:
        """Start a worker; return ``None`` if the system refuses it (logged)."""
        try:
            return Worker(self.context, self.config, self.sockets)
        except OSError as exc:
            # NOTE: no process (a container's pids limit: EAGAIN) or no pipe (EMFILE): it
            # raised out of the main process, a traceback and status 1, and the workers
            # started were left without it.
            log_failure("cannot start a worker process: %s; stopping", exc)
            return None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)
        # NOTE: an OSError means the socket is full: the main loop is awake anyway.
        with contextlib.suppress(OSError):
            self.waker.send(b"\0")

    def _wait(self, watched: list[Worker], timeout: float | None = None) -> None:
        """Wait for a signal, a worker's message, the end of one of ``watched``, or
        ``timeout`` seconds."""
        pipes = [worker.pipe for worker in self.workers if not worker.pipe.closed]
        # NOTE: the caller's list, not a second look at exitcode: a worker that ended between
        # the two looks would be left out, and nothing would wake this wait (it hung in CI).
        ended = [worker.process.sentinel for worker in watched]
        for ready in wait([self.wake_up, *pipes, *ended], timeout):
            if ready is self.wake_up:
                self.wake_up.recv(64)
        for worker in self.workers:
            if not worker.pipe.closed and worker.pipe.poll():
                worker.hear()

    def _serve(self) -> bool:
        """Keep the workers running until a stop signal; return True if one did not start."""
        while not self.signals:
            # NOTE: every worker: one that has ended is dealt with below, so none stays ready.
            self._wait(self.workers, max(0.0, self.next_check - time.monotonic()))
            self._check_health()
            for index, worker in enumerate(self.workers):
                if worker.process.exitcode is None or self.signals:
                    continue
                # NOTE: it may have said that it started after the pipes were read and then
                # ended: read that first, or it is taken for a worker that never started.
                worker.read_the_rest()
                if not worker.started and worker.process.exitcode not in _STOPPED_BY_SIGNAL:
                    log_failure(
                        "worker [%d] ended before it started (status %d); stopping",
                        worker.process.pid,
                        worker.process.exitcode,
                    )
                    return True
                if not self._replace(index, worker):
                    return True
            if self.announce is not None and all(worker.started for worker in self.workers):
                self.announce(port_of(self.sockets[0]))
                self.announce = None
        return False

    def _check_health(self) -> None:
        """Ping the workers, and stop those that left a ping unanswered, every
        ``ping_interval`` seconds; only while serving, never once stopping."""
        now = time.monotonic()
        if now < self.next_check:
            return
        if now - self.next_check > self.ping_interval:
            # NOTE: this process did not run for a while (Ctrl+Z and fg stop and resume every
            # process; a machine starved of CPU): the workers' silence then is not theirs, and
            # a ping sent just before counted against a worker that had no turn to answer it.
            for worker in self.workers:
                if worker.pinged is not None:
                    worker.pinged = now
        for worker in self.workers:
            worker.check_health(self.healthcheck_timeout)
        self.next_check = time.monotonic() + self.ping_interval

    def _replace(self, index: int, worker: Worker) -> bool:
        """Start another worker in place of ``worker``, which ended after it had started;
        return False if the system refused it (logged)."""
        logger.warning(
            "worker [%d] ended (status %d); starting another",
            worker.process.pid,
            worker.process.exitcode,
        )
        if time.monotonic() - worker.born < RESTART_WINDOW:
            # NOTE: a worker that dies as soon as it serves would be replaced in a loop that
            # keeps a CPU busy spawning (46 restarts in 6 s with 2 workers): pause first, for
            # as long as no stop signal comes.
            if wait([self.wake_up], RESTART_PAUSE):
                self.wake_up.recv(64)
            if self.signals:
                return True
        new = self._new_worker()
        if new is None:
            return False
        self.workers[index] = new
        return True

    def _stop(self) -> None:
        # NOTE: this process's copy of the shared socket goes first: while it stayed open, the
        # system took new connections in all through the workers' grace period, and reset them
        # at its end, where a single process refuses them at once (a proxy then moves on).
        for sock in self.sockets:
            sock.close()
        # NOTE: SIGTERM, as Uvicorn sends: a SIGINT that also came from the terminal would
        # make a second one, which Uvicorn takes as "quit without the shutdown hooks".
        for worker in self.workers:
            # NOTE: one found silent that has not answered since its SIGTERM never stops in
            # order: it held the main process until a second signal (or the SIGKILL of
            # systemd or Docker, which cut the other workers' shutdown hooks short).
            worker.signal(signal.SIGKILL if worker.silent else signal.SIGTERM)
        killed = False
        while running := [worker for worker in self.workers if worker.process.exitcode is None]:
            if len(self.signals) > 1 and not killed:
                for worker in running:
                    worker.signal(signal.SIGKILL)
                killed = True
            # NOTE: only the running ones: the sentinel of one that has ended is always ready.
            # A timeout, to look at exitcode again: a process the app started (os.system("job
            # &"), a fork) keeps a worker's end of its sentinel and pipe, so neither is ready
            # when it ends, and the stop hung until that process ended.
            self._wait(running, self.ping_interval)
        for worker in self.workers:
            worker.pipe.close()
            worker.process.join()
