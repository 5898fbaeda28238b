"""File uploads: an HTML form, a ``def`` handler and an ``async def`` handler that save the file.

``GET /`` shows a multipart form (a file and a text field). ``POST /upload`` reads it with
``request.form()`` in a ``def`` handler; ``POST /upload-async`` with ``await request.aform()`` in
an ``async def`` handler. Both save the file under ``safe_filename(...)`` (never the client's own
name, which may be ``../../etc/passwd``) in a folder made on startup, and answer with JSON.
``POST /upload-stream`` streams the parts with ``request.iter_parts()`` instead: the file goes
to its place chunk by chunk as it arrives, never to a temporary file.

The app's default body limit is 10 MiB; the upload routes raise theirs to 1 GiB with
``limits={"max_body_size": 1 << 30}``. A form's files are kept in memory up to
``Limits.spool_threshold`` (1 MiB, for all of them together); past it they wait in temporary
files, and every temporary file is removed when the request ends.
Waitress receives the whole body (into its own temporary file) before it calls the app, and has
its own cap of 1 GiB per body (``waitress-serve --max-request-body-size``).

Serve it from the repository root with either server, then open http://127.0.0.1:8000/::

    microweb serve examples/upload.py                    # ASGI, Uvicorn
    microweb serve examples/upload.py --server waitress  # WSGI, Waitress

Or upload from the command line::

    curl -F file=@README.md -F note=hi http://127.0.0.1:8000/upload

Files go to ``$MICROWEB_UPLOAD_DIR``, by default ``microweb-uploads`` in the system's temporary
directory. A new upload with the same safe name replaces the old file.
"""

from __future__ import annotations

import asyncio
import html
import os
import tempfile
from pathlib import Path
from typing import Any

from microweb import App, FormData, HTTPError, Request, Response, UploadFile, safe_filename

app = App()

UPLOAD_DIR = Path(
    os.environ.get("MICROWEB_UPLOAD_DIR") or Path(tempfile.gettempdir()) / "microweb-uploads"
)
UPLOAD_LIMITS = {"max_body_size": 1 << 30}

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>microweb upload</title></head>
<body>
  <h1>Upload a file</h1>
  <p>Files are saved in <code>{folder}</code>.</p>
  <form action="/upload" method="post" enctype="multipart/form-data">
    <p><label>File <input type="file" name="file" required></label></p>
    <p><label>Note <input type="text" name="note"></label></p>
    <p>
      <button type="submit">Upload (def handler)</button>
      <button type="submit" formaction="/upload-async">Upload (async def handler)</button>
      <button type="submit" formaction="/upload-stream">Upload (streamed parts)</button>
    </p>
  </form>
</body>
</html>
"""


@app.on_startup
def make_upload_dir() -> None:
    """Create the folder that uploads are saved in."""
    UPLOAD_DIR.mkdir(parents=True, exist_ok=True)


@app.get("/")
def index(request: Request) -> Response:
    """Show the upload form."""
    return Response.html(PAGE.format(folder=html.escape(str(UPLOAD_DIR))))


def _file_part(form: FormData) -> UploadFile:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPError(400, "the form needs a file part named 'file'")
    return upload


def _saved(form: FormData, upload: UploadFile, safe_name: str, size: int) -> dict[str, Any]:
    note = form.get("note")
    return {
        "name": upload.filename,
        "safe_name": safe_name,
        "size": size,
        "content_type": upload.content_type,
        "note": note if isinstance(note, str) else None,
    }


@app.post("/upload", limits=UPLOAD_LIMITS)
def upload(request: Request) -> dict[str, Any]:
    """Save the uploaded file, reading the form with the sync twin (this is a ``def`` handler)."""
    form = request.form()
    part = _file_part(form)
    safe_name = safe_filename(part.filename)
    size = part.save(UPLOAD_DIR / safe_name)
    return _saved(form, part, safe_name, size)


@app.post("/upload-async", limits=UPLOAD_LIMITS)
async def upload_async(request: Request) -> dict[str, Any]:
    """Save the uploaded file, reading the form with ``await request.aform()``."""
    form = await request.aform()
    part = _file_part(form)
    safe_name = safe_filename(part.filename)
    # NOTE: copying a large file to disk blocks; do it in a thread, off the event loop.
    size = await asyncio.to_thread(part.save, UPLOAD_DIR / safe_name)
    return _saved(form, part, safe_name, size)


@app.post("/upload-stream", limits=UPLOAD_LIMITS)
def upload_stream(request: Request) -> dict[str, Any]:
    """Save the file as its part streams in, with ``request.iter_parts()`` (nothing spooled)."""
    saved: dict[str, Any] = {"note": None}
    for part in request.iter_parts():
        if part.name == "note" and part.filename is None:
            saved["note"] = part.text()
        if part.name != "file" or part.filename is None:
            continue  # NOTE: another part is skipped, within the form limits
        safe_name = safe_filename(part.filename)
        size = 0
        with open(UPLOAD_DIR / safe_name, "wb") as target:
            for chunk in part.iter_bytes():
                target.write(chunk)
                size += len(chunk)
        saved.update(
            name=part.filename, safe_name=safe_name, size=size, content_type=part.content_type
        )
    if "name" not in saved:
        raise HTTPError(400, "the form needs a file part named 'file'")
    return saved
