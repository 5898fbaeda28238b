"""The log handlers of ``microweb serve`` on streams that app code closed or broke: a line is
dropped, never raised into the server (the subprocess tests are in test_cli_processes.py)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from microweb._serve_log import serving_loggers_on
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


@pytest.fixture
def loggers_kept() -> Iterator[None]:
    """Give every logger back the ``disabled`` it had once the test ends."""
    kept = {
        each: each.disabled
        for each in logging.root.manager.loggerDict.values()
        if isinstance(each, logging.Logger)
    }
    yield
    for each, disabled in kept.items():
        each.disabled = disabled


def _all_disabled() -> None:
    """Disable every logger there is, as a ``dictConfig()`` of the app's does (without closing
    this process's handlers, which a real one would)."""
    for each in logging.root.manager.loggerDict.values():
        if isinstance(each, logging.Logger):
            each.disabled = True


@pytest.mark.usefixtures("loggers_kept")
def test_the_serving_loggers_come_on_again_after_each_dict_config() -> None:
    microweb_logger, access = logging.getLogger("microweb"), logging.getLogger("uvicorn.access")
    serving_loggers_on()
    # NOTE: the second round is a second dictConfig() (in a startup hook, after one at
    # import): the probe was on again after the first look, and the app's choice after it holds.
    for by_name in (microweb_logger, access):
        # NOTE: turned off by name, with no dictConfig() since the last look: the app's choice.
        by_name.disabled = True
        serving_loggers_on()
        assert by_name.disabled
        _all_disabled()
        serving_loggers_on()
        assert not microweb_logger.disabled and not access.disabled


def test_the_probe_logger_has_a_private_name() -> None:
    # NOTE: it shows in logging.root.manager.loggerDict (logging_tree, an app's own listing);
    # named "microweb-serve-probe", nothing said it was microweb's own, not to be touched.
    names = logging.root.manager.loggerDict
    others = [name for name in names if "microweb" in name and name.partition(".")[0] != "microweb"]
    assert others == ["_microweb_serve_probe"]
