"""``microweb serve --workers`` and ``--reload`` start, stop and reload as one process does.

Each test runs a real ``microweb serve`` and checks what the user sees: the "serving on" line
only once the app has started, the exit status, the shutdown hooks of every process, and a
second signal that cuts a hanging hook short.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
import uvicorn
from servers import (
    HOST,
    MODE_PROCESSES,
    REPO_ROOT,
    SERVE_MODES,
    environment,
    free_port,
    pinned,
    read_log,
    refuses_connections,
    start,
    stop,
    wait_for,
)

from microweb import App
from microweb import _uvicorn as uvicorn_module
from microweb._uvicorn import OrderlyUvicorn

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


def _command(port: int, *options: str) -> list[str]:
    serve = [sys.executable, "-m", "microweb", "serve", "serving_app", "--host", HOST]
    return [*serve, "--port", str(port), *options]


def _events(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("mode", SERVE_MODES)
def test_the_serving_line_comes_once_the_startup_hooks_ran(tmp_path: Path, mode: str) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    variables = environment(SERVING_SLOW_STARTUP="1")
    process = start(_command(port, *SERVE_MODES[mode]), port=port, log=log, env=variables)
    try:
        wait_for(lambda: "serving on" in read_log(log), "serving line", log)
        assert httpx.get(f"http://{HOST}:{port}/where", timeout=10).status_code == 200
    finally:
        stop(process, timeout=10)
    lines = read_log(log).splitlines()
    serving = [i for i, line in enumerate(lines) if line.startswith("microweb: serving on")]
    hooks = [i for i, line in enumerate(lines) if line == "startup hooks ran"]
    assert len(serving) == 1, lines
    assert len(hooks) == MODE_PROCESSES.get(mode, 1), lines
    assert max(hooks) < serving[0], lines


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
@pytest.mark.parametrize("mode", MODE_PROCESSES)
def test_a_signal_runs_every_processs_hooks_and_ends_by_it(
    tmp_path: Path, mode: str, sig: signal.Signals
) -> None:
    port, log, events = free_port(), tmp_path / "serve.log", tmp_path / "events.txt"
    variables = environment(SERVING_EVENTS=str(events))
    process = start(_command(port, *SERVE_MODES[mode]), port=port, log=log, env=variables)
    try:
        wait_for(lambda: "serving on" in read_log(log), "serving line", log)
        process.send_signal(sig)
        process.wait(timeout=5)
    finally:
        stop(process)
    assert process.returncode == -sig, read_log(log)
    assert _events(events) == ["shutdown"] * MODE_PROCESSES[mode], read_log(log)
    assert "Traceback" not in read_log(log)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
@pytest.mark.parametrize("mode", MODE_PROCESSES)
def test_a_second_signal_ends_shutdown_hooks_that_hang(
    tmp_path: Path, mode: str, sig: signal.Signals
) -> None:
    port, log, events = free_port(), tmp_path / "serve.log", tmp_path / "events.txt"
    variables = environment(SERVING_EVENTS=str(events), SERVING_HANG_SHUTDOWN="sync")
    process = start(_command(port, *SERVE_MODES[mode]), port=port, log=log, env=variables)
    try:
        wait_for(lambda: "serving on" in read_log(log), "serving line", log)
        process.send_signal(signal.SIGTERM)
        count = MODE_PROCESSES[mode]
        wait_for(lambda: _events(events).count("hanging") == count, "hanging hooks", log)
        began = time.monotonic()
        process.send_signal(sig)
        process.wait(timeout=5)
        assert time.monotonic() - began < 2
    finally:
        stop(process)
    assert process.returncode == -sig, read_log(log)
    assert "Traceback" not in read_log(log)


def _children(pid: int) -> set[int]:
    """Return the pids of the child processes of ``pid`` (Linux)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            found.update(int(child) for child in (task / "children").read_text().split())
    return found


def _slow_in_background(port: int, seconds: int) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"http://{HOST}:{port}/slow?seconds={seconds}", timeout=seconds + 5)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="Linux's /proc")
@pytest.mark.parametrize("group", [False, True], ids=["main", "group"])
@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_second_signal_ends_the_workers_wait_and_their_hooks_still_run(
    tmp_path: Path, second: signal.Signals, group: bool
) -> None:
    # NOTE: as in a single process: the main process passes a second signal on, and each
    # worker ends its wait for the requests in flight and runs its shutdown hooks; they were
    # killed without them. "group": Ctrl+C twice, each to every process of the terminal's.
    port, log, events = free_port(), tmp_path / "serve.log", tmp_path / "events.txt"
    variables = environment(SERVING_EVENTS=str(events))
    command = _command(port, "--workers", "2", "--graceful-timeout", "30")
    process = _start_as_group(command, variables, log)
    send = functools.partial(os.killpg if group else os.kill, process.pid)
    try:
        wait_for(lambda: "serving on" in read_log(log), "serving line", log, timeout=15)
        children = _children(process.pid)
        threads = [_slow_in_background(port, 40) for _ in range(4)]
        wait_for(lambda: "started" in _events(events), "a request in flight", log)
        send(signal.SIGINT if group else signal.SIGTERM)
        time.sleep(0.5)
        began = time.monotonic()
        send(second)
        process.wait(timeout=10)
        took = time.monotonic() - began
    finally:
        stop(process)
    for thread in threads:
        thread.join(timeout=5)
    assert _events(events).count("shutdown") == 2, read_log(log)
    assert process.returncode == -second, read_log(log)
    assert took < 8, read_log(log)  # NOTE: well short of the grace period (30 s).
    assert "Traceback" not in read_log(log) and "exceeded" not in read_log(log)
    wait_for(
        lambda: not any(Path(f"/proc/{child}").exists() for child in children), "no child", log, 5
    )


@pytest.mark.parametrize("second", ["main", "group"])
@pytest.mark.parametrize("first", ["main", "group"])
def test_under_reload_signals_to_the_main_process_and_to_the_group_mix(
    tmp_path: Path, first: str, second: str
) -> None:
    # NOTE: kill -TERM to the reloader, Ctrl+C (SIGINT) to every process, in either order: the
    # app's process takes the one it gets from the terminal and the reloader's copy as one, the
    # second signal ends its wait, its hooks run once, and the reloader, which sees them
    # begin, kills nothing (review404).
    port, log, events = free_port(), tmp_path / "serve.log", tmp_path / "events.txt"
    variables = environment(SERVING_EVENTS=str(events))
    command = _command(port, "--reload", "--graceful-timeout", "30")
    process = _start_as_group(command, variables, log)

    def send(to: str) -> signal.Signals:
        if to == "group":
            os.killpg(process.pid, signal.SIGINT)
            return signal.SIGINT
        process.send_signal(signal.SIGTERM)
        return signal.SIGTERM

    try:
        wait_for(lambda: "serving on" in read_log(log), "serving line", log, timeout=15)
        thread = _slow_in_background(port, 40)
        wait_for(lambda: "started" in _events(events), "a request in flight", log)
        send(first)
        time.sleep(0.5)
        began = time.monotonic()
        last = send(second)
        process.wait(timeout=15)
        took = time.monotonic() - began
    finally:
        stop(process)
    thread.join(timeout=5)
    text = read_log(log)
    assert process.returncode == -last, text
    assert _events(events) == ["started", "shutdown"], text
    assert took < 10, text  # NOTE: well short of the grace period (30 s).
    assert "Traceback" not in text and "killing it" not in text, text


@pytest.mark.parametrize("mode", MODE_PROCESSES)
def test_ctrl_c_to_every_process_runs_each_hook_once(tmp_path: Path, mode: str) -> None:
    # NOTE: a terminal sends SIGINT to the whole process group: each child gets it from there
    # and from the main process, and must still run its hooks, once.
    port, log, events = free_port(), tmp_path / "serve.log", tmp_path / "events.txt"
    variables = environment(SERVING_EVENTS=str(events))
    process = _start_as_group(_command(port, *SERVE_MODES[mode]), variables, log)
    try:
        wait_for(lambda: "serving on" in read_log(log), "serving line", log, timeout=15)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=5)
    finally:
        stop(process)
    assert process.returncode == -signal.SIGINT, read_log(log)
    assert _events(events) == ["shutdown"] * MODE_PROCESSES[mode], read_log(log)
    assert "Traceback" not in read_log(log)


def _start_as_group(
    command: list[str],
    variables: dict[str, str],
    log: Path,
    preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` as the leader of a process group of its own, as a terminal's
    foreground job is, so that a signal can go to the group as Ctrl+C or Ctrl+\\ sends it."""
    with log.open("wb") as output:
        return subprocess.Popen(
            pinned(command),
            cwd=REPO_ROOT,
            env=variables,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )


def _no_core() -> None:
    """No core file, should a process be ended by SIGQUIT's default (a ``preexec_fn``)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.mark.parametrize("to", ["main", "group"])
@pytest.mark.parametrize("mode", SERVE_MODES)
def test_sigquit_stops_in_order_as_sigterm_does(tmp_path: Path, mode: str, to: str) -> None:
    # NOTE: Python's default for SIGQUIT ended a single process at once (a core dump where
    # they are on), with no shutdown hooks and a Unix socket's file left; with --workers or
    # --reload, the children stopped by themselves once they saw the main process gone, or
    # (Ctrl+\, to the whole group) died with it. Gunicorn and nginx both stop on SIGQUIT.
    port, log, events = free_port(), tmp_path / "serve.log", tmp_path / "events.txt"
    variables = environment(SERVING_EVENTS=str(events))
    process = _start_as_group(_command(port, *SERVE_MODES[mode]), variables, log, _no_core)
    try:
        wait_for(lambda: "serving on" in read_log(log), "serving line", log, timeout=15)
        if to == "group":
            os.killpg(process.pid, signal.SIGQUIT)
        else:
            process.send_signal(signal.SIGQUIT)
        process.wait(timeout=5)
    finally:
        stop(process)
    assert process.returncode == -signal.SIGTERM, read_log(log)
    assert _events(events) == ["shutdown"] * MODE_PROCESSES.get(mode, 1), read_log(log)
    assert "Traceback" not in read_log(log)


# NOTE: run as `python launcher.py serve ...`, it is the command; multiprocessing's spawn
# imports it again in each child process (as __mp_main__) before the child unpickles its
# target, and there it says so and stays: a child held in its start-up.
LAUNCHER = """
import os, sys, time

if __name__ == "__main__":
    from microweb._cli import main

    sys.exit(main())
open(os.path.join(os.environ["LAUNCHED"], str(os.getpid())), "w").close()
time.sleep(60)
"""


def _took_signal(pid: int, signum: int) -> bool:
    """Tell whether process ``pid`` has ended, or holds back a pending ``signum`` (Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    held = int(fields["SigBlk"], 16) & (int(fields["ShdPnd"], 16) | int(fields["SigPnd"], 16))
    return fields["State"].split()[0] == "Z" or bool(held & 1 << (signum - 1))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux's /proc")
@pytest.mark.parametrize("mode", MODE_PROCESSES)
def test_ctrl_c_while_the_children_start_ends_them_quietly(tmp_path: Path, mode: str) -> None:
    # NOTE: Ctrl+C in the first second of --workers or --reload printed each child's
    # KeyboardInterrupt traceback, from inside whatever it was importing.
    launcher, launched = tmp_path / "launcher.py", tmp_path / "launched"
    launcher.write_text(LAUNCHER)
    launched.mkdir()
    port, log = free_port(), tmp_path / "serve.log"
    command = [sys.executable, str(launcher), *_command(port, *SERVE_MODES[mode])[3:]]
    process = _start_as_group(command, environment(LAUNCHED=str(launched)), log)
    try:
        count = MODE_PROCESSES[mode]
        wait_for(lambda: len(list(launched.iterdir())) == count, "children starting", log)
        # NOTE: the terminal's copy of the signal to each child first, and the main process's
        # once each child has taken it (or ended): the main process's SIGTERM to the children
        # otherwise often ended them before they could print anything.
        children = [int(child.name) for child in launched.iterdir()]
        for child in children:
            os.kill(child, signal.SIGINT)
        wait_for(
            lambda: all(_took_signal(child, signal.SIGINT) for child in children),
            "children given SIGINT",
            log,
        )
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=10)
    finally:
        stop(process)
    assert process.returncode == -signal.SIGINT, read_log(log)
    assert "Traceback" not in read_log(log), read_log(log)
    assert "KeyboardInterrupt" not in read_log(log), read_log(log)


# NOTE: as LAUNCHER, but each child goes on with its start once the file $GO exists.
HELD_LAUNCHER = LAUNCHER.replace(
    "time.sleep(60)", 'while not os.path.exists(os.environ["GO"]):\n    time.sleep(0.05)'
)


@contextlib.contextmanager
def _a_starting_worker_given(tmp_path: Path, signum: int) -> Iterator[tuple[int, Path, int]]:
    """Serve with two workers held at their start, send ``signum`` to the first alone, and let
    both go on once it has taken it; yield the port, the log and that worker's pid once the
    command serves. The test's own checks done, the command must end by SIGTERM, quietly."""
    launcher, launched, go = tmp_path / "launcher.py", tmp_path / "launched", tmp_path / "go"
    launcher.write_text(HELD_LAUNCHER)
    launched.mkdir()
    port, log = free_port(), tmp_path / "serve.log"
    command = [sys.executable, str(launcher), *_command(port, "--workers", "2")[3:]]
    process = _start_as_group(
        command, environment(LAUNCHED=str(launched), GO=str(go)), log, _no_core
    )
    children: list[int] = []
    try:
        wait_for(lambda: len(list(launched.iterdir())) == 2, "children starting", log)
        children += sorted(int(child.name) for child in launched.iterdir())
        os.kill(children[0], signum)
        name = signal.Signals(signum).name
        wait_for(lambda: _took_signal(children[0], signum), f"the child given {name}", log)
        go.touch()
        wait_for(lambda: "serving on" in read_log(log), "serving line", log)
        yield port, log, children[0]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    finally:
        stop(process)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    assert process.returncode == -signal.SIGTERM, read_log(log)
    assert "Traceback" not in read_log(log), read_log(log)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux's /proc")
def test_sigint_to_one_starting_worker_alone_stops_it_and_it_is_replaced(tmp_path: Path) -> None:
    # NOTE: a child drops a SIGINT that came while it started (right for Ctrl+C, which the
    # main process also gets): `kill -INT <pid>` of one worker alone was lost, and it served.
    with _a_starting_worker_given(tmp_path, signal.SIGINT) as (port, log, child):
        assert _took_signal(child, signal.SIGINT) and not Path(f"/proc/{child}").exists()
        assert "starting another" in read_log(log), read_log(log)
        for _ in range(4):
            assert httpx.get(f"http://{HOST}:{port}/where", timeout=10).status_code == 200


# NOTE: the command, with a SIGQUIT to itself as it parses its options.
QUIT_AS_PARSED = """
import signal, sys
from microweb import _cli

parser = _cli._parser


def quit_then_parse():
    signal.raise_signal(signal.SIGQUIT)
    return parser()


_cli._parser = quit_then_parse
sys.exit(_cli.main())
"""


def test_sigquit_as_the_options_are_parsed_ends_the_command_by_sigterm(tmp_path: Path) -> None:
    # NOTE: taken as SIGTERM from once the options were checked only: before, Python's default
    # ended the command by SIGQUIT (a core dump where they are on).
    script = tmp_path / "quit_as_parsed.py"
    script.write_text(QUIT_AS_PARSED)
    command = [sys.executable, str(script), *_command(free_port())[3:]]
    done = subprocess.run(
        pinned(command),
        cwd=REPO_ROOT,
        env=environment(),
        capture_output=True,
        timeout=30,
        preexec_fn=_no_core,
    )
    assert done.returncode == -signal.SIGTERM, done
    assert b"serving on" not in done.stdout and b"Traceback" not in done.stderr, done


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux's /proc")
def test_sigquit_to_a_starting_worker_is_taken_as_sigterm(tmp_path: Path) -> None:
    # NOTE: a worker took SIGQUIT as SIGTERM once it had set its handling up: before, Python's
    # default ended it by SIGQUIT (a core dump where they are on). Now it is held back until
    # then, as SIGINT is, and the worker ends by SIGTERM, and is replaced.
    with _a_starting_worker_given(tmp_path, signal.SIGQUIT) as (port, log, child):
        ended = f"worker [{child}] ended before it started (status {-signal.SIGTERM})"
        assert ended in read_log(log), read_log(log)
        assert httpx.get(f"http://{HOST}:{port}/where", timeout=10).status_code == 200


# NOTE: a child's entry point, run in a process of its own with a SIGINT sent to it as it
# takes SIGINT back, or just before Uvicorn sets up its own handling of it, as `kill -INT
# <pid>` may land.
CHILD_INTERRUPTED = """
import os, signal, sys
from multiprocessing import Pipe, RawValue
import uvicorn
from microweb import _stopping, _supervisor, _worker_process


def interrupt():
    os.kill(os.getpid(), signal.SIGINT)


class Config(uvicorn.Config):
    def get_loop_factory(self):
        if sys.argv[2] == "loop":
            interrupt()
        return super().get_loop_factory()


def take_interrupts():
    _stopping.take_interrupts()
    if sys.argv[2] == "taken":
        interrupt()


_worker_process.take_interrupts = _supervisor.take_interrupts = take_interrupts
# NOTE: asyncio's loop, as every Uvicorn of the suite's (tests/servers.py TEST_LOOP).
config = Config("microweb._serving:asgi_from_environment", factory=True, loop="asyncio")
if sys.argv[1] == "workers":
    _, child = Pipe()
    _worker_process._run_worker(config, [], child, [0, 0, 0, 0], 5.0, os.getppid())
else:
    _supervisor._run_reloaded(config, print, os.getppid(), RawValue("i", 0), [])
"""


@pytest.mark.parametrize("when", ["taken", "loop"])
@pytest.mark.parametrize("mode", MODE_PROCESSES)
def test_sigint_just_before_uvicorn_handles_it_ends_a_child_by_it_quietly(
    mode: str, when: str
) -> None:
    # NOTE: a worker ended with status 0 or 1, which the main process took for a failed start
    # (it stopped every worker, status 3); the reloader's child printed a KeyboardInterrupt.
    ended = subprocess.run(
        [sys.executable, "-c", CHILD_INTERRUPTED, mode, when],
        cwd=REPO_ROOT,
        env=environment(),
        capture_output=True,
        timeout=30,
    )
    assert ended.returncode == -signal.SIGINT, ended.stderr.decode()
    assert b"Traceback" not in ended.stderr, ended.stderr.decode()


@pytest.mark.parametrize("mode", MODE_PROCESSES)
def test_a_signal_closes_the_port_while_requests_in_flight_finish(
    tmp_path: Path, mode: str
) -> None:
    # NOTE: the main process kept its copy of the shared socket open until its children had
    # ended, so the system took new connections in all through the grace period, and reset them
    # at its end: behind nginx, a request waited out the whole grace period for a 502, where a
    # single process refuses it at once and nginx moves on.
    port, log, events = free_port(), tmp_path / "serve.log", tmp_path / "events.txt"
    command = _command(port, *SERVE_MODES[mode], "--graceful-timeout", "5")
    process = start(command, port=port, log=log, env=environment(SERVING_EVENTS=str(events)))
    outcome: dict[str, object] = {}

    def get_slow() -> None:
        try:
            outcome["status"] = httpx.get(f"http://{HOST}:{port}/slow?seconds=2", timeout=10)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    request = threading.Thread(target=get_slow)
    try:
        wait_for(lambda: "serving on" in read_log(log), "serving line", log)
        request.start()
        wait_for(lambda: "started" in _events(events), "the request in flight", log)
        process.send_signal(signal.SIGTERM)
        wait_for(lambda: refuses_connections(port), "the port closed", log, timeout=1.5)
        assert "finished" not in _events(events), read_log(log)
        process.wait(timeout=10)
    finally:
        stop(process)
        request.join(timeout=10)
    answer = outcome.get("status")
    assert isinstance(answer, httpx.Response) and answer.status_code == 200, outcome
    # NOTE: with --workers, the idle worker may have run its hook before the request finished.
    expected = ["started", "finished"] + ["shutdown"] * MODE_PROCESSES[mode]
    assert sorted(_events(events)) == sorted(expected), read_log(log)


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    process = start(_command(port, "--workers", "2"), port=port, log=log)
    try:
        wait_for(lambda: "serving on" in read_log(log), "serving line", log)
        pids = [line for line in read_log(log).splitlines() if "Started server process" in line]
        os.kill(int(pids[0].rsplit("[", 1)[1].rstrip("]")), signal.SIGKILL)
        wait_for(lambda: "starting another" in read_log(log), "replacement", log)
        for _ in range(4):
            assert httpx.get(f"http://{HOST}:{port}/where", timeout=10).status_code == 200
    finally:
        stop(process, timeout=10)
    assert process.returncode == -signal.SIGTERM, read_log(log)


RELOADED_APP = """
from microweb import App, Request

app = App()
VERSION = "{version}"


@app.get("/version")
def version(request: Request) -> dict[str, object]:
    client = request.client.host if request.client else None
    return {{"version": VERSION, "root_path": request.root_path, "client": client}}
"""


@pytest.mark.parametrize(
    ("target", "layout"),
    [("reloaded_app.py", "cwd"), ("reloaded_app:app", "cwd"), ("reloaded_app:app", "src")],
)
def test_reload_picks_up_a_change_and_keeps_the_options(
    tmp_path: Path, target: str, layout: str
) -> None:
    # NOTE: "src": the module on PYTHONPATH, served from another folder; the cwd was watched,
    # and the change never reloaded.
    folder = tmp_path / "src" if layout == "src" else tmp_path
    folder.mkdir(exist_ok=True)
    source = folder / "reloaded_app.py"
    source.write_text(RELOADED_APP.format(version="one"))
    variables = environment()
    variables["PYTHONPATH"] = os.pathsep.join([str(folder), variables["PYTHONPATH"]])
    cwd = tmp_path / "elsewhere" if layout == "src" else tmp_path
    cwd.mkdir(exist_ok=True)
    port, log = free_port(), tmp_path / "serve.log"
    options = [
        "--root-path",
        "/app",
        "--forwarded-allow-ips",
        "127.0.0.1",
        "--log-level",
        "warning",
    ]
    command = [sys.executable, "-m", "microweb", "serve", target, "--reload", "--port", str(port)]
    process = start([*command, *options], port=port, log=log, cwd=cwd, env=variables)

    def answer() -> dict[str, object]:
        headers = {"x-forwarded-for": "203.0.113.9"}
        response = httpx.get(f"http://{HOST}:{port}/app/version", headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        data: dict[str, object] = response.json()
        return data

    try:
        assert answer() == {"version": "one", "root_path": "/app", "client": "203.0.113.9"}
        # NOTE: Uvicorn's reloader notes the files' times a moment after it starts the app (a
        # race with the app's start); a change made before that goes unseen.
        time.sleep(1)
        source.write_text(RELOADED_APP.format(version="two"))
        later = time.time() + 2  # NOTE: a later mtime, even on a coarse clock.
        os.utime(source, (later, later))

        def reloaded() -> bool:
            try:
                return answer()["version"] == "two"
            except httpx.HTTPError:
                return False  # NOTE: between the old process and the new one.

        wait_for(reloaded, "reload", log)
        assert answer() == {"version": "two", "root_path": "/app", "client": "203.0.113.9"}
    finally:
        stop(process, timeout=10)
    text = read_log(log)
    assert text.count("microweb: serving on") == 2, text
    assert "INFO" not in text, text


@pytest.mark.parametrize(
    "order",
    [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)],
    ids=["int-then-term", "term-then-int"],
)
def test_a_supervised_process_runs_its_hooks_whichever_copy_of_a_signal_comes_first(
    order: tuple[signal.Signals, signal.Signals],
) -> None:
    # NOTE: Ctrl+C reaches a worker twice: the terminal's SIGINT and the supervisor's
    # SIGTERM. Uvicorn quits without the shutdown hooks on a SIGINT after another signal, and
    # the SIGTERM came first once in CI (Python 3.13): another thread of the worker took the
    # SIGINT. The supervisor acts on a second signal; a lone server cuts the wait for its
    # requests short on one, and still runs its hooks.
    config = uvicorn.Config(App().as_asgi(), lifespan="off")
    supervised = OrderlyUvicorn(config, escalate=False, supervisor=os.getppid())
    alone = OrderlyUvicorn(config)
    for server in (supervised, alone):
        for sig in order:
            server.handle_exit(sig, None)
    assert supervised.should_exit and not supervised.force_exit
    assert not alone.force_exit and alone.cut_short


def test_a_worker_takes_a_signal_as_a_second_one_once_its_supervisor_counted_it() -> None:
    # NOTE: the second Ctrl+C reaches a worker twice too: the terminal's SIGINT, before or
    # after the supervisor counts it, and the supervisor's SIGTERM after. Each count is one
    # second signal, however many copies come; a copy before it is still the first signal's.
    config = uvicorn.Config(App().as_asgi(), lifespan="off")
    counted = [0]
    worker = OrderlyUvicorn(
        config, escalate=False, supervisor=os.getppid(), passed_on=lambda: counted[0]
    )
    worker.handle_exit(signal.SIGTERM, None)
    worker.handle_exit(signal.SIGINT, None)
    assert worker.should_exit and not worker.cut_short
    counted[0] = 1
    worker.handle_exit(signal.SIGINT, None)
    assert worker.cut_short and not worker.force_exit
    worker.cut_short = False
    worker.handle_exit(signal.SIGTERM, None)
    assert not worker.cut_short and not worker.told_to_hurry()


@pytest.mark.parametrize(
    "order",
    [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)],
    ids=["int-then-term", "term-then-int"],
)
def test_a_supervised_process_runs_its_hooks_when_one_copy_comes_during_the_others_handler(
    monkeypatch: pytest.MonkeyPatch, order: tuple[signal.Signals, signal.Signals]
) -> None:
    # NOTE: Python runs a signal's handler in the middle of another's: the supervisor's
    # SIGTERM, sent as the terminal's SIGINT arrives, was handled inside Uvicorn's handler for
    # the SIGINT, which then took the SIGINT for a second one and quit without the hooks (CI,
    # --reload).
    first, second = order
    uvicorns = uvicorn.Server.handle_exit

    def interrupted(server: uvicorn.Server, sig: int, frame: FrameType | None) -> None:
        if sig == first:
            server.handle_exit(second, None)
        uvicorns(server, sig, frame)

    monkeypatch.setattr(uvicorn.Server, "handle_exit", interrupted)
    config = uvicorn.Config(App().as_asgi(), lifespan="off")
    supervised = OrderlyUvicorn(config, escalate=False, supervisor=os.getppid())
    supervised.handle_exit(first, None)
    assert supervised.should_exit and not supervised.force_exit


def test_a_process_whose_supervisor_has_gone_is_ended_by_a_signal_during_its_hooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: a worker whose supervisor was killed (SIGKILL) stops on its own and runs its
    # hooks; one that hung there ignored SIGTERM and SIGINT, any number of them, as it left
    # them to a supervisor that had gone: only SIGKILL ended it (review57).
    ended: list[int] = []
    monkeypatch.setattr(uvicorn_module, "end_by", ended.append)
    config = uvicorn.Config(App().as_asgi(), lifespan="off")
    # NOTE: this process's own pid is not its parent's: the supervisor has gone.
    orphan = OrderlyUvicorn(config, escalate=False, supervisor=os.getpid())
    orphan.handle_exit(signal.SIGTERM, None)
    orphan.running_hooks = True
    orphan.handle_exit(signal.SIGTERM, None)
    assert ended == [signal.SIGTERM]


def test_reload_serves_on_once_no_one_reads_the_output(tmp_path: Path) -> None:
    # NOTE: "microweb serve --reload | head -1" (or a script that reads the serving line
    # and stops reading): the reloaded app's serving line raised BrokenPipeError out of its
    # startup, and nothing was served until the next change.
    source = tmp_path / "reloaded_app.py"
    source.write_text(RELOADED_APP.format(version="one"))
    port, log = free_port(), tmp_path / "serve.log"
    command = [sys.executable, "-m", "microweb", "serve", "reloaded_app:app", "--reload"]
    with log.open("wb") as errors:
        process = subprocess.Popen(
            pinned([*command, "--port", str(port), "--log-level", "warning"]),
            cwd=tmp_path,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    try:
        assert process.stdout is not None
        assert b"microweb: serving on" in process.stdout.readline(), read_log(log)
        process.stdout.close()  # NOTE: the reader goes away.
        time.sleep(1)  # NOTE: see test_reload_picks_up_a_change_and_keeps_the_options.
        source.write_text(RELOADED_APP.format(version="two"))
        later = time.time() + 2
        os.utime(source, (later, later))

        def reloaded() -> bool:
            try:
                url = f"http://{HOST}:{port}/version"
                return bool(httpx.get(url, timeout=1).json()["version"] == "two")
            except httpx.HTTPError:
                return False

        wait_for(reloaded, "reload", log, timeout=8)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=5)
    finally:
        stop(process)
    assert process.returncode == -signal.SIGTERM, read_log(log)
    assert "Traceback" not in read_log(log), read_log(log)


@pytest.mark.parametrize("mode", SERVE_MODES)
def test_a_closed_stdout_serves_and_ends_by_the_signal(tmp_path: Path, mode: str) -> None:
    # NOTE: started with stdout closed (">&-"), Python has no sys.stdout: Uvicorn's logging
    # (in each worker and the reloader's child too) raised as it was set up, and Waitress's
    # stop ended with a traceback and status 1 where the signal's was due.
    port, log = free_port(), tmp_path / "serve.log"
    closed = ["sh", "-c", 'exec "$@" >&-', "sh", *_command(port, *SERVE_MODES[mode])]
    process = start(closed, port=port, log=log)
    try:
        assert httpx.get(f"http://{HOST}:{port}/where", timeout=10).status_code == 200
    finally:
        stop(process, timeout=10)
    assert process.returncode == -signal.SIGTERM, read_log(log)
    assert "Traceback" not in read_log(log)


@pytest.mark.parametrize("mode", MODE_PROCESSES)
def test_a_signal_while_a_child_imports_the_app_ends_it_before_its_hooks(
    tmp_path: Path, mode: str
) -> None:
    # NOTE: Uvicorn handles signals from before it imports the app in a child: one that came
    # then was noted, the startup hooks ran all the same (one that hung held the process until
    # a second signal), and the shutdown hooks never ran after them.
    events, log = tmp_path / "events.txt", tmp_path / "serve.log"
    variables = environment(
        SERVING_EVENTS=str(events), SERVING_SLOW_IMPORT="3", SERVING_HANG_STARTUP="async"
    )
    command = _command(free_port(), *SERVE_MODES[mode])
    with log.open("wb") as output:
        process = subprocess.Popen(
            pinned(command), cwd=REPO_ROOT, env=variables, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        # NOTE: the main process imports the app first, then each child.
        importing = ["importing"] * (1 + MODE_PROCESSES[mode])
        wait_for(lambda: _events(events) == importing, "children importing", log)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=8)
    finally:
        stop(process)
    assert process.returncode == -signal.SIGTERM, read_log(log)
    assert _events(events) == importing, read_log(log)


@pytest.mark.parametrize("mode", SERVE_MODES)
def test_an_access_log_no_one_reads_any_more_logs_no_error(tmp_path: Path, mode: str) -> None:
    # NOTE: "microweb serve shop:app | head -1": Uvicorn writes its access log on stdout, and
    # logged "--- Logging error ---" and a BrokenPipeError's traceback for every request.
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("wb") as errors:
        process = subprocess.Popen(
            pinned(_command(port, *SERVE_MODES[mode])),
            cwd=REPO_ROOT,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    try:
        assert process.stdout is not None
        assert b"microweb: serving on" in process.stdout.readline(), read_log(log)
        process.stdout.close()  # NOTE: the reader goes away.
        for _ in range(3):
            assert httpx.get(f"http://{HOST}:{port}/where", timeout=10).status_code == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    finally:
        stop(process)
    assert process.returncode == -signal.SIGTERM, read_log(log)
    assert "Error" not in read_log(log), read_log(log)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="Linux's /dev/full")
@pytest.mark.parametrize("mode", SERVE_MODES)
def test_a_stdout_that_cannot_be_written_is_said_and_the_app_served(
    tmp_path: Path, mode: str
) -> None:
    # NOTE: stdout on a full disk: the "serving on" line raised OSError (ENOSPC) out of the
    # server's start, a traceback and status 1 once the startup hooks had run (with --workers,
    # out of the main process, which left its workers unsupervised).
    port, log = free_port(), tmp_path / "serve.log"
    # NOTE: Uvicorn's access log (on stdout too) is off: it logs an error for each request.
    command = _command(port, *SERVE_MODES[mode], "--log-level", "warning")
    full = ["sh", "-c", 'exec "$@" >/dev/full', "sh", *command]
    process = start(full, port=port, log=log)
    try:
        assert httpx.get(f"http://{HOST}:{port}/where", timeout=10).status_code == 200
        wait_for(lambda: "cannot write to stdout" in read_log(log), "the error said", log)
    finally:
        stop(process, timeout=10)
    assert process.returncode == -signal.SIGTERM, read_log(log)
    assert "WARNING:microweb: cannot write to stdout: [Errno 28] No space left on device" in (
        read_log(log)
    )
    assert "Traceback" not in read_log(log), read_log(log)


@pytest.mark.parametrize("mode", ["uvicorn", "waitress"])
def test_a_stdout_that_app_code_closed_is_said_and_the_process_ends_by_the_signal(
    tmp_path: Path, mode: str
) -> None:
    # NOTE: end_by() flushed sys.stdout once stopped: ValueError ("I/O operation on closed
    # file") and its traceback, status 1 where the signal's was due.
    port, log = free_port(), tmp_path / "serve.log"
    variables = environment(SERVING_CLOSE_STDOUT="1")
    process = start(_command(port, *SERVE_MODES[mode]), port=port, log=log, env=variables)
    try:
        answer = httpx.get(f"http://{HOST}:{port}/close-stdout", timeout=10)
        assert answer.text == "closed"
    finally:
        stop(process, timeout=10)
    assert process.returncode == -signal.SIGTERM, read_log(log)
    assert "WARNING:microweb: cannot write to stdout: I/O operation on closed file" in (
        read_log(log)
    )
    # NOTE: Uvicorn's access log says its own error, with the call stack of the request.
    assert "in end_by" not in read_log(log), read_log(log)


@contextlib.contextmanager
def _serving_source(tmp_path: Path, mode: str, source: str) -> Iterator[tuple[int, Path]]:
    """Serve ``source``'s ``app``, written as ``logging_app.py`` in ``tmp_path`` (which the app
    may log into: ``$LOGGING_APP_DIR``), the way ``mode`` says; yield its port and log once it
    has said it serves."""
    with _started_source(tmp_path, mode, source) as (port, log, _):
        wait_for(lambda: "serving on" in read_log(log), "serving line", log)
        yield port, log


@contextlib.contextmanager
def _started_source(
    tmp_path: Path, mode: str, source: str
) -> Iterator[tuple[int, Path, subprocess.Popen[bytes]]]:
    """Serve ``source``'s ``app`` as ``_serving_source()`` does, but yield once it accepts
    connections, with its process: stopped when the block ends, its status read after."""
    (tmp_path / "logging_app.py").write_text(source)
    port, log = free_port(), tmp_path / "serve.log"
    command = [
        *(sys.executable, "-m", "microweb", "serve", "logging_app:app", "--host", HOST),
        *("--port", str(port), *SERVE_MODES[mode]),
    ]
    variables = environment(LOGGING_APP_DIR=str(tmp_path))
    process = start(command, port=port, log=log, env=variables, cwd=tmp_path)
    try:
        yield port, log, process
    finally:
        stop(process, timeout=10)


def _written(tmp_path: Path) -> str:
    """What the app's processes wrote into their own log files."""
    return "".join(path.read_text() for path in tmp_path.glob("[0-9]*.log"))


_LOGGING_APP = """
import logging, os
from microweb import App

# NOTE: mode "w": a FileHandler closed once writes nothing more (Python's bpo-42378).
path = os.path.join(os.environ["LOGGING_APP_DIR"], f"{os.getpid()}.log")
handler = logging.FileHandler(path, "w")
logger = logging.getLogger("logging_app")
logger.addHandler(handler)
logger.setLevel(logging.INFO)
app = App()


@app.get("/")
def home(request):
    logger.info("served by %d", os.getpid())
    return "ok"
"""


@pytest.mark.parametrize("mode", ["uvicorn", "workers", "reload"])
def test_the_apps_own_log_handlers_outlive_uvicorns_logging_set_up(
    tmp_path: Path, mode: str
) -> None:
    # NOTE: Uvicorn sets its loggers up with logging.config.dictConfig(), which closes every
    # handler there is: the single process imports the app first, and a handler the app made
    # as it was imported wrote nothing more.
    with _serving_source(tmp_path, mode, _LOGGING_APP) as (port, log):
        assert httpx.get(f"http://{HOST}:{port}/", timeout=10).text == "ok"
    assert "served by " in _written(tmp_path), read_log(log)
    # NOTE: Uvicorn's own lines still go out, in each process that serves.
    assert "Application startup complete." in read_log(log)


# NOTE: an app's own logging set-up; as it is imported, or in a startup hook, as an app that
# reads its logging set-up from its settings once started does.
_DICT_CONFIG = """logging.config.dictConfig({
    "version": 1,
    "handlers": {"file": {
        "class": "logging.FileHandler",
        "filename": os.path.join(os.environ["LOGGING_APP_DIR"], f"{os.getpid()}.log"),
    }},
    "root": {"handlers": ["file"], "level": "INFO"},
})
"""
_DICT_CONFIGURED_APP = """
import logging.config, os
from microweb import App

{at_import}
app = App()

{in_a_hook}

@app.get("/")
def home(request):
    raise RuntimeError("broken")
"""
_AT_IMPORT = _DICT_CONFIGURED_APP.format(at_import=_DICT_CONFIG, in_a_hook="")
_IN_A_HOOK = _DICT_CONFIGURED_APP.format(
    at_import="",
    in_a_hook="@app.on_startup\ndef configure():\n" + textwrap.indent(_DICT_CONFIG, "    "),
)


@pytest.mark.parametrize(
    ("source", "mode"),
    [
        *[
            pytest.param(_AT_IMPORT, mode, id=f"import-{mode}")
            for mode in SERVE_MODES
            if mode != "reload"
        ],
        *[pytest.param(_IN_A_HOOK, mode, id=f"hook-{mode}") for mode in SERVE_MODES],
    ],
)
def test_an_apps_own_dict_config_leaves_the_servers_and_microwebs_loggers_on(
    tmp_path: Path, source: str, mode: str
) -> None:
    # NOTE: dictConfig() disables the loggers there are (disable_existing_loggers, True by
    # default): an app that set its logging up so as it was imported silenced microweb's
    # errors, and Uvicorn's lines where Uvicorn's loggers were set up first. They were then
    # turned on again after the app's import only: one in a startup hook left microweb's errors
    # and Uvicorn's access lines unlogged.
    with _serving_source(tmp_path, mode, source) as (port, log):
        assert httpx.get(f"http://{HOST}:{port}/", timeout=10).status_code == 500
    written = _written(tmp_path)
    assert "unhandled error in GET /" in written, read_log(log)
    if mode != "waitress":
        assert '"GET / HTTP/1.1" 500' in written + read_log(log), read_log(log)
        # NOTE: in a hook too, as without microweb: the hook's dictConfig() disabled
        # "uvicorn.error" before Uvicorn logged the line, and it went nowhere.
        assert "Application startup complete." in written + read_log(log), read_log(log)


_LOGGERS_TURNED_OFF_APP = """
import logging
from microweb import App

# NOTE: turned off one by one, with no dictConfig(): the app's own choice.
logging.getLogger("microweb").disabled = True
logging.getLogger("uvicorn.access").disabled = True
app = App()


@app.get("/")
def home(request):
    raise RuntimeError("broken")
"""


@pytest.mark.parametrize("mode", ["uvicorn", "waitress", "workers", "reload"])
def test_loggers_the_app_turned_off_itself_stay_off(tmp_path: Path, mode: str) -> None:
    # NOTE: microweb serve turned on again every logger of microweb's and the servers' that was
    # off after the app's import, for a dictConfig() disables them: one the app had turned off
    # itself logged all the same.
    with _serving_source(tmp_path, mode, _LOGGERS_TURNED_OFF_APP) as (port, log):
        assert httpx.get(f"http://{HOST}:{port}/", timeout=10).status_code == 500
    # NOTE: read once the server has stopped: whatever it logged is in the file.
    written = read_log(log)
    assert "unhandled error in GET /" not in written and "broken" not in written
    assert '"GET / HTTP/1.1" 500' not in written
    if mode != "waitress":
        assert "Application startup complete." in written


_LEVELLED_APP = """
import logging
from microweb import App

logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
app = App()


@app.get("/")
def home(request):
    return "home"
"""


@pytest.mark.parametrize("mode", ["uvicorn", "workers", "reload"])
def test_log_level_sets_uvicorns_levels_over_the_apps_in_every_process(
    tmp_path: Path, mode: str
) -> None:
    # NOTE: a worker or the reloader's child set Uvicorn's levels before it imported the app,
    # and a level the app gave "uvicorn.access" held there: its access lines went, while a
    # single process logged them at --log-level.
    with _serving_source(tmp_path, mode, _LEVELLED_APP) as (port, log):
        assert httpx.get(f"http://{HOST}:{port}/", timeout=10).status_code == 200
        wait_for(lambda: '"GET / HTTP/1.1" 200' in read_log(log), "access line", log)


_STDERR_APP = """
import os, sys
from microweb import App

# NOTE: line-buffered, so each line is in the file once written.
sys.stderr = open(os.path.join(os.environ["LOGGING_APP_DIR"], f"{os.getpid()}.log"), "w", 1)
app = App()


@app.get("/")
def home(request):
    return "home"
"""


@pytest.mark.parametrize("mode", ["uvicorn", "workers", "reload"])
def test_an_app_that_replaces_stderr_as_it_is_imported_gets_uvicorns_lines(
    tmp_path: Path, mode: str
) -> None:
    # NOTE: Uvicorn's handlers are made before the app's import (_uvicorn.Config): they kept
    # the stderr there was, where Uvicorn's own set-up after the import had taken the app's.
    with _serving_source(tmp_path, mode, _STDERR_APP) as (port, log):
        assert httpx.get(f"http://{HOST}:{port}/", timeout=10).text == "home"
    assert "Application startup complete." in _written(tmp_path), read_log(log)
    assert "Application startup complete." not in read_log(log)


_NO_STDOUT_APP = """
import sys
from microweb import App

sys.stdout = None  # NOTE: as print() then writes nothing, nor should a log handler.
app = App()


@app.get("/")
def home(request):
    return "home"
"""


@pytest.mark.parametrize("mode", ["uvicorn", "workers", "waitress"])
def test_an_app_that_sets_stdout_to_none_gets_no_logging_errors(tmp_path: Path, mode: str) -> None:
    # NOTE: Uvicorn's access log wrote to the sys.stdout of the moment, None: "--- Logging
    # error ---" and an AttributeError's traceback on stderr for every request. And the stop
    # flushed None: a traceback, and status 1 where the signal's was due.
    with _started_source(tmp_path, mode, _NO_STDOUT_APP) as (port, log, process):
        for _ in range(2):
            assert httpx.get(f"http://{HOST}:{port}/", timeout=10).text == "home"
    assert process.returncode == -signal.SIGTERM, read_log(log)
    if mode != "waitress":
        assert "Application startup complete." in read_log(log)
    assert "Logging error" not in read_log(log), read_log(log)
    assert "Traceback" not in read_log(log), read_log(log)


_CLOSING_STDERR_APP = """
import sys
from microweb import App

app = App()


@app.get("/close")
def close(request):
    sys.stderr.close()
    return "closed"


@app.get("/broken")
def broken(request):
    raise RuntimeError("broken")


@app.get("/")
def home(request):
    return "home"
"""


@pytest.mark.parametrize("mode", ["uvicorn", "workers", "waitress"])
def test_an_app_that_closes_stderr_is_served_all_the_same(tmp_path: Path, mode: str) -> None:
    # NOTE: the log handlers write to a closed stream: its ValueError went out of logging
    # (its handleError() writes to sys.stderr too) into Uvicorn's send(), and no request was
    # answered. A closed stream drops the line, as a None one does.
    with _started_source(tmp_path, mode, _CLOSING_STDERR_APP) as (port, log, process):
        # NOTE: every process of the workers closes its own: each is asked a few times.
        for _ in range(4):
            assert httpx.get(f"http://{HOST}:{port}/close", timeout=10).text == "closed"
            assert httpx.get(f"http://{HOST}:{port}/broken", timeout=10).status_code == 500
            assert httpx.get(f"http://{HOST}:{port}/", timeout=10).text == "home"
    assert process.returncode == -signal.SIGTERM, read_log(log)


_CLOSED_STDOUT_APP = """
import sys
from microweb import App

sys.stdout.close()
app = App()


@app.get("/")
def home(request):
    return "home"
"""


@pytest.mark.parametrize("mode", ["uvicorn", "workers", "waitress"])
def test_an_app_that_closes_stdout_as_it_is_imported_is_served(tmp_path: Path, mode: str) -> None:
    # NOTE: the serving line's print() raised ValueError ("I/O operation on closed file") out
    # of the server's start: a traceback, and the app was not served.
    with _started_source(tmp_path, mode, _CLOSED_STDOUT_APP) as (port, log, process):
        assert httpx.get(f"http://{HOST}:{port}/", timeout=10).text == "home"
    assert process.returncode == -signal.SIGTERM, read_log(log)
    assert "Traceback" not in read_log(log), read_log(log)


_CLOSES_STDERR_AND_FAILS_APP = """
import sys

sys.stderr.close()
raise RuntimeError("broken")
"""


@pytest.mark.parametrize("mode", ["uvicorn", "workers", "waitress"])
def test_a_target_that_closes_stderr_and_fails_to_load_ends_with_status_2(
    tmp_path: Path, mode: str
) -> None:
    # NOTE: the traceback printed to the closed stderr raised ValueError out of main(): status
    # 1 (Python's), where a target that cannot load ends with 2, and "lost sys.stderr".
    (tmp_path / "logging_app.py").write_text(_CLOSES_STDERR_AND_FAILS_APP)
    command = [
        *(sys.executable, "-m", "microweb", "serve", "logging_app:app", "--host", HOST),
        *("--port", str(free_port()), *SERVE_MODES[mode]),
    ]
    result = subprocess.run(
        pinned(command), cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr


_CLOSES_STDERR_AND_DOES_NOT_COMPILE_APP = """
import sys
from microweb import App

app = App()
app.get("/users/{name}", name="by_name")(lambda request, name: name)
# NOTE: never reached (the str parameter takes /users/7), refused as the app compiles.
app.get("/users/{id:int}", name="by_id")(lambda request, id: str(id))
sys.stderr.close()
"""


def test_routes_of_an_app_that_closes_stderr_and_does_not_compile_ends_with_status_3(
    tmp_path: Path,
) -> None:
    # NOTE: the traceback printed to the closed stderr raised ValueError out of main(): status
    # 1 (Python's), where an app that does not compile ends "microweb routes" with 3, as
    # "microweb serve".
    (tmp_path / "clash_app.py").write_text(_CLOSES_STDERR_AND_DOES_NOT_COMPILE_APP)
    result = subprocess.run(
        [sys.executable, "-m", "microweb", "routes", "clash_app:app"],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""


_OWN_STDOUT_APP = """
import sys
from microweb import App


class Lines:
    # NOTE: a stdout of the app's own with no file descriptor (no fileno()).
    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        return self._stream.write(text)

    def flush(self):
        self._stream.flush()


sys.stdout = Lines(sys.stdout)
app = App()


@app.get("/")
def home(request):
    return "home"
"""


def test_an_access_log_no_one_reads_through_an_apps_own_stdout_answers_every_request(
    tmp_path: Path,
) -> None:
    # NOTE: Uvicorn's access log writes to the sys.stdout of the moment, here the app's own:
    # once its reader had gone, the handler's BrokenPipeError handling asked it for a file
    # descriptor, and the AttributeError went out of Uvicorn's send(): no request answered.
    (tmp_path / "logging_app.py").write_text(_OWN_STDOUT_APP)
    port, log = free_port(), tmp_path / "serve.log"
    command = [
        *(sys.executable, "-m", "microweb", "serve", "logging_app:app", "--host", HOST),
        *("--port", str(port), *SERVE_MODES["uvicorn"]),
    ]
    with log.open("wb") as errors:
        process = subprocess.Popen(
            pinned(command),
            cwd=tmp_path,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    try:
        assert process.stdout is not None
        assert b"microweb: serving on" in process.stdout.readline(), read_log(log)
        process.stdout.close()  # NOTE: the reader goes away.
        for _ in range(3):
            assert httpx.get(f"http://{HOST}:{port}/", timeout=10).text == "home"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    finally:
        stop(process)
    assert process.returncode == -signal.SIGTERM, read_log(log)
    assert "Traceback" not in read_log(log), read_log(log)


_ASYNCIO_LOGGING_APP = """
import logging, logging.config, os
from microweb import App

# NOTE: the app's own set-up of asyncio's logger, made as it is imported.
logging.config.dictConfig({
    "version": 1,
    "handlers": {"app": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {"asyncio": {"handlers": ["app"], "level": "DEBUG", "propagate": False}},
})
app = App()


@app.get("/")
def home(request):
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.warning("socket.send() raised exception.")
    asyncio_logger.warning("socket.sendto() raised exception.")
    asyncio_logger.warning("another warning from %d", os.getpid())
    return str(os.getpid())
"""


@pytest.mark.parametrize("mode", ["uvicorn", "workers", "reload"])
def test_lost_writes_are_left_out_in_every_process_and_nothing_else(
    tmp_path: Path, mode: str
) -> None:
    # NOTE: microweb serve filters asyncio's "socket.send() raised exception." (_LostWrites):
    # in each worker and the reloader's child, past the app's own dictConfig(), and only it.
    with _serving_source(tmp_path, mode, _ASYNCIO_LOGGING_APP) as (port, log):
        pids = set()
        deadline = time.monotonic() + 10
        while len(pids) < MODE_PROCESSES.get(mode, 1) and time.monotonic() < deadline:
            pids.add(httpx.get(f"http://{HOST}:{port}/", timeout=10).text)
    written = read_log(log)
    assert len(pids) == MODE_PROCESSES.get(mode, 1), written
    assert "socket.send() raised exception." not in written, written
    for pid in pids:
        assert f"another warning from {pid}" in written, written
    assert "socket.sendto() raised exception." in written, written


def _wait_with(
    monkeypatch: pytest.MonkeyPatch,
    uvicorns_wait: Callable[[], Any],
    cut_after: float | None,
    left_running: list[asyncio.Task[Any]] | None = None,
) -> OrderlyUvicorn:
    """Run OrderlyUvicorn's wait for requests in flight over ``uvicorns_wait`` (Uvicorn's own),
    with a second signal ``cut_after`` seconds in (none if None); return the server. The tasks
    still running a moment after the wait ended go into ``left_running``."""

    async def stand_in(self: uvicorn.Server) -> None:
        await uvicorns_wait()

    monkeypatch.setattr(uvicorn.Server, "_wait_tasks_to_complete", stand_in)
    server = OrderlyUvicorn(uvicorn.Config(App().as_asgi(), lifespan="off"))

    async def run() -> None:
        if cut_after is not None:
            asyncio.get_running_loop().call_later(cut_after, setattr, server, "cut_short", True)
        try:
            await server._wait_tasks_to_complete()
        finally:
            await asyncio.sleep(0.01)
            others = asyncio.all_tasks() - {asyncio.current_task()}
            (left_running if left_running is not None else []).extend(others)

    asyncio.run(run())
    return server


def test_a_second_signal_cuts_uvicorns_wait_short_and_cancels_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: the grace period's end, as Uvicorn's shutdown() takes it; its own wait, still
    # looking for requests, is cancelled, not left running (review355).
    async def endless() -> None:
        await asyncio.sleep(30)

    started = time.monotonic()
    left_running: list[asyncio.Task[Any]] = []
    with pytest.raises(asyncio.TimeoutError):
        _wait_with(monkeypatch, endless, cut_after=0.1, left_running=left_running)
    # NOTE: a margin for a busy machine; a wait not cut short would take 30 s (review386).
    assert time.monotonic() - started < 5
    assert left_running == []


def test_uvicorns_wait_ends_as_it_does_without_a_second_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def short() -> None:
        await asyncio.sleep(0.12)

    server = _wait_with(monkeypatch, short, cut_after=None)
    assert not server.cut_short

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise OSError("in Uvicorn's wait")

    # NOTE: what Uvicorn's wait raises comes through (review355).
    with pytest.raises(OSError, match="in Uvicorn's wait"):
        _wait_with(monkeypatch, failing, cut_after=None)
