"""A request body with a ``Content-Encoding`` (``gzip``): the reads that parse it answer 415.

``text()``, ``json()``, ``form()`` and ``iter_parts()`` (and their twins) would parse the coded
bytes as the media type: ``text()`` gave the gzip bytes decoded as ISO-8859-1 with a 200, the
others a 400 that blamed the JSON or the form. ``read()`` and ``iter_bytes()`` give the bytes
as they came, for an app that decodes them itself.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import pytest
from conftest import MakeClient

from microweb import App, Request

JSON = b'{"a": 1}'
URLENCODED = b"a=1"
MULTIPART = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b--\r\n'
TEXT = "caf\u00e9".encode("latin-1")


def sync_reads() -> dict[str, Callable[[Request], Any]]:
    return {
        "text": lambda request: request.text(),
        "json": lambda request: request.json(),
        "json-force": lambda request: request.json(force=True),
        "form": lambda request: dict(request.form().items()),
        "parts": lambda request: [part.name for part in request.iter_parts()],
    }


def async_reads() -> dict[str, Callable[[Request], Any]]:
    async def form(request: Request) -> Any:
        return dict((await request.aform()).items())

    async def parts(request: Request) -> Any:
        return [part.name async for part in request.aiter_parts()]

    return {
        "text": lambda request: request.atext(),
        "json": lambda request: request.ajson(),
        "json-force": lambda request: request.ajson(force=True),
        "form": form,
        "parts": parts,
    }


def coding_app(colour: str) -> App:
    app = App()
    reads = sync_reads() if colour == "sync" else async_reads()
    for name, read in reads.items():
        if colour == "sync":

            def handler(request: Request, read: Any = read) -> Any:
                return {"value": read(request)}

        else:

            async def handler(request: Request, read: Any = read) -> Any:
                return {"value": await read(request)}

        app.post(f"/{name}", name=name)(handler)
    return app


CASES = [
    ("text", "text/plain; charset=latin-1", TEXT),
    ("json", "application/json", JSON),
    ("json-force", "text/plain", JSON),
    ("form", "application/x-www-form-urlencoded", URLENCODED),
    ("form", "multipart/form-data; boundary=b", MULTIPART),
    ("parts", "multipart/form-data; boundary=b", MULTIPART),
]


@pytest.mark.parametrize(("path", "content_type", "body"), CASES)
@pytest.mark.parametrize("coding", ["gzip", "identity, gzip", "GZIP", "br"])
def test_a_coded_body_is_415_for_the_reads_that_parse_it(
    make_client: MakeClient,
    colour: str,
    path: str,
    content_type: str,
    body: bytes,
    coding: str,
) -> None:
    client = make_client(coding_app(colour))
    headers = {"content-type": content_type, "content-encoding": coding}
    answer = client.post(f"/{path}", content=gzip.compress(body), headers=headers)
    assert (answer.status_code, answer.text) == (
        415,
        "unsupported Content-Encoding (send the body uncompressed)",
    )
    assert answer.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize(("path", "content_type", "body"), CASES)
@pytest.mark.parametrize("coding", ["identity", "", "Identity "])
def test_a_body_without_a_coding_is_parsed(
    make_client: MakeClient,
    colour: str,
    path: str,
    content_type: str,
    body: bytes,
    coding: str,
) -> None:
    client = make_client(coding_app(colour))
    headers = {"content-type": content_type, "content-encoding": coding}
    answer = client.post(f"/{path}", content=body, headers=headers)
    assert answer.status_code == 200, answer.text


def test_json_silent_gives_none_for_a_coded_body(make_client: MakeClient, colour: str) -> None:
    app = App()

    def handler(request: Request) -> Any:
        return {"value": request.json(silent=True), "raw": len(request.read())}

    async def ahandler(request: Request) -> Any:
        return {"value": await request.ajson(silent=True), "raw": len(await request.aread())}

    app.post("/")(handler if colour == "sync" else ahandler)
    coded = gzip.compress(JSON)
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    answer = make_client(app).post("/", content=coded, headers=headers)
    assert answer.json() == {"value": None, "raw": len(coded)}


@pytest.mark.parametrize("streamed", [False, True])
def test_read_gives_a_coded_body_as_it_came(
    make_client: MakeClient, colour: str, streamed: bool
) -> None:
    app = App()

    def handler(request: Request) -> bytes:
        data = b"".join(request.iter_bytes()) if streamed else request.read()
        return gzip.decompress(data)

    async def ahandler(request: Request) -> bytes:
        if streamed:
            data = b"".join([chunk async for chunk in request.aiter_bytes()])
        else:
            data = await request.aread()
        return gzip.decompress(data)

    app.post("/")(handler if colour == "sync" else ahandler)
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    answer = make_client(app).post("/", content=gzip.compress(JSON), headers=headers)
    assert (answer.status_code, answer.content) == (200, JSON)
