"""How ``microweb serve`` ends its process once it has stopped: by the signal it got; how its
child processes hold SIGINT back while they start; SIGQUIT taken as SIGTERM; and its streams
once no one reads them or app code closed them."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from typing import NoReturn, TextIO

logger = logging.getLogger("microweb")
# NOTE: Uvicorn's exit status when the app did not start; Waitress and the workers get the same.
STARTUP_FAILURE = 3
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# NOTE: what end_by() does first, however the process stops (the Unix socket's file removed):
# a signal while the hooks run ends the process there, past the callers' finally blocks.
AT_END: list[Callable[[], None]] = []


def end_by(signum: int) -> NoReturn:
    """End the process by ``signum``, as an unhandled SIGTERM or SIGINT would, once stopped.

    The parent (a shell, systemd, Docker) then sees the usual status of a process stopped by
    that signal, and ``def`` handlers still running past the grace period don't hold it up.
    """
    for step in AT_END:
        step()
    _flush("stdout")
    _flush("stderr")
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
    # NOTE: still here as PID 1 in a container, where the kernel ignores it: exit as a shell
    # reports a process stopped by a signal (143 for SIGTERM).
    os._exit(128 + signum)


def _flush(name: str) -> None:
    """Flush ``sys.stdout`` or ``sys.stderr``; what cannot be written is said, where it can be."""
    stream = getattr(sys, name)
    if stream is None:
        # NOTE: app code set sys.stdout to None, where print() writes nothing: flushed, an
        # AttributeError's traceback, and status 1 where the signal's was due.
        return
    try:
        stream.flush()
    except (OSError, ValueError) as exc:
        # NOTE: app code closed sys.stdout (ValueError), or the disk is full: a traceback, and
        # status 1 where the signal's was due.
        with contextlib.suppress(OSError, ValueError):
            logger.warning("cannot write to %s: %s", name, exc)


def to_stderr(write: Callable[[], object]) -> None:
    """Run ``write``, a print or a traceback to ``sys.stderr``; once no one reads it, or app
    code closed it, nothing more: the exit status still says what happened.

    NOTE: "microweb routes shop:app 2>&1 | head -1" raised BrokenPipeError out of main(), and
    a closed stderr ValueError: status 1, where 2 or 3 was due.
    """
    try:
        write()
    except BrokenPipeError:
        to_nowhere(sys.stderr)
    except ValueError:
        if not getattr(sys.stderr, "closed", False):
            raise


def to_nowhere(stream: TextIO) -> bool:
    """Make ``stream`` (stdout, stderr) write to nothing, once no one reads it; return whether
    it could.

    No later write or flush (``end_by()``'s, the interpreter's at exit) raises
    ``BrokenPipeError`` again. A stream of app code's own with no file descriptor cannot be
    made so: ``False``, and its writer drops what it would write.
    """
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    nowhere = os.open(os.devnull, os.O_WRONLY)
    os.dup2(nowhere, descriptor)
    os.close(nowhere)
    return True


# NOTE: what a child process holds back while it starts: SIGINT, and SIGQUIT, which it takes
# as SIGTERM once it can (a SIGQUIT then had Python's default, a core dump where those are
# on, where one a moment later was a stop in order).
HELD_SIGNALS = frozenset({signal.SIGINT, *([signal.SIGQUIT] if hasattr(signal, "SIGQUIT") else [])})


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold SIGINT and SIGQUIT back in this thread, and so in each child process started
    meanwhile.

    A child starts with its parent's signal mask and keeps it until ``take_interrupts()``.
    """
    # NOTE: Ctrl+C reaches every process of the terminal's group: a child still importing
    # printed the traceback of its KeyboardInterrupt, one per worker, where the main process
    # stops them anyway (with SIGTERM, which ends a child that is still starting quietly).
    # NOTE: started first, as multiprocessing starts it with the first child: it unblocks
    # SIGINT in this thread once started, and the first worker started with SIGINT taken.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def take_interrupts() -> None:
    """In a child process started by ``interrupts_held()``: take SIGINT again, and SIGQUIT as
    SIGTERM (``quit_as_terminate()``); one that came while it started ends it there, quietly."""
    quit_as_terminate()
    # NOTE: it was dropped, right for Ctrl+C (the main process, which gets it too, stops the
    # child), but a SIGINT sent to this one process alone (kill -INT) was lost and it served
    # on. Ended by it, the child stops as it would once started, with no traceback; with
    # --workers, it is replaced, unless the main process is stopping.
    if signal.SIGINT in signal.sigpending():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def quit_as_terminate() -> None:
    """Take SIGQUIT in this process as SIGTERM: a stop in order, after which the process ends
    by SIGTERM.

    ``microweb``'s main process does so as its command starts, and a child process as it
    takes its signals (``take_interrupts()``), having held SIGQUIT back until then.
    """
    # NOTE: Python's default ended a single process at once (a core dump where they are on),
    # with no shutdown hooks and a Unix socket's file left; with --workers or --reload, the
    # children stopped by themselves once they saw the main process gone, or (Ctrl+\, to the
    # whole group) died with it. Gunicorn stops on SIGQUIT, and nginx stops in order; a second
    # SIGQUIT (or SIGTERM, SIGINT) cuts the stop short, as a second SIGTERM does. A shell's
    # background job, which ignores SIGQUIT, stops on it too, as on SIGINT.
    # NOTE: Windows has no SIGQUIT; and only the main thread may set a handler (main() run
    # from another thread, `routes` by a tool, raised ValueError, review270).
    if hasattr(signal, "SIGQUIT") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGQUIT, _terminate)


def _terminate(signum: int, frame: object) -> None:
    # NOTE: to this process's own SIGTERM handler, whichever it is now (Uvicorn's, Waitress's,
    # the supervisor's, or the default before they are set).
    signal.raise_signal(signal.SIGTERM)


class OpenStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` that drops its records once its stream is closed."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` to the stream, unless it is closed."""
        # NOTE: app code that closed sys.stderr had the write's ValueError go to handleError(),
        # whose report to sys.stderr raised it out of logging: into Uvicorn's send() (no answer)
        # and Waitress's task (none either). Dropped, as print() to a None stream writes nothing.
        if not getattr(self.stream, "closed", False):
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """Report an error as logging does, if ``sys.stderr`` takes the report."""
        # NOTE: logging's own report passes over OSError only: one written to a closed
        # sys.stderr raised ValueError out of the log call, and one of app code's own that
        # raises its own error did the same. A handler is not to raise (logging's docs).
        with contextlib.suppress(Exception):
            super().handleError(record)
