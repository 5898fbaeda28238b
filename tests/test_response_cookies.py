"""Set-Cookie arguments of the wrong type: a TypeError that names the argument (review168); the
cookie methods as Response has them from CookieMethods (review369)."""

from __future__ import annotations

from typing import Any

import pytest

from microweb import Response


@pytest.mark.parametrize("value", [None, 5, 1.5])
def test_a_cookie_value_that_is_no_str_is_named(value: Any) -> None:
    # NOTE: quote() said "quote_from_bytes() expected bytes", with no word of the cookie.
    with pytest.raises(TypeError, match="a cookie value is a str, not"):
        Response().set_cookie("session", value)


@pytest.mark.parametrize("max_age", ["60", b"60", [60]])
def test_a_max_age_that_is_no_number_is_named(max_age: Any) -> None:
    # NOTE: math.isfinite() said "must be real number, not str", with no word of max_age.
    with pytest.raises(TypeError, match="max_age takes a number of seconds or a timedelta"):
        Response().set_cookie("session", "x", max_age=max_age)


def test_a_max_age_of_a_number_type_is_still_taken() -> None:
    from decimal import Decimal
    from fractions import Fraction

    response = Response()
    response.set_cookie("a", "x", max_age=Decimal("1.5"))
    response.set_cookie("b", "x", max_age=Fraction(1, 2))
    assert [value.split("; ")[1] for value in response.headers.getlist("set-cookie")] == [
        "Max-Age=2",
        "Max-Age=1",
    ]


@pytest.mark.parametrize("max_age", [True, False])
def test_a_bool_max_age_is_refused(max_age: bool) -> None:
    # NOTE: True went out as Max-Age=1, a cookie gone a second later (review169).
    with pytest.raises(TypeError, match="not bool"):
        Response().set_cookie("session", "x", max_age=max_age)


@pytest.mark.parametrize(
    ("argument", "value"), [("domain", b"example.com"), ("path", b"/a"), ("path", 5)]
)
def test_a_path_or_domain_that_is_no_str_is_named(argument: str, value: Any) -> None:
    # NOTE: bytes met a str pattern (domain), or were refused as a path "that does not start
    # with '/'" (path), with no word of the type.
    with pytest.raises(TypeError, match=f"a cookie {argument} is a str, not"):
        Response().set_cookie("session", "x", **{argument: value})


# -- Response's cookie methods, inherited from CookieMethods (review369) ------------------------


def test_a_response_keeps_to_its_slots() -> None:
    # NOTE: a base class without __slots__ would give every Response a __dict__.
    response = Response("x")
    assert not hasattr(response, "__dict__")
    with pytest.raises(AttributeError):
        response.colour = "red"  # type: ignore[attr-defined]


def test_the_cookie_methods_keep_their_signature_and_docs() -> None:
    import inspect

    assert list(inspect.signature(Response.delete_cookie).parameters) == [
        "self",
        "key",
        "path",
        "domain",
        "secure",
        "httponly",
        "samesite",
        "partitioned",
    ]
    assert inspect.signature(Response.set_cookie).parameters["samesite"].default == "lax"
    assert (Response.set_cookie.__doc__ or "").startswith("Add a ``Set-Cookie`` header")
    assert (Response.delete_cookie.__doc__ or "").startswith("Tell the client to drop")


def test_a_subclass_that_overrides_set_cookie_gets_delete_cookie_too(interface: str) -> None:
    from microweb import App
    from microweb.testing import TestClient

    class Scoped(Response):
        __slots__ = ()

        def set_cookie(self, key: str, value: str = "", **options: Any) -> None:
            super().set_cookie(f"app-{key}", value, **options)

    app = App()

    @app.get("/")
    def logout(request: Any) -> Response:
        response = Scoped("bye")
        response.delete_cookie("session")
        return response

    with TestClient(app, interface=interface) as client:
        answer = client.get("/")
    assert answer.headers["set-cookie"].startswith("app-session=; ")
    assert not hasattr(Scoped(), "__dict__")
