"""The chat example in a real headless Chromium, served by a real Uvicorn.

Playwright drives the pages (pytest-playwright's ``page`` and ``context`` fixtures;
tests/conftest.py points it at Debian's Chromium where Playwright's own build is not installed).
A plain ``websockets`` client sits in the same room to check what the pages send.

Skipped when Playwright or Chromium is missing: ``pip install -e '.[test]'`` installs Playwright,
``apt-get install -y chromium`` (Debian) the browser.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("pytest_playwright", reason="Playwright is missing: pip install -e '.[test]'")

from playwright.sync_api import BrowserContext, Page, expect
from servers import Uvicorn, run_uvicorn
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.servers

WAIT_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    """Uvicorn serving the chat example."""
    with run_uvicorn("examples.chat:app.as_asgi", tmp_path_factory.mktemp("chat")) as server:
        yield server


def expect_messages(page: Page, *messages: tuple[str, str]) -> None:
    """Wait until the page's message list is exactly ``messages``, ``(name, text)`` in order."""
    items = page.locator("#messages li")
    # NOTE: an item is <b>name</b> then the text, so its whole text is the two run together.
    expect(items.locator("b")).to_have_text([name for name, _ in messages])
    expect(items).to_have_text([name + text for name, text in messages])


def send(page: Page, text: str) -> None:
    """Type ``text`` into the page's message box and press Send."""
    page.get_by_placeholder("say something").fill(text)
    page.get_by_role("button", name="Send").click()


def _join(listener: ClientConnection, name: str) -> None:
    # NOTE: a client is in the room once its own message has come back to it.
    listener.send("joined")
    assert _receive(listener) == {"name": name, "text": "joined"}


def _receive(listener: ClientConnection) -> dict[str, str]:
    message: dict[str, str] = json.loads(listener.recv(timeout=WAIT_TIMEOUT))
    return message


def test_chat_in_two_browser_pages(
    page: Page, context: BrowserContext, chat_server: Uvicorn
) -> None:
    alice = page
    alice.goto(chat_server.http_url + "/")
    status = alice.locator("#status")
    expect(status).to_have_text("not connected")
    alice.get_by_placeholder("your name").fill("alice")
    alice.get_by_role("button", name="Join").click()
    expect(status).to_have_text("connected")
    send(alice, "hello from chromium")
    expect_messages(alice, ("alice", "hello from chromium"))
    expect(alice.get_by_placeholder("say something")).to_have_value("")

    carol_url = f"{chat_server.ws_url}/ws?name=carol"
    with connect(carol_url, proxy=None, open_timeout=WAIT_TIMEOUT) as carol:
        _join(carol, "carol")
        expect_messages(alice, ("alice", "hello from chromium"), ("carol", "joined"))

        bob = context.new_page()
        bob.goto(chat_server.http_url + "/?name=bob")  # joins from the query string
        expect(bob.locator("#status")).to_have_text("connected")
        send(bob, "bob here")
        expect_messages(bob, ("bob", "bob here"))
        assert _receive(carol) == {"name": "bob", "text": "bob here"}

        markup = "<b>not bold</b> & <script>alert(1)</script>"
        send(alice, markup)
        assert _receive(carol) == {"name": "alice", "text": markup}
        expect_messages(bob, ("bob", "bob here"), ("alice", markup))

    expect_messages(
        alice,
        ("alice", "hello from chromium"),
        ("carol", "joined"),
        ("bob", "bob here"),
        ("alice", markup),
    )
    # The text was shown as text: one <b> (the name) per message, no element made from it.
    expect(alice.locator("#messages b")).to_have_count(4)
    expect(alice.locator("#messages script")).to_have_count(0)
