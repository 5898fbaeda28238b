"""Files the server's user can't read, through Waitress and Uvicorn run as a user that isn't
root (``nobody`` when the suite runs as root, since root reads every file)."""

from __future__ import annotations

import os
import shutil
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
