"""Run a (model, task, settings) configuration into a run store, resumably, with progress."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import models, rollout, store, tasks


def parse_shard(shard: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``: this job takes the questions whose index is ``i`` modulo ``n``."""
    if not shard:
        return 0, 1
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {shard!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard {shard}: need 0 <= i < n")
    return i, n


#: Version of the sampling protocol a store was written under. 1 (no ``protocol`` key): the
#: first answer stopped every generation and ``t = T`` was filled in from the trace's own answer
#: without sampling. 2: the stop rule, extraction mode and sampling chain are explicit settings,
#: every checkpoint with budget left is sampled, and records keep their continuations' text.
PROTOCOL = 2


def run_config(model: str, task: str, settings: rollout.RolloutConfig, precision: str,
               split: str | None, sample: int | None, data_seed: int) -> dict:
    return dict(model=model, task=task, split=split, sample=sample, data_seed=data_seed,
                precision=precision, protocol=PROTOCOL, **settings.as_dict())


def rollout_to_store(model: str, task: str, out: str | Path, settings: rollout.RolloutConfig = rollout.RolloutConfig(),
                     limit: int | None = None, shard: str | None = None, precision: str | None = None,
                     device: str | None = None, split: str | None = None, sample: int | None = None,
                     data_seed: int = 0, data_dir: str | None = None, loaded=None, progress: bool = True,
                     quantize: str | None = None) -> Path:
    """Sample ``task`` with ``model`` into the run directory ``out``; resume if it exists.

    ``precision`` is one of :data:`siautil.models.PRECISIONS` (the old ``quantize="4bit"`` is
    ``nf4``). ``loaded`` is an already loaded ``(model, tokenizer)`` pair (the name is still
    recorded, and its precision when it was loaded by :func:`siautil.models.load`).
    Questions are numbered in the task's order (after ``sample``); ``limit`` keeps the first
    ``limit`` of them; ``shard="i/n"`` takes every n-th from the i-th.
    """
    i, n = parse_shard(shard)
    task_obj = tasks.get(task) if isinstance(task, str) else task
    if loaded is not None and precision is None and quantize is None:
        precision = getattr(loaded[0], "siautil_precision", None)
    precision = models.resolve_precision(precision, quantize, device=device)
    config = run_config(model, task_obj.name, settings, precision, split, sample, data_seed)
    config["weights"] = models.weights(model) if loaded is None else getattr(loaded[0], "siautil_weights", model)
    run = store.RunStore.open(out, {**config, "versions": store.package_versions()})
    questions = task_obj.load(split, sample=sample, seed=data_seed, data_dir=data_dir)
    if limit is not None:
        questions = questions[:limit]
    todo = [(k, q) for k, q in enumerate(questions) if k % n == i and k not in run.done()]
    if not todo:
        return run.path
    lm, tok = loaded if loaded is not None else models.load(model, precision, device=device)
    engine = rollout.Engine(lm, tok, task_obj, settings, chat=models.is_chat(model, tok))
    engine.prompt_ids(todo[0][1])  # settings the model cannot take fail here, before any sampling
    bar = tqdm(todo, desc=f"{model} × {task_obj.name}", unit="question", disable=not progress)
    start = time.perf_counter()
    for k, q in bar:
        try:
            records = engine.run_question(q, k)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if settings.max_batch_rows <= settings.n_continuations:
                raise
            settings = rollout.RolloutConfig(**{**settings.as_dict(), "max_batch_rows": settings.max_batch_rows // 2})
            engine.config = settings
            bar.write(f"CUDA out of memory: continuing with max_batch_rows={settings.max_batch_rows}")
            records = engine.run_question(q, k)
        run.write(k, records)
        elapsed = time.perf_counter() - start
        bar.set_postfix(tok_s=f"{engine.stats['generated_tokens'] / max(elapsed, 1e-9):.0f}")
    return run.path
