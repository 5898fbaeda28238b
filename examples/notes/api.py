"""The JSON API: list, read and add notes; a note that breaks the rules gets 422."""

from __future__ import annotations

import sqlite3
from typing import Any

import live
import model

from microweb import HTTPError, Request, Response, Router

router = Router(prefix="/api")


def as_json(request: Request, note: sqlite3.Row) -> dict[str, Any]:
    url = request.url_for("note", note_id=note["id"])
    return {"id": note["id"], "title": note["title"], "body": note["body"], "url": url}


@router.get("/notes")
def list_notes(request: Request, db: sqlite3.Connection) -> list[dict[str, Any]]:
    return [as_json(request, note) for note in model.list_notes(db)]


@router.get("/notes/{note_id:int}")
def get_note(request: Request, note_id: int, db: sqlite3.Connection) -> dict[str, Any]:
    return as_json(request, model.get_note(db, note_id))


@router.post("/notes", name="api_add_note")
def add_note(request: Request, db: sqlite3.Connection) -> Response:
    if "user" not in request.session:
        raise HTTPError(401, "log in first")
    data = request.json()  # NOTE: a body that is not JSON gets 400 (415 for another type)
    if not isinstance(data, dict):
        return Response.json({"errors": {"": "Send a JSON object."}}, status=422)
    title, body = data.get("title"), data.get("body", "")
    errors = model.check_note(title, body)
    if errors:
        return Response.json({"errors": errors}, status=422)
    note_id = model.add_note(db, title, body)
    live.announce(request, note_id, title)
    created = as_json(request, model.get_note(db, note_id))
    return Response.json(created, status=201, headers={"location": created["url"]})
