"""``microweb serve``: its options checked, the app loaded and set up, served until a signal
(``_serve_run.py``), then stopped in order.

Worker processes and the reloader build the app anew from the environment
(``asgi_from_environment``), so that each one is set up as a single process is.
"""

from __future__ import annotations

import importlib
import os
import signal
import traceback
from typing import Any

from ._app import App
from ._errors import log_failure
from ._importer import TargetError, load_app
from ._serve_app import (
    CLIENT_TIMEOUT,
    CLIENT_TIMEOUT_VARIABLE,
    FORWARDED_VARIABLE,
    LOG_LEVEL_VARIABLE,
    ROOT_PATH_VARIABLE,
    TARGET_VARIABLE,
    THREADS_VARIABLE,
    asgi_app,
    time_clients,
    trust_proxies,
)
from ._serve_log import configure_logging
from ._serve_options import (
    KEEP_ALIVE,
    MAX_CLIENT_TIMEOUT,
    MAX_PORT,
    MAX_THREADS,
    check_address,
    check_host,
    check_least,
    check_most,
    check_workers,
    event_loop,
    healthcheck_timeout,
    normalize_root_path,
)
from ._serve_run import run_server
from ._stopping import STARTUP_FAILURE, end_by, quit_as_terminate, to_stderr
from ._unix import check_unix_path, check_unix_trust, listen_unix

# NOTE: what the extras in pyproject.toml install, for the message when a server is missing.
_SERVER_PACKAGES = {"uvicorn": "'uvicorn>=0.51' 'websockets>=15'", "waitress": "'waitress>=3.0'"}
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# NOTE: below Docker's 10 s between SIGTERM and SIGKILL, so the shutdown hooks still run.
GRACEFUL_TIMEOUT = 5.0


def asgi_from_environment() -> Any:
    """Build the ASGI app named by ``$MICROWEB_TARGET`` (Uvicorn's factory for workers/reload).

    The other options of ``microweb serve`` come in ``$MICROWEB_THREADS``,
    ``$MICROWEB_ROOT_PATH``, ``$MICROWEB_LOG_LEVEL``, ``$MICROWEB_CLIENT_TIMEOUT`` and
    ``$MICROWEB_FORWARDED_ALLOW_IPS``, so each worker process sets its app up as a single
    process does.
    """
    time_clients(int(os.environ.get(CLIENT_TIMEOUT_VARIABLE, CLIENT_TIMEOUT)))
    target = os.environ[TARGET_VARIABLE]
    try:
        app = load_app(target)
        trust_proxies(app, os.environ.get(FORWARDED_VARIABLE))
        app.compile()  # NOTE: a route never reached is an app that cannot load, logged here.
    except Exception as exc:
        # NOTE: Uvicorn calls this factory and takes any TypeError out of it for a factory's
        # wrong signature: a module edited under --reload to raise one at import was logged as
        # "Error loading ASGI app factory: ..." with no traceback, no file, no line.
        configure_logging(os.environ.get(LOG_LEVEL_VARIABLE, "info"))
        if isinstance(exc, TargetError):
            log_failure("cannot load %s: %s", target, exc)
        else:
            log_failure("cannot load %s", target, exc_info=True)
        raise SystemExit(STARTUP_FAILURE) from None
    except SystemExit as exc:
        # NOTE: as loaded() does for a single process: a module edited under --reload to call
        # sys.exit() as it is imported ended the reloader's child (or a worker) with its own
        # status, and nothing was logged.
        configure_logging(os.environ.get(LOG_LEVEL_VARIABLE, "info"))
        log_failure("cannot load %s: its code called sys.exit(%r)", target, exc.code, exc_info=True)
        raise SystemExit(STARTUP_FAILURE) from None
    configure_logging(os.environ.get(LOG_LEVEL_VARIABLE, "info"))
    threads = os.environ.get(THREADS_VARIABLE)
    return asgi_app(app, int(threads) if threads else None, os.environ.get(ROOT_PATH_VARIABLE, ""))


def loaded(target: str) -> App:
    """Return ``load_app(target)``; an error that the target's own code raised (at import, in
    its factory) is printed with its traceback, then raised as a ``TargetError``.

    Raises:
        TargetError: If the target does not lead to an App, or its code raised or exited.
    """
    try:
        return load_app(target)
    except TargetError:
        raise
    except Exception as exc:
        # NOTE: the traceback is the one way to find the line; the command then ends as for
        # any error in the target (status 2), where it ended with Python's status 1.
        _print_traceback()
        raise TargetError(
            f"cannot load {target}: {type(exc).__name__}: {exc} (traceback above)"
        ) from None
    except SystemExit as exc:
        # NOTE: a module that reads sys.argv as it is imported (argparse) or exits there ended
        # the command with its own status and no word of microweb's: status 3 passed for
        # "startup failed", 0 for a clean stop (review180).
        _print_traceback()
        raise TargetError(
            f"cannot load {target}: its code called sys.exit({exc.code!r}) (traceback above)"
        ) from None


def _print_traceback() -> None:
    """Print the exception being handled on stderr (see ``to_stderr()``)."""
    to_stderr(traceback.print_exc)


def serve(
    target: str,
    server: str,
    host: str,
    port: int,
    workers: int = 1,
    reload: bool = False,
    *,
    threads: int | None = None,
    root_path: str = "",
    log_level: str = "info",
    graceful_timeout: float = GRACEFUL_TIMEOUT,
    forwarded_allow_ips: str | None = None,
    client_timeout: int = CLIENT_TIMEOUT,
    keep_alive: float = KEEP_ALIVE,
    connection_limit: int | None = None,
    uds: str | None = None,
    timeout_worker_healthcheck: float | None = None,
    loop: str | None = None,
) -> None:
    """Serve the app named by ``target`` until SIGTERM, SIGINT or SIGQUIT, then stop in order.

    Requests in flight get ``graceful_timeout`` seconds to finish; then the shutdown hooks and
    the plugins' ``close()`` run, and the process ends by the signal it got.

    The servers' own handling of forwarded headers is off: ``forwarded_allow_ips`` (addresses
    and CIDR ranges, comma-separated) installs ``ProxyHeaders``, which works the same under
    both; without it, no forwarded header is trusted.

    A client that sends nothing of a request it owes, or reads nothing of its answer, for
    ``client_timeout`` seconds is closed, under both. A kept-alive connection idle between
    requests (its answer sent, no byte of the next request) is closed after ``keep_alive``
    seconds, under both (0: once its answer is sent). ``connection_limit`` caps the
    connections served at once: Waitress accepts no more (it takes 100 by default); Uvicorn
    answers 503 past it (it has no cap by default).

    With ``uds``, the app is served on a Unix socket at that path instead of ``host`` and
    ``port`` (``_unix.py``): made with mode 0o666, replacing a stale socket file but no other
    file, and removed once the server has stopped.

    With ``workers``, a worker whose event loop makes no progress for
    ``timeout_worker_healthcheck`` seconds (``HEALTHCHECK_TIMEOUT`` if ``None``, no limit if
    0) is stopped, killed if it stays stuck, and replaced; it is refused with one process.

    ``loop`` is Uvicorn's event loop (``auto``, its default, if ``None``): ``asyncio``,
    ``uvloop``, or a loop factory named ``module:name``; it is refused under Waitress.

    Raises:
        TargetError: If the target is not an App, the server package is not installed (the
            message gives the install command), or an option does not fit the server.
    """
    try:
        importlib.import_module(server)
    except ImportError:
        # NOTE: not "pip install 'microweb[...]'": PyPI's microweb is an unrelated project.
        raise TargetError(
            f"the {server} server is not installed; install it with: pip install "
            f"{_SERVER_PACKAGES[server]} (or pip install -e '.[{server}]' in microweb's clone)"
        ) from None
    if server == "waitress" and (workers != 1 or reload):
        raise TargetError("--workers and --reload are for uvicorn; waitress runs one process")
    check_least(
        ("--threads", threads, 1),
        ("--workers", workers, 1),
        ("--graceful-timeout", graceful_timeout, 0),
        ("--client-timeout", client_timeout, 1),
        ("--keep-alive", keep_alive, 0),
        ("--connection-limit", connection_limit, 1),
    )
    check_workers(workers)
    check_most(
        ("--threads", threads, MAX_THREADS),
        ("--client-timeout", client_timeout, MAX_CLIENT_TIMEOUT),
        ("--keep-alive", keep_alive, MAX_CLIENT_TIMEOUT),
    )
    if not 0 <= port <= MAX_PORT:
        # NOTE: Waitress served --port 99999 on port 34463 (modulo 65536), and Uvicorn
        # raised OverflowError with a traceback (exit status 1).
        raise TargetError(f"--port must be from 0 to {MAX_PORT}, got {port}")
    if workers != 1 and reload:
        raise TargetError("--workers and --reload don't go together: --reload runs one process")
    timeout_worker_healthcheck = healthcheck_timeout(
        timeout_worker_healthcheck, server, workers, reload
    )
    if uds is not None:
        check_unix_path(uds)
        check_unix_trust(forwarded_allow_ips)
    else:
        check_host(host)
    root_path = normalize_root_path(root_path)
    loop = event_loop(loop, server)
    # NOTE: a shell makes its background jobs ignore SIGINT, and Python keeps that: the
    # target's import and Waitress's startup hooks ran on through a SIGINT, and the server then
    # served (Uvicorn's path, which sets this handler itself, ended at once).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    quit_as_terminate()  # NOTE: main() took it so first; again for a caller of serve() alone.
    if server == "uvicorn":
        # NOTE: before the app's import: see _uvicorn.Config.
        from ._uvicorn import configure_uvicorn_logging

        configure_uvicorn_logging()
    app = loaded(target)
    trust_proxies(app, forwarded_allow_ips)
    configure_logging(log_level)
    _compile(app)
    listener = None
    if uds is not None:
        listener = listen_unix(uds)
    else:
        check_address(host, port)
    try:
        stopped_by = run_server(
            app, target, server, host, port, workers, reload, listener,
            threads=threads,
            root_path=root_path,
            log_level=log_level,
            graceful_timeout=graceful_timeout,
            forwarded_allow_ips=forwarded_allow_ips,
            client_timeout=client_timeout,
            keep_alive=keep_alive,
            connection_limit=connection_limit,
            timeout_worker_healthcheck=timeout_worker_healthcheck,
            loop=loop,
        )  # fmt: skip
    finally:
        if listener is not None:
            # NOTE: before end_by(), which ends the process; a process killed (or ended by a
            # second signal while its shutdown hooks ran) leaves a stale file, which the next
            # start replaces.
            listener.remove()
    if stopped_by is None:
        raise SystemExit(STARTUP_FAILURE)
    end_by(stopped_by)


def _compile(app: App) -> None:
    """Compile ``app`` as its drivers do, in this process, before anything listens.

    Raises:
        SystemExit: With the startup failure's status, when it does not compile or its code
            calls ``sys.exit()`` as it does (logged).
    """
    try:
        app.compile()
    except (Exception, SystemExit):
        # NOTE: as Waitress's start logged it (a route never reached, a plugin that changes a
        # handler's colour): a single Uvicorn process crashed out of main() with a traceback
        # (status 1), the workers each with theirs, and the reloader waited for a change. A
        # plugin's sys.exit() in apply() too, which ended the command with its message alone.
        log_failure("startup failed", exc_info=True)
        raise SystemExit(STARTUP_FAILURE) from None
