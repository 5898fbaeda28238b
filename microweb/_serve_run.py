"""``microweb serve``'s server run: Uvicorn in one process, in worker processes or under its
reloader, or Waitress; each until a signal stops it, which is what ``run_server`` returns.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import signal
import socket
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._app import App
from ._errors import InterfaceWarning, log_failure
from ._importer import source_dir
from ._serve_app import (
    CLIENT_TIMEOUT_VARIABLE,
    FORWARDED_VARIABLE,
    LOG_LEVEL_VARIABLE,
    ROOT_PATH_VARIABLE,
    TARGET_VARIABLE,
    THREADS_VARIABLE,
    asgi_driver,
    served_asgi,
    time_clients,
    waitress_body_cap,
    websocket_message_cap,
)
from ._serve_log import say_serving, say_serving_unix
from ._serve_options import bind, picks_several_ports
from ._stopping import STARTUP_FAILURE
from ._unix import UnixListener
from .plugins.requestid import AccessLog

if TYPE_CHECKING:
    from ._asgi import ASGIDriver

# NOTE: by their import strings, which Uvicorn imports in each worker process: httptools
# with a bounded head when it is installed (Uvicorn's pick), else h11; both with a timer for a
# body that stops coming.
UVICORN_HTTP = "microweb._httptools:BoundedHttpTools"
UVICORN_H11 = "microweb._h11:BoundedH11"
# NOTE: the websockets library's protocol (Uvicorn's pick when it is installed), which keeps
# one pong for a client that does not read them and bounds what a client makes it hold
# (_ws_flow.py); else Uvicorn's own pick.
UVICORN_WS = "microweb._ws_flow:FlowControlledWebSockets"
logger = logging.getLogger("microweb")
# NOTE: hosts that listen on every interface, and so name no one address.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def run_server(
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

        driver = asgi_driver(app, threads)
        runner = orderly_uvicorn(served_asgi(driver, root_path), announce, **settings)
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
