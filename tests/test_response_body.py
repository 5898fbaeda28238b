"""A body assigned after the response is made (``response.body = ...``) is checked and
converted as the constructor's is, so that its Content-Length is its size (review168)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Headers, Request, Response
from microweb.plugins import GZip


def assigning_app(colour: str, body: Any) -> App:
    app = App()

    def assigned(request: Request) -> Response:
        response = Response("placeholder")
        response.body = body
        return response

    app.get("/")(in_colour(colour, assigned))
    return app


@pytest.mark.parametrize(
    ("body", "sent"),
    [
        # NOTE: a str went out as its characters, one chunk each, under a Content-Length that
        # counted characters: Waitress cut "héllo" to "héll" and kept the connection.
        ("héllo", "héllo".encode()),
        (bytearray(b"abc"), b"abc"),
        (memoryview(b"abcd"), b"abcd"),
        (b"", b""),
    ],
)
def test_an_assigned_body_is_sent_under_its_own_length(
    make_client: MakeClient, colour: str, body: Any, sent: bytes
) -> None:
    answer = make_client(assigning_app(colour, body)).get("/")
    assert answer.status_code == 200
    assert answer.content == sent
    assert answer.headers["content-length"] == str(len(sent))


@pytest.mark.parametrize("body", [[b"ab", b"cd"], None, 5])
def test_an_assigned_body_of_another_type_is_the_apps_error(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture, body: Any
) -> None:
    # NOTE: a list went out under a Content-Length of its item count (2), then its items.
    with caplog.at_level("ERROR", logger="microweb"):
        answer = make_client(assigning_app(colour, body)).get("/")
    assert answer.status_code == 500
    assert caplog.records[0].exc_info is not None
    assert isinstance(caplog.records[0].exc_info[1], TypeError)


def test_the_body_setter_converts_and_refuses() -> None:
    response = Response()
    response.body = "é"
    assert response.body == b"\xc3\xa9"
    with pytest.raises(TypeError, match=r"Response\.stream"):
        response.body = iter([b"a"])  # type: ignore[assignment]
    assert response.body == b"\xc3\xa9"


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("chunks", [5, b"abc", "abc", object()])
def test_assigned_chunks_that_are_no_stream_are_the_apps_logged_500(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture, chunks: Any, gzip: bool
) -> None:
    # NOTE: response.chunks = 5 failed while the body was iterated, after the headers: the
    # server's own 500 under WSGI with nothing in the app's log, under ASGI a cut response.
    # GZip leaves them alone: compressed lazily, 5 passed the drivers' check as its own stream
    # and failed once the 200 had gone, and "abc" went out as the gzip of its characters.
    app = App()
    if gzip:
        app.install(GZip())

    def assigned(request: Request) -> Response:
        response = Response("placeholder")
        response.chunks = chunks
        return response

    app.get("/")(in_colour(colour, assigned))
    with caplog.at_level("ERROR", logger="microweb"):
        answer = make_client(app).get("/", headers={"accept-encoding": "gzip"})
    assert (answer.status_code, answer.content) == (500, b"Internal Server Error")
    assert "content-encoding" not in answer.headers
    [record] = caplog.records
    assert record.getMessage() == "unhandled error in GET /: its response can't be sent"
    assert record.exc_info is not None
    assert "a Response's chunks are an iterable" in str(record.exc_info[1])


def test_the_500_of_a_response_that_cannot_be_sent_keeps_its_labels(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: a flow's headers (CORS's, a request ID) were dropped with the response that could
    # not be sent: a page saw a CORS error for the 500. Those of its body are not the 500's;
    # nor is a cookie, which a handler's error's 500 lacks too (a session saved, a sign-in
    # made by a request that failed).
    app = App()

    def assigned(request: Request) -> Response:
        response = Response("placeholder", headers={"ETag": '"v1"', "Location": "/elsewhere"})
        response.headers["Content-Language"] = "fr"
        response.headers["X-Request-ID"] = "abc"
        response.headers["Vary"] = "Origin"
        response.set_cookie("seen", "1")
        no_stream: Any = 5
        response.chunks = no_stream
        return response

    app.get("/")(in_colour(colour, assigned))
    answer = make_client(app).get("/")
    assert (answer.status_code, answer.content) == (500, b"Internal Server Error")
    assert answer.headers["x-request-id"] == "abc"
    assert answer.headers.get_list("vary") == ["Accept", "Origin"]
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert not {"etag", "location", "content-language", "set-cookie"} & set(answer.headers)


def test_the_500_of_a_response_that_cannot_be_sent_drops_what_is_wrong_on_a_500(
    make_client: MakeClient, colour: str, interface: str
) -> None:
    # NOTE: the response's caching was kept: a CDN kept the 500 for an hour. Nor do a retry
    # time, a challenge, the methods or a refresh of that response say anything of a 500
    # (a handler's error's 500 has none of them); a flow's security policy is kept.
    app = App()

    def assigned(request: Request) -> Response:
        response = Response("placeholder")
        for name, value in [
            ("Cache-Control", "public, max-age=3600"),
            ("Expires", "Thu, 01 Dec 2099 16:00:00 GMT"),
            ("Age", "5"),
            ("Retry-After", "120"),
            ("WWW-Authenticate", 'Basic realm="x"'),
            ("Allow", "GET"),
            ("Refresh", "0; url=/elsewhere"),
            ("Link", "</app.css>; rel=preload; as=style"),
            ("Content-Security-Policy", "default-src 'none'"),
            # NOTE: caching for a CDN alone (RFC 9213), or for nginx: the 500 kept an hour.
            ("CDN-Cache-Control", "public, max-age=3600"),
            ("Cloudflare-CDN-Cache-Control", "max-age=3600"),
            ("Surrogate-Control", "max-age=3600"),
            ("X-Accel-Expires", "3600"),
            ("Pragma", "no-cache"),
            # NOTE: a body sent by the proxy in the 500's place (a file, another location).
            ("X-Accel-Redirect", "/protected/report.pdf"),
            ("X-Sendfile", "/srv/report.pdf"),
            # NOTE: a state change for a request that failed: a sign-out's cleared storage.
            ("Clear-Site-Data", '"cache", "cookies"'),
            ("Set-Cookie", "signed_in=1"),
            # NOTE: digests of the body not sent.
            ("Repr-Digest", "sha-256=:AAAA:"),
            ("Digest", "sha-256=AAAA"),
            # NOTE: the replaced answer's own: a 415's patch formats, an
            # authentication's next nonce (a state change), nginx's streaming of its body.
            ("Accept-Patch", "application/merge-patch+json"),
            ("Authentication-Info", 'nextnonce="47364c23432d2e131a5fb210812c"'),
            ("X-Accel-Buffering", "no"),
        ]:
            response.headers[name] = value
        if interface == "asgi":
            # NOTE: a WSGI server refuses Upgrade from the app (PEP 3333, hop-by-hop).
            response.headers["Upgrade"] = "TLS/1.2"
        no_stream: Any = 5
        response.chunks = no_stream
        return response

    app.get("/")(in_colour(colour, assigned))
    answer = make_client(app).get("/")
    assert answer.status_code == 500
    assert answer.headers["content-security-policy"] == "default-src 'none'"
    dropped = {"cache-control", "expires", "age", "retry-after", "www-authenticate", "allow"}
    dropped |= {"refresh", "link", "cdn-cache-control", "cloudflare-cdn-cache-control"}
    dropped |= {"surrogate-control", "x-accel-expires", "pragma", "x-accel-redirect"}
    dropped |= {"x-sendfile", "clear-site-data", "set-cookie", "repr-digest", "digest"}
    dropped |= {"upgrade", "accept-patch", "authentication-info", "x-accel-buffering"}
    assert not dropped & set(answer.headers)


@pytest.mark.parametrize(
    "given",
    [
        lambda: {"X-One": "1"},
        lambda: [("X-One", "1")],
        lambda: (pair for pair in [("X-One", "1")]),
        lambda: Headers([("X-One", "1")]),
    ],
    ids=["dict", "pairs", "iterator", "Headers"],
)
def test_assigned_headers_replace_them_all(
    make_client: MakeClient, colour: str, given: Any
) -> None:
    # NOTE: a dict assigned went out as it was: the drivers read a Headers' list, and the
    # request ended as the server's own 500, with nothing in the app's log.
    app = App()

    def assigned(request: Request) -> Response:
        response = Response("x", headers={"X-Gone": "1"})
        response.headers = given()
        response.headers.add("x-two", "2")
        return response

    app.get("/")(in_colour(colour, assigned))
    answer = make_client(app).get("/")
    assert answer.status_code == 200
    assert answer.headers["x-one"] == "1"
    assert answer.headers["x-two"] == "2"
    assert "x-gone" not in answer.headers


def test_the_headers_setter_refuses_what_holds_no_pairs() -> None:
    response = Response()
    for wrong in (5, "x-one: 1", b"x"):
        with pytest.raises(TypeError, match="a Response's headers are a Headers"):
            response.headers = wrong  # type: ignore[assignment]
    with pytest.raises(ValueError):
        response.headers = {"x-one": "a\r\nb"}
    with pytest.raises(TypeError):
        response.headers = {"x-one": 1}  # type: ignore[dict-item]
    # NOTE: copied, as the constructor copies them: kept, a module's Headers assigned in two
    # handlers took the Set-Cookie one added, and sent it to the other's clients.
    kept = Headers({"x-one": "1"})
    response.headers = kept
    response.set_cookie("sid", "alice")
    assert response.headers is not kept
    assert list(kept.items()) == [("x-one", "1")]


def test_assigned_request_headers_are_checked_as_any_others(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a Headers subclass was kept as given, unchecked: request.headers, assigned to echo
    # them, sent the client's Connection and Host under ASGI, and under WSGI were the
    # server's own 500, with nothing in the app's log.
    app = App()

    def echoed(request: Request) -> Response:
        response = Response("x")
        response.headers = request.headers
        return response

    app.get("/")(in_colour(colour, echoed))
    with caplog.at_level("ERROR", logger="microweb"):
        answer = make_client(app).get("/", headers={"connection": "keep-alive"})
    assert answer.status_code == 500
    [record] = caplog.records
    assert record.exc_info is not None
    assert "'connection' is hop-by-hop" in str(record.exc_info[1])


@pytest.mark.parametrize("name", ["body", "headers", "length", "status", "status_code"])
def test_a_mixin_before_response_that_hides_a_checked_name_is_refused(name: str) -> None:
    # NOTE: only the subclass's own names were looked at: a mixin listed before Response hid
    # Response.body (a property that renders late, never sent) and was let through.
    mixin = type("Lazy", (), {name: property(lambda self: b"late")})
    with pytest.raises(TypeError, match=rf"Page \(through Lazy\) (defines|sets) '{name}'"):
        type("Page", (mixin, Response), {})
    assert type("Page", (Response, mixin), {})("x").body == b"x"  # NOTE: Response's first.


@pytest.mark.parametrize("name", ["body", "headers", "length"])
def test_a_subclass_that_hides_body_or_length_is_refused(name: str) -> None:
    # NOTE: the drivers read the value the property keeps: a subclass's own body property (one
    # that renders late) would never be sent.
    with pytest.raises(TypeError, match=f"defines '{name}', which hides Response.{name}"):
        type("Lazy", (Response,), {name: property(lambda self: b"late")})
