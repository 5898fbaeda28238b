"""The notes example in a real headless Chromium, served by ``microweb serve`` (Uvicorn, Waitress).

One page logs in and adds a note with an attachment through the form; a second page, in another
browser context (no session), shows the note as it is added, through Server-Sent Events and
without a reload; then the first page downloads the attachment and the bytes are checked.

Skipped when Playwright or Chromium is missing (see tests/test_chat_browser.py).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pytest_playwright", reason="Playwright is missing: pip install -e '.[test]'")

from playwright.sync_api import Page, expect
from pytest_playwright.pytest_playwright import CreateContextCallback
from servers import HOST, REPO_ROOT, environment, free_port, running

NOTES_DIR = REPO_ROOT / "examples" / "notes"
USER, PASSWORD = "alice", "correct horse battery staple"
# NOTE: every byte value, so that any decoding or newline translation on the way shows.
ATTACHMENT = bytes(range(256)) * 40
ATTACHMENT_NAME = "données 1.bin"  # non-ASCII: sent as Content-Disposition filename*
TITLE = "<i>Live</i> & well"  # markup in a title must reach the other page as text

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(not NOTES_DIR.exists(), reason="examples/notes/ is not in this tree"),
]

# NOTE: the same calls as `python auth.py NAME`, which asks for the password on a terminal.
ADD_USER = """
import sys
from contextlib import closing

import app
import auth

database = app.app.state.db
database.create()
with closing(database.connect()) as connection, connection:
    auth.add_user(connection, sys.argv[1], sys.argv[2])
"""


@pytest.fixture(scope="module", params=["uvicorn", "waitress"])
def notes_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The root URL of the notes example served by ``microweb serve`` over a new data folder."""
    tmp_path = tmp_path_factory.mktemp(f"notes-{request.param}")
    env = environment(NOTES_DATA=str(tmp_path / "data"), NOTES_SECRET="s" * 32)
    subprocess.run(
        [sys.executable, "-c", ADD_USER, USER, PASSWORD],
        cwd=NOTES_DIR,
        env=env,
        check=True,
        capture_output=True,
        timeout=30,
    )
    port = free_port()
    command = [
        *(sys.executable, "-m", "microweb", "serve", str(NOTES_DIR / "app.py")),
        *("--server", str(request.param), "--port", str(port), "--log-level", "warning"),
    ]
    with running(command, port=port, log=tmp_path / "serve.log", env=env):
        yield f"http://{HOST}:{port}"


def log_in(page: Page, base: str) -> None:
    """Log in through the login form; the app answers with the list of notes."""
    page.goto(base + "/login")
    page.get_by_label("Name").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(base + "/")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def open_live_list(page: Page, base: str) -> None:
    """Open the list of notes and wait until its event stream is open on the server."""
    # NOTE: the stream starts after the events the server has when it answers: a note added
    # before that is in the page's HTML instead, and would not show that SSE delivers it.
    with page.expect_response(base + "/events"):
        page.goto(base + "/")
    page.evaluate("window.notReloaded = true")


def add_note(page: Page, body: str) -> None:
    """Fill the form with ``TITLE``, ``body`` and the attachment, and send it."""
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Text").fill(body)
    files = {"name": ATTACHMENT_NAME, "mimeType": "application/octet-stream"}
    page.get_by_label("Attachment").set_input_files({**files, "buffer": ATTACHMENT})
    page.get_by_role("button", name="Add the note").click()


def test_a_note_added_in_one_page_shows_in_another_and_its_attachment_downloads(
    page: Page, new_context: CreateContextCallback, notes_url: str
) -> None:
    reader = new_context().new_page()  # another browser: not logged in
    open_live_list(reader, notes_url)
    titles = reader.locator("#notes li a")
    before = titles.count()

    log_in(page, notes_url)
    add_note(page, "added from chromium")
    # 303 after the POST: the browser is on the new note's page.
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    expect(page.locator("p.body")).to_have_text("added from chromium")
    note_path = page.url.removeprefix(notes_url)

    expect(titles).to_have_count(before + 1)
    expect(titles.first).to_have_text(TITLE)
    expect(titles.first).to_have_attribute("href", note_path)
    expect(reader.locator("#notes i")).to_have_count(0)
    assert reader.evaluate("window.notReloaded") is True

    with page.expect_download() as download_info:
        page.get_by_role("link", name=ATTACHMENT_NAME).click()
    download = download_info.value
    assert download.failure() is None
    assert download.suggested_filename == ATTACHMENT_NAME
    assert Path(download.path()).read_bytes() == ATTACHMENT
