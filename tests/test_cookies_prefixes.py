"""Cookie names as browsers keep them: a name with a Unicode space before it is another cookie.

A browser trims only spaces and tabs around a cookie's name (RFC 6265bis 5.6), and checks the
``__Host-`` and ``__Secure-`` prefixes on the name as it was set. A page of a sibling subdomain
may set ``"\\u2000__Host-id"`` on the parent domain: it is no prefixed cookie to the browser, and
must be none to the app either.
"""

from __future__ import annotations

import json

import pytest
from conftest import MakeClient
from test_request import cookie_app

from microweb import App, Request
from microweb.plugins import Sessions

SECRET = "a-test-secret-of-32-characters!!"
# NOTE: what Python's str.strip() takes away and RFC 6265bis's whitespace (SP, HTAB) is not:
# NEL, NO-BREAK SPACE, EN QUAD and IDEOGRAPHIC SPACE, sent as UTF-8 (servers refuse the
# control bytes below SP that it takes too).
UNICODE_SPACES = ["\x85", "\xa0", "\u2000", "\u3000"]


@pytest.mark.parametrize("space", UNICODE_SPACES)
def test_a_name_after_a_unicode_space_is_not_the_prefixed_name(
    make_client: MakeClient, space: str
) -> None:
    header = f"{space}__Host-id=planted; __Host-id=own; b= \t2\t "
    answer = make_client(cookie_app()).get("/c", headers={"cookie": header.encode()})
    found = answer.json()
    assert (found["__Host-id"], found["b"]) == ("own", "2")


@pytest.mark.parametrize("space", ["\xa0", "\u2000"])
def test_a_value_keeps_unicode_spaces_around_it(make_client: MakeClient, space: str) -> None:
    header = f"a={space}x{space}; b= \ty\t "
    answer = make_client(cookie_app()).get("/c", headers={"cookie": header.encode()})
    assert answer.json() == {"a": f"{space}x{space}", "b": "y"}


def sessions_app() -> tuple[App, Sessions]:
    sessions = Sessions(SECRET, cookie_name="__Host-session", secure=True)
    app = App()
    app.install(sessions)

    @app.get("/me")
    def me(request: Request) -> dict[str, object]:
        return dict(request.session)

    return app, sessions


@pytest.mark.parametrize("space", ["\xa0", "\u2000", "\u3000"])
def test_a_planted_session_under_a_spaced_prefix_name_is_not_loaded(
    make_client: MakeClient, space: str
) -> None:
    # NOTE: the attacker's own session, signed by the app, planted from a sibling subdomain
    # under a name the browser does not hold to the __Host- rules; the user's comes after it.
    app, sessions = sessions_app()
    planted = sessions.sign(json.dumps({"user": "mallory"}))
    own = sessions.sign(json.dumps({"user": "ada"}))
    header = f"{space}__Host-session={planted}; __Host-session={own}"
    client = make_client(app)
    answer = client.get("https://testserver/me", headers={"cookie": header.encode()})
    assert answer.json() == {"user": "ada"}
    alone = client.get("https://testserver/me", headers={"cookie": header.split("; ")[0].encode()})
    assert (alone.json(), "set-cookie" in alone.headers) == ({}, False)
