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
process does; a third kills the children, so a shutdown hook that hangs is cut short. Then the
main process ends by the signal it got, as a single process does. A child
whose main process was killed (SIGKILL, SIGHUP) stops in order by itself, within a second. A
child starts with SIGINT held back until it has set up its own handling: Ctrl+C, which reaches
every process, ends a child that is still importing quietly (by the main process's SIGTERM, or
its own SIGINT once it can), not with a traceback (``_stopping.interrupts_held()``). A worker
whose event loop makes no progress is stopped, then killed, and replaced (``_workers``).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from ._stopping import end_by, interrupts_held, take_interrupts
from ._uvicorn import OrderlyUvicorn
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
            passed_on = multiprocessing.get_context("spawn").RawValue("i", 0)
            target = functools.partial(_run_reloaded, config, announce, os.getpid(), passed_on)
            reloader = OrderlyReload(config, target=target, sockets=sockets)
            reloader.passed_on = passed_on
            reloader.run()
            return reloader.stopped_by
        timeout = config.timeout_worker_healthcheck
        return Workers(config, workers, sockets, announce, healthcheck_timeout=timeout).run()
    finally:
        for sock in sockets:
            sock.close()


class OrderlyReload(Reloader):
    """Uvicorn's reloader; a second stop signal is passed on to the app's process, a third
    kills it, and the app's process starts with SIGINT held back (``interrupts_held()``)."""

    stopped_by: int | None = None
    signals = 0
    # NOTE: the count of signals passed on, which the app's process reads (``_run_reloaded``).
    passed_on: Any = None

    def startup(self) -> None:
        """Start as Uvicorn's reloader does, the app's process with SIGINT held back."""
        with interrupts_held():
            super().startup()

    def restart(self) -> None:
        """Stop the app's process, then restart as Uvicorn's reloader does, SIGINT held back."""
        # NOTE: the old process is stopped first, not held: held while it ran its shutdown
        # hooks, a second Ctrl+C could not cut a hook that hangs short. Uvicorn's restart()
        # then stops an ended process, which does nothing.
        self.process.terminate()
        self.process.join()
        with interrupts_held():
            super().restart()

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
        self.stopped_by = sig
        super().signal_handler(sig, frame)

    def shutdown(self) -> None:
        """Close this process's copy of the socket, then stop the app's process."""
        # NOTE: as Workers._stop does: new connections are refused during the grace period.
        for sock in self.sockets:
            sock.close()
        super().shutdown()


def _run_reloaded(
    config: uvicorn.Config,
    announce: Callable[[int], None],
    supervisor: int,
    passed_on: Any,
    sockets: list[socket.socket],
) -> None:
    server: OrderlyUvicorn | None = None
    try:
        take_interrupts()
        server = OrderlyUvicorn(
            config,
            announce,
            escalate=False,
            supervisor=supervisor,
            passed_on=lambda: int(passed_on.value),
        )
        server.run(sockets)
    except KeyboardInterrupt:
        # NOTE: one that came before Uvicorn took SIGINT over printed multiprocessing's
        # traceback of it; the child ends by it quietly, as it would a moment later.
        if server is None or not server.started:
            end_by(signal.SIGINT)
        raise
