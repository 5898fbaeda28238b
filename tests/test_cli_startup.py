"""``microweb serve`` when the app cannot start: the same status and log under both servers.

A failing startup hook, a port that is taken or a host that names no address ends the command
with status 3 (Uvicorn's own status for an app that did not start) and a logged reason, never
a crash of the command itself with its traceback.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from servers import HOST, REPO_ROOT, environment, free_port, pinned

from microweb import App
from microweb._waitress import serve_waitress

pytestmark = pytest.mark.servers

SERVERS = ["waitress", "uvicorn", "uvicorn-workers"]
STARTUP_FAILURE = 3


def _serve(
    port: int,
    server: str,
    events: Path,
    host: str = HOST,
    options: tuple[str, ...] = (),
    **env: str,
) -> subprocess.CompletedProcess[str]:
    name, _, workers = server.partition("-")
    command = [
        *(sys.executable, "-m", "microweb", "serve", "serving_app", "--server", name),
        *("--host", host, "--port", str(port), *options),
        *(["--workers", "2"] if workers else []),
    ]
    variables = environment(SERVING_EVENTS=str(events), **env)
    return subprocess.run(
        pinned(command), cwd=REPO_ROOT, env=variables, capture_output=True, text=True, timeout=20
    )


@pytest.mark.parametrize("server", SERVERS)
def test_a_failing_startup_hook_is_logged_and_ends_with_status_3(
    tmp_path: Path, server: str
) -> None:
    done = _serve(free_port(), server, tmp_path / "events.txt", SERVING_FAIL_STARTUP="1")
    log = done.stdout + done.stderr
    assert done.returncode == STARTUP_FAILURE, log
    assert "ERROR:microweb: startup failed" in log
    assert "ConnectionError: database is down" in log
    # NOTE: the hook's traceback is logged; the command itself does not crash out of main.
    assert "__main__.py" not in log, log
    assert "serving on" not in log, log


@pytest.mark.parametrize("ending", ["exit", "generator-exit"])
@pytest.mark.parametrize("server", SERVERS)
def test_a_startup_hooks_sys_exit_is_logged_and_ends_with_status_3(
    tmp_path: Path, server: str, ending: str
) -> None:
    # NOTE: under Uvicorn, a hook's SystemExit let out alone was taken for a lifespan protocol
    # the app did not know: "serving on", a 500 for the first request, then the end (review170).
    # So was its GeneratorExit, which under Waitress crashed out of main() (review341).
    done = _serve(free_port(), server, tmp_path / "events.txt", SERVING_FAIL_STARTUP=ending)
    log = done.stdout + done.stderr
    assert done.returncode == STARTUP_FAILURE, log
    assert "ERROR:microweb: startup failed" in log
    assert "DATABASE_URL is not set" in log
    assert "serving on" not in log, log


@pytest.mark.parametrize("server", SERVERS)
def test_a_lifespan_that_fails_to_enter_ends_with_status_3(tmp_path: Path, server: str) -> None:
    done = _serve(free_port(), server, tmp_path / "events.txt", SERVING_LIFESPAN="fail")
    log = done.stdout + done.stderr
    assert done.returncode == STARTUP_FAILURE, log
    assert "ERROR:microweb: startup failed" in log
    assert "ConnectionError: the lifespan's database is down" in log
    assert "serving on" not in log, log


@pytest.mark.parametrize(
    ("switch", "logged"),
    [
        # NOTE: a route never reached, found as the drivers compile the app: Waitress's start
        # logged it as a failed startup (status 3); a single Uvicorn process crashed out of
        # main() with its traceback (status 1), the workers each with theirs, and the reloader
        # waited.
        (
            "SERVING_NEVER_REACHED",
            "RouteClash: GET /users/{user_id:int} ('user_by_id') is never reached",
        ),
        # NOTE: a plugin's apply() that exits as the app compiles: the command ended with the
        # message alone and status 1, in every mode (Waitress's start had logged it as a
        # failed startup, status 3, as it does a startup hook's sys.exit()).
        ("SERVING_EXIT_AT_COMPILE", "SystemExit: TEMPLATES_DIR is not set"),
    ],
    ids=["never-reached", "sys-exit"],
)
@pytest.mark.parametrize("server", [*SERVERS, "uvicorn-reload"])
def test_an_app_that_does_not_compile_is_logged_and_ends_with_status_3(
    tmp_path: Path, server: str, switch: str, logged: str
) -> None:
    events = tmp_path / "events.txt"
    options = ("--reload",) if server == "uvicorn-reload" else ()
    name = server.removesuffix("-reload")
    done = _serve(free_port(), name, events, options=options, **{switch: "1"})
    log = done.stdout + done.stderr
    assert done.returncode == STARTUP_FAILURE, log
    assert "ERROR:microweb: startup failed" in log
    assert logged in log
    assert "__main__.py" not in log, log
    assert "serving on" not in log, log
    assert not events.exists()  # NOTE: refused before the app started: no hook ran.


def _routes(events: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "microweb", "routes", "serving_app"]
    variables = environment(SERVING_EVENTS=str(events), **env)
    return subprocess.run(
        pinned(command), cwd=REPO_ROOT, env=variables, capture_output=True, text=True, timeout=20
    )


@pytest.mark.parametrize(
    ("switch", "logged"),
    [
        ("SERVING_NEVER_REACHED", "is never reached"),
        ("SERVING_EXIT_AT_COMPILE", "SystemExit: TEMPLATES_DIR is not set"),
    ],
    ids=["never-reached", "sys-exit"],
)
def test_routes_of_an_app_that_does_not_compile_fails_as_serve_does(
    tmp_path: Path, switch: str, logged: str
) -> None:
    # NOTE: routes printed the table of an app that serve refuses, with status 0.
    events = tmp_path / "events.txt"
    done = _routes(events, **{switch: "1"})
    assert done.returncode == STARTUP_FAILURE, done.stderr
    assert "microweb: error: startup failed: serving_app does not compile: " in done.stderr
    assert logged in done.stderr
    assert "Traceback" in done.stderr
    assert done.stdout == ""
    assert not events.exists()


def test_routes_runs_no_startup_hook(tmp_path: Path) -> None:
    events = tmp_path / "events.txt"
    done = _routes(events, SERVING_FAIL_STARTUP="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("METHOD  TEMPLATE"), done.stdout
    assert not events.exists()


@pytest.mark.parametrize("server", SERVERS)
def test_a_taken_port_is_status_3_with_no_traceback(tmp_path: Path, server: str) -> None:
    events = tmp_path / "events.txt"
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        done = _serve(taken.getsockname()[1], server, events)
    log = done.stdout + done.stderr
    assert done.returncode == STARTUP_FAILURE, log
    assert "address already in use" in log.lower()
    assert "Traceback" not in log, log
    assert "serving on" not in log, log
    # NOTE: the app had started, so its shutdown hooks ran, as under Uvicorn; the workers
    # share a socket that the main process binds before any app starts.
    started = server != "uvicorn-workers"
    assert (events.read_text().split() if started else events.exists()) == (
        ["shutdown"] if started else False
    )


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("host", ["bad..host", "256.1.1.1"], ids=["idna", "no-address"])
def test_an_unknown_host_is_status_3_with_no_traceback(
    tmp_path: Path, server: str, host: str
) -> None:
    # NOTE: Waitress raised ValueError, and a single Uvicorn process UnicodeError for a name
    # that IDNA refuses: a traceback and status 1.
    events = tmp_path / "events.txt"
    done = _serve(8000, server, events, host=host)
    log = done.stdout + done.stderr
    assert done.returncode == STARTUP_FAILURE, log
    assert f"ERROR:microweb: cannot listen on {host}:8000: " in log, log
    assert "Traceback" not in log, log
    assert not events.exists()  # NOTE: refused before the app started.


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("failure", ["startup", "taken-port", "unknown-host"])
def test_why_the_app_did_not_start_is_said_under_log_level_critical(
    tmp_path: Path, server: str, failure: str
) -> None:
    # NOTE: the reason was logged at ERROR, which --log-level critical hid under both
    # servers: the command ended with status 3 and said nothing.
    events = tmp_path / "events.txt"
    quiet = ("--log-level", "critical")
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        if failure == "startup":
            done = _serve(free_port(), server, events, options=quiet, SERVING_FAIL_STARTUP="1")
        elif failure == "taken-port":
            done = _serve(taken.getsockname()[1], server, events, options=quiet)
        else:
            done = _serve(8000, server, events, host="bad..host", options=quiet)
    log = done.stdout + done.stderr
    assert done.returncode == STARTUP_FAILURE, log
    reason = {
        "startup": "ConnectionError: database is down",
        "taken-port": "address already in use",
        "unknown-host": "cannot listen on bad..host:8000",
    }[failure]
    assert reason in log.lower() if failure == "taken-port" else reason in log, log
    assert "INFO" not in log, log  # NOTE: the level still holds for everything else.


def test_the_websocket_warning_under_waitress_is_one_log_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        # NOTE: a taken port ends the command right after the app is built, with status 3.
        taken.bind((HOST, 0))
        taken.listen()
        command = [
            *(sys.executable, "-m", "microweb", "serve", "examples/chat.py"),
            *("--server", "waitress", "--host", HOST, "--port", str(taken.getsockname()[1])),
        ]
        done = subprocess.run(
            pinned(command),
            cwd=REPO_ROOT,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=20,
        )
    log = done.stdout + done.stderr
    assert done.returncode == STARTUP_FAILURE, log
    assert "WARNING:microweb: this app has WebSocket routes" in log, log
    assert "_serve_run.py" not in log, log


def test_threads_the_system_refuses_end_waitress_with_none_left_running(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: Waitress's start raised from inside create_server() with the threads it had
    # started left running, and --threads 100000 aborted the process (status 134).
    start = threading.Thread.start

    def refuse_the_fourth(thread: threading.Thread) -> None:
        if thread.name == "waitress-3":
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", refuse_the_fourth)
    wsgi = App().as_wsgi()
    try:
        with caplog.at_level(logging.ERROR, "microweb"):
            stopped_by = serve_waitress(wsgi, 1.0, lambda port: None, host=HOST, port=0, threads=6)
    finally:
        wsgi.close()
    assert stopped_by is None  # NOTE: the command's status 3, as for a taken port.
    assert "cannot start 6 threads (can't start new thread; 3 started)" in caplog.text
    left = [thread.name for thread in threading.enumerate() if thread.name.startswith("waitress")]
    assert left == []


@pytest.mark.parametrize(
    ("server", "host"),
    [
        *((server, ":::") for server in SERVERS),
        # NOTE: an address in IPv6's documentation range, which no machine has: Waitress and
        # the shared socket of --workers fail to bind it (a single Uvicorn says it itself).
        *((server, "2001:db8::1") for server in ("waitress", "uvicorn-workers")),
    ],
)
def test_an_ipv6_host_that_cannot_listen_is_said_in_brackets(
    tmp_path: Path, server: str, host: str
) -> None:
    # NOTE: "cannot listen on 2001:db8::1:8000" could not tell the port from the address,
    # while the serving line writes the address in brackets.
    done = _serve(8000, server, tmp_path / "events.txt", host=host)
    log = done.stdout + done.stderr
    assert done.returncode == STARTUP_FAILURE, log
    assert f"ERROR:microweb: cannot listen on [{host}]:8000: " in log, log
    assert "Traceback" not in log, log
