"""Upload a large multipart file through real servers and watch the server's memory.

Each server runs this module's ``app`` in a subprocess: Waitress (WSGI) posts to a ``def`` handler
that parses with ``request.form()``, Uvicorn (ASGI) to an ``async def`` handler that parses with
``await request.aform()``. Both handlers read the whole uploaded file back and hash it, so the
answer proves the bytes arrived intact. The client streams a multipart body that it generates on
the fly (1 MiB at a time, never the whole body in memory) with ``httpx``, and a thread samples the
server process's ``VmRSS`` from ``/proc/<pid>/status`` every 50 ms. ``VmHWM`` (the kernel's peak
RSS) is reset through ``/proc/<pid>/clear_refs`` just before the upload and read after it.

Printed per server: the RSS before the upload (after a small warm-up upload), the peak during it
(the larger of ``VmHWM`` and the highest sample), the growth, and the throughput (MB = 10^6
bytes, the whole body over the whole request). ``handler s`` is the time spent inside the
handler; Waitress receives the whole body, spooling it to its own temporary file past 512 KiB,
before it calls the app (TRAPS.md 8), so under Waitress most of the request happens before the
handler starts. The goal is a peak RSS growth under 64 MiB.

Usage (Linux only, for ``/proc``)::

    python bench/upload_rss.py                  # 1 GiB per server, about a minute
    python bench/upload_rss.py --size-mb 100    # a few seconds
    python bench/upload_rss.py --all            # also Waitress + async def, Uvicorn + def

The body also goes through the temporary directory (twice under Waitress): mind ``df -h /tmp``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# NOTE: bench the checkout this script lives in, even when microweb is not installed.
_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(1, _REPO)

from microweb import App, HTTPError, Request, UploadFile  # noqa: E402

if TYPE_CHECKING:
    import httpx

# -- the app the servers run (they import this module; httpx is imported by the client only) -

MAX_BODY = int(os.environ.get("UPLOAD_RSS_MAX_BODY", str(2 << 30)))
READ_CHUNK = 1024 * 1024

app = App()


def _file_of(form: Any) -> UploadFile:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPError(400, "no file part called 'file'")
    return upload


@app.post("/upload/sync", limits={"max_body_size": MAX_BODY})
def upload_sync(request: Request) -> dict[str, Any]:
    """Parse the form with ``form()``, then read the file back and hash it."""
    started = time.perf_counter()
    upload = _file_of(request.form())
    digest, read = hashlib.sha256(), 0
    while chunk := upload.read(READ_CHUNK):
        digest.update(chunk)
        read += len(chunk)
    return {"read": read, "sha256": digest.hexdigest(), "seconds": time.perf_counter() - started}


@app.post("/upload/async", limits={"max_body_size": MAX_BODY})
async def upload_async(request: Request) -> dict[str, Any]:
    """Parse the form with ``await aform()``, then read the file back and hash it."""
    started = time.perf_counter()
    upload = _file_of(await request.aform())
    digest, read = hashlib.sha256(), 0
    while chunk := await upload.aread(READ_CHUNK):
        digest.update(chunk)
        read += len(chunk)
    return {"read": read, "sha256": digest.hexdigest(), "seconds": time.perf_counter() - started}


# -- the client side ---------------------------------------------------------------------------

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
MiB = 1024 * 1024
SAMPLE_EVERY = 0.05
GOAL_MIB = 64


@dataclass(frozen=True)
class Case:
    """One measurement: a server and the colour of the handler it calls."""

    server: str
    colour: str


@dataclass(frozen=True)
class Result:
    """What one upload cost the server."""

    case: Case
    body_bytes: int
    baseline_kib: int
    peak_kib: int
    seconds: float
    handler_seconds: float

    @property
    def growth_mib(self) -> float:
        """Peak RSS over the baseline, in MiB."""
        return (self.peak_kib - self.baseline_kib) / 1024

    @property
    def mb_per_s(self) -> float:
        """Body bytes per second, in MB (10^6 bytes)."""
        return self.body_bytes / self.seconds / 1e6


class MultipartBody:
    """A multipart body of one text field and one file, generated chunk by chunk."""

    def __init__(self, size: int, block: bytes) -> None:
        self.boundary = f"uploadrss{random.getrandbits(96):024x}"
        self.size, self.block = size, block
        self.head = (
            f"--{self.boundary}\r\n"
            'Content-Disposition: form-data; name="note"\r\n\r\n'
            "upload_rss\r\n"
            f"--{self.boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode("ascii")
        self.tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header, with the boundary."""
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int:
        """The whole body's length, sent as ``Content-Length``."""
        return len(self.head) + self.size + len(self.tail)

    def file_chunks(self) -> Iterator[bytes]:
        """Yield the file's bytes, one block (or less, at the end) at a time."""
        remaining = self.size
        while remaining > 0:
            chunk = self.block[: min(remaining, len(self.block))]
            remaining -= len(chunk)
            yield chunk

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        yield from self.file_chunks()
        yield self.tail

    def file_sha256(self) -> str:
        """The SHA-256 of the file part, as the server should report it."""
        digest = hashlib.sha256()
        for chunk in self.file_chunks():
            digest.update(chunk)
        return digest.hexdigest()


class Sampler(threading.Thread):
    """Reads a process's ``VmRSS`` every 50 ms and keeps the highest value."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kib = pid, 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Sample until ``stop()``."""
        while not self._stop_event.is_set():
            rss = proc_status(self.pid).get("VmRSS", 0)
            self.peak_kib = max(self.peak_kib, rss)
            self.samples += 1
            self._stop_event.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        self.join()


def proc_status(pid: int | str) -> dict[str, int]:
    """Return the ``Vm*`` lines of ``/proc/<pid>/status`` in KiB (empty once it exited)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name.startswith("Vm") and rest.strip().endswith("kB"):
            values[name] = int(rest.split()[0])
    return values


def reset_peak(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux 4.0+); False if the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def free_port() -> int:
    """Return a TCP port that is free on ``HOST`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def command(server: str, port: int, max_body: int) -> list[str]:
    """Return the server's own command line for this module's app."""
    target = "upload_rss:app"
    if server == "waitress":
        return [
            *(sys.executable, "-m", "waitress", "--host", HOST, "--port", str(port)),
            # NOTE: Waitress refuses bodies over 1 GiB by default; a 1 GiB file is more.
            f"--max-request-body-size={max_body}",
            *("--call", f"{target}.as_wsgi"),
        ]
    return [
        *(sys.executable, "-m", "uvicorn", "--factory", f"{target}.as_asgi"),
        *("--host", HOST, "--port", str(port), "--lifespan", "on", "--log-level", "warning"),
    ]


def start(server: str, port: int, max_body: int) -> subprocess.Popen[bytes]:
    """Start ``server`` and return once it accepts connections."""
    env = dict(os.environ)
    paths = [str(BENCH_DIR), str(REPO_ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    env["UPLOAD_RSS_MAX_BODY"] = str(max_body)
    process = subprocess.Popen(
        command(server, port, max_body), cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{server} exited with {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    stop(process)
    raise SystemExit(f"{server} is not listening on port {port} after 15 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server process started by ``start`` (this one process only)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def upload(http: httpx.Client, url: str, body: MultipartBody) -> dict[str, Any]:
    """POST ``body`` (streamed from its generator) and return the handler's JSON answer."""
    response = http.post(
        url,
        content=iter(body),
        headers={"content-type": body.content_type, "content-length": str(body.length)},
    )
    if response.status_code != 200:
        raise SystemExit(f"POST {url}: {response.status_code} {response.text[:200]}")
    answer: dict[str, Any] = response.json()
    return answer


def measure(case: Case, size: int, block: bytes) -> Result:
    """Start the server, upload ``size`` bytes to it, and stop it."""
    import httpx

    body = MultipartBody(size, block)
    max_body = max(body.length + MiB, 2 << 30)
    expected = body.file_sha256()
    port = free_port()
    process = start(case.server, port, max_body)
    url = f"http://{HOST}:{port}/upload/{case.colour}"
    try:
        with httpx.Client(timeout=httpx.Timeout(600.0, connect=10.0)) as http:
            upload(http, url, MultipartBody(MiB, block))  # warm-up: lazy imports, buffers
            time.sleep(0.5)
            baseline = proc_status(process.pid)["VmRSS"]
            if not reset_peak(process.pid):
                print("  (cannot reset VmHWM; the peak includes start-up)", file=sys.stderr)
            sampler = Sampler(process.pid)
            sampler.start()
            started = time.perf_counter()
            answer = upload(http, url, body)
            seconds = time.perf_counter() - started
            sampler.stop()
            hwm = proc_status(process.pid)["VmHWM"]
    finally:
        stop(process)
    if answer["read"] != size or answer["sha256"] != expected:
        raise SystemExit(f"{case}: the server read {answer['read']} bytes, hash mismatch")
    return Result(
        case, body.length, baseline, max(hwm, sampler.peak_kib), seconds, answer["seconds"]
    )


def report(results: list[Result], size_mb: int) -> None:
    """Print one row per case and the verdict on the goal."""
    print(f"\nUpload of one {size_mb} MiB file (multipart, Content-Length), server RSS:\n")
    columns = (
        "server",
        "handler",
        "baseline MiB",
        "peak MiB",
        "growth MiB",
        "MB/s",
        "total s",
        "handler s",
    )
    rows = [columns]
    for r in results:
        rows.append(
            (
                r.case.server,
                "def" if r.case.colour == "sync" else "async def",
                f"{r.baseline_kib / 1024:.1f}",
                f"{r.peak_kib / 1024:.1f}",
                f"{r.growth_mib:.1f}",
                f"{r.mb_per_s:.0f}",
                f"{r.seconds:.1f}",
                f"{r.handler_seconds:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    worst = max(r.growth_mib for r in results)
    verdict = "met" if worst < GOAL_MIB else "NOT met"
    print(f"\nGoal: peak RSS growth under {GOAL_MIB} MiB: {verdict} (worst {worst:.1f} MiB).")
    client_peak = proc_status("self").get("VmHWM", 0) / 1024
    print(f"Client peak RSS: {client_peak:.1f} MiB (the body is generated, never held).")


def main() -> None:
    """Measure each case and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="file size in MiB")
    parser.add_argument(
        "--all", action="store_true", help="also Waitress + async def and Uvicorn + def"
    )
    args = parser.parse_args()
    cases = [Case("waitress", "sync"), Case("uvicorn", "async")]
    if args.all:
        cases += [Case("waitress", "async"), Case("uvicorn", "sync")]
    block = random.Random(0).randbytes(MiB)
    results = []
    for case in cases:
        print(f"{case.server} ({case.colour} handler): uploading {args.size_mb} MiB ...")
        results.append(measure(case, args.size_mb * MiB, block))
    report(results, args.size_mb)


if __name__ == "__main__":
    main()
