"""The checks of ``microweb serve``'s options, and the bounds they are checked against: an
option refused is a ``TargetError`` (status 2) that says why, found before the app is loaded;
an address that names nothing to listen on is logged as a failed start (status 3)."""

from __future__ import annotations

import errno
import importlib
import importlib.util
import math
import os
import socket
import sys
from typing import Any

from ._errors import log_failure
from ._importer import TargetError
from ._stopping import STARTUP_FAILURE
from ._target import root_path_refused
from ._unix import port_of

SERVERS = {"uvicorn": "ASGI", "waitress": "WSGI"}
# NOTE: Uvicorn's default for its --timeout-worker-healthcheck.
HEALTHCHECK_TIMEOUT = 5.0
# NOTE: the most often a worker's watcher looks at its event loop (_watcher.beat_for()), and
# the shortest --timeout-worker-healthcheck, which leaves four looks within it: under 0.01 s,
# healthy workers were killed as the server stopped (no progress seen since the stop began),
# hooks cut. Here, not in _watcher: importing it made a circle (_watcher names _uvicorn's
# server, and _uvicorn imports _serve_log, which imports this module).
MIN_BEAT = 0.05
MIN_TIMEOUT = 4 * MIN_BEAT
MAX_PORT = 65535
# NOTE: over 31 years, which stands for never; float() of 400 digits raised OverflowError as
# the servers started (a traceback), and anything near that much means the same.
MAX_CLIENT_TIMEOUT = 10**9
# NOTE: Uvicorn's timeout_keep_alive (Gunicorn's --keep-alive is 2): seconds a kept-alive
# connection may stay idle between requests before it is closed, under both servers.
KEEP_ALIVE = 5.0
# NOTE: more threads than any app needs, and fewer than Linux starts by default (about 32000,
# two memory maps of vm.max_map_count's 65530 each): --threads 100000 made Waitress's start
# fail half-way and the process abort (status 134) with a traceback.
MAX_THREADS = 10_000
# NOTE: each worker is a whole process with its own app (tens of MB) and its own thread pool,
# and more than a few per CPU only wait for one: --workers 100000 started processes until the
# machine ran out of memory. Gunicorn suggests 2 per CPU (plus one); 8 leaves room for apps
# that mostly wait on I/O.
WORKERS_PER_CPU = 8


def normalize_root_path(root_path: str) -> str:
    """Return ``root_path`` with one leading slash and no trailing one (``""`` for none).

    Raises:
        TargetError: If it does not start with a slash, is no printable text, has a ``?``,
            a ``#``, a %-escape, or a ``.`` or ``..`` segment.
    """
    if root_path and not root_path.startswith("/"):
        raise TargetError(f"--root-path must start with '/', got {root_path!r}")
    refused = root_path_refused(root_path, "--root-path")
    if refused is not None:
        raise TargetError(refused)
    return "/" + root_path.strip("/") if root_path.strip("/") else ""


def usable_cpus() -> int:
    """Return how many CPUs this process may run on (``taskset``, a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_workers(workers: int) -> None:
    """Refuse more ``--workers`` than ``WORKERS_PER_CPU`` for each usable CPU.

    Raises:
        TargetError: If there are more.
    """
    cpus = usable_cpus()
    if workers > WORKERS_PER_CPU * cpus:
        raise TargetError(
            f"--workers must be at most {WORKERS_PER_CPU * cpus} ({WORKERS_PER_CPU} for each of "
            f"the {cpus} CPUs this process may use), got {workers}; more only wait for a CPU"
        )


def healthcheck_timeout(timeout: float | None, server: str, workers: int, reload: bool) -> float:
    """Return the workers' healthcheck timeout for ``--timeout-worker-healthcheck``: its
    default if not given, ``math.inf`` (no limit) for 0.

    Raises:
        TargetError: If it is not a finite number, shorter than a worker's watcher can see (but
            0), or given with no workers to watch.
    """
    if timeout is None:
        return HEALTHCHECK_TIMEOUT
    _check_healthcheck(timeout, server, workers, reload)
    # NOTE: Gunicorn's --timeout 0: no worker is stopped for a loop that makes no progress.
    return math.inf if timeout == 0 else timeout


def _check_healthcheck(timeout: float, server: str, workers: int, reload: bool) -> None:
    """Refuse ``timeout`` as ``healthcheck_timeout`` says."""
    if not math.isfinite(timeout):
        # NOTE: inf was taken, and turned the watching off without a word; NaN was refused
        # as below 0.2.
        raise TargetError(
            f"--timeout-worker-healthcheck must be a number of seconds, got {timeout:g} "
            "(0 turns the watching off)"
        )
    if timeout != 0 and timeout < MIN_TIMEOUT:
        raise TargetError(
            f"--timeout-worker-healthcheck must be 0 (off) or at least {MIN_TIMEOUT:g}, "
            f"got {timeout:g}"
        )
    if server == "waitress":
        why = "waitress runs one process"
    elif reload:
        why = "--reload runs one process"
    elif workers == 1:
        why = "one process serves (--workers 1, the default)"
    else:
        return
    # NOTE: as --workers under Waitress is refused: it was taken and did nothing.
    raise TargetError(
        f"--timeout-worker-healthcheck watches the processes of --workers (2 or more): {why}"
    )


# NOTE: Uvicorn's --loop names microweb serve passes on (a module:name factory too); Uvicorn's
# "none" and "zuvloop" are left out: asyncio's default loop is "asyncio", and zuvloop is no
# package microweb is tested with.
LOOPS = ("auto", "asyncio", "uvloop")


def event_loop(loop: str | None, server: str) -> str:
    """Return Uvicorn's ``loop`` setting for ``--loop``: ``auto`` if not given.

    A ``module:name`` factory is imported here (the working directory on ``sys.path``, as for
    a target), so that one that is not there is refused before anything starts; Uvicorn, and
    each worker's, imports it by that name again.

    Raises:
        TargetError: If given under waitress, not one of ``LOOPS`` nor ``module:name``, uvloop
            not installed, or the factory not found or not callable.
    """
    if loop is None:
        return "auto"
    if server == "waitress":
        raise TargetError("--loop is for uvicorn; waitress runs no event loop")
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise TargetError(
            "--loop uvloop: uvloop is not installed; install it with: pip install uvloop"
        )
    if loop in LOOPS:
        return loop
    module, _, name = loop.partition(":")
    dotted = all(part.isidentifier() for part in f"{module}.{name}".split("."))
    if not dotted:
        raise TargetError(
            f"--loop must be {', '.join(LOOPS)} or a loop factory as module:name, got {loop!r}"
        )
    factory = _loop_factory(loop, module, name)
    if not callable(factory):
        raise TargetError(f"--loop {loop}: {name!r} is not callable (a loop factory is)")
    return loop


def _loop_factory(loop: str, module: str, name: str) -> object:
    """Import the loop factory ``module:name``."""
    sys.path.insert(0, os.getcwd())
    try:
        found: object = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module + ".").startswith(exc.name + "."):
            raise  # NOTE: a module it imports is missing: an error of its code.
        raise TargetError(f"--loop {loop}: cannot import module {module!r}: {exc}") from None
    for part in name.split("."):
        if not hasattr(found, part):
            raise TargetError(f"--loop {loop}: module {module!r} has no attribute {name!r}")
        found = getattr(found, part)
    return found


def check_host(host: str) -> None:
    """Refuse a ``--host`` that is empty, or an IPv6 address in brackets.

    Raises:
        TargetError: If it is.
    """
    if not host:
        # NOTE: Waitress raised ValueError once the startup hooks had run (a traceback), and
        # Uvicorn listened on every address, saying "serving on http://:8000".
        raise TargetError("--host must not be empty; 0.0.0.0 or :: listens on every address")
    if host.startswith("[") and host.endswith("]"):
        # NOTE: as a URL writes it (and "serving on" says it): looked up as a name, it failed
        # as "Name or service not known", status 3, as a host that is down would.
        raise TargetError(f"--host takes an IPv6 address without brackets: --host {host[1:-1]}")


def host_port(host: str, port: object) -> str:
    """Return ``host:port``, an IPv6 address in brackets (``[::1]:8000``)."""
    # SPEC: RFC 3986 section 3.2.2: an IPv6 address in a URL is written in brackets; without
    # them, "cannot listen on 2001:db8::1:8000" could not tell the port from the address.
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_address(host: str, port: int) -> None:
    unknown = unresolved(host, port)
    if unknown is not None:
        # NOTE: one line and status 3, as for a port that is taken: Waitress raised ValueError
        # ("Invalid host/port specified.") and Uvicorn UnicodeError ("bad..host"), each with a
        # traceback and status 1 (hostile137).
        log_failure("cannot listen on %s: %s", host_port(host, port), unknown)
        raise SystemExit(STARTUP_FAILURE)


def unresolved(host: str, port: int) -> str | None:
    """Return why ``host`` names no address to listen on (``None`` when it names one)."""
    try:
        socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        return str(exc)
    return None


def check_least(*options: tuple[str, float | None, int]) -> None:
    """Refuse an option given below its least value: ``(name, value or None, least)``.

    Raises:
        TargetError: Naming the first such option.
    """
    for name, value, least in options:
        # NOTE: "not >=" refuses NaN too (--graceful-timeout nan), which Waitress took for 0.
        if value is not None and not value >= least:
            raise TargetError(
                f"{name} must be 0 or more" if least == 0 else f"{name} must be at least {least}"
            )


def check_most(*options: tuple[str, float | None, int]) -> None:
    """Refuse an option given above its most value: ``(name, value or None, most)``.

    Raises:
        TargetError: Naming the first such option.
    """
    for name, value, most in options:
        # NOTE: inf too: for a timeout, never, which no timeout means.
        if value is not None and value > most:
            given = f"{value:g}" if isinstance(value, float) else value
            raise TargetError(f"{name} must be at most {most}, got {given}")


def bind(host: str, port: int) -> list[socket.socket] | None:
    """Return sockets bound to each address of ``host`` at ``port`` for the children, or
    ``None`` (logged).

    One for each address, as a single Uvicorn or Waitress process listens on each (for
    ``localhost``, often ``127.0.0.1`` and ``::1``), but those this machine does not have;
    with port 0, all on the port the system picks for the first, picked again when another
    address has it taken. They are not listening yet: each child listens once its app has
    started, so that no connection waits on an app that may never start.
    """
    try:
        addresses = _addresses(host, port)
        for attempt in range(1, _PICKS + 1):
            try:
                return _bound_all(addresses)
            except OSError as exc:
                # NOTE: the port picked for the first address, taken on another (by another
                # program on ::1): the start failed where one process would have served.
                if port != 0 or exc.errno != errno.EADDRINUSE or attempt == _PICKS:
                    raise
    except OSError as exc:
        # NOTE: one line, as under Waitress and a single Uvicorn process.
        log_failure("cannot listen on %s: %s", host_port(host, port), exc)
    return None


def picks_several_ports(host: str, port: int) -> bool:
    """Return whether a single server process would listen on ``host`` at ``port`` on more than
    one port: with port 0, one picked for each of the addresses ``host`` names."""
    # NOTE: Waitress and asyncio's create_server() bind each address with port 0 for itself,
    # and the serving line named the first one's port only ("localhost": ::1 on another).
    if port != 0:
        return False
    try:
        return len(_addresses(host, port)) > 1
    except OSError:
        return False  # NOTE: the server says why, as it fails to listen.


# NOTE: how many ports --port 0 tries, each picked by the system for the first address.
_PICKS = 10


def _bound_all(addresses: list[tuple[int, tuple[Any, ...]]]) -> list[socket.socket]:
    """Bind a socket to each of ``addresses``, all on the first one's port; close them on
    failure."""
    sockets: list[socket.socket] = []
    try:
        for index, (family, address) in enumerate(addresses):
            if sockets:
                address = (address[0], port_of(sockets[0]), *address[2:])
            try:
                sockets.append(_bound(family, address))
            except OSError as exc:
                last = index == len(addresses) - 1
                if exc.errno not in _UNAVAILABLE or (last and not sockets):
                    raise
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


# NOTE: an address this machine does not have, or of a family it has turned off: skipped, as
# asyncio's create_server() (so a single Uvicorn process) skips it (bpo-30945). A localhost
# that names ::1 where IPv6 is off (a container's /etc/hosts) failed --workers and --reload
# ("cannot listen"), where one process served on 127.0.0.1.
_UNAVAILABLE = frozenset({errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})


def _addresses(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    """The families and addresses ``host`` names, each once, as the servers look them up."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return list(dict.fromkeys((family, address) for family, _, _, _, address in found))


def _bound(family: int, address: tuple[Any, ...]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # NOTE: IPv6 only, as a single Uvicorn or Waitress process listens on "::": with
            # the system's default (dual-stack on Linux), --workers 2 took IPv4 connections that
            # one worker refused, each client's address then "::ffff:a.b.c.d" (review139).
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
