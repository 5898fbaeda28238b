"""What a handler reads from a hostile request, and what it builds from it, under both
interfaces and both colours (review163)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import MakeClient, in_colour
from drive import chunked

from microweb import App, HTTPError, Limits, Request, Response

# -- Set-Cookie built from the request ---------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost:8000", "a.example:443", "[::1]:8000"])
def test_set_cookie_refuses_a_domain_with_a_port(
    make_client: MakeClient, colour: str, host: str
) -> None:
    # NOTE: domain=request.host is the natural mistake; with a port, browsers drop the cookie
    # (RFC 6265 5.3: the request's host never domain-matches "localhost:8000"), and a login that
    # never sticks was all the app saw.
    app = App()

    def login(request: Request) -> Response:
        response = Response("ok")
        try:
            response.set_cookie("sid", "1", domain=request.host)
        except ValueError as exc:
            return Response(str(exc), status=400)
        return response

    app.get("/login")(in_colour(colour, login))
    answer = make_client(app).get("/login", headers={"host": host})
    assert answer.status_code == 400
    assert "without a port" in answer.text
    assert "set-cookie" not in answer.headers


@pytest.mark.parametrize("domain", ["a:b", "[a.example]", "[::1", "::1", "[::g]", "a[b]"])
def test_set_cookie_refuses_a_colon_or_brackets_outside_an_ipv6_literal(domain: str) -> None:
    with pytest.raises(ValueError, match="host name"):
        Response().set_cookie("v", "x", domain=domain)


@pytest.mark.parametrize("domain", ["[::1]", "[2001:db8::1]", "[::ffff:1.2.3.4]", "127.0.0.1"])
def test_set_cookie_takes_ip_addresses_as_domain(domain: str) -> None:
    response = Response()
    response.set_cookie("v", "x", domain=domain)
    assert f"; Domain={domain};" in response.headers["set-cookie"]


# -- a failed read, then json(silent=True) -----------------------------------------------------


def silent_twice_app(colour: str, first: str, limits: Limits | None = None) -> App:
    """An app whose handler reads the body with ``first`` (``read`` or ``json``), then twice
    with ``json(silent=True)``, and answers each step's status (``None`` for a ``None``)."""
    app = App(limits=limits)

    def statuses(request: Request, reads: list[Callable[[], Any]]) -> list[Any]:
        found: list[Any] = []
        for read in reads:
            try:
                found.append(None if read() is None else 200)
            except HTTPError as exc:
                found.append(exc.status)
        return found

    def sync_reads(request: Request) -> list[Any]:
        opener = request.read if first == "read" else lambda: request.json(silent=True)
        silent = [lambda: request.json(silent=True)] * 2
        return statuses(request, [opener, *silent])

    async def async_reads(request: Request) -> list[Any]:
        found: list[Any] = []
        opener = request.aread if first == "read" else lambda: request.ajson(silent=True)
        for read in [
            opener,
            lambda: request.ajson(silent=True),
            lambda: request.ajson(silent=True),
        ]:
            try:
                found.append(None if await read() is None else 200)
            except HTTPError as exc:
                found.append(exc.status)
        return found

    app.post("/")(sync_reads if colour == "sync" else async_reads)
    return app


@pytest.mark.parametrize("first", ["read", "json"])
def test_silent_json_after_a_body_shorter_than_its_length_is_400_every_time(
    make_client: MakeClient, colour: str, first: str
) -> None:
    # NOTE: the first read's 400 was kept, yet json(silent=True) gave None after it: the
    # same call answered 400, then None (review163).
    headers = {"content-type": "application/json", "content-length": "10"}
    answer = make_client(silent_twice_app(colour, first)).post("/", content=b"[1]", headers=headers)
    assert answer.json() == [400, 400, 400]


def test_silent_json_after_a_413_is_413_under_both_interfaces(
    make_client: MakeClient, interface: str, colour: str
) -> None:
    # NOTE: a body sent chunked, counted as it came under ASGI: its 413 was kept, and
    # json(silent=True) then gave None there, where WSGI (which knows the length) said 413.
    app = silent_twice_app(colour, "read", Limits(max_body_size=8))
    body = chunked(interface, [b"[1,", b"2,3,4,5,6]"])
    answer = make_client(app).post("/", content=body, headers={"content-type": "application/json"})
    assert answer.json() == [413, 413, 413]


# -- what a handler reads: pinned answers to odd but valid input -------------------------------


def head_app(colour: str) -> App:
    """An app whose ``/q`` answers the query's pairs, ``/t`` the body as text, ``/h`` the host
    and the URL."""
    app = App()

    def query(request: Request) -> list[tuple[str, str]]:
        return request.query.multi_items()

    def where(request: Request) -> dict[str, str]:
        return {"host": request.host, "url": request.url}

    app.get("/q")(in_colour(colour, query))
    app.get("/h")(in_colour(colour, where))

    if colour == "sync":

        @app.post("/t")
        def text(request: Request) -> str:
            return request.text()

    else:

        @app.post("/t")
        async def atext(request: Request) -> str:
            return await request.atext()

    return app


@pytest.mark.parametrize(
    ("query", "pairs"),
    [
        # NOTE: ";" separates no fields (as parse_qsl since Python 3.10, and Werkzeug).
        ("a=1;b=2", [["a", "1;b=2"]]),
        ("a=1&a=2", [["a", "1"], ["a", "2"]]),
        ("p=a+b&q=a%2Bb", [["p", "a b"], ["q", "a+b"]]),
        ("a=%zz&b=%&c=%4", [["a", "%zz"], ["b", "%"], ["c", "%4"]]),
        ("ids[]=1&ids[]=2", [["ids[]", "1"], ["ids[]", "2"]]),
        ("=x&y&&z=", [["", "x"], ["y", ""], ["z", ""]]),
        ("k=%00", [["k", "\x00"]]),
    ],
)
def test_query_pairs(make_client: MakeClient, colour: str, query: str, pairs: list[Any]) -> None:
    assert make_client(head_app(colour)).get(f"/q?{query}").json() == pairs


@pytest.mark.parametrize("query", ["a=%ff", "a=%C3", "a=%ED%A0%80", "%C0%AF=1"])
def test_query_that_is_not_utf8_is_400(make_client: MakeClient, colour: str, query: str) -> None:
    answer = make_client(head_app(colour)).get(f"/q?{query}")
    assert (answer.status_code, answer.text) == (400, "query or form data is not valid UTF-8")


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e999", "9" * 400])
def test_type_float_does_not_take_a_value_json_cannot_send(
    make_client: MakeClient, colour: str, value: str
) -> None:
    # NOTE: float() took them, and an app that sent the number back in JSON (which has no
    # NaN nor infinity) was a 500, for any client's ?price=nan; {x:float} already refused
    # them (TRAPS.md 25), as request.json() does.
    app = App()

    def price(request: Request) -> dict[str, Any]:
        query = request.query
        return {"one": query.get("p", 0.0, type=float), "all": query.getlist("p", type=float)}

    app.get("/price")(in_colour(colour, price))
    answer = make_client(app).get("/price", params=[("p", value), ("p", "1.5")])
    assert (answer.status_code, answer.json()) == (200, {"one": 0.0, "all": [1.5]})


@pytest.mark.parametrize(
    ("content_type", "status", "text"),
    [
        ('text/plain; charset="iso-8859-1"', 200, "caf\u00e9"),
        ("text/plain; CHARSET=Latin1", 200, "caf\u00e9"),
        # NOTE: two charsets are a 400 (RFC 6838 4.3), where the last one held, as in
        # Werkzeug's parse_options_header, and a proxy reading the first decoded other text.
        (
            "text/plain; charset=utf-8; charset=latin1",
            400,
            "the body's Content-Type names its charset twice",
        ),
        ("text/plain; charset", 400, "unsupported charset for the body (use utf-8)"),
        ("text/plain; charset=", 400, "unsupported charset for the body (use utf-8)"),
        ('text/plain; charset="latin\\-1"', 400, "unsupported charset for the body (use utf-8)"),
        ("text/plain; charset=utf-7", 400, "unsupported charset for the body (use utf-8)"),
    ],
)
def test_text_charset_parameter(
    make_client: MakeClient, colour: str, content_type: str, status: int, text: str
) -> None:
    headers = {"content-type": content_type}
    answer = make_client(head_app(colour)).post("/t", content=b"caf\xe9", headers=headers)
    assert (answer.status_code, answer.text) == (status, text)


@pytest.mark.parametrize(
    "host", ["[::1]", "[::1]:8000", "example.com.", "EXAMPLE.com", "example.com:0", "a_b.example"]
)
def test_odd_but_valid_hosts_are_kept_as_sent(
    make_client: MakeClient, colour: str, host: str
) -> None:
    answer = make_client(head_app(colour)).get("/h?x=1", headers={"host": host})
    assert answer.json() == {"host": host, "url": f"http://{host}/h?x=1"}


@pytest.mark.parametrize(
    "host", ["[fe80::1%25eth0]", "[v1.x]", "::1", "[::1", "example.com:65536", "caf\u00e9.com"]
)
def test_hosts_that_are_not_host_port_are_400(
    make_client: MakeClient, colour: str, host: str
) -> None:
    headers = {"host": host.encode("utf-8")}
    answer = make_client(head_app(colour)).get("/h", headers=headers)  # type: ignore[arg-type]
    assert (answer.status_code, answer.text) == (400, "invalid Host header")


# -- multipart: a part with two Content-Disposition lines --------------------------------------


def parts_echo_app(colour: str) -> App:
    """An app whose ``/form`` answers each form value's kind, and ``/parts`` each part's name
    and file name (``iter_parts()``), in ``colour``."""
    app = App()

    def describe(form: Any) -> list[list[Any]]:
        return [[name, isinstance(value, str)] for name, value in form.multi_items()]

    if colour == "sync":

        @app.post("/form")
        def form(request: Request) -> list[list[Any]]:
            return describe(request.form())

        @app.post("/parts")
        def parts(request: Request) -> list[list[Any]]:
            return [[part.name, part.filename] for part in request.iter_parts()]

    else:

        @app.post("/form")
        async def aform(request: Request) -> list[list[Any]]:
            return describe(await request.aform())

        @app.post("/parts")
        async def aparts(request: Request) -> list[list[Any]]:
            return [[part.name, part.filename] async for part in request.aiter_parts()]

    return app


def one_part(*header_lines: bytes, data: bytes = b"x") -> bytes:
    return (
        b"--BB\r\n"
        + b"".join(line + b"\r\n" for line in header_lines)
        + b"\r\n"
        + data
        + (b"\r\n--BB--\r\n")
    )


MULTIPART_BB = {"content-type": "multipart/form-data; boundary=BB"}


@pytest.mark.parametrize(
    "lines",
    [
        (
            b"Content-Disposition: form-data; name=\"a\"; filename*=UTF-8''evil.txt",
            b'Content-Disposition: form-data; name="b"',
        ),
        (
            b'Content-Disposition: form-data; name="a"; filename="plain.txt"',
            b'Content-Disposition: form-data; name="b"',
        ),
        (
            b'Content-Disposition: form-data; name="a"',
            b"Content-Disposition: form-data; name=\"b\"; filename*=UTF-8''%E2%82%AC.txt",
        ),
    ],
)
def test_a_second_content_disposition_line_is_400(
    make_client: MakeClient, colour: str, lines: tuple[bytes, ...]
) -> None:
    # NOTE: multipart reads the name and filename of the last line, part.headers gives the
    # first, and so may a proxy in front (Go's mime/multipart does): the filename* of the
    # first made a file of the text field "b" (review163), then the part was the last line's
    # field "b" where its headers said file "a". Neither line wins.
    client = make_client(parts_echo_app(colour))
    body = one_part(*lines)
    for path in ("/form", "/parts"):
        answer = client.post(path, content=body, headers=MULTIPART_BB)
        assert (answer.status_code, answer.text) == (
            400,
            "invalid multipart body: a part's Content-Disposition header comes twice",
        )


# -- reprs of what the client named --------------------------------------------------------------


def test_the_reprs_of_an_upload_and_a_part_hold_a_clients_content_type_escaped(
    make_client: MakeClient,
) -> None:
    # NOTE: a part's Content-Type went into the repr as it came: ESC and BEL from the client
    # drove the terminal of whatever logged an UploadFile or a Part. A part's head with them
    # is a 400 now (test_forms_part_heads); U+009B, the one-character CSI of 8-bit terminals,
    # still comes in UTF-8, and is escaped.
    app = App()

    @app.post("/form")
    def form(request: Request) -> str:
        return repr(request.form()["f"])

    @app.post("/parts")
    def parts(request: Request) -> str:
        return "".join(repr(part) for part in request.iter_parts())

    body = (
        b'--b\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\xc2\x9b2J\r\n\r\nhello\r\n--b--\r\n"
    )
    client = make_client(app)
    headers = {"content-type": "multipart/form-data; boundary=b"}
    upload = client.post("/form", content=body, headers=headers).text
    part = client.post("/parts", content=body, headers=headers).text
    assert upload == "<UploadFile 'a.txt' 'text/plain\\x9b2j' 5 bytes>"
    assert part == "<Part 'f' file 'a.txt' 'text/plain\\x9b2j'>"
