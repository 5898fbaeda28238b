"""Property tests (Hypothesis) for the parsers and the router.

Pure properties feed the core directly (``parse_fields``, ``parse_cookie_header``, ``Headers``,
``parse_range``, ``FormBuilder``); the router and ``Range`` properties also go through
``TestClient(interface="both")``, which sends each request through WSGI and ASGI and fails when
the two answers differ. Every property has a small ``max_examples`` and no deadline, so it runs
in a few seconds and never fails on a slow machine.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Iterator
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_to_bytes, urlencode

import pytest
from drive import python_calls
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from microweb import App, Headers, HTTPError, Limits, Request, Response, UploadFile
from microweb._cookies import parse_cookie_header
from microweb._disposition import _DISPOSITION_PARAM
from microweb._fields import parse_fields
from microweb._files import parse_range
from microweb._forms import FormBuilder
from microweb._framing import CHUNK_EXTENSIONS
from microweb._h11_framing import empty_lines
from microweb._limits import MAX_JSON_DEPTH
from microweb._mapping_checks import _HOP_BY_HOP as HOP_BY_HOP
from microweb._parsing import _MEDIA_PARAM
from microweb._percent import percent_decode, percent_decode_bytes, percent_encode_uri
from microweb._request import decode_raw_path
from microweb._route_templates import _to_path
from microweb._strict_json import RefusedJSON, loads_json
from microweb._target import leading_slashes
from microweb.plugins.proxy import _PAIR
from microweb.testing import TestClient

FAST = settings(max_examples=60, deadline=None, database=None)
SLOW = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# NOTE: lone surrogates cannot be UTF-8 encoded, so no client can send them.
TEXT = st.characters(blacklist_categories=("Cs",))


# -- router: url_for, then match ------------------------------------------------------------

# NOTE: url_for encodes a leading "/" of a ``{x:path}`` value as %2F, so such values round-trip
# under a prefix (every template here has one); test_routing.py covers the root template.
PATH_MAY_START_WITH_SLASH = True
DOT_SEGMENTS = (".", "..")


def _no_dot_segments(text: str) -> bool:
    # NOTE: clients remove "." and ".." segments from URLs (RFC 3986 5.2.4), so such values can
    # never reach the server as written; url_for leaves them as they are.
    return not any(part in DOT_SEGMENTS for part in text.split("/"))


def _reached_as_written(text: str) -> bool:
    # NOTE: a template's literal the app takes (docs/routing.md): no %-escape, no space at a
    # segment's edge (control characters, "?" and "#" are left out of the alphabet below).
    return re.search("%[0-9A-Fa-f]{2}", text) is None and text == text.strip(" ")


LITERALS = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/{}?#"),
    min_size=1,
    max_size=8,
).filter(lambda text: _no_dot_segments(text) and _reached_as_written(text))
STR_VALUES = st.text(TEXT.filter(lambda c: c != "/"), min_size=1, max_size=12).filter(
    _no_dot_segments
)
PATH_VALUES = st.text(TEXT, min_size=1, max_size=20).filter(
    lambda v: _no_dot_segments(v) and (PATH_MAY_START_WITH_SLASH or not v.startswith("/"))
)
VALUES = {
    "str": STR_VALUES,
    "int": st.integers(min_value=0, max_value=10**15),
    "uuid": st.uuids(),
    "path": PATH_VALUES,
}


@st.composite
def route_templates(draw: st.DrawFn, index: int) -> tuple[str, dict[str, Any]]:
    """A template under its own first segment ``/r<index>``, and values for its parameters."""
    parts, params = [f"r{index}"], {}
    for position in range(draw(st.integers(min_value=0, max_value=4))):
        converter = draw(st.sampled_from(["literal", "str", "int", "uuid", "path"]))
        if converter == "literal":
            parts.append(draw(LITERALS))
            continue
        name = f"p{position}"
        params[name] = draw(VALUES[converter])
        parts.append(f"{{{name}:{converter}}}")
        if converter == "path":
            break
    return "/" + "/".join(parts), params


@st.composite
def route_sets(draw: st.DrawFn) -> list[tuple[str, dict[str, Any]]]:
    """One to four routes that cannot match each other's paths."""
    count = draw(st.integers(min_value=1, max_value=4))
    return [draw(route_templates(index)) for index in range(count)]


def routing_app(routes: list[tuple[str, dict[str, Any]]]) -> App:
    """An app whose route ``r<i>`` answers its name and the repr of each parameter."""
    app = App()
    for index, (template, _) in enumerate(routes):

        def handler(request: Request, _name: str = f"r{index}", **params: Any) -> Response:
            return Response.json({"name": _name, "params": {k: repr(v) for k, v in params.items()}})

        app.get(template, name=f"r{index}")(handler)
    return app


@SLOW
@given(route_sets())
def test_url_for_then_match_finds_the_same_route_and_params(
    routes: list[tuple[str, dict[str, Any]]],
) -> None:
    app = routing_app(routes)
    with TestClient(app, interface="both") as client:
        for index, (_, params) in enumerate(routes):
            url = app.url_for(f"r{index}", **params)
            assert not url.startswith("//")
            response = client.get(url)
            assert response.status_code == 200, (url, response.text)
            expected = {k: repr(v) for k, v in params.items()}
            assert response.json() == {"name": f"r{index}", "params": expected}


@FAST
@given(st.text(st.sampled_from("./a\u00e9"), max_size=16))
def test_a_path_value_is_refused_exactly_when_a_segment_is_a_dot_segment(value: str) -> None:
    # NOTE: the converter searches the value (fuzz3); the rule is the one of its segments.
    dot_segment = any(segment in DOT_SEGMENTS for segment in value.split("/"))
    try:
        taken = _to_path(value) == value
    except ValueError:
        taken = False
    assert taken is not dot_segment


def test_uuid_params_come_back_as_uuids() -> None:
    value = uuid.UUID(int=7)
    app = routing_app([("/r0/{p0:uuid}", {})])
    with TestClient(app, interface="both") as client:
        response = client.get(app.url_for("r0", p0=value))
    assert response.json()["params"] == {"p0": repr(value)}


# -- query strings and urlencoded bodies ----------------------------------------------------

PAIRS = st.lists(st.tuples(st.text(TEXT, max_size=10), st.text(TEXT, max_size=10)), max_size=20)


@FAST
@given(PAIRS)
def test_urlencode_then_parse_fields_round_trips(pairs: list[tuple[str, str]]) -> None:
    assert parse_fields(urlencode(pairs).encode("ascii"), max_fields=20) == pairs


@FAST
@given(PAIRS.filter(lambda pairs: len(pairs) > 3))
def test_parse_fields_refuses_too_many_fields(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(HTTPError) as caught:
        parse_fields(urlencode(pairs).encode("ascii"), max_fields=3)
    assert caught.value.status == 400


@FAST
@given(st.binary(max_size=200) | st.text(TEXT, max_size=200).map(str.encode))
def test_parse_fields_gives_pairs_or_400(data: bytes) -> None:
    try:
        fields = parse_fields(data, max_fields=10)
    except HTTPError as exc:
        assert exc.status == 400
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields)


# NOTE: the pieces where splitting and decoding can go wrong: empty fields, "=" in names and
# values, "+", escapes cut short, escapes of bytes that are not UTF-8 alone or together.
FIELD_PIECES = st.sampled_from(
    [
        *("a", "b", " ", "é", ";", "=", "&", "&&", "+", "%", "%2", "%00"),
        *("%2B", "%3D", "%26", "%41", "%ff", "%C3", "%A9", "%e2%82%ac"),
    ]
)


def _qsl_or_400(data: bytes, max_fields: int) -> list[tuple[str, str]] | int:
    try:
        text = data.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=max_fields)
    except ValueError:  # NOTE: UnicodeDecodeError included, and parse_qsl's too many fields.
        return 400


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(FIELD_PIECES, max_size=12).map("".join), st.integers(1, 6))
def test_parse_fields_gives_the_pairs_of_parse_qsl(text: str, max_fields: int) -> None:
    data = text.encode("utf-8")
    try:
        fields: list[tuple[str, str]] | int = parse_fields(data, max_fields=max_fields)
    except HTTPError as exc:
        fields = exc.status
    assert fields == _qsl_or_400(data, max_fields)


@pytest.mark.parametrize(
    ("data", "pairs"),
    [
        (b"", []),
        (b"&", []),
        (b"&&a&&", [("a", "")]),
        (b"=", [("", "")]),
        (b"a", [("a", "")]),
        (b"a=", [("a", "")]),
        (b"=b", [("", "b")]),
        (b"a=b=c", [("a", "b=c")]),
        (b"a=1&a=2&b", [("a", "1"), ("a", "2"), ("b", "")]),
        (b"a+b=c+d", [("a b", "c d")]),
        (b"a%2Bb=%3D%26", [("a+b", "=&")]),
        (b"%=%2", [("%", "%2")]),
        (b"plain=1&esc=%41", [("plain", "1"), ("esc", "A")]),
        (b"e=%e2%82%ac&f=\xc3\xa9", [("e", "\u20ac"), ("f", "\u00e9")]),
        (b"a;b=c", [("a;b", "c")]),
    ],
)
def test_parse_fields_edge_cases(data: bytes, pairs: list[tuple[str, str]]) -> None:
    assert parse_fields(data, max_fields=10) == pairs


@pytest.mark.parametrize("data", [b"a=%ff", b"%C3=1", b"a=1&b=%e2%82", b"\xff=1", b"a=%ed%a0%80"])
def test_parse_fields_refuses_what_is_not_utf8(data: bytes) -> None:
    with pytest.raises(HTTPError) as caught:
        parse_fields(data, max_fields=10)
    assert caught.value.status == 400


# -- JSON strings with surrogate escapes ---------------------------------------------------

JSON_STRING_PIECES = st.sampled_from(
    [
        *(r"\ud800", r"\udc00", r"\uD83D", r"\uDE00", r"\uDBFF", r"\uDFFF", r"\uD7FF", r"\uE000"),
        *("\\\\", r"\\ud800", r"\\udc00", r"\n", r"\"", r"\u0041", r"\u005c", "u", "d800", "a"),
    ]
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(JSON_STRING_PIECES, max_size=10).map("".join))
def test_a_lone_surrogate_is_refused_exactly_when_the_parsed_text_has_one(piece: str) -> None:
    # NOTE: the check reads the text; json.loads decodes it, pairs joined, and only a lone
    # surrogate then fails to encode.
    text = f'["{piece}", {{"{piece}": 1}}]'
    try:
        json.loads(text)[0].encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(RefusedJSON):
            loads_json(text)
    else:
        assert loads_json(text) == json.loads(text)


# -- how deep JSON nests ---------------------------------------------------------------------

# NOTE: what a string may hold that a quick read of the text could take for nesting: brackets,
# escaped quotes and backslashes (alone and in runs), a \u escape of "[", text beyond ASCII.
DEPTH_STRING_PIECES = ["[", "]", "{", "}", '\\"', "\\\\", '\\\\\\"', "\\u005b", "é", "😀", "a"]


def json_depth(text: str) -> int:
    """How deep ``text``, valid JSON, nests, read one character at a time."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = not escaped and char == "\\", escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def nested_json(rng: random.Random, depth: int, siblings: int) -> str:
    """JSON nested ``depth`` deep along one branch, each level but the last two with up to
    ``siblings`` other values (strings of ``DEPTH_STRING_PIECES``, brackets nested shallow)."""

    def string() -> str:
        return '"' + "".join(rng.choices(DEPTH_STRING_PIECES, k=rng.randrange(5))) + '"'

    def sibling() -> str:
        return rng.choice([string(), "[]", "{}", "[[1],{}]", f"{{{string()}:[{string()}]}}"])

    opened: list[str] = []
    closed: list[str] = []
    for level in range(depth):
        # NOTE: none on the last two levels, where a sibling's own brackets would go deeper.
        most = siblings if level < depth - 2 else 0
        before = [sibling() for _ in range(rng.randrange(most + 1))]
        after = [sibling() for _ in range(rng.randrange(most + 1))]
        if rng.random() < 0.5:
            opened.append("[" + "".join(value + ", " for value in before))
            closed.append("".join(", " + value for value in after) + "]")
        else:
            pairs = [f"{string()}: {value}" for value in before]
            opened.append("{" + "".join(pair + ", " for pair in pairs) + string() + ": ")
            closed.append("".join(f", {string()}: {value}" for value in after) + "}")
    return "".join(opened) + string() + "".join(reversed(closed))


@pytest.mark.parametrize("depth", [3, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
def test_json_is_refused_exactly_when_it_nests_past_the_limit(depth: int) -> None:
    # NOTE: the check reads the text, not the value; brackets, escaped quotes and backslashes
    # in strings must count for nothing, before the count of brackets and after it (review296).
    for seed in range(40):
        rng = random.Random(seed)
        text = nested_json(rng, depth, siblings=200 if depth == 3 else rng.choice([0, 2]))
        assert json_depth(text) == depth
        if depth <= MAX_JSON_DEPTH:
            assert loads_json(text) == json.loads(text), seed
        else:
            with pytest.raises(RefusedJSON, match="nested too deeply"):
                loads_json(text)


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, False),
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), True),
        ('["\\\\", ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * MAX_JSON_DEPTH, False),
        ('["\\\\", ' + "[" * MAX_JSON_DEPTH + "]" * (MAX_JSON_DEPTH + 1), True),
        ('["\\"' + "[" * 600 + '", "\\\\\\"]"]', False),
        (
            '{"é😀": "'
            + "{" * 600
            + '", "x": '
            + "[" * MAX_JSON_DEPTH
            + "]" * MAX_JSON_DEPTH
            + "}",
            True,
        ),
    ],
    ids=[
        "at-limit",
        "past-limit",
        "escaped-backslash",
        "escaped-backslash-past",
        "escaped-quote",
        "non-ascii",
    ],
)
def test_json_depth_edges(text: str, deep: bool) -> None:
    assert (json_depth(text) > MAX_JSON_DEPTH) is deep
    if deep:
        with pytest.raises(RefusedJSON, match="nested too deeply"):
            loads_json(text)
    else:
        assert loads_json(text) == json.loads(text)


# -- cookies ---------------------------------------------------------------------------------

TOKEN = st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}", fullmatch=True)
# NOTE: a response may not set a hop-by-hop header (a ValueError), so its names are the rest.
RESPONSE_NAME = TOKEN.filter(lambda name: name.lower() not in HOP_BY_HOP)
# SPEC: RFC 6265 4.1.1 cookie-octet; non-ASCII values are being fixed in another branch.
COOKIE_OCTETS = st.text(
    st.sampled_from([chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\']), max_size=20
)


@FAST
@given(st.text(max_size=300))
def test_parse_cookie_header_never_raises(header: str) -> None:
    cookies = parse_cookie_header(header)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in cookies.items())


@FAST
@given(st.dictionaries(TOKEN, COOKIE_OCTETS, min_size=1, max_size=5))
def test_set_cookie_then_cookie_header_round_trips(cookies: dict[str, str]) -> None:
    response = Response()
    for name, value in cookies.items():
        response.set_cookie(name, value)
    pairs = [header.split(";")[0] for header in response.headers.getlist("set-cookie")]
    assert parse_cookie_header("; ".join(pairs)) == cookies


@pytest.mark.parametrize(
    "unit", ['a="\\\\\\', "\\" * 7 + ";", 'a=";', "=;" * 3, "a=b" + "\\012" * 5 + ";"]
)
def test_parse_cookie_header_is_linear(unit: str) -> None:
    # NOTE: SimpleCookie takes minutes on 200,000 backslashes (CVE-2024-7592); linear is ~10 ms.
    header = unit * (200_000 // len(unit))
    started = time.perf_counter()
    parse_cookie_header(header)
    assert time.perf_counter() - started < 1.0


PERCENT_PIECES = st.sampled_from(
    [
        *("a", "+", "%", "%%", "%2", "%zz", "%00", "%41", "%7f%80", "%ff", "%C3", "%A9", "é"),
        *("ÿ", "€", "%e2%82%ac", "%e2%82", "%f0%9f", "%98%80", "%ED%A0%80", "%c0%af"),
        # NOTE: what the decoder writes escapes with (quoted-printable's "=XX"), and marks.
        *("=", "=41", "%3D", "%3d", "%25", "h", "%hh", "\r\n", "=\n", "_"),
        # NOTE: what quoted-printable decoders may strip (whitespace before a line break, a
        # soft break) or stop at (NUL).
        *(" \r\n", "\t\n", "=\r\n", "%20\r\n", "%09\n", "\x00", "%00=\r"),
    ]
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(PERCENT_PIECES, max_size=12).map("".join), st.sampled_from(["", "x" * 1100]))
def test_percent_decode_gives_what_unquote_gives(text: str, padding: str) -> None:
    # NOTE: the padding makes a long text, as a form's field or a path may be.
    text = text + padding + text
    for errors in ("replace", "strict"):
        try:
            expected = unquote(text, errors=errors)
        except UnicodeDecodeError:
            expected = "400"
        try:
            assert percent_decode(text, errors) == expected
        except UnicodeDecodeError:
            assert expected == "400"
    data = text.encode("utf-8")
    assert percent_decode_bytes(data) == unquote_to_bytes(data)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.one_of(PERCENT_PIECES.map(str.encode), st.binary(max_size=4))).map(b"".join))
def test_percent_decode_bytes_gives_what_unquote_to_bytes_gives(data: bytes) -> None:
    # NOTE: any bytes, not only UTF-8: a raw path or a filename* may hold them.
    assert percent_decode_bytes(data) == unquote_to_bytes(data)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.one_of(PERCENT_PIECES.map(str.encode), st.binary(max_size=4))).map(b"".join))
def test_h11_paths_are_decoded_as_uvicorn_decodes_them(path: bytes) -> None:
    # NOTE: Uvicorn's h11 protocol: unquote(raw_path.decode("ascii")), a UnicodeDecodeError
    # for a path that is not ASCII (review325).
    h11_decoded_path = pytest.importorskip("microweb._h11_connection").decoded_path
    try:
        expected = unquote(path.decode("ascii"))
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            h11_decoded_path(path)
    else:
        assert h11_decoded_path(path) == expected


def test_lone_percent_signs_cost_no_exception_each() -> None:
    # NOTE: unquote() raised and caught a KeyError for each "%" that starts no escape: 256 KiB
    # of them in a query, a cookie or a path took 150-240 ms. The tracer counts the exceptions.
    raised: list[type[BaseException]] = []

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "exception":
            raised.append(arg[0])
        return tracer

    value = "a%" * 5_000 + "%41%"
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        cookies = parse_cookie_header("c=" + value)
        fields = parse_fields(b"q=" + value.encode("ascii"), max_fields=10)
        path = decode_raw_path(b"/" + value.encode("ascii"))
    finally:
        sys.settrace(previous)
    decoded = "a%" * 5_000 + "A%"
    assert (cookies, fields, path) == ({"c": decoded}, [("q", decoded)], "/" + decoded)
    assert len(raised) < 10


# NOTE: what percent_encode_uri() did before it used translate(): quote() on each run of the
# characters a URI cannot hold.
_NOT_IN_URI_RUN = re.compile(r'[\x00-\x20"<>\\^`{|}\x7f-\U0010ffff]+')
URI_PIECES = st.one_of(
    st.sampled_from(["a", "/", "%", "%41", " ", '"', "\\", "^", "~", "\x7f", "\x80", "é", "€"]),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=3),
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(URI_PIECES, max_size=12).map("".join))
def test_percent_encode_uri_gives_what_quote_on_each_run_gives(text: str) -> None:
    expected = _NOT_IN_URI_RUN.sub(lambda m: quote(m.group(), safe=""), text)
    assert percent_encode_uri(text) == expected


def test_redirects_to_a_client_url_cost_no_python_call_per_character() -> None:
    # NOTE: a redirect to a client's 256 KiB "?next=" of 'a"a"...' called quote() for each
    # '"': 116 ms of CPU; one whose host was 40,000 labels of "é." ran the Python "idna"
    # codec on each: 440 ms.
    assert python_calls(percent_encode_uri, 'a"é ' * 5_000) == 0
    assert python_calls(Response.redirect, "http://" + "é." * 5_000 + "/" + 'a"' * 5_000) < 50


# -- headers ---------------------------------------------------------------------------------

LATIN1 = st.characters(max_codepoint=0xFF)
# NOTE: what check_header accepts: latin-1 without controls (HTAB inside), no padding.
_CONTROLS = {chr(c) for c in (*range(0x09), *range(0x0A, 0x20), 0x7F)}
SAFE_VALUES = st.text(LATIN1.filter(lambda c: c not in _CONTROLS), max_size=30).map(
    lambda v: v.strip(" \t")
)


def case_variants(name: str) -> st.SearchStrategy[str]:
    """Every spelling of ``name`` with letters in random case."""
    flips = st.lists(st.booleans(), min_size=len(name), max_size=len(name))
    return flips.map(
        lambda f: "".join(c.swapcase() if s else c for c, s in zip(name, f, strict=True))
    )


@FAST
@given(RESPONSE_NAME, SAFE_VALUES, st.data())
def test_headers_keep_values_verbatim_and_look_up_any_case(
    name: str, value: str, data: st.DataObject
) -> None:
    headers = Headers([(name, value)])
    spelling = data.draw(case_variants(name))
    assert headers[spelling] == value
    assert spelling in headers
    assert headers.getlist(spelling) == [value]
    assert headers.items() == [(name.lower(), value)]
    headers[data.draw(case_variants(name))] = value + "!"
    assert headers.getlist(name) == [value + "!"]


@FAST
@given(TOKEN, SAFE_VALUES, st.sampled_from("\r\n\0"), SAFE_VALUES)
def test_headers_refuse_cr_lf_nul_anywhere(name: str, head: str, bad: str, tail: str) -> None:
    value = head + bad + tail
    with pytest.raises(ValueError):
        Headers([(name, value)])
    headers = Headers()
    with pytest.raises(ValueError):
        headers[name] = value
    with pytest.raises(ValueError):
        headers.add(name, value)
    assert len(headers) == 0


# -- Range -----------------------------------------------------------------------------------

SIZES = st.integers(min_value=0, max_value=10**12)
NUMBER = st.integers(min_value=0, max_value=10**13).map(str) | st.just("")
RANGE_HEADERS = (
    st.builds("bytes={}-{}".format, NUMBER, NUMBER)
    | st.builds("{}={}-{}".format, st.sampled_from(["BYTES", " bytes ", "items"]), NUMBER, NUMBER)
    | st.text(st.sampled_from("bytes=0123456789-, \t"), max_size=30)
    | st.text(max_size=30)
)


@FAST
@given(RANGE_HEADERS, SIZES)
def test_parse_range_spans_lie_within_the_file(header: str, size: int) -> None:
    span = parse_range(header, size)
    if isinstance(span, tuple):
        start, length = span
        assert start >= 0
        assert length >= 1
        assert start + length <= size


def expected_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """The answer RFC 9110 14.1.2 gives to a ``bytes=first-last`` header (ASCII digits only)."""
    first, last = header.removeprefix("bytes=").split("-")
    if not first:
        suffix = int(last)
        if suffix and not size:
            return None  # NOTE: satisfiable (14.1.1), yet no Content-Range can give it.
        return (size - min(suffix, size), min(suffix, size)) if suffix else False
    if last and int(last) < int(first):
        return None
    if int(first) >= size:
        return False
    end = min(int(last), size - 1) if last else size - 1
    return int(first), end - int(first) + 1


@FAST
@given(st.builds("bytes={}-{}".format, NUMBER, NUMBER).filter(lambda h: h != "bytes=-"), SIZES)
def test_parse_range_follows_the_rfc(header: str, size: int) -> None:
    assume(max(len(part) for part in header[6:].split("-")) <= 18)
    assert parse_range(header, size) == expected_range(header, size)


FILE_SIZES = [0, 1, 2, 100, 70_000]


@pytest.fixture(scope="module")
def range_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A client for an app serving files of ``FILE_SIZES`` bytes at ``/f/<size>``."""
    folder = tmp_path_factory.mktemp("ranges")
    for size in FILE_SIZES:
        (folder / f"{size}.bin").write_bytes(file_content(size))
    app = App()

    @app.get("/f/{size:int}")
    def serve(request: Request, size: int) -> Response:
        return Response.file(folder / f"{size}.bin")

    with TestClient(app, interface="both") as client:
        yield client


def file_content(size: int) -> bytes:
    """The bytes of the file of ``size`` bytes."""
    return (bytes(range(256)) * (size // 256 + 1))[:size]


@settings(FAST, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(FILE_SIZES), RANGE_HEADERS)
def test_range_requests_get_206_in_the_file_416_or_the_whole_file(
    range_client: TestClient, size: int, header: str
) -> None:
    assume(header.isascii() and header.isprintable() and header == header.strip())
    response = range_client.get(f"/f/{size}", headers={"range": header})
    content = file_content(size)
    if response.status_code == 206:
        first, last = map(int, response.headers["content-range"][6:].split("/")[0].split("-"))
        assert 0 <= first <= last < size
        assert response.content == content[first : last + 1]
    elif response.status_code == 416:
        assert response.headers["content-range"] == f"bytes */{size}"
    else:
        assert (response.status_code, response.content) == (200, content)
    span = parse_range(header, size)
    expected_status = 416 if span is False else 200 if span is None else 206
    assert response.status_code == expected_status


# -- multipart at random split points ------------------------------------------------------

BOUNDARY = "propertyBoundary4x9Zq"
NAMES = st.from_regex(r"[A-Za-z0-9_-]{1,10}", fullmatch=True)
PART = st.booleans().flatmap(
    lambda is_file: st.tuples(
        NAMES,
        st.just(is_file),
        st.binary(max_size=3000) if is_file else st.text(TEXT, max_size=300),
    )
)


def multipart_body(parts: list[tuple[str, bool, str | bytes]]) -> bytes:
    """Encode ``(name, is_file, content)`` parts as a multipart body."""
    chunks = []
    for index, (name, is_file, content) in enumerate(parts):
        data = content.encode() if isinstance(content, str) else content
        filename = f'; filename="f{index}.bin"' if is_file else ""
        kind = "Content-Type: application/octet-stream\r\n" if is_file else ""
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n'
        chunks.append(head.encode() + kind.encode() + b"\r\n" + data + b"\r\n")
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


def parse_in_chunks(body: bytes, cuts: list[int]) -> list[tuple[str, Any]]:
    """Feed ``body`` to a ``FormBuilder`` split at ``cuts``; describe the form it makes."""
    limits = Limits(spool_threshold=500)
    builder = FormBuilder(f"multipart/form-data; boundary={BOUNDARY}", limits)
    points = [0, *sorted(cuts), len(body)]
    for start, end in itertools.pairwise(points):
        builder.feed(body[start:end])
    form = builder.finish()
    try:
        return [(name, describe(value)) for name, value in form.multi_items()]
    finally:
        form.close()


def describe(value: str | UploadFile) -> Any:
    """A comparable view of a form value."""
    if isinstance(value, str):
        return value
    return (value.filename, value.content_type, value.size, value.read())


@SLOW
@given(st.lists(PART, min_size=1, max_size=6), st.data())
def test_multipart_split_anywhere_parses_as_whole(
    parts: list[tuple[str, bool, str | bytes]], data: st.DataObject
) -> None:
    body = multipart_body(parts)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=40))
    whole = parse_in_chunks(body, [])
    assert parse_in_chunks(body, cuts) == whole
    expected = []
    for index, (name, is_file, content) in enumerate(parts):
        raw = content.encode() if isinstance(content, str) else content
        file = (f"f{index}.bin", "application/octet-stream", len(raw), raw)
        expected.append((name, file if is_file else content))
    assert whole == expected


def test_multipart_one_byte_at_a_time() -> None:
    parts: list[tuple[str, bool, str | bytes]] = [("a", False, "é\r\n"), ("b", True, b"\r\n--")]
    body = multipart_body(parts)
    assert parse_in_chunks(body, list(range(len(body)))) == parse_in_chunks(body, [])


# -- headers sent on several lines --------------------------------------------------------

# NOTE: values the framework reads for each header that decides an answer: the error body's
# type (Accept), gzip (Accept-Encoding), CORS, the request ID, a file's conditions and range.
# The file was last modified at FILE_DATE.
FILE_DATE = "Sat, 01 Jan 2000 00:00:00 GMT"
READ_HEADERS = {
    "accept": ["application/json", "text/plain", "application/json;q=0", "*/*"],
    "accept-encoding": ["gzip", "gzip;q=0", "identity", "*"],
    "origin": ["https://a.example", "https://b.example", "null"],
    "access-control-request-method": ["GET", "PUT", ""],
    "access-control-request-headers": ["x-a", "x-b", ""],
    "x-request-id": ["abc", "def", ""],
    "if-match": ["*", '"x"', ","],
    "if-none-match": ["*", '"x"', ","],
    "if-modified-since": [
        FILE_DATE,
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Thu, 01 Jan 1970 00:00:00 GMT",
    ],
    "if-unmodified-since": [FILE_DATE, "Thu, 01 Jan 1970 00:00:00 GMT"],
    "range": ["bytes=0-1", "bytes=5-", "bytes=-3"],
    "if-range": ['"x"', FILE_DATE],
}
# NOTE: the headers without which a header above is not read.
COMPANIONS = {
    "access-control-request-method": [("origin", "https://a.example")],
    "access-control-request-headers": [
        ("origin", "https://a.example"),
        ("access-control-request-method", "GET"),
    ],
    "if-range": [("range", "bytes=0-1")],
}


@pytest.fixture(scope="module")
def lines_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A client for an app with every plugin that reads a request header, and a file."""
    from microweb.plugins import CORS, GZip, RequestID

    path = tmp_path_factory.mktemp("lines") / "f.txt"
    path.write_bytes(b"0123456789" * 10)
    os.utime(path, (946_684_800, 946_684_800))  # NOTE: FILE_DATE.
    app = App()
    app.install(CORS(["https://a.example"], allow_credentials=True, allow_headers=["x-a"]))
    app.install(GZip(minimum_size=10))
    app.install(RequestID(generator=lambda: "new"))

    @app.route("/f", methods=["GET", "PUT"])
    def serve(request: Request) -> Response:
        return Response.file(path)

    @app.get("/error")
    def error(request: Request) -> str:
        raise HTTPError(409, "a conflict, said at some length")

    with TestClient(app, interface="both") as client:
        yield client


LINES = st.sampled_from(sorted(READ_HEADERS)).flatmap(
    lambda name: st.tuples(
        st.just(name), st.lists(st.sampled_from(READ_HEADERS[name]), min_size=2, max_size=3)
    )
)
TARGETS = st.sampled_from([("GET", "/f"), ("OPTIONS", "/f"), ("GET", "/error"), ("PUT", "/f")])


@settings(FAST, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(LINES, TARGETS)
def test_a_header_on_several_lines_is_read_alike_under_both_interfaces(
    lines_client: TestClient, header: tuple[str, list[str]], target: tuple[str, str]
) -> None:
    # NOTE: WSGI servers join the lines of a header with commas, ASGI servers pass each line;
    # interface="both" fails when the two answers differ.
    name, values = header
    headers = [*COMPANIONS.get(name, []), *((name, value) for value in values)]
    lines_client.request(*target, headers=headers)


# -- hostile5's rewritten patterns match as the ones they replaced --------------------------

# NOTE: the patterns as they were before hostile5 (each a repeated group that kept a
# backtracking point a repeat), and the characters that decide where they stop.
_OLD_MEDIA_PARAM = re.compile(r';[ \t]*([^;=]*)(?:=[ \t]*("[^"\\]*(?:\\.[^"\\]*)*"?|[^;]*))?')
_OLD_DISPOSITION_PARAM = re.compile(
    r';\s*(?=([^\s=;"]+))\1\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"|[^;\s]*)'
)
_CHUNK_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_OLD_CHUNK_EXTENSIONS = re.compile(
    rb"(?:;"
    + _CHUNK_TOKEN
    + rb"(?:=(?:"
    + _CHUNK_TOKEN
    + rb'|"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"))?)*'
)
_FORWARDED_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_OLD_FORWARDED_PAIR = re.compile(rf'({_FORWARDED_TOKEN})=({_FORWARDED_TOKEN}|"(?:[^"\\]|\\.)*")')
_OLD_EMPTY_LINES = re.compile(rb"(?:\r?\n)*")
_OLD_LEADING_SLASHES = re.compile(rb"(?:/|%2[Ff])+")
_DECIDING = st.lists(
    st.sampled_from(
        [
            *("\\", '"', "/", "%2F", "%2f", "%", "2", "F", "\r", "\n", "\t", " ", ";", "="),
            *("a", "\x80", "\xff", "\x00", "\x7f", "é"),
        ]
    ),
    max_size=40,
).map("".join)


def _found(pattern: re.Pattern[Any], text: Any, position: int = 0) -> Any:
    return [(found.span(), found.groups()) for found in pattern.finditer(text, position)]


def _latin1(text: str) -> bytes:
    return text.encode("utf-8") if "é" in text else text.encode("latin-1")


@settings(max_examples=500, deadline=None, database=None)
@given(text=_DECIDING, position=st.integers(0, 4), cut=st.integers(0, 4))
def test_the_rewritten_patterns_match_as_the_old_ones(text: str, position: int, cut: int) -> None:
    assert _found(_MEDIA_PARAM, text) == _found(_OLD_MEDIA_PARAM, text)
    assert _found(_DISPOSITION_PARAM, text) == _found(_OLD_DISPOSITION_PARAM, text)
    start = min(position, len(text))
    new, old = _PAIR.match(text, start), _OLD_FORWARDED_PAIR.match(text, start)
    assert (new and (new.span(), new.groups())) == (old and (old.span(), old.groups()))
    data = _latin1(text)
    end = max(0, len(data) - cut)
    start = min(position, end)
    new_ext, old_ext = (
        p.fullmatch(data, start, end) for p in (CHUNK_EXTENSIONS, _OLD_CHUNK_EXTENSIONS)
    )
    assert (new_ext is None) == (old_ext is None)
    assert CHUNK_EXTENSIONS.match(data).span() == _OLD_CHUNK_EXTENSIONS.match(data).span()
    assert empty_lines(data) == _OLD_EMPTY_LINES.match(data).end()
    leading = _OLD_LEADING_SLASHES.match(data)
    assert leading_slashes(data) == (leading.end() if leading else 0)
