"""``--workers``: the main process's care of the worker processes (``Workers``): started,
watched for an event loop that makes no progress, stopped, killed when stuck, and replaced.
One worker, and what runs in it, is ``_worker_process``."""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from types import FrameType

import uvicorn

from ._app_loop import CLEANUP_WAIT
from ._errors import log_failure
from ._stopping import STOP_SIGNALS
from ._unix import port_of
from ._worker_process import Worker

logger = logging.getLogger("microweb")


# NOTE: a worker ended by a signal before it started (SIGTERM or SIGINT sent to it alone, as
# an operator may; SIGKILL from the OOM killer) has not failed to start: it is replaced, as one
# that ends so once started, but only MAX_KILLED_STARTS times in a row in its place. The
# statuses of a worker that failed to start are 3 or 0 (or 1).
MAX_KILLED_STARTS = 5
# NOTE: a worker that ends within RESTART_WINDOW seconds of its start is replaced only after
# RESTART_PAUSE seconds (seconds each).
RESTART_WINDOW = 5.0
RESTART_PAUSE = 1.0
# NOTE: the most time between two looks at the workers' beats, in seconds.
CHECK_INTERVAL = 1.0
MIN_CHECK_INTERVAL = 0.1
# NOTE: with the watching off, as the server stops, a worker whose loop has made no progress
# for --graceful-timeout and STOP_MARGIN seconds more (the CLEANUP_WAIT the requests cut off
# get, and one more) is killed, as Gunicorn kills what is left after its graceful timeout.
STOP_MARGIN = CLEANUP_WAIT + 1.0


class Workers:
    """Run ``count`` workers on ``sockets`` until SIGTERM or SIGINT, then stop them in order.

    Args:
        config: Uvicorn's ``Config`` for every worker.
        count: How many workers to run.
        sockets: The bound sockets they share.
        announce: Called once, with the port, when every worker first has started.
        healthcheck_timeout: How long a started worker's event loop may make no progress
            before the worker is stopped, then killed, and replaced.
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
        # NOTE: how many signals past the first were passed on to the workers.
        self.passed_on = 0
        self.wake_up, self.waker = socket.socketpair()
        self.waker.setblocking(False)
        self.healthcheck_timeout = healthcheck_timeout
        # NOTE: a look every second, or twice within a shorter timeout, but never more often
        # than MIN_CHECK_INTERVAL: --timeout-worker-healthcheck 0.001 kept a CPU busy pinging.
        self.check_interval = min(CHECK_INTERVAL, max(MIN_CHECK_INTERVAL, healthcheck_timeout / 2))
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
        # NOTE: from now: a start slower than a look's interval (a loaded machine) was taken
        # for a pause of this process at the first look, and gave every worker its time again.
        self.next_check = time.monotonic()
        return True

    def _new_worker(self, killed_starts: int = 0) -> Worker | None:
        """Start a worker, whose place's last ``killed_starts`` workers were ended by a signal
        before they started; return ``None`` if the system refuses it (logged)."""
        try:
            return Worker(
                self.context, self.config, self.sockets, self.healthcheck_timeout, killed_starts
            )
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
                if not worker.started and self._failed_start(worker):
                    return True
                if not self._replace(index, worker):
                    return True
            if self.announce is not None and all(worker.started for worker in self.workers):
                self.announce(port_of(self.sockets[0]))
                self.announce = None
        return False

    def _check_health(self) -> None:
        """Look at the workers' beats, and stop those whose event loop made no progress, every
        ``check_interval`` seconds, while serving."""
        now = time.monotonic()
        if now < self.next_check:
            return
        if now - self.next_check > self.check_interval:
            # NOTE: this process did not run for a while (Ctrl+Z and fg stop and resume every
            # process; a machine starved of CPU): the workers' standstill then is not theirs.
            for worker in self.workers:
                worker.restart_clocks(now)
        for worker in self.workers:
            worker.check_health(self.healthcheck_timeout)
        self.next_check = time.monotonic() + self.check_interval

    def _failed_start(self, worker: Worker) -> bool:
        """Return whether ``worker``, which ended before it started, failed to start (logged):
        it ended by itself, or was ended by a signal ``MAX_KILLED_STARTS`` times in a row."""
        status = worker.process.exitcode
        killed = status is not None and status < 0
        if killed and worker.killed_starts + 1 < MAX_KILLED_STARTS:
            return False
        # NOTE: a worker killed at every start (too little memory for the app) would be
        # replaced for ever, and the server never serve, with no word of why.
        log_failure(
            "worker [%d] ended before it started (status %d)%s; stopping",
            worker.process.pid,
            status,
            f", as did the {worker.killed_starts} before it in its place" if killed else "",
        )
        return True

    def _replace(self, index: int, worker: Worker) -> bool:
        """Start another worker in place of ``worker``, which ended after it had started or
        was ended by a signal before; return False if the system refused it (logged)."""
        logger.warning(
            "worker [%d] ended %s(status %d); starting another",
            worker.process.pid,
            "" if worker.started else "before it started ",
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
        new = self._new_worker(0 if worker.started else worker.killed_starts + 1)
        if new is None:
            return False
        self.workers[index] = new
        self.next_check = max(self.next_check, time.monotonic())  # NOTE: as in _start_all.
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
            # NOTE: one found stuck that has made no progress since its SIGTERM never stops in
            # order: it held the main process until a second signal (or the SIGKILL of
            # systemd or Docker, which cut the other workers' shutdown hooks short).
            worker.signal(signal.SIGKILL if worker.stuck else signal.SIGTERM)
        killed = False
        began = time.monotonic()
        timeout = self.healthcheck_timeout
        if math.isinf(timeout):
            # NOTE: watching off (--timeout-worker-healthcheck 0): a worker whose loop was
            # blocked held the stop until a second signal, for ever unattended.
            graceful = self.config.timeout_graceful_shutdown
            timeout = math.inf if graceful is None else graceful + STOP_MARGIN
        # NOTE: the workers whose end is looked at (ended before the stop: not its to say).
        looked_at = {id(worker) for worker in self.workers if worker.process.exitcode is not None}
        while running := [worker for worker in self.workers if worker.process.exitcode is None]:
            killed = self._pass_on_signals(running, killed)
            # NOTE: only the running ones: the sentinel of one that has ended is always ready.
            # A timeout, to look at exitcode again: a process the app started (os.system("job
            # &"), a fork) keeps a worker's end of its sentinel and pipe, so neither is ready
            # when it ends, and the stop hung until that process ended.
            looked = time.monotonic()
            self._wait(running, self.check_interval)
            now = time.monotonic()
            if now - looked > 2 * self.check_interval:
                # NOTE: as while serving (_check_health): the workers could not run either;
                # they were killed mid-request for this process's pause.
                for worker in running:
                    worker.restart_clocks(now)
            # NOTE: Uvicorn's grace period is kept by the worker's own loop: one that an async
            # def handler blocked just before the stop, not yet found stuck, held the main
            # process until a second signal (for ever, for a loop that never turns again).
            self._say_ended_in_stop(looked_at, killed)
            for worker in running:
                worker.check_stopping(timeout, began)
        # NOTE: again once all have ended: the sentinel of a worker is ready before its end
        # can be read, so one whose end came as the loop looked was left out of the next.
        self._say_ended_in_stop(looked_at, killed)
        for worker in self.workers:
            worker.pipe.close()
            worker.process.join()

    def _pass_on_signals(self, running: list[Worker], killed: bool) -> bool:
        """Pass a second signal on to the ``running`` workers, or kill them on a third; return
        whether they were killed (``killed``: they were already)."""
        if killed:
            return True
        if len(self.signals) > 2:
            # NOTE: a third signal: what is left goes at once.
            for worker in running:
                worker.signal(signal.SIGKILL)
            return True
        if len(self.signals) - 1 > self.passed_on:
            # NOTE: each worker acts as a lone process does on a second signal: it was killed,
            # without its shutdown hooks if they had not begun.
            self.passed_on = len(self.signals) - 1
            for worker in running:
                worker.pass_on(self.passed_on)
        return False

    def _say_ended_in_stop(self, looked_at: set[int], killed: bool) -> None:
        """Say of each worker that has ended since the last look (``looked_at`` holds the ids
        of those looked at) that it ended during the stop, if it had started, and unless it
        stopped in order or this process ended it (``killed``: all, on a second signal)."""
        for worker in self.workers:
            if id(worker) not in looked_at and worker.process.exitcode is not None:
                looked_at.add(id(worker))
                self._say_ended(worker, killed)

    def _say_ended(self, worker: Worker, killed: bool) -> None:
        status = worker.process.exitcode
        # NOTE: not one still starting, which has no shutdown hooks yet (a failed start says
        # itself), nor one that ends as the stop's signal (a shutdown hook's sys.exit says
        # itself too).
        if not worker.started or status in (0, -signal.SIGTERM, -signal.SIGINT):
            return
        if killed or worker.killed or worker.stuck:
            return
        # NOTE: one the OOM killer ended as it stopped lost its shutdown hooks unsaid.
        logger.warning(
            "worker [%d] ended (status %d) as the server stopped", worker.process.pid, status
        )
