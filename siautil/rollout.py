"""The sampling engine: reasoning traces, checkpoints, and Monte-Carlo continuations (Appendix A).

For each question: sample ``N`` traces; take checkpoints ``t ∈ {0, s, 2s, …} ∪ {T}``; from each
prefix ``(x, z_<=t)``, ``t = T`` included, sample ``M`` continuations with the same decoding;
extract every answer. Every record keeps its continuations' text (answers can be read again
under another extraction mode) and says whether its prefix already holds a final answer.

What makes it fast, compared with calling ``generate`` once per prefix:

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
(:func:`siautil.runs.rollout_to_store`), so even the last bits of the logits, which depend on
the batch a row sits in, replay exactly on the same machine, precision and thread count.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import InitVar, asdict, dataclass, field
from typing import Iterator, Sequence

import torch

from . import kvbuffer, streams
from .checkpoints import checkpoints
from .sampling import SamplingChain
from .tasks import Question, Task
from .tasks.base import use_chat
from .tasks.extract import check_mode

#: characters after which a final answer may have just become complete (see Task.answer_complete)
TRIGGERS = (".", "\n", "}", ")", " ")


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
#: characters of recent text kept per row for the answer-complete check of ``stop="answer"``
TAIL_CHARS = 400
#: a slot buffer's first capacity in generated tokens (it grows by doubling up to a row's budget)
SLOT_CAPACITY = 64


@dataclass(frozen=True)
class RolloutConfig:
    """Sampling settings of a run, every one explicit and recorded in the run's configuration;
    none is taken from a model's generation config. The paper names temperature and top-p only
    and its values were lost from its text: these defaults are documented choices (the book's
    protocol page). ``top_k`` 0 (or ``None``) is off; ``repetition_penalty`` must be 1.0 (none),
    the only value the engine samples exactly.

    ``stop_at_answer=`` (the old keyword) still works: ``True`` is ``stop="answer"``."""

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
    stop_at_answer: InitVar[bool | None] = None

    def __post_init__(self, stop_at_answer):
        if stop_at_answer is not None:
            object.__setattr__(self, "stop", "answer" if stop_at_answer else "eos")
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


class Finish(str, enum.Enum):
    """Why a row stopped decoding (stored in records as its string value)."""

    EOS = "eos"          # the model wrote an end-of-sequence token
    LENGTH = "length"    # the row's token budget ran out
    ANSWER = "answer"    # a complete final answer was written (``stop="answer"`` only)


class Status(enum.Enum):
    """Where a question in flight stands."""

    TRACES = "traces"                # its N traces are decoding
    CONTINUATIONS = "continuations"  # its checkpoints' continuations are decoding
    DONE = "done"                    # its records are built


@dataclass
class _Row:
    """One sequence being decoded: a trace or a continuation. ``stream`` is its random
    stream (:mod:`siautil.streams`): draw ``k`` of it picks its ``k``-th token."""

    budget: int
    stream: int = 0
    tail: str = ""                  # the last TAIL_CHARS characters, for the answer-complete check
    tokens: list[int] = field(default_factory=list)
    finish: Finish | None = None
    record_every: int | None = None  # keep the logits every this many tokens (traces: the stride)
    save_kv: bool = False            # keep the finished row's keys and values (traces)
    logits: dict[int, torch.Tensor] = field(default_factory=dict)  # t -> logits for token t+1 (traces)
    kv: list | None = None
    owner: "_Request | None" = None  # told when the row finishes


@dataclass
class _Item:
    """A row waiting for a slot: its prefix's keys and values (first ``n`` positions), the
    logits for its first token, and whether it reads the prefix from a shared source or copies
    it (``private``: better when only the ``M`` rows of one checkpoint use a prefix, as for
    shuffled prefixes)."""

    row: _Row
    kv: list
    n: int
    logits: torch.Tensor
    private: bool = False


@dataclass
class Checkpoint:
    """One checkpoint ``t`` of one trace: the prefix ``z_<=t`` and what is sampled from it.

    ``budget`` is the continuations' token budget (``max_new_tokens - t``, capped); with none
    left the checkpoint is deterministic (its prefix is the whole generation) and sampled no
    further. ``prefix_text`` is the trace's prefix; ``seen_text`` the prefix the continuations
    saw and ``seen`` its length in tokens, which differ only for shuffled prefixes. ``kv`` and
    ``logits`` are what the continuations start from (the trace's keys and values and the
    logits at ``t``, or a shuffled prefix's own); ``continuations`` are its ``M`` rows once
    decoded."""

    trace: int
    t: int
    budget: int
    prefix_text: str
    seen_text: str
    kv: list | None = None
    logits: torch.Tensor | None = None
    continuations: list[_Row] = field(default_factory=list)
    seen: int | None = None

    def __post_init__(self):
        if self.seen is None:
            self.seen = self.t

    @property
    def deterministic(self) -> bool:
        return self.budget <= 0


@dataclass
class _Request:
    """One question in flight: its prompt, its random streams' seed, its traces and
    checkpoints, and how many of the current phase's rows are still decoding."""

    question: Question
    index: int
    prompt: list[int]
    seed: str
    status: Status = Status.TRACES
    traces: list[_Row] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    open: int = 0
    records: list[dict] | None = None


class _Decode:
    """Continuous batching over rows that arrive while it runs, in three named phases per
    step: :meth:`schedule` admits waiting items into free slots (growing the batch up to
    ``max_batch_rows``), :meth:`run` does the forward pass of the live rows, :meth:`update`
    samples their next tokens and hands each to :meth:`Engine._accept` (the one place a token
    is accepted); a finished row frees its slot and tells its owner, which may submit more
    rows (a question whose traces are done submits its continuations).

    Each row draws its tokens from its own stream, so admission order and batch composition
    change no draw. An item's first token is sampled from its prefix logits, so no prefix is
    ever encoded here; items with the same prefix keys and values read them from one source."""

    def __init__(self, engine: Engine, like: list, limit: int, on_finish=None, more_coming=lambda: False):
        self.engine, self.on_finish, self.more_coming = engine, on_finish, more_coming
        self.queue: deque[_Item] = deque()
        self.cache = kvbuffer.SlotCache(like, 0, capacity=min(limit, SLOT_CAPACITY), limit=limit)
        self.source: dict[int, int] = {}     # id(prefix kv) -> source index in the cache
        self.rows: list[_Row | None] = []    # slot -> row
        self.next: list[int] = []            # slot -> token to feed next

    @property
    def busy(self) -> bool:
        return bool(self.queue) or any(r is not None for r in self.rows)

    def submit(self, items: list[_Item]) -> None:
        self.queue.extend(items)

    def step(self) -> None:
        """Admit what waits, then decode one token for every live row."""
        self.schedule()
        if any(r is not None for r in self.rows):
            self.update(self.run())
        self.compact()

    def _draw(self, logits: torch.Tensor, rows: list[_Row]) -> list[int]:
        u = streams.uniforms([r.stream for r in rows], [len(r.tokens) for r in rows])
        return self.engine.chain.sample_uniform(logits, torch.from_numpy(u)).tolist()

    def _finished(self, row: _Row, kv) -> None:
        if row.save_kv:
            row.kv = kv
        self.engine.stats["generated_tokens"] += len(row.tokens)
        if row.owner is not None and self.on_finish is not None:
            self.on_finish(row)

    def schedule(self) -> None:
        """Fill free slots from the queue, adding slots while there are fewer than
        ``max_batch_rows``; a row may finish on its first token and never take one."""
        while self.queue:
            free = [j for j, r in enumerate(self.rows) if r is None]
            room = self.engine.config.max_batch_rows - len(self.rows)
            if len(free) < len(self.queue) and room > 0:
                add = min(room, len(self.queue) - len(free))
                self.cache.add_slots(add)
                free += list(range(len(self.rows), len(self.rows) + add))
                self.rows += [None] * add
                self.next += [self.engine.pad] * add
            if not free:
                return
            batch = [self.queue.popleft() for _ in range(min(len(free), len(self.queue)))]
            first = self._draw(torch.stack([it.logits for it in batch]), [it.row for it in batch])
            free.reverse()
            for it, x in zip(batch, first):
                if self.engine._accept(it.row, x, it.logits):
                    self._finished(it.row, [(k[:, :, :it.n], v[:, :, :it.n]) for k, v in it.kv])
                    continue
                j = free.pop()
                if it.private:
                    self.cache.put_private(j, it.kv, it.n)
                else:
                    if id(it.kv) not in self.source:
                        self.source[id(it.kv)] = self.cache.add_source(it.kv)
                    self.cache.put(j, self.source[id(it.kv)], it.n)
                self.rows[j], self.next[j] = it.row, x

    def compact(self) -> None:
        """Drop empty slots once a quarter of them have nothing to do and no more rows can come,
        or half of them whatever may come (slots are added again when rows arrive)."""
        live = [j for j, r in enumerate(self.rows) if r is not None]
        empty = len(self.rows) - len(live)
        if not self.queue and (empty >= max(1, len(self.rows) // 2)
                               or (not self.more_coming() and empty >= max(1, len(self.rows) // 4))):
            self.cache.select(live)
            self.rows, self.next = [self.rows[j] for j in live], [self.next[j] for j in live]

    def run(self) -> torch.Tensor:
        """One forward pass of every slot's next token; the logits for the token after it."""
        engine, cache = self.engine, self.cache
        cache.advance()
        with kvbuffer.attending(engine.model, cache):
            out = engine._forward(input_ids=torch.tensor(self.next, device=engine.device)[:, None],
                                  position_ids=cache.step.position[:, None], cache=cache,
                                  # a ready 4-D mask is passed through untouched; the attention
                                  # builds its own from the cache
                                  attention_mask=torch.ones(len(self.rows), 1, 1, 1, dtype=torch.bool,
                                                            device=engine.device))
        return out.logits[:, -1]

    def update(self, logits: torch.Tensor) -> None:
        """Sample and accept each live row's next token; free the slots of finished rows."""
        live = [j for j, r in enumerate(self.rows) if r is not None]
        nxt = self._draw(logits[live], [self.rows[j] for j in live])
        for j, x in zip(live, nxt):
            r = self.rows[j]
            if self.engine._accept(r, x, logits[j]):
                kv = self.cache.take(j) if r.save_kv else None
                self.rows[j] = None
                self.cache.clear(j)
                self._finished(r, kv)
            else:
                self.next[j] = x


class Engine:
    """Samples traces and continuations for one model and one task.

    ``Engine(model, tokenizer, task, config).run_question(question)`` returns the records of
    that question (one dict per trace and checkpoint).

    Whether prompts go through the chat template is decided here, once, from the model
    (:func:`siautil.tasks.base.use_chat`): ``config.prompt_style`` ``"chat"`` or ``"plain"``
    as asked; ``"auto"`` follows ``chat=`` if given, else the model's registry entry (set by
    :func:`siautil.models.load`), else whether the tokenizer has a chat template.
    """

    def __init__(self, model, tokenizer, task: Task, config: RolloutConfig = RolloutConfig(),
                 chat: bool | None = None):
        self.model, self.tokenizer, self.task, self.config = model, tokenizer, task, config
        self.chain = config.chain()
        self.device = next(model.parameters()).device
        style = config.prompt_style
        if style == "auto" and chat is not None:
            style = "chat" if chat else "plain"
        self.chat = use_chat(style, tokenizer, getattr(model, "siautil_chat", None))
        eos = model.generation_config.eos_token_id if getattr(model, "generation_config", None) else None
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None:
            eos.append(tokenizer.eos_token_id)
        self.eos = set(eos)
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        vocab = max(len(pieces), model.get_output_embeddings().out_features)
        pieces += [None] * (vocab - len(pieces))  # ids the tokenizer does not know decode to nothing
        self.piece = [(p or "").replace("Ġ", " ").replace("Ċ", "\n").replace("▁", " ") for p in pieces]
        self.trigger = [any(c in p for c in TRIGGERS) for p in self.piece]
        self.context = getattr(model.config, "max_position_embeddings", None)
        window = getattr(model.config, "sliding_window", None)
        self.window = window if isinstance(window, int) and window > 0 else None
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.stats = dict(prefill_tokens=0, generated_tokens=0, forward_passes=0)

    # ------------------------------------------------------------------ helpers

    def prompt_ids(self, question: Question) -> list[int]:
        """The prompt's token ids; settings the model cannot take (prompt plus budget beyond
        its context or sliding window) are refused here, before anything is sampled."""
        text = self.task.prompt(question, self.tokenizer, chat=self.chat, few_shot=self.config.few_shot,
                                seed=self.config.seed)
        # a chat template writes its own special tokens
        ids = self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"]
        limit = len(ids) + self.config.max_new_tokens
        if self.context and limit > self.context:
            raise ValueError(f"question {question.id}: prompt ({len(ids)} tokens) plus max_new_tokens "
                             f"({self.config.max_new_tokens}) exceeds the model's context of {self.context} tokens")
        if self.window and limit > self.window:
            raise ValueError(f"question {question.id}: {limit} tokens exceed the model's sliding window "
                             f"({self.window}); lower max_new_tokens")
        return ids

    def stream_seed(self, question: Question) -> str:
        """The seed of a question's random streams: the run seed and the question id, so its
        records do not depend on which other questions ran, on the window, shards or resuming."""
        return f"{self.config.seed}:{question.id}"

    def _forward(self, **kw):
        self.stats["forward_passes"] += 1
        with torch.inference_mode():
            return self.model(use_cache=True, **kw)

    def _prefill(self, ids: list[int], keep: torch.Tensor | int = 1):
        """Encode ``ids`` once; return (per-layer keys/values, logits at the kept positions)."""
        self.stats["prefill_tokens"] += len(ids)
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        x = torch.tensor([ids], device=self.device)
        out = self._forward(input_ids=x, cache=cache, logits_to_keep=keep)
        return kvbuffer.cache_tensors(cache), out.logits[0]

    def _accept(self, row: _Row, tok: int, logits: torch.Tensor) -> bool:
        """Accept the sampled token ``tok`` for ``row``, which ``logits`` gave: keep the logits
        at checkpoints (every ``row.record_every`` tokens, and at ``t = T`` when the row ends at
        EOS), append the token, and decide whether the row is finished (and why)."""
        t = len(row.tokens)
        if row.record_every and t % row.record_every == 0:
            row.logits[t] = logits.clone()  # a copy: a view would keep the whole batch's logits alive
        if tok in self.eos:
            row.finish = Finish.EOS
            if row.record_every:
                row.logits[t] = logits.clone()  # the logits at t = T
            return True
        row.tokens.append(tok)
        if len(row.tokens) >= row.budget:
            row.finish = Finish.LENGTH
            return True
        if self.config.stop == "answer":
            row.tail = (row.tail + self.piece[tok])[-TAIL_CHARS:]
            if self.trigger[tok] and self.task.answer_complete(row.tail):
                row.finish = Finish.ANSWER
                return True
        return False

    def _limit(self, prompts: list[list[int]]) -> int:
        """The most positions a slot may hold: a whole generation, plus its prompt when rows
        copy their prefixes (shuffled prefixes), plus what a re-encoded steps-shuffled prefix
        may add."""
        shuffle = self.config.shuffle
        return (self.config.max_new_tokens + (max(map(len, prompts)) if shuffle != "none" else 0)
                + (STEPS_SLACK if shuffle == "steps" else 0))

    def _decode(self, items: list[_Item], limit: int) -> None:
        """Decode ``items`` to completion (rows that arrive while decoding are not expected)."""
        if items:
            decoder = _Decode(self, items[0].kv, limit)
            decoder.submit(items)
            while decoder.busy:
                decoder.step()

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
        cfg = self.config
        requests = [_Request(q, k, self.prompt_ids(q), self.stream_seed(q)) for k, q in questions]
        if not requests:
            return
        decoder = None

        def finished(row: _Row) -> None:
            req = row.owner
            req.open -= 1
            if req.open == 0:
                self._next_phase(req, decoder)

        for req in requests:
            kv, last = self._prefill(req.prompt)
            if decoder is None:
                decoder = _Decode(self, kv, self._limit([r.prompt for r in requests]), on_finish=finished,
                                  more_coming=lambda: any(r.status is Status.TRACES for r in requests))
            req.traces = self._trace_rows(req.seed, owner=req)
            req.open = len(req.traces)
            decoder.submit([_Item(tr, kv, len(req.prompt), last[-1]) for tr in req.traces])
        reported = set()
        while decoder.busy:
            decoder.step()
            for req in requests:
                if req.status is Status.DONE and req.index not in reported:
                    reported.add(req.index)
                    yield req.index, req.records

    def _trace_rows(self, seed: str, owner: _Request | None = None) -> list[_Row]:
        cfg = self.config
        return [_Row(budget=cfg.max_new_tokens, stream=streams.key(seed, 0, i), record_every=cfg.stride,
                     save_kv=True, owner=owner) for i in range(cfg.n_traces)]

    def _next_phase(self, req: _Request, decoder: _Decode) -> None:
        """A question's rows of one phase are all done: after the traces, submit the
        continuations of their checkpoints; after those (or with none to sample), build the records."""
        if req.status is Status.TRACES:
            self._complete_traces(req.prompt, req.traces)
            req.checkpoints = self.checkpoints_of(req.traces)
            items = self._continuation_items(req)
            req.status, req.open = Status.CONTINUATIONS, len(items)
            if items:
                decoder.submit(items)
                return
        req.records = self._records(req.question, req.index, req.traces, req.checkpoints)
        req.status = Status.DONE
        for tr in req.traces:  # the window's cache still holds what its rows read
            tr.kv, tr.logits = None, {}
        for cp in req.checkpoints:
            cp.kv = cp.logits = None

    def _complete_traces(self, prompt: list[int], traces: list[_Row]) -> None:
        """A trace that stopped at its answer had its last token sampled but never fed: encode
        the whole trace once for the ``t = T`` checkpoint's keys and logits."""
        for tr in traces:
            T = len(tr.tokens)
            if T not in tr.logits and T < self.config.max_new_tokens:
                tr.kv, logits = self._prefill(list(prompt) + tr.tokens)
                tr.logits[T] = logits[-1]

    def _continuation_items(self, req: _Request) -> list[_Item]:
        """The ``M`` continuation rows of each of the request's checkpoints that has budget
        left, shortest prefixes first (rows decoding together then have similar lengths, so
        few attended positions are padding)."""
        cfg = self.config
        sampled = sorted((cp for cp in req.checkpoints if not cp.deterministic), key=lambda cp: cp.t)
        if cfg.shuffle != "none":
            self._shuffle_prefixes(req, sampled)
        items = []
        for cp in sampled:
            cp.continuations = [_Row(budget=cp.budget, stream=streams.key(req.seed, 1, cp.trace, cp.t, j),
                                     tail=cp.seen_text[-TAIL_CHARS:], owner=req) for j in range(cfg.n_continuations)]
            items += [_Item(r, cp.kv, len(req.prompt) + cp.seen, cp.logits, private=cfg.shuffle != "none")
                      for r in cp.continuations]
        return items

    def sample_traces(self, prompt: list[int], seed: str | torch.Generator | None = None) -> list[_Row]:
        """``N`` traces of one prompt from one prefill. Each finished trace keeps its keys and
        values and the logits at its checkpoints, ``t = T`` included, for the continuations."""
        seed = _seed(seed)
        kv, last = self._prefill(prompt)
        traces = self._trace_rows(seed)
        self._decode([_Item(tr, kv, len(prompt), last[-1]) for tr in traces], self._limit([prompt]))
        self._complete_traces(prompt, traces)
        return traces

    def prepare_traces(self, prompt: list[int], tokens: list[list[int]], finish: Finish | str = Finish.EOS) -> list[_Row]:
        """Traces given as token lists (sampled elsewhere), prefilled once each, ready for
        :meth:`continue_traces`."""
        out = []
        for toks in tokens:
            ts = checkpoints(len(toks), self.config.stride)
            keep = torch.tensor([len(prompt) + t - 1 for t in ts], device=self.device)
            kv, logits = self._prefill(list(prompt) + list(toks), keep=keep)
            out.append(_Row(budget=self.config.max_new_tokens, tokens=list(toks), finish=Finish(finish),
                            logits={t: logits[j] for j, t in enumerate(ts)}, kv=kv))
        return out

    def checkpoints_of(self, traces: list[_Row], max_continuation_tokens: int | None = None) -> list[Checkpoint]:
        """Every checkpoint of every trace (:func:`checkpoints`), in trace then ``t`` order, with
        its continuation budget: ``max_new_tokens - t``, capped at ``max_continuation_tokens``."""
        out = []
        for i, tr in enumerate(traces):
            for t in checkpoints(len(tr.tokens), self.config.stride):
                budget = self.config.max_new_tokens - t
                if max_continuation_tokens is not None:
                    budget = min(budget, max_continuation_tokens)
                text = self.tokenizer.decode(tr.tokens[:t], skip_special_tokens=True)
                out.append(Checkpoint(i, t, budget, text, text, tr.kv, tr.logits.get(t)))
        return out

    def continue_traces(self, prompt: list[int], traces: list[_Row], seed: str | torch.Generator | None = None,
                        max_continuation_tokens: int | None = None) -> list[Checkpoint]:
        """The checkpoints of ``traces``, each non-deterministic one with its ``M``
        continuations decoded, batched across checkpoints and traces (``t = T`` included)."""
        req = _Request(Question("", "", ""), 0, list(prompt), _seed(seed), traces=traces)
        req.checkpoints = self.checkpoints_of(traces, max_continuation_tokens)
        self._decode(self._continuation_items(req), self._limit([prompt]))
        return req.checkpoints

    def sample_continuations(self, prompt: list[int], prefix: list[int], m: int, max_new_tokens: int,
                             seed: str | torch.Generator | None = None) -> list[list[int]]:
        """``m`` continuations of ``prompt + prefix`` (token ids) through the engine's own path:
        one prefill, buffered batched decoding, the run's sampling chain and stopping rules.
        A continuation that ended at EOS ends with an EOS id."""
        tail = self.tokenizer.decode(prefix, skip_special_tokens=True)
        return self.sample_prompts([list(prompt) + list(prefix)], m, max_new_tokens, seed, tails=[tail])[0]

    def sample_prompts(self, prompts: list[list[int]], m: int, max_new_tokens: int,
                       seed: str | torch.Generator | None = None, tails: list[str] | None = None) -> list[list[list[int]]]:
        """``m`` completions of each of ``prompts`` (token ids, used as given), decoded together:
        one prefill per prompt, then every row in the same batches. Returns, per prompt, its
        ``m`` token lists, each ending with an EOS id if it ended there. ``tails`` are the
        texts before each completion, for ``stop="answer"``; completion ``j`` of prompt ``k``
        draws from stream ``(seed, 3, k, j)``."""
        seed = _seed(seed)
        rows, items = [], []
        for k, ids in enumerate(prompts):
            kv, last = self._prefill(ids)
            tail = (tails[k] if tails else "")[-TAIL_CHARS:]
            rows.append([_Row(budget=max_new_tokens, stream=streams.key(seed, 3, k, j), tail=tail) for j in range(m)])
            items += [_Item(r, kv, len(ids), last[-1]) for r in rows[-1]]
        self._decode(items, max_new_tokens)
        eos = next(iter(self.eos))
        return [[r.tokens + ([eos] if r.finish is Finish.EOS else []) for r in rs] for rs in rows]

    def _shuffle_prefixes(self, req: _Request, sampled: list[Checkpoint]) -> None:
        """Each checkpoint's prefix shuffled (from its own stream) and encoded afresh; only the
        continuations see it. ``"tokens"`` (Table 2): its tokens permuted, length kept.
        ``"steps"``: its text's steps shuffled by the task, format kept, then re-encoded."""
        for cp in sampled:
            toks = req.traces[cp.trace].tokens[:cp.t]
            stream = streams.key(req.seed, 2, cp.trace, cp.t)
            if self.config.shuffle == "tokens" and cp.t > 1:
                toks = [toks[j] for j in streams.permutation(stream, cp.t)]
            elif self.config.shuffle == "steps" and cp.t > 0:
                text = self.task.shuffle_steps(cp.prefix_text, random.Random(stream))
                toks = self.tokenizer.encode(text, add_special_tokens=False)[:cp.t + STEPS_SLACK]
            cp.kv, logits = self._prefill(req.prompt + toks)
            cp.logits, cp.seen = logits[-1], len(toks)
            cp.seen_text = self.tokenizer.decode(toks, skip_special_tokens=True)

    def _continuation_text(self, cp: Checkpoint, trace: _Row, cont: list[int]) -> str:
        """The text a continuation adds to the prefix it saw, such that ``seen_text + it`` is the
        decoded whole (what the answer is read from, now and on re-extraction)."""
        if self.config.shuffle != "none":
            # the shuffled prefix's tokens are not kept, so its continuations are decoded alone
            return self.tokenizer.decode(cont, skip_special_tokens=True)
        whole = self.tokenizer.decode(trace.tokens[:cp.t] + cont, skip_special_tokens=True)
        if whole.startswith(cp.seen_text):
            return whole[len(cp.seen_text):]
        return self.tokenizer.decode(cont, skip_special_tokens=True)

    def _records(self, question: Question, index: int, traces: list[_Row], cps: list[Checkpoint]) -> list[dict]:
        """One record per checkpoint: the ``M`` answers, the continuations' text (so the answers
        can be read again under another extraction mode), and the checkpoint's flags."""
        cfg = self.config

        def extract(text):
            return self.task.extract_answer(text, question, mode=cfg.extraction)

        name = getattr(self.model, "siautil_name", None) or getattr(self.model.config, "_name_or_path", "")
        texts = [self.tokenizer.decode(tr.tokens, skip_special_tokens=True) for tr in traces]
        answers = [extract(text) for text in texts]
        records = []
        for cp in cps:
            tr = traces[cp.trace]
            if cp.deterministic:  # no budget left: the prefix is the whole generation
                seen, conts, lengths = cp.prefix_text, [""] * cfg.n_continuations, [0] * cfg.n_continuations
            else:
                seen = cp.seen_text
                conts = [self._continuation_text(cp, tr, r.tokens) for r in cp.continuations]
                lengths = [len(r.tokens) for r in cp.continuations]
            records.append(dict(
                model=name, dataset=self.task.name, question_id=question.id, question_index=index,
                trace=cp.trace, t=cp.t, T=len(tr.tokens), answers=[extract(seen + c) for c in conts], gold=question.gold,
                correct=bool(self.task.is_correct(answers[cp.trace], question)), trace_answer=answers[cp.trace],
                finish=tr.finish.value, continuation_tokens=lengths, trace_text=texts[cp.trace],
                prefix_chars=len(cp.prefix_text), prefix_text=seen, continuations=conts,
                holds_answer=bool(self.task.holds_answer(cp.prefix_text)), deterministic=cp.deterministic,
            ))
        return records


def _seed(seed: str | torch.Generator | None) -> str:
    """A streams seed: as given, or drawn from a torch generator (the default one if ``None``)."""
    if isinstance(seed, str):
        return seed
    return str(int(torch.randint(0, 2 ** 62, (1,), generator=seed).item()))
