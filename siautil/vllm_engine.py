"""A vLLM backend that samples a question's traces and continuations and writes the same records
as :class:`siautil.rollout.Engine` (the ``vllm`` extra: ``pip install -e '.[vllm]'``; a CUDA GPU).

Everything that decides *what* is sampled is the engine's own code, called here: the prompt
(:func:`siautil.rollout.prompt_ids`, chat decided by :func:`siautil.tasks.base.use_chat`), the
checkpoints and their budgets (:func:`siautil.rollout.trace_checkpoints`), shuffled prefixes
(:func:`siautil.rollout.shuffled_prefix`), each sequence's stream (:func:`siautil.rollout.stream_seed`,
:func:`siautil.streams.key`) and the records (:func:`siautil.records.build`). Only the sampling
is vLLM's: every trace and every continuation is one request of its own, continuations reading
their prefix from vLLM's prefix cache instead of the engine's shared keys and values.

The records match the engine's in distribution, not bit for bit: vLLM computes the logits
with other kernels and samples with its own sampler and random generator, so the same stream
draws other tokens. A vLLM run is still reproducible, because each request is seeded from its
own stream key (trace ``i``: ``(seed, 0, i)``; continuation ``j`` of checkpoint ``t``:
``(seed, 1, i, t, j)``) instead of one seed per call: a record depends on its coordinates, not
on which requests shared a batch. ``n=M`` with one seed is never used, because vLLM seeds
the ``k``-th child of such a request with ``seed + k``, so the children of two checkpoints
whose seeds differ by less than ``M`` would draw the same numbers.

vLLM facts relied on (vLLM v1, ``vllm/sampling_params.py``, ``vllm/v1/core/sched/utils.py``,
``vllm/v1/engine/detokenizer.py``, ``vllm/v1/engine/llm_engine.py``): ``top_k=0`` is off (versions
before 0.9 wanted ``-1``); ``seed`` seeds a per-request ``torch.Generator`` and crosses to the
engine process as a msgpack integer, so the 64-bit stream key is reduced to ``key % 2**63``
(:func:`request_seed`); a request stopped by EOS or a stop token id keeps that token as the
last of ``CompletionOutput.token_ids`` (only its text is dropped), with ``finish_reason``
``"stop"``; the token budget gives ``"length"``; ``LLMEngine.add_request`` takes a
``TokensPrompt`` (a dict with ``prompt_token_ids``) and returns the id it uses internally,
which newer versions suffix (outputs are looked up under both).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from . import models, records, rollout, streams
from .decode import Finish, Row
from .errors import SiautilError
from .records import Checkpoint
from .tasks import Question, Task
from .tasks.base import use_chat

INSTALL = "pip install -e '.[vllm]'"
#: vLLM's dtype for each precision; nf4 also quantises with bitsandbytes on load
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "nf4": "bfloat16"}
#: vLLM's ``SamplingParams.seed`` range this backend uses (see :func:`request_seed`)
SEED_RANGE = 2 ** 63


class VLLMMissing(SiautilError, ImportError):
    """vLLM is not installed."""


def require():
    """The ``vllm`` module, or :class:`VLLMMissing` saying how to install it."""
    try:
        import vllm
    except ImportError as e:
        raise VLLMMissing(f"the vLLM backend needs vLLM, which is not installed ({e}); {INSTALL}") from None
    return vllm


def request_seed(key: int) -> int:
    """A stream key (64 bits) as a vLLM request seed: ``key % 2**63``, since vLLM passes seeds
    between processes as signed 64-bit integers. Two keys collide with probability 2^-63."""
    return key % SEED_RANGE


def eos_ids(tokenizer, generation_config: dict | None = None) -> frozenset[int]:
    """The ids that end a sequence, as :class:`siautil.decode.Runner` has them: the generation
    config's ``eos_token_id`` (an int or a list) and the tokenizer's."""
    eos = (generation_config or {}).get("eos_token_id")
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None:
        eos.append(tokenizer.eos_token_id)
    return frozenset(eos)


def load(model: str, precision: str, seed: int = 0, gpu_memory_utilization: float = 0.9, **kw):
    """``(vllm.LLM, tokenizer)`` for ``model`` (a registry name, hub id or directory, resolved
    by :func:`siautil.models.resolve`) in ``precision`` (fp32, bf16, fp16, or nf4 through
    bitsandbytes), with prefix caching (every continuation's prefix is its trace's) and
    vLLM's own sampling defaults instead of the model's generation config (each request sets
    every field anyway). ``kw`` goes to ``vllm.LLM``. The tokenizer is the one
    :func:`siautil.models.load` would load, so prompts tokenize the same."""
    vllm = require()
    from transformers import AutoTokenizer

    if precision not in DTYPES:
        raise models.ModelError(f"unknown precision {precision!r} for vLLM; valid: {', '.join(DTYPES)}")
    path, gguf, _ = models.resolve(model)
    if gguf:  # a safetensors copy made by models.load when there is one, else vLLM reads the GGUF file
        converted = models.converted_gguf(path, gguf)
        path, gguf = (str(converted), None) if converted else (str(Path(path) / gguf), gguf)
    args = dict(model=path, dtype=DTYPES[precision], seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                enable_prefix_caching=True, generation_config="vllm")
    if precision == "nf4":
        args["quantization"] = "bitsandbytes"
    tokenizer = AutoTokenizer.from_pretrained(str(Path(path).parent) if gguf else path,
                                              **({"gguf_file": gguf} if gguf else {}))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return vllm.LLM(**(args | kw)), tokenizer


@dataclass
class _Question:
    """One question in flight: its prompt and streams' seed, its traces as they finish, its
    checkpoints, and how many of the current phase's requests are still out."""

    question: Question
    index: int
    prompt: list[int]
    seed: str
    traces: list[Row | None] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    open: int = 0
    records: list[dict] | None = None


class VLLMEngine:
    """:class:`siautil.rollout.Engine`'s surface on a ``vllm.LLM``: ``run_window``,
    ``run_question``, ``stats`` and ``info``, records built by :func:`siautil.records.build`.

    ``chat`` declares whether prompts go through the chat template (``None``: the registry
    entry of ``name``, else the tokenizer's template; :func:`siautil.tasks.base.use_chat`).
    ``eos`` are the ids that end a sequence (default: :func:`eos_ids` of the tokenizer and the
    model's generation config as vLLM read it). Generations stop at EOS or their budget
    (``stop="eos"``, the paper's protocol); ``stop="answer"`` is refused."""

    def __init__(self, llm, tokenizer, task: Task, config: rollout.RolloutConfig, name: str,
                 chat: bool | None = None, eos: Iterable[int] | None = None):
        if config.stop != "eos":
            raise ValueError(f'the vLLM backend samples the paper\'s protocol (stop="eos": EOS or the budget); '
                             f'stop={config.stop!r} needs the home-made engine, siautil.rollout.Engine')
        self.llm, self.engine, self.tokenizer, self.task, self.config, self.name = (
            llm, llm.llm_engine, tokenizer, task, config, name)
        spec = models.REGISTRY.get(name)
        self.chat = use_chat(config.prompt_style, tokenizer, chat if chat is not None else spec and spec.chat)
        model_config = getattr(self.engine, "model_config", None)
        self.eos = frozenset(eos) if eos is not None else eos_ids(tokenizer, _generation_config(model_config))
        if not self.eos:
            raise ValueError("no end-of-sequence id: neither the tokenizer nor the generation config names one")
        self.context = getattr(model_config, "max_model_len", None)
        self.stats = dict(prompt_tokens=0, cached_prompt_tokens=0, generated_tokens=0, requests=0)
        self._ids = itertools.count()
        self._owner: dict[str, tuple] = {}  # request id -> (question, trace, checkpoint or None, j)
        self._alias: dict[str, str] = {}
        require()  # fail here, with the install hint, rather than at the first request

    def info(self) -> dict:
        """What a run records about its backend."""
        return dict(backend="vllm", vllm=require().__version__, eos=sorted(self.eos),
                    request_seed="streams.key % 2**63, one request per sequence")

    def prompt_ids(self, question: Question) -> list[int]:
        return rollout.prompt_ids(self.task, self.tokenizer, question, self.config, self.chat, self.context)

    def _decode_text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def params(self, max_tokens: int, key: int):
        """The sampling parameters of one request: every field set, none left to vLLM's or the
        model's defaults. min-p 0 is off; a min-p the run sets may sit elsewhere in vLLM's chain
        than in transformers' (last), which the paper's protocol, without min-p, never meets."""
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        cfg = self.config
        return SamplingParams(
            n=1, temperature=cfg.temperature, top_p=cfg.top_p, top_k=int(cfg.top_k), min_p=cfg.min_p or 0.0,
            presence_penalty=0.0, frequency_penalty=0.0, repetition_penalty=1.0, seed=request_seed(key),
            max_tokens=max_tokens, min_tokens=0, stop=None, stop_token_ids=sorted(self.eos), ignore_eos=False,
            logprobs=None, prompt_logprobs=None, detokenize=False,
            output_kind=RequestOutputKind.FINAL_ONLY)  # only finished requests come back from step()

    def _submit(self, prompt: list[int], max_tokens: int, key: int, owner: tuple) -> None:
        rid = f"siautil-{next(self._ids)}"  # apart from the ids LLM.generate gives its own requests
        self._owner[rid] = owner
        used = self.engine.add_request(rid, {"prompt_token_ids": list(prompt)}, self.params(max_tokens, key))
        if isinstance(used, str) and used != rid:  # newer vLLM suffixes ids; outputs may carry either
            self._owner[used] = owner
            self._alias[used], self._alias[rid] = rid, used
        self.stats["prompt_tokens"] += len(prompt)
        self.stats["requests"] += 1

    def _row(self, completion, budget: int) -> Row:
        """A finished completion as the engine's row: EOS removed from its tokens (records count
        ``T`` without it), and why it stopped."""
        tokens = list(completion.token_ids)
        if completion.finish_reason == "stop":
            if tokens and tokens[-1] in self.eos:
                tokens.pop()
            finish = Finish.EOS
        elif completion.finish_reason == "length":
            finish = Finish.LENGTH
        else:
            raise RuntimeError(f"vLLM finished a request with {completion.finish_reason!r} "
                               f"(stop reason {completion.stop_reason!r}); expected 'stop' or 'length'")
        self.stats["generated_tokens"] += len(tokens)
        return Row(budget=budget, tokens=tokens, finish=finish)

    # ------------------------------------------------------------------ questions

    def run_question(self, question: Question, index: int = 0) -> list[dict]:
        """Sample the traces and continuations of one question; return its records."""
        return next(iter(self.run_window([(index, question)])))[1]

    def run_window(self, questions: Sequence[tuple[int, Question]]) -> Iterator[tuple[int, list[dict]]]:
        """Sample a window of questions together, yielding ``(index, records)`` as each
        finishes: every question's traces are submitted at once, and a question's
        continuations as soon as its own traces are done, while the other questions' traces
        still decode, so vLLM's batch stays full."""
        window = [_Question(q, k, self.prompt_ids(q), rollout.stream_seed(self.config, q)) for k, q in questions]
        cfg = self.config
        for req in window:
            req.traces, req.open = [None] * cfg.n_traces, cfg.n_traces
            for i in range(cfg.n_traces):
                self._submit(req.prompt, cfg.max_new_tokens, streams.key(req.seed, 0, i), (req, i, None, None))
        pending = len(window)
        try:
            while pending:
                if not self.engine.has_unfinished_requests():
                    raise RuntimeError("vLLM has no unfinished requests, yet questions of this window wait for some")
                for out in self.engine.step():
                    if not out.finished:
                        continue
                    if out.request_id not in self._owner:
                        raise RuntimeError(f"vLLM returned request {out.request_id!r}, which this engine did not submit")
                    req, i, cp, j = self._owner.pop(out.request_id)
                    other = self._alias.pop(out.request_id, None)
                    self._owner.pop(other, None), self._alias.pop(other, None)
                    if cp is None:
                        req.traces[i] = self._row(out.outputs[0], cfg.max_new_tokens)
                    else:
                        cp.continuations[j] = self._row(out.outputs[0], cp.budget)
                    self.stats["cached_prompt_tokens"] += getattr(out, "num_cached_tokens", None) or 0
                    req.open -= 1
                    if req.open == 0 and self._next_phase(req, first=cp is None):
                        pending -= 1
                        yield req.index, req.records
        finally:
            # a window left early (an error, or its caller stopped reading) takes its requests
            # with it, so the next window's outputs are only its own
            if self._owner:
                self.engine.abort_request(list(self._owner))
                self._owner.clear()
                self._alias.clear()

    def _next_phase(self, req: _Question, first: bool) -> bool:
        """A question's requests of one phase are all back: after its traces, submit the
        continuations of its checkpoints; after those (or with none to sample), build its
        records. Says whether the question is done."""
        cfg = self.config
        if first:
            req.checkpoints = rollout.trace_checkpoints(req.traces, cfg, self._decode_text)
            for cp in req.checkpoints:
                if cp.deterministic:  # no budget left: the prefix is the whole generation
                    continue
                prefix = req.traces[cp.trace].tokens[:cp.t]
                if cfg.shuffle != "none":
                    prefix = rollout.shuffled_prefix(self.task, self.tokenizer, cfg.shuffle, prefix, cp.prefix_text,
                                                     streams.key(req.seed, 2, cp.trace, cp.t))
                    cp.seen, cp.seen_text = len(prefix), self._decode_text(prefix)
                cp.continuations = [None] * cfg.n_continuations
                for j in range(cfg.n_continuations):
                    self._submit(req.prompt + prefix, cp.budget, streams.key(req.seed, 1, cp.trace, cp.t, j),
                                 (req, cp.trace, cp, j))
                    req.open += 1
            if req.open:
                return False
        req.records = records.build(self.task, req.question, req.index, self.name, req.traces, req.checkpoints,
                                    self._decode_text, cfg.extraction, cfg.n_continuations,
                                    shuffled=cfg.shuffle != "none")
        return True


def _generation_config(model_config) -> dict:
    """The model's generation config as vLLM read it (its non-default fields), or nothing."""
    try:
        return dict(model_config.try_get_generation_config() or {})
    except (AttributeError, OSError, ValueError):
        return {}
