"""A file sent under ASGI (or gzip's of it) holds no thread of the pool while its client takes it.

The ASGI callable is driven by hand, as a server would drive it, with a client that stops
taking the body (its ``send()`` never returns) or leaves, and a pool of one thread; the read
itself (``aiter_file_read``) is driven step by step against a pool of one thread.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from drive import asgi_get, http_scope, staying_client

from microweb import App, Request, Response
from microweb._file_threads import READS_PER_CALL, aiter_file_read
from microweb._files import stat_file
from microweb._pool import WorkerPool
from microweb._pool_futures import run_in_pool
from microweb.plugins import GZip

# NOTE: the collections here are of what each test makes (conftest.young_heap).
pytestmark = pytest.mark.usefixtures("young_heap")

Message = dict[str, Any]
# NOTE: more than the chunks a sync stream reads ahead of the loop (16 of 64 KiB).
BIG = 4 * 1024 * 1024


def pool_app(folder: Path) -> App:
    app = App(max_threads=1)
    app.install(GZip())

    @app.get("/big")
    def big(request: Request) -> Response:
        return Response.file(folder / "big.bin")

    @app.get("/big.txt")
    def big_text(request: Request) -> Response:
        return Response.file(folder / "big.txt")

    @app.get("/report")
    def report(request: Request) -> str:
        return (folder / "big.txt").read_text()

    @app.get("/page")
    def page(request: Request) -> str:
        return "page"

    return app


async def stalled_download(
    asgi: Any, path: str, first_chunk: asyncio.Event, headers: list[tuple[bytes, bytes]]
) -> None:
    """Request ``path`` as a client that takes the first body chunk and then stops reading."""

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            first_chunk.set()
            await asyncio.Event().wait()  # NOTE: a full socket buffer: send() never returns.

    await asgi(http_scope(path=path, headers=headers), staying_client(), send)


# NOTE: gzip's of a text file, and of a whole body too large to compress on the loop, were
# read in one pool thread held until the client took the last chunk, as a file's own was.
DOWNLOADS = {
    "file": ("/big", []),
    "gzip of a file": ("/big.txt", [(b"accept-encoding", b"gzip")]),
    "gzip of a whole body": ("/report", [(b"accept-encoding", b"gzip")]),
}


@pytest.mark.parametrize("download", list(DOWNLOADS))
def test_a_client_that_stops_reading_a_file_holds_no_pool_thread(
    tmp_path: Path, download: str
) -> None:
    # NOTE: the file's read ran in one pool thread from start to end, which waited there for
    # the client: App.max_threads such clients (or slow ones, downloading a video) held the
    # whole pool, and every def handler, Static's own included, waited until they left.
    (tmp_path / "big.bin").write_bytes(os.urandom(BIG))
    # NOTE: text that compresses about in half, so that gzip's chunks outlast the read-ahead.
    (tmp_path / "big.txt").write_text(os.urandom(BIG).hex())
    asgi = pool_app(tmp_path).as_asgi()
    path, headers = DOWNLOADS[download]

    async def scenario() -> tuple[int, bytes]:
        first_chunk = asyncio.Event()
        stalled = asyncio.ensure_future(stalled_download(asgi, path, first_chunk, headers))
        try:
            await asyncio.wait_for(first_chunk.wait(), timeout=10)
            # NOTE: the file's reads, ahead of the stalled send(), have had their time.
            for _ in range(100):
                await asyncio.sleep(0)
            # NOTE: a guard against a hang, not a timing: the page comes at once or never.
            return await asyncio.wait_for(asgi_get(asgi, "/page"), timeout=10)
        finally:
            stalled.cancel()
            await asyncio.gather(stalled, return_exceptions=True)

    assert asyncio.run(scenario()) == (200, b"page")


def open_descriptors_of(path: Path) -> int:
    """Count this process's file descriptors open on ``path``."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve()))


def test_a_file_whose_client_leaves_mid_read_is_closed_with_nothing_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to count open files")
    (tmp_path / "big.bin").write_bytes(os.urandom(BIG))
    asgi = pool_app(tmp_path).as_asgi()

    async def leaving_client() -> int:
        first_chunk, delivered, sent = asyncio.Event(), False, 0

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await first_chunk.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.body" and message.get("body"):
                sent += len(message["body"])
                first_chunk.set()
                await asyncio.sleep(0)  # NOTE: the disconnect is heard while a read runs.

        await asyncio.wait_for(asgi(http_scope(path="/big"), receive, send), timeout=10)
        return sent

    with caplog.at_level("WARNING", logger="microweb"):
        sent = asyncio.run(leaving_client())
    assert 0 < sent < BIG
    assert open_descriptors_of(tmp_path / "big.bin") == 0
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


def test_a_read_that_fails_after_its_client_left_is_not_logged_as_never_retrieved(
    tmp_path: Path,
) -> None:
    # NOTE: the next chunks are read while a chunk is sent; when that read failed (the file
    # shrank) and the client had left meanwhile, asyncio logged "Future exception was never
    # retrieved" with the read's traceback.
    path = tmp_path / "shrinks.bin"
    path.write_bytes(os.urandom(3 * READS_PER_CALL * 65536))
    chunks = stat_file(path).chunks()
    pool = WorkerPool(1)
    unhandled: list[dict[str, Any]] = []

    async def leave_after_a_failed_read() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: unhandled.append(context)
        )
        read = aiter_file_read(chunks, pool)
        for _ in range(READS_PER_CALL):
            await anext(read)  # NOTE: the first call's chunks; the second call has begun.
        await run_in_pool(pool, lambda: None)  # NOTE: the pool's one thread has ended it.
        gate = threading.Event()
        pool.call(gate.wait)
        await anext(read)  # NOTE: one of the second call's; the third waits behind the gate.
        path.write_bytes(b"")
        gate.set()
        await run_in_pool(pool, lambda: None)  # NOTE: the third call has failed.
        await read.aclose()
        del read
        gc.collect()

    try:
        asyncio.run(leave_after_a_failed_read())
    finally:
        pool.shutdown()
    assert unhandled == []
