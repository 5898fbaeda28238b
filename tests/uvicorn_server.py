"""Run an app under a real Uvicorn subprocess for the WebSocket server tests.

Started with Uvicorn's own command line from the repository root, with ``tests/`` and the root on
``PYTHONPATH``; ready once its port accepts a connection; stopped by its pid.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
HOST = "127.0.0.1"
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


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
        return self.log.read_text("utf-8", "replace")


def free_port() -> int:
    """Return a TCP port that is free on ``HOST`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(TESTS_DIR), str(REPO_ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return env


def _wait_until_listening(process: subprocess.Popen[bytes], server: Uvicorn) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}:\n{server.log_text()}")
        try:
            with socket.create_connection((HOST, server.port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"uvicorn not listening after {READY_TIMEOUT} s:\n{server.log_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


@contextmanager
def run_uvicorn(factory: str, log_dir: Path) -> Iterator[Uvicorn]:
    """Serve ``factory`` (``module:app.as_asgi``) with Uvicorn, lifespan on, until the block ends.

    Args:
        factory: What ``uvicorn --factory`` calls.
        log_dir: Where the server's output goes (``uvicorn.log``).
    """
    server = Uvicorn(free_port(), log_dir / "uvicorn.log")
    command = [
        *(sys.executable, "-m", "uvicorn", "--factory", factory),
        *("--host", HOST, "--port", str(server.port), "--lifespan", "on"),
        *("--log-level", "warning"),
    ]
    with server.log.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=_environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_listening(process, server)
            yield server
        finally:
            _stop(process)
