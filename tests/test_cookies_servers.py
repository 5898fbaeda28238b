"""Cookie headers through real servers: Waitress (WSGI) and Uvicorn with h11 (ASGI) give the app
the same cookies as the test client does (``tests/test_cookies_prefixes.py``)."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import httpx
import pytest
from servers import HOST, serving_module, uvicorn_command, waitress_command

pytestmark = pytest.mark.servers

APP = "hostile_app:app"


@pytest.fixture(scope="module", params=["waitress", "uvicorn"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """An HTTP client bound to ``hostile_app`` under one real server, for the whole module."""
    name = str(request.param)
    command = functools.partial(_command, name)
    with (
        serving_module(name, command, tmp_path_factory) as (port, _),
        httpx.Client(base_url=f"http://{HOST}:{port}", timeout=5.0) as http,
    ):
        yield http


def _command(name: str, port: int) -> list[str]:
    if name == "waitress":
        return waitress_command(f"{APP}.as_wsgi", port)
    return uvicorn_command(f"{APP}.as_asgi", port)


@pytest.mark.parametrize("space", ["\xa0", "\u2000", "\u3000"])
def test_a_name_after_a_unicode_space_is_not_the_prefixed_name(
    client: httpx.Client, space: str
) -> None:
    # NOTE: as a browser sends a cookie that a sibling subdomain's script set as
    # "\u2000__Host-id": its name's UTF-8 bytes, which both servers hand over as latin-1 text.
    client.cookies.clear()
    header = f"{space}__Host-id=planted; __Host-id=own".encode()
    answer = client.get("/cookie/get", headers={"cookie": header})  # type: ignore[dict-item]
    assert answer.json() == {f"{space}__Host-id": "planted", "__Host-id": "own"}
