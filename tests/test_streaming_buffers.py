"""A stream that yields one buffer it reuses: each chunk goes out as it was when yielded.

A ``readinto()`` loop yields a ``memoryview`` (or the ``bytearray``) of one buffer, then fills
it again: a WSGI server sends each chunk before it asks for the next. Where microweb runs a
stream in another thread than the one that sends it (a sync one under ASGI, an async one under
WSGI), it makes chunks ahead of the sender (review181).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Request, Response

DATA = bytes(range(256)) * 200


def _views() -> Iterator[memoryview]:
    source, buffer = io.BytesIO(DATA), bytearray(1000)
    view = memoryview(buffer)
    while size := source.readinto(buffer):
        yield view[:size]


async def _aviews() -> AsyncIterator[memoryview]:
    source, buffer = io.BytesIO(DATA), bytearray(1000)
    view = memoryview(buffer)
    while size := source.readinto(buffer):
        await asyncio.sleep(0)
        yield view[:size]


def _counter() -> Iterator[bytearray]:
    buffer = bytearray(4)
    for n in range(100):
        buffer[:] = b"%04d" % n
        yield buffer


async def _acounter() -> AsyncIterator[bytearray]:
    buffer = bytearray(4)
    for n in range(100):
        buffer[:] = b"%04d" % n
        yield buffer


STREAMS = {
    "sync-views": (_views, DATA),
    "async-views": (_aviews, DATA),
    "sync-bytearray": (_counter, b"".join(b"%04d" % n for n in range(100))),
    "async-bytearray": (_acounter, b"".join(b"%04d" % n for n in range(100))),
}


@pytest.mark.parametrize("stream", list(STREAMS))
def test_a_reused_buffer_goes_out_as_each_chunk_was_yielded(
    make_client: MakeClient, interface: str, colour: str, stream: str
) -> None:
    # NOTE: copied only when sent, the chunks made ahead were the buffer's last contents:
    # "0015" a hundred times for "0000" to "0099", under ASGI a sync stream, under WSGI an
    # async one.
    chunks, expected = STREAMS[stream]
    app = App()

    def index(request: Request) -> Response:
        return Response.stream(chunks())

    app.get("/")(in_colour(colour, index))
    assert make_client(app).get("/").content == expected
