"""200 slow requests at once through real servers: the concurrency each colour gets.

Each request sleeps half a second in its handler. Under Uvicorn the handler is ``async def``
(``await asyncio.sleep``): the 200 sleeps overlap on one event loop, so all of them are answered
in about 0.5 s. Under Waitress the handler is ``def`` (``time.sleep``) and runs in one of the
server's 4 threads: 200 x 0.5 s / 4 = 25 s. Both numbers are issue 7's; the script prints each
server's wall time for the 200 answers, and FAIL when they took more than 20 % over it (or any
answer was wrong). Servers run on free ports of 127.0.0.1 and are stopped by their pids.

Usage::

    python bench/slow_requests.py                 # both servers, about 30 s
    python bench/slow_requests.py --servers uvicorn
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bench_apps

HERE = Path(__file__).resolve().parent
REQUESTS = 200
WAITRESS_THREADS = 4
# (server, expected seconds): every sleep overlaps under Uvicorn; 4 at a time under Waitress.
EXPECTED = {
    "uvicorn": bench_apps.SLOW_SECONDS,
    "waitress": REQUESTS * bench_apps.SLOW_SECONDS / WAITRESS_THREADS,
}
TOLERANCE = 1.2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--factory", "bench_apps:slow_asgi",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                "--no-access-log"]  # fmt: skip
    return [sys.executable, "-m", "waitress", "--host=127.0.0.1", f"--port={port}",
            f"--threads={WAITRESS_THREADS}", "--call", "bench_apps:slow_wsgi"]  # fmt: skip


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited before it was ready")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start listening within 15 s")


def _get(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", "/slow")
        response = connection.getresponse()
        return response.status == 200 and response.read() == b"slept"
    finally:
        connection.close()


def run(server: str) -> tuple[float, int]:
    """Serve the slow app with ``server``; return the wall time of 200 requests and the
    number of right answers."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]))
    process = subprocess.Popen(
        _command(server, port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_ready(port, process)
        with ThreadPoolExecutor(REQUESTS) as pool:
            started = time.perf_counter()
            answers = list(pool.map(lambda _: _get(port), range(REQUESTS)))
            elapsed = time.perf_counter() - started
        return elapsed, sum(answers)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    """Run the servers in turn and print each one's verdict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--servers", nargs="+", choices=list(EXPECTED), default=list(EXPECTED))
    args = parser.parse_args(argv)
    failed = False
    for server in args.servers:
        elapsed, right = run(server)
        expected = EXPECTED[server]
        ok = right == REQUESTS and elapsed <= expected * TOLERANCE
        failed = failed or not ok
        handler = "async def" if server == "uvicorn" else f"def, {WAITRESS_THREADS} threads"
        print(
            f"{'PASS' if ok else 'FAIL'}  {server} ({handler}): {REQUESTS} requests of "
            f"{bench_apps.SLOW_SECONDS} s in {elapsed:.2f} s (expected {expected:.1f} s), "
            f"{right} right answers"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
