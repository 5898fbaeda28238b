"""What the Sessions plugin stores: values JSON cannot write are refused at save, by where they
are, and a cookie whose session cannot be stored again is no session."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Request
from microweb.plugins import Sessions
from microweb.plugins._session_json import MAX_SESSION_DEPTH, encode_session, nests_too_deep
from microweb.testing import TestClient

SECRET = "a-test-secret-of-32-characters!!"
# NOTE: more digits than json (int.__repr__) writes under the interpreter's default limit.
HUGE = 10 ** (sys.get_int_max_str_digits() + 1)


def storing_app(stored: dict[str, Any], colour: str) -> App:
    app = App()
    app.install(Sessions(SECRET, secure=False))

    def index(request: Request) -> str:
        request.session.update(stored)
        return "stored?"

    app.get("/")(in_colour(colour, index))
    return app


@pytest.mark.parametrize(
    ("stored", "named"),
    [
        ({"score": float("nan")}, r"request\.session\['score'\] is nan"),
        ({"scores": [1.5, float("inf")]}, r"request\.session\['scores'\]\[1\] is inf"),
        (
            {"a": {"b": [{"c": float("-inf")}]}},
            r"request\.session\['a'\]\['b'\]\[0\]\['c'\] is -inf",
        ),
    ],
    ids=["nan", "inf-in-a-list", "minus-inf-nested"],
)
def test_a_float_json_has_no_number_for_is_refused_by_where_it_is(
    interface: str, colour: str, stored: dict[str, Any], named: str
) -> None:
    # NOTE: json wrote NaN and Infinity, which are no JSON: the cookie went out, and a JSON
    # reader of the session other than Python's would refuse it.
    app = storing_app(stored, colour)
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(ValueError, match=named + r", which JSON has no number for"),
    ):
        client.get("/")


def test_an_int_json_cannot_write_is_refused_by_where_it_is(interface: str, colour: str) -> None:
    # NOTE: json's "Exceeds the limit (4300 digits) for integer string conversion" named neither
    # the session nor the key.
    app = storing_app({"user": {"id": HUGE}}, colour)
    named = r"request\.session\['user'\]\['id'\] is an int of more than \d+ digits"
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(ValueError, match=named),
    ):
        client.get("/")


def test_an_unstorable_value_is_a_500_that_names_it(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    app = storing_app({"ratio": float("nan")}, "sync")
    with caplog.at_level("ERROR", logger="microweb"):
        assert make_client(app).get("/").status_code == 500
    assert "request.session['ratio'] is nan" in caplog.text


def test_a_value_of_no_json_type_is_named_by_where_it_is(interface: str) -> None:
    app = storing_app({"cart": [{"added": object()}]}, "sync")
    named = (
        r"JSON values only .*: request\.session\['cart'\]\[0\]\['added'\] is a value of type object"
    )
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(TypeError, match=named),
    ):
        client.get("/")


@pytest.mark.parametrize(
    ("session", "named"),
    [
        ({"cart": [{1: "pen"}]}, r"not 1, in request\.session\['cart'\]\[0\]"),
        ({"a": ({"b": {True: 1}},)}, r"not True, in request\.session\['a'\]\[0\]\['b'\]"),
        ({"a": [[], {"b": [{None: 1}]}]}, r"not None, in request\.session\['a'\]\[1\]\['b'\]\[0\]"),
        ({2.5: "x"}, r"not 2\.5, in request\.session$"),
    ],
)
def test_a_key_that_is_no_str_is_named_by_where_it_is(
    interface: str, session: dict[Any, Any], named: str
) -> None:
    # NOTE: json writes these keys as strings without a word; a save looks at the keys first
    # and walks the session to name the place only when one is not str.
    app = storing_app(session, "sync")
    named = r"session keys must be str \(JSON's\), " + named
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(TypeError, match=named),
    ):
        client.get("/")


def _nested(depth: int) -> str:
    return '{"t":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.mark.parametrize(
    "payload",
    [
        *('{"n":NaN}', '{"n":[Infinity]}', '{"n":-Infinity}', '{"n":1e999}', '{"n":-1e400}'),
        *('{"name":"caf\\udce9"}', '{"names":["\\ud800"]}', '{"\\udfff":1}'),
        _nested(MAX_SESSION_DEPTH + 1),
        _nested(5000),
    ],
)
def test_a_signed_cookie_that_save_could_not_write_is_no_session(
    make_client: MakeClient, colour: str, payload: str
) -> None:
    # NOTE: signed before save() refused what they hold (or by a subclass's sign()): numbers
    # JSON has none for, lone surrogates ("\udce9", which UTF-8 cannot encode), nesting past
    # the limit. Python's json reads them, and the session loaded could not be written back:
    # a 500 on every request that changed it.
    plugin = Sessions(SECRET, secure=False)
    app = App()
    app.install(plugin)

    def look(request: Request) -> dict[str, Any]:
        return {"keys": sorted(request.session)}

    app.get("/")(in_colour(colour, look))
    answer = make_client(app).get("/", headers={"cookie": f"session={plugin.sign(payload)}"})
    assert answer.status_code == 200 and answer.json() == {"keys": []}
    assert "Max-Age=0" in answer.headers["set-cookie"]


@pytest.mark.parametrize(
    "held", [{"n": float("nan")}, {"n": HUGE}, {"when": object()}, {1: "a", "b": 2}]
)
def test_a_session_a_subclass_loads_that_cannot_be_stored_is_no_session(
    make_client: MakeClient, colour: str, held: dict[Any, Any]
) -> None:
    # NOTE: a load() of a subclass's own format may give what save() refuses: the session as
    # loaded, written to JSON to see changes, was a 500 on every request with that cookie.
    class Own(Sessions):
        def load(self, cookie: str) -> dict[str, Any]:
            return dict(held) if cookie == "bad" else json.loads(cookie.replace("'", '"'))

    app = App()
    app.install(Own(SECRET, secure=False))

    def look(request: Request) -> dict[str, Any]:
        return {"keys": sorted(map(str, request.session))}

    app.get("/")(in_colour(colour, look))
    client = make_client(app)
    answer = client.get("/", headers={"cookie": "session=bad"})
    assert answer.status_code == 200 and answer.json() == {"keys": []}
    assert "Max-Age=0" in answer.headers["set-cookie"]
    # NOTE: the next cookie of the name that loads is taken, as for one that fails to verify.
    answer = client.get("/", headers={"cookie": "session=bad; session={'user':'ann'}"})
    assert answer.json() == {"keys": ["user"]}


def nested(depth: int) -> dict[str, Any]:
    """Return a dict that, with the session holding it, nests ``depth`` dicts deep."""
    value: dict[str, Any] = {}
    for _ in range(depth - 2):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [MAX_SESSION_DEPTH + 1, 2000])
def test_a_session_nested_too_deep_is_refused_by_where_it_is(
    interface: str, colour: str, depth: int
) -> None:
    # NOTE: nested some 970 deep, it was json's bare RecursionError, with no word of the session.
    app = storing_app({"tree": nested(depth)}, colour)
    named = (
        r"request\.session\['tree'\]\['a'\]\['a'\]\.\.\. nests lists and dicts more than "
        rf"{MAX_SESSION_DEPTH} deep"
    )
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(ValueError, match=named),
    ):
        client.get("/")


def test_a_session_nested_as_deep_as_kept_round_trips(make_client: MakeClient) -> None:
    app = storing_app({"tree": nested(MAX_SESSION_DEPTH)}, "sync")

    @app.get("/depth")
    def depth(request: Request) -> dict[str, int]:
        deep, levels = request.session, 1
        while deep:
            deep, levels = next(iter(deep.values())), levels + 1
        return {"depth": levels}

    client = make_client(app)
    answer = client.get("/")
    assert answer.status_code == 200 and "session=" in answer.headers["set-cookie"]
    assert client.get("/depth").json() == {"depth": MAX_SESSION_DEPTH}


def _wide(depth: int, deep_first: bool, kind: type) -> dict[str, Any]:
    """A session of 300 small dicts and lists beside one branch that nests it ``depth`` deep,
    made of ``kind`` (list or tuple), first or last among them."""
    branch: Any = 1
    for _ in range(depth - 2):
        branch = kind([branch])
    siblings: list[Any] = [{"id": n, "tags": ["a"]} for n in range(300)]
    return {"cart": [branch, *siblings] if deep_first else [*siblings, branch]}


@pytest.mark.parametrize("kind", [list, tuple])
@pytest.mark.parametrize("deep_first", [True, False])
@pytest.mark.parametrize("depth", [MAX_SESSION_DEPTH, MAX_SESSION_DEPTH + 1])
def test_a_wide_session_is_measured_as_deep_as_its_deepest_branch(
    depth: int, deep_first: bool, kind: type
) -> None:
    # NOTE: the depth check of every request walks a wide session (more brackets than the
    # limit) by levels, wherever its deepest branch is.
    session = _wide(depth, deep_first, kind)
    assert nests_too_deep(session, encode_session(session)) is (depth > MAX_SESSION_DEPTH)
