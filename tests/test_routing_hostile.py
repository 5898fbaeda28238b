"""Routing and redirects against hostile input: what a browser would make of a ``Location``
the app wrote, and how often a request runs a route's converters."""

from __future__ import annotations

import pytest
from conftest import MakeClient

from microweb import App, Request, Response

# -- Location: the host the app wrote is the host the browser goes to ------------------------


@pytest.mark.parametrize(
    ("url", "location"),
    [
        # NOTE: to a browser (WHATWG URL), a "\" ends the host of an http(s) URL as "/" does:
        # the app's URL leads to good.example. Written "%5C", it no longer ends the host, and
        # "good.example%5C" became the userinfo of a URL that led to evil.example.
        ("http://good.example\\@evil.example/", "http://good.example/@evil.example/"),
        ("//good.example\\@evil.example/", "//good.example/@evil.example/"),
        ("HTTPS://good.example\\evil.example", "HTTPS://good.example/evil.example"),
        (
            "https://b\u00fccher.example\\@evil.example",
            "https://xn--bcher-kva.example/@evil.example",
        ),
        # NOTE: no host before it: still escaped, or "/\evil.example" would be "//evil.example".
        ("/\\evil.example", "/%5Cevil.example"),
        ("http://good.example/a\\b", "http://good.example/a%5Cb"),
        # NOTE: a scheme that is not special to browsers: "\" is no delimiter there.
        ("myapp://good\\@evil", "myapp://good%5C@evil"),
    ],
)
def test_a_redirect_keeps_the_host_a_browser_reads_before_a_backslash(
    make_client: MakeClient, url: str, location: str
) -> None:
    app = App()

    @app.get("/go")
    def go(request: Request) -> Response:
        return Response.redirect(url)

    response = make_client(app).get("/go")
    assert response.status_code == 307
    assert response.headers["location"] == location
