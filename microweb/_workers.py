"""``--workers``: the worker processes, each an ``OrderlyUvicorn`` on the shared sockets, and
the main process's care of them (``Workers``): started, watched for an event loop that makes
no progress, stopped, killed when stuck, and replaced."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable, MutableSequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

from ._app_loop import CLEANUP_WAIT
from ._errors import log_failure
from ._stopping import STOP_SIGNALS, end_by, interrupts_held, take_interrupts
from ._unix import port_of
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
