"""WSGI against ASGI, measured on one microweb app: the numbers of docs/wsgi-vs-asgi.md.

The app is ``bench/interfaces_app.py``; it is served by Waitress (WSGI) and Uvicorn (ASGI)
through ``microweb serve``, and by Granian under both interfaces where Granian is installed. One
server at a time runs on a free port of 127.0.0.1, pinned to CPU 0 with ``taskset``, while this
script and ``wrk`` run on CPU 1 (``--no-pin`` to let them share). Servers are stopped by pid.

Sections (``--only`` picks some):

- ``plain``: ``GET /hello/{def,async}`` with 1 to 1,000 wrk connections: requests/s, latency.
  Both colours on every server, so the colour bridges show next to the native colour.
- ``slow``: a handler that waits 50 ms (``time.sleep`` or ``asyncio.sleep``), 1 to 1,000
  connections; Waitress with 4 and 100 threads, Uvicorn with ``async def`` and with ``def``
  handlers in the app's thread pool.
- ``sse``: event streams held open, ramped from 100 towards 10,000 until a server stops taking
  them: streams open, the server's RSS and threads, and whether a new request still gets an
  answer (a probe's latency).
- ``cpu``: the latency of the cheap endpoint while K clients keep a 20 ms CPU-bound handler busy.

Usage::

    python bench/interfaces.py             # the full run: about 12 minutes
    python bench/interfaces.py --quick     # a smoke run, about 2 minutes, into bench/results/quick/
    python bench/interfaces.py --replot bench/results/interfaces.json   # redraw the plots only

The full run writes ``bench/results/interfaces.json`` and the SVG plots in ``docs/img/``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
for _path in (str(REPO_ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(1, _path)

from _interfaces_load import (  # noqa: E402
    Server,
    Streams,
    pin_client,
    probe,
    raise_fd_limit,
    running,
    start_wrk,
    tree_status,
    wrk,
    wrk_result,
)

SECTIONS = ("plain", "slow", "sse", "cpu")
WAITRESS = Server("Waitress (WSGI), 4 threads", "waitress")
WAITRESS_100 = Server("Waitress (WSGI), 100 threads", "waitress", threads=100)
UVICORN = Server("Uvicorn (ASGI)", "uvicorn")
GRANIAN_WSGI = Server("Granian WSGI", "granian-wsgi")
GRANIAN_ASGI = Server("Granian ASGI", "granian-asgi")
HAS_GRANIAN = importlib.util.find_spec("granian") is not None
PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class Plan:
    """How long and how wide each section runs."""

    clients: tuple[int, ...]
    plain_seconds: int
    slow_clients: tuple[int, ...]
    slow_seconds: int
    streams: tuple[int, ...]
    stream_wait: int
    hammers: tuple[int, ...]
    cpu_seconds: int


FULL = Plan(
    clients=(1, 4, 16, 64, 256, 1000),
    plain_seconds=3,
    slow_clients=(1, 10, 30, 100, 300, 1000),
    slow_seconds=3,
    streams=(100, 300, 1000, 3000, 10000),
    stream_wait=20,
    hammers=(0, 1, 2, 4, 8, 16),
    cpu_seconds=4,
)
QUICK = Plan(
    clients=(1, 32, 1000),
    plain_seconds=1,
    slow_clients=(1, 100, 1000),
    slow_seconds=1,
    streams=(100, 1000),
    stream_wait=5,
    hammers=(0, 4),
    cpu_seconds=2,
)


@dataclass
class Context:
    """What every section needs: whether to pin, and where servers write their logs."""

    pinned: bool
    log: Path


def _servers(*servers: Server) -> list[Server]:
    return [s for s in servers if HAS_GRANIAN or not s.kind.startswith("granian")]


def _series(server: Server, colour: str, **more: Any) -> dict[str, Any]:
    return {
        "label": f"{server.label}, {'async def' if colour == 'async' else 'def'}",
        "server": server.label,
        "interface": server.interface,
        "colour": colour,
        "bridged": colour != server.native,
        "points": [],
        **more,
    }


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _note(text: str) -> None:
    print(text, flush=True)


# -- sections ---------------------------------------------------------------------------------


def run_plain(plan: Plan, ctx: Context) -> list[dict[str, Any]]:
    """Requests/s and latency of ``/hello`` in both colours, as connections grow."""
    found = []
    for server in _servers(WAITRESS, UVICORN, GRANIAN_WSGI, GRANIAN_ASGI):
        with running(server, ctx.pinned, ctx.log) as live:
            wrk(live.port, f"/hello/{server.native}", 16, 1)  # NOTE: warm-up, not kept.
            for colour in ("def", "async"):
                series = _series(server, colour)
                for clients in plan.clients:
                    numbers = wrk(live.port, f"/hello/{colour}", clients, plan.plain_seconds)
                    series["points"].append({"clients": clients, **numbers})
                    _row(series["label"], f"{clients} clients", numbers)
                found.append(series)
    return found


def run_slow(plan: Plan, ctx: Context) -> list[dict[str, Any]]:
    """Requests/s and latency of a 50 ms wait, as connections grow."""
    colours = {
        WAITRESS: ("def", "async"),
        WAITRESS_100: ("def",),
        UVICORN: ("async", "def"),
        GRANIAN_WSGI: ("def",),
        GRANIAN_ASGI: ("async",),
    }
    found = []
    for server in _servers(*colours):
        with running(server, ctx.pinned, ctx.log) as live:
            for colour in colours[server]:
                series = _series(server, colour)
                for clients in plan.slow_clients:
                    numbers = wrk(live.port, f"/slow/{colour}", clients, plan.slow_seconds)
                    series["points"].append({"clients": clients, **numbers})
                    _row(series["label"], f"{clients} clients", numbers)
                found.append(series)
    return found


def run_sse(plan: Plan, ctx: Context) -> list[dict[str, Any]]:
    """Event streams held open by one server process, its memory, and a probe's latency."""
    cases = [
        (WAITRESS, "def"),
        (WAITRESS_100, "def"),
        (UVICORN, "async"),
        (UVICORN, "def"),
        (GRANIAN_WSGI, "def"),
        (GRANIAN_ASGI, "async"),
    ]
    found = []
    for server, colour in cases:
        if server.kind.startswith("granian") and not HAS_GRANIAN:
            continue
        with running(server, ctx.pinned, ctx.log) as live:
            series = _series(server, colour)
            series.update(asyncio.run(_ramp(plan, live.pid, live.port, server, colour)))
            found.append(series)
    return found


async def _ramp(plan: Plan, pid: int, port: int, server: Server, colour: str) -> dict[str, Any]:
    native = f"/hello/{server.native}"
    for _ in range(20):
        await probe(port, native, PROBE_TIMEOUT)
    await asyncio.sleep(0.5)
    baseline = tree_status(pid)
    streams = Streams(port, f"/sse/{colour}")
    points = []
    try:
        for target in plan.streams:
            started = time.monotonic()
            await streams.add(target - len(streams.writers), plan.stream_wait)
            opening = time.monotonic() - started
            await asyncio.sleep(1.0)
            status = tree_status(pid)
            probes = [await probe(port, native, PROBE_TIMEOUT) for _ in range(3)]
            answered = [ms for ms in probes if ms is not None]
            point = {
                "requested": target,
                "open": streams.open,
                "opening_s": round(opening, 2),
                "rss_kib": status["rss_kib"],
                "threads": status["threads"],
                "probe_ms": statistics.median(answered) if answered else None,
                "probe_failures": len(probes) - len(answered),
            }
            points.append(point)
            _note(
                f"  {server.label}, {colour}: {target:>6} asked, {streams.open:>6} open, "
                f"RSS {status['rss_kib'] / 1024:7.1f} MiB, {status['threads']:>4} threads, "
                f"probe {_ms(point['probe_ms'])} ({point['probe_failures']} failed)"
            )
            if streams.open < 0.9 * target:
                break
    finally:
        await streams.close()
    return {"baseline": baseline, "points": points}


def run_cpu(plan: Plan, ctx: Context) -> list[dict[str, Any]]:
    """Latency of the cheap endpoint while K clients keep the 20 ms CPU handler busy."""
    cases = {
        WAITRESS: ("def",),
        UVICORN: ("async", "def"),
        GRANIAN_WSGI: ("def",),
        GRANIAN_ASGI: ("async",),
    }
    found = []
    for server in _servers(*cases):
        with running(server, ctx.pinned, ctx.log) as live:
            for colour in cases[server]:
                series = _series(server, colour, probe_path=f"/hello/{server.native}")
                for hammers in plan.hammers:
                    point = asyncio.run(_under_cpu(live.port, server, colour, hammers, plan))
                    series["points"].append(point)
                    _note(
                        f"  {series['label']}: {hammers:>2} CPU clients, probe p50 "
                        f"{_ms(point['probe_p50'])} p99 {_ms(point['probe_p99'])}, "
                        f"CPU endpoint {point['cpu_rps']:.0f} req/s"
                    )
                found.append(series)
    return found


async def _under_cpu(port: int, server: Server, colour: str, hammers: int, plan: Plan) -> dict:
    load = None
    if hammers:
        load = start_wrk(port, f"/cpu/{colour}", hammers, plan.cpu_seconds + 1, timeout=10)
        await asyncio.sleep(0.3)
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + plan.cpu_seconds
    while time.monotonic() < deadline:
        ms = await probe(port, f"/hello/{server.native}", PROBE_TIMEOUT)
        if ms is None:
            failures += 1
        else:
            latencies.append(ms)
        await asyncio.sleep(0.02)
    cpu = await asyncio.to_thread(wrk_result, load) if load else {"rps": 0.0}
    latencies.sort()
    return {
        "hammers": hammers,
        "probes": len(latencies),
        "probe_failures": failures,
        "probe_p50": statistics.median(latencies) if latencies else None,
        "probe_p99": latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
        "cpu_rps": cpu["rps"],
    }


RUNNERS: dict[str, Callable[[Plan, Context], list[dict[str, Any]]]] = {
    "plain": run_plain,
    "slow": run_slow,
    "sse": run_sse,
    "cpu": run_cpu,
}


# -- reporting --------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "   --   " if value is None else f"{value:7.1f}ms"


def _row(label: str, what: str, numbers: dict[str, Any]) -> None:
    errors = numbers["errors"] or {}
    bad = sum(errors.values()) if errors else "?"
    _note(
        f"  {label}: {what:>13}: {numbers['rps']:8.0f} req/s, p50 {_ms(numbers['p50'])}, "
        f"p99 {_ms(numbers['p99'])}, errors {bad}"
    )


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("microweb", "waitress", "uvicorn", "granian", "httptools", "h11", "matplotlib"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    wrk_line = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    found["wrk"] = (wrk_line.stdout or wrk_line.stderr).split(" [")[0].strip()
    return found


def _machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (x.split(":", 1)[1].strip() for x in cpuinfo.splitlines() if "model name" in x), "?"
    )
    commit = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "memory_mib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20,
        "commit": commit or "?",
    }


def _cpu_handler_ms() -> float:
    from interfaces_app import burn

    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        burn()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (about 2 min)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run these sections")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client")
    parser.add_argument("--json", type=Path, help="where to write the numbers")
    parser.add_argument("--img-dir", type=Path, help="where to draw the SVG plots")
    parser.add_argument("--replot", type=Path, metavar="JSON", help="only redraw from JSON")
    return parser


def main() -> int:
    """Run the sections, write the JSON, draw the plots."""
    args = _parser().parse_args()
    quick_dir = BENCH_DIR / "results" / "quick"
    json_path = args.json or (
        quick_dir / "interfaces.json" if args.quick else BENCH_DIR / "results" / "interfaces.json"
    )
    img_dir = args.img_dir or (quick_dir if args.quick else REPO_ROOT / "docs" / "img")
    if args.replot:
        return _draw(json.loads(args.replot.read_text()), img_dir)
    plan = QUICK if args.quick else FULL
    pinned = not args.no_pin and pin_client()
    fd_limit = raise_fd_limit()
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": shlex.join(["python", "bench/interfaces.py", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": _versions(),
        "pinned": pinned,
        "fd_limit": fd_limit,
        "cpu_handler_ms": _cpu_handler_ms(),
        "plan": plan.__dict__,
        "loadavg": {"start": _loadavg()},
    }
    _note(f"{results['machine']}\n{results['versions']}\npinned: {pinned}, fd limit {fd_limit}")
    with tempfile.TemporaryDirectory() as logs:
        ctx = Context(pinned, Path(logs) / "servers.log")
        for name in args.only or SECTIONS:
            _note(f"\n== {name} (load average {_loadavg()}) ==")
            results[name] = RUNNERS[name](plan, ctx)
    results["loadavg"]["end"] = _loadavg()
    results["seconds"] = round(time.monotonic() - started)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    _note(f"\n{results['seconds']} s; numbers in {json_path}")
    return _draw(results, img_dir)


def _draw(results: dict[str, Any], img_dir: Path) -> int:
    try:
        from _interfaces_plot import draw_all
    except ImportError as exc:
        print(f"no plots: {exc} (pip install matplotlib)", file=sys.stderr)
        return 1
    for path in draw_all(results, img_dir):
        _note(f"drew {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
