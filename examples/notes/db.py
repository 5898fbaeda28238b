"""A plugin that gives each handler with a ``db`` parameter a SQLite connection of its own."""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from microweb import App, Request

Handler = Callable[..., Any]


class Database:
    """Open one connection per request, for the handlers that ask for one.

    A handler asks by having a ``db`` parameter; the plugin looks once, at startup. The
    connection commits when the handler returns, rolls back when it raises, and is closed
    either way. Other routes (static files, event streams) never open one.

    Args:
        path: The SQLite file; its folder is made at startup.
        schemas: SQL scripts run at startup (``CREATE TABLE IF NOT EXISTS ...``).
    """

    name = "db"

    def __init__(self, path: str | Path, *schemas: str) -> None:
        self.path = Path(path)
        self.schemas = schemas

    def setup(self, app: App) -> None:
        """Create the tables when the app starts."""
        app.on_startup(self.create)

    def create(self) -> None:
        """Make the folder and run the schema scripts."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self.connect()) as db, db:
            for schema in self.schemas:
                db.executescript(schema)

    def connect(self) -> sqlite3.Connection:
        """Open a connection whose rows read like mappings: ``row["title"]``."""
        db = sqlite3.connect(self.path)
        db.row_factory = sqlite3.Row
        return db

    def apply(self, handler: Handler, route: Any) -> Handler:
        """Wrap the handlers that take ``db``; leave the others alone."""
        if "db" not in inspect.signature(handler).parameters:
            return handler
        if route.is_async:
            # NOTE: sqlite3 blocks; a def handler runs on a server thread (WSGI) or in the pool
            # (ASGI), never on the event loop.
            raise TypeError(f"{route.template}: a handler that takes db must be a def function")

        @functools.wraps(handler)
        def with_db(request: Request, **params: Any) -> Any:
            with closing(self.connect()) as db, db:
                return handler(request, db=db, **params)

        return with_db
