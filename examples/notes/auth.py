"""Users and logging in: passwords kept as scrypt hashes, the user's name in the session.

Add a user from the command line (it asks for the password)::

    NOTES_DATA=notes-data python auth.py alice
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import secrets
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

from pages import templates

from microweb import Request, Response, Router

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password TEXT NOT NULL
);
"""
router = Router()


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Return ``scrypt$salt$hash`` for ``password``, with a new random salt by default."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Tell whether ``password`` is the one ``stored`` was made from."""
    salt = bytes.fromhex(stored.split("$")[1])
    return hmac.compare_digest(hash_password(password, salt), stored)


# NOTE: checked against when the name is unknown, so that it takes as long as a wrong password.
UNKNOWN_USER = hash_password(secrets.token_hex(16))


def add_user(db: sqlite3.Connection, name: str, password: str) -> None:
    """Store a user, or give an existing one a new password."""
    db.execute("INSERT OR REPLACE INTO users VALUES (?, ?)", (name, hash_password(password)))


@router.get("/login", name="login")
def login_page(request: Request) -> Response:
    return templates.render(request, "login.html", {"name": "", "error": None})


@router.post("/login")
def login(request: Request, db: sqlite3.Connection) -> Response:
    form = request.form()
    name, password = form.fields.get("name", ""), form.fields.get("password", "")
    row = db.execute("SELECT password FROM users WHERE name = ?", (name,)).fetchone()
    stored = row["password"] if row else UNKNOWN_USER
    if not check_password(password, stored) or row is None:
        context = {"name": name, "error": "Wrong name or password."}
        return templates.render(request, "login.html", context, status=400)
    request.session.clear()  # nothing kept from before the login (a planted session's keys)
    request.session["user"] = name
    return Response.redirect(request.url_for("index"), status=303)


@router.post("/logout", name="logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return Response.redirect(request.url_for("index"), status=303)


if __name__ == "__main__":
    import app  # the same database file as the server: NOTES_DATA

    database = app.app.state.db
    database.create()
    with closing(database.connect()) as connection, connection:
        add_user(connection, sys.argv[1], getpass.getpass())
    print(f"user {sys.argv[1]!r} saved in {Path(database.path).resolve()}")
