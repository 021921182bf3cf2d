"""What bf16 changes in the default profile: every cell sampled in fp32 and in bf16, Table 1's
rows side by side with their 95% intervals over questions, and each cell's sampling time.

    .venv/bin/python benchmarks/precision_effect.py [--out /tmp/precision] [--precisions fp32 bf16]

The default precision (``siautil.models.default_precision``) was chosen from this table. Run
each precision in its own process (or one after the other) on a quiet machine for the times.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import pandas as pd
import torch


def main() -> None:
    from siautil import diagnostics, grid, runs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/siautil-precision")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    frames, times = [], []
    for p in args.precisions:
        cells = [replace(c, precision=p) for c in grid.select("default")]
        for cell in cells:
            start = time.perf_counter()
            runs.ensure(cell, "default", runs_dir=f"{args.out}/{p}", progress=False)
            times.append(dict(model=cell.model, dataset=cell.task, precision=p,
                              seconds=round(time.perf_counter() - start)))
        rec = runs.records("default", cells, runs_dir=f"{args.out}/{p}", run_missing=False, progress=False)
        acc = (rec.drop_duplicates(["model", "dataset", "question_id", "trace"])
                  .groupby(["model", "dataset"])["correct"].mean().rename("accuracy"))
        frames.append(diagnostics.alignment(rec).assign(precision=p).merge(acc, on=["model", "dataset"]))
    cols = ["model", "dataset", "precision", "trace_mean", "mean", "ci_low", "ci_high", "questions", "defined", "accuracy"]
    table = pd.concat(frames)[cols].sort_values(["model", "dataset", "precision"])
    print(table.round(3).to_markdown(index=False))
    print()
    print(pd.DataFrame(times).groupby(["model", "dataset", "precision"])["seconds"].sum().unstack().to_markdown())


if __name__ == "__main__":
    main()
