"""The experiment grid as data: which (model, task, settings) cells each profile holds.

* ``default``: the embedded models (the toy task's base, SFT and RL models; SmolLM2-135M
  on ARC-Easy) with settings sized for a laptop CPU;
* ``paper``: the paper's eleven models on GSM8K, SVAMP and ARC-Challenge, bf16 unquantised as
  released, for a GPU machine with the Hugging Face hub;
* ``paper-nf4``: the same in 4-bit NF4, for GPUs under 24 GB (it changes ``p_θ`` itself);
* ``pilot``: SmolLM2-135M-Instruct on 10 questions of each benchmark, to see where it gives signal;
* ``smollm2-arc``: SmolLM2-135M-Instruct on 48 questions of each ARC set, the larger run
  committed under ``data/stored`` that the published book reads (:func:`siautil.runs.stored`);
* ``toy-regimes``: the controlled experiment, every shipped toy model (``models.TOY_SHIPPED``:
  each regime and training seed) on 60 toy questions, with the prefixes as written, with their
  tokens shuffled and with their steps randomised, at the toy models' one sampling setting
  (:data:`TOY`; also stored under ``data/stored``).

Every profile follows the paper's protocol (:data:`PROTOCOL`: generations run to EOS or the
budget, answers read with ``strict-match``, temperature and top-p only) and holds one sampling
chain for all its cells, except the toy models, which sample at :data:`TOY` in every profile.
N, M, the stride and the budget are a profile's size.

Running the cells, reading their records, where their stores live and what a profile costs
are :mod:`siautil.runs` (``runs.ensure``, ``runs.records``, ``runs.sweep``, ``runs.run_grid``,
``runs.run_dir``, ``runs.cost``); the old names here (``grid.records``, ``grid.estimate``, ...)
still reach them.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, replace

from . import models, rollout, tasks


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a model on a task with fixed settings (a cell whose settings depart
    from its profile's chain, such as the toy models', says so by its settings)."""

    model: str
    task: str
    settings: rollout.RolloutConfig
    limit: int | None = None
    split: str | None = None
    precision: str | None = None   # models.PRECISIONS; None: models.resolve_precision (bf16 where the hardware has it)
    needs_data: InitVar[bool | None] = None  # the old field, ignored: the task says (needs_files)
    quantize: InitVar[str | None] = None  # the old keyword: "4bit" is precision "nf4"

    def __post_init__(self, needs_data, quantize):
        if quantize is not None or self.precision is not None:
            object.__setattr__(self, "precision", models.resolve_precision(self.precision, quantize))

    @property
    def name(self) -> str:
        return f"{self.model}__{self.task}" + SHUFFLE_SUFFIX[self.settings.shuffle]

    @property
    def needs_files(self) -> bool:
        """Whether the cell reads benchmark files (its task's :attr:`~siautil.tasks.Task.needs_files`)."""
        return tasks.get(self.task).needs_files

    def shuffled(self, shuffle: str = "tokens") -> "Cell":
        """This cell with its continuations seeing shuffled prefixes (:data:`siautil.rollout.SHUFFLES`)."""
        return replace(self, settings=replace(self.settings, shuffle=shuffle))


# the old field, read: what the task says (set after the class, so ``Cell(..., needs_data=...)``
# is still accepted by the generated ``__init__`` and ignored)
Cell.needs_data = property(lambda self: self.needs_files, doc="The old name of :attr:`Cell.needs_files`.")


#: The paper's protocol (Section 5, Appendix A): generations run to EOS or the token budget,
#: answers need an explicit final-answer marker, sampling is temperature and nucleus only (the
#: paper's values were lost from its text: 0.7 and 0.95 are our choice). Every profile uses it.
PROTOCOL = dict(stop="eos", extraction="strict-match", temperature=0.7, top_p=0.95, top_k=0, min_p=None,
                repetition_penalty=1.0)
PAPER = rollout.RolloutConfig(n_traces=4, n_continuations=16, stride=50, max_new_tokens=600,
                              max_batch_rows=512, **PROTOCOL)
#: SmolLM2-135M-Instruct in the default book: ARC-Easy, the dataset where the pilot (below)
#: found signal, sized for a laptop CPU. The budget lets most traces finish (pilot: ARC-Easy
#: traces 4-240 tokens, mean 98; before #15 the budget was 96 and most traces hit it).
SMOL = rollout.RolloutConfig(n_traces=2, n_continuations=6, stride=24, max_new_tokens=256,
                             max_batch_rows=128, **PROTOCOL)
#: SmolLM2-135M-Instruct on 10 questions of each of the paper's datasets (and ARC-Easy) under the
#: paper's protocol, with a budget long enough for most of its traces to finish: which datasets
#: give signal, before a larger run is sized (``siautil grid --profile pilot --runs-dir data/stored``).
PILOT = rollout.RolloutConfig(n_traces=2, n_continuations=4, stride=96, max_new_tokens=384,
                              max_batch_rows=64, **PROTOCOL)
#: The larger SmolLM2 run the published book reads (profile ``smollm2-arc``, committed under
#: ``data/stored``; ``make book`` never re-samples it): the two ARC sets, where the pilot found
#: signal, with N = 4 traces and M = 8 continuations (the paper's values were lost from its
#: text; the ``paper`` profile takes 4 and 16). ARC traces are short (pilot: mean
#: 79-98 tokens, all finished within 384), so the stride is 24 tokens for about as many
#: checkpoints per trace as the paper's 50 give its GSM8K traces. Windows of 2 questions keep
#: the re-sampling test (``tests/test_stored.py``) short; the continuations fill the batches.
SMOL_ARC = rollout.RolloutConfig(n_traces=4, n_continuations=8, stride=24, max_new_tokens=384,
                                 max_batch_rows=128, window=2, **PROTOCOL)
#: The toy models' sampling setting, the one departure from :data:`PROTOCOL`, the same in every
#: profile: temperature 1.5 and no nucleus. At the protocol's 0.7 the toy SFT and RL models are
#: right every time, their answer distribution is a point mass from the first checkpoint, and no
#: coefficient is defined; 1.5 is the lowest temperature of those measured at which every regime
#: of the controlled experiment makes some errors, and base stays about at chance (1 in 5)
#: (``toy.accuracy_by_temperature``, shown in the training chapter). The stop rule and extraction
#: are the protocol's. 1,024 rows a batch: the tiny models are bound by per-step overhead.
TOY = rollout.RolloutConfig(n_traces=4, n_continuations=16, stride=4, max_new_tokens=52,
                            max_batch_rows=1024, **{**PROTOCOL, "temperature": 1.5, "top_p": 1.0})

#: A shuffled cell's name ends in its kind of shuffle, so each has its own run store.
SHUFFLE_SUFFIX = {"none": "", "tokens": "__shuffled", "steps": "__shuffled-steps"}
#: Models of Table 2 (shuffled prefixes) in the paper.
PAPER_SHUFFLE = ["qwen2.5-3b", "qwen2.5-3b-instruct", "deepseek-r1-distill-qwen-7b", "gemma-2-2b-it"]


def cells(profile: str) -> list[Cell]:
    """The cells of a profile, in run order."""
    if profile == "default":
        toy = [Cell(f"toy-{r}", "toy", TOY, limit=100) for r in ("base", "sft", "rl")]
        # ARC-Easy only: in the pilot (data/stored/pilot) SmolLM2 got no GSM8K or SVAMP question right
        # (accuracy 0 of 20 traces each): nothing for the correctness diagnostics to separate, and
        # a defined coefficient for 2 of 20 traces each
        smol = [Cell("smollm2-135m-instruct", "arc-easy", SMOL, limit=12)]
        # Table 2 needs fewer questions than Table 1: the shuffled runs take half, to keep the
        # default book within its time
        shuffled = [replace(c.shuffled(kind), limit=50) for kind in ("tokens", "steps") for c in toy[:2]]
        return toy + shuffled + smol
    if profile == "pilot":
        return [Cell("smollm2-135m-instruct", d, PILOT, limit=10)
                for d in ("gsm8k", "svamp", "arc-easy", "arc-challenge")]
    if profile == "smollm2-arc":
        return [Cell("smollm2-135m-instruct", d, SMOL_ARC, limit=48, precision="bf16")
                for d in ("arc-easy", "arc-challenge")]
    if profile == "toy-regimes":
        # the controlled experiment: every regime and training seed, each way of showing the prefixes
        toy = [Cell(models.toy_name(r, k), "toy", TOY, limit=60)
               for r, seeds in models.TOY_SHIPPED.items() for k in seeds]
        return toy + [c.shuffled(kind) for kind in ("tokens", "steps") for c in toy]
    if profile in ("paper", "paper-nf4"):
        precision = "nf4" if profile == "paper-nf4" else "bf16"
        out = [Cell(m, d, PAPER, precision=precision)
               for m in models.PAPER_MODELS for d in ("gsm8k", "svamp", "arc-challenge")]
        out += [Cell(m, "gsm8k", PAPER, precision=precision).shuffled(kind)
                for kind in ("tokens", "steps") for m in PAPER_SHUFFLE]
        return out
    raise ValueError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")


#: The profiles :func:`cells` knows.
PROFILES = ("default", "paper", "paper-nf4", "pilot", "smollm2-arc", "toy-regimes")


def select(profile: str, model: str | None = None, dataset: str | None = None, precision: str | None = None,
           limit: int | None = None, shuffle: str | None = "none") -> list[Cell]:
    """The cells a chapter works on: the profile's with one kind of ``shuffle``
    (:data:`siautil.rollout.SHUFFLES`; ``None``: every kind), or, when ``model`` is given, that one
    model on ``dataset`` with the profile's settings (what ``papermill ... -p model X -p dataset
    gsm8k -p precision bf16`` asks for)."""
    if model:
        base = PAPER if profile.startswith("paper") else (TOY if dataset == "toy" else SMOL)
        if precision is None and profile == "paper-nf4":
            precision = "nf4"
        cell = Cell(model, dataset or "gsm8k", base, limit=limit, precision=precision)
        kinds = rollout.SHUFFLES if shuffle is None else (shuffle,)
        return [cell.shuffled(kind) if kind != "none" else cell for kind in kinds]
    out = cells(profile)
    if shuffle is not None:
        out = [c for c in out if c.settings.shuffle == shuffle]
    if limit is not None:
        out = [replace(c, limit=limit) for c in out]
    return out


#: What moved to :mod:`siautil.runs` (running cells, reading their records, where they live,
#: what they cost), still reachable here under the old names. This module holds data only and
#: imports :mod:`siautil.runs` when one of these is asked for, so ``runs`` may import it.
MOVED = {"records": "records", "ensure": "ensure", "sweep": "sweep", "run_grid": "run_grid",
         "estimate": "cost", "run_dir": "run_dir", "default_runs_dir": "default_runs_dir",
         "data_available": "data_available", "THROUGHPUT": "THROUGHPUT"}


def __getattr__(name: str):
    if name in MOVED:
        from . import runs

        return getattr(runs, MOVED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
