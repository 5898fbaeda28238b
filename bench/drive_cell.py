"""Drive one ASGI cell of ``cells.py`` a given number of times and nothing else, for counters
that see the whole process (valgrind, ``strace -c``): run it for N and for M requests and
divide the difference by N - M, which leaves the start-up out.

Usage::

    valgrind --tool=cachegrind --cache-sim=yes --branch-sim=yes --cachegrind-out-file=/dev/null \\
        python bench/drive_cell.py microweb echo 1200
    python bench/drive_cell.py raw echo 200          # the raw ASGI callable, the floor
"""

from __future__ import annotations

import argparse
import asyncio

from _harness import asgi_timer, make_scope, start_app
from cell_apps import ECHO_BODY, JSON_TYPE, microweb_main, raw_asgi

# NOTE: path, method, body and Content-Type of the cells this drives.
CELLS = {
    "hello": ("/", "GET", b"", ""),
    "json": ("/json", "GET", b"", ""),
    "echo": ("/echo", "POST", ECHO_BODY, JSON_TYPE),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("app", choices=["raw", "microweb"])
    parser.add_argument("cell", choices=sorted(CELLS))
    parser.add_argument("requests", type=int)
    args = parser.parse_args()
    app = raw_asgi if args.app == "raw" else microweb_main("async").as_asgi()
    path, method, body, content_type = CELLS[args.cell]
    loop = asyncio.new_event_loop()
    stop = start_app(app, "asgi", loop)
    scope = make_scope(path, method, body=body, content_type=content_type)
    asgi_timer(app, scope, loop, body)(args.requests)
    stop()
    loop.close()


if __name__ == "__main__":
    main()
