"""The answer side of ``StallTimer``: a client that stops reading its answer is closed.

Served over real sockets on 127.0.0.1, in this process, by the protocol ``microweb serve``
gives each of Uvicorn's parsers: a transport's write buffer, its pauses and its ``abort()``
are asyncio's own. The request side (heads and bodies that stop coming) is tested read by read
in ``test_httptools.py``; here only a body that a def handler's read waits for through a flow
task's read.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from test_httptools import PROTOCOLS, Protocols
from uvicorn.server import ServerState

from microweb import App, Request, Response

CHUNK = b"x" * 65536


def _streaming_app(ended: threading.Event) -> App:
    """An app whose two routes stream without end, in each colour; ``ended`` is set when the
    stream is closed."""
    app = App(max_threads=1)

    @app.get("/def")
    def sync_stream(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            try:
                while True:
                    yield CHUNK
            finally:
                ended.set()

        return Response.stream(chunks())

    @app.get("/async")
    async def async_stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield CHUNK
                    await asyncio.sleep(0)
            finally:
                ended.set()

        return Response.stream(chunks())

    return app


async def _client(port: int, path: str, connection: str = "") -> socket.socket:
    """A client that has sent ``GET path`` (with ``Connection: connection``, if given)."""
    # NOTE: a small receive buffer, so that the server's buffer fills soon.
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setblocking(False)
    await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
    field = f"Connection: {connection}\r\n" if connection else ""
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{field}\r\n".encode())
    return client


def _serve(
    protocol_class: Protocols,
    app: Any,
    client_reads: Any,
    send_buffer: int | None = 16384,
    state: ServerState | None = None,
    **options: Any,
) -> tuple[bool, bool]:
    """Serve ``app`` on a free port (Uvicorn's ``options``, its ``state`` if given) and run
    ``client_reads(port)``; return whether the connection was closed by the server, and
    whether the stream ended, when it returns."""
    ended = threading.Event()
    state = ServerState() if state is None else state

    async def run() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        config = uvicorn.Config(
            app(ended).as_asgi(), lifespan="off", log_level="critical", **options
        )
        server = await loop.create_server(
            lambda: protocol_class(config, state, {}, loop), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        if send_buffer is not None:
            # NOTE: a small send buffer for the connections it accepts, so that what a slow
            # client reads frees room at once (the kernel's own grows to megabytes).
            server.sockets[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        try:
            closed = await client_reads(port)
            for _ in range(200):
                if ended.is_set():
                    break
                await asyncio.sleep(0.01)
            return closed, ended.is_set()
        finally:
            for connection in list(state.connections):
                connection.transport.abort()
            # NOTE: the app hears that its client left, and its task ends in this loop.
            for _ in range(200):
                if ended.is_set() and not state.tasks:
                    break
                await asyncio.sleep(0.01)
            server.close()
            await server.wait_closed()

    return asyncio.run(run())


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
@pytest.mark.parametrize("path", ["/def", "/async"])
def test_a_client_that_stops_reading_is_closed_and_the_stream_ends(
    monkeypatch: pytest.MonkeyPatch, protocol_class: Protocols, path: str
) -> None:
    # NOTE: the app's send waited for the buffer to drain for ever; a def stream held its
    # pool thread (one such client per thread shut every def route). Waitress closes it under
    # microweb serve after its channel_timeout.
    monkeypatch.setattr(protocol_class, "stall_timeout", 0.5)
    events: list[threading.Event] = []

    def app(ended: threading.Event) -> App:
        events.append(ended)
        return _streaming_app(ended)

    async def stop_reading(port: int) -> bool:
        client = await _client(port, path)
        # NOTE: reads nothing for up to 2 s (four times the timeout), or until the stream has
        # ended: the server has closed the connection then, and what is left is drained.
        for _ in range(200):
            if events[0].is_set():
                break
            await asyncio.sleep(0.01)
        return await asyncio.get_running_loop().run_in_executor(None, _drained, client)

    closed, ended = _serve(protocol_class, app, stop_reading)
    assert closed
    assert ended


def _drained(client: socket.socket) -> bool:
    """Read what is buffered; return whether the server ended the connection within 5 s."""
    with client:
        client.settimeout(1)
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline:
                if not client.recv(1 << 20):
                    return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return False  # NOTE: the stream still flows: nothing closed it.


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
@pytest.mark.parametrize("path", ["/def", "/async"])
def test_a_client_that_reads_slowly_is_not_closed(
    monkeypatch: pytest.MonkeyPatch, protocol_class: Protocols, path: str
) -> None:
    monkeypatch.setattr(protocol_class, "stall_timeout", 1.5)

    async def read_slowly(port: int) -> bool:
        client = await _client(port, path)
        with client:
            # NOTE: 64 KiB every 50 ms for 3 s: longer than the timeout; the server's writing
            # pauses all along (the stream has no end), and resumes every 0.3 s or so.
            for _ in range(60):
                await asyncio.sleep(0.05)
                try:
                    if not client.recv(65536):
                        return True
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    return True
        return False

    closed, ended = _serve(protocol_class, _streaming_app, read_slowly)
    assert not closed
    assert ended  # NOTE: once the client left.


BIG = b"x" * (4 << 20)


async def _until_dropped(state: ServerState, most: float) -> None:
    """Wait until the server has had a connection and has none left, or ``most`` seconds."""
    had = False
    for _ in range(round(most / 0.01)):
        had = had or bool(state.connections)
        if had and not state.connections:
            return
        await asyncio.sleep(0.01)


def _reading_nothing(path: str, connection: str, size: int, state: ServerState) -> Any:
    """A client (as ``_serve`` takes it, with ``state``) that asks for ``path`` (an answer of
    ``size`` bytes) with ``Connection: connection``, reads nothing for 2.5 s or until the
    server has dropped the connection, then all it can: whether it got less than the whole
    answer (the server closed)."""

    async def read_nothing(port: int) -> bool:
        client = await _client(port, path, connection)
        await _until_dropped(state, 2.5)
        read = await asyncio.get_running_loop().run_in_executor(None, _read_all, client)
        return read < size

    return read_nothing


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
@pytest.mark.parametrize("connection", ["close", "keep-alive"])
def test_a_client_that_reads_nothing_of_a_whole_answer_is_closed(
    monkeypatch: pytest.MonkeyPatch, protocol_class: Protocols, connection: str
) -> None:
    # NOTE: the answer is whole in the transport's buffer, and Uvicorn closes the connection
    # after it (Connection: close, or its keep-alive timeout, 5 s, long before the stall
    # timeout): close() waits for the buffer to be sent, and the timer skipped a transport
    # that was closing, so a client that read nothing held the connection and the megabytes
    # of its answer for ever (16 MiB a connection for a 16 MiB body).
    monkeypatch.setattr(protocol_class, "stall_timeout", 1.0)
    app = _answer_app(len(BIG), "/big")
    state = ServerState()
    read_nothing = _reading_nothing("/big", connection, len(BIG), state)
    closed, _ = _serve(protocol_class, app, read_nothing, state=state, timeout_keep_alive=0.2)
    assert closed


def _answer_app(size: int, path: str = "/") -> Any:
    """An app (as ``_serve`` takes it) that answers ``GET path`` with ``size`` bytes in one
    body; ``ended`` is set once it has answered."""

    def app(ended: threading.Event) -> App:
        served = App()

        @served.get(path)
        def answer(request: Request) -> Response:
            ended.set()
            return Response(b"x" * size)

        return served

    return app


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
@pytest.mark.parametrize("connection", ["close", "keep-alive"])
@pytest.mark.parametrize("size", [40_000, 60_000])
def test_a_client_that_reads_nothing_of_an_answer_below_the_high_water_mark_is_closed(
    monkeypatch: pytest.MonkeyPatch, protocol_class: Protocols, connection: str, size: int
) -> None:
    # NOTE: what the kernel's queues could not take of an answer, below the transport's
    # high-water mark (64 KiB), never paused writing, so the timer never started: Uvicorn's
    # close() (Connection: close) waited for the buffer to be sent, and its keep-alive for the
    # buffer to empty (IdleOnceSent), for ever; a client that read nothing held the connection
    # (review331). Here the kernel takes about 20 KB (the buffers _serve and the client set).
    monkeypatch.setattr(protocol_class, "stall_timeout", 0.5)
    state = ServerState()
    read_nothing = _reading_nothing("/", connection, size, state)
    app = _answer_app(size)
    closed, _ = _serve(protocol_class, app, read_nothing, state=state, timeout_keep_alive=0.2)
    assert closed


def _two_answers_app(ended: threading.Event) -> App:
    """An app that answers ``GET /small`` with 40,000 bytes and ``GET /big`` with 4 MiB."""
    app = App()

    @app.get("/small")
    def small(request: Request) -> Response:
        return Response(b"x" * 40_000)

    @app.get("/big")
    def big(request: Request) -> Response:
        ended.set()
        return Response(BIG)

    return app


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_pause_after_an_answer_read_late_counts_from_the_pause(
    monkeypatch: pytest.MonkeyPatch, protocol_class: Protocols
) -> None:
    # NOTE: the end of the first answer stays in the transport's buffer (answer_ended() arms
    # the timer); the client reads it 0.5 s later, then asks for 4 MiB and reads nothing, so
    # writing pauses. The timer armed for the first answer, kept, looked 0.5 s after the pause
    # (1 s after that answer's end), and a look is due 1 s after the pause. Each look is timed
    # from the last time writing stopped, not the close from the request: the close came one
    # look (1 s) or two (2 s) after the pause, as the kernel had or had not taken the queue's
    # last bytes by the pause, and a busy machine made it one (review386). And 0.5 s, not 0.9:
    # a loop held 0.1 s let the first answer's own timer close the connection unread.
    lost: list[float] = []
    stopped: list[float] = []
    looks: list[float] = []

    class Timed(protocol_class):  # type: ignore[valid-type,misc]
        def connection_lost(self, exc: Exception | None) -> None:
            lost.append(time.monotonic())
            super().connection_lost(exc)

        def writing_stopped(self) -> None:
            stopped.append(time.monotonic())
            super().writing_stopped()

        def _check_writing(self) -> None:
            looks.append(time.monotonic())
            super()._check_writing()

    monkeypatch.setattr(Timed, "stall_timeout", 1.0)
    asked: list[float] = []

    async def read_late(port: int) -> bool:
        loop = asyncio.get_running_loop()
        with await _client(port, "/small") as client:
            await asyncio.sleep(0.5)
            read = b""
            while not (b"\r\n\r\n" in read and read.endswith(b"x" * 40_000)):
                read += await loop.sock_recv(client, 65536)
            asked.append(time.monotonic())
            client.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            # NOTE: up to 3 s for the server to close it (1 or 2 s after the pause).
            for _ in range(300):
                if lost:
                    break
                await asyncio.sleep(0.01)
        return bool(lost)

    closed, _ = _serve(Timed, _two_answers_app, read_late, timeout_keep_alive=10)
    assert closed
    first = next(look for look in looks if look > asked[0])
    since = max(stop for stop in stopped if stop < first)
    assert since > asked[0]  # NOTE: writing stopped for the big answer: the pause.
    assert first - since > 0.9, (first - since, looks, stopped, asked)
    assert lost[0] - asked[0] > 0.9


def _read_all(client: socket.socket) -> int:
    """Read until the server ends the connection (or 5 s pass); return the bytes read."""
    read = 0
    with client:
        client.settimeout(1)
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline:
                data = client.recv(1 << 20)
                if not data:
                    break
                read += len(data)
        except (ConnectionResetError, TimeoutError):
            pass
    return read


def _after_a_fast_start(protocol_class: Protocols, read: int, ticks: int) -> tuple[bool, bool]:
    """Stream to a client that reads all it can for 0.5 s, then ``read`` bytes every 100 ms
    (nothing, for 0) for ``ticks`` ticks; return whether the server closed the connection
    meanwhile, and whether the stream ended."""
    events: list[threading.Event] = []

    def app(ended: threading.Event) -> App:
        events.append(ended)
        return _streaming_app(ended)

    async def fast_then_slow(port: int) -> bool:
        loop = asyncio.get_running_loop()
        client = socket.socket()
        # NOTE: a receive buffer of its own size, so that what the client reads opens its
        # window soon (the kernel's own grows to megabytes, and then the server sees the
        # reads only seconds later, which made the first test fail under load).
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        client.setblocking(False)
        with client:
            await loop.sock_connect(client, ("127.0.0.1", port))
            client.sendall(b"GET /async HTTP/1.1\r\nHost: x\r\n\r\n")
            began = loop.time()
            while loop.time() - began < 0.5:
                with contextlib.suppress(BlockingIOError):
                    client.recv(1 << 20)
                await asyncio.sleep(0.001)
            for _ in range(ticks):
                await asyncio.sleep(0.1)
                if events[0].is_set():
                    return True  # NOTE: the server aborted the connection; the stream ended.
                if read:
                    with contextlib.suppress(BlockingIOError):
                        client.recv(read)
        return False

    return _serve(protocol_class, app, fast_then_slow, send_buffer=None)


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_client_that_slows_down_after_a_fast_start_is_not_closed(
    monkeypatch: pytest.MonkeyPatch, protocol_class: Protocols
) -> None:
    # NOTE: after a fast start the kernel's send queue holds megabytes, and the transport's
    # buffer moves only once it has sent about a third of them: a client reading 320 KiB/s
    # was closed within 3 s of stall_timeout (review50). The kernel's queue counts now.
    monkeypatch.setattr(protocol_class, "stall_timeout", 1.5)
    # NOTE: 32 KiB every 100 ms, 4.5 s: three times the timeout.
    closed, _ = _after_a_fast_start(protocol_class, 32768, 45)
    assert not closed


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_client_that_stops_reading_after_a_fast_start_is_closed(
    monkeypatch: pytest.MonkeyPatch, protocol_class: Protocols
) -> None:
    # NOTE: the kernel's send queue counts as unsent: what leaves it for the client's receive
    # buffer (megabytes after a fast start) looks like reading, until that buffer is full. On
    # the loopback the close came 3.0 s after the last read at a 1.5 s timeout (1.5 s when
    # only the transport's buffer counted); a queue that shrank at each look kept it for ever.
    monkeypatch.setattr(protocol_class, "stall_timeout", 1.5)
    # NOTE: then nothing, for up to six times the timeout.
    closed, ended = _after_a_fast_start(protocol_class, 0, 90)
    assert closed
    assert ended


def _shared_read_app(ended: threading.Event, told: list[str]) -> App:
    """An app whose def handler's read waits for a read that a flow's task began (to share the
    body it keeps); ``told`` gets what the handler's read raised (``ended`` is set then), and
    then what the task's did."""
    app = App(max_threads=1)

    @app.middleware
    async def reads_in_a_task(request: Request) -> AsyncIterator[None]:
        task = asyncio.ensure_future(request.aread())
        await asyncio.sleep(0.05)  # NOTE: the task has claimed the body, and waits for it.
        try:
            yield
        finally:
            try:
                await task
            except Exception as exc:
                told.append(f"task {type(exc).__name__}: {exc}")

    @app.post("/")
    def handler(request: Request) -> str:
        try:
            return str(len(request.read()))
        except Exception as exc:
            told.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            ended.set()

    return app


@pytest.mark.parametrize("protocol_class", PROTOCOLS)
def test_a_def_read_waiting_for_a_flow_tasks_read_of_a_body_that_stops_ends(
    monkeypatch: pytest.MonkeyPatch, protocol_class: Protocols
) -> None:
    # NOTE: a def handler's read that waits for a flow task's read (review269) waits with no
    # bound of its own: the task's read ends once the timer closes a client that stopped
    # sending its body, and the handler's read with it, with the same ClientDisconnect; its
    # pool thread is let go (review291).
    monkeypatch.setattr(protocol_class, "stall_timeout", 0.5)
    told: list[str] = []

    async def stops_sending(port: int) -> bool:
        client = socket.socket()
        client.setblocking(False)
        await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
        client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        return await asyncio.get_running_loop().run_in_executor(None, _drained, client)

    closed, ended = _serve(
        protocol_class, lambda ended: _shared_read_app(ended, told), stops_sending
    )
    assert closed
    assert ended
    gone = "ClientDisconnect: the client disconnected before the body was read"
    assert told == [gone, f"task {gone}"]
