"""A streamed response's close that does not return in time, through real servers: each says so
in its log, naming the request; Uvicorn (ASGI) ends the response after ``CLOSE_WAIT``, Waitress
(WSGI) only once the close has returned, in the thread it held (see ``closing_app.py``)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from closing_app import SLOW_CLOSE
from servers import HOST, free_port, plain_command, read_log, running

pytestmark = pytest.mark.servers


@pytest.mark.parametrize("server", ["waitress", "uvicorn"])
def test_a_close_that_does_not_return_in_time_is_in_the_servers_log(
    server: str, tmp_path: Path
) -> None:
    # NOTE: under Waitress such a close held one of its 4 threads with no word in any log: four
    # of them stopped the server, and nothing said why.
    port, log = free_port(), tmp_path / "server.log"
    with running(plain_command(server, "closing_app:app", port), port=port, log=log):
        started = time.monotonic()
        response = httpx.get(f"http://{HOST}:{port}/slow-close", timeout=10)
        took = time.monotonic() - started
        told = "GET /slow-close: the close of its streamed response, closing_app.SlowClose, "
        deadline = time.monotonic() + 5
        while read_log(log).count(told) < (2 if server == "waitress" else 1):
            assert time.monotonic() < deadline, read_log(log)
            time.sleep(0.05)
    assert response.content == b"nene"
    text = read_log(log)
    assert f"{told}has not returned in time" in text, text
    if server == "waitress":
        # NOTE: the end of the chunked response came once the close returned.
        assert took >= SLOW_CLOSE
        assert "it runs in the WSGI server's thread, which it holds" in text, text
        assert f"{told}returned after" in text, text
    else:
        assert took < SLOW_CLOSE
        assert "the response is ended, and the close runs on" in text, text
