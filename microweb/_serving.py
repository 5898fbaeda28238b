"""``microweb serve``: the app set up for Uvicorn or Waitress, run, and stopped in order.

Worker processes and the reloader build the app anew from the environment
(``asgi_from_environment``), so that each one is set up as a single process is.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import logging
import os
import signal
import socket
import traceback
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._app import App
from ._errors import InterfaceWarning, log_failure
from ._importer import TargetError, load_app, source_dir
from ._limits import Limits
from ._routing import Route
from ._serve_log import configure_logging, say_serving, say_serving_unix
from ._serve_options import (
    KEEP_ALIVE,
    MAX_CLIENT_TIMEOUT,
    MAX_PORT,
    MAX_THREADS,
    bind,
    check_address,
    check_host,
    check_least,
    check_most,
    check_workers,
    event_loop,
    healthcheck_timeout,
    normalize_root_path,
    picks_several_ports,
)
from ._stopping import STARTUP_FAILURE, end_by, quit_as_terminate, to_stderr
from ._unix import UnixListener, check_unix_path, check_unix_trust, listen_unix
from .plugins import ProxyHeaders
from .plugins.requestid import AccessLog

if TYPE_CHECKING:
    from ._asgi import ASGIDriver

# NOTE: what the extras in pyproject.toml install, for the message when a server is missing.
_SERVER_PACKAGES = {"uvicorn": "'uvicorn>=0.51' 'websockets>=15'", "waitress": "'waitress>=3.0'"}
TARGET_VARIABLE = "MICROWEB_TARGET"
FORWARDED_VARIABLE = "MICROWEB_FORWARDED_ALLOW_IPS"
THREADS_VARIABLE = "MICROWEB_THREADS"
ROOT_PATH_VARIABLE = "MICROWEB_ROOT_PATH"
LOG_LEVEL_VARIABLE = "MICROWEB_LOG_LEVEL"
CLIENT_TIMEOUT_VARIABLE = "MICROWEB_CLIENT_TIMEOUT"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# NOTE: by their import strings, which Uvicorn imports in each worker process: httptools
# with a bounded head when it is installed (Uvicorn's pick), else h11; both with a timer for a
# body that stops coming.
UVICORN_HTTP = "microweb._httptools:BoundedHttpTools"
UVICORN_H11 = "microweb._h11:BoundedH11"
# NOTE: the websockets library's protocol (Uvicorn's pick when it is installed), which keeps
# one pong for a client that does not read them and bounds what a client makes it hold
# (_ws_flow.py); else Uvicorn's own pick.
UVICORN_WS = "microweb._ws_flow:FlowControlledWebSockets"
# NOTE: below Docker's 10 s between SIGTERM and SIGKILL, so the shutdown hooks still run.
GRACEFUL_TIMEOUT = 5.0
# NOTE: Waitress's default channel_timeout, which microweb's Uvicorn protocols follow
# (_stall.STALL_TIMEOUT, which this module may not import: it needs Uvicorn).
CLIENT_TIMEOUT = 120
logger = logging.getLogger("microweb")
# NOTE: hosts that listen on every interface, and so name no one address.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


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


def time_clients(seconds: int) -> None:
    """Close a Uvicorn connection whose client sends nothing it owes, or reads nothing of its
    answer, for ``seconds`` (``microweb serve``'s protocols, ``_stall.py``)."""
    from ._stall import StallTimer

    StallTimer.stall_timeout = float(seconds)


def trust_proxies(app: App, forwarded_allow_ips: str | None) -> None:
    """Install ``ProxyHeaders`` trusting the comma-separated addresses and ranges, if any.

    Raises:
        TargetError: If an entry is not an address or a range, or the app has the plugin.
    """
    if forwarded_allow_ips is None:
        return
    trusted = [entry.strip() for entry in forwarded_allow_ips.split(",") if entry.strip()]
    try:
        app.install(ProxyHeaders(trusted))
    except ValueError as exc:
        raise TargetError(f"--forwarded-allow-ips: {exc}") from None


def asgi_app(app: App, threads: int | None, root_path: str) -> Any:
    """Return ``app``'s ASGI callable, with ``threads`` in its pool, mounted at ``root_path``."""
    return _served_asgi(_asgi_driver(app, threads), root_path)


def _asgi_driver(app: App, threads: int | None) -> ASGIDriver:
    if threads is not None:
        app.max_threads = threads
    return app.as_asgi()


def _served_asgi(asgi: ASGIDriver, root_path: str) -> Any:
    return _mounted(asgi, root_path) if root_path else asgi


def _mounted(asgi: Any, root_path: str) -> Any:
    # NOTE: Uvicorn's own --root-path prepends the root to every path, so a request that still
    # has it ("/app/items") would become "/app/app/items"; Waitress's url_prefix strips it when
    # present. Setting root_path and leaving path alone lets the driver strip the root when it
    # is there, exactly as under Waitress.
    async def mounted(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["root_path"] = root_path
        await asgi(scope, receive, send)

    return mounted


def _all_limits(app: App, routes: list[Route]) -> list[Limits]:
    found = [route.limits for route in routes if isinstance(route.limits, Limits)]
    return found or [app.limits]


def waitress_body_cap(app: App) -> int:
    """Return Waitress's ``max_request_body_size`` for ``app``: its largest body limit, plus room.

    Waitress refuses a body at its cap and counts chunked framing; the room keeps the app's own
    413 (with its error body) for every body it would refuse, and Waitress's for far larger ones.
    """
    return _with_room(max(limits.max_body_size for limits in _all_limits(app, app.routes)))


def websocket_message_cap(app: App) -> int:
    """Return Uvicorn's ``ws_max_size`` for ``app``: its largest WebSocket message, plus room.

    websockets bounds each frame as it comes, compressed (random bytes deflate to a few bytes
    more), and after the message's last inflated byte its next fragments still count: the room
    lets through every message the app accepts, and the app's own limit closes with 1009 one
    that is over it once inflated.
    """
    routes = app.websocket_routes
    return _with_room(max(limits.max_websocket_message for limits in _all_limits(app, routes)))


def _with_room(largest: int) -> int:
    """``largest`` plus an eighth, 64 KiB at least: the server's cap, above the app's limit."""
    return largest + max(64 * 1024, largest // 8)


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
        stopped_by = _serve(
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


def _serve(
    app: App,
    target: str,
    server: str,
    host: str,
    port: int,
    workers: int,
    reload: bool,
    listener: UnixListener | None,
    *,
    threads: int | None,
    root_path: str,
    log_level: str,
    graceful_timeout: float,
    forwarded_allow_ips: str | None,
    client_timeout: int,
    keep_alive: float,
    connection_limit: int | None,
    timeout_worker_healthcheck: float,
    loop: str,
) -> int | None:
    """Run ``server`` until it stops; return the signal that stopped it, ``None`` if it did
    not start."""
    # NOTE: said once the app has started and the socket listens (not before: whoever reads
    # it expects an answer), with the port it listens on (the one the system chose for
    # --port 0); a picklable callable, for the reloader's child process.
    if listener is None:
        announce = functools.partial(say_serving, host, server)
    else:
        announce = functools.partial(say_serving_unix, listener.path, server)
    shared = None if listener is None else [listener.sock]
    if workers == 1 and not reload and picks_several_ports(host, port):
        # NOTE: every address on one port, as --workers binds them (the port it announces).
        shared = bind(host, port)
        if shared is None:
            return None
    if server == "waitress":
        # NOTE: Waitress looks for connections past channel_timeout every cleanup_interval
        # (30 s by default) only: it closed one whose request stopped coming up to 30 s late,
        # where Uvicorn closes it on time (review349). A look a second goes over the
        # connections, at most --connection-limit of them.
        adjustments: dict[str, Any] = {
            "channel_timeout": client_timeout,
            "cleanup_interval": min(1, client_timeout),
        }
        if connection_limit is not None:
            adjustments["connection_limit"] = connection_limit
        if shared is None:
            adjustments.update(host=host, port=port)
        else:
            adjustments["sockets"] = shared
        return _serve_waitress(
            app, host, threads, root_path, graceful_timeout, keep_alive, announce, adjustments
        )
    time_clients(client_timeout)
    settings = {
        "log_level": log_level,
        "timeout_graceful_shutdown": graceful_timeout,
        "timeout_keep_alive": keep_alive,
        # NOTE: forwarded headers are the app's business (ProxyHeaders), never Uvicorn's.
        "proxy_headers": False,
        # NOTE: with AccessLog installed, Uvicorn's line would log each request twice.
        "access_log": not any(isinstance(plugin, AccessLog) for plugin in app.plugins),
        "ws_max_size": websocket_message_cap(app),
        "http": UVICORN_HTTP if importlib.util.find_spec("httptools") else UVICORN_H11,
        "ws": _websocket_protocol(),
        # NOTE: by name, as each worker's Uvicorn imports it (a module:name factory too).
        "loop": loop,
    }
    if shared is None:
        settings.update(host=host, port=port)
    if connection_limit is not None:
        # NOTE: Uvicorn refuses a request once the connections, its own included, reach the
        # limit: N connections are served with a limit of N + 1.
        settings["limit_concurrency"] = connection_limit + 1
    sockets = shared
    if workers != 1 or reload:
        settings["timeout_worker_healthcheck"] = timeout_worker_healthcheck
        _export(FORWARDED_VARIABLE, forwarded_allow_ips)
        os.environ[CLIENT_TIMEOUT_VARIABLE] = str(client_timeout)
        return _serve_uvicorn_processes(
            target, settings, workers, reload, threads, root_path, announce, sockets
        )
    return _serve_uvicorn(app, settings, threads, root_path, announce, sockets)


def _websocket_protocol() -> str:
    """Return Uvicorn's WebSocket protocol for ``microweb serve``: microweb's, on the websockets
    library, where it is installed; else Uvicorn's pick, said where that is wsproto."""
    if importlib.util.find_spec("websockets"):
        return UVICORN_WS
    if importlib.util.find_spec("wsproto"):
        # NOTE: Uvicorn's wsproto protocol bounds none of what _ws_flow bounds; the app's own
        # limits hold (message size, origins, refusals), as under `uvicorn --ws wsproto`.
        logger.warning(
            "WebSockets run on Uvicorn's wsproto protocol, without microweb's own: pongs to a "
            "client that reads none, fragments and compressed messages are not bounded, and "
            "neither --client-timeout nor --connection-limit holds for WebSockets; install "
            "websockets (pip install websockets) to serve them with microweb's"
        )
    return "auto"


def _serve_uvicorn(
    app: App,
    settings: dict[str, Any],
    threads: int | None,
    root_path: str,
    announce: Callable[[int], None],
    sockets: list[socket.socket] | None = None,
) -> int | None:
    # NOTE: Uvicorn re-raises the stop signal under the previous handler; make SIGINT's the
    # default one even where the shell made background jobs ignore it, and SIGTERM's one that
    # comes back here too: its default ended the process at once, before serve() removed the
    # Unix socket's file (end_by() ends it as that would).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    driver: ASGIDriver | None = None
    try:
        # NOTE: built inside the try: a SIGTERM while the server is built (before Uvicorn
        # handles signals) raised Terminated out of serve(), a traceback and status 1.
        from ._uvicorn import orderly_uvicorn

        driver = _asgi_driver(app, threads)
        runner = orderly_uvicorn(_served_asgi(driver, root_path), announce, **settings)
        runner.run(sockets)
    except KeyboardInterrupt:
        # NOTE: Uvicorn ran the shutdown and re-raised SIGINT.
        stopped_by: int | None = signal.SIGINT
    except Terminated:
        stopped_by = signal.SIGTERM
    else:
        # NOTE: Uvicorn stopped on SIGTERM, whose re-raise did nothing: as PID 1 in a
        # container, a signal without a handler is ignored.
        stopped_by = signal.SIGTERM if runner.started else None
    ended = None if driver is None else driver.shutdown_ended
    if ended is not None and not isinstance(ended, GeneratorExit):
        # NOTE: a shutdown step's sys.exit("...") ends the process with it, as close() raises
        # it under Waitress; Uvicorn takes every error of the lifespan call, and it ended by
        # the signal instead. Its GeneratorExit fails its step as an error does (logged once,
        # by the shutdown): raised here, it was a second traceback and status 1 (review345).
        raise ended
    return stopped_by


class Terminated(BaseException):
    """SIGTERM, once Uvicorn has stopped on it (or before it listened for it)."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


def _export(name: str, value: str | None) -> None:
    # NOTE: an option not given is removed, not left as found: a variable inherited from the
    # shell (or an outer microweb serve) made the workers trust proxies that one process
    # would not (review65).
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _serve_uvicorn_processes(
    target: str,
    settings: dict[str, Any],
    workers: int,
    reload: bool,
    threads: int | None,
    root_path: str,
    announce: Callable[[int], None],
    sockets: list[socket.socket] | None = None,
) -> int | None:
    # NOTE: worker processes and the reloader import the app anew, from a string; the options
    # that shape the app travel in the environment (asgi_from_environment).
    os.environ[TARGET_VARIABLE] = target
    os.environ[ROOT_PATH_VARIABLE] = root_path
    os.environ[LOG_LEVEL_VARIABLE] = settings["log_level"]
    _export(THREADS_VARIABLE, None if threads is None else str(threads))
    from ._supervisor import serve_processes
    from ._uvicorn import Config

    if sockets is None:
        sockets = bind(settings["host"], settings["port"])
        if sockets is None:
            return None
    config = Config(
        "microweb._serving:asgi_from_environment",
        factory=True,
        workers=workers,
        reload=reload,
        reload_dirs=[source_dir(target)] if reload else None,
        **settings,
    )
    stopped_by: int | None = serve_processes(config, workers, sockets, announce)
    return stopped_by


def _serve_waitress(
    app: App,
    host: str,
    threads: int | None,
    root_path: str,
    grace: float,
    keep_alive: float,
    announce: Callable[[int], None],
    options: dict[str, Any],
) -> int | None:
    adjustments: dict[str, Any] = {
        **options,
        # NOTE: with lookahead Waitress reads the socket during a request, so it can tell
        # the app that the client left (request.is_disconnected()).
        "channel_request_lookahead": 1,
        # NOTE: Waitress would spool up to 1 GiB to disk before the app can say 413 (TRAPS 20).
        "max_request_body_size": waitress_body_cap(app),
        # NOTE: in PEP 3333's spelling (UTF-8 bytes as latin-1 text), the one Waitress compares
        # with the path and gives as SCRIPT_NAME: "/café" as given answered 404 under it, and
        # url_for() wrote "/%EF%BF%BD/..." (hostile137).
        "url_prefix": root_path.encode("utf-8").decode("latin-1"),
        # NOTE: Waitress deletes forwarded headers by default; ProxyHeaders decides, as under
        # Uvicorn.
        "clear_untrusted_proxy_headers": False,
    }
    if "sockets" in options:
        # NOTE: a Unix socket has no address: SERVER_NAME is empty, as Uvicorn's is none
        # (OrderlyTask), so that a request without Host has no host under both.
        adjustments["server_name"] = ""
    elif host not in WILDCARD_HOSTS:
        # NOTE: SERVER_NAME stands for a missing Host (HTTP/1.0); Waitress's own is
        # "waitress.invalid". OrderlyTask gives the connection's own address, as Uvicorn
        # does; this one stands in when the connection is gone.
        adjustments["server_name"] = host
    if threads is not None:
        adjustments["threads"] = threads
    # NOTE: SIGTERM comes back here, as SIGINT does (KeyboardInterrupt), until
    # OrderlyWaitress.run() handles both: Python's default ended the process between the
    # startup hooks and run(), with no shutdown hooks.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        return _start_waitress(app, grace, keep_alive, announce, adjustments)
    except Terminated:
        return signal.SIGTERM


def _start_waitress(
    app: App,
    grace: float,
    keep_alive: float,
    announce: Callable[[int], None],
    adjustments: dict[str, Any],
) -> int | None:
    from ._waitress import serve_waitress

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InterfaceWarning)
            wsgi = app.as_wsgi()
    except (Exception, SystemExit, GeneratorExit):
        # NOTE: as the ASGI driver does under Uvicorn: logged, then Uvicorn's status. A hook's
        # sys.exit() too, which Uvicorn ends with that status (its startup failed), and its
        # GeneratorExit, which crashed out of main() (review341).
        log_failure("startup failed", exc_info=True)
        raise SystemExit(STARTUP_FAILURE) from None
    for caught_warning in caught:
        if issubclass(caught_warning.category, InterfaceWarning):
            # NOTE: said to the one serving, in the log, not as a warning that points at
            # this file (the line that called as_wsgi()).
            logger.warning("%s", caught_warning.message)
        else:
            warnings.showwarning(
                caught_warning.message,
                caught_warning.category,
                caught_warning.filename,
                caught_warning.lineno,
            )
    try:
        return serve_waitress(wsgi, grace, announce, keep_alive=keep_alive, **adjustments)
    finally:
        with contextlib.suppress(RuntimeError, GeneratorExit):
            wsgi.close()  # NOTE: a no-op after an orderly stop; failures were logged.
