"""``sys.exit()`` on the loop that runs the async code, under real servers (review413).

A background task's exit belongs to no request: under Waitress the app loop logs it and serves
on; under Uvicorn it leaves the server's own loop, and the process ends with its status. A
handler's exit goes to the server under both: a 500, and the server serves on.
"""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from servers import HOST, free_port, read_log, running, serve_command

pytestmark = pytest.mark.servers

APP = "exit_app:app"


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("way", ["waitress", "uvicorn-h11"])
def test_a_handlers_exit_is_a_500_and_the_server_serves_on(way: str, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    with running(serve_command(way, APP, port), port=port, log=log):
        assert _get(port, "/handler")[0] == 500
        assert _get(port, "/fine") == (200, b"fine")
    assert "SystemExit: 3" in read_log(log)


def test_a_background_tasks_exit_is_logged_and_waitress_serves_on(tmp_path: Path) -> None:
    # NOTE: the app loop's thread ended: every later async request was a 500, "reached async
    # code after the app was closed".
    port, log = free_port(), tmp_path / "server.log"
    with running(serve_command("waitress", APP, port), port=port, log=log):
        assert _get(port, "/task") == (200, b"started")
        time.sleep(0.2)
        for _ in range(3):
            assert _get(port, "/fine") == (200, b"fine")
        said = read_log(log)
    assert "SystemExit raised on the event loop by a task or callback outside any" in said
    assert "SystemExit: 4" in said
    assert "after the app was closed" not in said


def test_a_background_tasks_exit_ends_uvicorn_with_its_status(tmp_path: Path) -> None:
    # NOTE: asyncio lets it out of the server's loop; what docs/sync-and-async.md says.
    port, log = free_port(), tmp_path / "server.log"
    with running(serve_command("uvicorn-h11", APP, port), port=port, log=log) as process:
        assert _get(port, "/task") == (200, b"started")
        assert process.wait(timeout=15) == 4, read_log(log)


def test_a_tasks_exit_as_the_stop_cancels_it_is_logged_as_waitress_ends(tmp_path: Path) -> None:
    # NOTE: it ended the app loop's cleanup at the server's stop, and nothing was said of it.
    port, log = free_port(), tmp_path / "server.log"
    with running(serve_command("waitress", APP, port), port=port, log=log) as process:
        assert _get(port, "/at-stop") == (200, b"waiting")
        assert _get(port, "/fine") == (200, b"fine")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    said = read_log(log)
    assert "SystemExit raised on the event loop by a task or callback outside any" in said
    assert "SystemExit: 9" in said
