"""A file response that a flow or an error handler answers with: conditional requests and ranges."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeClient, in_colour

from microweb import App, HTTPError, Request, Response

Flow = Iterator[Any]


def _app(page: Path, colour: str, where: str) -> App:
    app = App()

    if where == "flow before":

        @app.middleware
        def short_circuit(request: Request) -> Flow:
            yield Response.file(page)

    elif where == "flow after":

        @app.middleware
        def fallback(request: Request) -> Flow:
            # NOTE: a single-page app's fallback: its page for every path the routes miss.
            response = yield
            if response.status == 404:
                yield Response.file(page)

    elif where == "flow on error":

        @app.middleware
        def answers(request: Request) -> Flow:
            try:
                yield
            except LookupError:
                yield Response.file(page)

        def broken(request: Request) -> str:
            raise LookupError("no such page")

        app.get("/nowhere")(in_colour(colour, broken))

    else:

        def fallback_page(request: Request, exc: HTTPError) -> Response:
            return Response.file(page, status=200)

        app.error_handler(404)(in_colour(colour, fallback_page))

    def other(request: Request) -> str:
        return "other"

    app.get("/other")(in_colour(colour, other))
    return app


@pytest.mark.parametrize("where", ["flow before", "flow after", "flow on error", "error handler"])
def test_a_file_answered_by_a_flow_or_error_handler_is_negotiated(
    make_client: MakeClient, colour: str, where: str, tmp_path: Path
) -> None:
    # NOTE: only a handler's file response answered If-None-Match and Range: one from a flow
    # (a single-page app's fallback page) sent Last-Modified but never a 304, and no ETag.
    page = tmp_path / "index.html"
    page.write_text("<h1>the app</h1>")
    client = make_client(_app(page, colour, where))
    whole = client.get("/nowhere")
    assert (whole.status_code, whole.text) == (200, "<h1>the app</h1>")
    assert whole.headers["accept-ranges"] == "bytes"
    etag = whole.headers["etag"]
    again = client.get("/nowhere", headers={"if-none-match": etag})
    assert (again.status_code, again.content) == (304, b"")
    since = client.get("/nowhere", headers={"if-modified-since": whole.headers["last-modified"]})
    assert since.status_code == 304
    part = client.get("/nowhere", headers={"range": "bytes=1-2"})
    assert (part.status_code, part.text) == (206, "h1")
    assert part.headers["content-range"] == f"bytes 1-2/{len(whole.content)}"
    head = client.head("/nowhere", headers={"if-none-match": etag})
    assert head.status_code == 304


def test_a_file_error_page_with_the_error_status_is_sent_whole(
    make_client: MakeClient, colour: str, tmp_path: Path
) -> None:
    # NOTE: as docs/files.md says: a 404 page is never a 304 or a 206.
    page = tmp_path / "404.html"
    page.write_text("<h1>not here</h1>")
    app = App()

    def not_found(request: Request, exc: HTTPError) -> Response:
        return Response.file(page, status=404)

    app.error_handler(404)(in_colour(colour, not_found))
    client = make_client(app)
    first = client.get("/nowhere")
    assert first.status_code == 404
    for headers in ({"range": "bytes=0-1"}, {"if-modified-since": first.headers["last-modified"]}):
        again = client.get("/nowhere", headers=headers)
        assert (again.status_code, again.text) == (404, "<h1>not here</h1>")
