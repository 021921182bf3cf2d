"""Running a configuration into a run store, and reading runs back.

:func:`sample` samples one :class:`~siautil.config.RunConfig` into a run directory, resumably,
with progress. A profile's runs (:mod:`siautil.grid`) go through it: :func:`ensure` one run
where its profile keeps it (:func:`siautil.paths.run_dir`), :func:`sample_grid` every run of a
profile, :func:`sweep` one run under several sampling settings; :func:`records` reads runs'
records for a chapter, :func:`published` the runs stored with the project first.
"""

from __future__ import annotations

import gc
import itertools
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from . import grid, memory, models, paths, rollout, store, tasks, vllm_engine
from .checkpoints import checkpoints
from .errors import SiautilError
from .config import RunConfig


class RunError(SiautilError, RuntimeError):
    """A run that cannot be sampled as configured on this machine."""


def parse_shard(shard: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``: this job takes the windows of questions whose index is ``i``
    modulo ``n`` (:func:`windows`)."""
    if not shard:
        return 0, 1
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {shard!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard {shard}: need 0 <= i < n")
    return i, n


def windows(n_questions: int, size: int) -> list[range]:
    """Question indices in windows of ``size`` (:attr:`siautil.rollout.RolloutConfig.window`):
    the unit a run samples together, writes, resumes and shards, so a resumed or sharded run
    decodes the same batches as a whole one."""
    return [range(s, min(s + size, n_questions)) for s in range(0, n_questions, size)]


def machine(device: str | None = None) -> dict:
    """What the last bits of the logits depend on besides the settings: the thread count, the
    CPU's architecture and model name, whether it has native bf16, and on a GPU its name,
    compute capability and CUDA and driver versions (:func:`siautil.models.gpu`). Recorded in a
    run's configuration and not compared on resume: a run resumed elsewhere says so
    (:class:`siautil.store.MachineChangedWarning`), as it replays bit for bit only where they match."""
    return dict(threads=torch.get_num_threads(), cpu=platform.machine(), cpu_model=models.cpu_model(),
                native_bf16=models.cpu_has_bf16(), **(models.gpu(device) or {}))


def questions(config: RunConfig, data_dir: str | None = None) -> list[tasks.Question]:
    """The questions a run asks, in the task's order (after its ``sample``), its first ``limit``."""
    found = tasks.get(config.task).load(config.split, sample=config.sample, seed=config.data_seed, data_dir=data_dir)
    return found if config.limit is None else found[:config.limit]


def sample(config: RunConfig, out: str | os.PathLike, shard: str | None = None, device: str | None = None,
           data_dir: str | None = None, loaded: models.LoadedModel | None = None, progress: bool = True,
           label: str | None = None) -> Path | str | None:
    """Sample ``config`` into the run directory ``out``; resume if it exists.

    A precision the weights cannot take is refused before anything is written. ``loaded`` is the
    model already loaded (:func:`siautil.models.load`; its name, precision and weights are then
    the run's). The questions are sampled in windows of ``config.sampling.window``
    (:func:`windows`): ``shard="i/n"`` takes every n-th window from the i-th (``None``, with a
    line that says so, when that leaves this shard nothing: nothing is written), and a window
    with any question missing is sampled again whole. Writers of the same run at once share its
    windows (each claims one before sampling it: :meth:`siautil.store.RunStore.claim`); a
    writer with other settings is refused. With ``progress``, a run with questions left says so
    in one line (``label``, default ``model × task``: how many questions it samples now, and
    where) and shows a progress bar.
    """
    i, n = parse_shard(shard)
    if loaded is not None:
        config = replace(config, precision=loaded.precision)
    config = config.resolved(device)
    if loaded is None:
        models.check_precision(config.model, config.precision, device)
    if config.backend == "vllm":
        vllm_engine.require()  # before any store is made for it
    asked = questions(config, data_dir)
    window = config.sampling.window
    mine = [w for j, w in enumerate(windows(len(asked), window)) if j % n == i]
    if not mine:
        n_q, n_w = len(asked), len(windows(len(asked), window))
        print(f"shard {i}/{n} has nothing to do: {n_q} question{'s' * (n_q != 1)} make{'s' * (n_q == 1)} "
              f"{n_w} window{'s' * (n_w != 1)} of {window} (--window), fewer than {i + 1}; use at most "
              f"{max(n_w, 1)} shard{'s' * (n_w > 1)}, or a smaller --window", flush=True)
        return None
    weights = loaded.weights if loaded is not None else models.weights(config.model)
    stored = {**config.stored(weights), "versions": store.package_versions(), "machine": machine(device)}
    with store.RunStore.open(out, stored) as run:
        done = run.done()
        todo = [w for w in mine if not set(w) <= done]
        if not todo:
            return run.path
        label = label or f"{config.model} × {config.task}"
        count = sum(len(w) for w in todo)
        if progress:
            print(f"sampling {label} now: {count} of {len(asked)} questions"
                  + (f" (shard {shard})" if shard else "") + f", into {run.path}", flush=True)
        engine = _engine(config, loaded, device, [asked[k] for w in todo for k in w])
        with tqdm(total=count, desc=label, unit="question", disable=not progress) as bar:
            _sample_windows(run, engine, asked, todo, bar, config.backend)
        return run.path


def _engine(config: RunConfig, loaded: models.LoadedModel | None, device: str | None, mine: list):
    """The backend that samples ``config`` (:data:`siautil.config.BACKENDS`), its settings
    checked on the prompts of the questions this job samples (``mine``) before any sampling;
    the engine's batch rows cut to what fits in the GPU's free memory beside the longest of
    them (:func:`fit_rows`)."""
    task = tasks.get(config.task)
    if config.backend == "vllm":
        llm, tokenizer = vllm_engine.load(config.model, config.precision, seed=config.sampling.seed)
        spec = models.REGISTRY.get(config.model)
        engine = vllm_engine.VLLMEngine(llm, tokenizer, task, config.sampling, config.model,
                                        chat=spec.chat if spec else None)
    else:
        loaded = loaded or models.load(config.model, config.precision, device=device)
        engine = rollout.Engine(loaded, task, config.sampling)
    prompts = [engine.prompt_ids(q) for q in mine]  # settings the model cannot take fail here
    return fit_rows(engine, prompts) if config.backend == "engine" else engine


def fit_rows(engine: rollout.Engine, prompts: list[list[int]]) -> rollout.Engine:
    """On a GPU, ``engine`` with its batch rows cut to what fits in free memory beside its
    trace caches (:func:`siautil.memory.rows_that_fit`, for the longest of ``prompts``; each
    row's slot as long as the engine makes it, :meth:`siautil.rollout.Engine.slot_limit`),
    saying so; elsewhere, or where the configured rows fit, ``engine`` as it is. A run whose
    one row does not fit is refused, naming what to lower."""
    device = engine.runner.device
    if device.type != "cuda":
        return engine
    cfg = engine.config
    free, total = torch.cuda.mem_get_info(device)
    shape = memory.Shape.of(engine.loaded.model.config)
    prompt = max(map(len, prompts))
    limit = engine.slot_limit(prompts)
    n_checkpoints = len(checkpoints(cfg.max_new_tokens, cfg.stride)) if cfg.shuffle != "none" else 0
    kept = memory.kept_tokens(cfg.window, cfg.n_traces, prompt, cfg.max_new_tokens, n_checkpoints)
    rows = memory.rows_that_fit(shape, engine.loaded.precision, free, limit, kept, cfg.max_batch_rows,
                                device_bytes=total)
    if rows < 1:
        raise RunError(f"{engine.loaded.name}: not one decoding row of {limit} tokens fits in the "
                       f"{free / memory.GB:.1f} GB free beside {cfg.window} questions' trace caches; lower "
                       "--window or --max-new-tokens, or use --precision nf4")
    if rows >= cfg.max_batch_rows:
        return engine
    print(f"{engine.loaded.name}: {rows} decoding rows fit in the {free / memory.GB:.1f} GB free "
          f"(max_batch_rows {cfg.max_batch_rows} asked); each question's file records the rows it was decoded with",
          flush=True)
    return engine.with_rows(rows)


def _sample_windows(run: store.RunStore, engine, asked: list, todo: list[range], bar, backend: str = "engine") -> None:
    """Sample the windows ``todo`` into ``run`` with ``engine`` (of ``backend``): each once
    claimed, skipped when another writer finished it meanwhile; the windows another writer
    holds are waited for at the end (sampled here only if it died before finishing them).
    Each question's file records its backend, batch rows and window (:meth:`siautil.store.RunStore.decoding`)."""
    start, counted = time.perf_counter(), set()
    current = [engine]

    def sample_window(engine, window: range) -> None:
        # a part retried after running out of memory may hold questions already written here
        mine = [k for k in window if k not in counted]
        if not mine:
            return
        decoding = dict(backend=backend, max_batch_rows=engine.config.max_batch_rows, window=len(mine))
        for k, records in engine.run_window([(k, asked[k]) for k in mine]):
            run.write(k, records, decoding)
            if k not in counted:
                counted.add(k)
                bar.update()
            bar.set_postfix(tok_s=f"{engine.stats['generated_tokens'] / max(time.perf_counter() - start, 1e-9):.0f}")

    def finished_elsewhere(window: range) -> bool:
        if not set(window) <= run.done():
            return False
        bar.update(len(set(window) - counted))
        counted.update(window)
        return True

    def take(window: range, wait: bool) -> bool:
        with run.claim(window.start, wait=wait) as mine:
            if mine and not finished_elsewhere(window):
                current[0] = _with_memory(current[0], window, sample_window, bar)
        return mine

    held = [w for w in todo if not take(w, wait=False)]
    if held:
        bar.write(f"waiting for another writer of {run.path}, which holds {len(held)} window(s) of this run")
    for w in held:
        take(w, wait=True)


def _with_memory(engine, window: range, sample_window, bar):
    """``sample_window(engine, part)`` over the parts of ``window``: when CUDA runs out of
    memory, the part is split in two (fewer questions in flight hold fewer trace caches), and
    a single question is sampled again with half the batch rows; returns the engine that
    sampled the last part (the next windows start from its rows)."""
    parts = [window]
    while parts:
        part = parts[0]
        try:
            sample_window(engine, part)
            parts.pop(0)
            continue
        except torch.cuda.OutOfMemoryError:
            rows = engine.config.max_batch_rows
            if len(part) == 1 and (rows <= engine.config.n_continuations or not hasattr(engine, "with_rows")):
                raise
        # out of the handler, so the failed attempt's frames (and its caches) can be freed
        gc.collect()
        torch.cuda.empty_cache()
        if len(part) > 1:
            half = len(part) // 2
            parts[:1] = [part[:half], part[half:]]
            bar.write(f"CUDA out of memory: questions {part.start}-{part.stop - 1} again, {half} and "
                      f"{len(part) - half} at a time")
        else:
            engine = engine.with_rows(rows // 2)
            bar.write(f"CUDA out of memory: question {part.start} again with max_batch_rows={rows // 2}")
    return engine


# ---------------------------------------------------------------------------- a profile's runs


def data_available(config: RunConfig) -> bool:
    """Whether a run's benchmark files can be read here: the checkout's ``data/`` or
    ``$SIAUTIL_DATA_DIR``, else the hub when it is not switched off. Always, for a task that
    needs no files (:attr:`siautil.tasks.Task.needs_files`)."""
    if not config.needs_files:
        return True
    from .tasks.datafiles import data_dir

    directory = data_dir()
    if directory is not None:
        return directory.is_dir()
    return os.environ.get("HF_HUB_OFFLINE") != "1"


def skipped(config: RunConfig) -> str:
    """The line that says a run is skipped because its benchmark files are not here."""
    return f"skipped {config.name}: benchmark files not available (set ${tasks.DATA_ENV})"


def ensure(config: RunConfig, profile: str, runs_dir: str | os.PathLike | None = None, shard: str | None = None,
           progress: bool = True) -> Path | str | None:
    """The run directory of ``config`` in ``profile``, sampling whatever is missing (resumable;
    with ``progress``, a line says which run and how many questions it samples, then a progress
    bar). ``None``, with a line that says so, when the run needs benchmark files that are not
    available here."""
    if not data_available(config):
        print(skipped(config), flush=True)
        return None
    return sample(config, paths.run_dir(config, profile, runs_dir), shard=shard, progress=progress, label=config.name)


def sample_grid(profile: str, runs_dir: str | os.PathLike | None = None, shard: str | None = None,
                progress: bool = True, sampler=None, backend: str = "engine") -> None:
    """Sample every run of ``profile`` (resumable, shardable) with ``backend``
    (:data:`siautil.config.BACKENDS`), in this process, or by ``sampler(profile, runs_dir,
    progress, cells)`` (on a Ray cluster, :func:`siautil.cluster.sampler`, or in worker
    processes of this machine, :func:`siautil.cluster.local_sampler`). The paper's profiles
    print their estimated cost first (:func:`siautil.grid.cost`)."""
    if sampler is not None and shard:
        raise ValueError("--shard splits a grid between machines by hand; with --executor ray "
                         "use --shards-per-cell and let the cluster place the shards")
    if paths.is_url(runs_dir) and sampler is None:
        raise ValueError(f"--runs-dir {runs_dir}: a URL takes --executor ray (or `siautil rollout --out URL` "
                         "for one run); the local grid writes to a local or mounted path")
    if profile.startswith("paper"):
        est = grid.cost(profile, backend=backend)
        print(est.to_string(index=False))
        print(f"estimated total: {est['tokens'].iloc[-1]:,} generated tokens, "
              f"{est['hours'].iloc[-1]:.1f} h on {models.default_device()} ({est.attrs['throughput']})", flush=True)
    cells = [replace(c, backend=backend) for c in grid.cells(profile)]
    if sampler is not None:
        sampler(profile, runs_dir, progress, cells)
        return
    for config in cells:
        ensure(config, profile, runs_dir, shard=shard, progress=progress)


def sweep(base: RunConfig, runs_dir: str | os.PathLike | None = None, progress: bool = True, **values) -> pd.DataFrame:
    """Records of ``base`` run again under every combination of the sampling ``values`` given
    (e.g. ``temperature=(1.6, 2.0), top_p=(1.0, 0.9)``), each a run of its own under the
    ``sweep`` profile (resumable, reused once sampled), with one column per swept setting."""
    names = list(values)
    frames = []
    for combo in itertools.product(*(values[n] for n in names)):
        config = replace(base, sampling=replace(base.sampling, **dict(zip(names, combo))))
        tag = "__".join(f"{n}={v}" for n, v in zip(names, combo))
        path = sample(config, Path(paths.run_dir(config, "sweep", runs_dir)) / tag, progress=progress,
                      label=f"{config.name} {tag}")
        frames.append(store.load_records(path).assign(**dict(zip(names, combo))))
    return pd.concat(frames, ignore_index=True)


def _labelled(config: RunConfig, path) -> pd.DataFrame:
    """A run's records with what a chapter groups and shows them by: its shuffle, the model's
    regime, and the precision and weights it was sampled in (only the ``limit`` it asks for:
    a store may hold more)."""
    df = store.load_records(path)
    if config.limit is not None:
        df = df[df["question_index"] < config.limit].reset_index(drop=True)
    stored_config = store.read_config(path)
    return df.assign(shuffle=config.sampling.shuffle, regime=models.regime(config.model),
                     precision=stored_config.get("precision"), weights=stored_config.get("weights"))


def records(profile: str, chosen: list[RunConfig] | None = None, runs_dir: str | os.PathLike | None = None,
            run_missing: bool = True, progress: bool = True) -> pd.DataFrame:
    """The records of the ``chosen`` runs (default: every run of the profile), concatenated, with
    ``shuffle``, ``regime``, ``precision`` and ``weights`` columns. A run with questions missing is
    sampled first when ``run_missing``, visibly (a line naming it and how many questions, then a
    progress bar; ``siautil grid --profile PROFILE`` samples them all ahead); otherwise it is
    left out, as are runs whose data is unavailable. A damaged store is named with the grid
    command that repairs it."""
    frames = []
    for config in chosen if chosen is not None else grid.cells(profile):
        path = paths.run_dir(config, profile, runs_dir)
        if run_missing:
            path = ensure(config, profile, runs_dir, progress=progress)
            if path is None:
                continue
        elif not (Path(path) / store.CONFIG).exists():
            continue
        try:
            frames.append(_labelled(config, path))
        except store.RunStoreError as e:
            raise store.RunStoreError(f"{e}\nThe grid samples it again: siautil grid --profile {profile} "
                                      f"--runs-dir {runs_dir or paths.default_runs_dir()} --no-book") from None
    if not frames:
        raise store.RunStoreError(f"no records for profile {profile!r} in {runs_dir or paths.default_runs_dir()}: "
                                  f"`siautil grid --profile {profile}` samples them")
    return pd.concat(frames, ignore_index=True)


def stored(profile: str = "smollm2-arc", chosen: list[RunConfig] | None = None) -> pd.DataFrame | None:
    """The records of a run committed under :func:`siautil.paths.stored_dir` (its ``run`` column
    says which store), never sampling; ``None`` when this install has none (``pip install``,
    Colab: clone the repository for them, or sample them with ``siautil grid --profile PROFILE``)."""
    directory = paths.stored_dir()
    chosen = grid.cells(profile) if chosen is None else chosen
    if directory is None or not any((paths.run_dir(c, profile, directory) / store.CONFIG).exists() for c in chosen):
        return None
    return records(profile, chosen, runs_dir=directory, run_missing=False, progress=False)


def published(profile: str, chosen: list[RunConfig] | None = None, runs_dir: str | os.PathLike | None = None,
              progress: bool = True) -> pd.DataFrame:
    """The records a chapter shows for ``profile``: the run stored with the project
    (:func:`stored`) when this checkout has it, else :func:`records` (sampling what is missing
    under ``runs_dir``, visibly)."""
    found = stored(profile, chosen)
    return found if found is not None else records(profile, chosen, runs_dir=runs_dir, progress=progress)


def summary(records: pd.DataFrame) -> pd.DataFrame:
    """One row per run of :func:`records`: the weights and precision it was sampled in, how
    many questions and traces it holds (what a chapter says it stands on), and the accuracy of
    its traces' own answers."""
    keys = [k for k in ("model", "dataset", "shuffle") if k in records]
    traces = records.drop_duplicates(keys + ["question_id", "trace"])
    return traces.groupby(keys, sort=False).agg(
        precision=("precision", "first"), weights=("weights", "first"),
        questions=("question_id", "nunique"), traces=("trace", "size"),
        accuracy=("correct", "mean")).reset_index()
