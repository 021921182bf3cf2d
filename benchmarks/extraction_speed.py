"""How many model outputs per second answer extraction handles (one process, one core).

    .venv/bin/python benchmarks/extraction_speed.py [--n 200000]

The workload cycles through the realistic outputs of the extraction test suite, padded to
the length of typical continuations (a few hundred characters of reasoning before the answer).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_extract import CHOICE, NUMERIC  # noqa: E402

from siautil.tasks import extract_choice, extract_number  # noqa: E402

REASONING = ("First, we find how many items there are in each box: 12 boxes hold 8 items each, so "
             "12 x 8 = 96 items. Then we remove the 15 damaged ones: 96 - 15 = 81. ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200_000)
    args = ap.parse_args()
    numeric = [REASONING + t for t, _ in NUMERIC]
    choice = [(REASONING + t, o) for t, o, _ in CHOICE]
    for label, fn, items in (
        ("numeric", lambda x: extract_number(x), numeric),
        ("multiple choice", lambda x: extract_choice(*x), choice),
    ):
        n = args.n
        start = time.perf_counter()
        for i in range(n):
            fn(items[i % len(items)])
        dt = time.perf_counter() - start
        mean_len = sum(len(x if isinstance(x, str) else x[0]) for x in items) / len(items)
        print(f"{label:16s} {n:>9,d} outputs (mean {mean_len:.0f} chars) in {dt:6.2f} s: {n / dt:>9,.0f} outputs/s")


if __name__ == "__main__":
    main()
