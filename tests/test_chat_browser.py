"""The chat example in a real headless Chromium, served by a real Uvicorn.

Chromium is driven through the DevTools protocol over a WebSocket, with the ``websockets``
client the other server tests use (no browser-automation package): each page is a DevTools
target; ``Runtime.evaluate`` fills the page's inputs and clicks its buttons, and reads its
message list. A plain ``websockets`` client sits in the same room to check what the pages send.

Skipped when Chromium is not installed (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import Uvicorn, run_uvicorn, stop
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.servers

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--remote-debugging-port=0",  # NOTE: Chromium picks the port and writes it to its profile.
)
START_TIMEOUT = 15.0
WAIT_TIMEOUT = 10.0

MESSAGES_JS = """[...document.querySelectorAll("#messages li")].map(
    (item) => [item.querySelector("b").textContent, item.lastChild.textContent])"""


class DevToolsPage:
    """One browser tab, spoken to with the DevTools protocol (commands and their replies)."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result (events that arrive meanwhile are dropped)."""
        command_id = next(self._ids)
        self._connection.send(json.dumps({"id": command_id, "method": method, "params": params}))
        deadline = time.monotonic() + WAIT_TIMEOUT
        while True:
            reply = json.loads(self._connection.recv(timeout=deadline - time.monotonic()))
            if reply.get("id") != command_id:
                continue
            if "error" in reply:
                raise AssertionError(f"{method} failed: {reply['error']}")
            result: dict[str, Any] = reply["result"]
            return result

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its value (JSON-like)."""
        result = self.command(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, expected: Any) -> None:
        """Poll ``expression`` until it evaluates to ``expected``."""
        deadline = time.monotonic() + WAIT_TIMEOUT
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except AssertionError as exc:  # NOTE: e.g. the page is still navigating.
                value = exc
            if value == expected:
                return
            time.sleep(0.05)
        raise AssertionError(f"{expression!r} is {value!r}, expected {expected!r}")

    def messages(self) -> list[list[str]]:
        """Return the page's message list as ``[name, text]`` pairs."""
        value: list[list[str]] = self.evaluate(MESSAGES_JS)
        return value

    def wait_for_message(self, name: str, text: str) -> None:
        """Wait until the message list shows ``text`` from ``name``."""
        match = f"([n, t]) => n === {json.dumps(name)} && t === {json.dumps(text)}"
        expression = f"{MESSAGES_JS}.some({match})"
        self.wait_for(expression, True)

    def fill_and_click(self, input_id: str, value: str, button_id: str) -> None:
        """Type ``value`` into an input (as a user would, firing ``input``) and click a button."""
        self.evaluate(
            f"""(() => {{
                const input = document.getElementById({json.dumps(input_id)});
                input.value = {json.dumps(value)};
                input.dispatchEvent(new Event("input", {{bubbles: true}}));
                document.getElementById({json.dumps(button_id)}).click();
            }})()"""
        )


class Browser:
    """A headless Chromium whose DevTools endpoint listens on ``port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._connections = contextlib.ExitStack()

    def open(self, url: str) -> DevToolsPage:
        """Open ``url`` in a new tab and wait until its document has loaded."""
        endpoint = f"http://127.0.0.1:{self.port}/json/new?about:blank"
        # NOTE: recent Chromium only creates targets on PUT.
        target = httpx.put(endpoint, timeout=WAIT_TIMEOUT).raise_for_status().json()
        connection = self._connections.enter_context(
            connect(
                target["webSocketDebuggerUrl"],
                proxy=None,
                max_size=None,
                open_timeout=WAIT_TIMEOUT,
            )
        )
        page = DevToolsPage(connection)
        page.command("Page.navigate", url=url)
        loaded = f'location.href === {json.dumps(url)} && document.readyState === "complete"'
        page.wait_for(loaded, True)
        return page

    def close(self) -> None:
        """Close every DevTools connection."""
        self._connections.close()


def _wait_for_devtools_port(process: subprocess.Popen[bytes], profile: Path, log: Path) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chromium exited with {process.returncode}:\n{log.read_text('utf-8')}")
        lines = marker.read_text("ascii").splitlines() if marker.exists() else []
        if lines and lines[0].isdigit():
            return int(lines[0])
        time.sleep(0.05)
    pytest.fail(f"chromium's DevTools did not start in {START_TIMEOUT} s:\n{log.read_text()}")


def _stop_chromium(process: subprocess.Popen[bytes]) -> None:
    stop(process)
    # NOTE: the browser's own helpers (zygote, renderers) share the session started for it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """A headless Chromium for the whole module (skipped when it is not installed)."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")
    workdir = tmp_path_factory.mktemp("chromium")
    profile, log_path = workdir / "profile", workdir / "chromium.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            running = Browser(_wait_for_devtools_port(process, profile, log_path))
            yield running
            running.close()
        finally:
            _stop_chromium(process)


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    """Uvicorn serving the chat example."""
    with run_uvicorn("examples.chat:app.as_asgi", tmp_path_factory.mktemp("chat")) as server:
        yield server


def _join(listener: ClientConnection, name: str) -> None:
    # NOTE: a client is in the room once its own message has come back to it.
    listener.send("joined")
    assert _receive(listener) == {"name": name, "text": "joined"}


def _receive(listener: ClientConnection) -> dict[str, str]:
    message: dict[str, str] = json.loads(listener.recv(timeout=WAIT_TIMEOUT))
    return message


def test_chat_in_two_browser_pages(browser: Browser, chat_server: Uvicorn) -> None:
    alice = browser.open(chat_server.http_url + "/")
    alice.wait_for('document.getElementById("status").textContent', "not connected")
    alice.fill_and_click("name", "alice", "join-button")
    alice.wait_for('document.getElementById("status").textContent', "connected")
    alice.fill_and_click("text", "hello from chromium", "send")
    alice.wait_for_message("alice", "hello from chromium")
    assert alice.evaluate('document.getElementById("text").value') == ""

    carol_url = f"{chat_server.ws_url}/ws?name=carol"
    with connect(carol_url, proxy=None, open_timeout=WAIT_TIMEOUT) as carol:
        _join(carol, "carol")
        alice.wait_for_message("carol", "joined")

        bob = browser.open(chat_server.http_url + "/?name=bob")  # joins from the query string
        bob.wait_for('document.getElementById("status").textContent', "connected")
        bob.fill_and_click("text", "bob here", "send")
        bob.wait_for_message("bob", "bob here")
        assert _receive(carol) == {"name": "bob", "text": "bob here"}
        alice.wait_for_message("bob", "bob here")

        markup = "<b>not bold</b> & <script>alert(1)</script>"
        alice.fill_and_click("text", markup, "send")
        assert _receive(carol) == {"name": "alice", "text": markup}
        bob.wait_for_message("alice", markup)
        alice.wait_for_message("alice", markup)

    # The text was shown as text: one <b> (the name) per message, no element made from it.
    assert alice.evaluate('document.querySelectorAll("#messages b").length') == len(
        alice.messages()
    )
    assert alice.evaluate('document.querySelectorAll("#messages script").length') == 0
    assert alice.messages() == [
        ["alice", "hello from chromium"],
        ["carol", "joined"],
        ["bob", "bob here"],
        ["alice", markup],
    ]
