"""Server-Sent Events: what ``ServerSentEvent`` frames for the values app code gives it.

The framing, the headers and the closing of the events are in test_streaming.py.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Request, Response, ServerSentEvent


class Kind(str, enum.Enum):
    """An app's event types, as a str mix-in enum: its format() is "Kind.UPDATE"."""

    UPDATE = "update"


class Shouty(str):
    """A str whose format() differs from its text, as a subclass's may."""

    def __format__(self, spec: str) -> str:
        return "SHOUT\ndata: injected"


@pytest.mark.parametrize("value", [Kind.UPDATE, Shouty("update")])
def test_a_str_subclass_is_framed_as_its_text(value: str) -> None:
    event = ServerSentEvent(data=value, event=value, id=value, comment=value)
    assert event.encode() == b": update\nevent: update\nid: update\ndata: update\n\n"
    assert all(type(getattr(event, name)) is str for name in ("data", "event", "id", "comment"))


def test_a_str_subclass_is_checked_as_its_text() -> None:
    class Hiding(str):
        def __contains__(self, part: object) -> bool:
            return False

    with pytest.raises(ValueError, match="line break"):
        ServerSentEvent(event=Hiding("a\nb"))


def test_an_enum_event_type_reaches_the_browser_under_both_interfaces(
    make_client: MakeClient, colour: str
) -> None:
    def events(request: Request) -> Response:
        feed: list[Any] = [
            ServerSentEvent(data="1", event=Kind.UPDATE),
            {"data": Kind.UPDATE, "event": Kind.UPDATE},
        ]
        return Response.sse(feed)

    app = App()
    app.get("/")(in_colour(colour, events))
    response = make_client(app).get("/")
    assert response.text == "event: update\ndata: 1\n\nevent: update\ndata: update\n\n"


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "text/event-streams"])
def test_sse_refuses_a_content_type_eventsource_refuses(content_type: str) -> None:
    # NOTE: the app's header won, and the browser's EventSource refused the stream, reconnecting
    # again and again, with nothing said on the server.
    with pytest.raises(ValueError, match="text/event-stream"):
        Response.sse(["hi"], headers={"Content-Type": content_type})


def test_sse_takes_its_own_content_type_with_parameters(make_client: MakeClient) -> None:
    app = App()

    @app.get("/events")
    def events(request: Request) -> Response:
        return Response.sse(["hi"], headers={"content-type": "text/event-stream; charset=utf-8"})

    answer = make_client(app).get("/events")
    assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert answer.text == "data: hi\n\n"


@pytest.mark.parametrize("name", ["data", "event", "id", "comment"])
def test_an_event_with_a_lone_surrogate_is_refused_where_it_is_made(name: str) -> None:
    # NOTE: it was taken, and its encode() raised a UnicodeEncodeError that named no field,
    # once the headers had gone (review160).
    with pytest.raises(ValueError, match=f"ServerSentEvent {name} holds '\\\\udc80'"):
        ServerSentEvent(**{name: "caf\udc80"})
    assert ServerSentEvent(**{name: "café ☕"}).encode().decode("utf-8").count("café ☕") == 1


def test_a_lone_surrogate_in_the_handlers_events_is_a_500_before_the_stream(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    def events(request: Request) -> Response:
        return Response.sse([ServerSentEvent(data="ok"), ServerSentEvent(data="bad \ud800")])

    app = App()
    app.get("/")(in_colour(colour, events))
    response = make_client(app).get("/")
    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.name == "microweb"]
    assert record.getMessage() == "unhandled error in GET /"
    assert record.exc_info is not None and "lone surrogate" in str(record.exc_info[1])


def test_a_lone_surrogate_in_a_streamed_event_is_logged_naming_the_field(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    def feed() -> Any:
        yield "ok"
        yield "bad \ud800"

    def events(request: Request) -> Response:
        return Response.sse(feed())

    app = App()
    app.get("/")(in_colour(colour, events))
    with pytest.raises(ValueError, match="ServerSentEvent data holds"):
        make_client(app).get("/")
    [record] = [r for r in caplog.records if r.name == "microweb"]
    assert record.getMessage() == "error while streaming GET /"
    assert record.exc_info is not None and "lone surrogate" in str(record.exc_info[1])


def test_a_retry_too_long_to_write_is_refused_where_it_is_made() -> None:
    # NOTE: it was taken, and encode() raised str()'s "Exceeds the limit (4300 digits)" once
    # the headers had gone, naming no field.
    with pytest.raises(ValueError, match="ServerSentEvent retry must be below 2\\*\\*64"):
        ServerSentEvent(retry=10**5000)
    assert ServerSentEvent(retry=2**64 - 1).encode() == f"retry: {2**64 - 1}\n\n".encode()


class Reported(int):
    """An int subclass whose int() and comparisons say another number than its value."""

    def __int__(self) -> int:
        return -5

    def __lt__(self, other: object) -> bool:
        return False

    def bit_length(self) -> int:
        return 1


class Level(enum.IntEnum):
    """An app's reconnection delays, as an IntEnum."""

    SLOW = 3000


def test_an_int_subclass_retry_is_checked_and_framed_as_its_value() -> None:
    # NOTE: the checks asked the subclass's own methods and encode() wrote its int(): a retry
    # of 10 went out as "retry: -5", which a browser ignores, and one of 10**5000 was taken.
    event = ServerSentEvent(retry=Reported(10))
    assert event.encode() == b"retry: 10\n\n"
    assert type(event.retry) is int
    with pytest.raises(ValueError, match="0 or more milliseconds"):
        ServerSentEvent(retry=Reported(-1))
    with pytest.raises(ValueError, match="below 2\\*\\*64"):
        ServerSentEvent(retry=Reported(10**5000))
    assert ServerSentEvent(retry=Level.SLOW).encode() == b"retry: 3000\n\n"
