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
