"""``sys.exit()`` and ``KeyboardInterrupt`` raised on the event loop that runs the async code.

A task that raises ``SystemExit`` (or ``KeyboardInterrupt``) lets it out of the loop's
``run_forever()``, as asyncio does for these two: under WSGI the app loop's thread ended for
good, and every later async request was a 500 "reached async code after the app was closed";
a call left waiting was said to have ignored its cancellation (review413).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from drive import wsgi_get

from microweb import App, Request, _app_loop
from microweb.testing import TestClient

ENDINGS = [SystemExit, KeyboardInterrupt]


def _app(ending: type[BaseException], ran: threading.Event) -> App:
    app = App()
    # NOTE: kept, as an app keeps its background tasks.
    tasks: list[asyncio.Task[None]] = []

    async def leave() -> None:
        try:
            await asyncio.sleep(0)
        finally:
            ran.set()
        raise ending(4)

    @app.get("/task")
    async def task(request: Request) -> str:
        tasks.append(asyncio.get_running_loop().create_task(leave()))
        return "started"

    @app.get("/callback")
    async def callback(request: Request) -> str:
        def leave_now() -> None:
            ran.set()
            raise ending(5)

        asyncio.get_running_loop().call_soon(leave_now)
        return "scheduled"

    @app.get("/handler")
    async def handler(request: Request) -> str:
        raise ending(3)

    @app.get("/fine")
    async def fine(request: Request) -> str:
        await asyncio.sleep(0)
        return "fine"

    return app


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("where", ["task", "callback"])
def test_an_exit_on_the_loop_outside_a_request_leaves_the_loop_serving(
    interface: str, where: str, ending: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    ran = threading.Event()
    app = _app(ending, ran)
    with TestClient(app, interface=interface) as client:
        assert client.get(f"/{where}").status_code == 200
        assert ran.wait(5)
        for _ in range(3):
            answer = client.get("/fine")
            assert (answer.status_code, answer.text) == (200, "fine")
    said = [r for r in caplog.records if r.name == "microweb" and r.levelno == logging.ERROR]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert ending.__name__ in said[0].getMessage()
    assert said[0].exc_info is not None and isinstance(said[0].exc_info[1], ending)


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_handlers_exit_goes_to_the_server_and_the_loop_serves_on(
    interface: str, ending: type[BaseException]
) -> None:
    # NOTE: docs/errors.md: it goes to the server (here the test), which answers 500.
    app = _app(ending, threading.Event())
    with TestClient(app, interface=interface) as client:
        with pytest.raises(ending):
            client.get("/handler")
        assert client.get("/fine").text == "fine"


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_call_waiting_as_a_task_exits_is_answered_and_said_nothing_of(
    ending: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the call waiting on the loop as it died was said to have "ignored its
    # cancellation", its request a 500; the app's close then found the loop closed.
    caplog.set_level(logging.WARNING, logger="microweb")
    ran = threading.Event()
    app = _app(ending, ran)
    inside, release = threading.Event(), asyncio.Event()

    @app.get("/slow")
    async def slow(request: Request) -> str:
        release_now = asyncio.get_running_loop()
        inside.set()
        while not ran.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        release_now.call_soon(release.set)
        return "slow"

    wsgi = app.as_wsgi()
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(wsgi_get(wsgi, "/slow")), daemon=True)
    thread.start()
    assert inside.wait(5)
    assert wsgi_get(wsgi, "/task") == ("200 OK", b"started")
    thread.join(10)
    assert got == [("200 OK", b"slow")]
    assert wsgi_get(wsgi, "/fine") == ("200 OK", b"fine")
    wsgi.close()
    said = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert len(said) == 1 and ending.__name__ in said[0], said
    assert not [m for m in said if "cancellation" in m or "closed" in m], said


def test_a_stop_made_in_the_turn_an_exit_ends_still_stops_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: run_forever() forgets a stop made in the turn that an exception leaves it by: the
    # loop ran on after its stop, and its thread was never joined.
    caplog.set_level(logging.ERROR, logger="microweb")
    loop = asyncio.new_event_loop()

    def leave() -> None:
        raise SystemExit(6)

    def both() -> None:
        loop.call_soon(_app_loop.stop_loop, loop)
        loop.call_soon(leave)

    loop.call_soon(both)
    thread = threading.Thread(target=_app_loop.run_until_stopped, args=(loop,), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "the loop ran on after its stop"
    assert loop.is_closed()
    assert len(caplog.records) == 1 and "SystemExit" in caplog.records[0].getMessage()


@pytest.mark.parametrize("ending", ENDINGS)
def test_an_exit_in_a_cancelled_tasks_cleanup_leaves_the_other_cleanups_run(
    interface: str, ending: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: raised as the loop's stop cancelled the tasks left, it ended the loop's cleanup:
    # the other tasks were destroyed pending, their finally unrun, and microweb said nothing.
    caplog.set_level(logging.ERROR)
    app = App()
    tasks: list[asyncio.Task[None]] = []
    ended: list[str] = []

    async def wait(name: str) -> None:
        try:
            await asyncio.sleep(100)
        finally:
            if name == "leaving":
                raise ending(7)
            await asyncio.sleep(0.01)
            ended.append(name)

    @app.get("/tasks")
    async def start(request: Request) -> str:
        loop = asyncio.get_running_loop()
        tasks.extend(loop.create_task(wait(name)) for name in ("first", "leaving", "last"))
        return "started"

    with TestClient(app, interface=interface) as client:
        assert client.get("/tasks").text == "started"
    assert sorted(ended) == ["first", "last"]
    said = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert len(said) == 1 and ending.__name__ in said[0], said
    assert not [r for r in caplog.records if "destroyed" in r.getMessage()]


def test_a_stop_of_the_loop_by_the_apps_own_code_is_logged_and_the_loop_serves_on(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the loop's thread ran its cleanup and closed the loop: under WSGI every later async
    # request was a 500 "reached async code after the app was closed"; under the test client's
    # ASGI side the request itself was cancelled, and the client's close found the loop closed.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = _app(SystemExit, threading.Event())

    @app.get("/stop")
    async def stop(request: Request) -> str:
        asyncio.get_running_loop().stop()
        return "stopped"

    with TestClient(app, interface=interface) as client:
        assert client.get("/stop").text == "stopped"
        for _ in range(3):
            assert client.get("/fine").text == "fine"
    said = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert len(said) == 1 and "stop()" in said[0], said
