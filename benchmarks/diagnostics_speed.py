"""Time every diagnostic over a large run (default one million checkpoint records).

    .venv/bin/python benchmarks/diagnostics_speed.py [--records 1000000] [--n-continuations 16]

Records come from the oracle reasoner (T = 40 tokens, stride 4: 11 checkpoints per trace,
4 traces per question); generating them is not timed.
"""

import argparse
import time

from siautil import diagnostics as D
from siautil import estimators as E
from siautil import oracle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--n-continuations", type=int, default=16)
    args = ap.parse_args()
    per_question = 4 * 11
    start = time.perf_counter()
    run = oracle.sample_run(oracle.aligned(), n_questions=max(1, args.records // per_question), n_traces=4,
                            n_continuations=args.n_continuations, stride=4, seed=0)
    # the run store hands records over with Arrow-backed answer lists, as here
    run = E.arrow_records(run)
    print(f"generated {len(run):,} records x {args.n_continuations} answers in {time.perf_counter() - start:.1f} s (not timed below)")
    total = 0.0
    t0 = time.perf_counter()
    traj = E.estimate(run)
    timings = [("estimate: entropy and gold surprisal", time.perf_counter() - t0)]
    steps = [
        ("alignment coefficients (per trace)", lambda: D.trace_alignment(traj)),
        ("Table 1 cell (bootstrap over questions)", lambda: D.alignment_table(D.trace_alignment(traj))),
        ("Figure 1: cumulative gain curves", lambda: D.cumulative_gain(traj)),
        ("Figure 2: AUC(t), absolute, clustered DeLong", lambda: D.auc_by_position(traj)),
        ("Figure 2: AUC(t), normalised", lambda: D.auc_by_position(traj, normalised=True)),
        ("Figure 3: entropy curve + plateau", lambda: D.saturation(D.entropy_curve(traj))),
        ("early stopping", lambda: D.early_stopping(traj)),
    ]
    for name, fn in steps:
        t0 = time.perf_counter()
        fn()
        timings.append((name, time.perf_counter() - t0))
    for name, dt in timings:
        total += dt
        print(f"{name:45s} {dt:7.2f} s")
    print(f"{'all diagnostics':45s} {total:7.2f} s for {len(run):,} records")


if __name__ == "__main__":
    main()
