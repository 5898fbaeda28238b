"""One app behind Waitress and Uvicorn (h11 and httptools): the same answer to the same request.

``tests/parity_app.py`` answers with every kind of response; each request goes over a raw socket
to the three servers, and what the framework decides (status, headers, body) must be what
``TestClient(interface="both")`` says in process. What the servers add or change on the wire
(``Date``, ``Server``, header case and order, framing, when they close a connection) is left out
of the comparison and checked on its own below, as ``docs/wsgi-vs-asgi.md`` describes it.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from servers import HOST, environment, free_port, start, stop, uvicorn_command, waitress_command

from microweb.testing import TestClient

pytestmark = pytest.mark.servers

APP = "parity_app:app"
SERVERS = ("waitress", "uvicorn-h11", "uvicorn-httptools")
# NOTE: what a server adds or changes around the framework's answer.
SERVER_HEADERS = frozenset({"date", "server", "connection", "transfer-encoding"})
TIMEOUT = 5.0


@dataclass(frozen=True)
class Answer:
    """One response as it came over the wire."""

    status_line: bytes
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool

    @property
    def status(self) -> int:
        """The status code."""
        return int(self.status_line.split()[1])

    def framework_headers(self) -> list[tuple[str, str]]:
        """The headers the framework chose, names in lower case, in a server-neutral order."""
        named = [(name.lower(), value) for name, value in self.headers]
        kept = [pair for pair in named if pair[0] not in SERVER_HEADERS]
        return sorted(kept, key=lambda pair: pair[0])  # NOTE: stable: same names keep order.

    def header(self, name: str) -> str | None:
        """The first value of the header ``name``, or ``None``."""
        return next((v for n, v in self.headers if n.lower() == name), None)


class Connection:
    """A client connection that reads one response at a time, framing included."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def _more(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def _take_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._more():
                raise AssertionError(f"connection closed inside a line: {self.buffer!r}")
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._more():
                raise AssertionError(f"connection closed {size - len(self.buffer)} bytes short")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _dechunk(self) -> bytes:
        body = b""
        while size := int(self._take_line().split(b";")[0], 16):
            body += self._take(size)
            assert self._take(2) == b"\r\n"
        assert self._take_line() == b"", "trailers or a missing final CRLF"
        return body

    def request(self, method: str, path: str, *lines: str, version: str = "HTTP/1.1") -> Answer:
        """Send one request and read its response."""
        head = [f"{method} {path} {version}", "Host: testserver", *lines, "", ""]
        self.sock.sendall("\r\n".join(head).encode("latin-1"))
        return self.read_answer(method)

    def read_answer(self, method: str) -> Answer:
        """Read the response to a ``method`` request, after any ``100 Continue``."""
        status_line = self._take_line()
        while status_line.startswith(b"HTTP/1.1 1"):
            while self._take_line():
                pass
            status_line = self._take_line()
        headers = []
        while line := self._take_line():
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        answer = Answer(status_line, headers, b"", False)
        chunked = (answer.header("transfer-encoding") or "").lower() == "chunked"
        if method == "HEAD" or answer.status in (204, 304):
            body = b""
        elif chunked:
            body = self._dechunk()
        elif (length := answer.header("content-length")) is not None:
            body = self._take(int(length))
        else:
            while self._more():
                pass
            body, self.buffer = self.buffer, b""
        return Answer(status_line, headers, body, chunked)


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """Run the parity app under the three servers for the whole module."""
    pytest.importorskip("httptools")
    processes, found = [], {}
    try:
        for name in SERVERS:
            folder = tmp_path_factory.mktemp(name)
            port = free_port()
            if name == "waitress":
                command = waitress_command(f"{APP}.as_wsgi", port)
            else:
                command = [*uvicorn_command(f"{APP}.as_asgi", port), "--http", name[8:]]
            env = environment(PARITY_APP_DIR=str(folder))
            processes.append(start(command, port=port, log=folder / "server.log", env=env))
            found[name] = port
        yield found
    finally:
        for process in processes:
            stop(process)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The same app in process, through both interfaces at once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PARITY_APP_DIR", str(tmp_path_factory.mktemp("in-process")))
        import parity_app

    with TestClient(parity_app.app, interface="both") as client:
        yield client


def _exchange(port: int, method: str, path: str, *lines: str, version: str = "HTTP/1.1") -> Answer:
    connection = Connection(port)
    try:
        return connection.request(method, path, *lines, version=version)
    finally:
        connection.close()


COLOURS = ("sync", "async")
VALUES = ("str", "dict", "list", "bytes", "none", "empty-str", "tuple-status", "tuple-headers")
FACTORIES = (
    *("text", "html", "json", "redirect", "redirect-303", "no-content", "not-modified"),
    *("reset", "created-empty", "custom-status", "unknown-status", "wrong-length"),
    *("non-ascii-header", "mixed-case", "duplicates", "connection-close", "transfer-encoding"),
)
STREAMS = ("bytes", "str", "empty-chunks", "nothing")
PATHS = [
    *(f"/value/{name}/{colour}" for name in VALUES for colour in COLOURS),
    "/value/tuple-pairs/sync",
    *(f"/factory/{name}/{colour}" for name in FACTORIES for colour in COLOURS),
    *("/cookies/sync", "/cookies/async"),
    *(f"/stream/{name}/{kind}" for name in STREAMS for kind in ("sync-sync", "async-async")),
    *("/stream/str/sync-async", "/stream/long-text/async", "/sse/sync", "/sse/async"),
    *(f"/file/{name}/sync" for name in ("small", "large", "empty")),
    *("/file/page/async", "/download/async", "/static/small.txt", "/static/docs/"),
    *("/static/docs", "/static/../secret", "/error/boom/sync", "/error/http/async"),
    *("/only-post/sync", "/nowhere"),
]
# NOTE: each case as (method, path, extra header lines); every request also says what httpx says.
CASES = [
    *((method, path, ()) for path in PATHS for method in ("GET", "HEAD")),
    *(("GET", path, ("Accept-Encoding: gzip",)) for path in PATHS if "/value/" not in path),
    *(("GET", path, ("Accept: application/json",)) for path in PATHS if "error" in path),
    *(("GET", "/nowhere", ("Accept: application/json",)), ("DELETE", "/value/str/sync", ())),
    *(
        (method, "/file/small/async", (line,))
        for method in ("GET", "HEAD")
        for line in (
            "Range: bytes=10-19",
            "Range: bytes=-5",
            "Range: bytes=0-1,5-6",
            "Range: bytes=9999-",
            'If-None-Match: "nope"',
            "If-None-Match: *",
            'If-Range: "stale"',
        )
    ),
    ("GET", "/static/small.txt", ("Range: bytes=3-4", "Accept-Encoding: gzip")),
    ("OPTIONS", "/value/str/sync", ()),
]
DEFAULT_LINES = ("Accept: */*", "Accept-Encoding: identity")


def _lines(extra: tuple[str, ...]) -> list[str]:
    names = {line.partition(":")[0].lower() for line in extra}
    kept = [line for line in DEFAULT_LINES if line.partition(":")[0].lower() not in names]
    return [*kept, *extra]


def _content(answer: Answer) -> bytes:
    if answer.header("content-encoding") == "gzip" and answer.body:
        return gzip.decompress(answer.body)
    return answer.body


@pytest.mark.parametrize(("method", "path", "extra"), CASES, ids=lambda c: str(c))
def test_every_server_answers_as_both_interfaces_in_process(
    ports: dict[str, int], in_process: TestClient, method: str, path: str, extra: tuple[str, ...]
) -> None:
    lines = _lines(extra)
    headers = dict(line.split(": ", 1) for line in lines)
    expected = in_process.request(method, path, headers=headers)
    expected_headers = sorted(
        ((name, value) for name, value in expected.headers.multi_items()),
        key=lambda pair: pair[0],
    )
    for name, port in ports.items():
        answer = _exchange(port, method, path, *lines)
        seen = (answer.status, answer.framework_headers(), _content(answer))
        assert seen == (expected.status_code, expected_headers, expected.content), name


@pytest.mark.parametrize("path", ["/factory/unknown-status/sync", "/factory/custom-status/async"])
def test_the_status_line_is_the_same_under_every_server(ports: dict[str, int], path: str) -> None:
    lines = {name: _exchange(port, "GET", path).status_line for name, port in ports.items()}
    assert len(set(lines.values())) == 1, lines


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_a_header_on_several_lines_reads_the_same_under_every_server(
    ports: dict[str, int], in_process: TestClient, colour: str
) -> None:
    # NOTE: headers.get() gave the first line under Uvicorn, the lines joined under Waitress.
    # (Plain waitress-serve drops X-Forwarded-For from a proxy it does not trust.)
    lines = ["X-Hops: 203.0.113.1", "X-Hops: 198.51.100.2", "X-A:", "X-A:"]
    lines += ["X-Page: 1", "X-Page: 2"]
    path = f"/headers-read/{colour}"
    pairs = [(name, value.strip()) for name, _, value in (line.partition(":") for line in lines)]
    expected = in_process.get(path, headers=pairs)
    assert expected.json() == {
        **{"x-hops": "203.0.113.1, 198.51.100.2", "x-a": ", ", "x-page": "1, 2"},
        "page": -1,
    }
    for name, port in ports.items():
        answer = _exchange(port, "GET", path, *lines)
        assert (answer.status, answer.body) == (200, expected.content), name


# --- streams: the headers go out at once ---------------------------------------------------------


def _head_and_rest(port: int, path: str) -> tuple[float, bytes, float, bytes]:
    """GET ``path``; return when the head came, the head, when the rest came and the rest."""
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as sock:
        started = time.monotonic()
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: testserver\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        head_at = time.monotonic() - started
        head, _, rest = received.partition(b"\r\n\r\n")
        try:
            while chunk := sock.recv(65536):
                rest += chunk
                if rest.endswith(b"0\r\n\r\n"):
                    break
        except ConnectionResetError:
            pass
        return head_at, head, time.monotonic() - started, rest


def test_a_stream_sends_its_headers_before_its_first_chunk(
    ports: dict[str, int], colour: str
) -> None:
    import parity_app

    # NOTE: the servers at once, each from its own thread: each answer takes SLOW_START.
    path = f"/slow-start/{colour}"
    with concurrent.futures.ThreadPoolExecutor(len(ports)) as pool:
        answers = {name: pool.submit(_head_and_rest, port, path) for name, port in ports.items()}
    for name, answer in answers.items():
        head_at, head, ended_at, rest = answer.result()
        assert head.startswith(b"HTTP/1.1 200 "), name
        # NOTE: PEP 3333 has a WSGI server hold the headers until the first non-empty chunk.
        assert head_at < ended_at - 0.5, (name, head_at, ended_at)
        assert ended_at >= parity_app.SLOW_START, name
        assert rest == b"4\r\nlate\r\n0\r\n\r\n", name


def test_a_stream_that_fails_before_its_first_chunk_is_cut(
    ports: dict[str, int], colour: str
) -> None:
    for name, port in ports.items():
        _, head, _, rest = _head_and_rest(port, f"/broken/0/{colour}")
        assert head.startswith(b"HTTP/1.1 200 "), name
        assert b"chunked" in head.lower(), name
        assert rest == b"", name  # NOTE: no final chunk: the client can tell it is cut.


def test_a_file_that_shrinks_while_it_is_sent_cuts_the_connection(
    ports: dict[str, int], colour: str
) -> None:
    import parity_app

    # NOTE: Waitress, given the file through its wsgi.file_wrapper, retried the missing bytes
    # until its channel_timeout (120 s): one CPU busy (8.0 s of CPU in 8 s) and no EOF.
    for name, port in ports.items():
        with socket.create_connection((HOST, port), timeout=TIMEOUT) as sock:
            sock.sendall(f"GET /file-shrinking/{colour} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            received = sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200 "), name
            assert _exchange(port, "POST", f"/file-shrink/{colour}", "Content-Length: 0").body == (
                b"shrunk"
            ), name
            while chunk := sock.recv(1 << 20):  # NOTE: a hang is a timeout here.
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        assert b"content-length: %d" % parity_app.SHRINKING_SIZE in head.lower(), name
        assert len(body) < parity_app.SHRINKING_SIZE, name


# --- what the servers change, as docs/serving.md lists it --------------------------------------


def _kept_alive(
    port: int, method: str, path: str, version: str = "HTTP/1.1"
) -> tuple[Answer, bool]:
    """One request, then a second on the same connection: was it answered?"""
    connection = Connection(port)
    try:
        answer = connection.request(method, path, version=version)
        if method == "HEAD" and answer.header("transfer-encoding"):
            connection.buffer = connection.buffer.removeprefix(b"0\r\n\r\n")
        try:
            again = connection.request("GET", "/value/str/sync")
        except Exception:  # NOTE: closed, or what Waitress sent after a HEAD and then closed.
            return answer, False
        assert again.body == "Hello, café".encode(), again  # NOTE: never a desynchronised one.
        return answer, True
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("method", "path", "waitress_keeps"),
    [
        ("GET", "/value/str/async", True),
        ("HEAD", "/file/small/sync", True),
        ("GET", "/file/large/sync", True),
        ("GET", "/value/none/sync", False),
        ("OPTIONS", "/value/str/sync", False),
        ("GET", "/stream/bytes/sync-sync", False),
        ("HEAD", "/sse/async", False),
    ],
)
def test_which_server_keeps_the_connection(
    ports: dict[str, int], method: str, path: str, waitress_keeps: bool
) -> None:
    for name, port in ports.items():
        answer, kept = _kept_alive(port, method, path)
        assert kept is (waitress_keeps or name != "waitress"), name
        # NOTE: a server that closes says so first.
        assert kept or answer.header("connection") == "close", name


@pytest.mark.parametrize("name", ["connection-close", "transfer-encoding"])
def test_a_hop_by_hop_header_from_the_app_is_its_500_under_every_server(
    ports: dict[str, int], name: str
) -> None:
    # NOTE: Waitress answered with its own 500 and closed; Uvicorn sent the header as it was
    # (Transfer-Encoding: chunked beside Content-Length, under httptools).
    for server, port in ports.items():
        answer, kept = _kept_alive(port, "GET", f"/factory/{name}/sync")
        assert (answer.status, answer.body, kept) == (500, b"Internal Server Error", True), server
        assert answer.header(name) is None, server


def test_a_fragment_in_the_target_is_no_part_of_the_raw_path(ports: dict[str, int]) -> None:
    # NOTE: Waitress kept "#frag" in RAW_URI; h11 keeps it in the path itself (a 404).
    for server, port in ports.items():
        if server != "uvicorn-h11":
            answer = _exchange(port, "GET", "/raw-path/sync#frag")
            assert (answer.status, answer.body) == (200, b"/raw-path/sync"), server


def test_a_stream_to_an_http_1_0_client(ports: dict[str, int]) -> None:
    for name, port in ports.items():
        answer = _exchange(port, "GET", "/stream/bytes/async-async", version="HTTP/1.0")
        assert answer.body == b"one,two,three", name
        # NOTE: Uvicorn's httptools side chunks it all the same (docs/serving.md).
        assert answer.chunked is (name == "uvicorn-httptools"), name
        assert answer.status_line.startswith(b"HTTP/1.0" if name == "waitress" else b"HTTP/1.1")
