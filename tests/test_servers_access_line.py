"""Uvicorn's access line under ``microweb serve``, for a request with a long target.

``tests/hostile_app.py`` runs under ``microweb serve --server uvicorn`` at ``--log-level
info`` (with httptools: ``servers.serve_command()`` runs h11 through the ``uvicorn`` command,
whose logging is Uvicorn's own).
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from servers import HOST, free_port, read_log, read_until_closed, running, serve_command, wait_for

from microweb._uvicorn import AccessLineCut

pytestmark = pytest.mark.servers

APP = "hostile_app:app"


def _uvicorns_record(full_path: str) -> logging.LogRecord:
    """An access record as Uvicorn makes one."""
    args = ("127.0.0.1:5000", "GET", full_path, "1.1", 404)
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )


@pytest.mark.parametrize(
    ("full_path", "logged"),
    [
        ("/a", "/a"),
        ("/" + "a" * 12_287, "/" + "a" * 12_287),
        ("/" + "a" * 12_288, "/" + "a" * 12_287 + "[...+1]"),
        ("/" + "%0A" * 5000, "/" + "%0A" * 4095 + "[...+2715]"),
        ("/a" + "%0A" * 5000, "/a" + "%0A" * 4095 + "[...+2715]"),
        ("/ab" + "%0A" * 5000, "/ab" + "%0A" * 4095 + "[...+2715]"),
    ],
)
def test_a_long_path_in_uvicorns_access_line_is_cut_whole_escapes_kept(
    full_path: str, logged: str
) -> None:
    record = _uvicorns_record(full_path)
    assert AccessLineCut().filter(record)
    assert record.args is not None
    assert record.args[2] == logged  # type: ignore[index]
    assert record.getMessage() == f'127.0.0.1:5000 - "GET {logged} HTTP/1.1" 404'


def test_a_long_method_in_uvicorns_access_line_is_cut() -> None:
    # NOTE: h11 takes any token for a method: Uvicorn wrote one as long as the head (256 KiB)
    # into each access line (review337).
    args = ("127.0.0.1:5000", "A" * 20_000, "/a", "1.1", 405)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )
    assert AccessLineCut().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "' + "A" * 64 + '[...+19936] /a HTTP/1.1" 405'
    record = _uvicorns_record("/a")
    record.args = ("127.0.0.1:5000", "A" * 64, "/a", "1.1", 405)
    assert AccessLineCut().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "' + "A" * 64 + ' /a HTTP/1.1" 405'


def test_another_record_of_uvicorns_access_logger_is_left_alone() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, "%s", ("x" * 20_000,), None
    )
    assert AccessLineCut().filter(record)
    assert record.args == ("x" * 20_000,)


def test_a_long_target_is_logged_cut(tmp_path: Path) -> None:
    # NOTE: Uvicorn wrote the whole target (up to the 256 KiB head) into each access line.
    pytest.importorskip("httptools")
    port = free_port()
    log = tmp_path / "server.log"
    command = serve_command("uvicorn-httptools", APP, port)
    command[command.index("--log-level") + 1] = "info"
    with running(command, port=port, log=log):
        with socket.create_connection((HOST, port), timeout=5) as sock:
            target = b"/" + b"%0A" * 60_000 + b"?" + b"q" * 60_000
            sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_until_closed(sock).startswith(b"HTTP/1.1 404 ")
        wait_for(lambda: 'HTTP/1.1" 404' in read_log(log), "access line", log)
    [line] = [line for line in read_log(log).splitlines() if 'HTTP/1.1" 404' in line]
    assert len(line) < 13_000
    assert "GET /%0A%0A" in line and "[...+" in line
