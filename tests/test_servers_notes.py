"""examples/notes/ served by `microweb serve` under Waitress and Uvicorn, checked by its smoke.py:
log in, add a note with an attachment through the form, read part of the attachment back."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from notes_example import NOTES_DIR, SECRET, add_user, imported
from servers import HOST, environment, free_port, start, stop


@pytest.mark.servers
@pytest.mark.parametrize("server", ["uvicorn", "waitress"])
def test_notes_app_under_a_real_server(server: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    command = [sys.executable, "-m", "microweb", "serve", "examples/notes/app.py"]
    command += ["--port", str(port), "--server", server]
    with imported(NOTES_DIR) as notes:
        add_user(notes.create_app(data, SECRET), "alice", "correct horse")
        smoke = importlib.import_module("smoke")
        env = environment(NOTES_DATA=str(data), NOTES_SECRET=SECRET)
        process = start(command, port=port, log=tmp_path / "serve.log", env=env, ready_timeout=15)
        try:
            smoke.check(f"http://{HOST}:{port}", "alice", "correct horse")
        finally:
            stop(process, timeout=10)
    assert len(list((data / "attachments").iterdir())) == 1
