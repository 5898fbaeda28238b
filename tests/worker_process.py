"""A server's worker process, as Granian makes one, for ``test_lifespan.py``.

Granian's workers are ``multiprocessing`` children made by ``fork``, which end with
``os._exit()`` once their work is done: no ``atexit`` handler runs there. Run as a script (in
a process of its own, which has no other thread to fork), this makes one such worker, which
serves one request with a WSGI app and returns, and exits with the worker's status.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

from drive import wsgi_get

from microweb import App, Request


def serve_one_request(events: str) -> None:
    """Make the WSGI callable of an app with hooks, answer one request, and return.

    Args:
        events: A file each hook appends its name to.
    """
    log = Path(events)
    app = App()

    @app.on_startup
    def startup() -> None:
        with log.open("a") as file:
            file.write("startup\n")

    @app.on_shutdown
    async def shutdown() -> None:
        with log.open("a") as file:
            file.write("shutdown\n")

    @app.get("/")
    def hello(request: Request) -> str:
        return "hello"

    assert wsgi_get(app.as_wsgi(), "/") == ("200 OK", b"hello")


if __name__ == "__main__":
    worker = multiprocessing.get_context("fork").Process(
        target=serve_one_request, args=(sys.argv[1],)
    )
    worker.start()
    worker.join()
    sys.exit(worker.exitcode)
