"""A ContextVar one request sets is unset in the next one, pipelined on its connection, under
``microweb serve``'s Uvicorn protocols (``test_httptools.py`` feeds them read by read).

Uvicorn starts a queued request's app inside the send() that ends the answer before it, and
its task copied that request's context (CPython issue 140947).

Under Waitress, a pool thread kept what a request set for the next request it served, another
client's: microweb's WSGI driver now runs each request in a context of its own (review379;
``test_request_context.py`` calls the WSGI callable in-process).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest
from servers import (
    HOST,
    ServedWay,
    module_server,
    read_until_closed,
    serving_module,
    waitress_command,
)

pytestmark = pytest.mark.servers

server = module_server("context_app:app", ("uvicorn-h11", "uvicorn-httptools"))


def _bodies(server: ServedWay, paths: list[bytes]) -> list[bytes]:
    """GET each of ``paths`` in one write on one connection; return the answers' bodies."""
    heads = [b"GET %s HTTP/1.1\r\nHost: x\r\n" % path for path in paths]
    heads[-1] += b"Connection: close\r\n"
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(b"".join(head + b"\r\n" for head in heads))
        answer = read_until_closed(sock)
    return re.findall(rb"\r\n\r\n([^H]*)", answer)


def test_a_context_variable_set_by_a_request_is_unset_in_the_one_pipelined_after_it(
    server: ServedWay,
) -> None:
    paths = [b"/set", b"/get", b"/set-in-def", b"/get"]
    assert _bodies(server, paths) == [b"set", b"unset", b"set", b"unset"]


def test_what_a_stream_set_is_unset_in_the_request_pipelined_after_it(server: ServedWay) -> None:
    # NOTE: a stream's values are set in its request's task once it has closed (review398),
    # where the next request on the connection may start, inside the send that ends the answer.
    assert _bodies(server, [b"/empties", b"/get"])[-1] == b"unset"


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_what_a_stream_s_close_set_is_unset_in_the_request_pipelined_after_it(
    server: ServedWay, method: bytes
) -> None:
    # NOTE: a stream not sent (a HEAD's) is closed in a task of its own, whose values are set
    # in the request's task before it sends the end of the answer (review403).
    heads = [b"%s /closes-setting HTTP/1.1\r\nHost: x\r\n\r\n" % method]
    heads.append(b"GET /get HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(b"".join(heads))
        answer = read_until_closed(sock)
    assert answer.endswith(b"\r\n\r\nunset"), answer


def test_a_context_variable_set_by_a_request_that_read_a_large_body_is_unset_in_the_next(
    server: ServedWay,
) -> None:
    # NOTE: the body past Uvicorn's high-water mark, the app's receive() resumed the reading,
    # from its task: the reads after it, the next request's head among them, ran in a copy of
    # that request's context, and its task was made there (mutation review384: the task made
    # in the context it was started from).
    body = b"x" * 1_000_000
    head = b"POST /set-and-read HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(head + body[:-10])
        # NOTE: the end apart, in a read too small to pause the reading again: the reading
        # the app resumed goes on as it resumed it (its answer's end resumes none).
        time.sleep(0.3)
        sock.sendall(body[-10:])
        first = b""
        while not first.endswith(b"\r\n\r\n1000000"):
            data = sock.recv(65536)
            assert data, first
            first += data
        sock.sendall(b"GET /get HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        second = read_until_closed(sock)
    assert second.partition(b"\r\n\r\n")[2] == b"unset", second


@pytest.fixture(scope="module")
def waitress_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Waitress serving the app with one thread, which serves every request in turn."""
    command = lambda port: waitress_command(  # noqa: E731
        "context_app:app.as_wsgi", port, ["--threads=1"]
    )
    with serving_module("waitress-one-thread", command, tmp_path_factory) as (port, _):
        yield port


def _body(port: int, path: bytes) -> bytes:
    """GET ``path`` on a connection of its own; return the answer's body."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
        return read_until_closed(sock).partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", [b"/set", b"/set-in-def"])
def test_a_context_variable_set_by_a_request_is_unset_in_the_next_one_waitress_serves(
    waitress_port: int, path: bytes
) -> None:
    # NOTE: microweb's WSGI driver set in the server's thread what the handler set (so that
    # flows and a stream see it, as under ASGI); a pool thread kept it for its next request,
    # another client's.
    assert _body(waitress_port, path) == b"set"
    assert _body(waitress_port, b"/get") == b"unset"


def test_empty_chunks_do_not_end_a_stream_waitress_serves(waitress_port: int) -> None:
    # NOTE: a streamed body's chunks are taken in the request's context until next() gives
    # b"" (review391): the stream's empty chunks must not end it early.
    chunked = _body(waitress_port, b"/empties")
    ending = b"\r\n0\r\n\r\n"
    assert chunked.endswith(ending)
    assert re.sub(rb"(^|\r\n)[0-9a-f]+\r\n", b"", chunked[: -len(ending)]) == b"abbbbc"
    assert _body(waitress_port, b"/get") == b"unset"
