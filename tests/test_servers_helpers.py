"""tests/servers.py: a server that is being started is stopped whatever ends the wait."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import servers


class Interrupted(BaseException):
    """Stands for Ctrl-C's KeyboardInterrupt, which pytest would take for the session's."""


def test_a_server_interrupted_while_it_starts_is_stopped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[subprocess.Popen[bytes]] = []
    popen = subprocess.Popen

    def recorded(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(popen(*args, **kwargs))
        return started[-1]

    def interrupt(*args: Any, **kwargs: Any) -> None:
        raise Interrupted

    port = servers.free_port()
    monkeypatch.setattr(servers.subprocess, "Popen", recorded)
    # NOTE: the wait's connection attempt is where Ctrl-C lands; servers.py's own socket only.
    monkeypatch.setattr(servers, "socket", SimpleNamespace(create_connection=interrupt))
    never_listens = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(Interrupted):
        servers.start(never_listens, port=port, log=tmp_path / "log")
    assert len(started) == 1 and started[0].poll() is not None


def test_the_wait_for_a_server_to_close_lasts_until_it_has(tmp_path: Path) -> None:
    # NOTE: a server counts a connection against --connection-limit until it has closed its
    # side; a fixed pause after the client's close was too short on a loaded machine.
    port, log = servers.free_port(), tmp_path / "log"
    log.write_text("")
    if servers._connections_the_server_keeps(port) is None:
        pytest.skip("no /proc/net/tcp")
    with socket.create_server((servers.HOST, port)) as listener:
        client = socket.create_connection((servers.HOST, port))
        accepted, _ = listener.accept()
        with client, accepted:
            client.close()
            with pytest.raises(AssertionError, match="no close by the server"):
                servers.wait_for_server_to_close(port, log, timeout=0)
            assert servers._connections_the_server_keeps(port) == 1
        servers.wait_for_server_to_close(port, log)


@pytest.mark.skipif(sys.platform != "linux", reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_a_server_ends_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    # NOTE: a run that pytest-xdist aborts skips the tests' teardown; a server it had started
    # served on for 1 h 40 min, its port taken.
    port, log = servers.free_port(), tmp_path / "log"
    tests = Path(servers.__file__).parent
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, servers\n"
            "from pathlib import Path\n"
            f"command = [sys.executable, '-m', 'http.server', '{port}', '--bind', servers.HOST]\n"
            f"process = servers.start(command, port={port}, log=Path({str(log)!r}))\n"
            "print(process.pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        cwd=tests,
        stdout=subprocess.PIPE,
    )
    server_pid = None
    try:
        assert starter.stdout is not None
        server_pid = int(starter.stdout.readline())
        starter.kill()
        starter.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running(server_pid):
            time.sleep(0.05)
        assert not _running(server_pid), "the server outlived the process that started it"
    finally:
        starter.kill()
        starter.wait(timeout=10)
        if starter.stdout is not None:
            starter.stdout.close()
        if server_pid is not None and _running(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    # NOTE: its parent is gone, so init reaps it: a pid that no longer exists, or a zombie.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_handed_out_port_stays_bound_until_its_server_listens() -> None:
    # NOTE: the project's CI shares its machine: a program that took a port between the
    # suite's check and its server's bind answered every request there with a 403. Another
    # program's check by a plain bind fails now; a server's bind (SO_REUSEADDR) does not.
    port = servers.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other, pytest.raises(OSError):
        other.bind((servers.HOST, port))
    with socket.create_server((servers.HOST, port)):
        pass


def test_a_handed_out_port_no_server_listened_on_is_released() -> None:
    # NOTE: conftest.py releases them as each test ends; they were held until the worker ended.
    port = servers.free_port()
    servers.release_ports()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind((servers.HOST, port))


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc")
def test_a_port_another_program_listens_on_is_not_taken_for_the_server(tmp_path: Path) -> None:
    port = servers.free_port()
    never_listens = [sys.executable, "-c", "import time; time.sleep(60)"]
    with (
        socket.create_server((servers.HOST, port)),
        pytest.raises(pytest.fail.Exception, match="another program listens there"),
    ):
        servers.start(never_listens, port=port, log=tmp_path / "log", ready_timeout=1.0)


def test_a_server_that_cannot_bind_beside_the_held_port_is_told_why(tmp_path: Path) -> None:
    port = servers.free_port()
    plain = f"import socket; socket.socket().bind(({servers.HOST!r}, {port}))"
    with pytest.raises(pytest.fail.Exception, match="bind it with SO_REUSEADDR"):
        servers.start([sys.executable, "-c", plain], port=port, log=tmp_path / "log")


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc")
def test_an_fd_closed_as_the_fds_are_read_leaves_the_listening_socket_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: the server accepts and closes the connection made to see it listen while its fds
    # are read; the process whose fd had gone was skipped whole.
    readlink, seen = os.readlink, []

    def one_closed(path: Any) -> str:
        if not seen:
            seen.append(path)
            raise FileNotFoundError(path)
        return readlink(path)

    port = servers.free_port()
    with socket.create_server((servers.HOST, port)):
        monkeypatch.setattr(servers.os, "readlink", one_closed)
        assert servers._listens_in_tree(os.getpid(), port) is True
    assert seen


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc")
def test_a_server_that_listens_through_its_child_is_taken_as_listening(tmp_path: Path) -> None:
    port = servers.free_port()
    script = (
        "import socket, subprocess, sys, time\n"
        f'listen = \'import socket, time; s = socket.create_server(("{servers.HOST}", {port}));'
        " time.sleep(60)'\n"
        "subprocess.Popen([sys.executable, '-c', listen])\n"
        "time.sleep(60)\n"
    )
    process = servers.start([sys.executable, "-c", script], port=port, log=tmp_path / "log")
    children = servers._tree(process.pid)[1:]
    servers.stop(process)
    for child in children:  # NOTE: the listening child: its parent's end does not end it
        os.kill(child, signal.SIGKILL)
