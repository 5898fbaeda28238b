"""Uploads and forms as app code uses them: RFC 8187 file names, ``UploadFile`` against file
objects and after its request, and a form read again after it failed.

Behaviour tests run under both interfaces and both handler colours; the helpers that build
multipart bodies and describe forms are ``test_forms``'s.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import MakeClient
from test_forms import form_app, multipart, part, post_multipart

from microweb import App, Request

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
    "value", ["UTF-8''%FF.txt", "koi8-r''%C1.txt", "no-quotes.txt", "UTF-8'only-one.txt"]
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
