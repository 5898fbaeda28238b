"""Multipart parts that say a thing twice: a ``Content-Disposition`` or ``Content-Type`` line
repeated, or a parameter of one repeated (``name="a"; name="b"``).

``multipart`` takes the last of each, where a proxy or a firewall in front may read the first
(Go's ``mime/multipart`` does) and so another field or file than the app: such a part is a 400,
in ``form()`` and in streamed parts alike, under both interfaces and both colours. So is a
part whose quoted value ``multipart`` reads as parameters, which a proxy does not.
"""

from __future__ import annotations

import re
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

import multipart as multipart_module
import pytest
from conftest import MakeClient
from hypothesis import given, settings
from hypothesis import strategies as st
from test_forms import form_app, multipart, part, post_multipart

from microweb import App, Request
from microweb._disposition import _MULTIPART_PARAM
from microweb._limits import Limits
from microweb._parts import MultipartEvents


def raw_part(*lines: str, body: bytes = b"x") -> bytes:
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


TWO_DISPOSITIONS = raw_part(
    'Content-Disposition: form-data; name="a"', 'Content-Disposition: form-data; name="b"'
)
REPEATED = [
    # SPEC: RFC 6266 4.1, a Content-Disposition with a parameter given twice is invalid.
    raw_part('Content-Disposition: form-data; name="a"; name="b"'),
    raw_part('Content-Disposition: form-data; name="a"; NAME="b"'),
    raw_part('Content-Disposition: form-data; name=a; name = "b"'),
    raw_part('Content-Disposition: form-data; name="f"; filename="a.txt"; filename="b.txt"'),
    raw_part('Content-Disposition: form-data; name="f"; filename="a.txt"; name=g'),
    raw_part(
        "Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''a.txt; filename*=UTF-8''b.txt"
    ),
    # SPEC: RFC 9110 5.3, a field that is no list comes on one line.
    TWO_DISPOSITIONS,
    raw_part(
        'Content-Disposition: form-data; name="f"; filename="a.txt"',
        'Content-Disposition: form-data; name="f"',
    ),
    raw_part(
        'Content-Disposition: form-data; name="a"',
        "Content-Type: text/plain; charset=utf-8",
        "Content-Type: text/plain; charset=latin-1",
    ),
    raw_part(
        'Content-Disposition: form-data; name="a"',
        "Content-Type: text/plain; charset=utf-8; charset=latin-1",
    ),
    # NOTE: named once by the RFC's reading, where multipart, which takes no "." in a name,
    # reads a second name inside the quoted value: the app got the field "evil", a proxy
    # "good" (and text decoded as UTF-16 where a proxy reads UTF-8).
    raw_part('Content-Disposition: form-data; name="good"; x.y="; name=evil"'),
    raw_part('Content-Disposition: form-data; name="good"; x\tz="; name=evil"'),
    raw_part(
        'Content-Disposition: form-data; name="a"',
        'Content-Type: text/plain; charset=utf-8; x.y="; charset=utf-16"',
    ),
    # NOTE: the shape browsers send, whose first quoted value ends in a backslash: multipart
    # read a file "evil.sh" (of the field a\), a proxy reading the RFC's way (Go's
    # mime/multipart) the name 'a"; filename=' and no file.
    raw_part('Content-Disposition: form-data; name="a\\"; filename="evil.sh"'),
    raw_part('Content-Disposition: form-data; name="a"; filename="evil.sh\\"'),
]


def parts_app(colour: str) -> App:
    app = App()

    def names(request: Request) -> list[Any]:
        return [[p.name, p.filename, p.text()] for p in request.iter_parts()]

    async def anames(request: Request) -> list[Any]:
        return [[p.name, p.filename, await p.atext()] async for p in request.aiter_parts()]

    app.post("/")(names if colour == "sync" else anames)
    return app


@pytest.mark.parametrize("make_app", [form_app, parts_app], ids=["form", "streamed-parts"])
@pytest.mark.parametrize("repeated", REPEATED)
def test_a_part_that_says_a_thing_twice_is_400(
    make_client: MakeClient, colour: str, make_app: Callable[[str], App], repeated: bytes
) -> None:
    body = multipart(part("first", "ok"), repeated)
    response = post_multipart(make_client(make_app(colour)), body)
    assert response.status_code == 400, response.text
    assert response.text.startswith("invalid multipart body: a part's ")


@pytest.mark.parametrize(
    "single",
    [
        raw_part('Content-Disposition: form-data; name="a=b"'),
        raw_part('Content-Disposition: form-data; name="a; name=b"'),
        raw_part('Content-Disposition: form-data; name="f"; filename="name=x; name=y"'),
        raw_part(
            'Content-Disposition: form-data; name="f"; filename="a.txt"; filename*=UTF-8\'\'b.txt'
        ),
        raw_part('Content-Disposition: form-data; name="a"', "Content-Type: text/plain; a=1; b=2"),
        raw_part('Content-Disposition: form-data; name="a"; x.y="1"; filename="f; x=1"'),
    ],
)
def test_parameters_named_once_are_served(
    make_client: MakeClient, colour: str, single: bytes
) -> None:
    response = post_multipart(make_client(parts_app(colour)), multipart(single))
    assert response.status_code == 200, response.text


def test_a_repeated_disposition_is_refused_however_the_body_is_split() -> None:
    # NOTE: sans-IO, one byte at a time: the check sees the part's whole head.
    body = multipart(TWO_DISPOSITIONS)
    events = MultipartEvents("----microwebTestBoundary7MA4YWxk", Limits())
    with pytest.raises(Exception, match="Content-Disposition header comes twice") as caught:
        for index in range(len(body)):
            list(events.parse(body[index : index + 1]))
    assert getattr(caught.value, "status", None) == 400


@pytest.mark.parametrize(
    "value",
    [
        'form-data; name="good"; x.y="; name=evil"',
        "form-data; name=a; filename = b.txt;name*=x",
        'form-data; a="\\"; name=b"; c=d\te; f="unclosed; name=g',
        "text/plain; charset=utf-8;charset\t=x; x.y=1; _-9=~|",
    ],
)
def test_the_copy_of_multiparts_parameter_pattern_reads_as_multipart_does(value: str) -> None:
    # NOTE: misread_by_multipart() copies multipart's private pattern; a release of multipart
    # that reads parameters otherwise must be noticed here.
    theirs = multipart_module._re_option
    assert [m.span() for m in _MULTIPART_PARAM.finditer(value)] == [
        m.span() for m in theirs.finditer(value)
    ]


# NOTE: multipart's pattern as it was copied (before review359), a group repeated a character.
OLD_MULTIPART_PARAM = re.compile(
    r'; *[a-zA-Z0-9_-]+ *= *(?:"[^\\"]*"|[a-zA-Z0-9!#$%&\'*+.^_`|~-]+|"(?:\\.|[^\\"])*")'
)
PARAM_PIECES = st.sampled_from(
    ["; ", ";", " ", "a", "name", "x.y", "=", '"', '"', "\\", "\\", "\n", "\t", "é", "~", ","]
)


@settings(max_examples=3_000, deadline=None, database=None)
@given(st.lists(PARAM_PIECES, max_size=16).map("".join))
def test_multiparts_parameter_pattern_matches_where_its_copy_did(value: str) -> None:
    expected = [m.span() for m in OLD_MULTIPART_PARAM.finditer(value)]
    assert [m.span() for m in _MULTIPART_PARAM.finditer(value)] == expected
    assert expected == [m.span() for m in multipart_module._re_option.finditer(value)]


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Python 3.10's re has no possessive repeat (*+)"
)
@pytest.mark.parametrize(
    "value",
    ['form-data; a="' + "\\b" * 2_000 + '"', 'form-data; a="' + "b" * 4_000 + "\\"],
    ids=["quoted-pairs", "unclosed"],
)
def test_multiparts_parameter_pattern_keeps_no_memory_per_character(value: str) -> None:
    # NOTE: 4 KiB, the cap of a part's head: a group repeated for each character kept a
    # backtracking point each, about 290 KB while it was read.
    tracemalloc.start()
    try:
        spans = [m.span() for m in _MULTIPART_PARAM.finditer(value)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert spans == [m.span() for m in OLD_MULTIPART_PARAM.finditer(value)]
    assert peak < 16 * 1024, peak
