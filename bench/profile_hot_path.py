"""Profile microweb's per-request hot path with cProfile, to find what to make faster.

Runs ``-n`` requests of one scenario of ``bench_apps.py`` through ``app.as_wsgi()`` (``def``
handlers) or ``app.as_asgi()`` (``async def`` handlers) in-process, then prints the top functions.
cProfile slows everything down several times; read the shares, not the absolute times (those are
what ``compare.py`` is for).

Usage::

    python bench/profile_hot_path.py                       # 100,000 WSGI hello requests
    python bench/profile_hot_path.py --interface asgi --scenario param --sort cumulative
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys

import bench_apps
from _harness import (
    Lifespan,
    asgi_call,
    asgi_timer,
    decode_body,
    make_environ,
    make_scope,
    wsgi_call,
    wsgi_timer,
)


def main(argv: list[str] | None = None) -> int:
    """Profile the requests and print the statistics."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--interface", choices=["wsgi", "asgi"], default="wsgi")
    parser.add_argument("--scenario", choices=list(bench_apps.SCENARIOS), default="hello")
    parser.add_argument("--colour", choices=["sync", "async"], help="default: native colour")
    parser.add_argument("-n", "--requests", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--sort", default="tottime", help="a pstats sort key (tottime, cumulative)")
    args = parser.parse_args(argv)

    colour = args.colour or ("sync" if args.interface == "wsgi" else "async")
    app = bench_apps.microweb_app(colour)
    path, expected = bench_apps.SCENARIOS[args.scenario]
    loop = asyncio.new_event_loop()
    if args.interface == "wsgi":
        served = app.as_wsgi()
        status, _headers, body = wsgi_call(served, make_environ(path))
        timer = wsgi_timer(served, make_environ(path))
    else:
        served = app.as_asgi()
        lifespan = Lifespan(served)
        loop.run_until_complete(lifespan.startup())
        status, _headers, body = loop.run_until_complete(asgi_call(served, make_scope(path)))
        timer = asgi_timer(served, make_scope(path), loop)
    if status != 200 or decode_body(body, expected) != expected:
        print(f"GET {path} gave {status} {body[:200]!r}, expected {expected!r}", file=sys.stderr)
        return 1

    timer(1_000)  # warm-up
    profiler = cProfile.Profile()
    profiler.enable()
    elapsed = timer(args.requests)
    profiler.disable()

    if args.interface == "wsgi":
        served.close()
    else:
        loop.run_until_complete(lifespan.shutdown())
    loop.close()

    print(
        f"{args.requests:,} {args.interface.upper()} requests, GET {path} ({colour} handler): "
        f"{elapsed:.2f} s under cProfile ({elapsed / args.requests * 1e6:.1f} µs/request)"
    )
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
