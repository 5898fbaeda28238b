"""Real servers in subprocesses, for the end-to-end tests.

A server is started with its own command line from the repository root, with ``tests/`` and the
root on ``PYTHONPATH``; it is ready once its port accepts a connection, and it is stopped by its
own pid. Its output goes to a log file, which every failure message includes.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import itertools
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
HOST = "127.0.0.1"
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

Process = subprocess.Popen[bytes]


def _outgoing_ports() -> range:
    """The ports the system gives outgoing connections (Linux says; else IANA's range)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return range(49152, 65536)
    return range(int(low), int(high) + 1)


# NOTE: ports handed out by this process, never handed out twice (a test may take several
# before it starts any server).
_HANDED_OUT: set[int] = set()
# NOTE: the ports handed out whose server has not listened yet, each held by a bound socket.
_RESERVED: dict[int, socket.socket] = {}
# NOTE: the system's randomness, not the random module's: a test that seeds that (or Hypothesis)
# must not make two pytest-xdist workers draw the same ports.
_PORTS = random.SystemRandom()


def free_port() -> int:
    """Return a TCP port that is free on ``HOST`` right now, held by a bound socket until
    ``start()`` sees its server listen there or the test ends (``release_ports()``).

    It is chosen below the range of outgoing connections' ports: a port the system picked
    (``bind(0)``) is also one that any client of the suite may get as its own local port
    before the server binds it, and the server then fails with "address in use".
    """
    outgoing = _outgoing_ports()
    candidates = range(20000, outgoing.start) if outgoing.start > 21000 else range(0)
    for port in _PORTS.sample(candidates, min(len(candidates), 200)):
        if port in _HANDED_OUT:
            continue
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((HOST, port))
        except OSError:
            sock.close()
            continue
        # NOTE: the port stays bound here until its server listens (see start()): a server
        # binds with SO_REUSEADDR, as Uvicorn, Waitress, nginx and microweb do, and so can
        # bind beside this socket, while another program's check by a plain bind, as above,
        # fails. The project's CI shares its machine: a program that took a port between its
        # check and its server's bind answered every request there with a 403.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _RESERVED[port] = sock
        _HANDED_OUT.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def release_ports() -> None:
    """Close the sockets that hold the ports handed out whose server has not listened."""
    # NOTE: conftest.py calls it as each test ends: a test that takes a port and starts nothing
    # on it with start() (a server that must fail, one it runs itself, nginx's second port)
    # held it until its pytest-xdist worker ended, 35 sockets for three test modules.
    while _RESERVED:
        _RESERVED.popitem()[1].close()


def environment(**extra: str) -> dict[str, str]:
    """Return this process's environment with ``tests/`` and the root on ``PYTHONPATH``.

    Args:
        **extra: Variables to set on top.
    """
    env = dict(os.environ)
    paths = [str(TESTS_DIR), str(REPO_ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    env.update(extra)
    return env


# NOTE: the event loop every Uvicorn the suite starts runs on, unless its test asks for another
# (--loop uvloop, a factory): asyncio's, as on a machine without uvloop, so that the suite
# tests the same loop with uvloop installed or not (review375). conftest.py gives the uvicorn
# command UVICORN_LOOP; microweb serve, which reads no such variable, gets --loop (pinned()).
TEST_LOOP = "asyncio"


HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
# NOTE: for the few real-server tests that run under both loops (--loop LOOP): uvloop's where
# it is installed (the test extra installs it but on Windows and PyPy).
SERVER_LOOPS = [
    pytest.param("asyncio"),
    pytest.param(
        "uvloop", marks=pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed")
    ),
]


def pinned(command: Sequence[str]) -> list[str]:
    """Return ``command`` with ``--loop TEST_LOOP`` if it is a ``microweb serve`` under Uvicorn
    that names no loop of its own; any other command as it is."""
    command = list(command)
    serves = any(
        (word == "microweb" or word.endswith(f"{os.sep}microweb")) and following == "serve"
        for word, following in itertools.pairwise(command)
    )
    if not serves or any(word == "--loop" or word.startswith("--loop=") for word in command):
        return command
    if any(word in ("--help", "-h", "--version") for word in command):
        return command
    servers = [following for word, following in itertools.pairwise(command) if word == "--server"]
    if servers and servers[-1] != "uvicorn":
        return command
    return [*command, "--loop", TEST_LOOP]


def waitress_command(app: str, port: int, options: Sequence[str] = ()) -> list[str]:
    """Return the command line that serves the WSGI callable ``app()`` with Waitress.

    Args:
        app: What ``waitress-serve --call`` calls (``module:app.as_wsgi``).
        port: Where it listens on ``HOST``.
        options: More Waitress options.
    """
    target = ["--host", HOST, "--port", str(port), *options, "--call", app]
    return [sys.executable, "-m", "waitress", *target]


def uvicorn_command(factory: str, port: int) -> list[str]:
    """Return the command line that serves the ASGI callable ``factory()`` with Uvicorn.

    Args:
        factory: What ``uvicorn --factory`` calls (``module:app.as_asgi``); lifespan is on.
        port: Where it listens on ``HOST``.
    """
    return [
        *(sys.executable, "-m", "uvicorn", "--factory", factory),
        *("--host", HOST, "--port", str(port), "--lifespan", "on", "--log-level", "warning"),
    ]


def read_log(log: Path) -> str:
    """Return what has been logged to ``log`` so far."""
    return log.read_text("utf-8", "replace")


def refuses_connections(port: int) -> bool:
    """Tell whether nothing listens on ``port`` of ``HOST`` (a connection is refused)."""
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return False
    except OSError:
        return True


def wait_for(check: Callable[[], object], what: str, log: Path, timeout: float = 15.0) -> None:
    """Wait until ``check()`` is true; fail with ``log``'s text after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what}:\n{read_log(log)}"
        time.sleep(0.05)


# NOTE: /proc/net/tcp's states of a socket that sent its FIN and waits for the peer's.
_CLOSED_BY_US_ONLY = {"04", "05"}  # FIN_WAIT1, FIN_WAIT2


def _connections_the_server_keeps(port: int) -> int | None:
    """Return how many connections to ``port`` this machine's clients closed and the server
    has not, or None where there is no /proc/net/tcp."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    remote = f":{port:04X}"
    rows = (line.split() for line in table)
    return sum(1 for row in rows if row[2].endswith(remote) and row[3] in _CLOSED_BY_US_ONLY)


def wait_for_server_to_close(port: int, log: Path, timeout: float = 15.0) -> None:
    """Wait until the server on ``port`` has closed every connection its clients closed.

    A server counts a connection against its limit until it sees the end and closes its own
    side; Waitress and Uvicorn drop it from their count just before they do.
    """
    if _connections_the_server_keeps(port) is None:
        # NOTE: no socket table to read (not Linux): a pause is all there is.
        time.sleep(0.5)
        return
    wait_for(lambda: _connections_the_server_keeps(port) == 0, "close by the server", log, timeout)


# NOTE: Uvicorn sends a WebSocket handshake's denial response from 0.55 on (microweb's refusal
# of it: its 404, 400...); before, the client gets a 403 (Uvicorn 0.54 is Python 3.10's).
UVICORN_SENDS_DENIAL = tuple(int(part) for part in uvicorn.__version__.split(".")[:2]) >= (0, 55)
# NOTE: the ways `microweb serve` runs an app, as command-line options, and how many app
# processes each one starts where it starts more than one.
SERVE_MODES = {
    "uvicorn": ["--server", "uvicorn"],
    "waitress": ["--server", "waitress"],
    "workers": ["--workers", "2"],
    "reload": ["--reload"],
}
MODE_PROCESSES = {"workers": 2, "reload": 1}


def launch(
    command: Sequence[str],
    *,
    log: Path,
    cwd: Path = REPO_ROOT,
    env: Mapping[str, str] | None = None,
) -> Process:
    """Start ``command`` (``pinned()``), and return its process at once, listening or not
    (``start()`` waits until it listens).

    Args:
        command: The command line.
        log: The file its output (stdout and stderr) goes to.
        cwd: Where it runs.
        env: Its environment (``environment()`` when not given).
    """
    with log.open("wb") as output:
        return subprocess.Popen(
            pinned(command),
            cwd=cwd,
            env=environment() if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=hangup_ends_it if hasattr(signal, "SIGHUP") else None,
        )


def start(
    command: Sequence[str],
    *,
    port: int,
    log: Path,
    cwd: Path = REPO_ROOT,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = READY_TIMEOUT,
    uds: Path | None = None,
) -> Process:
    """Start ``command`` and return its process once it accepts connections on ``port``.

    Args:
        command: The server's command line.
        port: The port on ``HOST`` it listens on (ignored with ``uds``).
        log: The file its output (stdout and stderr) goes to.
        cwd: Where it runs.
        env: Its environment (``environment()`` when not given).
        ready_timeout: How long it may take to listen.
        uds: The Unix socket it listens on instead of ``port``.

    Fails the test (after stopping the process) when the process exits or is not listening in
    time; the message includes the log.
    """
    process = launch(command, log=log, cwd=cwd, env=env)
    try:
        _wait_until_listening(process, command, port, log, ready_timeout, uds)
    except BaseException:
        # NOTE: Ctrl-C while waiting comes here too; the caller never got the process to stop,
        # and it kept running, its port taken, after pytest had ended (review65).
        stop(process)
        raise
    finally:
        reserved = _RESERVED.pop(port, None) if uds is None else None
        if reserved is not None:
            reserved.close()
    return process


def _wait_until_listening(
    process: Process,
    command: Sequence[str],
    port: int,
    log: Path,
    ready_timeout: float,
    uds: Path | None = None,
) -> None:
    deadline, foreign = time.monotonic() + ready_timeout, False
    while time.monotonic() < deadline:
        if process.poll() is not None:
            # NOTE: a server that binds without SO_REUSEADDR fails beside free_port()'s socket,
            # "address in use" on a port the suite had said was free.
            held = " (if the address was in use: free_port() holds it; bind it with SO_REUSEADDR)"
            pytest.fail(
                f"{shlex.join(command)} exited with {process.returncode}"
                f"{held if uds is None and port in _RESERVED else ''} "
                f"(log: {log}):\n{read_log(log)}"
            )
        try:
            with _connected(port, uds):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        # NOTE: another program may answer on the port: this server has not bound it yet,
        # or it fails to ("address in use"), which a later turn reads from its exit.
        foreign = uds is None and _listens_in_tree(process.pid, port) is False
        if not foreign:
            return
        time.sleep(0.05)
    where = f"port {port}" if uds is None else f"unix:{uds}"
    if foreign:
        where += " (another program listens there)"
    pytest.fail(
        f"{shlex.join(command)} not listening on {where} after {ready_timeout} s "
        f"(log: {log}):\n{read_log(log)}"
    )


# NOTE: /proc/net/tcp's (and tcp6's) state of a listening socket.
_LISTEN = "0A"


def _listens_in_tree(pid: int, port: int) -> bool | None:
    """Tell whether process ``pid`` or one of its descendants holds a socket listening on
    ``port``, or None where /proc cannot tell (not Linux)."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    with contextlib.suppress(OSError):  # NOTE: no tcp6 where IPv6 is off
        table += Path("/proc/net/tcp6").read_text().splitlines()[1:]
    local = f":{port:04X}"
    rows = (line.split() for line in table)
    inodes = {row[9] for row in rows if row[1].endswith(local) and row[3] == _LISTEN}
    if not inodes:
        return False
    held = {f"socket:[{inode}]" for inode in inodes}
    for member in _tree(pid):
        try:
            fds = list(Path(f"/proc/{member}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            # NOTE: one closed since the listing (the connection just made to see the server
            # listen, which it accepts and closes): the other fds still tell; the member was
            # skipped whole, and the server was taken for another program.
            with contextlib.suppress(OSError):
                if os.readlink(fd) in held:
                    return True
    return False


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, as /proc says now."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # NOTE: the name, in parentheses, may hold spaces: the parent is after its end.
            parent = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, waiting = [], [pid]
    while waiting:
        member = waiting.pop()
        found.append(member)
        waiting.extend(children.get(member, ()))
    return found


def _connected(port: int, uds: Path | None) -> socket.socket:
    if uds is None:
        return socket.create_connection((HOST, port), timeout=0.2)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(0.2)
        sock.connect(str(uds))
    except OSError:
        sock.close()
        raise
    return sock


def hangup_ends_it() -> None:
    """Give the process SIGHUP's default action (a ``preexec_fn``): a hang-up ends it; on
    Linux, its parent's end sends it SIGTERM."""
    # NOTE: a suite started under nohup (or a runner that ignores SIGHUP) passes the ignored
    # SIGHUP on to every server, and the tests that hang up on one would wait for nothing.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if _PRCTL is not None:
        # NOTE: a run that pytest-xdist aborts (an INTERNALERROR) skips the tests' teardown:
        # a server of the notes example served on for 1 h 40 min after one, its port taken.
        # The signal comes when the thread that started it ends: the tests start servers in
        # their worker's main thread.
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


# NOTE: prctl() looked up here, in the parent: the child of a fork runs as little as it can.
_PR_SET_PDEATHSIG = 1
_PRCTL = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None


def stop(process: Process, timeout: float = STOP_TIMEOUT) -> None:
    """Stop ``process`` by its own pid: terminate it, wait, and kill it as a last resort."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@contextmanager
def running(
    command: Sequence[str],
    *,
    port: int,
    log: Path,
    env: Mapping[str, str] | None = None,
    uds: Path | None = None,
) -> Iterator[Process]:
    """Run ``command`` (see ``start``) until the block ends, then stop it."""
    process = start(command, port=port, log=log, env=env, uds=uds)
    try:
        yield process
    finally:
        stop(process)


def plain_command(server: str, app: str, port: int, options: Sequence[str] = ()) -> list[str]:
    """Return the command line that serves ``app`` (``module:app``) on ``port`` with plain
    Waitress (``app.as_wsgi``, with Waitress ``options``) or plain Uvicorn (``app.as_asgi``)."""
    if server == "waitress":
        return waitress_command(f"{app}.as_wsgi", port, options)
    return uvicorn_command(f"{app}.as_asgi", port)


@contextmanager
def serving_plainly(
    server: str, app: str, tmp_path_factory: pytest.TempPathFactory, name: str = ""
) -> Iterator[tuple[int, Path]]:
    """Serve ``app`` with plain ``server`` (see ``plain_command``) for a module's tests,
    logging to a folder named ``name`` (the server's name by default); yield its port and log."""
    command = functools.partial(plain_command, server, app)
    with serving_module(name or server, command, tmp_path_factory) as found:
        yield found


@contextmanager
def serving_module(
    name: str,
    command: Callable[[int], Sequence[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, Path]]:
    """Run ``command(port)`` for a module's tests, logging to a folder named ``name``; yield
    its port and log. A ``name`` ending in ``httptools`` skips where httptools is missing."""
    if name.endswith("httptools"):
        pytest.importorskip("httptools")
    port = free_port()
    log = tmp_path_factory.mktemp(name) / "server.log"
    with running(command(port), port=port, log=log):
        yield port, log


# NOTE: the three ways `microweb serve` runs an app: Waitress, Uvicorn with httptools, and
# Uvicorn with h11 (its protocol when httptools is missing: test_cli_options checks the pick).
SERVE_WAYS = ("waitress", "uvicorn-h11", "uvicorn-httptools")


def serve_command(way: str, app: str, port: int) -> list[str]:
    """The command line that serves ``app`` (``module:app``) on ``port`` one of ``SERVE_WAYS``."""
    if way == "uvicorn-h11":
        return [
            *(sys.executable, "-m", "uvicorn", "--factory", f"{app}.as_asgi"),
            *("--host", HOST, "--port", str(port), "--log-level", "warning"),
            *("--http", "microweb._h11:BoundedH11"),
        ]
    serve = [sys.executable, "-m", "microweb", "serve", app, "--server", way.split("-")[0]]
    return [*serve, "--port", str(port), "--log-level", "warning"]


@dataclass(frozen=True)
class ServedWay:
    """A server a module's tests share: the way it serves (one of ``SERVE_WAYS``), its port
    and its log."""

    name: str
    port: int
    log: Path


@contextmanager
def serving_way(
    way: str, app: str, tmp_path_factory: pytest.TempPathFactory, options: Sequence[str] = ()
) -> Iterator[ServedWay]:
    """Serve ``app`` (``module:app``) one of ``SERVE_WAYS``, with ``microweb serve``'s
    ``options`` after its own, for a module's tests."""

    def command(port: int) -> list[str]:
        return [*serve_command(way, app, port), *options]

    with serving_module(way, command, tmp_path_factory) as (port, log):
        yield ServedWay(way, port, log)


def module_server(app: str, ways: Sequence[str], options: Sequence[str] = ()) -> object:
    """A module-scoped ``server`` fixture that serves ``app`` (``module:app``) each of ``ways``
    in turn, with ``options`` (see ``serving_way``), one start a way for the whole module; a
    test module binds it to the name ``server`` (``server = module_server(APP, WAYS)``)."""

    @pytest.fixture(scope="module", params=ways, name="server")
    def served(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ServedWay]:
        with serving_way(str(request.param), app, tmp_path_factory, options) as way:
            yield way

    return served


def hostile_server() -> object:
    """A ``server`` fixture (see ``module_server``) that serves ``tests/hostile_app.py`` under
    Waitress, Uvicorn with httptools (``BoundedHttpTools``) and Uvicorn with h11
    (``BoundedH11``), the three ways of ``microweb serve``, for the modules that send it raw
    bytes (``server = hostile_server()``)."""
    return module_server("hostile_app:app", ("waitress", "uvicorn-httptools", "uvicorn-h11"))


def read_until_closed(sock: socket.socket) -> bytes:
    """Read ``sock`` until the server closes it (a reset ends it too)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def exchange(served: ServedWay, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` to ``served``, and read until the server closes (a reset ends it too)."""
    return exchange_in_reads(served, [data], 0.0, timeout)


def exchange_in_reads(
    served: ServedWay, reads: Sequence[bytes], pause: float, timeout: float = 5.0
) -> bytes:
    """Send ``reads`` to ``served`` one write each, ``pause`` seconds apart, and read until the
    server closes (a reset ends it too)."""
    with socket.create_connection((HOST, served.port), timeout=timeout) as sock:
        for index, data in enumerate(reads):
            if index:
                time.sleep(pause)
            sock.sendall(data)
        return read_until_closed(sock)


# NOTE: the request a hostile one is followed by on its connection (tests/hostile_app.py
# answers /url): served only where the server read the hostile one's end as it was meant.
NEXT = b"GET /url HTTP/1.1\r\nHost: next\r\nConnection: close\r\n\r\n"


def assert_refused_alone(answer: bytes) -> None:
    """The first request was answered 400 alone, the ``NEXT`` after it not served."""
    assert statuses(answer) == [b"400"], answer[-300:]
    assert b"next" not in answer


def statuses(answer: bytes) -> list[bytes]:
    """The status codes of the responses in ``answer``, in order."""
    return re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)


@contextmanager
def serving_every_way(
    app: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    """Serve ``app`` each of ``SERVE_WAYS`` at once, for a module's tests; yield their ports."""
    pytest.importorskip("httptools")
    processes, found = [], {}
    try:
        for way in SERVE_WAYS:
            port = free_port()
            log = tmp_path_factory.mktemp(way) / "server.log"
            processes.append(start(serve_command(way, app, port), port=port, log=log))
            found[way] = port
        yield found
    finally:
        for process in processes:
            stop(process)


@dataclass(frozen=True)
class Uvicorn:
    """A running Uvicorn: where it listens and where it logs."""

    port: int
    log: Path

    @property
    def http_url(self) -> str:
        """Return the HTTP URL of the server's root."""
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Return the WebSocket URL of the server's root."""
        return f"ws://{HOST}:{self.port}"

    def log_text(self) -> str:
        """Return what the server has logged so far."""
        return read_log(self.log)


@contextmanager
def run_uvicorn(factory: str, log_dir: Path, options: Sequence[str] = ()) -> Iterator[Uvicorn]:
    """Serve ``factory`` (``module:app.as_asgi``) with Uvicorn, lifespan on, until the block ends.

    Args:
        factory: What ``uvicorn --factory`` calls.
        log_dir: Where the server's output goes (``uvicorn.log``).
        options: More Uvicorn options (``["--ws", "websockets"]``).
    """
    server = Uvicorn(free_port(), log_dir / "uvicorn.log")
    command = [*uvicorn_command(factory, server.port), *options]
    with running(command, port=server.port, log=server.log):
        yield server


@contextmanager
def run_served(way: str, app: str, log_dir: Path, options: Sequence[str] = ()) -> Iterator[Uvicorn]:
    """Serve ``app`` (``module:app``) one of ``SERVE_WAYS`` (see ``serve_command``), or by
    ``microweb serve --server uvicorn`` for ``"uvicorn"``, until the block ends.

    Args:
        way: How it is served (``"waitress"``, ``"uvicorn"``, ``"uvicorn-h11"``...).
        app: What it serves (``module:app``).
        log_dir: Where the server's output goes (``serve.log``).
        options: More options for the command line (``["--loop", "asyncio"]``).

    Yields:
        A ``Uvicorn``, whichever the server, for its URLs and its log.
    """
    server = Uvicorn(free_port(), log_dir / "serve.log")
    command = [*serve_command(way, app, server.port), *options]
    with running(command, port=server.port, log=server.log):
        yield server
