"""Waitress's chunked-body reader against microweb's (``_chunked.ChunkedBody``), in one run.

Each body is fed in 8 KiB reads, as Waitress reads a socket, to a fresh reader; the best of
three rounds of CPU time is printed per chunk, with the ratio of Waitress's to microweb's.

    python bench/chunked_bodies.py
"""

from __future__ import annotations

import platform
import time
from typing import Any

from waitress.buffers import OverflowableBuffer
from waitress.receiver import ChunkedReceiver

from microweb._chunked import ChunkedBody

READ = 8192
# NOTE: (label, one chunk, how many): about 10 MiB of framing each.
BODIES = [
    ("1-byte chunks", b"1\r\nx\r\n", 1_800_000),
    ("10-byte chunks", b"a\r\n0123456789\r\n", 700_000),
    ("1-byte chunks with an extension", b"1;a=b\r\nx\r\n", 1_000_000),
    ("4 KiB chunks", b"1000\r\n" + b"x" * 4096 + b"\r\n", 2_560),
]


def _cpu(reader_class: Any, reads: list[bytes]) -> float:
    best = float("inf")
    for _ in range(3):
        reader = reader_class(OverflowableBuffer(512 * 1024))
        began = time.process_time()
        for data in reads:
            reader.received(data)
        best = min(best, time.process_time() - began)
    return best


def main() -> None:
    print(f"Python {platform.python_version()}, {platform.machine()}; best of 3, {READ}-byte reads")
    for label, chunk, count in BODIES:
        body = chunk * count + b"0\r\n\r\n"
        reads = [body[i : i + READ] for i in range(0, len(body), READ)]
        waitress = _cpu(ChunkedReceiver, reads)
        ours = _cpu(ChunkedBody, reads)
        print(
            f"{label:34} {len(body) / 2**20:5.1f} MiB  Waitress {waitress / count * 1e6:5.2f} us"
            f"  microweb {ours / count * 1e6:5.2f} us a chunk  x{waitress / ours:.1f}"
        )


if __name__ == "__main__":
    main()
