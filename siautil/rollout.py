"""The sampling engine: reasoning traces, checkpoints, and Monte-Carlo continuations (Appendix A).

For each question: sample ``N`` traces; take checkpoints ``t ∈ {0, s, 2s, …} ∪ {T}``; from each
prefix ``(x, z_<=t)``, ``t = T`` included, sample ``M`` continuations with the same decoding;
extract every answer. Every record keeps its continuations' text, so its answers can be read
again under another extraction mode (:mod:`siautil.records` builds the records).

The engine holds a question's lifecycle, in phases (:class:`Status`): its traces decode, then
its checkpoints' continuations, then its records are built. Decoding itself is
:mod:`siautil.decode`'s. What makes it fast, compared with calling ``generate`` once per prefix:

* one prefill per question: the traces are decoded from one prompt prefill, and each trace's
  keys and values are kept when it finishes, so no prefix is ever encoded again (the
  logits at every checkpoint are kept too, so the first continuation token costs nothing);
* continuous batching: traces and continuations (every trace, every checkpoint, ``M`` each)
  of the questions in flight wait in one queue for ``max_batch_rows`` slots, and a slot freed
  by a finished row takes the next one at once, so the batch stays full until the work runs out;
* shared prefixes are read once: every checkpoint of a trace is a prefix of the same keys and
  values, which all its rows attend to through one read per step (:mod:`siautil.kvbuffer`);
* a generation stops at EOS or its token budget (``stop="eos"``, the paper's protocol), or
  also as soon as its final answer is written (``stop="answer"``; the task says when);
* generated keys and values are written in place into preallocated slots, and the sampler
  never sorts the whole vocabulary (:mod:`siautil.sampling`).

Many questions are in flight at once (``window`` of them, :meth:`Engine.run_window`): the
traces of later questions decode in the same batches as the continuations of earlier ones,
so batches stay full from the first token. Every sequence draws from its own random stream
(:mod:`siautil.streams`), keyed by the run seed, the question, the trace, the checkpoint and
the continuation, so a record does not depend on which other questions ran beside it, on
shards, or on resuming; the window is the unit a run writes, resumes and shards
(:func:`siautil.runs.sample`), so even the last bits of the logits, which depend on
the batch a row sits in, replay exactly on the same machine, precision and thread count.
"""

from __future__ import annotations

import enum
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterator, Sequence

import torch

from . import records, streams
from .checkpoints import checkpoints
from .decode import TAIL_CHARS, Decoder, Finish, Item, Row, Runner, Stopping
from .records import Checkpoint
from .sampling import SamplingChain
from .tasks import Question, Task
from .tasks.base import use_chat
from .tasks.extract import check_mode

#: How a generation ends. ``"eos"``: at EOS or the token budget, as the paper's protocol
#: (Appendix A: traces run to EOS or 600 tokens). ``"answer"``: also as soon as a complete final
#: answer is written (cheaper; changes T, the trace's label and the continuations' answers for
#: models that write past their first answer).
STOP_RULES = ("eos", "answer")
#: What the continuations of a checkpoint see: the trace's own prefix (``"none"``), its tokens
#: permuted (``"tokens"``, the paper's Table 2 ablation, which breaks the answer format too), or its
#: written steps shuffled with their format kept (``"steps"``, :meth:`siautil.tasks.Task.shuffle_steps`).
SHUFFLES = ("none", "tokens", "steps")
#: tokens a re-encoded steps-shuffled prefix may have beyond the original's (a tokenizer merges
#: differently across the new sentence boundaries); beyond this it is cut
STEPS_SLACK = 16


@dataclass(frozen=True)
class RolloutConfig:
    """Sampling settings of a run, every one explicit and recorded in the run's configuration;
    none is taken from a model's generation config. The paper names temperature and top-p only
    and its values were lost from its text: these defaults are documented choices (the book's
    protocol page). ``top_k`` 0 (or ``None``) is off; ``repetition_penalty`` must be 1.0 (none),
    the only value the engine samples exactly."""

    n_traces: int = 4                 # N traces per question
    n_continuations: int = 16         # M continuations per checkpoint
    stride: int = 50                  # s, tokens between checkpoints
    max_new_tokens: int = 600         # trace budget; a continuation from t gets max_new_tokens - t
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int | None = 0             # 0 / None: off, as the paper (temperature and top-p only)
    min_p: float | None = None
    repetition_penalty: float = 1.0
    seed: int = 0
    shuffle: str = "none"             # one of SHUFFLES: what the continuations see of each prefix
    stop: str = "eos"                 # one of STOP_RULES
    extraction: str = "strict-match"  # one of tasks.extract.EXTRACTION_MODES
    prompt_style: str = "auto"        # "auto" | "chat" | "plain"
    few_shot: int = 0
    max_batch_rows: int = 256         # rows decoded together (traces and continuations)
    window: int = 8                   # questions in flight together; the unit a run writes and resumes

    def __post_init__(self):
        if self.top_k is None:
            object.__setattr__(self, "top_k", 0)
        for name in ("n_traces", "n_continuations", "stride", "max_new_tokens", "max_batch_rows", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.shuffle not in SHUFFLES:
            raise ValueError(f"unknown shuffle {self.shuffle!r}; valid values: {', '.join(SHUFFLES)}")
        if self.stop not in STOP_RULES:
            raise ValueError(f"unknown stop rule {self.stop!r}; valid rules: {', '.join(STOP_RULES)}")
        check_mode(self.extraction)
        if self.repetition_penalty != 1.0:
            raise ValueError(f"repetition_penalty must be 1.0 (the engine samples the paper's chain: "
                             f"temperature, top-p, optional top-k and min-p), got {self.repetition_penalty}")
        self.chain()  # validates temperature, top-p, top-k

    def chain(self) -> SamplingChain:
        """The sampling chain these settings define (whatever the model's generation config says)."""
        return SamplingChain(temperature=self.temperature, top_k=int(self.top_k), top_p=self.top_p,
                             min_p=self.min_p)

    def as_dict(self) -> dict:
        return asdict(self)


def prompt_ids(task: Task, tokenizer, question: Question, config: RolloutConfig, chat: bool,
               context: int | None = None, window: int | None = None) -> list[int]:
    """A question's prompt as token ids, the same for every backend: the task's prompt (through the
    chat template when ``chat``), tokenized. Settings the model cannot take (prompt plus budget
    beyond its ``context`` or sliding ``window``) are refused here, before anything is sampled."""
    text = task.prompt(question, tokenizer, chat=chat, few_shot=config.few_shot, seed=config.seed)
    # a chat template writes its own special tokens
    ids = tokenizer(text, add_special_tokens=not chat)["input_ids"]
    limit = len(ids) + config.max_new_tokens
    if context and limit > context:
        raise ValueError(f"question {question.id}: prompt ({len(ids)} tokens) plus max_new_tokens "
                         f"({config.max_new_tokens}) exceeds the model's context of {context} tokens")
    if window and limit > window:
        raise ValueError(f"question {question.id}: {limit} tokens exceed the model's sliding window "
                         f"({window}); lower max_new_tokens")
    return ids


def stream_seed(config: RolloutConfig, question: Question) -> str:
    """The seed of a question's random streams (:mod:`siautil.streams`): the run seed and the
    question id, so its records do not depend on which other questions ran, on the window,
    shards, resuming or the backend. Trace ``i`` draws from ``(seed, 0, i)``, continuation ``j``
    of checkpoint ``t`` of trace ``i`` from ``(seed, 1, i, t, j)``, the shuffle of that
    checkpoint's prefix from ``(seed, 2, i, t)``."""
    return f"{config.seed}:{question.id}"


def shuffled_prefix(task: Task, tokenizer, shuffle: str, tokens: list[int], prefix_text: str, stream: int) -> list[int]:
    """The prefix ``z_<=t`` (``tokens``, its text ``prefix_text``) as the continuations of a
    shuffled run see it, shuffled from its own ``stream``: ``"tokens"`` (Table 2) its tokens
    permuted, length kept; ``"steps"`` its text's steps shuffled by the task, format kept, then
    re-encoded (cut at :data:`STEPS_SLACK` tokens beyond the original); ``"none"`` as written."""
    t = len(tokens)
    if shuffle == "tokens" and t > 1:
        return [tokens[j] for j in streams.permutation(stream, t)]
    if shuffle == "steps" and t > 0:
        text = task.shuffle_steps(prefix_text, random.Random(stream))
        return tokenizer.encode(text, add_special_tokens=False)[:t + STEPS_SLACK]
    return list(tokens)


def trace_checkpoints(traces: Sequence[Row], config: RolloutConfig, decode: Callable[[list[int]], str],
                      max_continuation_tokens: int | None = None) -> list[Checkpoint]:
    """Every checkpoint of every trace (:func:`siautil.checkpoints.checkpoints`), in trace then
    ``t`` order, with its continuation budget: ``max_new_tokens - t``, capped at
    ``max_continuation_tokens``; each starts from its trace's keys and values and its logits at
    ``t`` where the trace kept them."""
    out = []
    for i, tr in enumerate(traces):
        for t in checkpoints(len(tr.tokens), config.stride):
            budget = config.max_new_tokens - t
            if max_continuation_tokens is not None:
                budget = min(budget, max_continuation_tokens)
            text = decode(tr.tokens[:t])
            out.append(Checkpoint(i, t, budget, text, text, tr.kv, tr.logits.get(t)))
    return out


class Status(enum.Enum):
    """Where a question in flight stands."""

    TRACES = "traces"                # its N traces are decoding
    CONTINUATIONS = "continuations"  # its checkpoints' continuations are decoding
    DONE = "done"                    # its records are built


@dataclass
class _Request:
    """One question in flight: its prompt, its random streams' seed, its traces and
    checkpoints, and how many of the current phase's rows are still decoding."""

    question: Question
    index: int
    prompt: list[int]
    seed: str
    status: Status = Status.TRACES
    traces: list[Row] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    open: int = 0
    records: list[dict] | None = None


class Engine:
    """Samples traces and continuations for one model and one task.

    ``Engine(loaded, task, config).run_question(question)`` returns the records of that question
    (one dict per trace and checkpoint, :mod:`siautil.schema`); ``loaded`` is what
    :func:`siautil.models.load` returns.

    Whether prompts go through the chat template is decided here, once, from the model
    (:func:`siautil.tasks.base.use_chat`): ``config.prompt_style`` ``"chat"`` or ``"plain"`` as
    asked; ``"auto"`` follows the model's registry entry (``loaded.chat``), else whether the
    tokenizer has a chat template.
    """

    def __init__(self, loaded, task: Task, config: RolloutConfig = RolloutConfig()):
        self.loaded, self.task, self.config = loaded, task, config
        self.runner = Runner(loaded)
        self.tokenizer = loaded.tokenizer
        self.chain = config.chain()
        self.chat = use_chat(config.prompt_style, self.tokenizer, loaded.chat)
        self.rules = Stopping(frozenset(self.runner.eos), config.stop, self.runner.piece, self.runner.trigger,
                              task.answer_complete)

    @property
    def stats(self) -> dict:
        """Prefilled and generated tokens and forward passes so far."""
        return self.runner.stats

    def with_rows(self, rows: int) -> Engine:
        """This engine decoding ``rows`` rows at once (the same model, task and other settings)."""
        return Engine(self.loaded, self.task, replace(self.config, max_batch_rows=rows))

    # ------------------------------------------------------------------ helpers

    def prompt_ids(self, question: Question) -> list[int]:
        """The prompt's token ids (:func:`prompt_ids`)."""
        return prompt_ids(self.task, self.tokenizer, question, self.config, self.chat,
                          self.runner.context, self.runner.window)

    def stream_seed(self, question: Question) -> str:
        """The seed of a question's random streams (:func:`stream_seed`)."""
        return stream_seed(self.config, question)

    def _decode_text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def slot_limit(self, prompts: list[list[int]]) -> int:
        """The most positions a slot may hold: a whole generation, plus its prompt when rows
        copy their prefixes (shuffled prefixes), plus what a re-encoded steps-shuffled prefix
        may add."""
        shuffle = self.config.shuffle
        return (self.config.max_new_tokens + (max(map(len, prompts)) if shuffle != "none" else 0)
                + (STEPS_SLACK if shuffle == "steps" else 0))

    def _decoder(self, like: list, limit: int, **kw) -> Decoder:
        return Decoder(self.runner, self.chain, self.rules, self.config.max_batch_rows, like, limit, **kw)

    def _drain(self, items: list[Item], limit: int) -> None:
        """Decode ``items`` to completion (rows that arrive while decoding are not expected)."""
        if items:
            decoder = self._decoder(items[0].kv, limit)
            decoder.submit(items)
            decoder.drain()

    # ------------------------------------------------------------------ questions

    def run_question(self, question: Question, index: int = 0) -> list[dict]:
        """Sample the traces and continuations of one question; return its records."""
        return next(iter(self.run_window([(index, question)])))[1]

    def run_window(self, questions: Sequence[tuple[int, Question]]) -> Iterator[tuple[int, list[dict]]]:
        """Sample a window of questions together: every question's traces start at once, and
        each question's continuations join the batch as soon as its own traces are done, so
        batches stay full and a slow question holds back no other. Yields ``(index,
        records)`` as each question finishes.

        A row's draws come from its own stream, so a question's records are the same in any
        window up to the last bits of the logits, which depend on the batch a row sits in
        (floating-point sums in another order); a window decoded again gives the same
        batches, and so the same records, on the same machine, precision and thread count."""
        requests = [_Request(q, k, self.prompt_ids(q), self.stream_seed(q)) for k, q in questions]
        if not requests:
            return
        decoder = None

        def finished(row: Row) -> None:
            req = row.owner
            req.open -= 1
            if req.open == 0:
                self._next_phase(req, decoder)

        for req in requests:
            kv, last = self.runner.prefill(req.prompt)
            if decoder is None:
                decoder = self._decoder(kv, self.slot_limit([r.prompt for r in requests]), on_finish=finished,
                                        more_coming=lambda: any(r.status is Status.TRACES for r in requests))
            req.traces = self._trace_rows(req.seed, owner=req)
            req.open = len(req.traces)
            decoder.submit([Item(tr, kv, len(req.prompt), last[-1]) for tr in req.traces])
        reported = set()
        while decoder.busy:
            decoder.step()
            for req in requests:
                if req.status is Status.DONE and req.index not in reported:
                    reported.add(req.index)
                    yield req.index, req.records

    def _trace_rows(self, seed: str, owner: _Request | None = None) -> list[Row]:
        cfg = self.config
        return [Row(budget=cfg.max_new_tokens, stream=streams.key(seed, 0, i), record_every=cfg.stride,
                    save_kv=True, owner=owner) for i in range(cfg.n_traces)]

    def _next_phase(self, req: _Request, decoder: Decoder) -> None:
        """A question's rows of one phase are all done: after the traces, submit the
        continuations of their checkpoints; after those (or with none to sample), build the records."""
        if req.status is Status.TRACES:
            self._complete_traces(req.prompt, req.traces)
            req.checkpoints = trace_checkpoints(req.traces, self.config, self._decode_text)
            items = self._continuation_items(req)
            req.status, req.open = Status.CONTINUATIONS, len(items)
            if items:
                decoder.submit(items)
                return
        cfg = self.config
        req.records = records.build(self.task, req.question, req.index, self.loaded.name, req.traces,
                                    req.checkpoints, self._decode_text, cfg.extraction, cfg.n_continuations,
                                    shuffled=cfg.shuffle != "none")
        req.status = Status.DONE
        for tr in req.traces:  # the window's cache still holds what its rows read
            tr.kv, tr.logits = None, {}
        for cp in req.checkpoints:
            cp.kv = cp.logits = None

    def _complete_traces(self, prompt: list[int], traces: list[Row]) -> None:
        """A trace that stopped at its answer had its last token sampled but never fed: encode
        the whole trace once for the ``t = T`` checkpoint's keys and logits."""
        for tr in traces:
            T = len(tr.tokens)
            if T not in tr.logits and T < self.config.max_new_tokens:
                tr.kv, logits = self.runner.prefill(list(prompt) + tr.tokens)
                tr.logits[T] = logits[-1]

    def _continuation_items(self, req: _Request) -> list[Item]:
        """The ``M`` continuation rows of each of the request's checkpoints that has budget
        left, shortest prefixes first (rows decoding together then have similar lengths, so
        few attended positions are padding)."""
        cfg = self.config
        sampled = sorted((cp for cp in req.checkpoints if not cp.deterministic), key=lambda cp: cp.t)
        if cfg.shuffle != "none":
            self._shuffle_prefixes(req, sampled)
        items = []
        for cp in sampled:
            cp.continuations = [Row(budget=cp.budget, stream=streams.key(req.seed, 1, cp.trace, cp.t, j),
                                    tail=cp.seen_text[-TAIL_CHARS:], owner=req) for j in range(cfg.n_continuations)]
            items += [Item(r, cp.kv, len(req.prompt) + cp.seen, cp.logits, private=cfg.shuffle != "none")
                      for r in cp.continuations]
        return items

    def _shuffle_prefixes(self, req: _Request, sampled: list[Checkpoint]) -> None:
        """Each checkpoint's prefix shuffled (from its own stream) and encoded afresh; only the
        continuations see it. ``"tokens"`` (Table 2): its tokens permuted, length kept.
        ``"steps"``: its text's steps shuffled by the task, format kept, then re-encoded."""
        for cp in sampled:
            toks = shuffled_prefix(self.task, self.tokenizer, self.config.shuffle, req.traces[cp.trace].tokens[:cp.t],
                                   cp.prefix_text, streams.key(req.seed, 2, cp.trace, cp.t))
            cp.kv, logits = self.runner.prefill(req.prompt + toks)
            cp.logits, cp.seen = logits[-1], len(toks)
            cp.seen_text = self._decode_text(toks)

    # ------------------------------------------------------------------ traces from elsewhere

    def _sample_traces(self, prompt: list[int], seed: str) -> list[Row]:
        """``N`` traces of one prompt from one prefill, each keeping its keys and values and the
        logits at its checkpoints, ``t = T`` included."""
        kv, last = self.runner.prefill(prompt)
        traces = self._trace_rows(seed)
        self._drain([Item(tr, kv, len(prompt), last[-1]) for tr in traces], self.slot_limit([prompt]))
        self._complete_traces(prompt, traces)
        return traces

    def continue_traces(self, prompt: list[int], traces: Sequence[Sequence[int]], seed: str = "0",
                        max_continuation_tokens: int | None = None) -> list[Checkpoint]:
        """Traces given as token lists (sampled elsewhere, EOS not included), each prefilled
        once: their checkpoints, each non-deterministic one with its ``M`` continuations
        decoded (``continuations[j].tokens``), batched across checkpoints and traces
        (``t = T`` included); continuation ``j`` of checkpoint ``t`` of trace ``i`` draws from
        stream ``(seed, 1, i, t, j)``."""
        rows = []
        for toks in traces:
            ts = checkpoints(len(toks), self.config.stride)
            keep = torch.tensor([len(prompt) + t - 1 for t in ts], device=self.runner.device)
            kv, logits = self.runner.prefill(list(prompt) + list(toks), keep=keep)
            rows.append(Row(budget=self.config.max_new_tokens, tokens=list(toks), finish=Finish.EOS,
                            logits={t: logits[j] for j, t in enumerate(ts)}, kv=kv))
        req = _Request(Question("", "", ""), 0, list(prompt), str(seed), traces=rows)
        req.checkpoints = trace_checkpoints(rows, self.config, self._decode_text, max_continuation_tokens)
        self._drain(self._continuation_items(req), self.slot_limit([prompt]))
        return req.checkpoints


def generate(loaded, prompts: Sequence[Sequence[int]], n: int, max_new_tokens: int,
             config: RolloutConfig = RolloutConfig(), seed: str = "0", tails: Sequence[str] | None = None,
             task: Task | None = None) -> list[list[list[int]]]:
    """``n`` completions of each of ``prompts`` (token ids, used as given) through the engine's
    own path: one prefill per prompt, every row decoded in the same continuous batches, the
    sampling chain and stop rule of ``config`` (``stop="answer"`` reads the answer with
    ``task``, after the text ``tails[k]`` before prompt ``k``'s completions). Completion ``j`` of
    prompt ``k`` draws from stream ``(seed, 3, k, j)``. Returns, per prompt, its ``n`` token
    lists, each ending with an EOS id if it ended there."""
    if config.stop == "answer" and task is None:
        raise ValueError('generate: stop="answer" needs the task that says when an answer is complete')
    runner = Runner(loaded)
    rules = Stopping(frozenset(runner.eos), config.stop, runner.piece, runner.trigger,
                     task.answer_complete if task is not None else (lambda text: False))
    rows, items = [], []
    for k, ids in enumerate(prompts):
        kv, last = runner.prefill(list(ids))
        tail = (tails[k] if tails else "")[-TAIL_CHARS:]
        rows.append([Row(budget=max_new_tokens, stream=streams.key(seed, 3, k, j), tail=tail) for j in range(n)])
        items += [Item(r, kv, len(ids), last[-1]) for r in rows[-1]]
    if items:
        decoder = Decoder(runner, config.chain(), rules, config.max_batch_rows, items[0].kv, max_new_tokens)
        decoder.submit(items)
        decoder.drain()
    eos = next(iter(runner.eos))
    return [[r.tokens + ([eos] if r.finish is Finish.EOS else []) for r in rs] for rs in rows]
