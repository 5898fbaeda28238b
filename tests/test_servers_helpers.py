"""tests/servers.py: a server that is being started is stopped whatever ends the wait."""

from __future__ import annotations

import subprocess
import sys
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
