"""The ``siautil`` command line.

Every error siautil raises on purpose (:class:`siautil.errors.SiautilError`), and the
``ValueError`` or ``KeyError`` a bad setting raises, ends a command the same way: ``error:
<message>`` on stderr and exit status 2 (as argparse's own usage errors). Ctrl-C ends it with
one line that says what is kept and how to resume, and exit status 130 (as a shell's).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from .errors import SiautilError

#: Exit status of a command that stopped on an error it explains.
ERROR_EXIT = 2
#: Exit status of a command stopped by Ctrl-C (128 + SIGINT, what a shell reports).
INTERRUPTED_EXIT = 130


def _book(args: argparse.Namespace) -> int:
    from . import book

    # one at a time unless asked: chapters run alone may sample missing runs, and two at once would
    # sample the same ones (siautil grid samples first, then runs them at once)
    book.build(args.chapter or None, book.parse_parameters(args.parameter or []), html=not args.no_html,
               jobs=args.jobs or 1)
    return 0


def _rollout(args: argparse.Namespace) -> int:
    from . import config, rollout, runs

    values = {name: getattr(args, name) for name in _setting_names()}
    if values["max_new_tokens"] is None:
        values["max_new_tokens"] = config.default_budget(args.model)
        if values["max_new_tokens"] < rollout.RolloutConfig().max_new_tokens:
            print(f"max_new_tokens {values['max_new_tokens']}: half the context of {args.model} "
                  "(--max-new-tokens sets it)", flush=True)
    run = config.RunConfig(args.model, args.task, rollout.RolloutConfig(**values), precision=args.precision,
                           split=args.split, sample=args.sample, limit=args.limit, backend=args.backend)
    path = runs.sample(run, args.out, shard=args.shard, device=args.device, data_dir=args.data_dir)
    if path is not None:  # None: this shard had nothing to do, and said so
        print(f"records in {path}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from . import store

    path = store.merge(args.runs, args.out)
    print(f"merged {len(args.runs)} runs into {path} ({len(store.RunStore(path, {}).done())} questions)")
    return 0


def _grid(args: argparse.Namespace) -> int:
    from . import grid, models, paths, runs, workers

    if args.estimate:
        est = grid.cost(args.profile, args.device, backend=args.backend)
        print(est.to_string(index=False))
        print(f"throughput: {est.attrs['throughput']}")
        if (args.device or models.default_device()).startswith("cuda"):
            print("\nGPU memory per model (GiB) at the rows and window the engine would choose:")
            print(grid.memory_table(args.profile).round(1).to_string(index=False))
        return 0
    ray_options = {k: v for k, v in dict(address=args.address, shards_per_cell=args.shards_per_cell,
                                         cpus=args.cpus_per_task, gpus=args.gpus_per_task,
                                         max_retries=args.max_retries).items() if v is not None}
    sampler = None
    if args.executor == "ray":
        from . import cluster

        if args.workers is not None:
            raise ValueError("--workers: only with --executor local (on Ray, --shards-per-cell and the cluster's CPUs)")
        sampler = cluster.sampler(**ray_options)
    elif ray_options:
        flags = ", ".join("--" + {"cpus": "cpus-per-task", "gpus": "gpus-per-task"}.get(k, k).replace("_", "-")
                          for k in ray_options)
        raise ValueError(f"{flags}: only with --executor ray")
    elif not paths.is_url(args.runs_dir):  # sample_grid refuses a URL without Ray
        import torch

        serial = args.profile.startswith("paper") or models.default_device().startswith("cuda")
        processes, threads = workers.local_workers(args.workers, args.shard, serial, torch.get_num_threads())
        if processes > 1:
            from . import cluster

            sampler = cluster.local_sampler(processes, threads)
    runs.sample_grid(args.profile, runs_dir=args.runs_dir, shard=args.shard, sampler=sampler, backend=args.backend)
    if args.no_book or (args.shard and not args.shard.startswith("0/")):
        return 0
    if paths.is_url(args.runs_dir):
        print(f"the book reads local run stores: copy {args.runs_dir} to a local directory and run "
              f"`siautil grid --profile {args.profile} --runs-dir DIR` there to build it", flush=True)
        return 0
    from . import book

    params = {"profile": args.profile}
    if args.runs_dir:
        params["runs_dir"] = str(paths.local(args.runs_dir).resolve())
    book.build(parameters=params, parameters_if_declared=True, jobs=args.jobs)
    return 0


def _toy(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import toy

    regimes = toy.REGIMES if args.regime == "all" else (args.regime,)
    seeds = toy.SEEDS if args.seed == "all" else (int(args.seed),)
    report = toy.train(regimes, out=Path(args.out) if args.out else toy.ASSETS, seeds=seeds)
    for (seed, regime), r in report.items():
        print(f"seed {seed} {regime}: {r['seconds']} s, held-out accuracy {r['accuracy']:.3f}, "
              f"step accuracy {r['step_accuracy']:.3f}, faithfulness {r['faithfulness']:.3f}")
    return 0


#: Help for the sampling settings (``rollout.RolloutConfig``'s fields, one flag each).
SETTING_HELP = {
    "n_traces": "N traces per question",
    "n_continuations": "M continuations per checkpoint",
    "stride": "tokens between checkpoints",
    "max_new_tokens": "trace budget; a continuation from t gets the rest",
    "temperature": "sampling temperature",
    "top_p": "nucleus: sample from the smallest set of tokens holding this much probability",
    "top_k": "0 or none: off, as the paper (never taken from the model)",
    "min_p": "none: off",
    "repetition_penalty": "1.0 (none) is the only value the engine samples exactly",
    "seed": "the run seed (every sequence's random stream is keyed by it, the question id and its place)",
    "shuffle": "what the continuations see: none (the prefix), tokens (permuted, Table 2) or steps (shuffled, format kept)",
    "stop": "eos: run to EOS or the budget (the paper); answer: also stop at the first final answer",
    "extraction": "strict-match: an explicit final-answer marker or the null answer; flexible-extract: fallbacks",
    "prompt_style": "chat template or plain text; auto: as the model is",
    "few_shot": "worked examples before a plain prompt",
    "max_batch_rows": "rows (traces and continuations) decoded together",
    "window": "questions in flight together; the unit a run writes, resumes and shards",
}
#: Flags whose default is not the setting's: the budget's depends on the model (``runs.default_budget``),
#: so that a run with the defaults fits a model of short context.
FLAG_DEFAULTS = {"max_new_tokens": (None, "600, or half the model's context where that is shorter")}


def _setting_choices() -> dict[str, tuple[str, ...]]:
    from . import rollout
    from .tasks.base import PROMPT_STYLES
    from .tasks.extract import EXTRACTION_MODES

    return {"stop": rollout.STOP_RULES, "extraction": EXTRACTION_MODES, "prompt_style": PROMPT_STYLES,
            "shuffle": rollout.SHUFFLES}


def _optional(kind: type):
    """``kind``, or ``None`` written as ``none``."""
    def parse(text: str):
        return None if text.lower() in ("none", "") else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def _settings() -> list[tuple[dataclasses.Field, type, bool]]:
    """``(field, type, optional)`` of each setting of ``RolloutConfig`` a flag can carry."""
    from . import rollout

    hints = typing.get_type_hints(rollout.RolloutConfig)
    out = []
    for f in dataclasses.fields(rollout.RolloutConfig):
        kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
        plain = [k for k in kinds if k is not type(None)]
        if len(plain) == 1 and plain[0] in (bool, int, float, str):
            out.append((f, plain[0], len(plain) < len(kinds)))
    return out


def _setting_names() -> list[str]:
    return [f.name for f, _, _ in _settings()]


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """One flag per sampling setting, its type and default taken from ``RolloutConfig``."""
    choices = _setting_choices()
    for f, kind, optional in _settings():
        flags = ["--" + f.name.replace("_", "-")]
        help_text = SETTING_HELP.get(f.name, "")
        if kind is bool:
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                                help=help_text)
            continue
        value, default = FLAG_DEFAULTS.get(f.name, (f.default, "none" if f.default is None else f.default))
        parser.add_argument(*flags, dest=f.name, type=_optional(kind) if optional else kind, default=value,
                            choices=choices.get(f.name), metavar=None if f.name in choices else f.name.upper(),
                            help=f"{help_text} (default: {default})".lstrip())


#: Help for ``--backend`` (siautil.config.BACKENDS).
BACKEND_HELP = ("what samples: engine (this package's, the reference; exact per-stream draws) or vllm (GPUs, "
                "pip install -e '.[vllm]'; the same records in distribution, not bit for bit)")


def build_parser() -> argparse.ArgumentParser:
    from . import grid, models, workers
    from .config import BACKENDS

    parser = argparse.ArgumentParser(prog="siautil", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("book", help="execute the chapters with papermill and build the HTML book")
    p.add_argument("--chapter", action="append", metavar="NAME",
                   help="execute only this chapter (repeatable); the others keep their last run")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="override a chapter parameter (value parsed as YAML), as papermill's -p")
    p.add_argument("--no-html", action="store_true", help="execute only; skip the Jupyter Book build")
    p.add_argument("--jobs", type=int, metavar="N", help="chapters executed at once, each in its own kernel "
                                                         "(default: 1; use it over runs already sampled)")
    p.set_defaults(func=_book)

    r = sub.add_parser("rollout", help="sample traces and continuations into a resumable run directory")
    r.add_argument("--model", required=True, help="registry name, hub id, or local directory / .gguf file")
    r.add_argument("--task", required=True, help="gsm8k, svamp, arc-challenge, arc-easy, ...")
    r.add_argument("--out", required=True, help="run directory (created, or resumed if it holds the same run)")
    r.add_argument("--limit", type=int, help="only the first LIMIT questions")
    r.add_argument("--sample", type=int, help="a seeded random sample of SAMPLE questions")
    r.add_argument("--split", help="task split (default: the task's test split)")
    r.add_argument("--data-dir", help="benchmark files (default: $SIAUTIL_DATA_DIR, else the hub)")
    r.add_argument("--shard", help="i/n: this job takes every n-th window of questions (--window) from the i-th")
    _add_settings(r)
    r.add_argument("--precision", choices=models.PRECISIONS, default=None,
                   help="weights: fp32, bf16, fp16 (GPUs without bf16) or 4-bit nf4; default: the model's own (toy: fp32), "
                        "else bf16 where the hardware has it, fp16 on other GPUs (fp32 for Gemma-2), fp32 on other CPUs")
    r.add_argument("--backend", choices=BACKENDS, default="engine", help=BACKEND_HELP)
    r.add_argument("--device", default=None)
    r.set_defaults(func=_rollout)

    m = sub.add_parser("merge", help="join the shards of one run into one run directory")
    m.add_argument("runs", nargs="+", help="run directories (shards of the same configuration)")
    m.add_argument("--out", required=True)
    m.set_defaults(func=_merge)

    g = sub.add_parser("grid", help="run every (model, dataset) cell of a profile, then build the book")
    g.add_argument("--profile", default="default", choices=grid.PROFILES)
    g.add_argument("--runs-dir", help="where the run stores go (default: runs/ of this checkout)")
    g.add_argument("--shard", help="i/n: this machine takes every n-th window of questions of every cell (a cell with fewer windows than n leaves some machines idle)")
    g.add_argument("--no-book", action="store_true", help="sample only")
    g.add_argument("--estimate", action="store_true", help="print the estimated cost and exit")
    g.add_argument("--backend", choices=BACKENDS, default="engine", help=BACKEND_HELP)
    g.add_argument("--device", default=None, help="device for --estimate (default: the detected one)")
    g.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: on this machine (--workers); ray: every (cell, shard) a task of a Ray cluster "
                        "(pip install 'siautil[ray]'), retried when its worker dies")
    g.add_argument("--jobs", type=int, metavar="N", help=f"chapters executed at once, each in its own kernel (default: one per core, at most {workers.MAX_PROCESSES})")
    g.add_argument("--workers", type=int, metavar="N",
                   help="local executor: sample in N processes of this machine, each cell cut into N shards "
                        f"(default: one per core, at most {workers.MAX_PROCESSES}, on a CPU; 1 on a GPU, with --shard, and for the "
                        "paper's large models)")
    ray_flags = g.add_argument_group("with --executor ray")
    ray_flags.add_argument("--address", help="Ray cluster to join: auto (the one this machine belongs to) or "
                                             "ray://HOST:10001 (default: $RAY_ADDRESS, else a local cluster)")
    ray_flags.add_argument("--shards-per-cell", type=int, metavar="K",
                           help="tasks per cell, each every K-th window of questions (default: 1)")
    ray_flags.add_argument("--cpus-per-task", type=float, metavar="N",
                           help="CPUs a task asks for, and its torch threads (default: 1)")
    ray_flags.add_argument("--gpus-per-task", type=float, metavar="N",
                           help="GPUs a task asks for (default: 1 on a cluster with GPUs, else 0)")
    ray_flags.add_argument("--max-retries", type=int, metavar="N",
                           help="runs of a task again after its worker dies (default: 3)")
    g.set_defaults(func=_grid)

    t = sub.add_parser("toy", help="train the toy task's models (five regimes, three seeds)")
    t.add_argument("action", choices=["train"])
    t.add_argument("--regime", default="all", choices=["all", *models.TOY_REGIMES],
                   help="one regime (its parent's weights are read from --out), or all")
    t.add_argument("--seed", default="all", help="one training seed, or all (%(default)s)")
    t.add_argument("--out", help="output directory (default: the shipped assets, siautil/assets/toy)")
    t.set_defaults(func=_toy)
    return parser


def _kept(args: argparse.Namespace) -> str:
    """What a command stopped by Ctrl-C leaves, and how to go on from there."""
    again = "run the same command again to resume"
    if args.command == "rollout":
        return f"the questions finished are kept in {args.out}; {again}"
    if args.command == "grid":
        from . import paths

        where = args.runs_dir or paths.default_runs_dir()
        return f"the questions finished are kept under {where}/{args.profile}; {again}"
    if args.command == "book":
        return f"the chapters executed before keep their pages; {again}"
    if args.command == "merge":
        return f"the questions merged are kept in {args.out}; {again}"
    return "nothing it finished is lost"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SiautilError, ValueError, KeyError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e  # a KeyError's str() adds quotes
        print(f"error: {message}", file=sys.stderr)
        return ERROR_EXIT
    except KeyboardInterrupt:
        # a progress bar may be half-drawn on the line: start a fresh one
        print(f"\ninterrupted: {_kept(args)}", file=sys.stderr)
        return INTERRUPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
