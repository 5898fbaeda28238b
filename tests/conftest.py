"""Shared fixtures: behaviour tests run under both interfaces, body tests under both colours.

The browser tests (``test_*_browser.py``) use pytest-playwright's fixtures; the two overrides here
point Playwright at Debian's Chromium when Playwright's own build is not installed, and make those
tests run last.

Which test file checks which module: docs/architecture.md, "Where the tests are". Test modules
import ``MakeClient``, ``in_colour`` and ``stream_in_colour`` from here (``from conftest import
...``), so keep this the only conftest.py: another one, in a subfolder, would take the module
name ``conftest``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import importlib.util
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from microweb import App
from microweb.testing import TestClient

if TYPE_CHECKING:
    from playwright.sync_api import BrowserType

MakeClient = Callable[[App], TestClient]
"""The type of the ``make_client`` fixture: ``make_client(app)`` gives a TestClient for ``app``."""

# NOTE: the uvicorn command each test starts runs on asyncio's loop unless the test says
# --loop (servers.TEST_LOOP, which microweb serve's commands get as --loop): Uvicorn's default
# picks uvloop wherever it is installed.
os.environ["UVICORN_LOOP"] = "asyncio"

INSTALL_CHROMIUM = "apt-get install -y chromium (Debian), or python -m playwright install chromium"


@pytest.fixture(params=["wsgi", "asgi"])
def interface(request: pytest.FixtureRequest) -> str:
    """The interface a behaviour test runs under: ``"wsgi"`` or ``"asgi"``."""
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def colour(request: pytest.FixtureRequest) -> str:
    """The handler colour a body test uses: ``"sync"`` (def) or ``"async"`` (async def)."""
    return str(request.param)


def in_colour(colour: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``function`` for ``"sync"``; for ``"async"``, an ``async def`` that calls it.

    A test writes a handler or error handler once, as a ``def``, and registers it in the colour
    under test. The ``async def`` keeps the name and the signature (path parameters) of
    ``function``.
    """
    if colour == "sync":
        return function

    @functools.wraps(function)
    async def coloured(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return coloured


T = TypeVar("T")


def stream_in_colour(
    colour: str, chunks: Callable[[], Iterator[T]], *, awaits: bool = False, late: float = 0.0
) -> Iterator[T] | AsyncIterator[T]:
    """Return the generator ``chunks()`` for ``"sync"``; for ``"async"``, an async generator
    that takes its chunks one step at a time and closes it in its own close.

    A test writes a stream once, as a sync generator function, and streams it in the colour
    under test. What the generator sets of its context variables it sets in the steps of the
    async one, in their context; an error of its ``finally`` is raised by the async one's
    ``aclose()``. ``awaits``: the async one awaits after each chunk (a point where its task
    can be cancelled). ``late``: the seconds a close before the stream's end takes before the
    generator's ``finally`` runs (``time.sleep()`` in a sync one, ``asyncio.sleep()`` in an
    async one).
    """
    if colour == "sync" and not late:
        return chunks()

    def in_sync() -> Iterator[T]:
        taken = chunks()
        try:
            # NOTE: not "yield from", which closes ``taken`` before the close's pause.
            for chunk in taken:  # noqa: UP028
                yield chunk
        except GeneratorExit:
            time.sleep(late)
            raise
        finally:
            getattr(taken, "close", lambda: None)()

    async def in_async() -> AsyncIterator[T]:
        taken = chunks()
        try:
            for chunk in taken:
                yield chunk
                if awaits:
                    await asyncio.sleep(0)
        except GeneratorExit:
            if late:
                await asyncio.sleep(late)
            raise
        finally:
            getattr(taken, "close", lambda: None)()

    return in_sync() if colour == "sync" else in_async()


def traced_lines(read: Any) -> tuple[int, Any]:
    """Call ``read()``; return how many Python lines it ran in this thread, and its result."""
    lines = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal lines
        lines += event == "line"
        return tracer

    # NOTE: no collection while tracing: finalizers of earlier tests' garbage (the WSGI
    # validator's __del__) would add their lines to the count at random. Paused, the collector
    # runs none; a collection first is not needed for that (PERF: late in a pytest-xdist
    # worker, one of the whole heap took seconds, twice in each of these tests).
    gc.disable()
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        value = read()
    finally:
        sys.settrace(previous)
        gc.enable()
    return lines, value


async def sleep_until_cancelled(events: list[str]) -> None:
    """A background task that never ends on its own: records ``"cancelled"``, then ``"finally"``."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        events.append("cancelled")
        raise
    finally:
        events.append("finally")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder ``public/`` of small files (``site.css``, ``logo.png``, ``docs/index.html``, an
    empty folder ``empty/``), next to a ``secret.txt`` that must never be served from it."""
    public = tmp_path / "public"
    (public / "docs").mkdir(parents=True)
    (public / "empty").mkdir()
    (public / "site.css").write_text("body { color: black; }\n" * 100)
    (public / "docs" / "index.html").write_text("<h1>docs</h1>")
    (public / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(600))
    (tmp_path / "secret.txt").write_text("top secret")
    return public


def loop_runs_here() -> bool:
    """Whether an event loop runs in this thread (where a server's WSGI thread has none)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(relative: str, name: str) -> ModuleType:
    """Return a fresh module of ``examples/<relative>`` (and a fresh ``App``), named ``name``
    and kept out of ``sys.modules``: loaded by path, as the examples' folder is on
    ``sys.path`` only when another test put it there."""
    with example_module(relative, name) as module:
        return module


@contextlib.contextmanager
def example_module(relative: str, name: str) -> Iterator[ModuleType]:
    """``load_example()``, with the module in ``sys.modules`` while the block runs, for what
    looks a module up there as it is made (a dataclass)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


@pytest.fixture
def make_client(interface: str) -> Iterator[MakeClient]:
    """Build TestClients for apps under the current interface; they are closed after the test."""
    clients: list[TestClient] = []

    def make(app: App) -> TestClient:
        client = TestClient(app, interface=interface)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def asgi_client() -> Iterator[MakeClient]:
    """Build ASGI TestClients (no lifespan unless used with ``with``), for what exists under
    ASGI only (WebSockets); they are closed after the test."""
    clients: list[TestClient] = []

    def make(app: App) -> TestClient:
        client = TestClient(app, interface="asgi")
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that use a Playwright browser after every other test."""
    # NOTE: Playwright's sync API leaves its event loop marked as running in the main thread from
    # the session's first browser test until the session ends, so any later asyncio.run() would
    # raise "cannot be called from a running event loop". The sort is stable. Under xdist's
    # --dist loadfile, files are sent by their number of tests, so a file of one test may still
    # come after them: _no_browser_loop_left() sees to that.
    items.sort(key=lambda item: "browser_name" in getattr(item, "fixturenames", ()))


@pytest.fixture
def young_heap() -> Iterator[None]:
    """Freeze the heap for the test: its ``gc.collect()`` calls look only at what was made
    since, not at the whole heap (seconds each, late in a pytest-xdist worker).

    For tests whose collections are about objects they make themselves; what was made before
    the test is collected as usual afterwards."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture(autouse=True)
def _no_browser_loop_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run a test that uses no browser with no event loop marked as running in its thread.

    NOTE: the loop Playwright's sync API left marked (see above) is unmarked for the test and
    marked again after it, for the browser tests still to come: a one-test file that xdist sent
    after them failed at its asyncio.run() (test_in_pool_aclose).
    """
    left = asyncio.events._get_running_loop()
    if left is None or "browser_name" in request.fixturenames:
        yield
        return
    asyncio.events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio.events._set_running_loop(left)


@pytest.fixture(autouse=True)
def _signal_handlers_kept() -> Iterator[None]:
    """Put back the stop signals' handlers that a test's in-process ``serve()`` set."""
    # NOTE: serve() makes SIGINT's handler Python's default and SIGTERM's its own, as the one
    # process it runs in needs; under pytest-xdist the next test in that worker inherited them.
    kept = {signum: signal.getsignal(signum) for signum in _STOP_SIGNALS}
    yield
    for signum, handler in kept.items():
        if signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)


_STOP_SIGNALS = [
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
]


@pytest.fixture(autouse=True)
def _ports_released() -> Iterator[None]:
    """Close the sockets that hold the ports a test took from ``servers.free_port()`` and served
    nothing on."""
    yield
    # NOTE: only where a test imported servers.py.
    servers = sys.modules.get("servers")
    if servers is not None:
        servers.release_ports()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """Write lone surrogates in a report's captured output as escapes."""
    # NOTE: a test that logs a name decoded with surrogateescape leaves '\udc80' in its captured
    # log; pytest-xdist's worker cannot send such a report (only UTF-8 crosses) and the whole
    # run stopped with an INTERNALERROR.
    report = yield
    report.sections = [
        (title, text.encode("utf-8", "backslashreplace").decode("utf-8"))
        for title, text in report.sections
    ]
    return report


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any], browser_name: str, browser_type: BrowserType
) -> dict[str, Any]:
    """pytest-playwright's launch options, with Debian's Chromium where Playwright has none.

    Playwright's own browser download (``playwright install``) is not reachable everywhere; a
    Chromium from the system package manager is, and Playwright drives it when it is recent
    enough for Playwright's DevTools protocol.
    """
    options = dict(browser_type_launch_args)
    if browser_name != "chromium" or "channel" in options or "executable_path" in options:
        return options
    if Path(browser_type.executable_path).exists():
        return options
    system_chromium = shutil.which("chromium")
    if system_chromium is None:
        pytest.skip(f"Chromium is not installed: {INSTALL_CHROMIUM}")
    options["executable_path"] = system_chromium
    return options


@pytest.fixture(params=["interpreter's limit", "no interpreter limit"])
def int_digits_limit(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run with Python's own ``int()`` digit limit, then with it lifted as an app may do."""
    if request.param == "interpreter's limit":
        yield
        return
    if not hasattr(sys, "set_int_max_str_digits"):
        pytest.skip("this Python has no int() digit limit to lift")
    saved = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(saved)
