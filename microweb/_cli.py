"""The ``microweb`` command: serve an app with Uvicorn or Waitress, list its routes."""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import os
import signal
import sys
import traceback
from collections.abc import Sequence

from ._app import App
from ._importer import TargetError, factory_target
from ._serve_app import CLIENT_TIMEOUT
from ._serve_options import HEALTHCHECK_TIMEOUT, KEEP_ALIVE, SERVERS, WORKERS_PER_CPU
from ._serve_run import Terminated
from ._serving import GRACEFUL_TIMEOUT, LOG_LEVELS, loaded, serve
from ._stopping import STARTUP_FAILURE, end_by, quit_as_terminate, to_nowhere, to_stderr


def _handler_name(handler: object) -> str:
    """Name a handler as ``module.qualname``: a partial by what it wraps, an object by its class."""
    if isinstance(handler, functools.partial):
        return f"functools.partial({_handler_name(handler.func)})"
    # NOTE: a callable object has no __qualname__ of its own: its class's.
    named = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    return f"{getattr(handler, '__module__', '?')}.{named}"


def routes_table(app: App) -> str:
    """Return the route table as aligned text: method, template, name, handler, colour."""
    lines = []
    for route in app.routes + app.websocket_routes:
        handler = _handler_name(route.handler)
        colour = "async" if route.is_async else "sync"
        methods = ["WS"] if route.kind == "websocket" else route.methods
        for method in methods:
            key = (route.template, route.kind, method)
            lines.append((key, (method, route.template, route.name, handler, colour)))
    # NOTE: lines, not routes, are sorted: GET and POST of one template by two handlers
    # come out in method order, as the methods of one handler do.
    rows = [("METHOD", "TEMPLATE", "NAME", "HANDLER", "COLOUR")]
    rows += [row for _, row in sorted(lines)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TARGET_HELP = "module:app, module, or path/to/file.py[:app]; module:create_app() calls a factory"
FACTORY_HELP = "the target is an app factory: call it (as module:create_app() does)"


def _target(args: argparse.Namespace) -> str:
    """The target as ``load_app`` takes it: with ``()`` when ``--factory`` is given."""
    target: str = args.target
    return factory_target(target) if args.factory else target


def _version() -> str:
    """The installed package's version, or ``unknown`` for a copy that was never installed."""
    try:
        return importlib.metadata.version("microweb")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microweb", description="Serve an app with Uvicorn or Waitress, or list its routes."
    )
    # NOTE: what a newcomer types first; it said "the following arguments are required".
    parser.add_argument("--version", action="version", version=f"microweb {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve an app")
    serve_cmd.add_argument("target", help=TARGET_HELP)
    serve_cmd.add_argument("--factory", action="store_true", help=FACTORY_HELP)
    serve_cmd.add_argument(
        "--server",
        choices=sorted(SERVERS),
        default="uvicorn",
        help="uvicorn (ASGI, the default) or waitress (WSGI)",
    )
    # NOTE: no defaults here (None), so that --uds can tell a --host or --port given.
    serve_cmd.add_argument("--host", help=f"default {DEFAULT_HOST}")
    serve_cmd.add_argument(
        "--port", type=int, help=f"default {DEFAULT_PORT}; 0 for one the system picks"
    )
    serve_cmd.add_argument(
        "--uds",
        metavar="PATH",
        help="listen on a Unix socket at PATH instead of a host and port (mode 0o666; a stale "
        "socket file is replaced, any other file is left and the start fails)",
    )
    serve_cmd.add_argument(
        "--workers",
        type=int,
        default=1,
        help=f"uvicorn worker processes (at most {WORKERS_PER_CPU} per CPU)",
    )
    serve_cmd.add_argument(
        "--timeout-worker-healthcheck",
        type=float,
        # NOTE: no default here (None), so that one process can tell it given.
        metavar="S",
        help="with --workers: seconds a worker's event loop may make no progress before the "
        "worker is stopped (killed if stuck as long again) and replaced; 0 turns this off "
        f"(default {HEALTHCHECK_TIMEOUT:g})",
    )
    serve_cmd.add_argument("--reload", action="store_true", help="restart on code changes")
    serve_cmd.add_argument(
        "--threads",
        type=int,
        help="waitress: server threads (default 4); uvicorn: the pool for def handlers "
        "(default App.max_threads, 40)",
    )
    serve_cmd.add_argument(
        "--root-path", default="", help="the path prefix the app is mounted at, as /app"
    )
    serve_cmd.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="default info")
    serve_cmd.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="trust forwarded headers from these comma-separated addresses and CIDR ranges",
    )
    serve_cmd.add_argument(
        "--graceful-timeout",
        type=float,
        default=GRACEFUL_TIMEOUT,
        metavar="S",
        help="seconds requests in flight get to finish after SIGTERM, SIGINT or SIGQUIT "
        f"(default {GRACEFUL_TIMEOUT:g})",
    )
    serve_cmd.add_argument(
        "--client-timeout",
        type=int,
        default=CLIENT_TIMEOUT,
        metavar="S",
        help="seconds a client may send nothing of a request it owes, or read nothing of its "
        f"answer, before its connection is closed (default {CLIENT_TIMEOUT})",
    )
    serve_cmd.add_argument(
        "--keep-alive",
        "--timeout-keep-alive",
        type=float,
        default=KEEP_ALIVE,
        metavar="S",
        help="seconds a kept-alive connection may stay idle between requests (its answer sent, "
        "no byte of the next request) before it is closed; 0 closes it once its answer is "
        f"sent (default {KEEP_ALIVE:g}, Uvicorn's)",
    )
    serve_cmd.add_argument(
        "--connection-limit",
        type=int,
        metavar="N",
        help="connections served at once: waitress accepts no more (default 100); "
        "uvicorn answers 503 past it (default: no limit)",
    )
    serve_cmd.add_argument(
        "--loop",
        # NOTE: no default here (None), so that waitress can tell it given.
        metavar="LOOP",
        help="uvicorn: the event loop, auto (uvloop where it is installed, else asyncio; the "
        "default), asyncio, uvloop, or a loop factory as module:name",
    )
    routes_cmd = commands.add_parser("routes", help="print the route table of an app")
    routes_cmd.add_argument("target", help=TARGET_HELP)
    routes_cmd.add_argument("--factory", action="store_true", help=FACTORY_HELP)
    return parser


def _open_closed_streams() -> None:
    """Give a closed stdout or stderr (``>&-``) the null device, as Python has no stream then."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            # NOTE: on the descriptor itself, which worker processes inherit: Uvicorn's logging
            # reads sys.stdout.isatty() (a traceback before it started), and end_by() flushed
            # sys.stdout once stopped (a traceback and status 1 in place of the signal's).
            nowhere = os.open(os.devnull, os.O_WRONLY)
            if nowhere != fd:
                os.dup2(nowhere, fd)
                os.close(nowhere)
            os.set_inheritable(fd, True)  # NOTE: os.open() makes it close in a child process.
            stream = open(fd, "w", errors="backslashreplace", closefd=False)  # noqa: SIM115
            setattr(sys, name, stream)


def _not_compiled(target: str, exc: BaseException) -> int:
    """Print why the app does not compile, with its traceback; return the startup failure's
    status, as ``microweb serve`` ends then."""
    if isinstance(exc, SystemExit):
        why = f"its code called sys.exit({exc.code!r})"
    else:
        why = f"{type(exc).__name__}: {exc}"

    def write() -> None:
        traceback.print_exception(exc)
        print(
            f"microweb: error: startup failed: {target} does not compile: {why} (traceback above)",
            file=sys.stderr,
            flush=True,
        )

    to_stderr(write)
    return STARTUP_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    # NOTE: first, as a child process takes it once it can (take_interrupts()): a SIGQUIT as
    # the options were parsed or checked had Python's default (a core dump, where they are
    # on), where one a moment later was a stop in order.
    quit_as_terminate()
    _open_closed_streams()
    args = _parser().parse_args(argv)
    try:
        if args.command == "routes":
            app = loaded(_target(args))
            try:
                # NOTE: as serve checks it, so that the table is that of an app that serves:
                # a route never reached, or a plugin whose apply() fails, printed a table.
                app.compile()
            except (Exception, SystemExit) as exc:
                return _not_compiled(args.target, exc)
            table = routes_table(app)
            try:
                print(table, flush=True)
            except OSError as exc:
                # NOTE: "microweb routes shop:app | head -1" on a long table: a traceback, and
                # another from the interpreter's flush at its exit; a full disk (ENOSPC) too.
                to_nowhere(sys.stdout)
                if not isinstance(exc, BrokenPipeError):
                    print(f"microweb: error: cannot write the route table: {exc}", file=sys.stderr)
                return 1
        else:
            if args.uds is not None and (args.host is not None or args.port is not None):
                raise TargetError(
                    "--uds listens on a Unix socket: --host and --port don't go with it"
                )
            serve(
                _target(args),
                args.server,
                DEFAULT_HOST if args.host is None else args.host,
                DEFAULT_PORT if args.port is None else args.port,
                args.workers,
                args.reload,
                threads=args.threads,
                root_path=args.root_path,
                log_level=args.log_level,
                graceful_timeout=args.graceful_timeout,
                forwarded_allow_ips=args.forwarded_allow_ips,
                client_timeout=args.client_timeout,
                keep_alive=args.keep_alive,
                connection_limit=args.connection_limit,
                uds=args.uds,
                timeout_worker_healthcheck=args.timeout_worker_healthcheck,
                loop=args.loop,
            )
    except TargetError as exc:
        message = f"microweb: error: {exc}"
        to_stderr(lambda: print(message, file=sys.stderr, flush=True))
        return 2
    except KeyboardInterrupt:
        # NOTE: SIGINT before the server handles it (the target's import, Waitress's startup
        # hooks): ended by it, as a signal then ends the process; status 0 told systemd or a
        # script that the app had served and stopped cleanly.
        end_by(signal.SIGINT)
    except Terminated:
        # NOTE: SIGTERM once the server had stopped, as serve() ends the process by the
        # signal that stopped it: a traceback and status 1.
        end_by(signal.SIGTERM)
    return 0
