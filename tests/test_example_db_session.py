"""examples/db_session.py: a session per request, committed, rolled back and closed, in both
colours under both interfaces."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from conftest import MakeClient, example_module

from microweb import App, Request
from microweb.testing import TestClient


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    with example_module("db_session.py", "db_session_example") as module:
        yield module


@pytest.fixture
def notes_app(example: ModuleType, tmp_path: Path) -> App:
    app: App = example.create_app(str(tmp_path / "notes.db"))
    return app


def stored(app: App) -> list[str]:
    path = app.state.db.path
    connection = sqlite3.connect(path)
    try:
        return [text for (text,) in connection.execute("SELECT text FROM notes ORDER BY id")]
    finally:
        connection.close()


@pytest.mark.parametrize("prefix", ["", "/async"], ids=["def", "async-def"])
def test_commit_on_success_rollback_on_error(
    make_client: MakeClient, notes_app: App, prefix: str
) -> None:
    with make_client(notes_app) as client:
        created = client.post(f"{prefix}/notes", json={"text": "buy milk"})
        assert created.status_code == 200
        assert created.json()["text"] == "buy milk"
        refused = client.post(f"{prefix}/notes", json={"text": "  "})
        assert refused.status_code == 400
        assert client.get(f"{prefix}/notes").json() == ["buy milk"]
        assert stored(notes_app) == ["buy milk"]
    counts = notes_app.state.db.counts
    assert counts == {"opened": 3, "committed": 2, "rolled_back": 1, "closed": 3}


@pytest.mark.parametrize("body", [{}, [1], {"text": 5}], ids=["no-text", "a-list", "not-a-string"])
@pytest.mark.parametrize("prefix", ["", "/async"], ids=["def", "async-def"])
def test_json_of_the_wrong_shape_is_a_400_not_a_500(
    make_client: MakeClient, notes_app: App, prefix: str, body: object
) -> None:
    with make_client(notes_app) as client:
        refused = client.post(f"{prefix}/notes", json=body)
        assert (refused.status_code, refused.text) == (
            400,
            'expected a JSON object with a string "text"',
        )
        assert client.get(f"{prefix}/notes").json() == []


def test_both_colours_share_one_database(make_client: MakeClient, notes_app: App) -> None:
    client = make_client(notes_app)
    client.post("/notes", json={"text": "from def"})
    client.post("/async/notes", json={"text": "from async def"})
    assert client.get("/notes").json() == ["from def", "from async def"]
    assert client.get("/async/notes").json() == ["from def", "from async def"]


def test_an_unexpected_error_rolls_back_and_closes(
    make_client: MakeClient, notes_app: App, example: ModuleType
) -> None:
    @notes_app.post("/boom")
    def boom(request: Request) -> None:
        request.state.db.execute("INSERT INTO notes (text) VALUES ('lost')")
        raise RuntimeError("boom")  # NOTE: the example's own routes answer bad input with a 400

    client = make_client(notes_app)
    response = client.post("/boom")
    assert response.status_code == 500
    assert stored(notes_app) == []
    counts = notes_app.state.db.counts
    assert counts["rolled_back"] == 1
    assert counts["opened"] == counts["closed"] == 1


def test_skipped_route_gets_no_session(make_client: MakeClient, notes_app: App) -> None:
    assert make_client(notes_app).get("/health").json() == {"ok": True, "db": False}
    assert notes_app.state.db.counts["opened"] == 0


def test_same_answers_under_both_interfaces(example: ModuleType, tmp_path: Path) -> None:
    app: App = example.create_app(str(tmp_path / "notes.db"))
    with TestClient(app, interface="both") as client:
        # NOTE: each request runs twice (WSGI, then ASGI), so only reads compare equal.
        with sqlite3.connect(tmp_path / "notes.db") as connection:
            connection.execute("INSERT INTO notes (text) VALUES ('seeded')")
        connection.close()
        assert client.get("/notes").json() == ["seeded"]
        assert client.get("/async/notes").json() == ["seeded"]
    assert app.state.db.counts == {"opened": 4, "committed": 4, "rolled_back": 0, "closed": 4}


@pytest.mark.parametrize("prefix", ["", "/async"], ids=["def", "async-def"])
def test_a_streamed_body_reads_the_session_which_closes_after_it(
    make_client: MakeClient, notes_app: App, prefix: str
) -> None:
    with make_client(notes_app) as client:
        client.post(f"{prefix}/notes", json={"text": "one"})
        client.post(f"{prefix}/notes", json={"text": "two"})
        response = client.get(f"{prefix}/notes/events")
        assert response.status_code == 200
        assert response.text == "id: 1\ndata: one\n\nid: 2\ndata: two\n\n"
    counts = notes_app.state.db.counts
    assert counts == {"opened": 3, "committed": 3, "rolled_back": 0, "closed": 3}
