"""The experiment grid as data: which runs (model, task, settings) each profile holds, and what they cost.

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

Every profile follows the paper's protocol (:data:`PAPER_SETTINGS`: generations run to EOS or the
budget, answers read with ``strict-match``, temperature and top-p only) and holds one sampling
chain for all its cells, except the toy models, which sample at :data:`TOY` in every profile.
N, M, the stride and the budget are a profile's size.

A profile's cells are run configurations (:class:`siautil.config.RunConfig`); running them and reading their
records is :mod:`siautil.runs`. :func:`cost` says what a profile costs before it runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd

from . import memory, models, rollout, tasks
from .checkpoints import checkpoints
from .config import RunConfig

#: The paper's protocol (Section 5, Appendix A): generations run to EOS or the token budget,
#: answers need an explicit final-answer marker, sampling is temperature and nucleus only (the
#: paper's values were lost from its text: 0.7 and 0.95 are our choice). Every profile uses it.
PAPER_SETTINGS = dict(stop="eos", extraction="strict-match", temperature=0.7, top_p=0.95, top_k=0, min_p=None,
                repetition_penalty=1.0)
PAPER = rollout.RolloutConfig(n_traces=4, n_continuations=16, stride=50, max_new_tokens=600,
                              max_batch_rows=512, **PAPER_SETTINGS)
#: SmolLM2-135M-Instruct in the default book: ARC-Easy, the dataset where the pilot (below)
#: found signal, sized for a laptop CPU. The budget lets most traces finish (pilot: ARC-Easy
#: traces 4-240 tokens, mean 98).
SMOL = rollout.RolloutConfig(n_traces=2, n_continuations=6, stride=24, max_new_tokens=256,
                             max_batch_rows=128, **PAPER_SETTINGS)
#: SmolLM2-135M-Instruct on 10 questions of each of the paper's datasets (and ARC-Easy) under the
#: paper's protocol, with a budget long enough for most of its traces to finish: which datasets
#: give signal, before a larger run is sized (``siautil grid --profile pilot --runs-dir data/stored``).
PILOT = rollout.RolloutConfig(n_traces=2, n_continuations=4, stride=96, max_new_tokens=384,
                              max_batch_rows=64, **PAPER_SETTINGS)
#: The larger SmolLM2 run the published book reads (profile ``smollm2-arc``, committed under
#: ``data/stored``; ``make book`` never re-samples it): the two ARC sets, where the pilot found
#: signal, with N = 4 traces and M = 8 continuations (the paper's values were lost from its
#: text; the ``paper`` profile takes 4 and 16). ARC traces are short (pilot: mean
#: 79-98 tokens, all finished within 384), so the stride is 24 tokens for about as many
#: checkpoints per trace as the paper's 50 give its GSM8K traces. Windows of 2 questions keep
#: the re-sampling test (``tests/test_stored.py``) short; the continuations fill the batches.
SMOL_ARC = rollout.RolloutConfig(n_traces=4, n_continuations=8, stride=24, max_new_tokens=384,
                                 max_batch_rows=128, window=2, **PAPER_SETTINGS)
#: The toy models' sampling setting, the one departure from :data:`PAPER_SETTINGS`, the same in every
#: profile: temperature 1.5 and no nucleus. At the protocol's 0.7 the toy SFT and RL models are
#: right every time, their answer distribution is a point mass from the first checkpoint, and no
#: coefficient is defined; 1.5 is the lowest temperature of those measured at which every regime
#: of the controlled experiment makes some errors, and base stays about at chance (1 in 5)
#: (``toy.accuracy_by_temperature``, shown in the training chapter). The stop rule and extraction
#: are the protocol's. 1,024 rows a batch: the tiny models are bound by per-step overhead.
TOY = rollout.RolloutConfig(n_traces=4, n_continuations=16, stride=4, max_new_tokens=52,
                            max_batch_rows=1024, **{**PAPER_SETTINGS, "temperature": 1.5, "top_p": 1.0})

#: Models of Table 2 (shuffled prefixes) in the paper.
PAPER_SHUFFLE = ["qwen2.5-3b", "qwen2.5-3b-instruct", "deepseek-r1-distill-qwen-7b", "gemma-2-2b-it"]


def cells(profile: str) -> list[RunConfig]:
    """The runs of a profile, in run order."""
    if profile == "default":
        toy = [RunConfig(f"toy-{r}", "toy", TOY, limit=100) for r in ("base", "sft", "rl")]
        # ARC-Easy only: in the pilot (data/stored/pilot) SmolLM2 got no GSM8K or SVAMP question right
        # (accuracy 0 of 20 traces each): nothing for the correctness diagnostics to separate, and
        # a defined coefficient for 2 of 20 traces each
        smol = [RunConfig("smollm2-135m-instruct", "arc-easy", SMOL, limit=12)]
        # Table 2 needs fewer questions than Table 1: the shuffled runs take half, to keep the
        # default book within its time
        shuffled = [replace(c.shuffled(kind), limit=50) for kind in ("tokens", "steps") for c in toy[:2]]
        return toy + shuffled + smol
    if profile == "pilot":
        return [RunConfig("smollm2-135m-instruct", d, PILOT, limit=10)
                for d in ("gsm8k", "svamp", "arc-easy", "arc-challenge")]
    if profile == "smollm2-arc":
        return [RunConfig("smollm2-135m-instruct", d, SMOL_ARC, limit=48, precision="bf16")
                for d in ("arc-easy", "arc-challenge")]
    if profile == "toy-regimes":
        # the controlled experiment: every regime and training seed, each way of showing the prefixes
        toy = [RunConfig(models.toy_name(r, k), "toy", TOY, limit=60)
               for r, seeds in models.TOY_SHIPPED.items() for k in seeds]
        return toy + [c.shuffled(kind) for kind in ("tokens", "steps") for c in toy]
    if profile in ("paper", "paper-nf4"):
        precision = "nf4" if profile == "paper-nf4" else "bf16"
        out = [RunConfig(m, d, PAPER, precision=precision)
               for m in models.PAPER_MODELS for d in ("gsm8k", "svamp", "arc-challenge")]
        out += [RunConfig(m, "gsm8k", PAPER, precision=precision).shuffled(kind)
                for kind in ("tokens", "steps") for m in PAPER_SHUFFLE]
        return out
    raise ValueError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")


#: The profiles :func:`cells` knows.
PROFILES = ("default", "paper", "paper-nf4", "pilot", "smollm2-arc", "toy-regimes")


def select(profile: str, model: str | None = None, dataset: str | None = None, precision: str | None = None,
           limit: int | None = None, shuffle: str | None = "none") -> list[RunConfig]:
    """The cells a chapter works on: the profile's with one kind of ``shuffle``
    (:data:`siautil.rollout.SHUFFLES`; ``None``: every kind), or, when ``model`` is given, that one
    model on ``dataset`` with the profile's settings (what ``papermill ... -p model X -p dataset
    gsm8k -p precision bf16`` asks for)."""
    if model:
        base = PAPER if profile.startswith("paper") else (TOY if dataset == "toy" else SMOL)
        if precision is None and profile == "paper-nf4":
            precision = "nf4"
        cell = RunConfig(model, dataset or "gsm8k", base, limit=limit, precision=precision)
        kinds = rollout.SHUFFLES if shuffle is None else (shuffle,)
        return [cell.shuffled(kind) if kind != "none" else cell for kind in kinds]
    out = cells(profile)
    if shuffle is not None:
        out = [c for c in out if c.sampling.shuffle == shuffle]
    if limit is not None:
        out = [replace(c, limit=limit) for c in out]
    return out


#: Generated tokens per second assumed for a backend on a kind of device where none has been
#: measured (:data:`MEASURED`).
THROUGHPUT = {"cpu": 300.0, "cuda": 20000.0}
#: Measured throughputs, one entry per measurement (``backend``, ``device``: cpu or cuda,
#: ``hardware``, ``model``, ``params``, ``precision``, ``tokens_per_s``, ``date``, ``command``),
#: written by the benchmarks' ``--record`` (:func:`record_throughput`).
MEASURED = Path(__file__).parent / "assets" / "throughput.json"
#: Questions assumed for a cell without a limit whose task does not know its size.
UNKNOWN_SIZE = 100


def hardware(device: str) -> str:
    """The name a throughput measurement is filed under: the GPU's (:func:`siautil.models.gpu`),
    else the CPU's model name."""
    info = models.gpu(device)
    if info is not None:
        return info["gpu"]
    if device.startswith("cuda"):
        return "a CUDA GPU (not visible here)"
    return models.cpu_model()


def record_throughput(entry: dict, path: Path = MEASURED) -> None:
    """Add a measurement to ``path`` (:data:`MEASURED`), written whole and then renamed."""
    entries = json.loads(path.read_text()) if path.exists() else []
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([*entries, entry], indent=1) + "\n")
    os.replace(tmp, path)


def throughput(device: str, backend: str = "engine", path: Path = MEASURED) -> tuple[dict | None, str]:
    """The measurement of ``backend`` on ``device``'s kind (cpu, cuda) that :func:`cost` uses:
    the latest on the same hardware (:func:`hardware`), else the latest on any; ``None`` where
    there is none. With a sentence saying which."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    entries = [e for e in (json.loads(path.read_text()) if path.exists() else [])
               if e["backend"] == backend and e["device"] == kind]
    here = hardware(device)
    same = [e for e in entries if e["hardware"] == here]
    chosen = max(same or entries, key=lambda e: e["date"], default=None)
    if chosen is None:
        return None, (f"assumed {THROUGHPUT[kind]:,.0f} tok/s for {backend} on {kind}: none measured in "
                      f"{path.name} (benchmarks' --record adds one)")
    where = "this hardware" if same else f"{chosen['hardware']}, not this hardware ({here})"
    return chosen, (f"measured {chosen['tokens_per_s']:,.0f} tok/s for {backend} on {where}, "
                    f"{chosen['model']} ({chosen['params']:.2g} parameters, {chosen['precision']}), {chosen['date']}, "
                    f"by `{chosen['command']}`; scaled to each model by its parameters (decoding reads every weight once a step)")


def _rate(measured: dict | None, kind: str, model: str) -> float:
    """Tokens per second for ``model``: the measured rate times the measured model's
    parameters over this one's (where the registry knows them), else the assumed rate."""
    if measured is None:
        return THROUGHPUT[kind]
    spec = models.REGISTRY.get(model)
    params = spec.shape.params if spec is not None and spec.shape is not None else measured["params"]
    return measured["tokens_per_s"] * measured["params"] / params


def cost(profile: str, device: str | None = None, mean_trace: int = 300, backend: str = "engine",
         measured: Path = MEASURED) -> pd.DataFrame:
    """A rough cost of a profile: generated tokens per cell and hours on ``device`` with ``backend``.

    Per question: ``N`` traces of ``mean_trace`` tokens or the cell's budget, whichever is
    shorter (and its model's context, where its configuration can be read here), and from each
    of their checkpoints (``t = T`` included) ``M`` continuations. Under ``stop="eos"`` a
    continuation from ``t`` is another draw of the rest of a generation: about ``T - t`` tokens
    plus a tail of 20, capped by what the budget leaves it; under ``stop="answer"`` it ends at
    the answer, assumed to come within half the remaining budget. A cell without a limit runs
    its task's whole test split (:attr:`siautil.tasks.Task.size`). Hours use the throughput
    measured for ``backend`` on this kind of device where there is one (:func:`throughput`),
    else the assumed :data:`THROUGHPUT`; ``attrs["throughput"]`` says which.
    """
    device = device or models.default_device()
    kind = "cuda" if device.startswith("cuda") else "cpu"
    chosen, said = throughput(device, backend, measured)
    contexts: dict[str, int | None] = {}
    rows = []
    for cell in cells(profile):
        s = cell.sampling
        if cell.model not in contexts:
            contexts[cell.model] = models.context_length(cell.model)
        budget = min(s.max_new_tokens, contexts[cell.model] or s.max_new_tokens)
        trace = min(mean_trace, budget)
        n_q = cell.limit or tasks.get(cell.task).size or UNKNOWN_SIZE
        ts = checkpoints(trace, s.stride)
        share = 1.0 if s.stop == "eos" else 0.5
        cont = sum(min((budget - t) * share, trace - t + 20) for t in ts)
        tokens = n_q * s.n_traces * (trace + s.n_continuations * cont)
        rows.append(dict(cell=cell.name, questions=n_q, trace_tokens=trace, checkpoints_per_trace=len(ts),
                         tokens=int(tokens), hours=tokens / _rate(chosen, kind, cell.model) / 3600))
    df = pd.DataFrame(rows)
    df = pd.concat([df, pd.DataFrame([dict(cell="total", questions=df["questions"].sum(), tokens=df["tokens"].sum(),
                                           hours=df["hours"].sum())])], ignore_index=True)
    df = df.astype({"trace_tokens": "Int64", "checkpoints_per_trace": "Int64"})
    df.attrs["throughput"] = said
    return df


def memory_table(profile: str, gpu_gb: tuple[float, ...] = (80, 40, 15), prompt: int = 200) -> pd.DataFrame:
    """What each model of ``profile`` takes on a GPU of each size in ``gpu_gb`` (GiB), as the
    engine would size it (:func:`siautil.runs.fit_rows`): its weights, the trace caches of a
    window of questions, and the slot buffers of the decoding rows that fit beside them (up to
    the cell's ``max_batch_rows``). Where not even one question's continuations (``M`` rows)
    fit at the cell's window, the largest window where they do (``--window``; 0: none).
    Prompts of ``prompt`` tokens; the unshuffled cells (a shuffled prefix adds the prompt to each row)."""
    rows = []
    for cell in cells(profile):
        spec, s = models.REGISTRY.get(cell.model), cell.sampling
        if spec is None or spec.shape is None or s.shuffle != "none" or any(r["model"] == cell.model for r in rows):
            continue
        for gb in gpu_gb:
            for window in range(s.window, -1, -1):
                kept = memory.kept_tokens(window, s.n_traces, prompt, s.max_new_tokens)
                fit = memory.rows_that_fit(spec.shape, cell.precision, gb * memory.GB, s.max_new_tokens, kept,
                                           s.max_batch_rows, weights_loaded=False)
                if fit >= s.n_continuations or window == 0:
                    break
            fp = memory.footprint(spec.shape, cell.precision, fit, s.max_new_tokens, kept, gb * memory.GB)
            rows.append(dict(model=cell.model, precision=cell.precision, gpu_gb=gb, window=window,
                             weights_gb=fp.weights / memory.GB, trace_caches_gb=fp.traces / memory.GB, rows=fit,
                             slot_buffers_gb=fp.slots / memory.GB, total_gb=fp.total / memory.GB))
    return pd.DataFrame(rows)
