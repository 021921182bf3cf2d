"""A run's configuration: what is sampled (model, task, questions) and how (the sampling
settings), frozen, passed whole between the grid, the runs, the cluster and the command line.
What it writes into a run directory's ``config.json`` is :meth:`RunConfig.stored`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import models, tasks
from .rollout import RolloutConfig

#: Version of the sampling protocol a store was written under. 1 (no ``protocol`` key): the
#: first answer stopped every generation and ``t = T`` was filled in from the trace's own answer
#: without sampling. 2: the stop rule, extraction mode and sampling chain are explicit settings,
#: every checkpoint with budget left is sampled, and records keep their continuations' text.
#: 3: each sequence draws from its own random stream (:mod:`siautil.streams`) and questions are
#: sampled in windows (``window``): the same distributions as 2, other draws.
PROTOCOL = 3

#: A shuffled run's name ends in its kind of shuffle, so each has its own run store.
SHUFFLE_SUFFIX = {"none": "", "tokens": "__shuffled", "steps": "__shuffled-steps"}
#: What samples a run: this package's engine (:mod:`siautil.rollout`, the reference, exact
#: per-stream draws on any hardware), or vLLM (:mod:`siautil.vllm_engine`, for the paper grid on
#: GPUs: the same prompts, settings and records, equal to the engine's in distribution, not
#: bit for bit).
BACKENDS = ("engine", "vllm")


@dataclass(frozen=True)
class RunConfig:
    """One run: ``model`` (registry name, hub id or path) on ``task`` with ``sampling``; the
    questions are the task's ``split`` (default: its test split), a seeded random ``sample`` of
    them if given (``data_seed``), of which the first ``limit``; ``backend`` (:data:`BACKENDS`)
    samples them. ``precision`` is one of
    :data:`siautil.models.PRECISIONS`, or ``None`` for the model's default where it is sampled
    (:func:`siautil.models.resolve_precision`). The limit is not part of the run's identity: a
    store sampled with a larger one holds this run's questions too."""

    model: str
    task: str
    sampling: RolloutConfig = RolloutConfig()
    precision: str | None = None
    split: str | None = None
    sample: int | None = None
    data_seed: int = 0
    limit: int | None = None
    backend: str = "engine"

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; valid backends: {', '.join(BACKENDS)}")
        if self.precision is not None:
            models.resolve_precision(self.precision)  # an unknown precision is refused here

    @property
    def name(self) -> str:
        """The run's directory name in a profile: ``model__task``, and its shuffle."""
        return f"{self.model}__{self.task}" + SHUFFLE_SUFFIX[self.sampling.shuffle]

    @property
    def needs_files(self) -> bool:
        """Whether the run reads benchmark files (its task's :attr:`~siautil.tasks.Task.needs_files`)."""
        return tasks.get(self.task).needs_files

    def shuffled(self, shuffle: str = "tokens") -> RunConfig:
        """This run with its continuations seeing shuffled prefixes (:data:`siautil.rollout.SHUFFLES`)."""
        return replace(self, sampling=replace(self.sampling, shuffle=shuffle))

    def resolved(self, device: str | None = None) -> RunConfig:
        """This run with its precision decided (the model's default on ``device`` where none was given)."""
        return replace(self, precision=models.resolve_precision(self.precision, device, model=self.model))

    def stored(self, weights: str) -> dict:
        """What a run directory's ``config.json`` holds of this run (its precision resolved
        first): every setting, the protocol, and the ``weights`` it was sampled from."""
        if self.precision is None:
            raise ValueError("a run is stored with its precision decided: RunConfig.resolved() first")
        return dict(model=self.model, task=self.task, split=self.split, sample=self.sample, data_seed=self.data_seed,
                    precision=self.precision, backend=self.backend, protocol=PROTOCOL, **self.sampling.as_dict(),
                    weights=weights)


def default_budget(model: str) -> int:
    """The trace budget a run gets when none is given (``siautil rollout`` without
    ``--max-new-tokens``): :class:`~siautil.rollout.RolloutConfig`'s, or half the model's context
    where that is shorter, the other half left to the prompt (the toy models: 128 of 256 tokens).
    It depends on the model alone, so every shard and resumption of a run computes the same."""
    budget = RolloutConfig().max_new_tokens
    context = models.context_length(model)
    return budget if context is None else min(budget, context // 2)
