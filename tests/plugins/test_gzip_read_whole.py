"""GZip of a whole body past 64 KiB, which it compresses as a stream: a ``length`` left on the
response (a flow that read a file response into ``response.body`` keeps the file's size) is
not the stream's (review169).

Before review168 the gzip stream went out under the file's ``Content-Length`` (120,000 for
284 bytes); since, a stream is held to its length, and the response was cut as an error.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Request, Response
from microweb.plugins import GZip

TEXT = b"hello world\n" * 10_000  # NOTE: 120,000 bytes, past GZip's 64 KiB compressed inline.


def read_whole_app(tmp_path: Path, colour: str) -> App:
    """An app whose flow reads a file response into its body, under GZip."""
    page = tmp_path / "page.txt"
    page.write_bytes(TEXT)
    app = App()
    app.install(GZip())

    def whole(response: Response) -> None:
        if response.chunks is not None:
            response.body = b"".join(response.chunks)
            response.chunks = None

    if colour == "sync":

        def flow(request: Request) -> Generator[None, Response, None]:
            whole((yield))

    else:

        async def flow(request: Request) -> AsyncGenerator[None, Response]:
            whole((yield))

    app.middleware(flow)

    def page_of(request: Request) -> Response:
        return Response.file(page)

    app.get("/page")(in_colour(colour, page_of))
    return app


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_file_read_whole_by_a_flow_is_compressed_whole(
    make_client: MakeClient, tmp_path: Path, colour: str, method: str, caplog: Any
) -> None:
    client = make_client(read_whole_app(tmp_path, colour))
    with caplog.at_level("ERROR", logger="microweb"):
        answer = client.request(method, "/page", headers={"accept-encoding": "gzip"})
    assert caplog.records == []
    assert answer.status_code == 200
    assert answer.headers["content-encoding"] == "gzip"
    # NOTE: the compressed size is not known before it is sent: no Content-Length, not the file's.
    assert "content-length" not in answer.headers
    assert answer.content == (TEXT if method == "GET" else b"")


def test_the_same_file_is_sent_plain_to_a_client_without_gzip(
    make_client: MakeClient, tmp_path: Path, colour: str
) -> None:
    client = make_client(read_whole_app(tmp_path, colour))
    answer = client.get("/page", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in answer.headers
    assert answer.headers["content-length"] == str(len(TEXT))
    assert answer.content == TEXT
