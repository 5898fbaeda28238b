"""Servers, load and probes for ``interfaces.py``: everything that touches a socket or a process.

- ``Server`` says how to start one server on ``interfaces_app.py``; ``running`` starts it on a
  free port of 127.0.0.1, waits for its first answer and stops it by its pid.
- ``wrk`` runs the ``wrk`` load generator and returns its numbers, read through a Lua ``done``
  hook (requests, latency percentiles in µs, errors by kind).
- ``probe`` times one request on a fresh connection; ``hold_streams`` opens event streams and
  keeps them open; ``tree_status`` reads a process tree's RSS and threads from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
HOST = "127.0.0.1"
SERVER_CPU = "0"
CLIENT_CPU = "1"

WRK_SCRIPT = BENCH_DIR / "_interfaces_wrk.lua"


@dataclass(frozen=True)
class Server:
    """One way of serving ``interfaces_app.py``.

    ``kind`` is ``waitress`` or ``uvicorn`` (through ``microweb serve``), or ``granian-wsgi`` or
    ``granian-asgi`` (Granian's own command, on the app's factories). ``threads`` is Waitress's
    thread count, the app's pool under Uvicorn, Granian's blocking threads under WSGI.
    """

    label: str
    kind: str
    threads: int | None = None
    extra: tuple[str, ...] = ()

    @property
    def interface(self) -> str:
        """``wsgi`` or ``asgi``."""
        return "wsgi" if self.kind in ("waitress", "granian-wsgi") else "asgi"

    @property
    def native(self) -> str:
        """The handler colour this interface runs without a bridge: ``def`` or ``async``."""
        return "def" if self.interface == "wsgi" else "async"

    def command(self, port: int) -> list[str]:
        """Return the command line that serves the app on ``port``."""
        python = sys.executable
        if self.kind.startswith("granian"):
            command = [python, "-m", "granian", "--interface", self.interface, "--factory"]
            command += ["--host", HOST, "--port", str(port), "--workers", "1"]
            command += ["--log-level", "warning", f"interfaces_app:{self.interface}"]
            if self.threads is not None:
                command += ["--blocking-threads", str(self.threads)]
        else:
            command = [python, "-m", "microweb", "serve", "interfaces_app.py"]
            command += ["--server", self.kind, "--host", HOST, "--port", str(port)]
            command += ["--log-level", "warning", "--graceful-timeout", "1"]
            if self.kind == "uvicorn":
                command += ["--workers", "1"]
            if self.threads is not None:
                command += ["--threads", str(self.threads)]
        return command + list(self.extra)


@dataclass
class Running:
    """A started server: its label, pid and port."""

    server: Server
    pid: int
    port: int


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pin_client() -> bool:
    """Keep this process (and the wrk it starts) on one CPU, servers on the other; say if so."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return False
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    return True


@contextlib.contextmanager
def running(server: Server, pinned: bool, log: Path) -> Iterator[Running]:
    """Start ``server`` on a free port, wait for its first 200, stop it by pid on exit.

    Raises:
        RuntimeError: If it exits or does not answer within 20 s (with the end of its log).
    """
    port = free_port()
    command = server.command(port)
    if pinned:
        command = ["taskset", "-c", SERVER_CPU, *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(BENCH_DIR)])}
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=BENCH_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_ready(process, port, f"/hello/{server.native}", log)
        yield Running(server, process.pid, port)
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], port: int, path: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if asyncio.run(probe(port, path, timeout=1.0)) is not None:
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace").splitlines()[-15:]
    raise RuntimeError(f"server on port {port} did not answer; log:\n" + "\n".join(tail))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_wrk(
    port: int, path: str, connections: int, seconds: float, timeout: float = 5.0
) -> subprocess.Popen[str]:
    """Start wrk on ``path`` with ``connections`` keep-alive connections for ``seconds``.

    wrk takes whole seconds only: a fraction is rounded up. Read its numbers with ``wrk_result``.
    """
    duration = math.ceil(seconds)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", f"--timeout={timeout:g}s"]
    command += ["-s", str(WRK_SCRIPT), f"http://{HOST}:{port}{path}"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def wrk_result(process: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait for a wrk started by ``start_wrk``; return its numbers.

    The result has ``rps`` (answers per second), ``p50``/``p90``/``p99``/``max`` in ms (of the
    answered requests only: wrk leaves the timed-out ones out) and ``errors`` (connect, read,
    write, non-2xx ``status`` and ``timeout`` counts).
    """
    try:
        out, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    line = next((x for x in out.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        return {"rps": 0.0, "p50": None, "p90": None, "p99": None, "max": None, "errors": None}
    raw = json.loads(line.removeprefix("WRKJSON "))
    answered = raw["requests"]
    result: dict[str, Any] = {"rps": answered / (raw["duration_us"] / 1e6)}
    for key in ("p50", "p90", "p99", "max"):
        result[key] = raw[key] / 1000 if answered else None
    result["errors"] = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")}
    return result


def wrk(port: int, path: str, connections: int, seconds: float) -> dict[str, Any]:
    """Run wrk in the foreground; return ``wrk_result``'s numbers."""
    return wrk_result(start_wrk(port, path, connections, seconds))


async def probe(port: int, path: str, timeout: float) -> float | None:
    """Time one ``GET path`` on a fresh connection, in ms; ``None`` if no 200 within ``timeout``."""
    started = time.perf_counter()
    try:
        answer = await asyncio.wait_for(_get(port, path), timeout)
    except (OSError, asyncio.TimeoutError):
        return None
    if not answer.startswith(b"HTTP/1.1 200"):
        return None
    return (time.perf_counter() - started) * 1000


async def _get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        return await reader.read()
    finally:
        writer.close()


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


class Streams:
    """Event streams held open against one server: ``open`` counts those that sent an event."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.path = path
        self.writers: list[asyncio.StreamWriter] = []
        self.open = 0
        self.failed = 0

    async def add(self, count: int, wait: float, connecting: int = 200) -> None:
        """Open ``count`` more streams; wait up to ``wait`` s for their first event."""
        gate = asyncio.Semaphore(connecting)
        deadline = time.monotonic() + wait
        await asyncio.gather(*(self._one(gate, deadline) for _ in range(count)))

    async def _one(self, gate: asyncio.Semaphore, deadline: float) -> None:
        try:
            async with gate:
                connecting = asyncio.open_connection(HOST, self.port)
                reader, writer = await asyncio.wait_for(connecting, _left(deadline))
                self.writers.append(writer)
                writer.write(f"GET {self.path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            await asyncio.wait_for(reader.readuntil(b"data: open\n\n"), _left(deadline))
            self.open += 1
        except (
            OSError,
            asyncio.TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            self.failed += 1

    async def close(self) -> None:
        """Close every connection this object opened."""
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        await asyncio.sleep(0.5)


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return the new soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return int(soft)


def tree_status(pid: int) -> dict[str, int]:
    """Return the RSS (KiB) and threads of ``pid`` and its descendants (Granian forks a worker)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    total = {"rss_kib": 0, "threads": 0}
    todo = [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name == "VmRSS":
                    total["rss_kib"] += int(value.split()[0])
                elif name == "Threads":
                    total["threads"] += int(value)
    return total
