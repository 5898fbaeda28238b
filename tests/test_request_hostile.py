"""What a handler reads from a hostile request, and what it builds from it, under both
interfaces and both colours (review163)."""

from __future__ import annotations

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Request, Response

# -- Set-Cookie built from the request ---------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost:8000", "a.example:443", "[::1]:8000", "a.example:"])
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
