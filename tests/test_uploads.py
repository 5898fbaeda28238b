"""Uploads and forms as app code uses them: RFC 8187 file names, ``UploadFile`` against file
objects and after its request, and a form read again after it failed.

Behaviour tests run under both interfaces and both handler colours; the helpers that build
multipart bodies and describe forms are ``test_forms``'s.
"""

from __future__ import annotations

import errno
import gc
import io
import logging
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest
from conftest import MakeClient
from test_forms import form_app, multipart, part, post_multipart

from microweb import App, HTTPError, Limits, Request, Response, UploadFile, _uploads, safe_filename
from microweb._datastructures import Headers
from microweb.testing import TestClient

# -- file names in filename* (RFC 8187) ---------------------------------------------------------


def ext_part(disposition: str, body: bytes = b"\x00\xff data") -> bytes:
    return f"Content-Disposition: form-data; {disposition}\r\n\r\n".encode() + body


@pytest.mark.parametrize(
    ("disposition", "filename"),
    [
        # NOTE: the name only in filename*: a file all the same, not a text field.
        ("name=\"f\"; filename*=UTF-8''%E2%82%AC%20rates.txt", "€ rates.txt"),
        ("name=\"f\"; filename*=utf-8'en'caf%C3%A9.txt", "café.txt"),
        ("name=\"f\"; filename*=iso-8859-1''caf%E9.txt", "café.txt"),
        ('name="f"; FILENAME*="UTF-8\'\'quoted.txt"', "quoted.txt"),
        # SPEC: RFC 6266 4.3: filename* wins over filename, in either order.
        ('name="f"; filename="EUR rates.txt"; filename*=UTF-8\'\'%E2%82%AC.txt', "€.txt"),
        ('name="f"; filename*=UTF-8\'\'%E2%82%AC.txt; filename="EUR.txt"', "€.txt"),
        # NOTE: one that does not decode leaves filename.
        ('name="f"; filename="plain.txt"; filename*=koi8-r\'\'%C1.txt', "plain.txt"),
        ('name="f"; filename="plain.txt"; filename*=UTF-8\'\'%FF.txt', "plain.txt"),
        # SPEC: RFC 8187 3.2.1, "%" starts an escape of two hex digits.
        ('name="f"; filename="plain.txt"; filename*=UTF-8\'\'%ZZ.txt', "plain.txt"),
        ('name="f"; filename="plain.txt"; filename*=UTF-8\'\'100%.txt', "plain.txt"),
        # NOTE: a character sent as itself is itself, in the value's charset.
        ("name=\"f\"; filename*=iso-8859-1''caf\u00e9.txt", "caf\u00e9.txt"),
        ("name=\"f\"; filename*=UTF-8''caf\u00e9.txt", "caf\u00e9.txt"),
        ('name="f"; filename="plain.txt"; filename*=iso-8859-1\'\'\u20ac.txt', "plain.txt"),
    ],
)
def test_a_filename_star_parameter_names_the_file(
    make_client: MakeClient, colour: str, disposition: str, filename: str
) -> None:
    response = post_multipart(make_client(form_app(colour)), multipart(ext_part(disposition)))
    assert response.status_code == 200, response.text
    [upload] = response.json()["f"]
    assert upload["filename"] == filename
    assert upload["data"] == "\x00\xff data"


@pytest.mark.parametrize(
    "value",
    [
        "UTF-8''%FF.txt",
        "koi8-r''%C1.txt",
        "no-quotes.txt",
        "UTF-8'only-one.txt",
        "UTF-8''%ZZ.txt",
        "UTF-8''a%2",
    ],
)
def test_a_filename_star_alone_that_does_not_decode_is_400(
    make_client: MakeClient, colour: str, value: str
) -> None:
    body = multipart(ext_part(f'name="f"; filename*={value}'))
    response = post_multipart(make_client(form_app(colour)), body)
    assert (response.status_code, response.text) == (
        400,
        "multipart part with an invalid filename* parameter",
    )


def test_a_filename_star_inside_a_quoted_value_is_no_parameter(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: a ';' within the quoted field name is not a separator: the part is a text field.
    app = App()

    def fields(request: Request) -> list[Any]:
        return [[p.name, p.filename] for p in request.iter_parts()]

    async def afields(request: Request) -> list[Any]:
        return [[p.name, p.filename] async for p in request.aiter_parts()]

    app.post("/")(fields if colour == "sync" else afields)
    name = "a; filename*=UTF-8''x.txt"
    body = multipart(ext_part(f'name="{name}"', b"text"), ext_part('name="b"', b"text"))
    response = post_multipart(make_client(app), body)
    assert response.json() == [[name, None], ["b", None]]


def test_streamed_parts_read_filename_star_too(make_client: MakeClient, colour: str) -> None:
    app = App()

    def names(request: Request) -> list[Any]:
        return [[p.name, p.filename] for p in request.iter_parts()]

    async def anames(request: Request) -> list[Any]:
        return [[p.name, p.filename] async for p in request.aiter_parts()]

    app.post("/")(names if colour == "sync" else anames)
    body = multipart(ext_part("name=\"f\"; filename*=UTF-8''%C3%A9.txt"), part("t", "x"))
    response = post_multipart(make_client(app), body)
    assert response.json() == [["f", "é.txt"], ["t", None]]


# -- UploadFile as a file: file objects, tell(), replaced and failed saves, after the request ---

DATA = b"0123456789" * 3


def _upload_of(form: Any) -> UploadFile:
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    return upload


def save_app(colour: str, target: Path) -> App:
    """``POST /`` saves the upload to a BytesIO (after a prefix), to ``target``, and tells."""
    app = App(limits=Limits(spool_threshold=16))  # NOTE: DATA spills to disk past 16 bytes

    def sync_handler(request: Request) -> dict[str, Any]:
        upload = _upload_of(request.form())
        upload.read(4)
        told = upload.tell()
        out = io.BytesIO(b">>")
        out.seek(2)
        written = upload.save(out)
        return {
            "told": told,
            "written": written,
            "out": out.getvalue().decode(),
            "open": not out.closed,
            "position": upload.tell(),
            "to_path": upload.save(target),
            "in_memory": upload.in_memory,
        }

    async def async_handler(request: Request) -> dict[str, Any]:
        upload = _upload_of(await request.aform())
        await upload.aread(4)
        told = upload.tell()
        out = io.BytesIO(b">>")
        out.seek(2)
        written = await upload.asave(out)
        return {
            "told": told,
            "written": written,
            "out": out.getvalue().decode(),
            "open": not out.closed,
            "position": upload.tell(),
            "to_path": await upload.asave(target),
            "in_memory": upload.in_memory,
        }

    app.post("/")(sync_handler if colour == "sync" else async_handler)
    return app


@pytest.mark.parametrize("size", [10, len(DATA)])
def test_save_to_a_file_object_and_tell(
    make_client: MakeClient, colour: str, tmp_path: Path, size: int
) -> None:
    target = tmp_path / "saved.bin"
    target.write_bytes(b"an older, longer file that save() replaces whole")
    body = multipart(part("f", DATA[:size], filename="d.txt"))
    response = post_multipart(make_client(save_app(colour, target)), body)
    assert response.json() == {
        "told": 4,
        "written": size,
        "out": ">>" + DATA[:size].decode(),  # NOTE: from the object's position, whole
        "open": True,
        "position": 0,
        "to_path": size,
        "in_memory": size <= 16,
    }
    assert target.read_bytes() == DATA[:size]


class FullAtClose(io.BufferedWriter):
    """A file whose last buffered bytes find the disk full when it is closed."""

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("fails", ["writing", "closing"])
def test_a_save_that_fails_leaves_no_partial_file(
    make_client: MakeClient,
    colour: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fails: str,
) -> None:
    def full_disk(source: IO[bytes], out: IO[bytes], length: int = 0) -> None:
        out.write(source.read(5))
        raise OSError(errno.ENOSPC, "No space left on device")

    def open_full_at_close(path: Path, mode: str) -> FullAtClose:
        return FullAtClose(io.FileIO(path, mode.replace("b", "")))

    if fails == "writing":
        monkeypatch.setattr(_uploads.shutil, "copyfileobj", full_disk)
    else:
        monkeypatch.setattr(_uploads, "open", open_full_at_close, raising=False)
    target = tmp_path / "saved.bin"
    app = App()

    def sync_save(request: Request) -> str:
        try:
            _upload_of(request.form()).save(target)
        except OSError as exc:
            return exc.strerror or ""
        return "saved"

    async def async_save(request: Request) -> str:
        try:
            await _upload_of(await request.aform()).asave(target)
        except OSError as exc:
            return exc.strerror or ""
        return "saved"

    app.post("/")(sync_save if colour == "sync" else async_save)
    body = multipart(part("f", DATA, filename="d.txt"))
    assert post_multipart(make_client(app), body).text == "No space left on device"
    assert not target.exists()


def test_an_upload_used_after_its_request_says_so(
    make_client: MakeClient, colour: str, tmp_path: Path
) -> None:
    kept: list[UploadFile] = []
    client = make_client(form_app(colour, kept=kept))
    assert post_multipart(client, multipart(part("f", DATA, filename="d.txt"))).status_code == 200
    [upload] = kept
    closed = r"upload 'd.txt', which is closed: uploads are closed when their request ends"
    for call, use in [
        ("read()", lambda: upload.read()),
        ("seek()", lambda: upload.seek(0)),
        ("tell()", lambda: upload.tell()),
        ("save()", lambda: upload.save(tmp_path / "late.bin")),
        ("save()", lambda: upload.save(io.BytesIO())),
    ]:
        with pytest.raises(ValueError, match=rf"^{call[:-2]}\(\) on {closed}"):
            use()
    assert not (tmp_path / "late.bin").exists()


def test_other_value_errors_of_an_open_upload_are_left_as_they_are() -> None:
    upload = UploadFile("d.txt", "text/plain", Headers(), 16)
    with pytest.raises(ValueError, match="negative seek"):
        upload.seek(-1)
    upload.close()


@pytest.mark.parametrize("name", ["COM0", "lpt0.txt", "COM\u00b9.log", "LPT\u00b3"])
def test_safe_filename_refuses_every_reserved_windows_name(name: str) -> None:
    # NOTE: Windows reserves COM0 and LPT0 too, and the superscript digits (NFKD folds them).
    assert safe_filename(name) == "upload"


def test_an_after_response_callback_still_reads_the_upload(
    make_client: MakeClient, colour: str
) -> None:
    read: list[bytes] = []
    app = App(limits=Limits(spool_threshold=16))

    def sync_handler(request: Request) -> str:
        upload = _upload_of(request.form())
        request.after_response(lambda: read.append(upload.read()))
        return "ok"

    async def async_handler(request: Request) -> str:
        upload = _upload_of(await request.aform())

        async def later() -> None:
            read.append(await upload.aread())

        request.after_response(later)
        return "ok"

    app.post("/")(sync_handler if colour == "sync" else async_handler)
    client = make_client(app)
    for size in (10, len(DATA)):
        assert post_multipart(client, multipart(part("f", DATA[:size], filename="d"))).text == "ok"
    assert read == [DATA[:10], DATA]


# -- a form read again, after it failed or after the body was streamed -------------------------

TRUNCATED = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nhal'
SHORT = {"content-type": "multipart/form-data; boundary=b"}


class PeekingPlugin:
    """Wraps each handler to read the form first (a CSRF check, say), letting a bad one by."""

    name = "peeking"

    def __init__(self) -> None:
        self.peeked: list[str] = []

    def _peek(self, form: Any) -> None:
        self.peeked.append(str(form.get("a", "")))

    def apply(self, handler: Any, route: Any) -> Any:
        if route.is_async:

            async def async_wrapped(request: Request, **params: Any) -> Any:
                try:
                    self._peek(await request.aform())
                except HTTPError as exc:
                    self.peeked.append(str(exc.status))
                return await handler(request, **params)

            return async_wrapped

        def wrapped(request: Request, **params: Any) -> Any:
            try:
                self._peek(request.form())
            except HTTPError as exc:
                self.peeked.append(str(exc.status))
            return handler(request, **params)

        return wrapped


def test_a_form_that_failed_fails_the_same_way_again(make_client: MakeClient, colour: str) -> None:
    app = App()
    plugin = PeekingPlugin()
    app.install(plugin)

    def handler(request: Request) -> str:
        return str(request.form()["a"])

    async def ahandler(request: Request) -> str:
        return str((await request.aform())["a"])

    app.post("/")(ahandler if colour == "async" else handler)
    client = make_client(app)
    response = client.post("/", content=TRUNCATED, headers=SHORT)
    # NOTE: the handler's form() raises the 400 again: the body was gone (a 500 before).
    assert (response.status_code, response.text) == (
        400,
        "invalid multipart body: Unexpected end of multipart stream (parser closed)",
    )
    assert client.post("/", data={"a": "1"}).text == "1"
    assert plugin.peeked == ["400", "1"]


FREED: list[str] = []


class Finalized:
    """Records its tag in ``FREED`` when it is freed."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __del__(self) -> None:
        FREED.append(self.tag)


@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_a_request_whose_form_failed_is_freed_without_the_garbage_collector(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: the kept error's traceback holds the request's frames: the request, its body and
    # its state waited for the cyclic garbage collector once the request ended.
    app = App()

    def handler(request: Request) -> str:
        request.state.marker = Finalized("request")
        with pytest.raises(HTTPError):
            request.form()
        return "answered"

    async def ahandler(request: Request) -> str:
        request.state.marker = Finalized("request")
        with pytest.raises(HTTPError):
            await request.aform()
        return "answered"

    app.post("/")(ahandler if colour == "async" else handler)
    client = make_client(app)
    gc.collect()
    FREED.clear()
    gc.disable()
    try:
        assert client.post("/", content=TRUNCATED, headers=SHORT).text == "answered"
        # NOTE: a def handler's pool thread lets go of its call a moment after the answer is
        # out (CI under load once looked in between): waited for, with the collector still
        # off, so only reference counting can free the request.
        deadline = time.monotonic() + 5
        while not FREED and time.monotonic() < deadline:
            time.sleep(0.01)
        assert FREED == ["request"]
    finally:
        gc.enable()


def streamed_then_app(colour: str, first: str, then: str) -> App:
    app = App()

    async def consume(request: Request, call: str) -> Any:
        if call == "parts":
            return [p.name async for p in request.aiter_parts()]
        if call == "bytes":
            return [chunk async for chunk in request.aiter_bytes()]
        return await getattr(request, f"a{call}")()  # NOTE: aform(), aread(), atext().

    def sync_consume(request: Request, call: str) -> Any:
        if call == "parts":
            return [p.name for p in request.iter_parts()]
        if call == "bytes":
            return list(request.iter_bytes())
        return getattr(request, call)()

    def handler(request: Request) -> Response:
        sync_consume(request, first)
        try:
            sync_consume(request, then)
        except RuntimeError as exc:
            return Response.text(str(exc))
        return Response.text("no error")

    async def ahandler(request: Request) -> Response:
        await consume(request, first)
        try:
            await consume(request, then)
        except RuntimeError as exc:
            return Response.text(str(exc))
        return Response.text("no error")

    app.post("/")(ahandler if colour == "async" else handler)
    return app


@pytest.mark.parametrize(
    ("first", "then", "names"),
    [
        ("form", "parts", ("iter_parts()", "form()")),
        ("parts", "form", ("form()", "iter_parts()")),
        ("bytes", "form", ("form()", "iter_bytes()")),
        # NOTE: text() and json() named read(), which they call, not themselves.
        ("bytes", "read", ("read()", "iter_bytes()")),
        ("bytes", "text", ("text()", "iter_bytes()")),
    ],
)
def test_a_second_read_of_a_streamed_body_names_the_first(
    make_client: MakeClient, colour: str, first: str, then: str, names: tuple[str, str]
) -> None:
    prefix = "" if colour == "sync" else "a"
    second, first_call = (f"{prefix}{name}" for name in names)
    client = make_client(streamed_then_app(colour, first, then))
    response = post_multipart(client, multipart(part("a", "1"), part("f", b"x", filename="f")))
    assert response.text == (
        f"request.{second}: the body was already consumed by request.{first_call}: "
        "a request's body is read from the network once"
    )


# -- temporary files held by the process ---------------------------------------------------------


def spilled_form(files: int) -> bytes:
    """A form whose first file fills a spool threshold of 4 bytes; each file after it spills."""
    parts = [part(f"f{i}", b"1", filename=f"{i}.txt") for i in range(files)]
    return multipart(part("big", b"bbbb", filename="big.bin"), *parts)


def wait_for_no_disk_uploads() -> int:
    # NOTE: a def handler's pool thread closes its form a moment after the answer is out.
    deadline = time.monotonic() + 5
    while _uploads.disk_uploads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _uploads.disk_uploads()


def test_uploads_on_disk_past_the_process_cap_are_503(
    make_client: MakeClient, colour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: max_form_files bounds one form; 13 stalled forms of 99 spilled files each took all
    # 1,024 file descriptors of a Uvicorn process, which then accepted no connection.
    monkeypatch.setattr(_uploads, "disk_upload_cap", lambda: 2)
    client = make_client(form_app(colour, Limits(spool_threshold=4)))
    response = post_multipart(client, spilled_form(3))
    assert (response.status_code, response.text) == (
        503,
        "too many uploaded files held on disk at once; try again later",
    )
    assert wait_for_no_disk_uploads() == 0
    # NOTE: the files of a request are no longer counted once it ended.
    for _ in range(2):
        response = post_multipart(client, spilled_form(2))
        assert response.status_code == 200, response.text
        assert len(response.json()["f1"]) == 1
        assert wait_for_no_disk_uploads() == 0


def test_the_disk_upload_cap_is_half_the_open_file_limit() -> None:
    resource = pytest.importorskip("resource")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        assert _uploads.disk_upload_cap() == _uploads.DEFAULT_DISK_UPLOADS
    else:
        assert _uploads.disk_upload_cap() == max(1, soft // 2)


def test_an_upload_closed_under_a_write_is_counted_until_the_writer_closes_it() -> None:
    # NOTE: close() with a write in flight leaves the closing to the writer: the descriptor is
    # open until then, and was no longer counted (review136).
    upload = UploadFile("a.bin", "application/octet-stream", Headers(), 1)
    upload._reserve_disk()
    writing, closed = threading.Event(), threading.Event()

    def write(chunks: list[bytes]) -> None:
        writing.set()
        closed.wait(5)

    upload._write_chunks = write  # type: ignore[method-assign]
    writer = threading.Thread(target=upload._append, args=([b"x"],))
    writer.start()
    assert writing.wait(5)
    upload.close()
    assert (_uploads.disk_uploads(), upload.file.closed) == (1, False)
    closed.set()
    writer.join(5)
    assert (_uploads.disk_uploads(), upload.file.closed) == (0, True)


@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_an_upload_dropped_without_close_is_no_longer_counted() -> None:
    upload = UploadFile("a.txt", "text/plain", Headers(), 1)
    upload._reserve_disk()
    upload._reserve_disk()
    assert _uploads.disk_uploads() == 1
    upload.file.close()  # NOTE: what a SpooledTemporaryFile does when freed, without a warning.
    del upload
    gc.collect()
    assert _uploads.disk_uploads() == 0


# -- the request's end releases every file, whatever fails --------------------------------------


class _CloseFails:
    """A file whose ``close()`` closes it and then fails, as a flush to a full disk does."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def close(self) -> None:
        self._file.close()
        raise OSError(errno.ENOSPC, "No space left on device")


class _FailingCleanup:
    on_disk = False

    def discard(self) -> None:
        raise OSError(errno.EIO, "Input/output error")


def _keeping_app(colour: str, keep: Any) -> App:
    app = App(limits=Limits(spool_threshold=16))

    def sync_handler(request: Request) -> str:
        keep(request, request.form())
        return "ok"

    async def async_handler(request: Request) -> str:
        keep(request, await request.aform())
        return "ok"

    app.post("/")(sync_handler if colour == "sync" else async_handler)
    return app


def _logged_errors(caplog: pytest.LogCaptureFixture) -> list[BaseException | None]:
    return [record.exc_info[1] for record in caplog.records if record.exc_info]


@pytest.mark.parametrize("failing", ["an upload", "a cleanup"])
def test_every_upload_is_closed_when_releasing_one_thing_fails(
    make_client: MakeClient, colour: str, failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: close() stopped at the first failure: the uploads after it stayed open, their
    # temporary files on disk and counted against the process's cap (a 503 for later uploads).
    caplog.set_level(logging.ERROR, logger="microweb")
    uploads: list[UploadFile] = []

    def keep(request: Request, form: Any) -> None:
        uploads.extend(form[name] for name in "abc")
        if failing == "an upload":
            uploads[1].file = _CloseFails(uploads[1].file)
        else:
            request._close_at_end(_FailingCleanup())

    client = make_client(_keeping_app(colour, keep))
    body = multipart(*(part(name, DATA, filename=name) for name in "abc"))
    answer = post_multipart(client, body)
    assert (answer.status_code, answer.text) == (200, "ok")
    assert [upload._spooled.closed for upload in uploads] == [True, True, True]
    assert _uploads.disk_uploads() == 0
    # NOTE: logged once, naming the request; the answer, whole, went out as it was.
    assert [type(error) for error in _logged_errors(caplog)] == [OSError]
    assert "POST /" in caplog.records[0].getMessage()


@pytest.mark.parametrize("spool_threshold", [16, 1024], ids=["on-disk", "in-memory"])
def test_a_failed_release_is_raised_to_a_test_client_that_asks(
    interface: str, spool_threshold: int
) -> None:
    # NOTE: the uploads on disk are closed in a file thread under ASGI, which ran without the
    # request's context: the test client that asks for the app's errors never saw that one.
    app = App(limits=Limits(spool_threshold=spool_threshold))

    @app.post("/")
    def fails_to_close(request: Request) -> str:
        upload = request.form()["a"]
        assert isinstance(upload, UploadFile)
        upload.file = _CloseFails(upload.file)
        return "ok"

    body = multipart(part("a", DATA * 4, filename="a"))
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(OSError, match="No space left"),
    ):
        post_multipart(client, body)
