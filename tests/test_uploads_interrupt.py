"""Uploads are closed when the request ends with a ``KeyboardInterrupt`` or ``SystemExit``.

App code that ends a request so (a flow's ``finally``, a stream's ``close()``, an upload's file
swapped for one whose ``close()`` raises it) lets it out to the server, under both interfaces;
the request's uploads are closed all the same, not left to the garbage collector with their
temporary files on disk and counted against the process's cap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import pytest
from conftest import MakeClient
from test_forms import multipart, part, post_multipart

from microweb import App, Limits, Request, Response, UploadFile, _uploads

DATA = b"x" * 64
ESCAPES = [KeyboardInterrupt, SystemExit]


def _uploading_app(uploads: list[UploadFile]) -> App:
    app = App(limits=Limits(spool_threshold=16))

    @app.post("/")
    def keep(request: Request) -> str:
        form = request.form()
        uploads.extend(form[name] for name in "abc")  # type: ignore[misc]
        return "ok"

    return app


def _post(make_client: MakeClient, app: App, escape: type[BaseException]) -> None:
    body = multipart(*(part(name, DATA, filename=name) for name in "abc"))
    with pytest.raises(escape):
        post_multipart(make_client(app), body)


@pytest.mark.parametrize("escape", ESCAPES)
@pytest.mark.parametrize("flow_colour", ["sync", "async"])
def test_a_flow_whose_finally_escapes_leaves_no_upload_open(
    make_client: MakeClient, escape: type[BaseException], flow_colour: str
) -> None:
    # NOTE: under WSGI the request was never closed: three temporary files left to the GC.
    uploads: list[UploadFile] = []
    app = _uploading_app(uploads)
    if flow_colour == "sync":

        @app.middleware
        def escapes(request: Request) -> Iterator[None]:
            try:
                yield
            finally:
                raise escape()

    else:

        @app.middleware
        async def escapes_async(request: Request) -> Any:
            try:
                yield
            finally:
                raise escape()

    _post(make_client, app, escape)
    assert [upload._spooled.closed for upload in uploads] == [True, True, True]
    assert _uploads.disk_uploads() == 0


class _Chunks:
    """A stream whose ``close()`` raises ``escape``."""

    def __init__(self, escape: type[BaseException]) -> None:
        self._escape = escape
        self._sent = False

    def __iter__(self) -> _Chunks:
        return self

    def __next__(self) -> bytes:
        if self._sent:
            raise StopIteration
        self._sent = True
        return b"ok"

    def close(self) -> None:
        raise self._escape()


@pytest.mark.parametrize("escape", ESCAPES)
def test_a_stream_whose_close_escapes_leaves_no_upload_open(
    make_client: MakeClient, escape: type[BaseException]
) -> None:
    uploads: list[UploadFile] = []
    app = App(limits=Limits(spool_threshold=16))

    @app.post("/")
    def keep(request: Request) -> Response:
        form = request.form()
        uploads.extend(form[name] for name in "abc")  # type: ignore[misc]
        return Response.stream(_Chunks(escape))

    _post(make_client, app, escape)
    assert [upload._spooled.closed for upload in uploads] == [True, True, True]
    assert _uploads.disk_uploads() == 0


class _CloseEscapes:
    def __init__(self, file: IO[bytes], escape: type[BaseException]) -> None:
        self._file = file
        self._escape = escape

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def close(self) -> None:
        self._file.close()
        raise self._escape()


@pytest.mark.parametrize("escape", ESCAPES)
def test_an_upload_whose_close_escapes_leaves_the_others_closed(
    make_client: MakeClient, escape: type[BaseException]
) -> None:
    # NOTE: Request.close() went on past an Exception of one upload's, not past these.
    uploads: list[UploadFile] = []
    app = App(limits=Limits(spool_threshold=16))

    @app.post("/")
    def keep(request: Request) -> str:
        form = request.form()
        uploads.extend(form[name] for name in "abc")  # type: ignore[misc]
        uploads[0].file = _CloseEscapes(uploads[0].file, escape)  # type: ignore[assignment]
        return "ok"

    _post(make_client, app, escape)
    assert [upload._spooled.closed for upload in uploads] == [True, True, True]
    assert _uploads.disk_uploads() == 0
