"""The log handlers of ``microweb serve`` on streams that app code closed or broke: a line is
dropped, never raised into the server (the subprocess tests are in test_cli_processes.py)."""

from __future__ import annotations

import io
import logging

import pytest

from microweb._stopping import OpenStreamHandler


class Broken(io.StringIO):
    """A stream of app code's own whose every write raises."""

    def write(self, text: str) -> int:
        raise RuntimeError("broken stream")


def record() -> logging.LogRecord:
    return logging.LogRecord("microweb", logging.ERROR, __file__, 1, "a line", None, None)


def test_a_closed_stream_drops_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    stream, report = io.StringIO(), io.StringIO()
    stream.close()
    monkeypatch.setattr("sys.stderr", report)
    OpenStreamHandler(stream).handle(record())
    assert report.getvalue() == ""


@pytest.mark.parametrize("closed_stderr", [True, False])
def test_a_stream_that_raises_never_raises_out_of_logging(
    monkeypatch: pytest.MonkeyPatch, closed_stderr: bool
) -> None:
    # NOTE: logging reports a handler's error on sys.stderr, passing over an OSError only: a
    # closed sys.stderr's ValueError, or a broken one's own error, went out of the log call
    # (into Uvicorn's send(), where no answer was sent).
    stderr = io.StringIO() if closed_stderr else Broken()
    if closed_stderr:
        stderr.close()
    monkeypatch.setattr("sys.stderr", stderr)
    OpenStreamHandler(Broken()).handle(record())
