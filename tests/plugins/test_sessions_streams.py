"""The Sessions plugin and work done once the answer's headers are gone: a streamed body's
generator and an after-response callback change nothing that is saved (docs/plugins-sessions.md,
Notes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from conftest import MakeClient, in_colour

from microweb import App, Request, Response
from microweb.plugins import Sessions, flash, get_flashed_messages

SECRET = "a-test-secret-of-32-characters!!"


def streaming_app(colour: str) -> App:
    app = App()
    app.install(Sessions(SECRET, secure=False))

    def late_change(request: Request) -> None:
        request.session["after"] = True
        flash(request, "from after the answer")

    def stream(request: Request) -> Response:
        request.session["by_handler"] = True
        flash(request, "from the handler")
        request.after_response(late_change, request)

        def pieces() -> Iterator[bytes]:
            request.session["in_stream"] = True
            flash(request, "from the stream")
            yield b"streamed"

        async def apieces() -> AsyncIterator[bytes]:
            for piece in pieces():
                yield piece

        return Response.stream(pieces() if colour == "sync" else apieces())

    def look(request: Request) -> dict[str, Any]:
        flashes = get_flashed_messages(request)
        return {"session": dict(request.session), "flashes": flashes}

    app.get("/stream")(in_colour(colour, stream))
    app.get("/look")(in_colour(colour, look))
    return app


def test_changes_made_while_streaming_or_after_the_answer_are_not_saved(
    make_client: MakeClient, colour: str
) -> None:
    client = make_client(streaming_app(colour))
    answer = client.get("/stream")
    assert (answer.text, "session=" in answer.headers["set-cookie"]) == ("streamed", True)
    assert client.get("/look").json() == {
        "session": {"by_handler": True},
        "flashes": ["from the handler"],
    }
