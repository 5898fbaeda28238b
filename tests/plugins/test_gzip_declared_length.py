"""GZip over a stream whose length the app declared (``response.length``): still held to it.

Without GZip, a stream that yields fewer or more bytes than its declared length is cut off as
an error, so that no client takes part of a body for the whole of it (docs/responses.md).
Compressed, the length is no longer sent, but the stream is the same (review181).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Request, Response
from microweb._emission import StreamLengthError
from microweb.plugins import GZip

PIECES = [b"first half of the export, ", b"and then the file ended"]


def _pieces() -> Iterator[bytes]:
    yield from PIECES


async def _apieces() -> AsyncIterator[bytes]:
    for piece in PIECES:
        await asyncio.sleep(0)
        yield piece


@pytest.mark.parametrize("gzip", [False, True])
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("declared", [len(PIECES[0]) + 100, len(PIECES[0]) + len(PIECES[1]) - 1])
def test_a_stream_of_another_length_than_declared_is_cut_with_gzip_as_without(
    make_client: MakeClient,
    interface: str,
    colour: str,
    gzip: bool,
    kind: str,
    declared: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: compressed, a stream that ended short went out as a whole gzip body, and one
    # that went on was sent whole: the client took part of a body for all of it.
    app = App()
    if gzip:
        app.install(GZip(minimum_size=0))

    def export(request: Request) -> Response:
        response = Response.stream(_pieces() if kind == "sync" else _apieces(), "text/plain")
        response.length = declared
        return response

    app.get("/export")(in_colour(colour, export))
    client = make_client(app)
    with caplog.at_level(logging.ERROR, logger="microweb"), pytest.raises(StreamLengthError):
        client.get("/export", headers={"accept-encoding": "gzip"})
    logged = [r for r in caplog.records if r.name == "microweb"]
    assert [r.getMessage() for r in logged] == ["error while streaming GET /export"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_of_its_declared_length_is_compressed_without_it(
    make_client: MakeClient, interface: str, kind: str
) -> None:
    app = App()
    app.install(GZip(minimum_size=0))

    @app.get("/export")
    def export(request: Request) -> Response:
        response = Response.stream(_pieces() if kind == "sync" else _apieces(), "text/plain")
        response.length = sum(map(len, PIECES))
        return response

    answer = make_client(app).get("/export", headers={"accept-encoding": "gzip"})
    assert answer.headers["content-encoding"] == "gzip"
    assert "content-length" not in answer.headers
    assert answer.content == b"".join(PIECES)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_list_of_another_length_than_declared_is_a_500_to_a_head_as_to_a_get(
    make_client: MakeClient, interface: str, method: str
) -> None:
    # NOTE: with GZip, the GET's list was counted (a 500) and the HEAD's was not: a 200
    # labelled gzip, where without GZip both are a 500 (review184).
    app = App()
    app.install(GZip(minimum_size=0))

    @app.route("/export", methods=["GET", "HEAD"])
    def export(request: Request) -> Response:
        response = Response.stream(list(PIECES), "text/plain")
        response.length = sum(map(len, PIECES)) + 1
        return response

    answer = make_client(app).request(method, "/export", headers={"accept-encoding": "gzip"})
    assert answer.status_code == 500
    assert "content-encoding" not in answer.headers
