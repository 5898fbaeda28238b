"""A form's files read in pieces of every size, around the spool threshold and ``PIECE_MIN``:
their content, the limits met mid-way, and the memory their first bytes hold (review358)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import random
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from drive import asgi_call, body_messages, http_scope, response_body, wsgi_post
from hypothesis import given, settings
from hypothesis import strategies as st
from test_forms import MULTIPART, multipart, part

from microweb import (
    App,
    FormData,
    Limits,
    Request,
    Response,
    UploadFile,
    _file_threads,
    _forms,
    _uploads,
)
from microweb._buffer import PIECE_MIN
from microweb._forms import FormBuilder


class Reads(io.RawIOBase):
    """A ``wsgi.input`` that gives the body in the pieces given, never more than asked."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = [piece for piece in pieces if piece]

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if not self.pieces:
            return b""
        piece = self.pieces[0]
        if size is None or size < 0 or size >= len(piece):
            return self.pieces.pop(0)
        self.pieces[0] = piece[size:]
        return piece[:size]

    def readline(self, size: int | None = -1) -> bytes:  # NOTE: wsgiref.validate asks for it.
        raise AssertionError("not read by lines")


def post(interface: str, app: App, pieces: list[bytes], ready: bool = True) -> tuple[int, bytes]:
    """POST a multipart body, in ``pieces`` (ASGI messages or WSGI reads), with its length.

    Under ASGI the messages are all ``ready``, as a server's queue holds them: a def handler
    takes up to ``HOP_CHUNKS`` of them in one hop to the loop, and its parser still sees each
    piece alone. With ``ready=False`` each message comes after a turn of the loop, one a hop.
    """
    size = sum(map(len, pieces))
    if interface == "wsgi":
        status, body = wsgi_post(app, Reads(pieces), MULTIPART, size)
        return int(status.split()[0]), body
    headers = [(b"content-type", MULTIPART.encode()), (b"content-length", str(size).encode())]
    scope = http_scope("POST", "/", headers)
    messages = body_messages(*pieces) if pieces else []
    sent = asyncio.run(asgi_call(app, scope, messages, gap=None if ready else 0.0))
    return sent[0]["status"], response_body(sent)


def describe(upload: UploadFile) -> dict[str, Any]:
    """A file's data, read whole, by pieces, by iteration and after a seek, all alike."""
    whole = upload.read()
    upload.seek(0)
    pieces = b"".join(iter(lambda: upload.read(4095), b""))
    upload.seek(0)
    lines = b"".join(upload.file)  # NOTE: the file object itself, line by line.
    upload.seek(len(whole) // 2)
    second_half = upload.read()
    saved = io.BytesIO()
    upload.seek(0)
    upload.save(saved)
    assert pieces == lines == whole == saved.getvalue(), upload.filename
    assert second_half == whole[len(whole) // 2 :]
    assert upload.size == len(whole)
    return {
        "filename": upload.filename,
        "size": upload.size,
        "sha": hashlib.sha256(whole).hexdigest(),
        "in_memory": upload.in_memory,
    }


def described(form: FormData) -> list[Any]:
    return [
        [name, describe(value) if isinstance(value, UploadFile) else value]
        for name, value in form.multi_items()
    ]


def pieces_app(colour: str, limits: Limits, kept: list[UploadFile]) -> App:
    app = App(limits=limits)

    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> Response:
            form = request.form()
            kept.extend(form.files.values())
            first = described(form)
            assert described(request.form()) == first  # NOTE: the form read twice.
            return Response.json(first)

    else:

        @app.post("/")
        async def async_handler(request: Request) -> Response:
            form = await request.aform()
            kept.extend(form.files.values())
            first = described(form)
            assert described(await request.aform()) == first
            return Response.json(first)

    return app


def expected(items: list[tuple[str, bytes | str, str | None]], threshold: int) -> list[Any]:
    """What ``described()`` gives for a form of ``items``: (name, data, filename or None)."""
    out: list[Any] = []
    in_memory = 0
    for name, data, filename in items:
        if filename is None:
            out.append([name, data])
            continue
        assert isinstance(data, bytes)
        # NOTE: each file keeps in memory what the files before it left of the threshold.
        stays = len(data) <= max(0, threshold - in_memory)
        if stays:
            in_memory += len(data)
        sha = hashlib.sha256(data).hexdigest()
        out.append(
            [name, {"filename": filename, "size": len(data), "sha": sha, "in_memory": stays}]
        )
    return out


def split(body: bytes, sizes: Iterator[int]) -> list[bytes]:
    pieces, at = [], 0
    while at < len(body):
        size = next(sizes)
        pieces.append(body[at : at + size])
        at += size
    return pieces


def wait_for_no_disk_uploads() -> int:
    # NOTE: a def handler's pool thread closes its form a moment after the answer is out.
    deadline = time.monotonic() + 5
    while _uploads.disk_uploads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _uploads.disk_uploads()


THRESHOLD = 3 * PIECE_MIN + 7
FILE_SIZES = [
    0,
    1,
    THRESHOLD - 1,
    THRESHOLD,
    THRESHOLD + 1,
    PIECE_MIN - 1,
    PIECE_MIN,
    PIECE_MIN + 1,
]
READ_SIZES = [1, 2, PIECE_MIN - 1, PIECE_MIN, PIECE_MIN + 1]

items_strategy = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["f", "g", "t"]),
            st.one_of(st.sampled_from(FILE_SIZES), st.integers(0, 2 * THRESHOLD)),
            st.sampled_from(["a.bin", "", "b"]),
        ),
        st.tuples(st.sampled_from(["f", "t"]), st.integers(0, 30), st.none()),
    ),
    min_size=1,
    max_size=5,
)


# NOTE: parametrized here, not by the fixtures: hypothesis runs each test many times.
BOTH = pytest.mark.parametrize(
    ("interface", "colour"),
    [("wsgi", "sync"), ("wsgi", "async"), ("asgi", "sync"), ("asgi", "async")],
)


@BOTH
@settings(max_examples=25, database=None, deadline=None)
@given(
    items=items_strategy,
    reads=st.lists(
        st.one_of(st.sampled_from(READ_SIZES), st.integers(1, 3 * PIECE_MIN)), min_size=1
    ),
    seed=st.integers(0, 1000),
    batch=st.sampled_from([PIECE_MIN, 2 * 1024 * 1024]),
)
def test_files_around_the_threshold_in_reads_of_every_size(
    interface: str,
    colour: str,
    items: list[tuple[str, int, str | None]],
    reads: list[int],
    seed: int,
    batch: int,
) -> None:
    rng = random.Random(seed)
    form = [
        (name, rng.randbytes(size) if filename is not None else "v" * size, filename)
        for name, size, filename in items
    ]
    body = multipart(*(part(name, data, filename=filename) for name, data, filename in form))
    sizes = iter(reads * (len(body) // min(reads) + 1))
    kept: list[UploadFile] = []
    app = pieces_app(colour, Limits(spool_threshold=THRESHOLD), kept)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_forms, "WRITE_BATCH", batch)  # NOTE: batches of one piece, or of many.
        status, answer = post(interface, app, split(body, sizes))
    assert status == 200, answer
    assert json.loads(answer) == expected(form, THRESHOLD)
    assert wait_for_no_disk_uploads() == 0
    assert all(upload.file.closed for upload in kept)


def post_unsized(interface: str, app: App, pieces: list[bytes]) -> tuple[int, bytes]:
    """POST a multipart body in ``pieces`` with no length: its size is known as it comes."""
    if interface == "wsgi":
        status, body = wsgi_post(app, Reads(pieces), MULTIPART, None)
        return int(status.split()[0]), body
    scope = http_scope("POST", "/", [(b"content-type", MULTIPART.encode())])
    sent = asyncio.run(asgi_call(app, scope, body_messages(*pieces), gap=None))
    return sent[0]["status"], response_body(sent)


def watch_uploads(monkeypatch: pytest.MonkeyPatch) -> list[UploadFile]:
    """Return the list every UploadFile made from now on goes to."""
    made: list[UploadFile] = []
    init = UploadFile.__init__

    def keeping(self: UploadFile, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(UploadFile, "__init__", keeping)
    return made


# NOTE: the body passes max_body_size at a piece's end, inside one, in a batch still waiting,
# in a file still in memory and in one on disk: 413, and every file closed.
@pytest.mark.parametrize("past", [0, 1, PIECE_MIN - 1, PIECE_MIN, PIECE_MIN + 1])
@pytest.mark.parametrize("sized", [True, False], ids=["sized", "unsized"])
@pytest.mark.parametrize("batch", [PIECE_MIN, 2 * 1024 * 1024])
def test_max_body_size_met_at_and_inside_a_piece(
    interface: str, colour: str, monkeypatch: pytest.MonkeyPatch, past: int, sized: bool, batch: int
) -> None:
    monkeypatch.setattr(_forms, "WRITE_BATCH", batch)
    made = watch_uploads(monkeypatch)
    data = random.Random(past).randbytes(12 * PIECE_MIN)
    body = multipart(part("a", data[: 2 * PIECE_MIN], filename="a"), part("b", data, filename="b"))
    limit = body.index(data) + 5 * PIECE_MIN + past - 1
    kept: list[UploadFile] = []
    app = pieces_app(colour, Limits(spool_threshold=3 * PIECE_MIN, max_body_size=limit), kept)
    pieces = split(body, iter([PIECE_MIN, 1, PIECE_MIN + 1, 2] * len(body)))
    if sized:
        status, _ = post(interface, app, pieces)
        assert status == 413  # NOTE: the length says so before any of it is read.
        assert made == []
        return
    status, answer = post_unsized(interface, app, pieces)
    assert status == 413, answer
    assert b"request body is larger than" in answer
    assert [upload.filename for upload in made] == ["a", "b"]
    assert wait_for_no_disk_uploads() == 0
    deadline = time.monotonic() + 5
    while not all(upload.file.closed for upload in made) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(upload.file.closed for upload in made)


def file_threads_idle() -> bool:
    deadline = time.monotonic() + 5
    while _file_threads.FILE_THREADS.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _file_threads.FILE_THREADS.running() == 0


# NOTE: the client leaves after some of the body, with batches written and one waiting, a
# file on disk and one in memory: every file closed, none left counted on disk, no file
# thread left at work.
@pytest.mark.parametrize("sent", [1, 2, 5, 9, 13])
@pytest.mark.parametrize("batch", [PIECE_MIN, 3 * PIECE_MIN + 1])
def test_a_client_that_leaves_mid_batch(
    colour: str, monkeypatch: pytest.MonkeyPatch, sent: int, batch: int
) -> None:
    monkeypatch.setattr(_forms, "WRITE_BATCH", batch)
    made = watch_uploads(monkeypatch)
    data = random.Random(sent).randbytes(12 * PIECE_MIN)
    body = multipart(part("a", data[:PIECE_MIN], filename="a"), part("b", data, filename="b"))
    kept: list[UploadFile] = []
    app = pieces_app(colour, Limits(spool_threshold=2 * PIECE_MIN), kept)
    pieces = split(body, iter([PIECE_MIN + 1, 2, PIECE_MIN - 1] * len(body)))[:sent]
    messages = [{"type": "http.request", "body": piece, "more_body": True} for piece in pieces]
    messages.append({"type": "http.disconnect"})
    headers = [(b"content-type", MULTIPART.encode())]
    sent_back = asyncio.run(asgi_call(app, http_scope("POST", "/", headers), messages))
    assert not any(message.get("status") == 500 for message in sent_back), sent_back
    assert kept == []
    assert made
    assert wait_for_no_disk_uploads() == 0
    deadline = time.monotonic() + 5
    while not all(upload.file.closed for upload in made) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(upload.file.closed for upload in made)
    assert file_threads_idle()


# NOTE: one file or part past the form's count, after files in memory and on disk, the body
# in pieces that end inside the part heads and the data alike: 413, every file closed.
@pytest.mark.parametrize(
    ("limits", "past"),
    [
        (Limits(spool_threshold=PIECE_MIN, max_form_files=3), True),
        (Limits(spool_threshold=PIECE_MIN, max_form_files=4), False),
        (Limits(spool_threshold=PIECE_MIN, max_form_parts=4), True),
        (Limits(spool_threshold=PIECE_MIN, max_form_parts=5), False),
    ],
)
@pytest.mark.parametrize("read", [1, 7, PIECE_MIN - 1, PIECE_MIN, PIECE_MIN + 1])
def test_the_form_counts_met_in_pieces(
    interface: str,
    colour: str,
    monkeypatch: pytest.MonkeyPatch,
    limits: Limits,
    past: bool,
    read: int,
) -> None:
    monkeypatch.setattr(_forms, "WRITE_BATCH", PIECE_MIN)
    made = watch_uploads(monkeypatch)
    data = random.Random(read).randbytes(3 * PIECE_MIN)
    items = [
        ("f", data[:10], "a"),
        ("f", data, "b"),
        ("t", "text", None),
        ("f", data[: PIECE_MIN + 1], ""),
        ("g", data[:PIECE_MIN], "c"),
    ]
    body = multipart(*(part(name, value, filename=filename) for name, value, filename in items))
    kept: list[UploadFile] = []
    app = pieces_app(colour, limits, kept)
    status, answer = post(interface, app, split(body, iter([read] * len(body))))
    if past:
        assert status == 413, answer
        assert kept == []
    else:
        assert status == 200, answer
        assert json.loads(answer) == expected(items, PIECE_MIN)
    assert wait_for_no_disk_uploads() == 0
    deadline = time.monotonic() + 5
    while not all(upload.file.closed for upload in made) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(upload.file.closed for upload in made)


# MEMORY: a file under its threshold dripped in reads of a byte or two, each after one of
# PIECE_MIN bytes (or one less, which is joined), the PieceBuffer's worst case: what it holds
# stays close to the file's size, under feed() and afeed_all() alike.
@pytest.mark.parametrize(
    "drips", [[1, PIECE_MIN], [2, PIECE_MIN], [PIECE_MIN - 1, 1], [1, 1, PIECE_MIN + 1]]
)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_file_dripped_between_large_reads_is_held_in_little_more_than_its_size(
    drips: list[int], kind: str
) -> None:
    data = random.Random(7).randbytes(1 << 19)
    body = multipart(part("f", data, filename="f.bin"))
    start = body.index(data)
    pieces = [body[:start], *split(data, iter(drips * len(data))), body[start + len(data) :]]
    held: list[int] = []

    def measured() -> Iterator[bytes]:
        yield pieces[0]
        tracemalloc.start()
        try:
            yield from pieces[1:-1]
            held.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
        yield pieces[-1]

    builder = FormBuilder(MULTIPART, Limits(spool_threshold=1 << 20), defer_writes=kind == "async")
    try:
        if kind == "sync":
            form = builder.feed_all(measured())
        else:

            async def chunks() -> AsyncIterator[bytes]:
                for chunk in measured():
                    yield chunk

            form = asyncio.run(builder.afeed_all(chunks()))
        assert form.files["f"].read() == data
    finally:
        builder.discard()
    assert held[0] < 1.25 * len(data)


# NOTE: the client leaves while a file thread still writes a batch (its first pieces, kept
# as they came, then more): the file is closed once that write ends, and nothing is left.
@pytest.mark.parametrize("sent", [9, 15])
def test_a_client_that_leaves_while_a_batch_is_written(
    colour: str, monkeypatch: pytest.MonkeyPatch, sent: int
) -> None:
    monkeypatch.setattr(_forms, "WRITE_BATCH", PIECE_MIN)
    made = watch_uploads(monkeypatch)
    append = UploadFile._append
    writes: list[int] = []

    def slow_append(self: UploadFile, chunks: list[bytes]) -> None:
        time.sleep(0.05)
        append(self, chunks)
        writes.append(sum(map(len, chunks)))

    monkeypatch.setattr(UploadFile, "_append", slow_append)
    data = random.Random(sent).randbytes(12 * PIECE_MIN)
    body = multipart(part("b", data, filename="b"))
    kept: list[UploadFile] = []
    app = pieces_app(colour, Limits(spool_threshold=2 * PIECE_MIN + 3), kept)
    pieces = split(body, iter([PIECE_MIN, 1, 2] * len(body)))[:sent]
    messages = [{"type": "http.request", "body": piece, "more_body": True} for piece in pieces]
    messages.append({"type": "http.disconnect"})
    headers = [(b"content-type", MULTIPART.encode())]
    asyncio.run(asgi_call(app, http_scope("POST", "/", headers), messages))
    assert kept == []
    assert [upload.filename for upload in made] == ["b"]
    assert file_threads_idle()
    assert wait_for_no_disk_uploads() == 0
    assert made[0].file.closed
    assert writes


# NOTE: many small files (the last ones past what the first left of the threshold) and many
# small fields, in one name and the files' names alike, read two and three bytes at a time.
def test_many_files_and_fields_dripped(interface: str, colour: str) -> None:
    rng = random.Random(11)
    items: list[tuple[str, bytes | str, str | None]] = []
    for index in range(90):
        items.append(("f", rng.randbytes(index % 7), f"{index}.bin" if index % 5 else ""))
        items.append(("f" if index % 2 else "t", str(index), None))
    body = multipart(*(part(name, data, filename=filename) for name, data, filename in items))
    kept: list[UploadFile] = []
    app = pieces_app(colour, Limits(spool_threshold=200), kept)
    # NOTE: one message a hop here (ready=False), as a slow client's come.
    status, answer = post(interface, app, split(body, iter([2, 3] * len(body))), ready=False)
    assert status == 200, answer
    assert json.loads(answer) == expected(items, 200)
    assert wait_for_no_disk_uploads() == 0
    assert all(upload.file.closed for upload in kept)
