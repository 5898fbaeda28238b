"""Show what deleting every name of a large ``Headers`` costs, by size and order.

``Headers`` keeps its lines in one list (the drivers send it as it is) and, past
``INDEXED_FROM`` lines, an index of every name's lines. A delete finds a name in the index at
once, but still takes its line out of the list: from the end at once, from elsewhere by a scan
in C that stops at the line. Deleted in a random order, the scans add up as the square of the
lines; this script prints the cost per name at each size, so the growth shows as a ratio.

Usage::

    python bench/headers_deletes.py            # a few seconds
    python bench/headers_deletes.py --quick    # about a second
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from time import perf_counter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from microweb._datastructures import Headers

ORDERS = ("first", "last", "random")


def deleted_in(order: str, size: int) -> float:
    """Seconds taken to delete each of ``size`` one-line names, in ``order``, best of 3."""
    lines = [(f"x-name-{n}", "v") for n in range(size)]
    names = [name for name, _ in lines]
    if order == "last":
        names.reverse()
    elif order == "random":
        random.Random(size).shuffle(names)
    best = float("inf")
    for _ in range(3):
        headers = Headers(lines)
        started = perf_counter()
        for name in names:
            del headers[name]
        best = min(best, perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 4,000 only")
    sizes = (1000, 2000, 4000) if parser.parse_args().quick else (1000, 2000, 4000, 8000)
    print(f"{'order':<8}" + "".join(f"{size:>12,}" for size in sizes) + "   (us per name)")
    for order in ORDERS:
        costs = [deleted_in(order, size) / size * 1e6 for size in sizes]
        growth = costs[-1] / costs[0]
        cells = "".join(f"{cost:>12.2f}" for cost in costs)
        print(f"{order:<8}{cells}   x{growth:.1f} from {sizes[0]:,} to {sizes[-1]:,}")


if __name__ == "__main__":
    main()
