"""``microweb serve`` stops in order on SIGTERM and SIGINT, under Waitress and Uvicorn.

Each test starts a real server process on ``tests/serving_app.py``, sends it a signal while a
request is in flight, and checks what the process did: the request finished (or the grace
period ran out), the shutdown hooks ran afterwards, and the process ended in time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
from servers import (
    HAS_UVLOOP,
    HOST,
    REPO_ROOT,
    Process,
    environment,
    free_port,
    launch,
    pinned,
    read_log,
    refuses_connections,
    start,
    stop,
    wait_for,
)
from waitress import wasyncore
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from microweb import App
from microweb._waitress import OrderlyWaitress, serve_waitress

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

SERVERS = ["waitress", "uvicorn"]
# NOTE: Uvicorn on uvloop too, for a few of the tests (every other one runs on asyncio's loop:
# servers.TEST_LOOP).
ON_UVLOOP = pytest.param(
    "uvicorn-uvloop", marks=pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed")
)
SIGNALS = [signal.SIGTERM, signal.SIGINT]
SLOW_BODY_SIZE = 300_000


class Served:
    """A ``microweb serve serving_app`` process, its events file and its log."""

    def __init__(
        self,
        tmp_path: Path,
        server: str,
        *options: str,
        env: dict[str, str] | None = None,
        target: str = "serving_app",
    ) -> None:
        if server == "uvicorn-uvloop":
            server, options = "uvicorn", (*options, "--loop", "uvloop")
        self.port = free_port()
        self.events = tmp_path / "events.txt"
        self.log = tmp_path / "serve.log"
        command = [
            *(sys.executable, "-m", "microweb", "serve", target, "--server", server),
            *("--port", str(self.port), *options),
        ]
        variables = environment(SERVING_EVENTS=str(self.events), **(env or {}))
        # NOTE: a target in tmp_path runs there, and --reload watches that folder, not tests/.
        cwd = tmp_path if target != "serving_app" else REPO_ROOT
        self.process: Process = start(command, port=self.port, log=self.log, env=variables, cwd=cwd)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def recorded(self) -> list[str]:
        return self.events.read_text().split() if self.events.exists() else []

    def wait_for_event(self, event: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while event not in self.recorded():
            if time.monotonic() >= deadline:
                # NOTE: stopped first: left running, its Popen's ResourceWarning failed
                # whichever later test ran when it was collected.
                stop(self.process)
                pytest.fail(f"no {event!r}: {read_log(self.log)}")
            time.sleep(0.02)

    def ended_within(self, timeout: float) -> float:
        """Wait for the process to end; return how long that took."""
        began = time.monotonic()
        try:
            self.process.wait(timeout=timeout)
        except Exception:
            stop(self.process)
            pytest.fail(f"still running {timeout} s after the signal:\n{read_log(self.log)}")
        return time.monotonic() - began


def _get_in_background(url: str) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["response"] = httpx.get(url, timeout=15)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _signalled_twice(
    served: Served,
    second: signal.Signals,
    path: str = "/slow?seconds=30",
    began: str = "started",
    pause: float = 0.5,
) -> threading.Thread:
    """Start a GET of ``served``'s ``path`` in the background and, once it says ``began``, send
    SIGTERM, then ``second`` ``pause`` seconds later; return the GET's thread."""
    thread, _ = _get_in_background(f"{served.url}{path}")
    served.wait_for_event(began, timeout=15)
    served.process.send_signal(signal.SIGTERM)
    time.sleep(pause)
    served.process.send_signal(second)
    return thread


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("server", [*SERVERS, ON_UVLOOP])
def test_signal_lets_the_request_in_flight_finish_then_runs_the_hooks(
    tmp_path: Path, server: str, sig: signal.Signals
) -> None:
    served = Served(tmp_path, server, "--graceful-timeout", "5")
    thread, outcome = _get_in_background(f"{served.url}/slow?seconds=1")
    served.wait_for_event("started")
    served.process.send_signal(sig)
    # NOTE: the listener closes while the request in flight (1 s) still runs: a state to wait
    # for, not a time, so a loaded machine that is slow to deliver the signal does not fail it.
    while not refuses_connections(served.port):
        assert "finished" not in served.recorded(), "accepted connections until the request ended"
        time.sleep(0.02)
    took = served.ended_within(timeout=5)
    thread.join(timeout=5)
    response = outcome.get("response")
    assert isinstance(response, httpx.Response), outcome
    assert response.status_code == 200
    assert len(response.content) == SLOW_BODY_SIZE
    # SPEC: RFC 9112 9.6, a server that will close the connection after its answer SHOULD say
    # so. NOTE: Waitress kept quiet and closed it once the answer was sent: a client that sent
    # its next request on it met a closed connection (review350).
    assert response.headers.get("connection") == "close", response.headers
    # NOTE: the hook ran once, after the handler finished; the process ended by the signal.
    assert served.recorded() == ["started", "finished", "shutdown"], read_log(served.log)
    assert served.process.returncode == -sig
    assert took < 3.5


@pytest.mark.parametrize("server", SERVERS)
def test_an_http_1_0_keep_alive_answer_during_the_stop_says_close_only(
    tmp_path: Path, server: str
) -> None:
    # NOTE: Waitress said "Connection: Keep-Alive" to an HTTP/1.0 client that asked for it,
    # next to the stop's "Connection: close", and closed: two answers in one head.
    served = Served(tmp_path, server, "--graceful-timeout", "5")
    with socket.create_connection((HOST, served.port), timeout=10) as client:
        client.sendall(b"GET /slow?seconds=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        served.wait_for_event("started")
        served.process.send_signal(signal.SIGTERM)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    head = received.partition(b"\r\n\r\n")[0].decode("latin-1").lower().split("\r\n")
    connection = [line.partition(":")[2].strip() for line in head if line.startswith("connection:")]
    assert head[0].startswith("http/1.1 200"), head
    assert connection in ([], ["close"]), head
    assert served.ended_within(timeout=5) < 3.5


@pytest.mark.parametrize("server", SERVERS)
def test_a_request_slower_than_the_grace_period_does_not_hold_the_process(
    tmp_path: Path, server: str
) -> None:
    served = Served(tmp_path, server, "--graceful-timeout", "1")
    thread, outcome = _get_in_background(f"{served.url}/slow?seconds=30")
    served.wait_for_event("started")
    signalled = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    served.ended_within(timeout=6)
    took = time.monotonic() - signalled
    thread.join(timeout=5)
    # NOTE: cut off: Waitress closes its connection, Uvicorn answers 500 if it can.
    response = outcome.get("response")
    assert "error" in outcome or (
        isinstance(response, httpx.Response) and response.status_code == 500
    )
    assert served.recorded() == ["started", "shutdown"], read_log(served.log)
    assert 0.9 < took < 4.0


@pytest.mark.parametrize("colour", ["sync", "async"])
@pytest.mark.parametrize("server", SERVERS)
def test_after_response_callbacks_running_at_the_signal_finish_before_the_hooks(
    tmp_path: Path, server: str, colour: str
) -> None:
    # NOTE: Waitress's drain counted connections; the client had its whole answer and closed
    # its connection, so the callback still running in the task thread was cut off (after a
    # second), while Uvicorn waited for it as for any request in flight.
    served = Served(tmp_path, server, "--graceful-timeout", "8")
    response = httpx.get(f"{served.url}/after?seconds=2&colour={colour}", timeout=5)
    assert (response.status_code, response.text) == (200, "answered")
    served.wait_for_event("after-started")
    served.process.send_signal(signal.SIGTERM)
    served.ended_within(timeout=8)
    assert served.recorded() == ["after-started", "after-finished", "shutdown"], read_log(
        served.log
    )


@pytest.mark.parametrize("server", SERVERS)
def test_an_idle_server_stops_at_once(tmp_path: Path, server: str) -> None:
    served = Served(tmp_path, server, "--graceful-timeout", "10")
    with httpx.Client() as client:  # NOTE: leaves a kept-alive connection open.
        assert client.get(f"{served.url}/where").status_code == 200
        served.process.send_signal(signal.SIGTERM)
        assert served.ended_within(timeout=5) < 2.5
    assert served.recorded() == ["shutdown"]


@pytest.mark.parametrize("server", SERVERS)
def test_sigterm_exits_the_lifespan_after_the_shutdown_hooks(tmp_path: Path, server: str) -> None:
    served = Served(tmp_path, server, env={"SERVING_LIFESPAN": "1"})
    assert httpx.get(f"{served.url}/where", timeout=5).status_code == 200
    served.process.send_signal(signal.SIGTERM)
    served.ended_within(timeout=5)
    assert served.recorded() == ["lifespan-entered", "shutdown", "lifespan-exited"], read_log(
        served.log
    )


@pytest.mark.parametrize("server", SERVERS)
def test_a_shutdown_hooks_sys_exit_ends_the_process_with_it(tmp_path: Path, server: str) -> None:
    # NOTE: under Uvicorn, which takes every error of the lifespan call, the process ended by
    # the signal (143) with no word of the exit; under Waitress, close() raised it: status 1.
    served = Served(tmp_path, server, env={"SERVING_EXIT_AT_SHUTDOWN": "1"})
    assert httpx.get(f"{served.url}/where", timeout=5).status_code == 200
    served.process.send_signal(signal.SIGTERM)
    served.ended_within(timeout=5)
    log = read_log(served.log)
    assert served.process.returncode == 1, log
    assert log.rstrip().endswith("flush failed: the disk is full"), log
    assert served.recorded() == ["shutdown"], log  # NOTE: the other hook ran too.
    assert "appears unsupported" not in log, log


@pytest.mark.parametrize("server", ["uvicorn", ON_UVLOOP])
def test_sigterm_closes_open_websockets_with_1012_before_the_hooks(
    tmp_path: Path, server: str
) -> None:
    served = Served(tmp_path, server, "--graceful-timeout", "5", env={"SERVING_WEBSOCKET": "1"})
    url = f"ws://{HOST}:{served.port}/ws"
    with connect(url, proxy=None, open_timeout=5) as first, connect(url, proxy=None) as second:
        for ws in (first, second):
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
        served.process.send_signal(signal.SIGTERM)
        # NOTE: Uvicorn tells each client 1012 (service restart), and each handler's receive
        # the same, so the handlers end at once and the grace period is not waited out.
        for ws in (first, second):
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert served.ended_within(timeout=5) < 2.5
    assert served.recorded() == [
        "ws-open",
        "ws-open",
        "ws-closed-1012",
        "ws-closed-1012",
        "shutdown",
    ], read_log(served.log)
    assert "Traceback" not in read_log(served.log)


def test_waitress_cancels_a_startup_hooks_background_task_after_the_hooks(tmp_path: Path) -> None:
    # NOTE: WSGI only: the app loop's stop cancels it. Uvicorn ends the process by SIGTERM from
    # inside its loop, after the shutdown hooks, so no task there gets its cancellation.
    served = Served(tmp_path, "waitress", env={"SERVING_TICKER": "1"})
    assert httpx.get(f"{served.url}/where").status_code == 200
    served.process.send_signal(signal.SIGTERM)
    assert served.ended_within(timeout=5) < 3.5
    assert served.recorded() == ["shutdown", "ticker-cancelled"], read_log(served.log)
    assert "destroyed but it is pending" not in read_log(served.log)


@pytest.mark.parametrize("server", SERVERS)
def test_a_shutdown_hooks_own_cancellation_fails_that_step_only(
    tmp_path: Path, server: str
) -> None:
    # NOTE: under Waitress, every call on the app loop after its stop's cut was taken for the
    # cut: the hook's CancelledError became LoopStopped, which ended the shutdown there (the
    # lifespan never exited) with a traceback and exit status 1.
    if server == "uvicorn" and sys.version_info < (3, 11):
        pytest.skip("Python 3.10 counts no task's cancellations: taken for a cut (lifespan.md)")
    variables = {"SERVING_TICKER": "awaited", "SERVING_LIFESPAN": "1"}
    served = Served(tmp_path, server, env=variables)
    assert httpx.get(f"{served.url}/where").status_code == 200
    served.process.send_signal(signal.SIGTERM)
    served.ended_within(timeout=5)
    log = read_log(served.log)
    expected = ["lifespan-entered", "shutdown", "ticker-cancelled", "lifespan-exited"]
    assert served.recorded() == expected, log
    assert "shutdown step stop_ticker failed" in log, log
    assert "LoopStopped" not in log, log


@pytest.mark.parametrize(
    ("second", "grace"), [(signal.SIGTERM, "20"), (signal.SIGINT, "20"), (signal.SIGINT, "inf")]
)
@pytest.mark.parametrize("server", SERVERS)
def test_a_second_signal_ends_the_wait_and_the_hooks_still_run(
    tmp_path: Path, server: str, second: signal.Signals, grace: str
) -> None:
    # NOTE: under Uvicorn a second SIGTERM did nothing (the process waited out the grace
    # period) and a second SIGINT quit without the shutdown hooks; Waitress cut the wait short
    # and ran them (review350).
    served = Served(tmp_path, server, "--graceful-timeout", grace)
    thread = _signalled_twice(served, second)
    # NOTE: well short of the grace period (20 s, or none): the margin is for a loaded machine.
    assert served.ended_within(timeout=15) < 10
    thread.join(timeout=5)
    assert served.recorded() == ["started", "shutdown"], read_log(served.log)
    assert served.process.returncode == -signal.SIGTERM, read_log(served.log)
    assert "Traceback" not in read_log(served.log)
    # NOTE: Uvicorn said "timeout graceful shutdown exceeded" of the requests it cancelled.
    assert "exceeded" not in read_log(served.log)
    if server == "uvicorn":
        assert "running task(s): a second signal ended the wait" in read_log(served.log)
        # NOTE: Uvicorn's "(CTRL+C to force quit)": it ends the wait, and the hooks still run.
        assert "close. (a second signal ends the wait)" in read_log(served.log)


@pytest.mark.parametrize(
    "options", [["waitress"], ["uvicorn"], ["uvicorn", "--reload"]], ids=" ".join
)
def test_a_third_signal_ends_the_hooks_a_second_one_let_run(
    tmp_path: Path, options: list[str]
) -> None:
    # NOTE: the second ends the wait for the requests, and the hooks run; the third cuts a
    # hook that hangs short, by that signal (under --reload too: review387).
    served = Served(
        tmp_path, *options, "--graceful-timeout", "20", env={"SERVING_HANG_SHUTDOWN": "sync"}
    )
    thread = _signalled_twice(served, signal.SIGTERM)
    served.wait_for_event("hanging")
    if "--reload" in options:
        # NOTE: its hooks began: the reloader, which kills a process that has not begun them
        # HURRY_MARGIN (2 s) after the second signal, leaves them running, as a lone process
        # does (review399). Nothing says that it did not kill: the wait is for what would have.
        time.sleep(3)
        assert served.process.poll() is None, read_log(served.log)
    served.process.send_signal(signal.SIGINT)
    assert served.ended_within(timeout=10) < 8  # NOTE: the hook hangs for ever.
    thread.join(timeout=5)
    assert served.process.returncode == -signal.SIGINT, read_log(served.log)
    assert served.recorded() == ["started", "shutdown", "hanging"], read_log(served.log)
    assert "Traceback" not in read_log(served.log)
    assert "killing it" not in read_log(served.log)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_under_reload_a_second_signal_ends_the_wait_and_the_hooks_still_run(
    tmp_path: Path, second: signal.Signals
) -> None:
    # NOTE: the reloader killed the app's process on a second signal, its shutdown hooks unrun,
    # where a single process and each worker of --workers run them (review387).
    served = Served(tmp_path, "uvicorn", "--reload", "--graceful-timeout", "20")
    thread = _signalled_twice(served, second)
    assert served.ended_within(timeout=15) < 10
    thread.join(timeout=5)
    assert served.recorded() == ["started", "shutdown"], read_log(served.log)
    assert served.process.returncode == -second, read_log(served.log)
    assert "Traceback" not in read_log(served.log)
    assert "running task(s): a second signal ended the wait" in read_log(served.log)


def test_under_reload_a_process_that_has_not_begun_its_hooks_after_a_second_signal_is_killed(
    tmp_path: Path,
) -> None:
    # NOTE: an async def handler that blocks the event loop: the app's process never acts on
    # the second signal passed on to it, and held the reloader for ever unless a third came,
    # where --workers kills such a worker (review399).
    served = Served(tmp_path, "uvicorn", "--reload", "--graceful-timeout", "60")
    thread = _signalled_twice(served, signal.SIGTERM, "/ablock?seconds=600", "blocking")
    # NOTE: killed HURRY_MARGIN (2 s) after the second signal: the margin is for a loaded machine.
    assert served.ended_within(timeout=30) < 20
    thread.join(timeout=20)
    log = read_log(served.log)
    assert served.process.returncode == -signal.SIGTERM, log
    assert "the app's process [" in log and "has not begun its shutdown hooks " in log, log
    assert "after the second signal; killing it" in log, log
    assert served.recorded() == ["blocking"], log
    assert "Traceback" not in log, log


# NOTE: the app --reload serves in the reload tests: serving_app's, from a module of its own in
# tmp_path (a change to it reloads, and only this test's server), which says each import.
RELOADED_SHIM = "from serving_app import app, record\n\nrecord('imported')\n# {version}\n"


def _reloaded_shim(tmp_path: Path) -> Path:
    """Write the first version of ``RELOADED_SHIM`` to reloaded_shim.py in ``tmp_path``; return
    its path."""
    source = tmp_path / "reloaded_shim.py"
    source.write_text(RELOADED_SHIM.format(version="one"))
    return source


def _served_reloaded_shim(tmp_path: Path) -> tuple[Path, Served]:
    """Serve ``_reloaded_shim(tmp_path)`` under Uvicorn with --reload and a 60 s grace period;
    return its path and the server."""
    source = _reloaded_shim(tmp_path)
    options = ("--reload", "--graceful-timeout", "60")
    return source, Served(tmp_path, "uvicorn", *options, target="reloaded_shim:app")


def _change_shim(source: Path, version: str, ahead: float = 2) -> None:
    """Write ``version`` of ``RELOADED_SHIM`` to ``source``, its mtime ``ahead`` seconds from now
    (a later mtime, even on a coarse clock)."""
    source.write_text(RELOADED_SHIM.format(version=version))
    later = time.time() + ahead
    os.utime(source, (later, later))


@pytest.mark.parametrize("signals", [1, 2])
def test_under_reload_a_signal_during_a_reload_stops_the_old_process_and_starts_none(
    tmp_path: Path, signals: int
) -> None:
    # NOTE: a signal as the old process stopped for a reload started a new one, only to stop
    # it (review399). The old process waits for its request as on the reload's SIGTERM (its
    # first signal); a second signal ends that wait, and the hooks still run.
    source, served = _served_reloaded_shim(tmp_path)
    seconds = 8 if signals == 1 else 60
    thread, _ = _get_in_background(f"{served.url}/slow?seconds={seconds}")
    served.wait_for_event("started", timeout=15)
    # NOTE: Uvicorn's reloader notes the files' times a moment after it starts the app; a
    # change made before that goes unseen (test_cli_processes).
    time.sleep(1)
    _change_shim(source, "two")
    wait_for(lambda: "Reloading..." in read_log(served.log), "the reload", served.log)
    served.process.send_signal(signal.SIGTERM)
    if signals == 2:
        time.sleep(0.5)
        served.process.send_signal(signal.SIGTERM)
    took = served.ended_within(timeout=30)
    thread.join(timeout=20)
    log = read_log(served.log)
    assert served.process.returncode == -signal.SIGTERM, log
    # NOTE: imported by the main process (microweb serve checks the target) and its one child.
    assert served.recorded().count("imported") == 2, log
    events = [event for event in served.recorded() if event != "imported"]
    if signals == 1:
        assert events == ["started", "finished", "shutdown"], log
    else:
        assert took < 15, log
        assert events == ["started", "shutdown"], log
        assert "running task(s): a second signal ended the wait" in log, log
    assert log.count("Started server process") == 1, log
    assert "Traceback" not in log, log


def test_under_reload_a_new_process_that_has_not_begun_its_hooks_is_killed_after_a_reload(
    tmp_path: Path,
) -> None:
    # NOTE: the old process ran its shutdown hooks at the reload, and said so in the memory the
    # reloader's processes share: without its reset, the new one, its loop held, was taken for
    # one whose hooks had begun and held the reloader after a second signal (review404).
    source, served = _served_reloaded_shim(tmp_path)
    # NOTE: Uvicorn's reloader notes the files' times a moment after it starts the app.
    time.sleep(1)
    _change_shim(source, "two")
    wait_for(lambda: read_log(served.log).count("serving on") == 2, "the new process", served.log)
    assert served.recorded().count("shutdown") == 1, read_log(served.log)
    thread = _signalled_twice(served, signal.SIGTERM, "/ablock?seconds=600", "blocking")
    assert served.ended_within(timeout=30) < 20
    thread.join(timeout=20)
    log = read_log(served.log)
    assert served.process.returncode == -signal.SIGTERM, log
    assert "after the second signal; killing it" in log, log
    assert served.recorded().count("shutdown") == 1, log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("hang", [True, False], ids=["hooks hang", "hooks end"])
def test_under_reload_a_process_whose_hooks_begin_late_after_a_second_signal_is_not_killed(
    tmp_path: Path, hang: bool
) -> None:
    # NOTE: its loop held by an async def handler for a second after the second signal, the
    # app's process begins its hooks then, inside the reloader's margin (HURRY_MARGIN, 2 s):
    # the reloader's wait wakes at the margin's end, sees them begun, and kills nothing; hooks
    # that hang are cut short by a third signal only (review404).
    env = {"SERVING_HANG_SHUTDOWN": "sync"} if hang else {}
    served = Served(tmp_path, "uvicorn", "--reload", "--graceful-timeout", "60", env=env)
    thread = _signalled_twice(served, signal.SIGTERM, "/ablock?seconds=1.2", "blocking", 0.2)
    if hang:
        served.wait_for_event("hanging", timeout=10)
        # NOTE: nothing says that the reloader did not kill: the wait is for what would have.
        time.sleep(3)
        assert served.process.poll() is None, read_log(served.log)
        served.process.send_signal(signal.SIGINT)
    assert served.ended_within(timeout=20) < 15
    thread.join(timeout=20)
    log = read_log(served.log)
    assert served.process.returncode == -(signal.SIGINT if hang else signal.SIGTERM), log
    hooks = ["shutdown", "hanging"] if hang else ["shutdown"]
    assert served.recorded() == ["blocking", *hooks], log
    assert "killing it" not in log, log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("changes", [1, 2])
def test_under_reload_a_change_during_a_startup_hook_that_hangs_restarts_the_app(
    tmp_path: Path, changes: int
) -> None:
    # NOTE: the reload's SIGTERM ends a process whose startup hook hangs (it has nothing to shut
    # down), a new one starts, and a stop signal then ends that one; two changes in a row
    # start one process or two, never two at once (review404).
    source = _reloaded_shim(tmp_path)
    events, log = tmp_path / "events.txt", tmp_path / "serve.log"
    command = [sys.executable, "-m", "microweb", "serve", "reloaded_shim:app"]
    command += ["--server", "uvicorn", "--reload", "--port", str(free_port())]
    variables = environment(SERVING_EVENTS=str(events), SERVING_HANG_STARTUP="sync")

    def recorded() -> list[str]:
        return events.read_text().split() if events.exists() else []

    process = launch(command, log=log, cwd=tmp_path, env=variables)
    try:
        wait_for(lambda: "startup-hanging" in recorded(), "hook", log)
        # NOTE: Uvicorn's reloader notes the files' times a moment after it starts the app.
        time.sleep(1)
        for change in range(changes):
            _change_shim(source, f"v{change}", ahead=2 + change)
        wait_for(lambda: recorded().count("startup-hanging") >= 2, "the new process", log)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    finally:
        stop(process)
    text = read_log(log)
    assert process.returncode == -signal.SIGTERM, text
    assert set(recorded()) == {"imported", "startup-hanging"}, text
    assert "Traceback" not in text, text
    started = text.count("Started server process")
    assert started == recorded().count("startup-hanging") and 2 <= started <= 1 + changes, text


@pytest.mark.parametrize("mixed", [False, True], ids=["SIGTERM", "SIGTERM and SIGINT"])
def test_under_reload_a_storm_of_signals_ends_every_process_quietly(
    tmp_path: Path, mixed: bool
) -> None:
    # NOTE: ten signals in half a second: the reloader kills its child from the third on, each one
    # wakes its wait, and it ends by the last signal it got, its child gone (review404).
    served = Served(tmp_path, "uvicorn", "--reload", "--graceful-timeout", "60")
    thread, _ = _get_in_background(f"{served.url}/slow?seconds=60")
    served.wait_for_event("started", timeout=15)
    sent = [signal.SIGINT if mixed and index % 2 else signal.SIGTERM for index in range(10)]
    for sig in sent:
        served.process.send_signal(sig)
        # NOTE: two of one kind pending are one: a pause lets each come on its own.
        time.sleep(0.05)
    assert served.ended_within(timeout=20) < 15
    thread.join(timeout=20)
    log = read_log(served.log)
    assert served.process.returncode in {-sig for sig in sent}, log
    assert "Traceback" not in log, log
    assert "finished" not in served.recorded(), log
    # NOTE: the child, which holds the listening socket too, has gone with the reloader.
    wait_for(lambda: refuses_connections(served.port), "the child's end", served.log)


@pytest.mark.parametrize("colour", ["sync", "async"])
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("server", SERVERS)
def test_a_second_signal_ends_a_shutdown_hook_that_hangs(
    tmp_path: Path, server: str, sig: signal.Signals, colour: str
) -> None:
    served = Served(tmp_path, server, env={"SERVING_HANG_SHUTDOWN": colour})
    served.process.send_signal(signal.SIGTERM)
    served.wait_for_event("hanging")
    served.process.send_signal(sig)
    # NOTE: ended by the second signal, as an unhandled one would end it (143 or 130).
    assert served.ended_within(timeout=3) < 2
    assert served.process.returncode == -sig, read_log(served.log)
    assert served.recorded() == ["shutdown", "hanging"]
    assert "Traceback" not in read_log(served.log)


@pytest.mark.parametrize("colour", ["sync", "async"])
@pytest.mark.parametrize(
    "options",
    [["waitress"], ["uvicorn"], ["uvicorn", "--workers", "2"], ["uvicorn", "--reload"]],
    ids=" ".join,
)
def test_a_signal_ends_a_startup_hook_that_hangs(
    tmp_path: Path, options: list[str], colour: str
) -> None:
    # NOTE: Uvicorn waits for the startup hooks whatever signal comes: one that hung held a
    # single process until SIGKILL, and a worker until a second signal. Waitress runs them
    # before it handles signals, so SIGTERM's default ends it.
    events, log = tmp_path / "events.txt", tmp_path / "serve.log"
    workers = 2 if "--workers" in options else 1
    command = [sys.executable, "-m", "microweb", "serve", "serving_app", "--server", *options]
    variables = environment(SERVING_EVENTS=str(events), SERVING_HANG_STARTUP=colour)
    process = launch([*command, "--port", str(free_port())], log=log, env=variables)
    try:
        hanging = ["startup-hanging"] * workers
        wait_for(lambda: events.exists() and events.read_text().split() == hanging, "hook", log)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=3)
    finally:
        stop(process)
    # NOTE: no shutdown hook after a startup that did not end, as when one fails.
    assert process.returncode == -signal.SIGTERM, read_log(log)
    assert events.read_text().split() == hanging


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("ignored", [False, True], ids=["", "background-job"])
@pytest.mark.parametrize("stage", ["import", "startup"])
@pytest.mark.parametrize("server", SERVERS)
def test_sigint_before_serving_ends_the_process_by_sigint(
    tmp_path: Path, server: str, stage: str, ignored: bool
) -> None:
    # NOTE: a SIGINT that came before the server handled it (the target's import; Waitress's
    # startup hooks, which run before its handlers) ended the process with status 0, which
    # systemd and scripts take for a clean stop.
    started = tmp_path / "started"
    (tmp_path / "slow_target.py").write_text(
        "import pathlib, time\n"
        "from microweb import App\n"
        "app = App()\n"
        f"if {stage == 'import'}:\n"
        f"    pathlib.Path({str(started)!r}).touch()\n"
        "    time.sleep(30)\n"
        "@app.on_startup\n"
        "def hang():\n"
        f"    pathlib.Path({str(started)!r}).touch()\n"
        "    time.sleep(30)\n"
    )
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "microweb", "serve", "slow_target", "--server", server]
    with log.open("wb") as output:
        process = subprocess.Popen(
            pinned([*command, "--port", str(free_port())]),
            cwd=tmp_path,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            # NOTE: as a shell starts a background job (cmd &, without job control): with
            # SIGINT ignored, the import and Waitress's startup hooks ran on, then it served.
            preexec_fn=_ignore_sigint if ignored else None,
        )
    try:
        wait_for(started.exists, stage, log)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=3)
    finally:
        stop(process)
    assert process.returncode == -signal.SIGINT, read_log(log)
    assert "Traceback" not in read_log(log)


@pytest.mark.parametrize(
    "path", ["/ticks", "/aticks", "/arush"], ids=["def", "async", "async-ahead"]
)
@pytest.mark.parametrize("server", SERVERS)
def test_an_endless_stream_cut_off_is_closed_before_the_hooks(
    tmp_path: Path, server: str, path: str
) -> None:
    served = Served(tmp_path, server, "--graceful-timeout", "0.5")
    _sigterm_during_stream(served, path)
    assert served.ended_within(timeout=5) < 3
    # NOTE: the generator's cleanup ran, and before the shutdown hooks, under both servers.
    assert served.recorded() == ["stream-closed", "shutdown"], read_log(served.log)


@pytest.mark.parametrize("server", SERVERS)
def test_a_quiet_async_stream_cut_off_is_closed_before_the_hooks(
    tmp_path: Path, server: str
) -> None:
    # NOTE: under Waitress, a stream waiting on the app loop with nothing to send was released
    # only when the app loop stopped, after the shutdown hooks: its finally ran against closed
    # resources, and its server thread logged "error while streaming".
    served = Served(tmp_path, server, "--graceful-timeout", "0.5")
    _sigterm_during_stream(served, "/quiet", first="data: ready")
    assert served.ended_within(timeout=5) < 3
    log = read_log(served.log)
    assert served.recorded() == ["stream-closed", "shutdown"], log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("server", SERVERS)
def test_an_async_handler_cut_off_mid_await_ends_before_the_hooks(
    tmp_path: Path, server: str
) -> None:
    served = Served(tmp_path, server, "--graceful-timeout", "0.5")
    _sigterm_once(served, "/awaits", "started")
    assert served.ended_within(timeout=5) < 3
    log = read_log(served.log)
    assert served.recorded() == ["started", "handler-closed", "shutdown"], log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("server", SERVERS)
def test_the_hooks_start_once_a_cut_requests_slow_flow_cleanup_has_ended(
    tmp_path: Path, server: str
) -> None:
    # NOTE: past Waitress's wait for its threads (one second), the flow's cleanup ran on the
    # app loop beside the shutdown hooks, and the app loop's stop cut it off (review364).
    # Uvicorn's wait was one second, Waitress's up to CLEANUP_WAIT (2 s): one app, two graces;
    # both servers give the same now (review371).
    env = {"SERVING_SLOW_FLOW": "1.4"}
    served = Served(tmp_path, server, "--graceful-timeout", "0.2", env=env)
    _sigterm_once(served, "/awaits", "started")
    assert served.ended_within(timeout=8) < 5
    log = read_log(served.log)
    assert served.recorded() == ["started", "handler-closed", "flow-closed", "shutdown"], log
    assert "Traceback" not in log, log


def _boom_then_cut_off(served: Served, path: str, waited: str) -> None:
    """Get ``/boom`` (a handler's own error), then ``path``; send SIGTERM once the request has
    logged ``waited`` (or, with none, once its stream's first line came); wait for the end."""
    assert httpx.get(f"{served.url}/boom", timeout=5).status_code == 500
    if waited:
        _sigterm_once(served, path, waited)
    else:
        _sigterm_during_stream(served, path)
    served.ended_within(timeout=8)


def _sigterm_once(served: Served, path: str, waited: str) -> None:
    """Get ``path`` in the background, send SIGTERM once the request has logged ``waited``, and
    wait for the request's end (an answer or a cut)."""
    thread, _ = _get_in_background(f"{served.url}{path}")
    served.wait_for_event(waited)
    served.process.send_signal(signal.SIGTERM)
    thread.join(timeout=10)


def _sigterm_during_stream(served: Served, path: str, first: str = "tick") -> None:
    """Stream ``path``, send SIGTERM after its ``first`` line, and read on until the stream
    ends or is cut off."""
    with httpx.stream("GET", f"{served.url}{path}", timeout=10) as response:
        lines = response.iter_lines()
        assert next(lines) == first
        served.process.send_signal(signal.SIGTERM)
        # NOTE: the client keeps reading, so the stream is cut off while it makes a chunk.
        with contextlib.suppress(httpx.HTTPError):
            for _ in lines:
                pass


@pytest.mark.parametrize(
    ("path", "waited", "what"),
    [
        ("/slow?seconds=30", "started", "before its answer"),
        ("/aslow?seconds=30", "started", "before its answer"),
        ("/ticks", "", "during its answer"),
        ("/aticks", "", "during its answer"),
        ("/after?seconds=30", "after-started", "in its after-response work"),
        ("/after?seconds=30&colour=async", "after-started", "in its after-response work"),
    ],
    ids=["def", "async", "def-stream", "async-stream", "def-after", "async-after"],
)
def test_a_request_cut_off_by_the_grace_period_is_logged_in_one_line(
    tmp_path: Path, path: str, waited: str, what: str
) -> None:
    # NOTE: Uvicorn logged each request it cancelled at the end of the grace period with a
    # full traceback of the cancellation ("Exception in ASGI application"), where Waitress
    # logs one line. A handler's own error is still logged in full.
    served = Served(tmp_path, "uvicorn", "--graceful-timeout", "1")
    _boom_then_cut_off(served, path, waited)
    log = read_log(served.log)
    route = path.partition("?")[0]
    assert f"WARNING:microweb: GET {route} cut off {what}: the server cancelled it" in log, log
    assert "Exception in ASGI application" not in log, log
    assert log.count("Traceback") == 1 and "RuntimeError: boom" in log, log


@pytest.mark.parametrize(
    ("path", "waited"),
    [
        ("/slow?seconds=30", "started"),
        ("/aslow?seconds=30", "started"),
        ("/aticks", ""),
        ("/arush", ""),
        ("/after?seconds=30&colour=async", "after-started"),
    ],
    ids=["def", "async", "async-stream", "async-stream-ahead", "async-after"],
)
def test_a_request_cut_off_under_waitress_is_logged_in_one_line(
    tmp_path: Path, path: str, waited: str
) -> None:
    # NOTE: an async def handler cut off under Waitress was logged again after the shutdown
    # hooks, as "unhandled error" with a traceback: the app loop's stop had released its
    # server thread with a RuntimeError, which the driver took for the handler's own error.
    # An async stream whose chunks were made ahead, cut off while its thread wrote them, was
    # logged by Waitress ("Exception while serving"): the body's close() raised LoopStopped.
    served = Served(tmp_path, "waitress", "--graceful-timeout", "1")
    _boom_then_cut_off(served, path, waited)
    # NOTE: the server thread may log after the shutdown hooks; give it the time it took.
    time.sleep(0.5)
    log = read_log(served.log)
    assert "WARNING:microweb: 1 request(s) still busy after the grace period" in log, log
    if "after" not in path:
        # NOTE: a request whose answer went out (its after-response work runs) is only counted.
        route = path.partition("?")[0]
        assert f"WARNING:microweb: GET {route} cut off: still busy after the grace" in log, log
    assert log.count("Traceback") == 1 and "RuntimeError: boom" in log, log
    assert "unhandled error in GET /a" not in log, log


def test_waitress_names_a_request_it_cuts_off_as_a_log_line_spells_it() -> None:
    # NOTE: Waitress's path is decoded: a "%0A" in it would start a forged log line.
    from types import SimpleNamespace

    from waitress.adjustments import Adjustments
    from waitress.parser import HTTPRequestParser

    from microweb._waitress import _named

    parser = HTTPRequestParser(Adjustments())
    parser.received(b"GET /a%0AINFO:%20forged%FF?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    named = _named(SimpleNamespace(requests=[parser], request=None))
    assert named == "GET /a%0AINFO:%20forged%FF"
    assert _named(SimpleNamespace(requests=[], request=None)) is None
    # NOTE: a method is any token up to the head's cap: it was named whole (review337).
    parser = HTTPRequestParser(Adjustments())
    parser.received(b"A" * 100_000 + b" /" + b"b" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    named = _named(SimpleNamespace(requests=[parser], request=None))
    assert named == "A" * 64 + "[...+99936] /" + "b" * 4095 + "[...+905]"


def test_a_websocket_session_cut_off_by_the_grace_period_is_logged_in_one_line(
    tmp_path: Path,
) -> None:
    served = Served(tmp_path, "uvicorn", "--graceful-timeout", "1", env={"SERVING_WEBSOCKET": "1"})
    with connect(f"ws://{HOST}:{served.port}/ws-stubborn", proxy=None, open_timeout=5) as ws:
        served.wait_for_event("ws-open")
        served.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=8)
    served.ended_within(timeout=8)
    log = read_log(served.log)
    assert "GET /ws-stubborn cut off in its WebSocket session: the server cancelled it" in log, log
    assert "Traceback" not in log, log


def _refuse_early(signum: int, frame: FrameType | None) -> None:
    raise AssertionError(f"{signal.Signals(signum).name} came before the orderly stop's handler")


def test_waitress_stops_in_order_on_a_signal_right_after_it_says_serving() -> None:
    # NOTE: it said "serving on" before it set its signal handlers, so a SIGTERM sent at once
    # (a test, a supervisor) met Python's default and ended the process with no shutdown hooks.
    app = App()
    events: list[str] = []
    app.on_shutdown(lambda: events.append("shutdown"))
    wsgi = app.as_wsgi()
    previous = signal.signal(signal.SIGTERM, _refuse_early)
    try:
        stopped_by = serve_waitress(
            wsgi, 1.0, lambda port: signal.raise_signal(signal.SIGTERM), host=HOST, port=0
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        wsgi.close()
    assert stopped_by == signal.SIGTERM
    assert events == ["shutdown"]


def test_a_signal_after_waitress_closed_its_sockets_is_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: the handler woke the loop by writing to Waitress's trigger, which close_all() had
    # closed: an OSError out of the signal handler (or a byte into a file that took the fd).
    app = App()
    events: list[str] = []
    app.on_shutdown(lambda: events.append("shutdown"))
    wsgi = app.as_wsgi()
    server = OrderlyWaitress(wsgi, 1.0, host=HOST, port=0)
    close_all = wasyncore.close_all

    def close_then_signal(*args: Any, **kwargs: Any) -> None:
        close_all(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)  # NOTE: the second signal, at that moment.

    monkeypatch.setattr(wasyncore, "close_all", close_then_signal)
    server.signal = signal.SIGTERM  # NOTE: the first one has come.
    try:
        assert server.run(lambda port: None) == signal.SIGTERM
    finally:
        wsgi.close()
    assert server.hurry
    assert events == ["shutdown"]


STALLED_SERVER = """
import sys
from microweb import App, Response
from microweb._waitress import serve_waitress

app = App()


@app.get("/endless")
def endless(request):
    return Response.stream(b"x" * 65536 for _ in iter(int, 1))


@app.get("/hello")
def hello(request):
    return "hello"


@app.get("/flat")
def flat(request):
    return b"x" * 4 * 1048576


serve_waitress(
    app.as_wsgi(), 1.0, lambda port: print("serving", flush=True), host="127.0.0.1",
    port=int(sys.argv[1]), threads=1, channel_timeout=1, outbuf_high_watermark=1048576,
)
"""


def test_waitress_closes_a_connection_whose_client_stopped_reading(tmp_path: Path) -> None:
    # NOTE: the thread writing the endless stream waited for the client to read, for ever:
    # Waitress's channel_timeout closes only connections with no request. One such client
    # per thread held the whole server.
    script = tmp_path / "stalled.py"
    script.write_text(STALLED_SERVER)
    port = free_port()
    log = tmp_path / "stalled.log"
    process = start([sys.executable, str(script), str(port)], port=port, log=log)
    try:
        with socket.create_connection((HOST, port)) as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.5)  # NOTE: the one thread is now writing to it.
            response = httpx.get(f"http://{HOST}:{port}/hello", timeout=15)
        assert response.text == "hello"
        assert "client stopped reading" in read_log(log)
    finally:
        stop(process)


def _server_side_open(port: int) -> int:
    """How many connections the server on ``port`` holds open (established, or ended by the
    client only), from /proc/net/tcp."""
    table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = f":{port:04X}"
    rows = (line.split() for line in table)
    return sum(1 for row in rows if row[1].endswith(local) and row[3] in ("01", "08"))


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="reads /proc/net/tcp")
@pytest.mark.parametrize("half_closed", [False, True], ids=["open", "half-closed"])
def test_waitress_closes_a_connection_whose_client_never_reads_a_whole_answer(
    tmp_path: Path, half_closed: bool
) -> None:
    # NOTE: an answer past the high watermark written at once: the handler has returned, so
    # Waitress's maintenance marks the connection will_close, which only a write acts on, and
    # the socket never turned writable: the connection, its buffered answer (spilled to a
    # file) and its place under the connection limit were held for ever.
    script = tmp_path / "stalled.py"
    script.write_text(STALLED_SERVER)
    port = free_port()
    log = tmp_path / "stalled.log"
    process = start([sys.executable, str(script), str(port)], port=port, log=log)
    try:
        with socket.create_connection((HOST, port)) as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.sendall(b"GET /flat HTTP/1.1\r\nHost: x\r\n\r\n")
            if half_closed:
                stalled.shutdown(socket.SHUT_WR)
            wait_for(lambda: _server_side_open(port) == 0, "the close", log, timeout=10)
        assert "client stopped reading" in read_log(log)
    finally:
        stop(process)


def _patched_serve(tmp_path: Path, module: str, patch: str) -> list[str]:
    """Return the command of ``microweb serve serving_app`` run by a script that first runs
    ``patch``, Python code given ``signal`` and microweb's ``module``."""
    script = tmp_path / "patched_serve.py"
    script.write_text(
        f"import signal, sys\nfrom microweb import _cli, {module}\n{patch}"
        "sys.exit(_cli.main(sys.argv[1:]))\n"
    )
    return [sys.executable, str(script), "serve", "serving_app"]


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda signum: signal.Signals(signum).name)
def test_a_signal_between_waitress_startup_and_its_handlers_runs_the_shutdown_hooks(
    tmp_path: Path, signum: int
) -> None:
    # NOTE: the startup hooks run in as_wsgi(), before OrderlyWaitress.run() handles signals:
    # a SIGINT there ran the shutdown hooks (KeyboardInterrupt), a SIGTERM met Python's
    # default and ended the process without them.
    events, log = tmp_path / "events.txt", tmp_path / "serve.log"
    command = _patched_serve(
        tmp_path,
        "_waitress",
        "built = _waitress.OrderlyWaitress.__init__\n"
        "def build_then_signal(self, *args, **kwargs):\n"
        "    built(self, *args, **kwargs)\n"
        f"    signal.raise_signal({int(signum)})\n"
        "_waitress.OrderlyWaitress.__init__ = build_then_signal\n",
    )
    variables = environment(SERVING_EVENTS=str(events))
    process = launch(
        [*command, "--server", "waitress", "--port", str(free_port())], log=log, env=variables
    )
    try:
        process.wait(timeout=5)
    finally:
        stop(process)
    assert process.returncode == -signum, read_log(log)
    assert events.exists() and events.read_text().split() == ["shutdown"], read_log(log)
    assert "Traceback" not in read_log(log)


@pytest.mark.parametrize("server", SERVERS)
def test_a_sigterm_as_the_process_ends_by_sigint_is_no_traceback(
    tmp_path: Path, server: str
) -> None:
    # NOTE: a SIGTERM handled once the server had stopped (the Unix socket's file removed,
    # the output flushed) raised Terminated out of serve(): a traceback and status 1.
    events, log = tmp_path / "events.txt", tmp_path / "serve.log"
    command = _patched_serve(
        tmp_path,
        "_serving",
        "ending = _serving.end_by\n"
        "def signal_then_end(signum):\n"
        "    signal.raise_signal(signal.SIGTERM)\n"
        "    ending(signum)\n"
        "_serving.end_by = signal_then_end\n",
    )
    port = free_port()
    process = start(
        [*command, "--server", server, "--port", str(port)],
        port=port,
        log=log,
        env=environment(SERVING_EVENTS=str(events)),
    )
    try:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=5)
    finally:
        stop(process)
    assert process.returncode in (-signal.SIGINT, -signal.SIGTERM), read_log(log)
    assert events.read_text().split() == ["shutdown"], read_log(log)
    assert "Traceback" not in read_log(log)


@pytest.mark.parametrize("failure", ["error", "generator-exit"])
@pytest.mark.parametrize("server", SERVERS)
def test_a_shutdown_hooks_generator_exit_fails_that_step_as_an_error_does(
    tmp_path: Path, server: str, failure: str
) -> None:
    # NOTE: raised again at the end of microweb serve, it was a second traceback, and the
    # process ended with status 1, not by the signal that stopped it (review345). Unlike
    # sys.exit(), it asks for no end of the process: a failure of its step, logged once.
    variables = {"SERVING_EXIT_AT_SHUTDOWN": failure, "SERVING_LIFESPAN": "1"}
    served = Served(tmp_path, server, env=variables)
    assert httpx.get(f"{served.url}/where", timeout=5).status_code == 200
    served.process.send_signal(signal.SIGTERM)
    served.ended_within(timeout=5)
    log = read_log(served.log)
    assert served.process.returncode == -signal.SIGTERM, log
    assert served.recorded() == ["lifespan-entered", "shutdown", "lifespan-exited"], log
    assert log.count("shutdown step flush_or_exit failed") == 1, log
    assert log.count("Traceback") == 1, log
    assert "appears unsupported" not in log, log
