"""Drive one cell of ``cells.py`` a given number of times and nothing else, for counters
that see the whole process (valgrind, ``strace -c``): run it for N and for M requests and
divide the difference by N - M, which leaves the start-up out.

Usage::

    valgrind --tool=cachegrind --cache-sim=yes --branch-sim=yes --cachegrind-out-file=/dev/null \\
        python bench/drive_cell.py microweb echo 1200
    python bench/drive_cell.py raw echo 200          # the raw ASGI callable, the floor
    python bench/drive_cell.py falcon upload 12      # Falcon's ASGI app; microweb's upload
                                                     # is its aiter_parts() row
    python bench/drive_cell.py microweb form 12      # the same upload, microweb's aform() row
    python bench/drive_cell.py --interface wsgi microweb hello 1200   # the WSGI row, def handlers

ASGI by default; ``--interface wsgi`` drives the WSGI callables instead (microweb's ``def``
handlers, the raw WSGI floor, ``falcon.App``), as ``cells.py`` does. ``--message-size`` sets the
size of the request's ``http.request`` messages (the upload's; ASGI only).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from _harness import BODY_CHUNK, asgi_timer, make_environ, make_scope, start_app, wsgi_timer
from cell_apps import (
    ECHO_BODY,
    JSON_TYPE,
    UPLOAD_BODY,
    UPLOAD_TYPE,
    microweb_main,
    microweb_parts,
    raw_asgi,
    raw_wsgi,
)
from cell_peers import falcon_asgi_main, falcon_main

# NOTE: path, method, body and Content-Type of the cells this drives.
CELLS = {
    "hello": ("/", "GET", b"", ""),
    "json": ("/json", "GET", b"", ""),
    "echo": ("/echo", "POST", ECHO_BODY, JSON_TYPE),
    "upload": ("/upload", "POST", UPLOAD_BODY, UPLOAD_TYPE),
    # NOTE: the upload again, which microweb's main app reads with aform(); for raw and Falcon
    # it is the upload.
    "form": ("/upload", "POST", UPLOAD_BODY, UPLOAD_TYPE),
}


def _app(name: str, cell: str, interface: str) -> Any:
    """The callable of app ``name`` for ``cell`` under ``interface`` (microweb's with ``def``
    handlers under WSGI, ``async def`` ones under ASGI)."""
    wsgi = interface == "wsgi"
    if name == "raw":
        return raw_wsgi if wsgi else raw_asgi
    if name == "falcon":
        return falcon_main() if wsgi else falcon_asgi_main()
    app = (microweb_parts if cell == "upload" else microweb_main)("sync" if wsgi else "async")
    return app.as_wsgi() if wsgi else app.as_asgi()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("app", choices=["raw", "microweb", "falcon"])
    parser.add_argument("cell", choices=sorted(CELLS))
    parser.add_argument("requests", type=int)
    parser.add_argument("--interface", choices=["asgi", "wsgi"], default="asgi")
    parser.add_argument("--message-size", type=int, default=BODY_CHUNK)
    args = parser.parse_args()
    path, method, body, content_type = CELLS[args.cell]
    loop = asyncio.new_event_loop()
    app = _app(args.app, args.cell, args.interface)
    stop = start_app(app, args.interface, loop)
    if args.interface == "wsgi":
        environ = make_environ(path, method, body=body, content_type=content_type)
        wsgi_timer(app, environ)(args.requests)
    else:
        scope = make_scope(path, method, body=body, content_type=content_type)
        asgi_timer(app, scope, loop, body, args.message_size)(args.requests)
    stop()
    loop.close()


if __name__ == "__main__":
    main()
