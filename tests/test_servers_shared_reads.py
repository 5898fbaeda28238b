"""Reads of one body at the same time (``asyncio.gather``) and a form a flow kept, through
real servers: Waitress (WSGI, the body whole before the app runs) and Uvicorn (ASGI, the
body in the pieces the client sent)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from servers import HOST, serving_plainly

pytestmark = pytest.mark.servers

URLENCODED = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module", params=["waitress", "uvicorn"])
def base_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    server = str(request.param)
    app, folder = "shared_reads_app:app", f"shared-reads-{server}"
    with serving_plainly(server, app, tmp_path_factory, folder) as (port, _):
        yield f"http://{HOST}:{port}"


def _pieces(body: bytes) -> Iterator[bytes]:
    """The body in pieces of 64 KiB, sent chunked."""
    for start in range(0, len(body), 65536):
        yield body[start : start + 65536]


def test_three_forms_read_at_once_are_one_form(base_url: str) -> None:
    body = b"x=" + b"1" * 300_000
    answer = httpx.post(f"{base_url}/forms", content=_pieces(body), headers=URLENCODED)
    assert answer.status_code == 200
    assert answer.json() == {"x": ["1" * 300_000] * 3}


def test_whole_reads_at_once_share_the_body(base_url: str) -> None:
    data = {"k": "v" * 300_000}
    body = json.dumps(data).encode()
    headers = {"content-type": "application/json"}
    answer = httpx.post(f"{base_url}/whole", content=_pieces(body), headers=headers)
    assert answer.status_code == 200
    assert answer.json() == {"sizes": [len(body), len(body)], "data": data}


def test_a_kept_form_counts_its_files_named_empty_that_hold_data(base_url: str) -> None:
    part = b'--b\r\nContent-Disposition: form-data; name="f"; filename=""\r\n\r\nabc\r\n'
    headers = {"content-type": "multipart/form-data; boundary=b"}
    answer = httpx.post(f"{base_url}/kept", content=part * 2 + b"--b--\r\n", headers=headers)
    assert (answer.status_code, answer.text) == (413, "the form has more than 1 files")
    one = httpx.post(f"{base_url}/kept", content=part + b"--b--\r\n", headers=headers)
    assert (one.status_code, one.json()) == (200, {"items": 1})
