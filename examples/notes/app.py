"""A small notes app: pages, a JSON API, attachments, live updates and logging in.

It needs Jinja2 (microweb's ``jinja`` extra: ``pip install -e '.[jinja]'`` in the clone). Serve
it from the repository root under either server::

    microweb serve examples/notes/app.py                    # ASGI, Uvicorn
    microweb serve examples/notes/app.py --server waitress  # WSGI, Waitress

Anyone may read the notes; to add some, log in as a user made first with
``python examples/notes/auth.py NAME``, which asks for the password (there is no sign-up page).
Settings come from the environment: ``NOTES_DATA`` (the folder for the database and the
attachments, ``notes-data`` by default) and ``NOTES_SECRET`` (the key that signs session
cookies). The tutorial (docs/tutorial/) builds this app step by step.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import api
import auth
import live
import model
import pages
from db import Database

from microweb import App
from microweb.plugins import CSRF, Sessions, Static


def create_app(data: str | Path, secret: str | None = None) -> App:
    """Build the app over the folder ``data``; sessions are signed with ``secret``."""
    if secret is None:
        # NOTE: sessions then last until a restart, and differ between worker processes.
        logging.getLogger("notes").warning("NOTES_SECRET is not set: using a random secret")
        secret = secrets.token_hex(32)
    app = App()
    app.state.data = Path(data)
    app.state.feed = live.Feed()
    app.install(CSRF())  # NOTE: first, so that a refused request opens no database connection.
    app.state.db = app.install(Database(app.state.data / "notes.db", model.SCHEMA, auth.SCHEMA))
    app.install(Sessions(secret))
    app.install(Static(Path(__file__).parent / "static"))
    app.include(pages.router)
    app.include(api.router)
    app.include(live.router)
    app.include(auth.router)
    return app


app = create_app(os.environ.get("NOTES_DATA", "notes-data"), os.environ.get("NOTES_SECRET"))
