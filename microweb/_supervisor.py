"""``--workers`` and ``--reload``: Uvicorn in child processes, stopped as one process is.

Uvicorn's own supervisors run a plain ``uvicorn.Server`` in each child, so none of what
``OrderlyUvicorn`` does holds there, and the main process ends with status 0 whatever happened.
Here each child runs an ``OrderlyUvicorn``, and the main process:

- with ``--workers``, is microweb's own: it starts the workers on one shared socket, says
  "serving on" once every worker has started, ends with status 3 (stopping the others) when a
  worker dies before it started, and starts a new worker when one dies later. (Uvicorn's
  ``Multiprocess`` builds its children's server itself, with no way to pass another.)
- with ``--reload``, is Uvicorn's reloader (``ChangeReload``, whose ``target`` runs in the
  child); a child that fails to start leaves it waiting for the next change, as Uvicorn's does.

On SIGTERM or SIGINT the main process stops its children with SIGTERM and waits for them. A
second signal is passed on: each worker (``_workers``), or the reloader's child, ends its wait
for the requests in flight and runs its shutdown hooks, or ends if they run, as a single
process does, and one that has not begun its shutdown hooks ``HURRY_MARGIN`` seconds later (its
event loop blocked) is killed; a third kills the children, so a shutdown hook that hangs is cut
short. A signal during a reload starts no new process. Then the main process ends by the
signal it got, as a single process does. A child whose main process was killed (SIGKILL,
SIGHUP) stops in order by itself, within a second. A child starts with SIGINT held back until
it has set up its own handling: Ctrl+C, which reaches every process, ends a child that is
still importing quietly (by the main process's SIGTERM, or its own SIGINT once it can), not
with a traceback (``_stopping.interrupts_held()``). A worker whose event loop makes no
progress is stopped, then killed, and replaced (``_workers``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from ._stopping import end_by, interrupts_held, take_interrupts
from ._uvicorn import OrderlyUvicorn
from ._worker_process import HURRY_MARGIN
from ._workers import Workers

if TYPE_CHECKING:
    from uvicorn.supervisors.basereload import BaseReload as Reloader
else:
    from uvicorn.supervisors import ChangeReload as Reloader

logger = logging.getLogger("microweb")


def serve_processes(
    config: uvicorn.Config,
    workers: int,
    sockets: list[socket.socket],
    announce: Callable[[int], None],
) -> int | None:
    """Serve with ``workers`` processes, or the reloader if ``config.reload``, until stopped.

    Returns:
        The signal that stopped it, or ``None`` when a worker did not start.
    """
    try:
        if config.reload:
            # NOTE: how many signals past the first the reloader has passed on, in memory its
            # child shares (a spawned process's, as Uvicorn starts it), as Workers count them.
            spawn = multiprocessing.get_context("spawn")
            passed_on, hooks = spawn.RawValue("i", 0), spawn.RawValue("i", 0)
            target = functools.partial(
                _run_reloaded, config, announce, os.getpid(), passed_on, hooks=hooks
            )
            reloader = OrderlyReload(config, target=target, sockets=sockets)
            reloader.passed_on, reloader.hooks = passed_on, hooks
            reloader.run()
            return reloader.stopped_by
        timeout = config.timeout_worker_healthcheck
        return Workers(config, workers, sockets, announce, healthcheck_timeout=timeout).run()
    finally:
        for sock in sockets:
            sock.close()


class OrderlyReload(Reloader):
    """Uvicorn's reloader; a second stop signal is passed on to the app's process, which is
    killed if it has not begun its shutdown hooks ``HURRY_MARGIN`` seconds later, a third kills
    it, and the app's process starts with SIGINT held back (``interrupts_held()``)."""

    stopped_by: int | None = None
    signals = 0
    # NOTE: the count of signals passed on, which the app's process reads (``_run_reloaded``),
    # and whether its shutdown hooks have begun (1), which it writes.
    passed_on: Any = None
    hooks: Any = None
    # NOTE: when a second signal was passed on (time.monotonic()).
    hurried: float | None = None
    wake_up: socket.socket | None = None
    waker: socket.socket | None = None

    def startup(self) -> None:
        """Start as Uvicorn's reloader does, the app's process with SIGINT held back."""
        # NOTE: a signal wakes the wait for the app's process to end (_join).
        self.wake_up, self.waker = socket.socketpair()
        self.waker.setblocking(False)
        with interrupts_held():
            super().startup()

    def restart(self) -> None:
        """Stop the app's process, then restart as Uvicorn's reloader does, SIGINT held back;
        not once a stop signal has come."""
        # NOTE: the old process is stopped first, not held: held while it ran its shutdown
        # hooks, a second Ctrl+C could not cut a hook that hangs short. Uvicorn's restart()
        # then stops an ended process, which does nothing.
        self.process.terminate()
        self._join()
        if self.should_exit.is_set():
            # NOTE: a signal as the old process stopped started a new one only to stop it:
            # its app imported and its startup hooks run for nothing (review399).
            return
        if self.hooks is not None:
            self.hooks.value = 0  # NOTE: the old process's word; the new one has begun none.
        with interrupts_held():
            super().restart()

    def _join(self) -> None:
        """Wait for the app's process to end; kill it if it has not begun its shutdown hooks
        ``HURRY_MARGIN`` seconds after a second signal was passed on to it."""
        # NOTE: it held the reloader for ever (an async def handler that blocks the loop)
        # unless a third signal came, where --workers kills a worker so (review399).
        process = self.process
        while process.exitcode is None:
            timeout = None
            if self.hurried is not None and not (self.hooks is not None and self.hooks.value):
                timeout = self.hurried + HURRY_MARGIN - time.monotonic()
                if timeout <= 0:
                    logger.error(
                        "the app's process [%d] has not begun its shutdown hooks %.1f s after "
                        "the second signal; killing it",
                        process.pid,
                        time.monotonic() - self.hurried,
                    )
                    process.kill()
                    break
            watched: list[Any] = [process.sentinel]
            if self.wake_up is not None:
                watched.append(self.wake_up)
            for ready in wait(watched, timeout):
                if ready is self.wake_up:
                    self.wake_up.recv(64)
        process.join()

    def signal_handler(self, sig: int, frame: FrameType | None) -> None:
        """Stop as Uvicorn's reloader does; pass a second signal on to the child (counted,
        then SIGTERM), which ends its wait for the requests in flight and runs its shutdown
        hooks, or ends if they run, as a single process does; kill it on a third."""
        self.signals += 1
        # NOTE: a signal between Uvicorn's taking of the signals and the child's start found
        # no process, or one not started: AttributeError out of this handler (review393).
        process = getattr(self, "process", None)
        if process is not None and process.pid is None:
            process = None
        if self.signals > 2:
            if process is not None:
                process.kill()
        elif self.signals == 2:
            # NOTE: killed here, its shutdown hooks were lost where a single process and
            # each worker of --workers run them (review387).
            if self.passed_on is not None:
                self.passed_on.value += 1
            if process is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM)
                self.hurried = time.monotonic()
        self.stopped_by = sig
        super().signal_handler(sig, frame)
        if self.waker is not None:
            # NOTE: an OSError means the socket is full: the wait is awake anyway.
            with contextlib.suppress(OSError):
                self.waker.send(b"\0")

    def shutdown(self) -> None:
        """Close this process's copy of the socket, then stop the app's process."""
        # NOTE: as Workers._stop does: new connections are refused during the grace period.
        for sock in self.sockets:
            sock.close()
        if sys.platform != "win32":
            # NOTE: Uvicorn's shutdown() then stops an ended process, which does nothing.
            # On Windows it terminates none (the console's Ctrl+C stops the child), and
            # terminate() there would end it without its shutdown hooks.
            self.process.terminate()
            self._join()
        super().shutdown()
        for end in (self.wake_up, self.waker):
            if end is not None:
                end.close()


def _run_reloaded(
    config: uvicorn.Config,
    announce: Callable[[int], None],
    supervisor: int,
    passed_on: Any,
    sockets: list[socket.socket],
    *,
    hooks: Any = None,
) -> None:
    server: OrderlyUvicorn | None = None
    try:
        take_interrupts()

        def hooks_begun() -> None:
            if hooks is not None:
                hooks.value = 1

        server = OrderlyUvicorn(
            config,
            announce,
            escalate=False,
            supervisor=supervisor,
            passed_on=lambda: int(passed_on.value),
            hooks_begun=hooks_begun,
        )
        # NOTE: the signals passed on to an earlier process are not this one's (review399).
        server.passed_on_seen = int(passed_on.value)
        server.run(sockets)
    except KeyboardInterrupt:
        # NOTE: one that came before Uvicorn took SIGINT over printed multiprocessing's
        # traceback of it; the child ends by it quietly, as it would a moment later.
        if server is None or not server.started:
            end_by(signal.SIGINT)
        raise
