"""What ``microweb serve`` says: its logging set up for the ``"microweb"`` and ``"waitress"``
loggers, one record a line, and the line on stdout once the app is served."""

from __future__ import annotations

import logging
import os
import sys

from ._error_logs import REPORTED_TRACEBACKS
from ._serve_options import SERVERS, host_port
from ._stopping import OpenStreamHandler, to_nowhere

logger = logging.getLogger("microweb")


# NOTE: the loggers of microweb and of the servers it runs, children included.
_SERVING_LOGGERS = frozenset({"microweb", "waitress", "uvicorn"})
# NOTE: the loggers whose level Uvicorn's Config sets from its log_level.
_UVICORN_LEVELLED = ("uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# NOTE: a logger no one configures nor turns off by its name, made on for the app's import
# and on again at each look: found off, a logging.config.dictConfig() (or fileConfig())
# disabled the loggers there were. A logger off with this one on the app turned off itself
# (logger.disabled = True). It has to be a logger of logging's own (dictConfig() disables
# those it finds there), so logging.root.manager.loggerDict lists it; a top-level name, as
# one below "microweb" stays on when the app's dictConfig() names "microweb" (docs/errors.md).
_PROBE = logging.getLogger("_microweb_serve_probe")
_PROBE.disabled = False


def configure_logging(level: str) -> None:
    """Log to stderr at ``level`` from the ``"microweb"``, ``"waitress"`` and Uvicorn's loggers.

    A handler is added only when the app has not configured logging itself; the loggers of
    microweb and the servers stay on when the app's own ``dictConfig()`` or ``fileConfig()``
    disabled them, and off when the app turned them off one by one (``disabled = True``).
    """
    logging.basicConfig(
        format="%(levelname)s:%(name)s: %(message)s", handlers=[OpenStreamHandler(sys.stderr)]
    )
    # NOTE: Uvicorn's too, as its Config sets them: a worker or the reloader's child set them
    # before the app's import, and a level the app gave "uvicorn.access" held there (its
    # access lines went), not in a single process.
    for name in ("microweb", "waitress", *_UVICORN_LEVELLED):
        logging.getLogger(name).setLevel(level.upper())
    serving_loggers_on()
    # NOTE: Waitress writes a request's decoded path into its lines ("Exception while serving
    # /a<CR><LF>ERROR:forged"): a client chose a log line of its own (review62).
    waitress = logging.getLogger("waitress")
    if not any(isinstance(f, _OneLine) for f in waitress.filters):
        waitress.addFilter(_OneLine())
    # NOTE: a stream's error, which microweb has logged (addFilter() skips a filter it has).
    waitress.addFilter(REPORTED_TRACEBACKS)


def serving_loggers_on() -> None:
    """Turn the loggers of microweb and the servers on again if a ``dictConfig()`` or
    ``fileConfig()`` of the app's has disabled them since the last look.

    ``configure_logging()`` looks once the app is imported; Uvicorn's server looks again once
    the startup hooks ran, before it logs what came of them (``OrderlyUvicorn.startup()``),
    and so does the serving line (``say_serving()``), Waitress's look.
    """
    # NOTE: an app's own logging.config.dictConfig() disables the loggers there are when it
    # runs, unless it says disable_existing_loggers=False: microweb's errors and the server's
    # lines went nowhere. (Uvicorn's own dictConfig() turned them on again after a single
    # process's import, and a logger the app had turned off with them.) Only then: turned
    # on whenever off, a logger the app had turned off itself logged all the same.
    if not _PROBE.disabled:
        return
    for name, each in list(logging.root.manager.loggerDict.items()):
        if isinstance(each, logging.Logger) and name.partition(".")[0] in _SERVING_LOGGERS:
            each.disabled = False
    # NOTE: on again, so that the next look sees a dictConfig() that comes after this one.
    _PROBE.disabled = False


# NOTE: the C0 controls and DEL, written as Python writes them in a str's repr.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}


class _OneLine(logging.Filter):
    """Write the control characters of a record's message escaped: one record, one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.isprintable():
            # NOTE: the traceback is exc_info's, kept as it is.
            record.msg, record.args = message.translate(_CONTROLS), None
        return True


def say_serving(host: str, server: str, port: int) -> None:
    """Print on stdout, at once, that the app is served on ``host`` and ``port`` by ``server``;
    the serving loggers on again first (``serving_loggers_on()``)."""
    # NOTE: said once the startup hooks ran, where the app may set its logging up too: a
    # dictConfig() there left microweb's errors and the server's lines unlogged.
    serving_loggers_on()
    _say(f"microweb: serving on http://{host_port(host, port)} with {server} ({SERVERS[server]})")


def say_serving_unix(path: str, server: str, _port: object) -> None:
    """Print on stdout, at once, that the app is served on the Unix socket ``path``.

    ``_port`` is what the servers pass to ``say_serving`` (0 under Uvicorn, the path under
    Waitress). The serving loggers are on again first, as for ``say_serving``.
    """
    serving_loggers_on()
    # NOTE: nginx's spelling of a Unix socket (proxy_pass http://unix:/run/app.sock:), with
    # the path whole, so that one can copy it.
    _say(f"microweb: serving on unix:{os.path.abspath(path)} with {server} ({SERVERS[server]})")


def _say(line: str) -> None:
    """Print ``line`` on stdout at once; once no one reads stdout, print nothing more.

    A stdout that cannot be written otherwise (a full disk, or closed by app code) is said in
    the log, and the app served all the same.
    """
    try:
        print(line, flush=True)
    except BrokenPipeError:
        # NOTE: "microweb serve --reload | head -1": the reloaded app's line raised out of its
        # startup, and it was not served.
        to_nowhere(sys.stdout)
    except (OSError, ValueError) as exc:
        # NOTE: ENOSPC raised out of the server's start once the startup hooks had run (a
        # traceback, status 1, and with --workers a main process gone from its workers); so
        # did the ValueError of a stdout that app code closed as it was imported.
        logger.warning("cannot write to stdout: %s", exc)
