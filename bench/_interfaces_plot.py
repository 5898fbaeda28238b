"""The plots of ``interfaces.py``: one SVG per section, drawn with matplotlib from its JSON."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

# NOTE: text kept as text, not paths: the SVGs stay small and their labels searchable.
plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True})
plt.rcParams["grid.alpha"] = 0.3

COLOURS = {
    "Waitress (WSGI), 4 threads": "tab:blue",
    "Waitress (WSGI), 100 threads": "tab:cyan",
    "Uvicorn (ASGI)": "tab:orange",
    "Granian WSGI": "tab:green",
    "Granian ASGI": "tab:red",
}
Points = list[dict[str, Any]]


def _style(series: dict[str, Any]) -> dict[str, Any]:
    colour = COLOURS.get(series["server"], "tab:gray")
    dashed = series["bridged"]
    return {"color": colour, "linestyle": "--" if dashed else "-", "marker": "o", "ms": 3}


def _line(ax: Axes, series: dict[str, Any], x: str, y: str, scale: float = 1.0) -> None:
    points = [p for p in series["points"] if p.get(y) is not None]
    ax.plot(
        [p[x] for p in points],
        [p[y] * scale for p in points],
        label=series["label"],
        **_style(series),
    )


def _mean_latency(ax: Axes, series: dict[str, Any]) -> None:
    # NOTE: wrk's percentiles cover answered requests only; clients a server leaves waiting (in
    # its backlog, or past Waitress's 100 connections) never show there. Little's law
    # (clients = throughput x time in the system) gives the mean wait every client sees.
    points = [p for p in series["points"] if p["rps"]]
    ax.plot(
        [p["clients"] for p in points],
        [1000 * p["clients"] / p["rps"] for p in points],
        label=series["label"],
        **_style(series),
    )


def _footer(fig: Any, results: dict[str, Any]) -> None:
    machine, versions = results["machine"], results["versions"]
    text = (
        f"{results['date'][:10]}, {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"Python {versions['python']}, Waitress {versions['waitress']}, "
        f"Uvicorn {versions['uvicorn']}, Granian {versions['granian']}"
    )
    if results["pinned"]:
        text += "; server on one CPU, client on the other"
    fig.text(0.01, 0.005, text, fontsize=7, color="gray")


def _save(fig: Any, results: dict[str, Any], path: Path) -> Path:
    _footer(fig, results)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return path


def _log_clients(ax: Axes, xlabel: str = "concurrent clients (wrk connections)") -> None:
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)


def plain(results: dict[str, Any], path: Path) -> Path:
    """Requests/s and mean latency of ``/hello`` in each server's native colour."""
    fig, (rps, mean) = plt.subplots(1, 2, figsize=(10, 4))
    for series in results["plain"]:
        if not series["bridged"]:
            _line(rps, series, "clients", "rps")
            _mean_latency(mean, series)
    rps.set_title("Plain request (native colour): throughput")
    rps.set_ylabel("requests/s")
    mean.set_title("Mean latency (clients / throughput)")
    mean.set_ylabel("ms (log)")
    mean.set_yscale("log")
    for ax in (rps, mean):
        _log_clients(ax)
    rps.legend(fontsize=7)
    return _save(fig, results, path)


def bridges(results: dict[str, Any], path: Path) -> Path:
    """Requests/s of ``/hello``: native colour (solid) against the bridged one (dashed)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, interface in zip(axes, ("wsgi", "asgi"), strict=True):
        for series in results["plain"]:
            if series["interface"] == interface:
                _line(ax, series, "clients", "rps")
        title = "async def under WSGI" if interface == "wsgi" else "def under ASGI"
        ax.set_title(f"Colour bridges: {title} (dashed)")
        _log_clients(ax)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("requests/s")
    return _save(fig, results, path)


def slow(results: dict[str, Any], path: Path) -> Path:
    """Requests/s and mean latency of the 50 ms endpoint."""
    fig, (rps, mean) = plt.subplots(1, 2, figsize=(10, 4))
    clients = sorted({p["clients"] for s in results["slow"] for p in s["points"]})
    rps.plot(
        clients, [c / 0.05 for c in clients], color="lightgray", label="ideal: clients / 50 ms"
    )
    for series in results["slow"]:
        _line(rps, series, "clients", "rps")
        _mean_latency(mean, series)
    mean.axhline(50, color="lightgray")
    rps.set_title("Handler waiting 50 ms: throughput")
    rps.set_ylabel("requests/s (log)")
    rps.set_yscale("log")
    mean.set_title("Mean latency (clients / throughput)")
    mean.set_ylabel("ms (log)")
    mean.set_yscale("log")
    for ax in (rps, mean):
        _log_clients(ax)
    rps.legend(fontsize=7)
    return _save(fig, results, path)


def sse(results: dict[str, Any], path: Path) -> Path:
    """Streams held, the server's memory, and a probe's latency as streams are asked for."""
    fig, (held, memory, probe) = plt.subplots(1, 3, figsize=(13, 4))
    for series in results["sse"]:
        base = series["baseline"]["rss_kib"]
        _line(held, series, "requested", "open")
        points = series["points"]
        memory.plot(
            [p["open"] for p in points],
            [(p["rss_kib"] - base) / 1024 for p in points],
            label=series["label"],
            **_style(series),
        )
        _line(probe, series, "requested", "probe_ms")
        failed = [p["requested"] for p in points if p["probe_ms"] is None]
        if failed:
            probe.plot(failed, [3000] * len(failed), "x", color=_style(series)["color"], ms=8)
    held.set_title("SSE streams open (first event received)")
    held.set_ylabel("streams open")
    held.set_yscale("log")
    memory.set_title("Server RSS over its idle RSS")
    memory.set_ylabel("MiB")
    memory.set_xlabel("streams open")
    memory.set_xscale("symlog", linthresh=100)
    probe.set_title("Probe while streams are open (x: none in 3 s)")
    probe.set_ylabel("ms (log)")
    probe.set_yscale("log")
    for ax in (held, probe):
        _log_clients(ax, "streams asked for")
    held.legend(fontsize=7)
    return _save(fig, results, path)


def cpu(results: dict[str, Any], path: Path) -> Path:
    """A cheap request's latency while K clients keep a 20 ms CPU-bound handler busy."""
    fig, (p50, p99) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for series in results["cpu"]:
        _line(p50, series, "hammers", "probe_p50")
        _line(p99, series, "hammers", "probe_p99")
    p50.set_title("Cheap request, median latency")
    p99.set_title("Cheap request, 99th percentile latency")
    p50.set_ylabel("ms (log)")
    for ax in (p50, p99):
        ax.set_yscale("log")
        ax.set_xscale("symlog", linthresh=1)
        hammers = sorted({p["hammers"] for s in results["cpu"] for p in s["points"]})
        ax.set_xticks(hammers, [str(k) for k in hammers])
        ax.set_xlabel(f"clients on the CPU-bound endpoint ({results['cpu_handler_ms']} ms each)")
    p50.legend(fontsize=7)
    return _save(fig, results, path)


DRAWINGS: dict[str, tuple[str, Callable[[dict[str, Any], Path], Path]]] = {
    "plain": ("interfaces-plain.svg", plain),
    "bridges": ("interfaces-bridges.svg", bridges),
    "slow": ("interfaces-slow.svg", slow),
    "sse": ("interfaces-sse.svg", sse),
    "cpu": ("interfaces-cpu.svg", cpu),
}


def draw_all(results: dict[str, Any], img_dir: Path) -> list[Path]:
    """Draw every plot whose section is in ``results``; return the files written."""
    img_dir.mkdir(parents=True, exist_ok=True)
    drawn = []
    for name, (filename, draw) in DRAWINGS.items():
        section = "plain" if name == "bridges" else name
        if results.get(section):
            drawn.append(draw(results, img_dir / filename))
    return drawn
