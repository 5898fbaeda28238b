"""A WebSocket route served under WSGI (``microweb serve --server waitress``), over the wire.

WSGI cannot hand a connection over: a handshake, and a plain request, to a WebSocket route get
the 501 that names ``as_asgi()``, and the app's HTTP routes are served as usual.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from servers import Uvicorn, run_served
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.servers

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def waitress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    """``microweb serve ws_seq_app --server waitress`` (a ``Uvicorn`` only for its URLs)."""
    with run_served("waitress", "ws_seq_app", tmp_path_factory.mktemp("waitress")) as server:
        yield server


def test_a_handshake_to_a_websocket_route_under_waitress_is_501(waitress: Uvicorn) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{waitress.ws_url}/seq/one", proxy=None, open_timeout=TIMEOUT)
    answer = refused.value.response
    assert answer.status_code == 501
    assert b"as_asgi()" in bytes(answer.body or b"")


def test_plain_http_to_a_websocket_route_under_waitress_is_501(waitress: Uvicorn) -> None:
    answer = httpx.get(f"{waitress.http_url}/seq/one", timeout=TIMEOUT)
    assert answer.status_code == 501
    assert "as_asgi()" in answer.text
    assert httpx.get(f"{waitress.http_url}/seq-log/one", timeout=TIMEOUT).json() == []
    log = waitress.log_text()
    assert "WARNING:microweb: this app has WebSocket routes" in log, log
    assert "Traceback" not in log, log
