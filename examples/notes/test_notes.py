"""Tests of the notes app under both interfaces: ``pytest test_notes.py``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import app as notes
import auth
import pytest

from microweb import App
from microweb.testing import TestClient

PASSWORD = "correct horse"


@pytest.fixture
def app(tmp_path: Path) -> App:
    """A fresh app over an empty folder, with one user."""
    app = notes.create_app(tmp_path, secret="a-secret-for-the-tests-only")
    app.state.db.create()
    with closing(app.state.db.connect()) as db, db:
        auth.add_user(db, "alice", PASSWORD)
    return app


@pytest.fixture(params=["wsgi", "asgi"])
def client(request: pytest.FixtureRequest, app: App) -> Iterator[TestClient]:
    """A logged-in client, once per interface."""
    with TestClient(app, interface=request.param) as client:
        client.post("/login", data={"name": "alice", "password": PASSWORD})
        yield client


def test_a_note_with_an_attachment(client: TestClient) -> None:
    files = {"attachment": ("digits.txt", b"0123456789", "text/plain")}
    added = client.post("/notes", data={"title": "Milk & eggs"}, files=files)
    assert (added.status_code, added.headers["location"]) == (303, "/notes/1")
    assert "<h1>Milk &amp; eggs</h1>" in client.get("/notes/1").text
    part = client.get("/notes/1/files/1", headers={"range": "bytes=2-4"})
    assert (part.status_code, part.content) == (206, b"234")


def test_the_same_answers_under_both_interfaces(app: App) -> None:
    # NOTE: each request runs twice, so only requests that change nothing; the session
    # cookie is signed with the time, so it may differ by a second.
    with TestClient(app, interface="both", ignore_headers=["set-cookie"]) as client:
        assert client.post("/api/notes", json={"title": "x"}).status_code == 401
        client.post("/login", data={"name": "alice", "password": PASSWORD})
        refused = client.post("/api/notes", json={"title": " "})
        assert refused.status_code == 422
        assert refused.json() == {"errors": {"title": "A note needs a title."}}
        assert "No notes yet." in client.get("/").text
