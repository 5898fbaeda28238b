"""TestClient as a browser: secure origins, cookie lifetimes, redirects and "both"'s bytes."""

from __future__ import annotations

import email.utils
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cookie_lines_app import line_app

from microweb import App, Request, Response, WebSocket
from microweb.testing import TestClient, WebSocketRefused

INTERFACES = ["wsgi", "asgi", "both"]


@pytest.mark.parametrize(
    "base_url",
    [
        "http://localhost",
        "http://localhost:8000",
        "http://app.localhost",
        "http://127.0.0.1:5000",
        "http://127.9.9.9",
        "http://[::1]:8000",
    ],
)
@pytest.mark.parametrize("interface", INTERFACES)
def test_a_loopback_host_over_http_is_a_secure_origin(interface: str, base_url: str) -> None:
    # NOTE: a Secure cookie (and a __Host- one) from http://localhost was ignored, where Chrome
    # and Firefox keep it and send it back there: an app's secure session, tested on
    # localhost, signed the test out. SPEC: RFC 6265bis, a "secure connection" as the user
    # agent defines it: W3C Secure Contexts' potentially trustworthy origins.
    lines = ["s=1; Secure", "__Host-id=2; Secure; Path=/", "__Secure-k=3; Secure"]
    with TestClient(line_app(), interface=interface, base_url=base_url) as client:
        client.get("/set", params={"line": lines})
        assert dict(client.cookies) == {"s": "1", "__Host-id": "2", "__Secure-k": "3"}
        assert client.get("/line").text == "s=1; __Host-id=2; __Secure-k=3"
        # NOTE: and an answer there without Secure replaces it, as an https one would.
        client.get("/set", params={"line": "s=9"})
        assert client.get("/line").text == "s=9; __Host-id=2; __Secure-k=3"


@pytest.mark.parametrize(
    "base_url",
    ["http://testserver", "http://localhost.example", "http://10.0.0.1", "http://[::ffff:7f00:1]"],
)
@pytest.mark.parametrize("interface", INTERFACES)
def test_another_host_over_http_is_no_secure_origin(interface: str, base_url: str) -> None:
    with TestClient(line_app(), interface=interface, base_url=base_url) as client:
        client.get("/set", params={"line": ["s=1; Secure", "p=1"]})
        assert dict(client.cookies) == {"p": "1"}


@pytest.mark.parametrize("interface", ["asgi", "both"])
def test_a_loopback_hosts_secure_cookie_goes_on_redirects_and_handshakes(interface: str) -> None:
    app = line_app()

    @app.websocket("/ws")
    async def socket(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(ws.request.headers.get("cookie", "none"))
        await ws.close()

    with TestClient(app, interface=interface, base_url="http://localhost:8000") as client:
        client.get("/set", params={"line": ["s=1; Secure; HttpOnly", "p=2"]})
        assert client.get("/move", follow_redirects=True).text == "s=1; p=2"
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "s=1; p=2"
        with client.websocket_connect("ws://localhost:8000/ws") as ws:
            assert ws.receive_text() == "s=1; p=2"


_DAYS_400 = 400 * 24 * 3600


def _expiry(client: TestClient, name: str) -> int | None:
    (cookie,) = [cookie for cookie in client.cookies.jar if cookie.name == name]
    return cookie.expires


@pytest.mark.parametrize("interface", INTERFACES)
def test_an_expires_past_400_days_counts_as_400_days(interface: str) -> None:
    # NOTE: a Max-Age was cut to 400 days, an Expires in 9999 was kept to then. SPEC: RFC
    # 6265bis (draft), 5.6.1: an Expires past 400 days from now is 400 days from now.
    soon = email.utils.formatdate(time.time() + 30 * 24 * 3600, usegmt=True)
    lines = [
        "far=1; Expires=Fri, 31 Dec 9999 23:59:59 GMT",
        f"soon=1; Expires={soon}",
        "aged=1; Max-Age=60; Expires=Fri, 31 Dec 9999 23:59:59 GMT",
        "bad=1; Expires=whenever",
    ]
    with TestClient(line_app(), interface=interface) as client:
        before = time.time()
        client.get("/set", params={"line": lines})
        after = time.time()
        far = _expiry(client, "far")
        assert far is not None and before + _DAYS_400 - 1 <= far <= after + _DAYS_400 + 1
        assert _expiry(client, "soon") == email.utils.parsedate_to_datetime(soon).timestamp()
        aged = _expiry(client, "aged")
        assert aged is not None and aged <= after + 61
        assert _expiry(client, "bad") is None
        assert client.get("/line").text == "far=1; soon=1; aged=1; bad=1"


def _echo_body_app() -> App:
    app = App()

    @app.post("/raw")
    def raw(request: Request) -> Response:
        return Response(request.read(), media_type=request.headers.get("content-type", "none"))

    return app


@pytest.mark.parametrize(
    "sent",
    [
        {"files": {"upload": ("a.txt", b"hello")}},
        {"files": [("f", ("a.txt", io.BytesIO(b"one"))), ("f", ("b.txt", b"two"))]},
        {"files": {"upload": ("a.txt", b"hello")}, "data": {"field": "value"}},
        {"files": {"upload": b"x"}, "headers": {"content-type": "multipart/form-data"}},
    ],
)
def test_both_sends_each_side_the_same_multipart_body(sent: dict[str, Any]) -> None:
    # NOTE: httpx drew a boundary for each side's request: an app that echoes or hashes the
    # raw body (a signature check) differed between the sides, an AssertionError of "both".
    with TestClient(_echo_body_app(), interface="both") as client:
        answer = client.post("/raw", **sent)
    # NOTE: the Content-Type httpx gives it (or the test's, as given) and its body.
    boundary = answer.content.partition(b"\r\n")[0].removeprefix(b"--").decode()
    expected = sent.get("headers", {}).get("content-type", "multipart/form-data")
    assert answer.headers["content-type"] in (expected, f"{expected}; boundary={boundary}")
    assert len(boundary) == 32


def test_both_keeps_a_boundary_the_test_chose() -> None:
    sent = {"content-type": "multipart/form-data; boundary=mine"}
    with TestClient(_echo_body_app(), interface="both") as client:
        answer = client.post("/raw", files={"f": b"x"}, headers=sent)
    assert answer.content.startswith(b"--mine\r\n")


def _moving_app() -> App:
    app = line_app()

    @app.get("/go")
    def go(request: Request) -> Response:
        response = Response.redirect(request.query.get("to", "/line"), status=303)
        response.set_cookie("moved", "1")
        return response

    return app


@pytest.mark.parametrize("interface", INTERFACES)
def test_a_cookie_header_given_goes_on_the_redirects_of_its_origin(interface: str) -> None:
    # NOTE: httpx drops the Cookie header on every redirect and sends the jar's: the page a
    # request with headers={"Cookie": ...} (or the client's headers) was sent on to got the
    # jar's cookies instead, where the test had said which ones the requests carry.
    with TestClient(_moving_app(), interface=interface, cookies={"jar": "0"}) as client:
        given = {"cookie": "s=1"}
        assert client.get("/go", headers=given, follow_redirects=True).text == "s=1"
        # NOTE: two lines, as the first request sent them (not one line joined by a comma).
        lines = [("cookie", "s=1"), ("cookie", "u=2")]
        assert client.get("/go", headers=lines, follow_redirects=True).text == "s=1; u=2"
        client.headers["cookie"] = "t=2"
        assert client.get("/go", follow_redirects=True).text == "t=2"
        # NOTE: not on one that leaves the origin, as Authorization is not: the jar's go there.
        assert client.get("/go?to=http://other.example/line", follow_redirects=True).text == (
            "none"
        )
        assert client.get("/go?to=https://testserver/line", follow_redirects=True).text == (
            "jar=0; moved=1"
        )
        del client.headers["cookie"]
        assert client.get("/go", follow_redirects=True).text == "jar=0; moved=1"


@pytest.mark.parametrize("interface", INTERFACES)
def test_a_requests_own_cookies_go_on_the_redirects_of_its_origin(interface: str) -> None:
    with TestClient(_moving_app(), interface=interface, cookies={"jar": "0", "s": "0"}) as client:
        with pytest.warns(DeprecationWarning):
            landed = client.get("/go", cookies={"s": "1"}, follow_redirects=True)
        assert landed.text == "jar=0; s=1; moved=1"
        with pytest.warns(DeprecationWarning):
            away = "/go?to=https://testserver/line"
            landed = client.get(away, cookies={"s": "1"}, follow_redirects=True)
        assert landed.text == "jar=0; s=0; moved=1"


@pytest.mark.parametrize(
    ("host", "written"),
    [
        *(("127.0.0.1", written) for written in ("2130706433", "0x7f.1", "127.1", "0177.0.0.1")),
        *(("[::1]", written) for written in ("[0:0::1]", "[0000::0:1]", "[::0.0.0.1]")),
        ("[::ffff:7f00:1]", "[::FFFF:127.0.0.1]"),
        ("[1::2:0:0:3:0]", "[1:0:0:2:0:0:3:0]"),
    ],
)
@pytest.mark.parametrize("interface", INTERFACES)
def test_a_redirect_to_an_ip_address_in_another_form_stays_in_its_origin(
    interface: str, host: str, written: str
) -> None:
    # NOTE: httpx took "http://127.1/line" for a host of that name, and "[0:0::1]" for another
    # address than [::1]: a redirect there left the origin (Authorization and the Cookie
    # header given dropped) and found none of its cookies. SPEC: WHATWG URL, IPv4 parser and
    # IPv6 serializer: the one address, written one way (the longest run of zeros, the first
    # of two as long, is "::"; hexadecimal in lower case).
    base_url = f"http://{host}"
    with TestClient(_moving_app(), interface=interface, base_url=base_url) as client:
        client.get("/set", params={"line": "a=1"})
        to = f"/go?to=http://{written}/line"
        landed = client.get(to, follow_redirects=True)
        assert (landed.url, landed.text) == (f"http://{host}/line", "a=1; moved=1")
        given = {"cookie": "s=1"}
        assert client.get(to, headers=given, follow_redirects=True).text == "s=1"


@pytest.mark.parametrize(
    ("base_url", "host"),
    [
        ("http://127.1", "127.0.0.1"),
        ("http://0x7f.0.0.1:8000", "127.0.0.1:8000"),
        ("http://[0:0::1]", "[::1]"),
        ("http://127.0.0.1.", "127.0.0.1"),
        # NOTE: a browser maps fullwidth digits, letters and dots to ASCII (UTS 46) before it
        # reads an IPv4 address in a host, where base_url's were refused as no URL.
        ("http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11", "127.0.0.1"),
        ("http://\uff34\uff25\uff33\uff34server:8000", "testserver:8000"),
    ],
)
@pytest.mark.parametrize("interface", INTERFACES)
def test_a_base_url_with_an_ip_address_goes_where_a_browser_goes(
    interface: str, base_url: str, host: str
) -> None:
    # NOTE: the request went out with "Host: 127.1", and a redirect to the same address in
    # its usual form left the origin (a given Cookie header dropped), as a followed
    # redirect's Location is read as a browser reads it.
    app = _moving_app()
    app.get("/host")(lambda request: request.host)
    with TestClient(app, interface=interface, base_url=base_url, cookies={"t": "0"}) as client:
        assert client.base_url == base_url
        assert client.get("/host").text == host
        assert client.get("/line").text == "t=0"
        to = f"/go?to=http://{host}/line"
        assert client.get(to, headers={"cookie": "s=1"}, follow_redirects=True).text == "s=1"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.1/host", "127.0.0.1"),
        ("HTTP://[0:0::1]:80/host", "[::1]"),
        ("http://\uff11\uff12\uff17\uff0e\uff11/host", "127.0.0.1"),
        ("http://\uff54\uff45\uff53\uff54server/host", "testserver"),
    ],
)
@pytest.mark.parametrize("interface", INTERFACES)
def test_a_url_with_an_ip_address_goes_where_a_browser_goes(
    interface: str, url: str, host: str
) -> None:
    # NOTE: as base_url's: "Host: 127.1" went out, and the app's cookies went to that name.
    app = line_app()
    app.get("/host")(lambda request: request.host)
    with TestClient(app, interface=interface) as client:
        assert client.get(url).text == host
        client.get(url.replace("/host", "/set"), params={"line": "a=1"})
        assert client.get(f"http://{host}/line").text == "a=1"
    with TestClient(app) as client, pytest.raises(httpx.InvalidURL):
        client.get("http://1.2.3.4.5/host")


@pytest.mark.parametrize(
    "base_url",
    [
        "http://1.2.3.4.5",
        "http://0x100000000",
        "http://[fe80::1%25e]",
        # NOTE: UTS 46 maps them to "1.2.3.4.5" and to "a:80", which holds a colon.
        "http://1.2.3.\uff14.\uff15",
        "http://\uff41\uff1a\uff18\uff10",
    ],
)
def test_a_base_url_whose_host_is_no_ip_address_a_browser_reads_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url must be"):
        TestClient(App(), base_url=base_url)


@pytest.mark.parametrize("interface", INTERFACES)
def test_cookies_are_the_hosts_whatever_credentials_a_url_holds(interface: str) -> None:
    # NOTE: the standard library's jar reads "user:pw@testserver" as the host: with a base_url
    # holding credentials (which docs/testing.md shows for Basic auth) each cookie was kept
    # for that name alone, and a URL without them (or with others) never got it, where a
    # browser keeps a host's cookies whatever the URL's credentials.
    base_url = "http://user:pw@testserver"
    with TestClient(line_app(), interface=interface, base_url=base_url) as client:
        client.cookies.set("given", "0")
        client.get("/set", params={"line": "a=1"})
        client.get("http://testserver/set", params={"line": "b=2"})
        assert client.get("/line").text == "given=0; a=1; b=2"
        assert client.get("http://testserver/line").text == "given=0; a=1; b=2"
        assert client.get("http://other:pw@testserver/line").text == "given=0; a=1; b=2"
        assert {cookie.domain for cookie in client.cookies.jar} == {"", "testserver.local"}
    with TestClient(line_app(), interface=interface, base_url="http://u@localhost") as client:
        client.get("/set", params={"line": "s=1; Secure"})
        assert client.get("http://localhost/line").text == "s=1"


def test_both_refuses_content_given_beside_files() -> None:
    # NOTE: httpx sends content= and leaves files= out, which "both" once replaced by the
    # files' multipart body; now neither side sends it (see test_two_bodies_are_refused_by_name).
    with (
        TestClient(_echo_body_app(), interface="both") as client,
        pytest.raises(TypeError, match="not content= and files="),
    ):
        client.post("/raw", content=b"raw", files={"f": b"x"})


@pytest.mark.parametrize("interface", ["asgi", "both"])
def test_the_cookies_of_a_refused_handshake_are_kept(interface: str) -> None:
    # NOTE: the refusal's Set-Cookie (a flow that signs out a session it no longer trusts) was
    # dropped, where a browser keeps the cookies of any answer to the handshake (Fetch,
    # HTTP-network fetch), as of an accepted one.
    app = line_app()

    @app.middleware
    def refuse(request: Request) -> Iterator[Response | None]:
        if request.path == "/ws":
            refusal = Response.text("no", status=403)
            refusal.delete_cookie("session")
            refusal.set_cookie("refused", "1")
            yield refusal
            return
        yield None

    @app.websocket("/ws")
    async def socket(ws: WebSocket) -> None:
        await ws.accept()

    with TestClient(app, interface=interface, cookies={"session": "s"}) as client:
        with pytest.raises(WebSocketRefused) as refused:
            client.websocket_connect("/ws")
        assert refused.value.response.status_code == 403
        assert dict(client.cookies) == {"refused": "1"}
        assert client.get("/line").text == "refused=1"


@pytest.mark.parametrize("interface", INTERFACES)
def test_a_host_only_cookie_is_not_sent_to_a_subdomain(interface: str) -> None:
    # NOTE: httpx's jar (Netscape's rules) sent a cookie set without Domain, and one the test
    # set, to every name under the host: a tenant's subdomain got the parent site's session.
    # SPEC: RFC 6265 5.4 step 1: a host-only cookie goes to its host alone.
    app = line_app()

    @app.get("/go")
    def go(request: Request) -> Response:
        return Response.redirect("http://sub.shop.example/line", status=303)

    app.websocket("/ws")(_cookie_socket)
    base_url = "http://shop.example"
    with TestClient(app, interface=interface, base_url=base_url, cookies={"given": "0"}) as client:
        client.get("/set", params={"line": ["host=1", "wide=2; Domain=shop.example"]})
        assert client.get("/line").text == "given=0; host=1; wide=2"
        assert client.get("http://sub.shop.example/line").text == "wide=2"
        assert client.get("/go", follow_redirects=True).text == "wide=2"
        client.get("http://sub.shop.example/set", params={"line": "host=3"})
        assert client.get("http://sub.shop.example/line").text == "wide=2; host=3"
        assert client.get("/line").text == "given=0; host=1; wide=2"
    if interface != "wsgi":
        with TestClient(app, interface=interface, base_url=base_url) as client:
            client.get("/set", params={"line": "host=1"})
            with client.websocket_connect("ws://sub.shop.example/ws") as ws:
                assert ws.receive_text() == "none"


async def _cookie_socket(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text(ws.request.headers.get("cookie", "none"))
    await ws.close()


class _Pipe:
    """A file that can be read once, and not rewound (a pipe, a socket's makefile())."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)

    def __iter__(self) -> Iterator[bytes]:
        yield self._data.read()


def test_both_sends_a_file_that_can_be_read_once_to_each_side() -> None:
    # NOTE: the WSGI side read it, and the ASGI side's upload was empty: an AssertionError.
    app = App()

    @app.post("/up")
    def up(request: Request) -> dict[str, Any]:
        upload = request.form()["f"]
        assert not isinstance(upload, str)
        return {"size": upload.size}

    with TestClient(app, interface="both") as client:
        answer = client.post("/up", files={"f": ("a.bin", _Pipe(b"x" * 1000))})
    assert answer.json() == {"size": 1000}
