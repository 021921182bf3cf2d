"""Running configurations into run stores and reading them back.

:func:`rollout_to_store` samples one (model, task, settings) configuration into a run
directory, resumably, with progress. The cells of :mod:`siautil.grid` run through it:
:func:`ensure` one cell, :func:`run_grid` a whole profile (then the book), :func:`sweep` one
cell under several sampling settings; :func:`records` reads cells' records for a chapter,
:func:`run_dir` says where a cell's store lives and :func:`cost` what a profile costs.
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

from . import grid, models, paths, rollout, store, tasks
from . import workers as workers_mod
from .grid import Cell


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


#: Version of the sampling protocol a store was written under. 1 (no ``protocol`` key): the
#: first answer stopped every generation and ``t = T`` was filled in from the trace's own answer
#: without sampling. 2: the stop rule, extraction mode and sampling chain are explicit settings,
#: every checkpoint with budget left is sampled, and records keep their continuations' text.
#: 3: each sequence draws from its own random stream (:mod:`siautil.streams`) and questions are
#: sampled in windows (``window``): the same distributions as 2, other draws.
PROTOCOL = 3


def run_config(model: str, task: str, settings: rollout.RolloutConfig, precision: str,
               split: str | None, sample: int | None, data_seed: int) -> dict:
    return dict(model=model, task=task, split=split, sample=sample, data_seed=data_seed,
                precision=precision, protocol=PROTOCOL, **settings.as_dict())


def windows(n_questions: int, size: int) -> list[range]:
    """Question indices in windows of ``size`` (:attr:`siautil.rollout.RolloutConfig.window`):
    the unit a run samples together, writes, resumes and shards, so a resumed or sharded run
    decodes the same batches as a whole one."""
    return [range(s, min(s + size, n_questions)) for s in range(0, n_questions, size)]


def machine() -> dict:
    """What the last bits of the logits depend on besides the settings: the thread count, the
    CPU's architecture and model name, whether it has native bf16 (recorded in a run's
    configuration, not compared on resume; a run replays bit for bit only where they match)."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return dict(threads=torch.get_num_threads(), cpu=platform.machine(), cpu_model=name,
                native_bf16=models.cpu_has_bf16())


def default_budget(model: str) -> int:
    """The trace budget a run gets when none is given (``siautil rollout`` without
    ``--max-new-tokens``): :class:`~siautil.rollout.RolloutConfig`'s, or half the model's context
    where that is shorter, the other half left to the prompt (the toy models: 128 of 256 tokens).
    It depends on the model alone, so every shard and resumption of a run computes the same."""
    budget = rollout.RolloutConfig().max_new_tokens
    context = models.context_length(model)
    return budget if context is None else min(budget, context // 2)


def rollout_to_store(model: str, task: str, out: str | Path, settings: rollout.RolloutConfig = rollout.RolloutConfig(),
                     limit: int | None = None, shard: str | None = None, precision: str | None = None,
                     device: str | None = None, split: str | None = None, sample: int | None = None,
                     data_seed: int = 0, data_dir: str | None = None, loaded=None, progress: bool = True,
                     quantize: str | None = None, label: str | None = None) -> Path | None:
    """Sample ``task`` with ``model`` into the run directory ``out``; resume if it exists.

    ``precision`` is one of :data:`siautil.models.PRECISIONS` (the old ``quantize="4bit"`` is
    ``nf4``); one the weights cannot take is refused before anything is written. ``loaded`` is
    an already loaded ``(model, tokenizer)`` pair (the name is still recorded, and its
    precision when it was loaded by :func:`siautil.models.load`).
    Questions are numbered in the task's order (after ``sample``); ``limit`` keeps the first
    ``limit`` of them. They are sampled in windows of ``settings.window`` (:func:`windows`):
    ``shard="i/n"`` takes every n-th window from the i-th (``None``, with a line that says so,
    when that leaves this shard nothing: nothing is written), and a window with any question
    missing is sampled again whole. Writers of the same run at once share its windows (each
    claims one before sampling it: :meth:`siautil.store.RunStore.claim`); a writer with other
    settings is refused. With ``progress``, a run with questions left says so in one line
    (``label``, default ``model × task``: how many questions it samples now, and where) and
    shows a progress bar.
    """
    i, n = parse_shard(shard)
    task_obj = tasks.get(task) if isinstance(task, str) else task
    if loaded is not None and precision is None and quantize is None:
        precision = getattr(loaded[0], "siautil_precision", None)
    precision = models.resolve_precision(precision, quantize, device=device, model=model)
    if loaded is None:
        models.check_precision(model, precision)
    questions = task_obj.load(split, sample=sample, seed=data_seed, data_dir=data_dir)
    if limit is not None:
        questions = questions[:limit]
    mine = [w for j, w in enumerate(windows(len(questions), settings.window)) if j % n == i]
    if not mine:
        n_q, n_w = len(questions), len(windows(len(questions), settings.window))
        print(f"shard {i}/{n} has nothing to do: {n_q} question{'s' * (n_q != 1)} make{'s' * (n_q == 1)} "
              f"{n_w} window{'s' * (n_w != 1)} of {settings.window} (--window), fewer than {i + 1}; use at most "
              f"{max(n_w, 1)} shard{'s' * (n_w > 1)}, or a smaller --window", flush=True)
        return None
    config = run_config(model, task_obj.name, settings, precision, split, sample, data_seed)
    config["weights"] = models.weights(model) if loaded is None else getattr(loaded[0], "siautil_weights", model)
    with store.RunStore.open(out, {**config, "versions": store.package_versions(), "machine": machine()}) as run:
        done = run.done()
        todo = [w for w in mine if not set(w) <= done]
        if not todo:
            return run.path
        label = label or f"{model} × {task_obj.name}"
        count = sum(len(w) for w in todo)
        if progress:
            print(f"sampling {label} now: {count} of {len(questions)} questions"
                  + (f" (shard {shard})" if shard else "") + f", into {run.path}", flush=True)
        lm, tok = loaded if loaded is not None else models.load(model, precision, device=device)
        engine = rollout.Engine(lm, tok, task_obj, settings)  # chat or plain: the engine decides from the model
        engine.prompt_ids(questions[todo[0][0]])  # settings the model cannot take fail here, before any sampling
        with tqdm(total=count, desc=label, unit="question", disable=not progress) as bar:
            _sample_windows(run, engine, questions, todo, bar)
        return run.path


def _sample_windows(run: store.RunStore, engine: rollout.Engine, questions: list, todo: list[range], bar) -> None:
    """Sample the windows ``todo`` into ``run``: each once claimed, skipped when another writer
    finished it meanwhile; the windows another writer holds are waited for at the end (sampled
    here only if it died before finishing them)."""
    start, counted = time.perf_counter(), set()

    def sample(window: range) -> None:
        for k, records in engine.run_window([(k, questions[k]) for k in window]):
            run.write(k, records)
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
                _sample_window(engine, window, sample, bar)
        return mine

    held = [w for w in todo if not take(w, wait=False)]
    if held:
        bar.write(f"waiting for another writer of {run.path}, which holds {len(held)} window(s) of this run")
    for w in held:
        take(w, wait=True)


def _sample_window(engine: rollout.Engine, window: range, sample, bar) -> None:
    """``sample(window)``, again with half the batch rows each time CUDA runs out of memory."""
    while True:
        try:
            sample(window)
            return
        except torch.cuda.OutOfMemoryError:
            if engine.config.max_batch_rows <= engine.config.n_continuations:
                raise
        # out of the handler, so the failed attempt's frames (and its caches) can be freed
        gc.collect()
        torch.cuda.empty_cache()
        engine.config = replace(engine.config, max_batch_rows=engine.config.max_batch_rows // 2)
        bar.write(f"CUDA out of memory: sampling the window again with max_batch_rows={engine.config.max_batch_rows}")


# ---------------------------------------------------------------------------- the grid's cells


def default_runs_dir() -> Path:
    """``$SIAUTIL_RUNS``, else ``runs/`` of the checkout this runs in (ignored by git, apart from
    the data the project ships), else the user cache."""
    if os.environ.get("SIAUTIL_RUNS"):
        return Path(os.environ["SIAUTIL_RUNS"])
    root = paths.checkout()
    return root / "runs" if root else models.cache_dir() / "runs"


def stored_dir() -> Path | None:
    """``data/stored`` of the checkout: runs committed with the project (the ``pilot`` and
    ``smollm2-arc`` profiles), which the published book reads and ``make book`` never samples.
    ``None`` outside a checkout."""
    root = paths.checkout()
    return root / "data" / "stored" if root else None


def stored(profile: str = "smollm2-arc", chosen: list[Cell] | None = None) -> pd.DataFrame | None:
    """The records of a run committed under :func:`stored_dir` (its ``run`` column says which
    store), never sampling; ``None`` when this install has none (``pip install``, Colab: clone
    the repository for them, or sample them with ``siautil grid --profile PROFILE``)."""
    directory = stored_dir()
    chosen = grid.cells(profile) if chosen is None else chosen
    if directory is None or not any((run_dir(c, profile, directory) / store.CONFIG).exists() for c in chosen):
        return None
    return records(profile, chosen, runs_dir=directory, run_missing=False, progress=False)


def run_dir(cell: Cell, profile: str, runs_dir: str | Path | None = None) -> Path:
    """Where ``cell`` of ``profile`` keeps its run store."""
    return Path(runs_dir or default_runs_dir()) / profile / cell.name


def data_available(cell: Cell) -> bool:
    """Whether a cell's benchmark files can be read here: the checkout's ``data/`` or
    ``$SIAUTIL_DATA_DIR``, else the hub when it is not switched off. Always, for a task that
    needs no files (:attr:`siautil.tasks.Task.needs_files`)."""
    if not cell.needs_files:
        return True
    from .tasks.datafiles import data_dir

    directory = data_dir()
    if directory is not None:
        return directory.is_dir()
    return os.environ.get("HF_HUB_OFFLINE") != "1"


def _sample(cell: Cell, path: Path, shard: str | None, progress: bool, label: str | None = None) -> Path:
    return rollout_to_store(cell.model, cell.task, path, cell.settings, limit=cell.limit, split=cell.split,
                            precision=cell.precision, shard=shard, progress=progress, label=label or cell.name)


def ensure(cell: Cell, profile: str, runs_dir: str | Path | None = None, shard: str | None = None,
           progress: bool = True) -> Path | None:
    """The run directory of ``cell``, sampling whatever is missing (resumable; with
    ``progress``, a line says which cell and how many questions it samples, then a progress
    bar). ``None``, with a line that says so, when the cell needs benchmark files that are not
    available here."""
    if not data_available(cell):
        print(f"skipped {cell.name}: benchmark files not available (set ${tasks.DATA_ENV})", flush=True)
        return None
    return _sample(cell, run_dir(cell, profile, runs_dir), shard, progress)


def sweep(base: Cell, runs_dir: str | Path | None = None, progress: bool = True, **values) -> pd.DataFrame:
    """Records of ``base`` re-run under every combination of the sampling ``values`` given
    (e.g. ``temperature=(1.6, 2.0), top_p=(1.0, 0.9)``), each a run of its own under the
    ``sweep`` profile (resumable, reused once sampled), with one column per swept setting."""
    names = list(values)
    frames = []
    for combo in itertools.product(*(values[n] for n in names)):
        cell = replace(base, settings=replace(base.settings, **dict(zip(names, combo))))
        tag = "__".join(f"{n}={v}" for n, v in zip(names, combo))
        path = _sample(cell, run_dir(cell, "sweep", runs_dir) / tag, None, progress, f"{cell.name} {tag}")
        frames.append(store.load_records(path).assign(**dict(zip(names, combo))))
    return pd.concat(frames, ignore_index=True)


def records(profile: str, chosen: list[Cell] | None = None, runs_dir: str | Path | None = None,
            run_missing: bool = True, progress: bool = True) -> pd.DataFrame:
    """The records of ``chosen`` cells (default: every cell of the profile), concatenated, with
    ``model``, ``dataset``, ``regime`` and ``shuffle`` columns. A cell with questions missing
    is sampled first when ``run_missing``, visibly (a line naming the cell and how many
    questions, then a progress bar; ``siautil grid --profile PROFILE`` samples them all ahead);
    otherwise it is left out, as are cells whose data is unavailable."""
    from .paper import regime

    frames = []
    for cell in chosen if chosen is not None else grid.cells(profile):
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
        df["shuffle"] = cell.settings.shuffle
        df["regime"] = regime(cell.model)
        config = store.read_config(path)
        df["precision"], df["weights"] = config.get("precision"), config.get("weights")
        frames.append(df)
    if not frames:
        raise store.RunStoreError(f"no records for profile {profile!r} in {runs_dir or default_runs_dir()}: "
                                  f"`siautil grid --profile {profile}` samples them")
    return pd.concat(frames, ignore_index=True)


def published(profile: str, chosen: list[Cell] | None = None, runs_dir: str | Path | None = None,
              progress: bool = True) -> pd.DataFrame:
    """The records a chapter shows for ``profile``: the run stored with the project
    (:func:`stored`) when this checkout has it, else :func:`records` (sampling what is missing
    under ``runs_dir``, visibly)."""
    found = stored(profile, chosen)
    return found if found is not None else records(profile, chosen, runs_dir=runs_dir, progress=progress)


def summary(records: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of :func:`records`: the weights and precision it was sampled in, how
    many questions and traces it holds (what a chapter says it stands on), and the accuracy of
    its traces' own answers."""
    keys = [k for k in ("model", "dataset", "shuffle") if k in records]
    traces = records.drop_duplicates(keys + ["question_id", "trace"])
    return traces.groupby(keys, sort=False).agg(
        precision=("precision", "first"), weights=("weights", "first"),
        questions=("question_id", "nunique"), traces=("trace", "size"),
        accuracy=("correct", "mean")).reset_index()


#: Generated tokens per second assumed for the estimate, per device kind. These are rough
#: assumptions, not measurements: the CPU figure sits between SmolLM2-135M in bf16 on one thread
#: (200 tok/s in benchmarks/rollout_throughput.py, 8 GSM8K and 8 ARC-Easy questions) and the
#: benchmark's tiny model (1,500-2,400 tok/s); the CUDA figure has not been measured
#: (benchmarks/rollout_throughput.py --device cuda measures it).
THROUGHPUT = {"cpu": 300.0, "cuda": 20000.0}
#: Questions assumed for a cell without a limit whose task does not know its size.
UNKNOWN_SIZE = 100


def cost(profile: str, device: str | None = None, mean_trace: int = 300) -> pd.DataFrame:
    """A rough cost of a profile: generated tokens per cell and hours on ``device``
    (``grid.estimate`` is the old name).

    Per question: ``N`` traces of ``mean_trace`` tokens or the cell's budget, whichever is
    shorter (and its model's context, where its configuration can be read here), and from each
    of their checkpoints (``t = T`` included) ``M`` continuations. Under ``stop="eos"`` a
    continuation from ``t`` is another draw of the rest of a generation: about ``T - t`` tokens
    plus a tail of 20, capped by what the budget leaves it; under ``stop="answer"`` it ends at
    the answer, assumed to come within half the remaining budget. A cell without a limit runs
    its task's whole test split (:attr:`siautil.tasks.Task.size`).
    """
    device = device or models.default_device()
    contexts: dict[str, int | None] = {}
    rows = []
    for cell in grid.cells(profile):
        s = cell.settings
        if cell.model not in contexts:
            contexts[cell.model] = models.context_length(cell.model)
        budget = min(s.max_new_tokens, contexts[cell.model] or s.max_new_tokens)
        trace = min(mean_trace, budget)
        n_q = cell.limit or tasks.get(cell.task).size or UNKNOWN_SIZE
        ts = rollout.checkpoints(trace, s.stride)
        share = 1.0 if s.stop == "eos" else 0.5
        cont = sum(min((budget - t) * share, trace - t + 20) for t in ts)
        tokens = n_q * s.n_traces * (trace + s.n_continuations * cont)
        rows.append(dict(cell=cell.name, questions=n_q, trace_tokens=trace, checkpoints_per_trace=len(ts),
                         tokens=int(tokens), hours=tokens / THROUGHPUT["cuda" if device.startswith("cuda") else "cpu"] / 3600))
    df = pd.DataFrame(rows)
    df = pd.concat([df, pd.DataFrame([dict(cell="total", questions=df["questions"].sum(), tokens=df["tokens"].sum(),
                                           hours=df["hours"].sum())])], ignore_index=True)
    return df.astype({"trace_tokens": "Int64", "checkpoints_per_trace": "Int64"})


#: most worker processes the local grid starts by itself (each holds its own copy of a model)
MAX_LOCAL_WORKERS = workers_mod.MAX_PROCESSES


def local_workers(profile: str, workers: int | None = None, shard: str | None = None) -> tuple[int, int]:
    """``(processes, torch threads each)`` for the local grid. By default one process per core
    (at most :data:`MAX_LOCAL_WORKERS`) on a CPU, sharing the cores, and one process with every
    core on a GPU (one model on one card), with ``--shard`` (the machine's share is already cut)
    and for the paper's profiles (models of billions of parameters, one copy per process)."""
    cores = workers_mod.cores()
    if workers is None:
        serial = shard or profile.startswith("paper") or models.default_device().startswith("cuda")
        workers = 1 if serial else max(1, min(cores, MAX_LOCAL_WORKERS))
    elif workers < 1:
        raise ValueError(f"--workers {workers}: give at least 1")
    elif workers > 1 and shard:
        raise ValueError("--shard cuts the grid between machines; on one machine use --workers alone")
    return workers, max(1, cores // workers) if workers > 1 else torch.get_num_threads()


def run_grid(profile: str, runs_dir: str | Path | None = None, shard: str | None = None, book: bool = True,
             progress: bool = True, sampler=None, jobs: int | None = None) -> None:
    """Sample every cell of ``profile`` (resumable, shardable), then execute the chapters with
    parameters pointing at the stores and build the book. ``sampler(profile, runs_dir,
    progress)`` samples the cells instead of this process, e.g. on a Ray cluster
    (:func:`siautil.cluster.sampler`) or in worker processes of this machine
    (:func:`siautil.cluster.local_sampler`, which ``siautil grid`` uses when :func:`local_workers`
    says so). ``jobs`` chapters execute at once (default: :func:`siautil.book.default_jobs`)."""
    if sampler is not None and shard:
        raise ValueError("--shard splits a grid between machines by hand; with --executor ray "
                         "use --shards-per-cell and let the cluster place the shards")
    url = runs_dir is not None and "://" in str(runs_dir) and not str(runs_dir).startswith("file://")
    if url and sampler is None:
        # run_dir joins local paths: a URL would become a local folder named after its scheme
        raise ValueError(f"--runs-dir {runs_dir}: a URL takes --executor ray (or `siautil rollout --out URL` "
                         "for one run); the local grid writes to a local or mounted path")
    if profile.startswith("paper"):
        est = cost(profile)
        print(est.to_string(index=False))
        print(f"estimated total: {est['tokens'].iloc[-1]:,} generated tokens, "
              f"{est['hours'].iloc[-1]:.1f} h on {models.default_device()}", flush=True)
    if sampler is not None:
        sampler(profile, runs_dir, progress)
    else:
        for cell in grid.cells(profile):
            ensure(cell, profile, runs_dir, shard=shard, progress=progress)
    if book and url:
        print(f"the book reads local run stores: copy {runs_dir} to a local directory and run "
              f"`siautil grid --profile {profile} --runs-dir DIR` there to build it", flush=True)
        return
    if book and (shard is None or shard.startswith("0/")):
        from . import book as book_mod

        params = {"profile": profile}
        if runs_dir:
            params["runs_dir"] = str(Path(runs_dir.removeprefix("file://") if isinstance(runs_dir, str) else runs_dir).resolve())
        book_mod.build(parameters=params, parameters_if_declared=True, jobs=jobs)
