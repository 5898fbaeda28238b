"""examples/notes/: a page that reconnects with a Last-Event-ID the feed has not reached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from notes_example import NOTES_DIR, SECRET, imported

from microweb import App
from microweb.testing import TestClient


@pytest.fixture
def notes() -> Iterator[ModuleType]:
    with imported(NOTES_DIR) as module:
        yield module


@pytest.fixture
def app(notes: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> App:
    monkeypatch.setattr(notes.live, "MAX_AGE", 0.3)
    monkeypatch.setattr(notes.live, "POLL", 0.02)
    app: App = notes.create_app(tmp_path / "data", SECRET)
    return app


def test_a_page_back_from_before_a_restart_gets_the_new_notes(
    app: App, interface: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: the stream started after event 42, which this restarted feed had not reached, so a
    # note added since (event 1) never went out. It is added as the stream first looks.
    feed = app.state.feed
    since = feed.since

    def since_then_publish(last: int) -> Any:
        if feed.last == 0:
            feed.publish({"title": "after the restart"})
        return since(last)

    monkeypatch.setattr(feed, "since", since_then_publish)
    with TestClient(app, interface=interface) as client:
        stream = client.get("/events", headers={"last-event-id": "42"}).text
    data = json.dumps({"title": "after the restart"})
    assert stream == f"retry: 2000\n\nevent: note\nid: 1\ndata: {data}\n\n"
