"""Measure every cell of issue 7's table, for every framework and both interfaces, in one run.

Rows: a raw WSGI and a raw ASGI callable doing the least honest work for each cell (the floor),
Falcon (``falcon.App`` and ``falcon.asgi.App``), Starlette, microweb under WSGI with ``def``
handlers and under ASGI with ``async def`` handlers, and microweb with the other colour under each
interface (the bridges). Cells: hello, json, route first and last of 1,000, 20 query params, echo
of a 1 KB JSON body, a 10 MiB multipart upload (see ``cell_apps.py``).

Every app's answer to every cell is checked first (status, media type, decoded body); a cell
answered wrong is reported and not timed. Then all cells of all apps are timed together in
interleaved rounds, and the peak memory of one upload is taken per app with ``tracemalloc``.

Prints µs per request, the ratio of each row to the raw floor of its interface, microweb against
Falcon per cell, the cost of the colour bridges, the upload memory, and the goals of issue 7 as
PASS/MISS lines (informative: the exit status is 0 whatever they say).

Usage::

    python bench/cells.py                    # a minute or two
    python bench/cells.py --quick            # about 10 seconds, noisier
    python bench/cells.py --plot docs/img/performance.svg --json cells.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import queue
import re
import sys
import threading
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import _cells_report as report
import cell_apps
import cell_peers
from _harness import (
    Timer,
    asgi_call,
    asgi_timer,
    decode_body,
    make_environ,
    make_scope,
    measure_many,
    package_version,
    start_app,
    wsgi_call,
    wsgi_timer,
)
from cell_apps import CELLS, Cell

STREAMS = "streams the parts, keeps nothing"
PARTS = "streams the parts (iter_parts/aiter_parts), keeps nothing"
UPLOAD = "upload 10MiB"
SPOOLS = "spools the file to a temporary file past 1 MiB"
FLOOR = "feeds the parser loop chunk by chunk, keeps nothing"


@dataclass(frozen=True)
class Row:
    """One row of the table: an app pair (main and 1,000 routes) behind one interface."""

    key: str
    label: str
    interface: str  # "wsgi" or "asgi"
    main: Callable[[], Any]
    routes: Callable[[], Any]
    upload: str  # how it handles the upload: streams, spools, ...
    bridge: bool = False
    cells: tuple[str, ...] | None = None  # only these cells (None: every cell)


def _microweb(interface: str, colour: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    def serve(app: Any) -> Any:
        return app.as_wsgi() if interface == "wsgi" else app.as_asgi()

    return (
        lambda: serve(cell_apps.microweb_main(colour)),
        lambda: serve(cell_apps.microweb_routes(colour)),
    )


def _parts(interface: str, colour: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    def serve() -> Any:
        app = cell_apps.microweb_parts(colour)
        return app.as_wsgi() if interface == "wsgi" else app.as_asgi()

    return serve, serve


def rows() -> list[Row]:
    """Return the rows in table order: the WSGI group, then the ASGI group."""
    falcon = f"Falcon {package_version('falcon')}"
    starlette = f"Starlette {package_version('starlette')}"
    return [
        Row("raw-wsgi", "raw WSGI (floor)", "wsgi", *_raw("wsgi"), FLOOR),
        Row("falcon-wsgi", f"{falcon} WSGI", "wsgi", *_falcon("wsgi"), STREAMS),
        Row("microweb-wsgi", "microweb WSGI, def", "wsgi", *_microweb("wsgi", "sync"), SPOOLS),
        Row(
            "microweb-wsgi-async",
            "microweb WSGI, async def (bridge)",
            "wsgi",
            *_microweb("wsgi", "async"),
            SPOOLS,
            bridge=True,
        ),
        Row(
            "microweb-wsgi-parts",
            "microweb WSGI, def, iter_parts",
            "wsgi",
            *_parts("wsgi", "sync"),
            PARTS,
            cells=(UPLOAD,),
        ),
        Row("raw-asgi", "raw ASGI (floor)", "asgi", *_raw("asgi"), FLOOR),
        Row("falcon-asgi", f"{falcon} ASGI", "asgi", *_falcon("asgi"), STREAMS),
        Row(
            "starlette",
            starlette,
            "asgi",
            cell_peers.starlette_main,
            cell_peers.starlette_routes,
            SPOOLS,
        ),
        Row(
            "microweb-asgi", "microweb ASGI, async def", "asgi", *_microweb("asgi", "async"), SPOOLS
        ),
        Row(
            "microweb-asgi-def",
            "microweb ASGI, def (bridge)",
            "asgi",
            *_microweb("asgi", "sync"),
            SPOOLS,
            bridge=True,
        ),
        Row(
            "microweb-asgi-parts",
            "microweb ASGI, async def, aiter_parts",
            "asgi",
            *_parts("asgi", "async"),
            PARTS,
            cells=(UPLOAD,),
        ),
    ]


def _raw(interface: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    if interface == "wsgi":
        return (lambda: cell_apps.raw_wsgi), (lambda: cell_apps.raw_wsgi_routes)
    return (lambda: cell_apps.raw_asgi), (lambda: cell_apps.raw_asgi_routes)


def _falcon(interface: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    if interface == "wsgi":
        return cell_peers.falcon_main, cell_peers.falcon_routes
    return cell_peers.falcon_asgi_main, cell_peers.falcon_asgi_routes


# -- the floor of a bridge ---------------------------------------------------------------------


def thread_round_trip() -> tuple[Timer, Callable[[], None]]:
    """Return a timer of bare round trips to another thread, and what stops that thread.

    A bridge hands each request to another thread and waits for the answer: this is the least
    such a hop costs on this machine (two ``queue.SimpleQueue`` and nothing else), measured in
    the same rounds as the bridges, so the report can split a bridge into floor and overhead.
    """
    there: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    back: queue.SimpleQueue[int] = queue.SimpleQueue()

    def echo() -> None:
        while (item := there.get()) is not None:
            back.put(item)

    thread = threading.Thread(target=echo, name="bench-echo", daemon=True)
    thread.start()
    put, get = there.put, back.get

    def run(n: int) -> float:
        started = perf_counter()
        for _ in range(n):
            put(1)
            get()
        return perf_counter() - started

    def stop() -> None:
        there.put(None)
        thread.join(5)

    return run, stop


def loop_round_trip() -> tuple[Timer, Callable[[], None]]:
    """Return a timer of bare round trips through an event loop on another thread, and its stop.

    Each bridge wakes an event loop from another thread (its self-pipe, then ``epoll``): the
    app loop under WSGI, the server's loop under ASGI when the pool's answer comes back. Here
    the loop runs one callback that releases a lock the caller waits on, and nothing else:
    the least a bridge can cost on this machine.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-loop", daemon=True)
    thread.start()
    call_soon = loop.call_soon_threadsafe

    def run(n: int) -> float:
        started = perf_counter()
        for _ in range(n):
            answered = threading.Lock()
            answered.acquire()
            call_soon(answered.release)
            answered.acquire()
        return perf_counter() - started

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

    return run, stop


def _affinity() -> set[int] | None:
    getter = getattr(os, "sched_getaffinity", None)
    return None if getter is None or not Path("/proc/self/task").is_dir() else set(getter(0))


def _pin_threads(cpus: set[int]) -> None:
    """Set the CPUs of every thread of this process (os.sched_setaffinity sets one thread's)."""
    for task in Path("/proc/self/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except OSError:
            continue  # NOTE: a thread that ended meanwhile.


# -- checking and timing ----------------------------------------------------------------------


def wrong_answer(cell: Cell, status: int, headers: dict[str, str], body: bytes) -> str | None:
    """Return why an answer to ``cell`` is wrong, or None when it is right."""
    if status != 200:
        return f"status {status}, body {body[:120]!r}"
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != cell.media_type:
        return f"content-type {headers.get('content-type')!r}, expected {cell.media_type}"
    try:
        decoded = decode_body(body, cell.expected)
    except ValueError as exc:
        return f"undecodable body ({exc}): {body[:120]!r}"
    if decoded != cell.expected:
        return f"body {body[:120]!r}"
    return None


class Runner:
    """Build every row's apps, check each cell once, then time them all in interleaved rounds."""

    def __init__(self, repeats: int, seconds: float) -> None:
        self.repeats, self.seconds = repeats, seconds
        self.loop = asyncio.new_event_loop()
        self.timers: dict[tuple[str, str], Timer] = {}
        self.errors: dict[tuple[str, str], str] = {}
        self.seconds_per_request: dict[tuple[str, str], float] = {}
        self.peak_bytes: dict[str, int] = {}
        self.one_cpu: dict[tuple[str, str], float] = {}
        self._stoppers: list[Callable[[], None]] = []

    def close(self) -> None:
        """Stop every app (lifespan shutdown, WSGI ``close()``) and close the event loop."""
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception as exc:
                print(f"warning: shutdown failed: {exc!r}", file=sys.stderr)
        self.loop.close()

    def _start(self, row: Row, build: Callable[[], Any]) -> Any:
        app = build()
        self._stoppers.append(start_app(app, row.interface, self.loop))
        return app

    def _checked_timer(self, row: Row, app: Any, cell: Cell) -> Timer:
        if row.interface == "wsgi":
            environ = make_environ(cell.path, cell.method, cell.query, cell.body, cell.content_type)
            answer = wsgi_call(app, environ)
            timer = wsgi_timer(app, environ)
        else:
            query = cell.query.encode("ascii")
            scope = make_scope(cell.path, cell.method, query, cell.body, cell.content_type)
            answer = self.loop.run_until_complete(asgi_call(app, scope, cell.body))
            timer = asgi_timer(app, scope, self.loop, cell.body)
        if problem := wrong_answer(cell, *answer):
            raise AssertionError(problem)
        return timer

    def prepare(self, row: Row) -> None:
        """Build ``row``'s apps and check every cell; a wrong answer is kept as an error."""
        try:
            apps = {False: self._start(row, row.main), True: self._start(row, row.routes)}
        except Exception as exc:
            self.errors.update(dict.fromkeys(((row.key, c) for c in CELLS), f"build: {exc!r}"))
            return
        for cell in CELLS.values():
            if row.cells is not None and cell.name not in row.cells:
                continue
            try:
                self.timers[row.key, cell.name] = self._checked_timer(row, apps[cell.routes], cell)
            except Exception as exc:
                self.errors[row.key, cell.name] = f"{type(exc).__name__}: {exc}"

    def add_timer(self, key: tuple[str, str], timer: Timer, stop: Callable[[], None]) -> None:
        """Time ``timer`` with the cells (not a row's: a reference, such as a floor)."""
        self.timers[key] = timer
        self._stoppers.append(stop)

    def measure(self) -> None:
        """Time every checked cell, all together in interleaved rounds."""
        self.seconds_per_request = measure_many(self.timers, self.repeats, self.seconds)

    def measure_on_one_cpu(self) -> None:
        """Time the hello bridges and their floors again with every thread on one CPU.

        On a machine whose idle CPUs sleep deeply (a VM), a hop that wakes a thread on another
        CPU costs that CPU's wake-up, which no code in the process controls; on one CPU no hop
        wakes an idle CPU, so what is left is the bridge's own cost. Linux only (else skipped).
        """
        cpus = _affinity()
        if cpus is None or len(cpus) < 2:
            return
        keys = [report.THREAD_HOP, report.LOOP_HOP]
        for interface in ("wsgi", "asgi"):
            keys += [(report.MICROWEB[interface], "hello"), (report.BRIDGE[interface], "hello")]
        timers = {key: self.timers[key] for key in keys if key in self.timers}
        _pin_threads({min(cpus)})
        try:
            self.one_cpu = measure_many(timers, self.repeats, self.seconds)
        finally:
            _pin_threads(cpus)

    def measure_memory(self, cell: str = UPLOAD) -> None:
        """Take each row's ``tracemalloc`` peak for one request of ``cell``, over the baseline."""
        for (key, name), timer in self.timers.items():
            if name != cell:
                continue
            gc.collect()
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                timer(1)
                self.peak_bytes[key] = tracemalloc.get_traced_memory()[1] - baseline
            finally:
                tracemalloc.stop()


# -- output -----------------------------------------------------------------------------------


def write_json(path: str, runner: Runner, table: list[Row], meta: dict[str, Any]) -> None:
    """Write every number of the run, with how and where it was made, as JSON."""
    ratios = report.ratios(runner.seconds_per_request, table)
    document = {
        **meta,
        "cells": list(CELLS),
        "rows": [
            {
                "key": row.key,
                "label": row.label,
                "interface": row.interface,
                "upload": row.upload,
                "us_per_request": {
                    c: _us(runner.seconds_per_request.get((row.key, c))) for c in CELLS
                },
                "ratio_to_floor": {c: ratios.get((row.key, c)) for c in CELLS},
                "errors": {
                    c: runner.errors[row.key, c] for c in CELLS if (row.key, c) in runner.errors
                },
                "upload_peak_mib": _mib(runner.peak_bytes.get(row.key)),
            }
            for row in table
        ],
        "bridge_floors_us": {
            "thread_round_trip": _us(runner.seconds_per_request.get(report.THREAD_HOP)),
            "loop_round_trip": _us(runner.seconds_per_request.get(report.LOOP_HOP)),
        },
        "one_cpu_us": {"|".join(key): _us(value) for key, value in runner.one_cpu.items()},
        "checks": [
            {"verdict": verdict, "goal": goal}
            for verdict, goal in report.checks(runner.seconds_per_request, table, runner.peak_bytes)
        ],
    }
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nWrote {path}")


def _us(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e6, 3)


def _mib(size: int | None) -> float | None:
    return None if size is None else round(size / 2**20, 2)


def plot(path: str, runner: Runner, table: list[Row], meta: dict[str, Any]) -> None:
    """Draw the ratio table as a grouped bar chart (log scale) with matplotlib, if installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n--plot: matplotlib is not installed (pip install matplotlib); no plot drawn.")
        return
    # NOTE: text as text, not paths, and no date in the file: a small SVG that diffs well.
    plt.rcParams.update({"svg.fonttype": "none"})
    ratios = report.ratios(runner.seconds_per_request, table)
    shown = [row for row in table if not row.key.startswith("raw-")]
    width = 0.8 / len(shown)
    figure, axes = plt.subplots(figsize=(12, 6.5))
    for index, row in enumerate(shown):
        xs = [c + (index - (len(shown) - 1) / 2) * width for c in range(len(CELLS))]
        ys = [ratios.get((row.key, cell)) or 0.0 for cell in CELLS]
        hatch = "//" if row.bridge else None
        axes.bar(xs, ys, width, label=row.label, hatch=hatch)
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_yscale("log")
    axes.set_xticks(range(len(CELLS)), list(CELLS))
    axes.set_ylabel("time / raw callable of the same interface (log)")
    axes.set_title(f"Per-request cost relative to the raw floor (lower is better), {meta['date']}")
    axes.legend(fontsize="small", ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Date": None} if path.endswith(".svg") else None)
    plt.close(figure)
    print(f"\nDrew {path}")


def measure_only(runner: Runner, pattern: re.Pattern[str]) -> int:
    """Time the matching cells alone, in interleaved rounds; print each one's time per request.

    No goals and no ratios to Falcon: the apps of every row are built all the same, so the
    process holds what a full run holds, but the rounds hold only these cells.
    """
    keys = [key for key in runner.timers if pattern.search("|".join(key))]
    if not keys:
        print(f"no cell matches {pattern.pattern!r}", file=sys.stderr)
        return 2
    runner.timers = {key: runner.timers[key] for key in keys}
    runner.measure()
    for (row, cell), seconds in runner.seconds_per_request.items():
        print(f"{row:<24} {cell:<14} {seconds * 1e6:>12.2f} us")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Check, time and report every cell; the exit status is 0 whatever the goals say."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short, noisier run")
    parser.add_argument("--repeats", type=int, help="rounds of measurement (the best is kept)")
    parser.add_argument("--seconds", type=float, help="target seconds per measurement per round")
    parser.add_argument("--plot", metavar="PATH", help="draw the ratio table (needs matplotlib)")
    parser.add_argument("--json", metavar="PATH", help="write every number as JSON")
    parser.add_argument(
        "--only",
        metavar="REGEX",
        help="time only the cells whose 'row|cell' matches (e.g. 'upload'), and print their times",
    )
    args = parser.parse_args(argv)
    # NOTE: many short rounds beat few long ones on a shared machine (see README, Method).
    repeats = args.repeats or (10 if args.quick else 40)
    seconds = args.seconds or (0.008 if args.quick else 0.02)
    meta = report.describe_run(argv if argv is not None else sys.argv[1:], repeats, seconds)
    table = rows()
    runner = Runner(repeats, seconds)
    try:
        for row in table:
            runner.prepare(row)
        if args.only:
            return measure_only(runner, re.compile(args.only))
        runner.add_timer(report.THREAD_HOP, *thread_round_trip())
        runner.add_timer(report.LOOP_HOP, *loop_round_trip())
        runner.measure()
        runner.measure_on_one_cpu()
        runner.measure_memory()
    finally:
        runner.close()
    report.print_all(
        meta, table, runner.seconds_per_request, runner.errors, runner.peak_bytes, runner.one_cpu
    )
    if args.json:
        write_json(args.json, runner, table, meta)
    if args.plot:
        plot(args.plot, runner, table, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
