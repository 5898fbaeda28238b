"""Which cookie the Sessions plugin trusts: the one spelling that ``save()`` writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Request
from microweb.plugins import Sessions

SECRET = "a-test-secret-of-32-characters!!"


def looking_app(plugin: Sessions, colour: str) -> App:
    app = App()
    app.install(plugin)

    def look(request: Request) -> dict[str, Any]:
        return dict(request.session)

    app.get("/")(in_colour(colour, look))
    return app


def respelled(value: str) -> list[str]:
    """Other spellings of ``value`` that a cookie parser decodes to it."""
    first = value[0]
    return [
        f'""{value}""',
        f'"{value}',
        f'{value}"',
        f"'{value}'",
        "".join(f"%{ord(char):02X}" for char in value),
        f"%{ord(first):02X}{value[1:]}",
        f"%{ord(first):02x}{value[1:]}",
        value.replace(".", "%2E"),
        f'"{value.replace(".", "%2e", 1)}"',
    ]


def test_a_session_cookie_verifies_in_the_one_spelling_it_was_written_in(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: the cookie's value was read decoded: quoted, or any character percent-encoded, it
    # was the same session, where the signature is refused in any spelling but sign()'s
    # (documented: "each session has one cookie value").
    plugin = Sessions(SECRET, secure=False, refresh_after=0)
    cookie = plugin.sign(json.dumps({"user": "ann"}))
    client = make_client(looking_app(plugin, colour))
    own = client.get("/", headers={"cookie": f"session={cookie}"})
    assert own.json() == {"user": "ann"}
    for other in respelled(cookie):
        answer = client.get("/", headers={"cookie": f"session={other}"})
        assert answer.json() == {}, other
        assert "Max-Age=0" in answer.headers["set-cookie"], other
        # NOTE: fails to verify, so it counts as no session: the user's own, next, is refreshed.
        answer = client.get("/", headers={"cookie": f"session={other}; session={cookie}"})
        assert answer.json() == {"user": "ann"}, other
        assert "Max-Age=0" not in answer.headers["set-cookie"], other


def test_a_session_cookie_a_middlebox_quoted_is_the_session(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: RFC 6265 4.1.1 lets a cookie's value be put in double quotes, and proxies and
    # clients that write Cookie lines with Python's http.cookies may do so: the quoted value,
    # refused, was deleted, a logout on every request through them.
    plugin = Sessions(SECRET, secure=False, refresh_after=0)
    cookie = plugin.sign(json.dumps({"user": "ann"}))
    client = make_client(looking_app(plugin, colour))
    answer = client.get("/", headers={"cookie": f'session="{cookie}"'})
    assert answer.json() == {"user": "ann"}
    # NOTE: sent again as the plugin writes it, unquoted, and signed anew.
    refreshed = answer.headers["set-cookie"].partition(";")[0].partition("=")[2]
    assert not refreshed.startswith('"') and plugin.load(refreshed) == {"user": "ann"}


def test_a_subclass_cookie_that_set_cookie_percent_encodes_is_read_as_written(
    make_client: MakeClient,
) -> None:
    # NOTE: a subclass's own format may hold characters that set_cookie() percent-encodes (a
    # space, a comma): the spelling it writes is read decoded, and no other spelling is.
    class Plain(Sessions):
        def load(self, cookie: str) -> dict[str, Any]:
            return {"user": cookie}

    client = make_client(looking_app(Plain(SECRET, secure=False), "sync"))
    written = client.get("/", headers={"cookie": "session=ann%20smith%2C%20jr"})
    assert written.json() == {"user": "ann smith, jr"}
    quoted = client.get("/", headers={"cookie": 'session="ann%20smith%2C%20jr"'})
    assert quoted.json() == {"user": "ann smith, jr"}
    for other in ['"ann%20smith%2c%20jr"', "ann%20smith%2c%20jr", "%61nn%20smith%2C%20jr"]:
        answer = client.get("/", headers={"cookie": f"session={other}"})
        assert answer.json() == {}, other


@pytest.mark.parametrize("name", ["theme", "sessionx"])
def test_other_cookies_are_read_decoded_as_before(make_client: MakeClient, name: str) -> None:
    app = App()
    app.install(Sessions(SECRET, secure=False))

    @app.get("/")
    def cookies(request: Request) -> dict[str, str]:
        return request.cookies

    answer = make_client(app).get("/", headers={"cookie": f'{name}="caf%C3%A9"'})
    assert answer.json() == {name: "café"}


def test_a_cookie_name_with_a_percent_sign_keeps_its_session(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: "%" is a token's character; a name is matched as sent, not decoded.
    plugin = Sessions(SECRET, secure=False, cookie_name="s%41")
    cookie = plugin.sign(json.dumps({"user": "ann"}))
    client = make_client(looking_app(plugin, colour))
    assert client.get("/", headers={"cookie": f"s%41={cookie}"}).json() == {"user": "ann"}
    assert client.get("/", headers={"cookie": f"sA={cookie}"}).json() == {}


def test_a_percent_encoded_value_longer_than_browsers_keep_is_not_decoded(
    make_client: MakeClient,
) -> None:
    # NOTE: checking its spelling costs Python work per escape, on the event loop under ASGI.
    loaded: list[str] = []

    class Plain(Sessions):
        def load(self, cookie: str) -> dict[str, Any]:
            loaded.append(cookie)
            return {"user": cookie[:3]}

    client = make_client(looking_app(Plain(SECRET, secure=False), "sync"))
    answer = client.get("/", headers={"cookie": "session=" + "%20" * 1400})
    assert answer.json() == {} and loaded == []
    assert client.get("/", headers={"cookie": "session=" + "%20" * 1300}).json() == {"user": "   "}


@pytest.mark.parametrize(
    ("option", "given"),
    [("secure", "false"), ("secure", "0"), ("secure", 0), ("httponly", "no"), ("httponly", None)],
)
def test_a_flag_that_is_no_bool_is_refused_by_name(option: str, given: object) -> None:
    # NOTE: Sessions(secret, secure=os.environ.get("SECURE_COOKIES")) with "false" in the
    # variable marked the cookie Secure: over plain http the browser dropped it, and every
    # login failed without a word.
    with pytest.raises(TypeError, match=rf"^{option} is True or False.*not {given!r}"):
        Sessions(SECRET, **{option: given})
