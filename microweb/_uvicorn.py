"""Uvicorn's server, stopped in Waitress's order: cut-off requests' cleanup, then the hooks.

Uvicorn acts on a second SIGINT only while it waits for requests in flight (it then quits
without the shutdown hooks, and ignores a second SIGTERM); while the startup hooks run, or the
shutdown hooks, it ignores every signal, so a hook that hangs holds the process until SIGKILL.
Here a second signal of either kind ends the wait for requests in flight and the shutdown hooks
still run, and a signal that arrives while the hooks run ends the process by that signal, as
under Waitress (``_waitress.py``, where the startup hooks run before its handlers). And the
requests Uvicorn cuts off after the grace period get to finish their cleanup before the hooks
run, as under Waitress, instead of never (or after them).
Once the app has started and the socket listens, it says so (``announce``), not before.
A request cut off at the end of the grace period is logged in one line, the app's, without
Uvicorn's traceback of the cancellation.

In a worker process or under the reloader (``_supervisor.py``), the supervisor ends the
process on a second signal instead: there, one signal can arrive twice (from the terminal or
systemd to every process, and from the supervisor), and the second copy must not cut the hooks.
And the process stops in order once its supervisor has gone (killed by SIGKILL or SIGHUP),
instead of serving on, unsupervised, with the port.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import logging.config
import os
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from ._app_loop import CLEANUP_WAIT
from ._error_logs import REPORTED_TRACEBACKS
from ._request import LOGGED_METHOD, LOGGED_PATH
from ._serve_log import serving_loggers_on
from ._stopping import OpenStreamHandler, end_by, to_nowhere
from ._unix import port_of

logger = logging.getLogger("microweb")
# NOTE: Uvicorn's ticks come every 0.1 s; the supervisor is looked for once a second.
_TICKS_PER_CHECK = 10
# NOTE: how often the wait for requests in flight looks for a second signal, in seconds.
_CUT_SHORT_LOOK = 0.05


class UnreadStreamHandler(OpenStreamHandler):
    """Uvicorn's log handler, writing to the process's ``sys.stderr`` or ``sys.stdout`` (``to``)
    of the moment, and to nothing once no one reads it (a pipe)."""

    def __init__(self, to: str = "stderr") -> None:
        super().__init__(getattr(sys, to))
        self.to = to
        self._unread: object = None  # NOTE: a stream of the app's own that no one reads.

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` to the stream the process has now."""
        # NOTE: the handler is made before the app's import (Config): an app that replaced
        # sys.stderr as it was imported had Uvicorn's lines go to the stream it replaced.
        # Under the handler's lock, as flush() reads the stream.
        stream = getattr(sys, self.to)
        if stream is None or stream is self._unread:
            # NOTE: None, as print() writes nothing then: an app that set sys.stdout to None
            # had "--- Logging error ---" and a traceback on stderr for each access line.
            # The app's own stream that no one reads: see handleError().
            return
        self.stream = stream
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """Handle an error as logging does; a reader that has gone makes the stream go nowhere."""
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            # NOTE: "microweb serve shop:app | head -1": Uvicorn writes its access log on
            # stdout, and logged "--- Logging error ---" and a traceback for every request.
            if not to_nowhere(self.stream):
                # NOTE: a stream of the app's own with no file descriptor: the error went out
                # of Uvicorn's send(), and no request was answered. It gets nothing more.
                self._unread = self.stream
            return
        super().handleError(record)


# NOTE: Uvicorn's own logging set-up, with that handler (by name: Python 3.10's dictConfig()
# takes a handler's class only so). Each process sets it up itself (configure_uvicorn_logging).
LOG_CONFIG: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
for _handler in LOG_CONFIG["handlers"].values():
    _handler["class"] = f"{__name__}.{UnreadStreamHandler.__qualname__}"
    # NOTE: "ext://sys.stderr" is the stream there is when the handler is made.
    _handler["to"] = _handler.pop("stream").removeprefix("ext://sys.")


# NOTE: what asyncio logs for each write to a socket whose connection was lost, past the fifth.
LOST_WRITE = "socket.send() raised exception."


class _LostWrites(logging.Filter):
    """Leave out asyncio's warning of a write to a connection already lost.

    A client that resets the connection in the middle of a stream makes the transport's next
    write fail; Uvicorn learns that the client left only once the loop next turns, and writes
    the stream's chunks on until then (microweb gives the loop a turn every ``TURN`` seconds).
    asyncio warned of each write past the fifth: 40 such clients of a stream of 1 MiB chunks
    made 900 lines, which name neither the client nor the request. microweb stops the stream
    once Uvicorn says the client left (``_asgi.py``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != LOST_WRITE or record.exc_info is not None


# NOTE: the characters of the target (as Uvicorn encodes it) that an access line holds: the
# LOGGED_PATH characters of a path that microweb's own lines hold, each maybe an escape.
ACCESS_TARGET = 3 * LOGGED_PATH


class AccessLineCut(logging.Filter):
    """Cut the target of Uvicorn's access line to ``ACCESS_TARGET`` characters (an escape
    whole), and its method to ``LOGGED_METHOD``, then say how many more there were
    (``[...+N]``), as ``logged_path()`` and ``logged_method()`` do."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # NOTE: Uvicorn's record: the client, the method, the target, the version, the status.
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            method, target = args[1], args[2]
            if isinstance(method, str) and len(method) > LOGGED_METHOD:
                # NOTE: h11 takes any token for a method: Uvicorn wrote one as long as the
                # head into each access line (review337). A token needs no escape.
                method = f"{method[:LOGGED_METHOD]}[...+{len(method) - LOGGED_METHOD}]"
                record.args = (args[0], method, *args[2:])
            if len(target) > ACCESS_TARGET:
                # PERF: Uvicorn wrote the whole target, as long as the 256 KiB head that both its
                # parsers take: each request of a client's wrote up to 256 KB into the log
                # (hostile4, 2026-12-07).
                kept = target[:ACCESS_TARGET]
                escape = kept.find("%", ACCESS_TARGET - 2)
                if escape >= 0:
                    kept = kept[:escape]
                cut = f"{kept}[...+{len(target) - len(kept)}]"
                record.args = (args[0], method, cut, *args[3:])
        return True


@functools.cache
def configure_uvicorn_logging() -> None:
    """Set Uvicorn's loggers up (``LOG_CONFIG``), once a process, leave asyncio's warnings
    of writes to a lost connection out (``_LostWrites``), and cut a long target in an access
    line (``AccessLineCut``)."""
    logging.config.dictConfig(copy.deepcopy(LOG_CONFIG))
    logging.getLogger("asyncio").addFilter(_LostWrites())
    logging.getLogger("uvicorn.access").addFilter(AccessLineCut())


class Config(uvicorn.Config):
    """``uvicorn.Config`` whose logging set-up leaves the handlers there are open.

    Uvicorn sets its loggers up with ``logging.config.dictConfig()`` each time a ``Config`` is
    made, and that closes every handler of the process: ``microweb serve`` imports the app
    before, and a handler the app made as it was imported (a ``FileHandler`` of mode ``"w"``)
    wrote nothing more. Here that runs once a process (``configure_uvicorn_logging``), before
    the app is imported: ``serve()`` calls it first, and a worker or the reloader's child sets
    its logging up before it imports the app. Uvicorn's ``log_config`` is not read.
    """

    def configure_logging(self) -> None:
        """Set Uvicorn's loggers up once, then their levels as Uvicorn does."""
        configure_uvicorn_logging()
        own, self.log_config = self.log_config, None
        try:
            super().configure_logging()
        finally:
            self.log_config = own


class OrderlyUvicorn(uvicorn.Server):
    """``uvicorn.Server``, ended by a signal that arrives while the startup or shutdown hooks
    run.

    Args:
        config: Uvicorn's ``Config``.
        announce: Called with the port once the startup hooks ran and the socket listens.
        escalate: Whether a signal during the shutdown hooks ends the process (off in a
            worker process, whose supervisor does that, until the supervisor has gone).
        supervisor: The pid of the supervisor of a worker process: once it has gone, the
            worker stops as on SIGTERM.
        passed_on: Read in a worker process: how many signals past its first the supervisor
            has passed on, each of which the worker takes as a lone process takes a second
            signal.
        hooks_begun: Called as the shutdown hooks begin (the reloader's child tells the
            reloader so).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        announce: Callable[[int], None] | None = None,
        *,
        escalate: bool = True,
        supervisor: int | None = None,
        passed_on: Callable[[], int] | None = None,
        hooks_begun: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        # NOTE: after Uvicorn's logging set-up (the Config's), which keeps a logger's filters;
        # added once (addFilter() skips a filter it has).
        logging.getLogger("uvicorn.error").addFilter(REPORTED_TRACEBACKS)
        self.running_hooks = False
        self.cut_short = False
        self.loading = False
        self.starting = False
        self.announce = announce
        self.escalate = escalate
        self.supervisor = supervisor
        self.passed_on = passed_on
        self.passed_on_seen = 0
        self.hooks_begun = hooks_begun

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Run as Uvicorn does; a stop signal before the startup hooks begin ends the process."""
        # NOTE: Uvicorn handles signals from before it loads the app (a worker's or the
        # reloader's child imports it then): one that came then was noted, the startup hooks
        # ran all the same, one that hung held the process, and no shutdown hook ran after.
        self.loading = True
        super().run(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Note a stop signal as Uvicorn does; end the process if the hooks are running."""
        if self.starting or self.loading:
            # NOTE: nothing is served yet, and the shutdown hooks don't run after a startup
            # that did not end; Uvicorn waited for it, so a startup hook that hung ignored
            # every signal. One signal, even one of two copies when supervised, ends it.
            end_by(sig)
        alone = self.escalate or self.supervisor_gone()
        if self.running_hooks and (alone or self.told_to_hurry()):
            end_by(sig)
        if self.should_exit and (alone or self.told_to_hurry()):
            # NOTE: a second signal, as the requests in flight are waited for: the wait ends
            # and the shutdown hooks still run, as under Waitress (_wait_tasks_to_complete).
            # Uvicorn ignored a second SIGTERM (the process waited out the grace period) and
            # quit on a second SIGINT without the hooks (review350).
            self.cut_short = True
            return
        if self.should_exit and not alone:
            # NOTE: supervised, one signal comes twice, from the terminal and from the
            # supervisor, in either order: a SIGTERM handled before the terminal's SIGINT
            # (which another thread of the process may take first) made Uvicorn quit without
            # the shutdown hooks (CI, Python 3.13). The supervisor acts on a second signal.
            return
        super().handle_exit(sig, frame)
        if not alone:
            # NOTE: Python runs a signal's handler in the middle of another's: the other copy,
            # handled inside Uvicorn's handler for this one, made it take this one for a
            # second signal and quit without the shutdown hooks (CI, --reload).
            self.force_exit = False

    async def _wait_tasks_to_complete(self) -> None:
        """Wait for the requests in flight as Uvicorn does, until a second signal comes."""
        waiting = asyncio.ensure_future(super()._wait_tasks_to_complete())
        try:
            while not waiting.done():
                # NOTE: the supervisor's word, which a copy of its first SIGTERM still pending
                # may have taken the signal of (two of one kind pending are one).
                if self.told_to_hurry():
                    self.cut_short = True
                if self.cut_short:
                    # NOTE: what the grace period's end raises in Uvicorn's shutdown(), which
                    # then cancels the requests still running and goes on to the hooks;
                    # asyncio's, which Python 3.10 tells apart from the builtin one.
                    raise asyncio.TimeoutError
                await asyncio.wait({waiting}, timeout=_CUT_SHORT_LOOK)
            waiting.result()
        finally:
            waiting.cancel()

    def told_to_hurry(self) -> bool:
        """Return whether the supervisor has passed on a second signal (or a third) since this
        was last asked.

        NOTE: a worker cannot tell a second signal from a copy of the first (the terminal's
        SIGINT and the supervisor's SIGTERM): the supervisor counts them in memory they
        share, then sends SIGTERM. A worker whose supervisor acted on a second signal by
        killing it lost its shutdown hooks where a lone process runs them.
        """
        if self.passed_on is None:
            return False
        count = self.passed_on()
        if count <= self.passed_on_seen:
            return False
        self.passed_on_seen = count
        return True

    def supervisor_gone(self) -> bool:
        """Return whether this process had a supervisor, which has gone."""
        # NOTE: then no supervisor acts on a second signal: the process does, as a lone
        # server. A worker that hung in its hooks after its supervisor was killed ignored
        # every SIGTERM and SIGINT (review57).
        return self.supervisor is not None and os.getppid() != self.supervisor

    async def on_tick(self, counter: int) -> bool:
        """Tick as Uvicorn does; stop once the supervisor has gone."""
        looked_for = counter % _TICKS_PER_CHECK == 0
        if looked_for and not self.should_exit and self.supervisor_gone():
            logger.warning("the main process [%d] has ended; stopping", self.supervisor)
            self.should_exit = True
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as Uvicorn does (the startup hooks, then listen); then announce it."""
        lifespan_startup = self.lifespan.startup

        async def run_hooks() -> None:
            # NOTE: the hooks only, not the listen after them: a SIGTERM sent once the port
            # listened, before Uvicorn's startup returned, ended the process without the
            # shutdown hooks of an app that had started (CI, Python 3.13).
            self.loading, self.starting = False, True
            try:
                await lifespan_startup()
            finally:
                self.starting = False

        self.lifespan.startup = run_hooks
        lifespan_send = self.lifespan.send

        async def send(message: Any) -> None:
            # NOTE: the app's hooks have run, and Uvicorn logs what came of them next
            # ("Application startup complete."): a dictConfig() in a hook disabled its logger
            # first, and the line went nowhere (it does without microweb).
            serving_loggers_on()
            await lifespan_send(message)

        self.lifespan.send = send
        # NOTE: why it did not start (a port that is taken, a startup that failed) is logged
        # at ERROR by "uvicorn.error": --log-level critical hid it, and the command ended with
        # status 3 and said nothing. Nothing else is logged at ERROR before it listens.
        uvicorn_logger = logging.getLogger("uvicorn.error")
        level = uvicorn_logger.level
        uvicorn_logger.setLevel(min(level, logging.ERROR) if level else level)
        try:
            await super().startup(sockets)
        finally:
            uvicorn_logger.setLevel(level)
        if self.started and self.announce is not None:
            self.announce(port_of(self.servers[0].sockets[0]))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop as Uvicorn does, noting when its lifespan shutdown (the hooks) begins."""
        # NOTE: Uvicorn sends lifespan.shutdown last, after the requests in flight; wrapping
        # its call marks that moment without a wrapper around the app on every request.
        lifespan_shutdown = self.lifespan.shutdown

        async def run_hooks() -> None:
            self.running_hooks = True
            if self.hooks_begun is not None:
                self.hooks_begun()
            # NOTE: Uvicorn cancels the requests still running and goes on at once; let their
            # cleanup (a cut-off stream's finally, in a pool thread for a def generator) run
            # before the hooks close what it may use, as under Waitress.
            if self.server_state.tasks:
                await asyncio.wait(set(self.server_state.tasks), timeout=CLEANUP_WAIT)
            await lifespan_shutdown()

        self.lifespan.shutdown = run_hooks
        wording = _CutShortWording(self)
        uvicorn_logger = logging.getLogger("uvicorn.error")
        uvicorn_logger.addFilter(wording)
        try:
            await super().shutdown(sockets)
        finally:
            uvicorn_logger.removeFilter(wording)


# NOTE: what Uvicorn logs as it cancels the requests still running once the grace period ends,
# and how it ends each line that says it waits for them.
GRACE_OVER = "Cancel %s running task(s), timeout graceful shutdown exceeded"
FORCE_QUIT = " (CTRL+C to force quit)"


class _CutShortWording(logging.Filter):
    """Say that a second signal ended the wait for the requests in flight, where Uvicorn says
    that the grace period did (it had not: "timeout graceful shutdown exceeded"), and that a
    second signal ends the wait, where Uvicorn says that Ctrl+C quits (without the hooks)."""

    def __init__(self, server: OrderlyUvicorn) -> None:
        super().__init__()
        self.server = server

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == GRACE_OVER and self.server.cut_short:
            record.msg = "Cancel %s running task(s): a second signal ended the wait for them"
        elif isinstance(record.msg, str) and record.msg.endswith(FORCE_QUIT):
            record.msg = record.msg.removesuffix(FORCE_QUIT) + " (a second signal ends the wait)"
        return True


def orderly_uvicorn(app: Any, announce: Callable[[int], None], **settings: Any) -> OrderlyUvicorn:
    """Return an ``OrderlyUvicorn`` serving the ASGI callable ``app`` with ``settings``."""
    return OrderlyUvicorn(Config(app, **settings), announce)
