"""Notes and their attachments: the rules and the queries, shared by the pages and the API."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

from microweb import HTTPError, UploadFile, safe_filename

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attachments (
    id INTEGER PRIMARY KEY,
    note_id INTEGER NOT NULL REFERENCES notes (id),
    filename TEXT NOT NULL,
    stored TEXT NOT NULL,
    size INTEGER NOT NULL
);
"""
MAX_TITLE = 200
MAX_BODY = 10_000


def check_note(title: object, body: object) -> dict[str, str]:
    """Return a message for each field that is wrong; an empty dict when the note is fine."""
    errors = {}
    if not isinstance(title, str) or not title.strip():
        errors["title"] = "A note needs a title."
    elif len(title) > MAX_TITLE:
        errors["title"] = f"A title has at most {MAX_TITLE} characters."
    if not isinstance(body, str):
        errors["body"] = "The text must be a string."
    elif len(body) > MAX_BODY:
        errors["body"] = f"The text has at most {MAX_BODY} characters."
    return errors


def add_note(db: sqlite3.Connection, title: str, body: str) -> int:
    """Store a note; return its id."""
    cursor = db.execute("INSERT INTO notes (title, body) VALUES (?, ?)", (title.strip(), body))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def list_notes(db: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every note, the newest first."""
    return db.execute("SELECT id, title, body FROM notes ORDER BY id DESC").fetchall()


def get_note(db: sqlite3.Connection, note_id: int) -> sqlite3.Row:
    """One note, or a 404."""
    note = db.execute("SELECT id, title, body FROM notes WHERE id = ?", (note_id,)).fetchone()
    if note is None:
        raise HTTPError(404, "no such note")
    return note


def add_attachment(db: sqlite3.Connection, folder: Path, note_id: int, upload: UploadFile) -> None:
    """Store an uploaded file under ``folder``, with a name of our own."""
    # NOTE: the client's filename is never a path: safe_filename keeps one harmless component,
    # and the random prefix keeps two uploads of "report.pdf" apart.
    stored = f"{secrets.token_hex(8)}-{safe_filename(upload.filename)}"
    folder.mkdir(parents=True, exist_ok=True)
    upload.save(folder / stored)
    db.execute(
        "INSERT INTO attachments (note_id, filename, stored, size) VALUES (?, ?, ?, ?)",
        (note_id, upload.filename, stored, upload.size),
    )


def list_attachments(db: sqlite3.Connection, note_id: int) -> list[sqlite3.Row]:
    """The attachments of a note, in the order they were added."""
    query = "SELECT id, filename, size FROM attachments WHERE note_id = ? ORDER BY id"
    return db.execute(query, (note_id,)).fetchall()


def get_attachment(db: sqlite3.Connection, note_id: int, attachment_id: int) -> sqlite3.Row:
    """One attachment of a note, or a 404."""
    query = "SELECT filename, stored FROM attachments WHERE note_id = ? AND id = ?"
    attachment = db.execute(query, (note_id, attachment_id)).fetchone()
    if attachment is None:
        raise HTTPError(404, "no such attachment")
    return attachment
