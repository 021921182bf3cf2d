"""A fake of the small part of vLLM that :mod:`siautil.vllm_engine` uses, for tests without vLLM
or a GPU: ``vllm.LLM`` (its keyword arguments kept), ``SamplingParams`` (vLLM's field names,
an unknown one refused, which ones were passed kept), ``RequestOutputKind``, and an
``llm_engine`` whose ``add_request`` records every request and whose ``step()`` finishes a
few ready requests per step in a shuffled order.

What a request generates is the test's ``answer(request)``: the model's draws, which the fake
cuts the way vLLM's ``check_stop`` does (``vllm/v1/core/sched/utils.py``: the primary EOS, then
a stop token id, then the budget), keeping the stop token as the last of ``token_ids`` as vLLM
v1 does (``include_stop=False``: dropped, as some versions did).

``install(monkeypatch)`` puts the fake in ``sys.modules`` as ``vllm`` and ``vllm.sampling_params``.
"""

from __future__ import annotations

import enum
import random
import sys
import types
from dataclasses import dataclass, field
from typing import Callable

VERSION = "0.0.fake"


class RequestOutputKind(enum.Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


#: vLLM's SamplingParams fields the backend may set, with vLLM's defaults
FIELDS = dict(n=1, presence_penalty=0.0, frequency_penalty=0.0, repetition_penalty=1.0, temperature=1.0, top_p=1.0,
              top_k=0, min_p=0.0, seed=None, stop=None, stop_token_ids=None, ignore_eos=False, max_tokens=16,
              min_tokens=0, logprobs=None, prompt_logprobs=None, detokenize=True, skip_special_tokens=True,
              output_kind=RequestOutputKind.CUMULATIVE)


class SamplingParams:
    """vLLM's fields and defaults; ``explicit`` holds the names the caller passed."""

    def __init__(self, **kw):
        unknown = set(kw) - set(FIELDS)
        if unknown:
            raise TypeError(f"SamplingParams has no fields {sorted(unknown)}")
        self.explicit = set(kw)
        for name, default in (FIELDS | kw).items():
            setattr(self, name, default)
        # the checks of vLLM's _verify_args that the backend could get wrong
        if self.seed is not None and not (isinstance(self.seed, int) and -2 ** 63 <= self.seed < 2 ** 63):
            raise ValueError(f"seed must be a signed 64-bit int, got {self.seed}")
        if self.top_k < -1 or not 0 < self.top_p <= 1 or not 0 <= self.temperature <= 2 or self.max_tokens < 1:
            raise ValueError(f"invalid sampling parameters {vars(self)}")


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: object
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: object
    outputs: list[CompletionOutput]
    finished: bool
    num_cached_tokens: int | None = None


@dataclass
class Request:
    """One request as the fake received it, and the steps it was submitted and finished at."""

    request_id: str
    output_id: str
    prompt: list[int]
    params: SamplingParams
    submitted: int
    finished: int | None = None
    tokens: list[int] = field(default_factory=list)


@dataclass
class ModelConfig:
    generation_config: dict = field(default_factory=dict)
    max_model_len: int = 4096

    def try_get_generation_config(self) -> dict:
        return dict(self.generation_config)


class Engine:
    """``llm_engine``: ``answer(request)`` gives a request's draws; ``delay(request)`` the steps
    it needs at least; each step finishes up to ``per_step`` ready requests, picked at random.
    ``internal_ids``: ``add_request`` answers a suffixed id and outputs carry it, as newer vLLM."""

    def __init__(self, answer: Callable[[Request], list[int]], eos_token_id: int, generation_config=None,
                 per_step: int = 3, delay: Callable[[Request], int] = lambda r: 0, seed: int = 0,
                 include_stop: bool = True, internal_ids: bool = False):
        self.answer, self.eos_token_id, self.per_step, self.delay = answer, eos_token_id, per_step, delay
        self.include_stop, self.internal_ids = include_stop, internal_ids
        self.model_config = ModelConfig(generation_config or {})
        self.rng = random.Random(seed)
        self.requests: list[Request] = []
        self.live: list[Request] = []
        self.steps = 0

    def add_request(self, request_id, prompt, params):
        assert isinstance(request_id, str) and isinstance(params, SamplingParams)
        assert params.n == 1 and params.output_kind is RequestOutputKind.FINAL_ONLY
        out_id = f"{request_id}-0a1b2c3d" if self.internal_ids else request_id
        req = Request(request_id, out_id, list(prompt["prompt_token_ids"]), params, self.steps)
        self.requests.append(req)
        self.live.append(req)
        return out_id

    def has_unfinished_requests(self) -> bool:
        return bool(self.live)

    def abort_request(self, request_ids) -> None:
        ids = set([request_ids] if isinstance(request_ids, str) else request_ids)
        self.live = [r for r in self.live if r.request_id not in ids and r.output_id not in ids]

    def step(self) -> list[RequestOutput]:
        self.steps += 1
        ready = [r for r in self.live if self.steps - r.submitted >= self.delay(r)]
        self.rng.shuffle(ready)
        outputs = []
        for r in ready[:self.per_step]:
            self.live.remove(r)
            r.finished = self.steps
            outputs.append(self._finish(r))
        return outputs

    def _finish(self, r: Request) -> RequestOutput:
        tokens, reason, stop_reason = [], None, None
        for tok in self.answer(r):
            tokens.append(tok)
            if tok == self.eos_token_id and not r.params.ignore_eos:
                reason = "stop"
            elif tok in (r.params.stop_token_ids or ()):
                reason, stop_reason = "stop", tok
            elif len(tokens) >= r.params.max_tokens:
                reason = "length"
            if reason:
                break
        assert reason, f"the answer of request {r.request_id} ran out before a stop"
        r.tokens = list(tokens)
        if reason == "stop" and not self.include_stop:
            tokens.pop()
        return RequestOutput(r.output_id, None, r.prompt, None,
                             [CompletionOutput(0, "", tokens, None, None, reason, stop_reason)], True, 0)


class LLM:
    """``vllm.LLM``: the keyword arguments it was built with, and ``llm_engine``."""

    def __init__(self, engine: Engine | None = None, **kwargs):
        self.kwargs, self.llm_engine = kwargs, engine


def install(monkeypatch) -> types.ModuleType:
    """The fake as ``vllm`` (and ``vllm.sampling_params``) in ``sys.modules``, for this test."""
    vllm = types.ModuleType("vllm")
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.SamplingParams, sampling.RequestOutputKind = SamplingParams, RequestOutputKind
    vllm.__version__, vllm.LLM, vllm.SamplingParams, vllm.sampling_params = VERSION, LLM, SamplingParams, sampling
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    return vllm
