"""A worked plugin: one database session per request, committed or rolled back, always closed.

``DBSession`` shows what ``apply()`` is for: per-request I/O that must match the handler's
colour. A ``def`` handler gets a ``def`` wrapper and a blocking ``sqlite3`` connection; an
``async def`` handler gets an ``async def`` wrapper and ``AsyncConnection``, which runs the same
``sqlite3`` calls in a worker thread with ``asyncio.to_thread`` so the event loop never blocks.
Either way the session is in ``request.state.db``; it is committed when the handler returns,
rolled back when it raises (``HTTPError`` included), and closed in every case with
``request.after_response``: after the last byte of the response, so that a streamed body (the
Server-Sent Events of ``/notes/events``) can still read from it. Routes registered with
``config={"db": False}``, and routes that another plugin added, get no session.

Serve it from the repository root with either server (the database is ``notes.db`` in the
current directory, or the file that ``NOTES_DB`` names)::

    microweb serve examples/db_session.py                    # ASGI, Uvicorn
    microweb serve examples/db_session.py --server waitress  # WSGI, Waitress

There is no page at ``/``; try the JSON routes (``/async/...`` are the ``async def`` twins)::

    curl -d '{"text": "buy milk"}' -H 'content-type: application/json' localhost:8000/notes
    curl localhost:8000/notes               # ["buy milk"]
    curl localhost:8000/notes/events        # the same notes as Server-Sent Events
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from microweb import App, HTTPError, Request, Response, ServerSentEvent

Handler = Callable[..., Any]
Row = tuple[Any, ...]


class AsyncConnection:
    """An async face over one ``sqlite3`` connection: every call runs in a worker thread.

    A stand-in for a real async driver (``aiosqlite``, ``asyncpg``...), with the same shape:
    ``await execute()``, ``await commit()``, ``await rollback()``, ``await close()``.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    @classmethod
    async def open(cls, path: str) -> AsyncConnection:
        """Connect to the database at ``path`` without blocking the event loop."""
        # NOTE: the calls may run on different pool threads, one after another, never at once.
        connection = await asyncio.to_thread(sqlite3.connect, path, check_same_thread=False)
        return cls(connection)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; return the rows it produced."""
        return await asyncio.to_thread(self._execute, sql, params)

    def _execute(self, sql: str, params: Sequence[Any]) -> list[Row]:
        return self._connection.execute(sql, params).fetchall()

    async def commit(self) -> None:
        """Commit the transaction."""
        await asyncio.to_thread(self._connection.commit)

    async def rollback(self) -> None:
        """Roll the transaction back."""
        await asyncio.to_thread(self._connection.rollback)

    async def close(self) -> None:
        """Close the connection."""
        await asyncio.to_thread(self._connection.close)


class DBSession:
    """Open a database session per request in ``request.state.db``.

    Args:
        path: The SQLite database file.
        schema: SQL run once at startup (``CREATE TABLE IF NOT EXISTS ...``).
    """

    name = "db"

    def __init__(self, path: str, schema: str = "") -> None:
        self.path = path
        self.schema = schema
        self.counts = {"opened": 0, "committed": 0, "rolled_back": 0, "closed": 0}

    def setup(self, app: App) -> None:
        """Create the schema when the app starts."""
        app.on_startup(self.create_schema)

    def create_schema(self) -> None:
        """Run the schema script."""
        with sqlite3.connect(self.path) as connection:
            connection.executescript(self.schema)
        connection.close()

    def apply(self, handler: Handler, route: Any) -> Handler:
        """Wrap ``handler`` in a wrapper of its own colour that owns the session."""
        if route.config.get("db") is False or route.added_by is not None:
            return handler  # NOTE: no session for static files, health checks and such.
        if route.is_async:
            return self._wrap_async(handler)
        return self._wrap_sync(handler)

    def _wrap_sync(self, handler: Handler) -> Handler:
        @functools.wraps(handler)
        def with_session(request: Request, **params: Any) -> Any:
            # NOTE: under ASGI a streamed body is read, and this closed, on other pool threads;
            # one at a time, never at once.
            connection = sqlite3.connect(self.path, check_same_thread=False)
            self.counts["opened"] += 1
            request.state.db = connection
            request.after_response(self._close, connection)
            try:
                result = handler(request, **params)
                connection.commit()
                self.counts["committed"] += 1
                return result
            except BaseException:
                connection.rollback()
                self.counts["rolled_back"] += 1
                raise

        return with_session

    def _close(self, connection: sqlite3.Connection) -> None:
        connection.close()
        self.counts["closed"] += 1

    async def _aclose(self, connection: AsyncConnection) -> None:
        await connection.close()
        self.counts["closed"] += 1

    def _wrap_async(self, handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def with_session(request: Request, **params: Any) -> Any:
            connection = await AsyncConnection.open(self.path)
            self.counts["opened"] += 1
            request.state.db = connection
            request.after_response(self._aclose, connection)
            try:
                result = await handler(request, **params)
                await connection.commit()
                self.counts["committed"] += 1
                return result
            except BaseException:
                await connection.rollback()
                self.counts["rolled_back"] += 1
                raise

        return with_session


SCHEMA = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);"


def add_event_routes(app: App) -> None:
    """Stream the notes as Server-Sent Events, read from the session while they stream."""

    @app.get("/notes/events")
    def note_events(request: Request) -> Response:
        db = request.state.db

        def events() -> Iterator[ServerSentEvent]:
            # NOTE: runs after the handler returned; the session is closed after the last event.
            for note_id, text in db.execute("SELECT id, text FROM notes ORDER BY id"):
                yield ServerSentEvent(text, id=str(note_id))

        return Response.sse(events())

    @app.get("/async/notes/events")
    async def note_events_async(request: Request) -> Response:
        db = request.state.db

        async def events() -> AsyncIterator[ServerSentEvent]:
            for note_id, text in await db.execute("SELECT id, text FROM notes ORDER BY id"):
                yield ServerSentEvent(text, id=str(note_id))

        return Response.sse(events())


def note_text(data: Any) -> str:
    """The ``text`` of a JSON body, or a 400: ``{}`` or ``[1]`` parse too, and must not be a 500."""
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise HTTPError(400, 'expected a JSON object with a string "text"')
    return data["text"]


def create_app(path: str) -> App:
    """Build the notes app on the SQLite file at ``path``."""
    app = App()
    db = app.install(DBSession(path, SCHEMA))
    app.state.db = db

    @app.post("/notes")
    def add_note(request: Request) -> dict[str, Any]:
        text = note_text(request.json())
        cursor = request.state.db.execute("INSERT INTO notes (text) VALUES (?)", (text,))
        if not text.strip():
            raise HTTPError(400, "a note needs text")  # NOTE: the insert is rolled back
        return {"id": cursor.lastrowid, "text": text}

    @app.post("/async/notes")
    async def add_note_async(request: Request) -> dict[str, Any]:
        text = note_text(await request.ajson())
        await request.state.db.execute("INSERT INTO notes (text) VALUES (?)", (text,))
        if not text.strip():
            raise HTTPError(400, "a note needs text")
        [(note_id,)] = await request.state.db.execute("SELECT last_insert_rowid()")
        return {"id": note_id, "text": text}

    @app.get("/notes")
    def list_notes(request: Request) -> list[str]:
        rows = request.state.db.execute("SELECT text FROM notes ORDER BY id").fetchall()
        return [text for (text,) in rows]

    @app.get("/async/notes")
    async def list_notes_async(request: Request) -> list[str]:
        rows = await request.state.db.execute("SELECT text FROM notes ORDER BY id")
        return [text for (text,) in rows]

    add_event_routes(app)

    @app.get("/health", config={"db": False})
    def health(request: Request) -> dict[str, bool]:
        return {"ok": True, "db": hasattr(request.state, "db")}

    return app


app = create_app(os.environ.get("NOTES_DB", "notes.db"))
