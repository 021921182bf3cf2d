"""Decoding rows of one model in continuous batches: the model's forward pass, each row's state
(what it has written, why it stopped), and the loop that keeps a batch full.

* :class:`Runner` is the model side: its forward pass and prefill, its end-of-sequence ids,
  what each token id reads as (for the ``stop="answer"`` rule), its context, and counts.
* :class:`Row` is one sequence being decoded (a trace or a continuation) with an explicit
  state: :meth:`Row.accept` takes each sampled token and decides, by the :class:`Stopping`
  rules, whether the row is finished and why (:class:`Finish`).
* :class:`Decoder` runs many rows at once in three named phases per step: ``schedule`` admits
  waiting items into free slots, ``run`` does one forward pass of the live rows, ``update``
  samples their next tokens from each row's own random stream and hands them to the rows.

:mod:`siautil.rollout` builds the rows of a question's phases (traces, then continuations) and
submits them here.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import torch

from . import kvbuffer, streams
from .sampling import SamplingChain

#: characters after which a final answer may have just become complete (see Task.answer_complete)
TRIGGERS = (".", "\n", "}", ")", " ")
#: characters of recent text kept per row for the answer-complete check of ``stop="answer"``
TAIL_CHARS = 400
#: a slot buffer's first capacity in generated tokens (it grows by doubling up to a row's budget)
SLOT_CAPACITY = 64


class Finish(str, enum.Enum):
    """Why a row stopped decoding (stored in records as its string value)."""

    EOS = "eos"          # the model wrote an end-of-sequence token
    LENGTH = "length"    # the row's token budget ran out
    ANSWER = "answer"    # a complete final answer was written (``stop="answer"`` only)


class Runner:
    """One loaded model (:class:`siautil.models.LoadedModel`) as the decoder needs it: its
    forward pass and prefill (counted in :attr:`stats`), the token ids that end a sequence (the
    model's generation config's and the tokenizer's), what each id reads as, its context and
    sliding window, and the id padding slots are fed."""

    def __init__(self, loaded):
        model, tokenizer = loaded.model, loaded.tokenizer
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
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

    def forward(self, **kw):
        self.stats["forward_passes"] += 1
        with torch.inference_mode():
            return self.model(use_cache=True, **kw)

    def prefill(self, ids: list[int], keep: torch.Tensor | int = 1):
        """Encode ``ids`` once; return (per-layer keys/values, logits at the kept positions)."""
        self.stats["prefill_tokens"] += len(ids)
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        x = torch.tensor([ids], device=self.device)
        out = self.forward(input_ids=x, cache=cache, logits_to_keep=keep)
        return kvbuffer.cache_tensors(cache), out.logits[0]


@dataclass(frozen=True)
class Stopping:
    """What ends a row besides its budget: an end-of-sequence id, and with ``stop="answer"`` a
    complete final answer (``answer_complete``, the task's reading of the row's recent text,
    asked only after a token that can complete one, ``trigger``)."""

    eos: frozenset[int]
    stop: str
    piece: list[str]
    trigger: list[bool]
    answer_complete: Callable[[str], bool]


@dataclass
class Row:
    """One sequence being decoded: a trace or a continuation. ``stream`` is its random stream
    (:mod:`siautil.streams`): draw ``k`` of it picks its ``k``-th token. ``finish`` is ``None``
    while it decodes, then why it stopped."""

    budget: int
    stream: int = 0
    tail: str = ""                  # the last TAIL_CHARS characters, for the answer-complete check
    tokens: list[int] = field(default_factory=list)
    finish: Finish | None = None
    record_every: int | None = None  # keep the logits every this many tokens (traces: the stride)
    save_kv: bool = False            # keep the finished row's keys and values (traces)
    logits: dict[int, torch.Tensor] = field(default_factory=dict)  # t -> logits for token t+1 (traces)
    kv: list | None = None
    owner: object = None             # told when the row finishes

    def accept(self, tok: int, logits: torch.Tensor, rules: Stopping) -> bool:
        """Take the sampled token ``tok``, which ``logits`` gave: keep the logits at checkpoints
        (every ``record_every`` tokens, and at ``t = T`` when the row ends at EOS), append the
        token, and say whether the row is now finished (and set why)."""
        t = len(self.tokens)
        if self.record_every and t % self.record_every == 0:
            self.logits[t] = logits.clone()  # a copy: a view would keep the whole batch's logits alive
        if tok in rules.eos:
            self.finish = Finish.EOS
            if self.record_every:
                self.logits[t] = logits.clone()  # the logits at t = T
            return True
        self.tokens.append(tok)
        if len(self.tokens) >= self.budget:
            self.finish = Finish.LENGTH
            return True
        if rules.stop == "answer":
            self.tail = (self.tail + rules.piece[tok])[-TAIL_CHARS:]
            if rules.trigger[tok] and rules.answer_complete(self.tail):
                self.finish = Finish.ANSWER
                return True
        return False


@dataclass
class Item:
    """A row waiting for a slot: its prefix's keys and values (first ``n`` positions), the
    logits for its first token, and whether it reads the prefix from a shared source or copies
    it (``private``: better when only the ``M`` rows of one checkpoint use a prefix, as for
    shuffled prefixes)."""

    row: Row
    kv: list
    n: int
    logits: torch.Tensor
    private: bool = False


class Decoder:
    """Continuous batching over rows that arrive while it runs, in three named phases per
    step: :meth:`schedule` admits waiting items into free slots (growing the batch up to
    ``max_rows``), :meth:`run` does the forward pass of the live rows, :meth:`update` samples
    their next tokens and hands each to its row (:meth:`Row.accept`); a finished row frees its
    slot and tells ``on_finish``, which may submit more rows (a question whose traces are done
    submits its continuations). A step samples once, in :meth:`update`.

    Each row draws its tokens from its own stream, so admission order and batch composition
    change no draw. An item's first token is sampled from its prefix logits when it is
    submitted (all of a submission at once), so no prefix is ever encoded here and admitting
    samples nothing; items with the same prefix keys and values read them from one source."""

    def __init__(self, runner: Runner, chain: SamplingChain, rules: Stopping, max_rows: int, like: list,
                 limit: int, on_finish=None, more_coming=lambda: False):
        self.runner, self.chain, self.rules, self.max_rows = runner, chain, rules, max_rows
        self.on_finish, self.more_coming = on_finish, more_coming
        self.queue: deque[tuple[Item, int]] = deque()  # waiting items and their first tokens
        self.cache = kvbuffer.SlotCache(like, 0, capacity=min(limit, SLOT_CAPACITY), limit=limit)
        self.source: dict[int, int] = {}     # id(prefix kv) -> source index in the cache
        self.rows: list[Row | None] = []     # slot -> row
        self.next: list[int] = []            # slot -> token to feed next

    @property
    def busy(self) -> bool:
        return bool(self.queue) or any(r is not None for r in self.rows)

    def submit(self, items: list[Item]) -> None:
        """Queue ``items``, their first tokens drawn now, ``max_rows`` at a time (a question's
        continuations may be thousands of rows of the vocabulary)."""
        for s in range(0, len(items), self.max_rows):
            chunk = items[s: s + self.max_rows]
            first = self._draw(torch.stack([it.logits for it in chunk]), [it.row for it in chunk])
            self.queue.extend(zip(chunk, first))

    def step(self) -> None:
        """Admit what waits, then decode one token for every live row."""
        self.schedule()
        if any(r is not None for r in self.rows):
            self.update(self.run())
        self.compact()

    def drain(self) -> None:
        """Decode until every submitted row is finished."""
        while self.busy:
            self.step()

    def _draw(self, logits: torch.Tensor, rows: list[Row]) -> list[int]:
        u = streams.uniforms([r.stream for r in rows], [len(r.tokens) for r in rows])
        return self.chain.sample_uniform(logits, torch.from_numpy(u)).tolist()

    def _finished(self, row: Row, kv) -> None:
        if row.save_kv:
            row.kv = kv
        self.runner.stats["generated_tokens"] += len(row.tokens)
        if row.owner is not None and self.on_finish is not None:
            self.on_finish(row)

    def schedule(self) -> None:
        """Fill free slots from the queue, adding slots while there are fewer than
        ``max_rows``; a row may finish on its first token and never take one."""
        while self.queue:
            free = [j for j, r in enumerate(self.rows) if r is None]
            room = self.max_rows - len(self.rows)
            if len(free) < len(self.queue) and room > 0:
                add = min(room, len(self.queue) - len(free))
                self.cache.add_slots(add)
                free += list(range(len(self.rows), len(self.rows) + add))
                self.rows += [None] * add
                self.next += [self.runner.pad] * add
            if not free:
                return
            batch = [self.queue.popleft() for _ in range(min(len(free), len(self.queue)))]
            free.reverse()
            for it, x in batch:
                if it.row.accept(x, it.logits, self.rules):
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
        runner, cache = self.runner, self.cache
        cache.advance()
        with kvbuffer.attending(runner.model, cache):
            out = runner.forward(input_ids=torch.tensor(self.next, device=runner.device)[:, None],
                                 position_ids=cache.step.position[:, None], cache=cache,
                                 # a ready 4-D mask is passed through untouched; the attention
                                 # builds its own from the cache
                                 attention_mask=torch.ones(len(self.rows), 1, 1, 1, dtype=torch.bool,
                                                           device=runner.device))
        return out.logits[:, -1]

    def update(self, logits: torch.Tensor) -> None:
        """Sample each live row's next token and give it to the row; free the slots of finished rows."""
        live = [j for j, r in enumerate(self.rows) if r is not None]
        nxt = self._draw(logits[live], [self.rows[j] for j in live])
        for j, x in zip(live, nxt):
            r = self.rows[j]
            if r.accept(x, logits[j], self.rules):
                kv = self.cache.take(j) if r.save_kv else None
                self.rows[j] = None
                self.cache.clear(j)
                self._finished(r, kv)
            else:
                self.next[j] = x
