"""Random answers from one app under Waitress and Uvicorn (h11, httptools): alike on the wire.

``tests/answer_fuzz_app.py`` builds the answer a request's path describes (a plain value, a
factory, a stream of either colour, of bytes or str, with or without a declared length, one
that fails or breaks its length, server-sent events, a file; a status, extra headers,
cookies), from a ``def`` and an ``async def`` handler. Hypothesis writes the answers and
the requests for them (``GET``, ``HEAD`` or ``POST``; with or without ``Accept-Encoding: gzip``,
a ``Range``, a conditional header), each sent twice on one kept-alive connection (an answer
framed wrong spoils the second). Every server must send the same status, the same headers the
framework chose and the same body, and ``TestClient(interface="both")`` must agree in process:
what the servers add (``Date``, ``Server``, framing) is left out. An answer cut off (a stream
that failed or broke its length) must be cut alike: at the same point of the same exchange.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from answer_fuzz_app import KINDS, SIZES, encode_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import serving_every_way
from test_servers_parity import Connection

from microweb.testing import TestClient

pytestmark = pytest.mark.servers

APP = "answer_fuzz_app:app"
# NOTE: FUZZ_EXAMPLES=5000 for a longer hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """Run the app under the three servers for the whole module."""
    with serving_every_way(APP, tmp_path_factory) as found:
        yield found


@pytest.fixture(scope="module")
def in_process() -> Iterator[TestClient]:
    """The same app in process, through both interfaces at once (each answer compared)."""
    from answer_fuzz_app import app

    with TestClient(app, interface="both") as client:
        yield client


# -- what an answer and its request are made of -------------------------------------------------

STATUSES = (200, 201, 203, 204, 205, 206, 299, 304, 400, 404, 410, 418, 503)
REDIRECTS = (301, 302, 303, 307, 308)
HEADER_POOL = [
    ("x-a", "1"),
    ("x-a", "2"),
    ("cache-control", "no-store"),
    ("content-type", "application/problem+json"),
    ("etag", '"v1"'),
    ("vary", "Accept-Language"),
    ("content-language", "fr"),
    ("content-encoding", "br"),
    ("x-name", "caf\u00e9"),
    ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
]
REQUEST_LINES = [
    "Accept-Encoding: gzip",
    "Accept-Encoding: gzip;q=0, identity",
    "Range: bytes=0-9",
    "Range: bytes=-5",
    "Range: bytes=5-",
    "Range: bytes=0-1,4-6",
    "Range: bytes=99999-",
    'If-None-Match: "v1"',
    "If-None-Match: *",
    "If-Modified-Since: Tue, 14 Nov 2023 22:13:20 GMT",
    "If-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT",
    'If-Range: "stale"',
    "If-Match: *",
    "Accept: application/json",
]


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    status = draw(st.sampled_from(REDIRECTS if kind == "redirect" else STATUSES))
    headers = draw(st.lists(st.sampled_from(HEADER_POOL), max_size=3, unique=True))
    if kind in ("tuple", "file"):
        headers = list(dict(headers).items())  # NOTE: a mapping there: one value a name.
    cookies = draw(st.lists(st.sampled_from([("a", "1"), ("b", "two words")]), max_size=2))
    return {
        "kind": kind,
        "status": status,
        "size": draw(st.sampled_from(SIZES)),
        "chunks": draw(st.integers(1, 5)),
        "empty_first": draw(st.booleans()),
        "declare": draw(st.sampled_from([False, True, True, "short", "long"])),
        "fail": draw(st.integers(0, 5)) == 0,
        "text": draw(st.booleans()),
        "headers": headers,
        "cookies": cookies,
    }


@FUZZ
@given(
    spec=specs(),
    method=st.sampled_from(["GET", "GET", "HEAD", "POST"]),
    colour=st.sampled_from(["/r/", "/ra/"]),
    lines=st.lists(
        st.sampled_from(REQUEST_LINES), max_size=3, unique_by=lambda line: line.split(":")[0]
    ),
)
def test_every_server_sends_an_answer_alike(
    ports: dict[str, int],
    in_process: TestClient,
    spec: dict[str, Any],
    method: str,
    colour: str,
    lines: list[str],
) -> None:
    path = colour + encode_spec(spec)
    sent = [*lines, "Content-Length: 0"] if method == "POST" else lines
    seen = {}
    for name, port in ports.items():
        # NOTE: twice on one connection: an answer framed wrong (a length that is not its
        # body's) spoils the second, which must come out the same.
        connection = Connection(port)
        kept: list[Any] = []
        try:
            for _ in range(2):
                try:
                    answer = connection.request(method, path, *sent)
                except (AssertionError, ConnectionResetError):
                    # NOTE: an answer cut off (a stream that failed, or broke its declared
                    # length): the connection is closed, and the cut is what must agree.
                    kept.append("cut")
                    break
                kept.append((answer.status, answer.framework_headers(), answer.body))
        finally:
            connection.close()
        seen[name] = kept
    first = seen["waitress"]
    for name, answers in seen.items():
        assert answers == first, (spec, method, lines, name, answers, first)
    if first[0] == "cut":
        return
    broken = spec["fail"] or spec["declare"] in ("short", "long")
    kept_to = spec["kind"] not in ("stream", "astream") or not broken
    if kept_to:
        # NOTE: a stream that failed, or broke its length, after a whole-looking answer (one
        # of Content-Length: 0, say) is cut then: the second request finds the connection
        # closed, under every server alike.
        assert first == [first[0], first[0]], (spec, method, lines, first)
    assert first[0][0] < 500 or spec["status"] >= 500, (spec, method, lines, first)
    if not kept_to and method != "HEAD":
        return  # NOTE: in process, a stream cut off raises its error to the test.
    # NOTE: in process, both interfaces at once (TestClient raises where they differ).
    extra = dict(line.split(": ", 1) for line in lines)
    response = in_process.request(method, path, headers=extra)
    assert response.status_code == first[0][0], (spec, method, lines, response, first)
