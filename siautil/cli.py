"""The ``siautil`` command line."""

from __future__ import annotations

import argparse
import sys


def _book(args: argparse.Namespace) -> int:
    from . import book

    try:
        book.build(args.chapter or None, book.parse_parameters(args.parameter or []),
                   html=not args.no_html)
    except book.ChapterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _rollout(args: argparse.Namespace) -> int:
    from . import models, rollout, runs, store, tasks

    try:
        settings = rollout.RolloutConfig(
            n_traces=args.traces, n_continuations=args.continuations, stride=args.stride,
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
            top_k=args.top_k, min_p=args.min_p, seed=args.seed, shuffle_prefix=args.shuffle_prefix,
            stop=args.stop, extraction=args.extraction,
            prompt_style=args.prompt_style, few_shot=args.few_shot, max_batch_rows=args.max_batch_rows)
        path = runs.rollout_to_store(args.model, args.task, args.out, settings, limit=args.limit, shard=args.shard,
                                     precision=args.precision, quantize=args.quantize, device=args.device,
                                     split=args.split,
                                     sample=args.sample, data_dir=args.data_dir)
    except (ValueError, KeyError, models.ModelError, store.RunStoreError, tasks.DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"records in {path}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from . import store

    try:
        path = store.merge(args.runs, args.out)
    except store.RunStoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"merged {len(args.runs)} runs into {path} ({len(store.RunStore(path, {}).done())} questions)")
    return 0


def _grid(args: argparse.Namespace) -> int:
    from . import book, grid, models, store, tasks

    if args.estimate:
        est = grid.estimate(args.profile, args.device)
        print(est.to_string(index=False))
        return 0
    try:
        grid.run_grid(args.profile, runs_dir=args.runs_dir, shard=args.shard, book=not args.no_book)
    except (ValueError, models.ModelError, store.RunStoreError, tasks.DataError, book.ChapterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _toy(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import toy

    regimes = toy.REGIMES if args.regime == "all" else (args.regime,)
    report = toy.train(regimes, out=Path(args.out) if args.out else toy.ASSETS)
    for regime, r in report.items():
        print(f"{regime}: {r['seconds']} s, held-out accuracy {r['accuracy']:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siautil", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("book", help="execute the chapters with papermill and build the HTML book")
    p.add_argument("--chapter", action="append", metavar="NAME",
                   help="execute only this chapter (repeatable); the others keep their last run")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="override a chapter parameter (value parsed as YAML), as papermill's -p")
    p.add_argument("--no-html", action="store_true", help="execute only; skip the Jupyter Book build")
    p.set_defaults(func=_book)

    r = sub.add_parser("rollout", help="sample traces and continuations into a resumable run directory")
    r.add_argument("--model", required=True, help="registry name, hub id, or local directory / .gguf file")
    r.add_argument("--task", required=True, help="gsm8k, svamp, arc-challenge, arc-easy, ...")
    r.add_argument("--out", required=True, help="run directory (created, or resumed if it holds the same run)")
    r.add_argument("--limit", type=int, help="only the first LIMIT questions")
    r.add_argument("--sample", type=int, help="a seeded random sample of SAMPLE questions")
    r.add_argument("--split", help="task split (default: the task's test split)")
    r.add_argument("--data-dir", help="benchmark files (default: $SIAUTIL_DATA_DIR, else the hub)")
    r.add_argument("--shard", help="i/n: this job takes every n-th question from the i-th")
    r.add_argument("--traces", type=int, default=4, help="N traces per question")
    r.add_argument("--continuations", type=int, default=16, help="M continuations per checkpoint")
    r.add_argument("--stride", type=int, default=50, help="tokens between checkpoints")
    r.add_argument("--max-new-tokens", type=int, default=600)
    r.add_argument("--temperature", type=float, default=0.7)
    r.add_argument("--top-p", type=float, default=0.95)
    r.add_argument("--top-k", type=int, default=0, help="0: off, as the paper (never taken from the model)")
    r.add_argument("--min-p", type=float, default=None)
    r.add_argument("--stop", default="eos", choices=["eos", "answer"],
                   help="eos: run to EOS or the budget (the paper); answer: also stop at the first final answer")
    r.add_argument("--extraction", default="strict-match", choices=["strict-match", "flexible-extract"],
                   help="strict-match: an explicit final-answer marker or the null answer; flexible-extract: fallbacks")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--shuffle-prefix", action="store_true", help="Table 2 ablation")
    r.add_argument("--prompt-style", default="auto", choices=["auto", "chat", "plain"])
    r.add_argument("--few-shot", type=int, default=0)
    r.add_argument("--max-batch-rows", type=int, default=256)
    r.add_argument("--precision", choices=["fp32", "bf16", "nf4"], default=None,
                   help="weights: fp32, bf16 or 4-bit nf4 (CUDA); default fp32 on CPU, bf16 on CUDA")
    r.add_argument("--quantize", choices=["4bit"], default=None, help="the old spelling of --precision nf4")
    r.add_argument("--device", default=None)
    r.set_defaults(func=_rollout)

    m = sub.add_parser("merge", help="join the shards of one run into one run directory")
    m.add_argument("runs", nargs="+", help="run directories (shards of the same configuration)")
    m.add_argument("--out", required=True)
    m.set_defaults(func=_merge)

    g = sub.add_parser("grid", help="run every (model, dataset) cell of a profile, then build the book")
    g.add_argument("--profile", default="default", choices=["default", "paper", "paper-nf4", "pilot"])
    g.add_argument("--runs-dir", help="where the run stores go (default: data/runs of this checkout)")
    g.add_argument("--shard", help="i/n: this machine takes every n-th question of every cell")
    g.add_argument("--no-book", action="store_true", help="sample only")
    g.add_argument("--estimate", action="store_true", help="print the estimated cost and exit")
    g.add_argument("--device", default=None, help="device for --estimate (default: the detected one)")
    g.set_defaults(func=_grid)

    t = sub.add_parser("toy", help="train the toy task's base, SFT and RL models")
    t.add_argument("action", choices=["train"])
    t.add_argument("--regime", default="all", choices=["all", "base", "sft", "rl"])
    t.add_argument("--out", help="output directory (default: the shipped assets, siautil/assets/toy)")
    t.set_defaults(func=_toy)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
