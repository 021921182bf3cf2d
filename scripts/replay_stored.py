"""Sample again, on this machine, the cheapest window of the first cells of the stored runs and
compare the records with the stored ones, whatever the package versions.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python scripts/replay_stored.py [--cells 2]

``tests/test_stored.py`` replays only where nothing the bits depend on differs (machine,
threads, torch and transformers versions), so on a newer transformers it skips; this says
whether the records still come out identical there (a difference names the first column that
differs). The stored runs were sampled with one thread.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import torch

from siautil import grid, paths, runs, store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=2, help="cells per stored profile")
    ap.add_argument("--profiles", nargs="+", default=["toy-regimes", "smollm2-arc"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    key = ["question_index", "trace", "t"]
    for profile in args.profiles:
        for cell in grid.cells(profile)[:args.cells]:
            path = paths.run_dir(cell, profile, paths.stored_dir())
            stored = store.load_records(path)
            traces = stored.drop_duplicates(["question_index", "trace"]).groupby("question_index")["T"].sum()
            tokens = stored["continuation_tokens"].map(sum).groupby(stored["question_index"]).sum() + traces
            windows = runs.windows(cell.limit, cell.sampling.window)
            j = min(range(len(windows)), key=lambda k: tokens[list(windows[k])].sum())
            with tempfile.TemporaryDirectory() as d:
                again = runs.sample(cell, Path(d) / "again", shard=f"{j}/{len(windows)}", progress=False)
                got = store.load_records(again).sort_values(key).reset_index(drop=True)
            expected = stored[stored["question_index"].isin(list(windows[j]))].sort_values(key).reset_index(drop=True)
            versions = store.read_config(path)["versions"]
            try:
                pd.testing.assert_frame_equal(got, expected)
                verdict = "identical"
            except AssertionError as e:
                verdict = "DIFFERENT: " + str(e).splitlines()[0]
            print(f"{profile} {cell.name} window {j}: {len(got)} records {verdict} "
                  f"(stored with torch {versions.get('torch')}, transformers {versions.get('transformers')})", flush=True)


if __name__ == "__main__":
    main()
