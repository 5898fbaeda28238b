"""A body assigned after the response is made (``response.body = ...``) is checked and
converted as the constructor's is, so that its Content-Length is its size (review168)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Request, Response


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


@pytest.mark.parametrize("name", ["body", "length"])
def test_a_subclass_that_hides_body_or_length_is_refused(name: str) -> None:
    # NOTE: the drivers read the value the property keeps: a subclass's own body property (one
    # that renders late) would never be sent.
    with pytest.raises(TypeError, match=f"defines '{name}', which hides Response.{name}"):
        type("Lazy", (Response,), {name: property(lambda self: b"late")})
