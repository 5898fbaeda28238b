"""``microweb serve``: the port it announces, and workers whose main process was killed.

Each test runs a real ``microweb serve`` on 127.0.0.1 and stops it, and what it started, by pid.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from servers import HOST, REPO_ROOT, environment, free_port, read_log, stop

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

SERVES = {
    "uvicorn": ["--server", "uvicorn"],
    "waitress": ["--server", "waitress"],
    "workers": ["--workers", "2"],
    "reload": ["--reload"],
}
PROCESSES = {"workers": 2, "reload": 1}
SERVING = re.compile(r"^microweb: serving on http://127\.0\.0\.1:(\d+) ", re.MULTILINE)
STARTED = re.compile(r"Started server process \[(\d+)\]")


def _wait_for(check: Callable[[], object], what: str, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what}:\n{read_log(log)}"
        time.sleep(0.05)


@contextmanager
def _serving(log: Path, port: int, *options: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``microweb serve serving_app`` until its "serving on" line, then until the block ends."""
    command = [sys.executable, "-m", "microweb", "serve", "serving_app", "--host", HOST]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port), *options],
            cwd=REPO_ROOT,
            env=environment(**env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(lambda: SERVING.search(read_log(log)) or process.poll() is not None, "line", log)
        yield process
    finally:
        stop(process, timeout=10)


def _refused(port: int) -> bool:
    try:
        httpx.get(f"http://{HOST}:{port}/where", timeout=2)
    except httpx.ConnectError:
        return True
    return False


@pytest.mark.parametrize("mode", SERVES)
def test_port_0_announces_the_port_it_listens_on(tmp_path: Path, mode: str) -> None:
    log = tmp_path / "serve.log"
    with _serving(log, 0, *SERVES[mode]) as process:
        found = SERVING.search(read_log(log))
        assert found is not None and process.poll() is None, read_log(log)
        port = int(found.group(1))
        assert port != 0, read_log(log)
        assert httpx.get(f"http://{HOST}:{port}/where", timeout=10).status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=lambda s: s.name)
@pytest.mark.parametrize("mode", PROCESSES)
def test_workers_stop_in_order_once_the_main_process_is_killed(
    tmp_path: Path, mode: str, sig: signal.Signals
) -> None:
    # NOTE: a main process killed cannot stop its workers; left alone, they served on.
    port, log, events = free_port(), tmp_path / "serve.log", tmp_path / "events.txt"
    with _serving(log, port, *SERVES[mode], SERVING_EVENTS=str(events)) as process:
        workers = [int(pid) for pid in STARTED.findall(read_log(log))]
        assert len(workers) == PROCESSES[mode], read_log(log)
        try:
            process.send_signal(sig)
            process.wait(timeout=5)

            def stopped() -> bool:
                ended = events.read_text().split() if events.exists() else []
                return ended == ["shutdown"] * len(workers) and _refused(port)

            _wait_for(stopped, "orderly stop of the workers", log, timeout=10)
        finally:
            for pid in workers:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert process.returncode == -sig, read_log(log)
    assert "Traceback" not in read_log(log)
