"""docs/tutorial/: the code of every step works, and the last step is examples/notes/.

Each step page shows, as titled blocks, the files that the step adds or changes (see the top of
test_docs.py). A step's app is the files of steps 1 to N, a later step's version of a file
replacing an earlier one; each step gets a check of what it adds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from types import ModuleType

import pytest
from notes_example import NOTES_DIR, SECRET, imported
from test_docs import DOCS, FILE_INFO, blocks_of, run_pytest

from microweb.testing import TestClient

STEPS = sorted((DOCS / "tutorial").glob("[0-9]-*.md"))
BOTH = {"interface": "both", "ignore_headers": ["set-cookie"]}


def files_of(page: Path) -> dict[str, str]:
    """The files a step page shows: path in the app's folder -> content."""
    files = {}
    for block in blocks_of(page):
        named = FILE_INFO.fullmatch(block.info)
        if named:
            assert named.group(1) not in files, f"{block.id}: {named.group(1)} shown twice"
            files[named.group(1)] = block.code
    return files


def app_after(step: int) -> dict[str, str]:
    """The app's files after ``step`` (1-based)."""
    files: dict[str, str] = {}
    for page in STEPS[:step]:
        files.update(files_of(page))
    return files


def write(files: dict[str, str], folder: Path) -> None:
    for name, code in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(code, encoding="utf-8")


@pytest.fixture
def step_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[int], ModuleType]]:
    """Import ``app.py`` of a step, with its data folder under ``tmp_path``."""
    monkeypatch.setenv("NOTES_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("NOTES_SECRET", SECRET)
    folder = tmp_path / "app"
    folders = []

    def load(step: int) -> ModuleType:
        write(app_after(step), folder)
        context = imported(folder)
        folders.append(context)
        return context.__enter__()

    yield load
    for context in folders:
        context.__exit__(None, None, None)


def log_in(module: ModuleType, client: TestClient) -> None:
    with closing(module.app.state.db.connect()) as db, db:
        sys.modules["auth"].add_user(db, "alice", "pw")
    answer = client.post("/login", data={"name": "alice", "password": "pw"})
    assert answer.status_code == 303


def test_the_tutorial_has_nine_steps() -> None:
    assert [page.name[0] for page in STEPS] == [str(n) for n in range(1, 10)]
    assert all(files_of(page) for page in STEPS)


def test_step_1_routes_and_templates(step_app: Callable[[int], ModuleType]) -> None:
    with TestClient(step_app(1).app, interface="both") as client:
        page = client.get("/")
        assert '<a href="/notes/1">Milk &amp; eggs</a>' in page.text
        assert "&lt;b&gt;Not bold&lt;/b&gt;" in page.text
        assert "<h1>Milk &amp; eggs</h1>" in client.get("/notes/1").text
        assert client.get("/notes/3").status_code == 404
        assert client.get("/static/style.css").status_code == 200


def test_step_2_sqlite_through_a_plugin(step_app: Callable[[int], ModuleType]) -> None:
    module = step_app(2)
    with TestClient(module.app, interface="both") as client:
        assert "No notes yet." in client.get("/").text
        with closing(module.app.state.db.connect()) as db, db:
            module.model.add_note(db, "From SQL", "")
        assert '<a href="/notes/1">From SQL</a>' in client.get("/").text
        assert client.get("/notes/2").status_code == 404


def test_step_3_forms_and_redirect_after_post(step_app: Callable[[int], ModuleType]) -> None:
    module = step_app(3)
    with TestClient(module.app, interface="both") as client:
        refused = client.post("/notes", data={"title": " ", "body": "<i>kept</i>"})
        assert refused.status_code == 422
        assert "A note needs a title." in refused.text
        assert "&lt;i&gt;kept&lt;/i&gt;" in refused.text
    with TestClient(module.app) as client:
        added = client.post("/notes", data={"title": "Posted"}, follow_redirects=True)
        assert "<h1>Posted</h1>" in added.text
        assert str(added.url).endswith("/notes/1")


def test_step_4_json_api(step_app: Callable[[int], ModuleType]) -> None:
    module = step_app(4)
    with TestClient(module.app) as client:
        created = client.post("/api/notes", json={"title": "API"})
        assert (created.status_code, created.headers["location"]) == (201, "/notes/1")
    with TestClient(module.app, interface="both") as client:
        assert client.get("/api/notes").json()[0]["title"] == "API"
        refused = client.post("/api/notes", json={"title": "x" * 201})
        assert refused.status_code == 422
        assert list(refused.json()["errors"]) == ["title"]


def test_step_5_attachments_with_range(step_app: Callable[[int], ModuleType]) -> None:
    module = step_app(5)
    with TestClient(module.app) as client:
        files = {"attachment": ("../a.txt", b"0123456789", "text/plain")}
        added = client.post("/notes", data={"title": "With a file"}, files=files)
        assert added.headers["location"] == "/notes/1"
    with TestClient(module.app, interface="both") as client:
        assert ">../a.txt</a>" in client.get("/notes/1").text
        part = client.get("/notes/1/files/1", headers={"range": "bytes=3-5"})
        assert (part.status_code, part.content) == (206, b"345")


def test_step_6_live_updates(
    step_app: Callable[[int], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = step_app(6)
    monkeypatch.setattr(module.live, "MAX_AGE", 0.2)
    with (
        TestClient(module.app, interface="asgi") as client,
        client.websocket_connect("/ws") as ws,
    ):
        client.post("/api/notes", json={"title": "Live"})
        assert ws.receive_json()["title"] == "Live"
    with TestClient(module.app, interface="both") as client:
        stream = client.get("/events", headers={"last-event-id": "0"}).text
        assert 'event: note\nid: 1\ndata: {"id": 1, "title": "Live"' in stream
        assert "live.js" in client.get("/").text


def test_step_7_login_with_sessions(step_app: Callable[[int], ModuleType]) -> None:
    module = step_app(7)
    with TestClient(module.app, **BOTH) as client:
        assert client.post("/notes", data={"title": "x"}).headers["location"] == "/login"
        assert client.post("/api/notes", json={"title": "x"}).status_code == 401
        log_in(module, client)
        assert "Log out" in client.get("/").text
        assert client.post("/api/notes", json={"title": ""}).status_code == 422


def test_step_8_the_tests_pass(tmp_path: Path) -> None:
    write(app_after(8), tmp_path)
    assert "3 passed" in run_pytest("test_notes.py", tmp_path)


def example_files() -> dict[str, str]:
    return {
        path.relative_to(NOTES_DIR).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(NOTES_DIR.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_step_9_leaves_exactly_the_example() -> None:
    # NOTE: smoke.py, the last step's file, runs against real servers in test_servers_notes.py.
    tutorial, example = app_after(len(STEPS)), example_files()
    assert sorted(tutorial) == sorted(example)
    assert [name for name in tutorial if tutorial[name] != example[name]] == []
