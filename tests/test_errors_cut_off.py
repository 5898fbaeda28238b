"""A bug whose error handler for its class never finished: the client left, or the server gave up.

A handler for an exception class that answers a 5xx gets the bug it answered logged once it has
answered; one cut off before it answered must not take the bug out of the log.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import traceback
from typing import Any
from wsgiref.validate import validator

import pytest
from conftest import MakeClient, in_colour
from drive import asgi_call, http_scope, wsgi_environ

from microweb import App, ClientDisconnect, HTTPError, Limits, Request


class _ResetInput(io.BytesIO):
    """A ``wsgi.input`` whose reads fail as a socket's does once the client reset it."""

    def read(self, size: int | None = -1) -> bytes:
        raise ConnectionResetError(104, "Connection reset by peer")


def _raises_the_bug(request: Request) -> str:
    raise RuntimeError("the bug")


def _app(answer: Any, limits: Limits | None = None) -> App:
    app = App(limits=limits)
    app.post("/orders")(_raises_the_bug)
    app.error_handler(RuntimeError)(answer)
    return app


async def _reads_then_answers(request: Request, exc: Exception) -> Any:
    await request.aread()  # NOTE: to report the body with the error, say.
    return {"error": "internal"}, 500


def _post_and_leave(
    app: App, interface: str, wsgi_input: type[io.BytesIO] = _ResetInput
) -> list[str]:
    """POST 10 bytes promised, 2 sent, then the client leaves; return the status lines sent.
    Under WSGI, ``wsgi_input`` says how the server tells: a reset, or a body that ends short."""
    if interface == "asgi":
        scope = http_scope("POST", "/orders", [(b"content-length", b"10")])
        messages = [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.disconnect"},
        ]
        sent = asyncio.run(asgi_call(app, scope, messages))
        return [str(m["status"]) for m in sent if m["type"] == "http.response.start"]
    seen: list[str] = []
    driver = app.as_wsgi()
    try:
        environ = wsgi_environ(
            "POST", "/orders", CONTENT_LENGTH="10", QUERY_STRING="", SCRIPT_NAME=""
        )
        environ["wsgi.input"] = wsgi_input(b"ab")

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen.append(status)
            return lambda data: None

        result = validator(driver)(environ, start_response)
        try:
            b"".join(result)
        finally:
            result.close()
    finally:
        driver.close()
    return seen


def _logged(caplog: pytest.LogCaptureFixture) -> list[BaseException]:
    return [r.exc_info[1] for r in caplog.records if r.exc_info and r.exc_info[1]]


def test_a_bug_whose_class_handler_finds_the_client_gone_is_logged_once(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a 500 handler's bug was logged there, a class handler's was not: its answer, a
    # 500, never came, and the RuntimeError left no line in the log.
    caplog.set_level(logging.ERROR, logger="microweb")
    statuses = _post_and_leave(_app(_reads_then_answers), interface)
    assert statuses == ([] if interface == "asgi" else ["400 Bad Request"])
    logged = _logged(caplog)
    assert [(type(error), str(error)) for error in logged] == [(RuntimeError, "the bug")]
    assert "_reads_then_answers" in caplog.records[0].getMessage()


def test_a_bug_whose_class_handler_finds_the_body_cut_short_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: a WSGI server that ends the body where the client left (gunicorn, wsgiref; TRAPS.md
    # 9) gives a body shorter than its Content-Length: the handler's read raised that 400, was
    # taken for its answer, and the bug it was to answer left no line in the log.
    caplog.set_level(logging.ERROR, logger="microweb")
    statuses = _post_and_leave(_app(_reads_then_answers), "wsgi", io.BytesIO)
    assert statuses == ["400 Bad Request"]
    logged = _logged(caplog)
    assert [(type(error), str(error)) for error in logged] == [(RuntimeError, "the bug")]
    message = caplog.records[0].getMessage()
    assert "_reads_then_answers" in message and message.endswith("was cut off")


def test_a_class_handler_that_reads_the_body_and_answers_an_http_error_logs_nothing(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the other side: an HTTPError of the handler's own, after a read that went well, is
    # its answer (a bug it answers 4xx is not logged).
    caplog.set_level(logging.ERROR, logger="microweb")

    async def refuses(request: Request, exc: Exception) -> Any:
        await request.aread()
        raise HTTPError(400, "request body is shorter than its Content-Length")

    response = make_client(_app(refuses)).post("/orders", content=b"abc")
    assert response.status_code == 400
    assert caplog.records == []


def test_a_bug_whose_class_handler_raises_client_disconnect_is_logged_once(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a ClientDisconnect out of an error handler is the client's leaving, whoever
    # raised it (a body read, a watch of the connection): the bug it answered stays logged.
    caplog.set_level(logging.ERROR, logger="microweb")

    def finds_it_gone(request: Request, exc: Exception) -> Any:
        raise ClientDisconnect("gone meanwhile")

    response = make_client(_app(in_colour(colour, finds_it_gone))).post("/orders")
    assert (response.status_code, response.text) == (400, "gone meanwhile")
    logged = _logged(caplog)
    assert [(type(error), str(error)) for error in logged] == [(RuntimeError, "the bug")]


def test_a_bug_whose_class_handler_answers_is_logged_once(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the other side of the fix: a handler that finishes logs the bug once, not twice.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = _app(in_colour(colour, lambda request, exc: ({"error": "internal"}, 500)))
    assert make_client(app).post("/orders").status_code == 500
    logged = _logged(caplog)
    assert [(type(error), str(error)) for error in logged] == [(RuntimeError, "the bug")]


def test_a_bug_whose_class_handler_the_server_cancels_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: the server gives up on the request (Uvicorn at the end of its grace period) while
    # the handler waits: "cut off" was logged, and the bug it answered was not.
    caplog.set_level(logging.WARNING, logger="microweb")
    started = asyncio.Event()

    async def waits(request: Request, exc: Exception) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    asgi = _app(waits).as_asgi()

    async def call() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            pass

        task = asyncio.ensure_future(asgi(http_scope("POST", "/orders"), receive, send))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(call())
    logged = _logged(caplog)
    assert [(type(error), str(error)) for error in logged] == [(RuntimeError, "the bug")]
    assert "cut off" in caplog.text


def test_a_bug_whose_class_handler_raises_system_exit_is_logged_as_not_answered(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the SystemExit goes to the server, as a route handler's does (docs/errors.md); the
    # bug it was to answer is logged once, and its line said the handler "was cut off".
    caplog.set_level(logging.ERROR, logger="microweb")

    def exits(request: Request, exc: Exception) -> Any:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        make_client(_app(in_colour(colour, exits))).post("/orders")
    logged = _logged(caplog)
    assert [(type(error), str(error)) for error in logged] == [(RuntimeError, "the bug")]
    message = caplog.records[0].getMessage()
    assert "exits" in message and message.endswith("raised SystemExit")
    assert "cut off" not in message


@pytest.mark.parametrize("key", [RuntimeError, 500])
def test_a_system_exit_of_an_error_handler_shows_the_bug_it_answered_once(
    make_client: MakeClient, colour: str, key: object, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the server logs the SystemExit again with its traceback (Uvicorn's "Exception in
    # ASGI application"): the bug, its context, was shown there a second time under ASGI,
    # where microweb serve's Waitress showed the SystemExit alone.
    caplog.set_level(logging.ERROR, logger="microweb")

    def exits(request: Request, exc: Exception) -> Any:
        raise SystemExit(3)

    app = App()
    app.post("/orders")(_raises_the_bug)
    app.error_handler(key)(in_colour(colour, exits))
    with pytest.raises(SystemExit) as raised:
        make_client(app).post("/orders")
    ending = raised.value
    # NOTE: still its context, as an except clause leaves it; but not shown again.
    assert isinstance(ending.__context__, RuntimeError)
    assert "the bug" not in "".join(traceback.format_exception(ending))
    assert [(type(error), str(error)) for error in _logged(caplog)] == [(RuntimeError, "the bug")]


def test_an_error_handlers_system_exit_from_the_bug_keeps_its_cause_shown(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a cause is the app's own choice: shown as it asked.
    def exits(request: Request, exc: Exception) -> Any:
        raise SystemExit(3) from exc

    with pytest.raises(SystemExit) as raised:
        make_client(_app(exits)).post("/orders")
    assert "the bug" in "".join(traceback.format_exception(raised.value))


def test_a_bug_whose_class_handler_reads_a_body_too_large_by_its_length_is_logged_once(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the 413 of a Content-Length past the limit came before the body's meter, so it was
    # taken for the handler's answer (a 4xx): the bug it was to answer left no line in the log.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = _app(_reads_then_answers, Limits(max_body_size=10))
    response = make_client(app).post("/orders", content=b"x" * 20)
    assert response.status_code == 413
    logged = _logged(caplog)
    assert [(type(error), str(error)) for error in logged] == [(RuntimeError, "the bug")]
    assert caplog.records[0].getMessage().endswith("was cut off")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in 3.11")
def test_a_bug_whose_class_handler_finds_the_client_gone_in_a_task_group_is_logged_once(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a TaskGroup's group of ClientDisconnect alone is the client's leaving, as out of a
    # route handler: out of an error handler it was logged as the handler's failure, and a 500
    # was sent to the client that had left (under ASGI, where a route handler's sends nothing).
    caplog.set_level(logging.ERROR, logger="microweb")

    async def reads_in_a_group(request: Request, exc: Exception) -> Any:
        async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined,unused-ignore]
            group.create_task(request.aread())
        return {"error": "internal"}, 500

    statuses = _post_and_leave(_app(reads_in_a_group), interface)
    assert statuses == ([] if interface == "asgi" else ["400 Bad Request"])
    logged = _logged(caplog)
    assert [(type(error), str(error)) for error in logged] == [(RuntimeError, "the bug")]
    assert caplog.records[0].getMessage().endswith("was cut off")
