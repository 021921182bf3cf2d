"""The experiment grid: which (model, dataset) cells a profile runs, where their stores live,
what the whole grid costs, and one call that runs it and rebuilds the book.

* ``default``: the embedded models (the toy task's base, SFT and RL models; SmolLM2-135M
  on easy word problems and SVAMP) with settings sized for a laptop CPU;
* ``paper``: the paper's eleven models on GSM8K, SVAMP and ARC-Challenge, bf16 unquantised as
  released, for a GPU machine with the Hugging Face hub;
* ``paper-nf4``: the same in 4-bit NF4, for GPUs under 24 GB (it changes ``p_θ`` itself);
* ``pilot``: SmolLM2-135M-Instruct on 10 questions of each benchmark, to see where it gives signal.

Every profile follows the paper's protocol (:data:`PROTOCOL`: generations run to EOS or the
budget, answers read with ``strict-match``, temperature and top-p only) and holds one sampling
chain for all its cells, except where a cell says otherwise by name (the toy models: see
:data:`TOY`). N, M, the stride and the budget are a profile's size.
"""

from __future__ import annotations

import os
from dataclasses import InitVar, dataclass, replace
from pathlib import Path

import pandas as pd

from . import models, rollout, runs, store, tasks


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a model on a task with fixed settings. ``sampling`` names the
    sampling chain when a cell departs from its profile's (shown in the tables)."""

    model: str
    task: str
    settings: rollout.RolloutConfig
    limit: int | None = None
    split: str | None = None
    precision: str | None = None   # models.PRECISIONS; None: fp32 on CPU, bf16 on CUDA
    needs_data: bool = False       # reads benchmark files (skipped when they are absent)
    quantize: InitVar[str | None] = None  # the old keyword: "4bit" is precision "nf4"

    def __post_init__(self, quantize):
        if quantize is not None or self.precision is not None:
            object.__setattr__(self, "precision", models.resolve_precision(self.precision, quantize))

    @property
    def name(self) -> str:
        return f"{self.model}__{self.task}" + ("__shuffled" if self.settings.shuffle_prefix else "")

    def shuffled(self) -> "Cell":
        return replace(self, settings=replace(self.settings, shuffle_prefix=True))


#: The paper's protocol (Section 5, Appendix A): generations run to EOS or the token budget,
#: answers need an explicit final-answer marker, sampling is temperature and nucleus only (the
#: paper's values were lost from its text: 0.7 and 0.95 are our choice). Every profile uses it.
PROTOCOL = dict(stop="eos", extraction="strict-match", temperature=0.7, top_p=0.95, top_k=0, min_p=None,
                repetition_penalty=1.0)
PAPER = rollout.RolloutConfig(n_traces=4, n_continuations=16, stride=50, max_new_tokens=600,
                              max_batch_rows=512, **PROTOCOL)
SMOL = rollout.RolloutConfig(n_traces=2, n_continuations=6, stride=24, max_new_tokens=96,
                             max_batch_rows=64, **PROTOCOL)
#: SmolLM2-135M-Instruct on 10 questions of each of the paper's datasets (and ARC-Easy) under the
#: paper's protocol, with a budget long enough for most of its traces to finish: which datasets
#: give signal, before a larger run is sized (``siautil grid --profile pilot --runs-dir data/pilot``).
PILOT = rollout.RolloutConfig(n_traces=2, n_continuations=4, stride=96, max_new_tokens=384,
                              max_batch_rows=64, **PROTOCOL)
#: The toy models' own sampling chain, the one departure from :data:`PROTOCOL`: temperature 2.0
#: and no nucleus. At the protocol's 0.7 the toy SFT and RL models are right every time, their
#: answer distribution is a point mass from the first checkpoint, and the coefficient is
#: undefined for most traces. Held-out accuracy of one sample (``toy.accuracy``, 300
#: questions): SFT 0.997 at 1.4 and 0.857 at 1.96; RL 0.993 and 0.853; base 0.217 and 0.183
#: (chance is 0.2). Books before protocol 2 said 1.4 but sampled at 1.96 (the temperature was
#: applied twice with top-k off). The stop rule and extraction are the protocol's.
TOY = rollout.RolloutConfig(n_traces=4, n_continuations=16, stride=4, max_new_tokens=52,
                            max_batch_rows=512, **{**PROTOCOL, "temperature": 2.0, "top_p": 1.0})

#: Models of Table 2 (shuffled prefixes) in the paper.
PAPER_SHUFFLE = ["qwen2.5-3b", "qwen2.5-3b-instruct", "deepseek-r1-distill-qwen-7b", "gemma-2-2b-it"]


def cells(profile: str) -> list[Cell]:
    """The cells of a profile, in run order."""
    if profile == "default":
        toy = [Cell(f"toy-{r}", "toy", TOY, limit=100) for r in ("base", "sft", "rl")]
        smol = [Cell("smollm2-135m-instruct", "easy", SMOL, limit=10),
                Cell("smollm2-135m-instruct", "svamp", SMOL, limit=6, needs_data=True)]
        # Table 2 needs fewer questions than Table 1: the shuffled runs take half, to keep the
        # default book within its time
        return toy + [replace(toy[0].shuffled(), limit=50), replace(toy[1].shuffled(), limit=50)] + smol
    if profile == "pilot":
        return [Cell("smollm2-135m-instruct", d, PILOT, limit=10, needs_data=True)
                for d in ("gsm8k", "svamp", "arc-easy", "arc-challenge")]
    if profile in ("paper", "paper-nf4"):
        precision = "nf4" if profile == "paper-nf4" else "bf16"
        out = [Cell(m, d, PAPER, precision=precision, needs_data=True)
               for m in models.PAPER_MODELS for d in ("gsm8k", "svamp", "arc-challenge")]
        out += [Cell(m, "gsm8k", PAPER, precision=precision, needs_data=True).shuffled() for m in PAPER_SHUFFLE]
        return out
    raise ValueError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")


#: The profiles :func:`cells` knows.
PROFILES = ("default", "paper", "paper-nf4", "pilot")


def default_runs_dir() -> Path:
    """``$SIAUTIL_RUNS``, else ``data/runs`` of the checkout this runs in, else the user cache."""
    if os.environ.get("SIAUTIL_RUNS"):
        return Path(os.environ["SIAUTIL_RUNS"])
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").exists() and (d / "siautil").is_dir():
            return d / "data" / "runs"
    return models.cache_dir() / "runs"


def run_dir(cell: Cell, profile: str, runs_dir: str | Path | None = None) -> Path:
    return Path(runs_dir or default_runs_dir()) / profile / cell.name


def data_available(cell: Cell) -> bool:
    """Whether a cell's benchmark files can be read here: the checkout's ``data/`` or
    ``$SIAUTIL_DATA_DIR``, else the hub when it is not switched off."""
    if not cell.needs_data:
        return True
    from .tasks.datafiles import data_dir

    directory = data_dir()
    if directory is not None:
        return directory.is_dir()
    return os.environ.get("HF_HUB_OFFLINE") != "1"


def ensure(cell: Cell, profile: str, runs_dir: str | Path | None = None, shard: str | None = None,
           progress: bool = True) -> Path | None:
    """The run directory of ``cell``, sampling whatever is missing (resumable). ``None`` when the
    cell needs benchmark files that are not available here."""
    if not data_available(cell):
        return None
    return runs.rollout_to_store(cell.model, cell.task, run_dir(cell, profile, runs_dir), cell.settings,
                                 limit=cell.limit, split=cell.split, precision=cell.precision, shard=shard,
                                 progress=progress)


def select(profile: str, model: str | None = None, dataset: str | None = None, precision: str | None = None,
           limit: int | None = None, shuffled: bool | None = False) -> list[Cell]:
    """The cells a chapter works on: the profile's (optionally only shuffled or unshuffled ones),
    or, when ``model`` is given, that one model on ``dataset`` with the profile's settings
    (what ``papermill ... -p model X -p dataset gsm8k -p precision bf16`` asks for)."""
    if model:
        base = PAPER if profile.startswith("paper") else (TOY if dataset == "toy" else SMOL)
        if precision is None and profile == "paper-nf4":
            precision = "nf4"
        cell = Cell(model, dataset or "gsm8k", base, limit=limit, precision=precision,
                    needs_data=(dataset or "gsm8k") in _SIZES)
        return [cell.shuffled()] if shuffled else [cell]
    out = cells(profile)
    if shuffled is not None:
        out = [c for c in out if c.settings.shuffle_prefix == shuffled]
    if limit is not None:
        out = [replace(c, limit=limit) for c in out]
    return out


def sweep(base: Cell, runs_dir: str | Path | None = None, progress: bool = True, **values) -> pd.DataFrame:
    """Records of ``base`` re-run under every combination of the sampling ``values`` given
    (e.g. ``temperature=(1.6, 2.0), top_p=(1.0, 0.9)``), each a run of its own under the
    ``sweep`` profile (resumable, reused once sampled), with one column per swept setting."""
    import itertools

    names = list(values)
    frames = []
    for combo in itertools.product(*(values[n] for n in names)):
        settings = replace(base.settings, **dict(zip(names, combo)))
        tag = "__".join(f"{n}={v}" for n, v in zip(names, combo))
        cell = replace(base, settings=settings)
        path = runs.rollout_to_store(cell.model, cell.task, run_dir(cell, "sweep", runs_dir) / tag, settings,
                                     limit=cell.limit, split=cell.split, precision=cell.precision, progress=progress)
        frames.append(store.load_records(path).assign(**dict(zip(names, combo))))
    return pd.concat(frames, ignore_index=True)


def records(profile: str, chosen: list[Cell] | None = None, runs_dir: str | Path | None = None,
            run_missing: bool = True, progress: bool = False) -> pd.DataFrame:
    """The records of ``chosen`` cells (default: every cell of the profile), concatenated, with
    ``model``, ``dataset``, ``regime`` and ``shuffled`` columns; missing cells are sampled
    first when ``run_missing``; cells whose data is unavailable are left out."""
    from .paper import regime

    frames = []
    for cell in chosen if chosen is not None else cells(profile):
        path = run_dir(cell, profile, runs_dir)
        if run_missing:
            path = ensure(cell, profile, runs_dir, progress=progress)
            if path is None:
                continue
        elif not (path / store.CONFIG).exists():
            continue
        df = store.load_records(path)
        if cell.limit is not None:  # a store may hold more questions than this cell asks for
            df = df[df["question_index"] < cell.limit].reset_index(drop=True)
        df["shuffled"] = cell.settings.shuffle_prefix
        df["regime"] = regime(cell.model)
        frames.append(df)
    if not frames:
        raise store.RunStoreError(f"no records for profile {profile!r} in {runs_dir or default_runs_dir()}")
    return pd.concat(frames, ignore_index=True)


#: Generated tokens per second assumed for the estimate, per device kind. These are rough
#: assumptions, not measurements: the CPU figure sits between SmolLM2-135M in the default book
#: (about 120 tok/s) and the benchmark's tiny model (about 2,000 tok/s); the CUDA figure has not
#: been measured (benchmarks/rollout_throughput.py --device cuda measures it).
THROUGHPUT = {"cpu": 300.0, "cuda": 20000.0}


def estimate(profile: str, device: str | None = None, mean_trace: int = 300) -> pd.DataFrame:
    """A rough cost of a profile: generated tokens per cell and hours on ``device``.

    Per question: ``N`` traces of ``mean_trace`` tokens, and from each of their checkpoints
    (``t = T`` included) ``M`` continuations. Under ``stop="eos"`` a continuation from ``t``
    is another draw of the rest of a generation: about ``mean_trace - t`` tokens plus a tail of
    20 (capped by its budget); under ``stop="answer"`` it ends at the answer, assumed to come
    within half the remaining budget.
    """
    device = device or models.default_device()
    rows = []
    for cell in cells(profile):
        s = cell.settings
        n_q = cell.limit or _size(cell)
        ts = rollout.checkpoints(mean_trace, s.stride)
        checkpoints = len(ts)
        share = 1.0 if s.stop == "eos" else 0.5
        cont = sum(min((s.max_new_tokens - t) * share, mean_trace - t + 20) for t in ts)
        tokens = n_q * s.n_traces * (mean_trace + s.n_continuations * cont)
        rows.append(dict(cell=cell.name, questions=n_q, checkpoints_per_trace=checkpoints, tokens=int(tokens),
                         hours=tokens / THROUGHPUT["cuda" if device.startswith("cuda") else "cpu"] / 3600))
    df = pd.DataFrame(rows)
    return pd.concat([df, pd.DataFrame([dict(cell="total", questions=df["questions"].sum(), tokens=df["tokens"].sum(),
                                             hours=df["hours"].sum())])], ignore_index=True)


_SIZES = {"gsm8k": 1319, "svamp": 300, "arc-challenge": 1172, "arc-easy": 2376}


def _size(cell: Cell) -> int:
    return _SIZES.get(cell.task, 100)


def run_grid(profile: str, runs_dir: str | Path | None = None, shard: str | None = None, book: bool = True,
             progress: bool = True) -> None:
    """Sample every cell of ``profile`` (resumable, shardable), then execute the chapters with
    parameters pointing at the stores and build the book."""
    if profile.startswith("paper"):
        est = estimate(profile)
        print(est.to_string(index=False))
        print(f"estimated total: {est['tokens'].iloc[-1]:,} generated tokens, "
              f"{est['hours'].iloc[-1]:.1f} h on {models.default_device()}", flush=True)
    for cell in cells(profile):
        path = ensure(cell, profile, runs_dir, shard=shard, progress=progress)
        if path is None:
            print(f"[grid] skipped {cell.name}: benchmark files not available (set ${tasks.DATA_ENV})", flush=True)
    if book and (shard is None or shard.startswith("0/")):
        from . import book as book_mod

        params = {"profile": profile}
        if runs_dir:
            params["runs_dir"] = str(Path(runs_dir).resolve())
        book_mod.build(parameters=params, parameters_if_declared=True)
