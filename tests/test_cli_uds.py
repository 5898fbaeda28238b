"""``microweb serve --uds PATH``: the app on a Unix socket, the same under both servers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import environment, pinned, read_log, stop, wait_for

import microweb._cli as cli
from microweb._unix import SOCKET_MODE, bind_unix

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
SERVERS = ("uvicorn", "waitress")


@contextlib.contextmanager
def serving(
    path: Path, log: Path, *options: str, timeout: float = 15, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``microweb serve serving_app --uds path`` (in ``cwd``); yield it once it says it
    serves."""
    command = [sys.executable, "-m", "microweb", "serve", "serving_app", "--uds", str(path)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            pinned([*command, *options]),
            env=environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    try:
        wait_for(
            lambda: process.poll() is not None or "serving on" in read_log(log),
            "serving line",
            log,
            timeout,
        )
        assert process.poll() is None, read_log(log)
        yield process
    finally:
        stop(process, timeout=10)


def client(path: Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://app.test")


def raw_exchange(path: Path, request: bytes) -> bytes:
    """Send ``request`` on a connection of its own; return all until the server closes."""
    received = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(str(path))
        conn.sendall(request)
        while chunk := conn.recv(65536):
            received += chunk
    return received


def stale_socket(path: Path) -> None:
    """Leave a socket file at ``path`` that nobody listens on (a killed server's)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


# -- real servers ---------------------------------------------------------------------------


@pytest.mark.parametrize("server", SERVERS)
def test_serves_on_a_unix_socket_and_removes_it_at_the_end(tmp_path: Path, server: str) -> None:
    path = tmp_path / "app.sock"
    stale_socket(path)
    log = tmp_path / "serve.log"
    options = ["--server", server, "--root-path", "/app", "--forwarded-allow-ips", "*"]
    with serving(path, log, *options, "--client-timeout", "1") as process:
        assert f"microweb: serving on unix:{path} with {server}" in read_log(log)
        assert stat.S_IMODE(path.stat().st_mode) == SOCKET_MODE
        with client(path) as http:
            where = http.get("/app/where").json()
            assert where["client"] is None
            assert (where["root_path"], where["url_for"]) == ("/app", "/app/where")
            assert where["url"] == "http://app.test/app/where"
            forwarded = {"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"}
            proxied = http.get("/app/where", headers=forwarded).json()
            assert (proxied["client"], proxied["scheme"]) == ("203.0.113.9", "https")
            with http.stream("GET", "/app/ticks") as streamed:
                lines = streamed.iter_lines()
                assert [next(lines), next(lines)] == ["tick", "tick"]
        # NOTE: HTTP/1.0 without Host: no host at all (Waitress gave the path as its port: 500).
        answer = raw_exchange(path, b"GET /app/where HTTP/1.0\r\n\r\n")
        assert answer.split(b" ", 2)[1] == b"200", answer
        # NOTE: relative: "http:///app/where" is read as the host "app".
        assert b'"url":"/app/where"' in answer, answer
        # NOTE: a head that stops coming is closed after --client-timeout (1 s).
        started = time.monotonic()
        raw_exchange(path, b"GET /app/where HTTP/1.1\r\nHost: a")
        assert time.monotonic() - started < 4
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == -signal.SIGTERM, read_log(log)
    assert not path.exists(), read_log(log)


def test_workers_share_the_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    log = tmp_path / "serve.log"
    with serving(path, log, "--workers", "2") as process:
        with client(path) as http:
            assert http.get("/where").json()["client"] is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == -signal.SIGTERM, read_log(log)
    assert not path.exists(), read_log(log)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_relative_path_of_one_character(tmp_path: Path, workers: str) -> None:
    # NOTE: the socket's name is its path, of which the announcement took [1] as the port:
    # a path of one character was an IndexError with a traceback (status 1, or 3 with
    # workers), under Uvicorn.
    log = tmp_path / "serve.log"
    with serving(Path("s"), log, "--workers", workers, cwd=tmp_path) as process:
        assert f"microweb: serving on unix:{tmp_path / 's'} with uvicorn" in read_log(log)
        with client(tmp_path / "s") as http:
            assert http.get("/where").status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == -signal.SIGTERM, read_log(log)
    assert not (tmp_path / "s").exists(), read_log(log)


@pytest.mark.parametrize("given", ["absolute", "relative"])
@pytest.mark.parametrize("server", SERVERS)
def test_a_file_at_the_path_is_never_deleted(tmp_path: Path, server: str, given: str) -> None:
    # NOTE: the error names the absolute path, as "serving on" does (a relative one said
    # nothing of where it was: review180).
    path = tmp_path / "app.sock"
    path.write_text("precious")
    command = [sys.executable, "-m", "microweb", "serve", "serving_app", "--server", server]
    uds = str(path) if given == "absolute" else path.name
    done = subprocess.run(
        pinned([*command, "--uds", uds]),
        env=environment(),
        cwd=tmp_path,
        capture_output=True,
        timeout=30,
    )
    # NOTE: an option that names the wrong file (status 2, said before the app's import),
    # where it was a failed start (status 3), as for a port that is taken.
    assert done.returncode == 2, done
    assert path.read_text() == "precious"
    error = done.stderr.decode()
    assert error == (
        f"microweb: error: --uds {path} exists and is not a socket (it is left as it is)\n"
    )


# -- the command line and the socket (in-process) -------------------------------------------


@pytest.mark.parametrize("given", ["absolute", "relative"])
def test_a_path_in_a_missing_folder_is_refused(
    tmp_path: Path,
    given: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: logged as a failed start (status 3) once the app had been imported and its
    # plugins applied; a typo in the option, said as the other options' are.
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "missing" / "app.sock"
    uds = str(path) if given == "absolute" else "missing/app.sock"
    assert cli.main(["serve", "no_such_module_at_all", "--uds", uds]) == 2
    assert capsys.readouterr().err == (
        f"microweb: error: --uds {path}: there is no folder {path.parent}\n"
    )


@pytest.mark.parametrize("option", [["--port", "8000"], ["--host", "127.0.0.1"]])
def test_uds_with_host_or_port_is_refused(
    tmp_path: Path, option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "serving_app", "--uds", str(tmp_path / "a.sock"), *option]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert error == (
        "microweb: error: --uds listens on a Unix socket: --host and --port don't go with it\n"
    )
    assert not (tmp_path / "a.sock").exists()


def test_uds_with_forwarded_addresses_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "serving_app", "--uds", str(tmp_path / "a.sock")]
    assert cli.main([*argv, "--forwarded-allow-ips", "127.0.0.1"]) == 2
    assert "give '*' to trust the proxy in front of it" in capsys.readouterr().err
    assert not (tmp_path / "a.sock").exists()


@pytest.mark.parametrize("path", ["", "caf\udce9.sock", "a\nb.sock"])
def test_a_path_of_no_printable_text_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    path: str,
) -> None:
    # NOTE: bytes of no UTF-8 (as "caf\xe9.sock" comes from the command line) were bound, then
    # printing the path ended the start with UnicodeEncodeError under a UTF-8 locale; a newline
    # split the line that says where it serves; "" bound a socket with no file ("unix::").
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("microweb._serving.listen_unix", pytest.fail)
    assert cli.main(["serve", "serving_app", "--uds", path]) == 2
    error = capsys.readouterr().err
    assert error == f"microweb: error: --uds must be a path of printable text, got {path!r}\n"
    assert list(tmp_path.iterdir()) == []


def test_a_socket_another_server_listens_on_is_left(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(path))
        other.listen()
        assert bind_unix(str(path)) is None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(path))  # NOTE: still the other server's.


def test_a_socket_whose_server_accepts_nothing_is_left_at_once(tmp_path: Path) -> None:
    # NOTE: the check's connect waited for room in a full accept queue (a server that hangs,
    # or was stopped): the start hung for ever, saying nothing.
    path = tmp_path / "app.sock"
    results: list[object] = []
    with contextlib.ExitStack() as stack:
        other = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        other.bind(str(path))
        other.listen(0)
        with contextlib.suppress(BlockingIOError):
            for _ in range(8):
                waiting = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
                waiting.setblocking(False)
                waiting.connect(str(path))
        checking = threading.Thread(target=lambda: results.append(bind_unix(str(path))))
        checking.start()
        checking.join(timeout=5)
        assert results == [None]
    checking.join()  # NOTE: the listener closed, a connect still waiting is refused.


def test_a_stale_socket_is_replaced_and_removed_only_while_it_is_ours(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    stale_socket(path)
    listener = bind_unix(str(path))
    assert listener is not None
    listener.sock.close()
    os.unlink(path)
    path.write_text("someone else's")
    listener.remove()
    assert path.read_text() == "someone else's"


def test_a_relative_path_is_removed_after_a_change_of_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: app code that changes the working directory (at import, in a startup hook) made
    # the file be looked for in the new one, and left behind.
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    listener = bind_unix("app.sock")
    assert listener is not None
    listener.sock.close()
    os.chdir("elsewhere")
    listener.remove()
    assert not (tmp_path / "app.sock").exists()
