"""GZip leaves an empty body alone, whatever minimum_size says: gzip makes 20 bytes of
nothing, and a redirect went out labelled Content-Encoding: gzip (review168)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MakeClient

from microweb import App, Request, Response
from microweb.plugins import GZip


def empty_app(tmp_path: Path) -> App:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    app = App()
    app.install(GZip(minimum_size=0))

    @app.get("/moved")
    def moved(request: Request) -> Response:
        return Response.redirect("/elsewhere", 308)

    @app.get("/blank")
    def blank(request: Request) -> str:
        return ""

    @app.get("/empty-file")
    def empty_file(request: Request) -> Response:
        return Response.file(empty)

    @app.get("/one")
    def one(request: Request) -> str:
        return "x"

    return app


@pytest.mark.parametrize("path", ["/moved", "/blank", "/empty-file"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_an_empty_body_is_not_compressed(
    make_client: MakeClient, tmp_path: Path, path: str, method: str
) -> None:
    client = make_client(empty_app(tmp_path))
    answer = client.request(method, path, headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in answer.headers
    assert "vary" not in answer.headers
    assert (answer.headers["content-length"], answer.content) == ("0", b"")


def test_a_body_of_one_byte_is_compressed_at_minimum_size_0(
    make_client: MakeClient, tmp_path: Path
) -> None:
    answer = make_client(empty_app(tmp_path)).get("/one", headers={"accept-encoding": "gzip"})
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.content == b"x"


def test_the_304_of_an_empty_file_is_labelled_as_its_200(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(empty_app(tmp_path))
    whole = client.get("/empty-file", headers={"accept-encoding": "gzip"})
    etag = whole.headers["etag"]
    assert not etag.startswith("W/")
    again = client.get("/empty-file", headers={"accept-encoding": "gzip", "if-none-match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    assert "vary" not in again.headers
