"""Soak the same app under Waitress and Uvicorn with a mixed load, then check for leaks.

Each server runs ``bench/soak_app.py``'s factory (``create_app()``) through the ``microweb
serve`` command users run, in a subprocess on a free port of 127.0.0.1, with its own empty
``TMPDIR``. Worker threads send a mix of requests for ``--seconds`` (``_soak_load.MIX``): normal
requests whose answers are checked byte for byte, clients that leave early (uploads cut off
midway, SSE streams dropped, WebSockets that vanish, slow drippers that stop), malformed
requests that must get the right 4xx, and answers that fail on purpose (streams cut midway, the
app's own cancellations and errors answered 500). Also: wrong hosts (``TrustedHosts``: 400),
cross-site and same-origin POSTs and handshakes (``CSRF``: 403, or the answer), a login with a
flashed message read back (``Sessions``), handlers leasing from a pool that an
``app.lifespan`` holds, after-response callbacks (quick, slow, failing) on connections that end
with their answer (HTTP/1.0, ``Connection: close``), and a WebSocket route reading
``iter_json()``. The app runs with ``--root-path /soak`` and ``AccessLog``, ``ProxyHeaders``,
``TrustedHosts``, ``CORS``, ``CSRF``, ``Sessions``, ``GZip`` and ``Static`` installed.

The server process is measured from ``/proc/<pid>`` after a warm-up (the baseline), every half
second under load (the peak), and after the load, once it has settled (the end): RSS, open file
descriptors, threads, files in its ``TMPDIR`` and descriptors open on files there (temporary
files are unlinked at once, so only their descriptors show). The end must be back at the baseline,
RSS within ``--rss-tolerance-mib``, and the app must report no SSE stream, WebSocket, flow,
pool lease or after-response callback still open, and its lifespan's pool still open. With
``--server-workers N`` (Uvicorn), the supervisor and its workers are measured together.

The server's log is read at the end: each failing stream, 500 and failing after-response
callback must be one ERROR record (microweb's), with no second one from the server, each
refused host and cross-site request one INFO record of its plugin, and each worker process's
lifespan must have closed its pool once, at the stop.

Usage (Linux only, for ``/proc``)::

    python bench/soak.py                  # 60 s per server
    python bench/soak.py --quick          # 10 s per server
    python bench/soak.py --seconds 300 --servers uvicorn --workers 16
    python bench/soak.py --servers uvicorn --server-workers 2

The exit status is 1 on any wrong answer, failed exchange or leak.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# NOTE: soak the checkout this script lives in, even when microweb is not installed.
for _path in (str(REPO_ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(1, _path)

from _harness import format_table  # noqa: E402
from _soak_load import (  # noqa: E402
    HOST,
    MIX,
    ROOT_PATH,
    TIMEOUT,
    Outcome,
    Target,
    exchange,
    request_bytes,
)

APP = BENCH_DIR / "soak_app.py"
SERVERS = ("waitress", "uvicorn")
MAX_OPERATIONS = 1_000_000
SAMPLE_EVERY = 0.5
MAX_REPORTED = 10
OPEN_COUNTS = (
    "sse_open",
    "ws_open",
    "flow_sync_open",
    "flow_async_open",
    "lease_open",
    "after_open",
)


@dataclass(frozen=True)
class Sample:
    """The server process's resources at one moment."""

    rss_kib: int
    fds: int
    threads: int
    temp_files: int
    temp_fds: int


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and its descendants (a supervisor's worker processes)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text()
                pending.extend(int(child) for child in children.split())
    return found


def fd_targets(pid: int) -> list[str]:
    """Return what ``pid``'s open descriptors point at."""
    fd_dir = Path(f"/proc/{pid}/fd")
    targets = []
    with contextlib.suppress(OSError):
        for fd in os.listdir(fd_dir):
            try:
                targets.append(os.readlink(fd_dir / fd))
            except OSError:
                continue  # NOTE: closed between listdir and readlink.
    return targets


def sample(pid: int, tmpdir: Path) -> Sample:
    """Read the resources of ``pid`` and its children from ``/proc``, and count what they hold
    in ``tmpdir``."""
    rss = threads = 0
    targets: list[str] = []
    for member in process_tree(pid):
        status = {}
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue  # NOTE: a child that ended meanwhile.
        for line in lines:
            name, _, value = line.partition(":")
            status[name] = value.split()
        rss += int(status.get("VmRSS", ["0"])[0])
        threads += int(status["Threads"][0])
        targets.extend(fd_targets(member))
    temp_files = sum(len(files) for _, _, files in os.walk(tmpdir))
    return Sample(
        rss_kib=rss,
        fds=len(targets),
        threads=threads,
        temp_files=temp_files,
        temp_fds=sum(target.startswith(str(tmpdir)) for target in targets),
    )


def peak(samples: list[Sample]) -> Sample:
    """Return the highest value of each resource."""
    return Sample(*(max(getattr(s, f.name) for s in samples) for f in fields(Sample)))


@dataclass
class Tally:
    """Requests, faults and wrong answers by kind, shared by the worker threads."""

    requests: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
        with self.lock:
            counter = self.faults if outcome.fault else self.requests
            counter[outcome.kind] += 1
            if outcome.wrong:
                self._wrong(outcome.kind, outcome.wrong)

    def failed(self, kind: str, error: BaseException) -> None:
        """Count an exchange that broke (reset, timeout, garbled answer) as a wrong answer."""
        with self.lock:
            self.requests[kind] += 1
            self._wrong(kind, f"{type(error).__name__}: {error}")

    def _wrong(self, kind: str, detail: str) -> None:
        self.wrong[kind] += 1
        if len(self.examples) < MAX_REPORTED:
            self.examples.append(f"{kind}: {detail}")


def worker(target: Target, tally: Tally, deadline: float, seed: int, warm_up: bool) -> None:
    """Send requests of random kinds until ``deadline``; a warm-up starts with every kind once."""
    rng = random.Random(seed)
    kinds, weights = zip(*MIX, strict=True)
    # NOTE: servers make some threads and descriptors on first need: the baseline comes after.
    first = rng.sample(kinds, len(kinds)) if warm_up else []
    with httpx.Client(base_url=target.base_url, timeout=TIMEOUT) as http:
        for n in range(MAX_OPERATIONS):
            if time.monotonic() >= deadline and n >= len(first):
                return
            kind = first[n] if n < len(first) else rng.choices(kinds, weights)[0]
            try:
                outcome = kind(target, rng, http)
            except (OSError, httpx.HTTPError, ValueError) as exc:
                tally.failed(kind.__name__.replace("_", " "), exc)
            else:
                tally.add(outcome)


def load(target: Target, seconds: float, workers: int, seed: int, process: Process) -> Tally:
    """Run ``workers`` threads for ``seconds``; sample the server meanwhile.

    A negative ``seed`` marks the warm-up, where each worker starts with every kind once.
    """
    tally = Tally()
    deadline = time.monotonic() + seconds
    warm_up = seed < 0
    threads = [
        threading.Thread(
            target=worker, args=(target, tally, deadline, seed + n, warm_up), daemon=True
        )
        for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    while time.monotonic() < deadline:
        process.samples.append(sample(process.pid, process.tmpdir))
        time.sleep(SAMPLE_EVERY)
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)
    return tally


def app_stats(target: Target, processes: int = 1) -> dict[str, Any]:
    """Ask the app how many SSE streams, WebSockets and flows it has open (and has closed).

    With several worker processes, ask until each has answered (connections go to any of
    them), and add their counts up; thread names are prefixed with the worker's pid.
    """
    by_pid: dict[int, dict[str, Any]] = {}
    for _ in range(50 * processes):
        answer = dict(json.loads(exchange(target, request_bytes("GET", "/stats")).body))
        by_pid[answer.pop("pid")] = answer
        if len(by_pid) == processes:
            break
    total: dict[str, Any] = {"threads": [], "workers answering": len(by_pid)}
    for pid, answer in sorted(by_pid.items()):
        names = answer.pop("threads")
        total["threads"] += [f"{pid}:{name}" if processes > 1 else name for name in names]
        for name, value in answer.items():
            total[name] = total.get(name, 0) + value
    return total


def fd_kinds(pid: int) -> Counter[str]:
    """Count the open descriptors of ``pid`` and its children by kind (``socket``,
    ``anon_inode:[eventpoll]``, a path)."""
    return Counter(
        target.split(":[")[0] for member in process_tree(pid) for target in fd_targets(member)
    )


def what_is_new(before: Counter[str], after: Counter[str]) -> str:
    """Describe what ``after`` holds more of than ``before``."""
    return ", ".join(f"{name} x{count}" for name, count in (after - before).items()) or "-"


@dataclass
class Process:
    """A server being soaked: its process, ``TMPDIR`` and the samples taken under load."""

    pid: int
    tmpdir: Path
    workers: int = 1
    samples: list[Sample] = field(default_factory=list)


def free_port() -> int:
    """Return a TCP port that is free on ``HOST`` now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(server: str, port: int, tmpdir: Path, log: Path, workers: int = 1) -> Iterator[Process]:
    """Run ``microweb serve`` for the soak app under ``server``; stop it by its pid."""
    command = [sys.executable, "-m", "microweb", "serve", f"{APP}:create_app()"]
    command += ["--server", server]
    command += ["--root-path", ROOT_PATH]
    if workers > 1:
        command += ["--workers", str(workers)]
    # NOTE: the app's static files and template live beside the TMPDIR, not in it.
    env = dict(os.environ, TMPDIR=str(tmpdir), SOAK_STATIC_DIR=str(tmpdir.parent / "files"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--host", HOST, "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(process, port, log)
        yield Process(process.pid, tmpdir, workers)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the server is not listening on port {port} after 15 s")


def settle(target: Target, process: Process, baseline: Sample, seconds: float) -> Sample:
    """Wait (up to ``seconds``) until the server is back at ``baseline``; return the last sample."""
    deadline = time.monotonic() + seconds
    while True:
        streams = app_stats(target, process.workers)
        now = sample(process.pid, process.tmpdir)
        quiet = not any(streams[kind] for kind in OPEN_COUNTS)
        # NOTE: pool threads stay once started; leaks_of() tells them from leaked threads.
        back = (now.fds, now.temp_files, now.temp_fds) <= (
            baseline.fds,
            baseline.temp_files,
            baseline.temp_fds,
        )
        if (quiet and back) or time.monotonic() >= deadline:
            return now
        time.sleep(0.25)


@dataclass
class Report:
    """The outcome of soaking one server."""

    server: str
    seconds: float
    tally: Tally
    baseline: Sample
    peak: Sample
    end: Sample
    streams: dict[str, Any]
    leaks: list[str] = field(default_factory=list)
    new_fds: str = ""
    new_threads: str = ""
    log: LogCounts | None = None
    log_problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether any answer was wrong, anything leaked, or the log is not as expected."""
        return bool(sum(self.tally.wrong.values()) or self.leaks or self.log_problems)


POOL_THREADS = ("asyncio_", "microweb-worker", "microweb-files", "ThreadPoolExecutor-")


def leaks_of(report: Report, new_threads: Counter[str], rss_mib: float) -> list[str]:
    """Name every resource that did not come back to its baseline.

    Threads of bounded pools (asyncio's default executor, microweb's worker pool) start on
    demand and stay: those are not leaks, any other new thread is.
    """
    baseline, end = report.baseline, report.end
    found = [
        f"{f.name}: {getattr(baseline, f.name)} -> {getattr(end, f.name)}"
        for f in fields(Sample)
        if f.name not in ("rss_kib", "threads") and getattr(end, f.name) > getattr(baseline, f.name)
    ]
    pooled = sum(
        n for name, n in new_threads.items() if name.split(":")[-1].startswith(POOL_THREADS)
    )
    if end.threads - pooled > baseline.threads:
        found.append(f"threads: {baseline.threads} -> {end.threads} ({pooled} of pools)")
    if end.rss_kib > baseline.rss_kib + rss_mib * 1024:
        found.append(f"rss: {baseline.rss_kib} KiB -> {end.rss_kib} KiB (> +{rss_mib} MiB)")
    streams = report.streams
    found.extend(f"{kind}: {streams[kind]}" for kind in OPEN_COUNTS if streams[kind])
    if streams["pool_open"] != streams["workers answering"]:
        found.append(f"lifespan pools open: {streams['pool_open']}, one per worker expected")
    return found


def soak(server: str, args: argparse.Namespace, workdir: Path) -> Report:
    """Warm ``server`` up, take the baseline, load it, let it settle, and compare."""
    tmpdir = workdir / f"{server}-tmp"
    tmpdir.mkdir()
    port = free_port()
    target = Target(server, port)
    log = workdir / f"{server}.log"
    with serving(server, port, tmpdir, log, args.server_workers) as process:
        warm = load(target, args.warmup, args.workers, -1 - args.seed, process)
        baseline = settle(target, process, peak(process.samples), args.settle)
        time.sleep(1.0)
        baseline = sample(process.pid, tmpdir)
        threads_before = Counter(app_stats(target, process.workers)["threads"])
        fds_before = fd_kinds(process.pid)
        process.samples.clear()
        tally = load(target, args.seconds, args.workers, args.seed, process)
        end = settle(target, process, baseline, args.settle)
        streams = app_stats(target, process.workers)
        new_fds = what_is_new(fds_before, fd_kinds(process.pid))
        new_threads = Counter(streams.pop("threads")) - threads_before
    for kind, count in warm.wrong.items():
        tally.wrong[f"{kind} (warm-up)"] += count
    tally.examples.extend(warm.examples)
    report = Report(server, args.seconds, tally, baseline, peak(process.samples), end, streams)
    report.leaks = leaks_of(report, new_threads, args.rss_tolerance_mib)
    report.new_fds, report.new_threads = new_fds, what_is_new(Counter(), new_threads)
    report.log = read_log(log)
    report.log_problems = log_problems(
        report.log, warm.requests + tally.requests, args.server_workers
    )
    return report


@dataclass
class LogCounts:
    """What a server's log holds: its size, records by kind, and the bytes of failure records."""

    size: int = 0
    records: Counter[str] = field(default_factory=Counter)
    failure_bytes: int = 0
    others: list[str] = field(default_factory=list)


# NOTE: the start of each kind of record counted; "%(levelname)s:%(name)s: %(message)s" is
# microweb serve's format, "ERROR:    ..." Uvicorn's.
LOG_RECORDS = {
    "stream failed": "ERROR:microweb: error while streaming ",
    "unhandled error": "ERROR:microweb: unhandled error in ",
    "after-response failed": "ERROR:microweb: after-response callback ",
    "access": "INFO:microweb.access: ",
    "host refused": "INFO:microweb.trustedhosts: refused ",
    "csrf refused": "INFO:microweb.csrf: refused ",
    "lifespan pool closed": "INFO:soak: soak pool closed ",
    "server's traceback (uvicorn)": "ERROR:    Exception in ASGI application",
    "server's traceback (waitress)": "ERROR:waitress:Exception while serving",
}
FAILURES = ("stream failed", "unhandled error", "after-response failed")
LEVELS = ("DEBUG:", "INFO:", "WARNING:", "ERROR:", "CRITICAL:")


def read_log(log: Path) -> LogCounts:
    """Count the records of a server log; sum the bytes of the failure records (tracebacks
    included)."""
    text = log.read_text("utf-8", "replace")
    counts = LogCounts(size=len(text.encode()))
    in_failure = False
    for line in text.splitlines():
        kind = next((k for k, start in LOG_RECORDS.items() if line.startswith(start)), None)
        starts_record = line.startswith(LEVELS)
        if kind is not None:
            counts.records[kind] += 1
            if kind == "access":
                counts.records["access with client=10."] += " client=10." in line
                counts.records[f"access under {ROOT_PATH}"] += f" {ROOT_PATH}/" in line
        elif starts_record and line.startswith("ERROR:"):
            counts.others.append(line)
        elif starts_record:
            counts.records["other records"] += 1
        if starts_record:
            in_failure = kind in FAILURES
        elif line.startswith("Traceback (most recent call last)") and not in_failure:
            # NOTE: a failure record's traceback may show a chain (a cancellation's cause).
            counts.records["traceback of no failure record"] += 1
        if in_failure:
            counts.failure_bytes += len(line.encode()) + 1
    return counts


def log_problems(log: LogCounts, requests: Counter[str], workers: int) -> list[str]:
    """Compare the log's records with the requests sent: one record per failure and per
    refusal, no more, and one closed lifespan pool per worker process."""
    streams = sum(n for kind, n in requests.items() if kind.startswith("stream fails"))
    errors = sum(n for kind, n in requests.items() if kind.startswith("500 "))
    proxied = requests["proxied, root path"]
    cross_site = sum(n for kind, n in requests.items() if kind.endswith("403"))
    found = []
    expected = {
        "stream failed": streams,
        "unhandled error": errors,
        "after-response failed": requests["after-response fail"],
        "host refused": requests["wrong host 400"],
        "csrf refused": cross_site,
        "lifespan pool closed": workers,
        "server's traceback (uvicorn)": 0,
        "server's traceback (waitress)": 0,
        "traceback of no failure record": 0,
        "access with client=10.": proxied,
    }
    for kind, count in expected.items():
        if log.records[kind] != count:
            found.append(f"{kind}: {log.records[kind]} records for {count} expected")
    if log.records[f"access under {ROOT_PATH}"] < proxied:
        found.append(f"access under {ROOT_PATH}: fewer than the {proxied} requests made there")
    found.extend(f"unexpected: {line}" for line in log.others[:MAX_REPORTED])
    return found


def print_report(report: Report) -> None:
    """Print one server's tables."""
    tally = report.tally
    print(f"\n== {report.server}: {report.seconds:g} s ==")
    kinds = sorted(set(tally.requests) | set(tally.faults) | set(tally.wrong))
    rows = [
        [kind, str(tally.requests[kind]), str(tally.faults[kind]), str(tally.wrong[kind])]
        for kind in kinds
    ]
    totals = [sum(c.values()) for c in (tally.requests, tally.faults, tally.wrong)]
    rows.append(["total", *map(str, totals)])
    print(format_table(["kind", "answers", "faults", "wrong"], rows))
    resources = [
        [f.name, *(str(getattr(s, f.name)) for s in (report.baseline, report.peak, report.end))]
        for f in fields(Sample)
    ]
    print()
    print(format_table(["resource", "baseline", "peak", "end"], resources))
    print(f"streams after settling: {report.streams}")
    for example in tally.examples:
        print(f"WRONG {example}")
    for leak in report.leaks:
        print(f"LEAK {leak}")
    print(f"new descriptors: {report.new_fds}; new threads: {report.new_threads}")
    log = report.log
    if log is not None:
        answers = sum(tally.requests.values()) + sum(tally.faults.values())
        failures = sum(log.records[kind] for kind in FAILURES)
        per_failure = log.failure_bytes / failures if failures else 0.0
        print(
            f"server log: {log.size} bytes ({log.size / max(answers, 1):.0f} per request), "
            f"{failures} failure records ({per_failure:.0f} bytes each)"
        )
        print(f"  records: {dict(sorted(log.records.items()))}")
    for problem in report.log_problems:
        print(f"LOG {problem}")
    print(f"{report.server}: {'FAIL' if report.failed else 'ok'}")


def main(argv: list[str] | None = None) -> int:
    """Soak each server; return 1 if any answer was wrong or anything leaked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="load time per server")
    parser.add_argument("--quick", action="store_true", help="10 s per server")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--workers", type=int, default=8, help="client threads")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the baseline")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds allowed to settle")
    parser.add_argument(
        "--server-workers", type=int, default=1, help="uvicorn worker processes (--workers)"
    )
    parser.add_argument("--rss-tolerance-mib", type=float, default=16.0)
    parser.add_argument("--keep-logs", type=Path, metavar="DIR", help="copy the server logs there")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 10.0
    if args.server_workers > 1 and "waitress" in args.servers:
        parser.error("--server-workers is for uvicorn: add --servers uvicorn")
    print(f"soak: seed {args.seed}, {args.workers} workers, {args.seconds:g} s per server")
    workdir = Path(tempfile.mkdtemp(prefix="microweb-soak-"))
    try:
        reports = [soak(server, args, workdir) for server in args.servers]
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in workdir.glob("*.log"):
                shutil.copy(log, args.keep_logs / log.name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for report in reports:
        print_report(report)
    return 1 if any(report.failed for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
