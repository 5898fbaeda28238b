"""The text report of ``cells.py``: tables, microweb against Falcon, bridges, memory, goals.

Rows are ``cells.Row`` objects (``key``, ``label``, ``interface``, ``upload``, ``bridge``);
results are keyed by ``(row key, cell name)``, in seconds per request.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from _harness import describe_versions, format_table
from cell_apps import CELLS

Results = Mapping[tuple[str, str], float]

FLOOR = {"wsgi": "raw-wsgi", "asgi": "raw-asgi"}
MICROWEB = {"wsgi": "microweb-wsgi", "asgi": "microweb-asgi"}
FALCON = {"wsgi": "falcon-wsgi", "asgi": "falcon-asgi"}
PARTS = {"wsgi": "microweb-wsgi-parts", "asgi": "microweb-asgi-parts"}
UPLOAD = "upload 10MiB"
BRIDGE = {"wsgi": "microweb-wsgi-async", "asgi": "microweb-asgi-def"}
THREAD_HOP = ("thread-hop", "round trip")
"""The key of a bare round trip to another thread and back."""
LOOP_HOP = ("loop-hop", "round trip")
"""The key of the floor of a bridge: a bare round trip through an event loop on another thread."""
# NOTE: goal 4 of issue 7, in µs over the native colour, checked on the hello cell.
BRIDGE_GOAL = {"wsgi": 50.0, "asgi": 60.0}
BRIDGE_TEXT = {
    "wsgi": "WSGI: async def over def (app event loop)",
    "asgi": "ASGI: def over async def (thread pool)",
}


class RowLike(Protocol):
    """What the report reads from a row of ``cells.py``."""

    key: str
    label: str
    interface: str
    upload: str
    bridge: bool
    cells: tuple[str, ...] | None


# -- the run ----------------------------------------------------------------------------------


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_run(argv: list[str], repeats: int, seconds: float) -> dict[str, Any]:
    """Return the command, the date, the machine and the versions of this run."""
    return {
        "command": " ".join(["python bench/cells.py", *argv]),
        "date": datetime.now().astimezone().isoformat(timespec="minutes"),
        "machine": f"{platform.platform()}; {_cpu()}; {os.cpu_count()} CPUs",
        "versions": describe_versions(("microweb", "falcon", "starlette", "multipart")),
        "repeats": repeats,
        "seconds": seconds,
    }


# -- numbers ----------------------------------------------------------------------------------


def ratios(results: Results, rows: Iterable[RowLike]) -> dict[tuple[str, str], float]:
    """Return each measured cell's time over the raw floor's time for the same interface."""
    out = {}
    for row in rows:
        for cell in CELLS:
            value, floor = results.get((row.key, cell)), results.get((FLOOR[row.interface], cell))
            if value is not None and floor:
                out[row.key, cell] = value / floor
    return out


def _us(seconds: float | None) -> str:
    if seconds is None:
        return "ERR"
    value = seconds * 1e6
    return f"{value:.2f}" if value < 1000 else f"{value:,.0f}"


def _x(ratio: float | None) -> str:
    if ratio is None:
        return "ERR"
    if ratio >= 100:
        return f"x{ratio:.0f}"
    return f"x{ratio:.1f}" if ratio >= 10 else f"x{ratio:.2f}"


def _quotient(results: Results, top: tuple[str, str], bottom: tuple[str, str]) -> float | None:
    a, b = results.get(top), results.get(bottom)
    return a / b if a is not None and b else None


def checks(
    results: Results, rows: Iterable[RowLike], peaks: Mapping[str, int] | None = None
) -> list[tuple[str, str]]:
    """Return issue 7's goals as ``(PASS | MISS | n/a, what was checked and the number)``."""
    table = ratios(results, rows)
    out: list[tuple[str, str]] = []

    def verdict(value: float | None, limit: float, text: str) -> None:
        shown = "n/a" if value is None else f"{value:.2f}"
        passed = "n/a" if value is None else ("PASS" if value <= limit else "MISS")
        out.append((passed, f"{text}: {shown} (goal <= {limit:.2f})"))

    verdict(table.get((MICROWEB["wsgi"], "hello")), 2.5, "WSGI hello / raw WSGI")
    verdict(table.get((MICROWEB["asgi"], "hello")), 2.2, "ASGI hello / raw ASGI")
    for interface in ("wsgi", "asgi"):
        name = interface.upper()
        for cell in ("20 query", "echo 1KB"):
            verdict(table.get((MICROWEB[interface], cell)), 1.25, f"{name} {cell} / raw {name}")
        last_first = _quotient(
            results, (MICROWEB[interface], "route last"), (MICROWEB[interface], "route first")
        )
        verdict(last_first, 1.10, f"{name} route last of 1000 / first of 1000")
        call = "form()" if interface == "wsgi" else "aform()"
        upload = table.get((MICROWEB[interface], "upload 10MiB"))
        verdict(upload, 2.0, f"{name} upload, {call} / raw parser loop")
        call = "iter_parts()" if interface == "wsgi" else "aiter_parts()"
        streamed = table.get((PARTS[interface], "upload 10MiB"))
        verdict(streamed, 1.15, f"{name} upload, {call} / raw parser loop")
        peak, floor = (peaks or {}).get(PARTS[interface]), (peaks or {}).get(FLOOR[interface])
        extra = None if peak is None or floor is None else (peak - floor) / 2**20
        verdict(extra, 1.0, f"{name} upload, {call}, peak MiB over the raw parser loop's")
    faster = [
        _quotient(results, (_like_falcon(i, cell), cell), (FALCON[i], cell))
        for i in ("wsgi", "asgi")
        for cell in CELLS
    ]
    for interface, limit in BRIDGE_GOAL.items():
        extra = _bridge_us(results, interface, "hello")
        verdict(extra, limit, f"{BRIDGE_TEXT[interface]}, hello, extra µs")
    wins = sum(1 for q in faster if q is not None and q < 1)
    known = [q for q in faster if q is not None]
    verdict_text = "PASS" if known and wins == len(faster) else "MISS"
    out.append((verdict_text, f"faster than Falcon in every cell, both interfaces: {wins} of 14"))
    return out


# -- printing ---------------------------------------------------------------------------------


def print_all(
    meta: Mapping[str, Any],
    rows: list[RowLike],
    results: Results,
    errors: Mapping[tuple[str, str], str],
    peaks: Mapping[str, int],
    one_cpu: Results | None = None,
) -> None:
    """Print the whole report (``one_cpu``: the hello bridges timed with one CPU, if any)."""
    print(f"{meta['versions']}\n{meta['machine']}\n{meta['date']}: {meta['command']}")
    print(f"In-process, no sockets; best of {meta['repeats']} interleaved rounds.")
    cells = list(CELLS)
    print("\n== µs per request ==")
    print(
        format_table(
            ["app", *cells],
            ([r.label, *(_shown(r, c, _us(results.get((r.key, c)))) for c in cells)] for r in rows),
        )
    )
    table = ratios(results, rows)
    print("\n== ratio to the raw callable of the same interface (lower is better) ==")
    print(
        format_table(
            ["app", *cells],
            ([r.label, *(_shown(r, c, _x(table.get((r.key, c)))) for c in cells)] for r in rows),
        )
    )
    _print_falcon(results)
    _print_bridges(results)
    if one_cpu:
        _print_one_cpu(one_cpu)
    _print_memory(rows, peaks)
    print("\n== goals of issue 7 (informative) ==")
    for verdict, text in checks(results, rows, peaks):
        print(f"{verdict:4}  {text}")
    if errors:
        print("\n== wrong answers (these cells were not timed) ==")
        for (key, cell), message in errors.items():
            print(f"  ! {key} [{cell}]: {message}")


def _shown(row: RowLike, cell: str, text: str) -> str:
    return text if row.cells is None or cell in row.cells else "-"


def _like_falcon(interface: str, cell: str) -> str:
    """The microweb row that does a cell's work as Falcon does it.

    Falcon's upload streams the parts and keeps nothing, as ``iter_parts()`` does; ``form()``
    also writes the file to disk, and has its own goal (at most x2.0 of the raw parser loop).
    """
    return PARTS[interface] if cell == UPLOAD else MICROWEB[interface]


def _print_falcon(results: Results) -> None:
    print("\n== microweb vs Falcon (microweb def under WSGI, async def under ASGI) ==")
    print("(the upload: iter_parts()/aiter_parts(), which stream the parts as Falcon does)")
    for cell in CELLS:
        parts = []
        for interface in ("wsgi", "asgi"):
            row = _like_falcon(interface, cell)
            ratio = _quotient(results, (row, cell), (FALCON[interface], cell))
            if ratio is None:
                parts.append(f"{interface.upper()} n/a")
            elif ratio < 1:
                parts.append(f"{interface.upper()} microweb faster by x{1 / ratio:.2f}")
            else:
                parts.append(f"{interface.upper()} Falcon faster by x{ratio:.2f}")
        print(f"microweb vs Falcon, {cell + ':':14} {'; '.join(parts)}")


def _bridge_us(results: Results, interface: str, cell: str) -> float | None:
    bridged = results.get((BRIDGE[interface], cell))
    native = results.get((MICROWEB[interface], cell))
    return None if bridged is None or native is None else (bridged - native) * 1e6


def _print_bridges(results: Results) -> None:
    print("\n== colour bridges: extra µs per request over the native colour ==")
    table = []
    for interface, label in BRIDGE_TEXT.items():
        row = [label]
        for cell in CELLS:
            extra = _bridge_us(results, interface, cell)
            row.append("ERR" if extra is None else _signed(extra / 1e6))
        table.append(row)
    print(format_table(["bridge", *CELLS], table))
    thread, floor = results.get(THREAD_HOP), results.get(LOOP_HOP)
    if thread is None or floor is None:
        return
    floor_us = floor * 1e6
    print(
        f"Floors, measured in the same rounds: a bare round trip to another thread and back "
        f"(two queue.SimpleQueue) takes {thread * 1e6:.2f} µs on this machine; one through an "
        f"event loop on another thread (call_soon_threadsafe, a lock), what each bridge needs, "
        f"{floor_us:.2f} µs."
    )
    for interface, label in BRIDGE_TEXT.items():
        extra = _bridge_us(results, interface, "hello")
        if extra is None:
            continue
        goal = BRIDGE_GOAL[interface]
        verdict = "PASS" if extra <= goal else "MISS"
        print(
            f"{verdict:4}  {label}, hello: {extra:+.2f} µs (loop floor {floor_us:.2f} µs, "
            f"overhead {extra - floor_us:.2f} µs; goal <= {goal:.0f} µs)"
        )


def _print_one_cpu(results: Results) -> None:
    thread, floor = results.get(THREAD_HOP), results.get(LOOP_HOP)
    print(
        "On one CPU (every thread pinned to it, then the same timers in interleaved rounds), no "
        "hop wakes an idle CPU: what is left is the bridge's own cost. Floors there: "
        f"{_us(thread)} µs (thread round trip), {_us(floor)} µs (through an event loop)."
    )
    for interface, label in BRIDGE_TEXT.items():
        extra = _bridge_us(results, interface, "hello")
        if extra is not None:
            goal = BRIDGE_GOAL[interface]
            verdict = "pass" if extra <= goal else "miss"
            print(f"{verdict:4}  one CPU: {label}, hello: {extra:+.2f} µs (goal <= {goal:.0f} µs)")


def _signed(seconds: float) -> str:
    value = seconds * 1e6
    return f"{value:+.2f}" if abs(value) < 1000 else f"{value:+,.0f}"


def _print_memory(rows: list[RowLike], peaks: Mapping[str, int]) -> None:
    print("\n== 10 MiB upload: peak memory of one request (tracemalloc, over the baseline) ==")
    table = [
        [row.label, f"{peaks[row.key] / 2**20:.2f}" if row.key in peaks else "ERR", row.upload]
        for row in rows
    ]
    print(format_table(["app", "peak MiB", "what it does with the file"], table))
    print(
        "(tracemalloc counts Python allocations; bytes written to a temporary file are not memory)"
    )
