"""Compare microweb's per-request cost with Falcon, Bottle and Starlette, in one process.

Each framework serves the same three endpoints (see ``bench_apps.py``): a plain-text hello, a small
JSON object, and a route with an ``int`` path parameter. Every app is called through its own WSGI or
ASGI callable with a prebuilt environ or scope, so the numbers are framework overhead only: no
sockets, no HTTP parsing, no server.

Sections:

1. WSGI: microweb (``def`` handlers) vs Falcon (``falcon.App``) vs Bottle.
2. ASGI: microweb (``async def`` handlers) vs Starlette vs Falcon (``falcon.asgi.App``), all awaited
   on one event loop.
3. Colour bridges: microweb with ``def`` and ``async def`` handlers under each interface. An
   ``async def`` handler under WSGI runs on the app's background event loop; a ``def`` handler under
   ASGI runs in the thread pool (or inline on the loop with ``offload=False``).

Ratios are ``peer / microweb``: above 1.0x means microweb is faster.

Usage::

    python bench/compare.py            # under a minute
    python bench/compare.py --quick    # a few seconds, noisier
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bench_apps
from _harness import (
    Timer,
    asgi_call,
    asgi_timer,
    decode_body,
    describe_versions,
    format_table,
    make_environ,
    make_scope,
    measure_many,
    start_app,
    wsgi_call,
    wsgi_timer,
)

SCENARIOS = list(bench_apps.SCENARIOS)


@dataclass(frozen=True)
class Contender:
    """One app under test: a label, its interface and how to build its callable."""

    label: str
    interface: str  # "wsgi" or "asgi"
    build: Callable[[], Any]

    @property
    def key(self) -> str:
        """A unique name for results: label and interface."""
        return f"{self.label}/{self.interface}"


def _microweb(interface: str, colour: str, offload: bool = True) -> Callable[[], Any]:
    def build() -> Any:
        app = bench_apps.microweb_app(colour, offload=offload)
        return app.as_wsgi() if interface == "wsgi" else app.as_asgi()

    return build


MICROWEB_WSGI = Contender("microweb", "wsgi", _microweb("wsgi", "sync"))
MICROWEB_ASGI = Contender("microweb", "asgi", _microweb("asgi", "async"))

WSGI_PEERS = [
    Contender("falcon", "wsgi", bench_apps.falcon_wsgi_app),
    Contender("bottle", "wsgi", bench_apps.bottle_app),
]
ASGI_PEERS = [
    Contender("starlette", "asgi", bench_apps.starlette_app),
    Contender("falcon.asgi", "asgi", bench_apps.falcon_asgi_app),
]
BRIDGES = [
    (MICROWEB_WSGI, "WSGI  def handler        (direct call)"),
    (
        Contender("microweb wsgi async", "wsgi", _microweb("wsgi", "async")),
        "WSGI  async def handler  (app event loop)",
    ),
    (MICROWEB_ASGI, "ASGI  async def handler  (awaited directly)"),
    (
        Contender("microweb asgi def", "asgi", _microweb("asgi", "sync")),
        "ASGI  def handler        (thread pool)",
    ),
    (
        Contender("microweb asgi def inline", "asgi", _microweb("asgi", "sync", offload=False)),
        "ASGI  def handler        (offload=False, inline)",
    ),
]


async def _bare_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, World!"})


def _bare_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Hello, World!"]


class Runner:
    """Build and check every contender, then time them all together in interleaved rounds."""

    def __init__(self, repeats: int, seconds: float) -> None:
        self.repeats = repeats
        self.seconds = seconds
        self.loop = asyncio.new_event_loop()
        self.results: dict[str, dict[str, float | str]] = {}
        self._timers: dict[tuple[str, str], Timer] = {}
        self._closers: list[Callable[[], None]] = []

    def close(self) -> None:
        """Shut every built app down (lifespan shutdown, WSGI ``close()``) and close the loop."""
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as exc:
                print(f"warning: shutdown failed: {exc!r}", file=sys.stderr)
        self.loop.close()

    def _build(self, contender: Contender) -> Any:
        app = contender.build()
        self._closers.append(start_app(app, contender.interface, self.loop))
        return app

    def _timer(self, app: Any, interface: str, path: str) -> tuple[Timer, int, bytes]:
        if interface == "wsgi":
            environ = make_environ(path)
            status, _headers, body = wsgi_call(app, environ)
            return wsgi_timer(app, environ), status, body
        scope = make_scope(path)
        status, _headers, body = self.loop.run_until_complete(asgi_call(app, scope))
        return asgi_timer(app, scope, self.loop), status, body

    def _checked_timer(self, app: Any, interface: str, scenario: str) -> Timer:
        path, expected = bench_apps.SCENARIOS[scenario]
        timer, status, body = self._timer(app, interface, path)
        if status != 200 or decode_body(body, expected) != expected:
            raise AssertionError(f"GET {path} gave {status} {body[:200]!r}, expected {expected!r}")
        return timer

    def prepare(self, contender: Contender) -> None:
        """Build ``contender`` and check each scenario once; failures become error texts."""
        key = contender.key
        if key in self.results:
            return
        row: dict[str, float | str] = {}
        self.results[key] = row
        try:
            app = self._build(contender)
        except Exception as exc:
            row.update(dict.fromkeys(SCENARIOS, f"build failed: {type(exc).__name__}: {exc}"))
            return
        for scenario in SCENARIOS:
            try:
                self._timers[key, scenario] = self._checked_timer(
                    app, contender.interface, scenario
                )
            except Exception as exc:
                row[scenario] = f"{type(exc).__name__}: {exc}"

    def prepare_floor(self, interface: str) -> None:
        """Add the harness's own cost: a bare callable answering hello (key ``floor/<iface>``)."""
        bare = _bare_wsgi if interface == "wsgi" else _bare_asgi
        self.results[f"floor/{interface}"] = {}
        self._timers[f"floor/{interface}", "hello"] = self._timer(bare, interface, "/")[0]

    def measure(self) -> None:
        """Time everything prepared, in interleaved rounds, and store seconds per request."""
        best = measure_many(self._timers, self.repeats, self.seconds)
        for (key, scenario), seconds in best.items():
            self.results[key][scenario] = seconds


def _cell(value: float | str) -> str:
    return f"{value * 1e6:.2f}" if isinstance(value, float) else "ERR"


def _ratio(peer: float | str, base: float | str) -> str:
    if isinstance(peer, float) and isinstance(base, float):
        return f"{peer / base:.2f}x"
    return "n/a"


def _errors(rows: list[tuple[str, dict[str, float | str]]]) -> str:
    failed: dict[tuple[str, str], list[str]] = {}
    for label, row in rows:
        for scenario, value in row.items():
            if isinstance(value, str):
                failed.setdefault((label.strip(), value), []).append(scenario)
    return "\n".join(
        f"  ! {label} [{', '.join(scenarios)}]: {message}"
        for (label, message), scenarios in failed.items()
    )


SECTIONS = {
    "wsgi": ("WSGI", [MICROWEB_WSGI, *WSGI_PEERS]),
    "asgi": ("ASGI", [MICROWEB_ASGI, *ASGI_PEERS]),
}


def _section(runner: Runner, title: str, contenders: list[Contender]) -> None:
    rows = [(contender.label, runner.results[contender.key]) for contender in contenders]
    floor = runner.results[f"floor/{contenders[0].interface}"]["hello"]
    print(f"\n== {title} (µs/request, best of {runner.repeats}) ==")
    table = [[label] + [_cell(row[s]) for s in SCENARIOS] for label, row in rows]
    print(format_table(["app", *SCENARIOS], table))
    print(f"(harness floor, a bare {title} callable answering hello: {_cell(floor)} µs)")
    base_row = rows[0][1]
    for label, row in rows[1:]:
        ratios = "  ".join(f"{s} {_ratio(row[s], base_row[s])}" for s in SCENARIOS)
        print(f"{label}/microweb = {ratios}")
    if errors := _errors(rows):
        print(errors)


def _bridges(runner: Runner) -> None:
    rows = [(label, runner.results[contender.key]) for contender, label in BRIDGES]
    print(f"\n== microweb colour bridges (µs/request, best of {runner.repeats}) ==")
    native = {"WSGI": rows[0][1], "ASGI": rows[2][1]}
    table = []
    for label, row in rows:
        base = native[label[:4]]["hello"]
        cost = row["hello"]
        extra = (
            f"{(cost - base) * 1e6:+.2f}"
            if isinstance(cost, float) and isinstance(base, float)
            else "n/a"
        )
        table.append([label] + [_cell(row[s]) for s in SCENARIOS] + [extra])
    print(format_table(["handler", *SCENARIOS, "hello vs native"], table))
    if errors := _errors(rows):
        print(errors)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short, noisier run (a few seconds)")
    parser.add_argument("--repeats", type=int, help="rounds of measurement (the best is kept)")
    parser.add_argument("--seconds", type=float, help="target seconds per measurement per round")
    parser.add_argument(
        "--only", choices=["wsgi", "asgi", "bridges"], action="append", help="run some sections"
    )
    args = parser.parse_args(argv)
    # NOTE: many short rounds beat few long ones on a shared machine: each measurement gets
    # more chances to land in a quiet moment.
    repeats = args.repeats or (10 if args.quick else 40)
    seconds = args.seconds or (0.008 if args.quick else 0.02)
    sections = args.only or ["wsgi", "asgi", "bridges"]

    runner = Runner(repeats, seconds)
    try:
        for name in ("wsgi", "asgi"):
            if name in sections or "bridges" in sections:
                runner.prepare_floor(name)
                for contender in SECTIONS[name][1]:
                    if name in sections or contender.label == "microweb":
                        runner.prepare(contender)
        if "bridges" in sections:
            for contender, _label in BRIDGES:
                runner.prepare(contender)
        runner.measure()
        print(describe_versions(("microweb", "falcon", "bottle", "starlette")))
        print("Ratios are peer/microweb: above 1.00x means microweb is faster.")
        for name in ("wsgi", "asgi"):
            if name in sections:
                _section(runner, *SECTIONS[name])
        if "bridges" in sections:
            _bridges(runner)
    finally:
        runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
