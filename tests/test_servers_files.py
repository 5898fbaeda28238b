"""Files through Waitress and Uvicorn: files the server's user can't read (the server run as a
user that isn't root, ``nobody`` when the suite runs as root, since root reads every file), and
downloads whose clients stop reading."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import HOST, REPO_ROOT, environment, free_port, running

pytestmark = pytest.mark.servers


def as_unprivileged() -> list[str]:
    """Return the command prefix that runs a command as a user that isn't root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and no setpriv to run the server as nobody")
    prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    check = subprocess.run([*prefix, sys.executable, "-c", "import microweb"], cwd=REPO_ROOT)
    if check.returncode != 0:
        pytest.skip("nobody can't run this checkout's Python")
    return prefix


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder the server's user may enter, with files it can't read."""
    path = Path(tempfile.mkdtemp(prefix="microweb-files-"))
    try:
        path.chmod(0o755)
        (path / "readable.txt").write_text("ok")
        (path / "unreadable.txt").write_text("private")
        (path / "unreadable.txt").chmod(0)
        (path / "docs").mkdir(mode=0o755)
        (path / "docs" / "index.html").write_text("<h1>private</h1>")
        (path / "docs" / "index.html").chmod(0)
        yield path
    finally:
        shutil.rmtree(path)


@pytest.mark.parametrize("server", ["waitress", "uvicorn"])
def test_unreadable_files_are_answered_before_any_header(
    server: str, folder: Path, tmp_path: Path
) -> None:
    port = free_port()
    serve = [sys.executable, "-m", "microweb", "serve", "tests/files_app.py"]
    command = [*as_unprivileged(), *serve, "--server", server, "--port", str(port)]
    env = environment(FILES_APP_DIR=str(folder))
    with (
        running(command, port=port, log=tmp_path / "server.log", env=env),
        httpx.Client(base_url=f"http://{HOST}:{port}") as client,
    ):
        # NOTE: found at the first read, it was a 200 with its Content-Length, then a cut
        # connection (a HEAD: a 200), and a traceback logged for each request.
        for method in ("GET", "HEAD"):
            for url in ("/static/unreadable.txt", "/static/docs/"):
                assert client.request(method, url).status_code == 404, (method, url)
            direct = client.request(method, "/direct/unreadable.txt")
            assert direct.status_code == 500, method
        assert client.get("/direct/unreadable.txt").text == "Internal Server Error"
        assert client.get("/static/readable.txt").text == "ok"


def file_opened_by(prefix: list[str], path: Path) -> str:
    """Return what ``Response.file(path)`` gives in a process run under ``prefix``: the
    file's text, or ``refused`` when it raises (before any header would be sent)."""
    code = (
        "import sys\n"
        "from microweb import Response\n"
        "try:\n"
        "    response = Response.file(sys.argv[1])\n"
        "except PermissionError:\n"
        "    print('refused', end='')\n"
        "else:\n"
        "    print(b''.join(response.chunks).decode(), end='')\n"
    )
    done = subprocess.run(
        [*prefix, sys.executable, "-c", code, str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=environment(),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        # NOTE: the real uid root passed the check, and the read failed after the headers.
        (["--euid=nobody", "--egid=nogroup", "--clear-groups"], "refused"),
        # NOTE: a file the server may read by a capability, not its uid, was refused (404).
        (
            [
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--inh-caps=+dac_read_search",
                "--ambient-caps=+dac_read_search",
            ],
            "private",
        ),
    ],
    ids=["effective-uid", "capability"],
)
def test_readability_is_that_of_the_effective_ids(
    folder: Path, ids: list[str], expected: str
) -> None:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run a process with other ids")
    as_unprivileged()  # NOTE: skips when nobody can't run this checkout's Python
    assert file_opened_by([setpriv, *ids], folder / "unreadable.txt") == expected


@pytest.mark.parametrize(
    ("server", "request_line"),
    [
        ("uvicorn", b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("uvicorn", b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1-\r\n\r\n"),
        ("waitress", b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1-\r\n\r\n"),
    ],
    ids=["uvicorn-whole", "uvicorn-range", "waitress-range"],
)
def test_clients_that_stop_reading_files_hold_no_server_thread(
    tmp_path: Path, server: str, request_line: bytes
) -> None:
    # NOTE: under Uvicorn, a file's read held one of the pool's threads until its client had
    # taken the last chunk, and under Waitress a range's (a whole file goes to its file
    # wrapper): --threads stalled downloads (or slow ones, a video seeked in) left no thread
    # for any def handler, Static's own included, until the stall timer closed them (120 s).
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "big.bin").write_bytes(os.urandom(32 * 1024 * 1024))
    (folder / "small.txt").write_text("small")
    port = free_port()
    serve = [sys.executable, "-m", "microweb", "serve", "tests/files_app.py"]
    command = [*serve, "--server", server, "--port", str(port), "--threads", "2"]
    env = environment(FILES_APP_DIR=str(folder))
    stalled: list[socket.socket] = []
    with running(command, port=port, log=tmp_path / "server.log", env=env):
        try:
            for _ in range(3):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect((HOST, port))
                sock.sendall(request_line)
                sock.settimeout(10)
                assert sock.recv(64).startswith(b"HTTP/1.1 20")  # NOTE: its read has begun.
                stalled.append(sock)
            # NOTE: a guard against a hang, not a timing: the answer comes at once or never.
            with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=15) as client:
                assert client.get("/static/small.txt").text == "small"
                assert client.get("/direct/small.txt").text == "small"
        finally:
            for sock in stalled:
                sock.close()
