"""The HTML pages: the list of notes with its form, a note, and its attachments."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import live
import model

from microweb import Request, Response, Router, UploadFile
from microweb.plugins import flash
from microweb.templating import Templates

router = Router()
templates = Templates(Path(__file__).parent / "templates", trim_blocks=True, lstrip_blocks=True)


@router.get("/", name="index")
def index(request: Request, db: sqlite3.Connection) -> Response:
    return show_list(request, db)


def show_list(
    request: Request,
    db: sqlite3.Connection,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    context = {"notes": model.list_notes(db), "form": form or {}, "errors": errors or {}}
    return templates.render(request, "index.html", context, status=422 if errors else 200)


@router.post("/notes", name="add_note")
def add_note(request: Request, db: sqlite3.Connection) -> Response:
    if "user" not in request.session:
        return Response.redirect(request.url_for("login"), status=303)
    form = request.form()
    title, body = form.get("title", ""), form.get("body", "")
    errors = model.check_note(title, body)
    if errors:
        return show_list(request, db, {"title": str(title), "body": str(body)}, errors)
    note_id = model.add_note(db, title, body)
    upload = form.get("attachment")
    if isinstance(upload, UploadFile) and upload.filename:
        model.add_attachment(db, request.app.state.data / "attachments", note_id, upload)
    live.announce(request, note_id, title)
    flash(request, "Note saved.")  # NOTE: base.html shows it on the next page, once.
    # NOTE: 303 turns the POST into a GET: reloading the note's page does not post it again.
    return Response.redirect(request.url_for("note", note_id=note_id), status=303)


@router.get("/notes/{note_id:int}", name="note")
def note(request: Request, note_id: int, db: sqlite3.Connection) -> Response:
    context = {
        "note": model.get_note(db, note_id),
        "attachments": model.list_attachments(db, note_id),
    }
    return templates.render(request, "note.html", context)


@router.get("/notes/{note_id:int}/files/{attachment_id:int}", name="attachment")
def attachment(
    request: Request, note_id: int, attachment_id: int, db: sqlite3.Connection
) -> Response:
    found = model.get_attachment(db, note_id, attachment_id)
    path = request.app.state.data / "attachments" / found["stored"]
    # NOTE: Response.file answers Range requests (206, 416) and conditional ones (304).
    return Response.file(path, filename=found["filename"])
