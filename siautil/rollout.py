"""The sampling engine: reasoning traces, checkpoints, and Monte-Carlo continuations (Appendix A).

For each question: sample ``N`` traces; take checkpoints ``t ∈ {0, s, 2s, …} ∪ {T}``; from each
prefix ``(x, z_<=t)`` sample ``M`` continuations with the same decoding; extract every answer.

What makes it fast, compared with calling ``generate`` once per prefix:

* one prefill per question: the traces are decoded from one prompt prefill, and each trace's
  keys and values are kept when it finishes, so no prefix is ever encoded again (the
  logits at every checkpoint are kept too, so the first continuation token costs nothing);
* continuous batching: all continuations of a question (every trace, every checkpoint, ``M``
  each) wait in one queue for ``max_batch_rows`` slots, and a slot freed by a finished row
  takes the next one at once, so the batch stays full until the work runs out;
* shared prefixes are read once: every checkpoint of a trace is a prefix of the same keys and
  values, which all its rows attend to through one read per step (:mod:`siautil.kvbuffer`);
* a continuation stops at EOS or as soon as its final answer is written (the task says when);
* generated keys and values are written in place into preallocated slots, and the sampler
  never sorts the whole vocabulary (:mod:`siautil.sampling`).

Randomness is drawn from one generator per question, seeded from the run seed and the
question id, so a question's records do not depend on which other questions ran, on shards,
or on resuming.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import asdict, dataclass, field

import torch

from . import kvbuffer
from .sampling import SamplingChain
from .tasks import Question, Task

#: characters after which a final answer may have just become complete (see Task.answer_complete)
TRIGGERS = (".", "\n", "}", ")", " ")


@dataclass(frozen=True)
class RolloutConfig:
    """Sampling settings of a run. The paper's own temperature, top-p, N, M and stride were
    lost from its text; these defaults are documented choices (FORMULAS.md, Appendix A)."""

    n_traces: int = 4                 # N traces per question
    n_continuations: int = 16         # M continuations per checkpoint
    stride: int = 50                  # s, tokens between checkpoints
    max_new_tokens: int = 600         # trace budget; a continuation from t gets max_new_tokens - t
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int | None = None          # None: the model's generation config, else generate's 50
    min_p: float | None = None
    seed: int = 0
    shuffle_prefix: bool = False      # Table 2: permute each prefix's tokens for the continuations
    stop_at_answer: bool = True
    prompt_style: str = "auto"        # "auto" | "chat" | "plain"
    few_shot: int = 0
    max_batch_rows: int = 256         # continuation rows decoded together

    def __post_init__(self):
        for name in ("n_traces", "n_continuations", "stride", "max_new_tokens", "max_batch_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Row:
    """One sequence being decoded."""

    budget: int
    tail: str = ""                  # recent text, for the answer-complete check
    tokens: list[int] = field(default_factory=list)
    reason: str = ""
    logits: dict[int, torch.Tensor] = field(default_factory=dict)
    kv: list | None = None


@dataclass
class _Item:
    """A row waiting for a slot: its prefix's keys and values (first ``n`` positions) and the
    logits for its first token."""

    row: _Row
    kv: list
    n: int
    logits: torch.Tensor


class Engine:
    """Samples traces and continuations for one model and one task.

    ``Engine(model, tokenizer, task, config).run_question(question)`` returns the records of
    that question (one dict per trace and checkpoint).
    """

    def __init__(self, model, tokenizer, task: Task, config: RolloutConfig = RolloutConfig(),
                 chat: bool | None = None):
        self.model, self.tokenizer, self.task, self.config = model, tokenizer, task, config
        self.chain = SamplingChain.for_model(model, config.temperature, config.top_p, config.top_k, config.min_p)
        self.device = next(model.parameters()).device
        self.chat = chat
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
        style = self.config.prompt_style
        if style == "auto" and self.chat is not None:
            style = "chat" if self.chat else "plain"
        text = self.task.prompt(question, self.tokenizer, style=style, few_shot=self.config.few_shot,
                                seed=self.config.seed)
        templated = style == "chat" or (style == "auto" and getattr(self.tokenizer, "chat_template", None))
        ids = self.tokenizer(text, add_special_tokens=not templated)["input_ids"]
        limit = len(ids) + self.config.max_new_tokens
        if self.context and limit > self.context:
            raise ValueError(f"question {question.id}: prompt ({len(ids)} tokens) plus max_new_tokens "
                             f"({self.config.max_new_tokens}) exceeds the model's context of {self.context} tokens")
        if self.window and limit > self.window:
            raise ValueError(f"question {question.id}: {limit} tokens exceed the model's sliding window "
                             f"({self.window}); lower max_new_tokens")
        return ids

    def generator(self, question: Question) -> torch.Generator:
        digest = hashlib.sha256(f"{self.config.seed}:{question.id}".encode()).digest()
        g = torch.Generator(device=self.device)
        g.manual_seed(int.from_bytes(digest[:8], "little"))
        return g

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

    def _done(self, row: _Row, tok: int) -> bool:
        if tok in self.eos:
            row.reason = "eos"
            return True
        row.tokens.append(tok)
        if len(row.tokens) >= row.budget:
            row.reason = "length"
            return True
        if self.config.stop_at_answer and self.trigger[tok]:
            row.tail = (row.tail + self.piece[tok])[-400:]
            if self.task.answer_complete(row.tail):
                row.reason = "answer"
                return True
        else:
            row.tail = (row.tail + self.piece[tok])[-400:]
        return False

    def _decode(self, items: list[_Item], gen: torch.Generator, record_every: int | None = None,
                save_kv: bool = False, share: bool = True) -> None:
        """Decode every item's row to completion, ``max_batch_rows`` slots at a time: a slot
        freed by a finished row takes the next waiting item at once (continuous batching).
        Items are admitted in the given order; an item's first token is sampled from its
        prefix logits, so no prefix is ever encoded here. With ``share``, items with the same
        prefix keys and values read them from one shared source; otherwise each row copies
        its prefix (better when every prefix has only its ``M`` rows, as shuffled ones do)."""
        if not items:
            return
        slots = min(self.config.max_batch_rows, len(items))
        queue = deque(items)
        limit = max(it.row.budget + (0 if share else it.n) for it in items)
        cache = kvbuffer.SlotCache(items[0].kv, slots, capacity=min(limit, 64), limit=limit)
        source: dict[int, int] = {}              # id(prefix kv) -> source index in the cache
        row: list[_Row | None] = [None] * slots   # slot -> row
        tok = [self.pad] * slots                 # slot -> token to feed next

        def finish(r: _Row, kv) -> None:
            if save_kv:
                r.kv = kv
            self.stats["generated_tokens"] += len(r.tokens)

        def admit(free: list[int]) -> None:
            """Fill free slots from the queue; a row may finish on its first token."""
            while free and queue:
                batch = [queue.popleft() for _ in range(min(len(free), len(queue)))]
                first = self.chain.sample(torch.stack([it.logits for it in batch]), gen)[:, 0].tolist()
                for it, x in zip(batch, first):
                    if record_every and len(it.row.tokens) % record_every == 0:
                        it.row.logits[len(it.row.tokens)] = it.logits
                    if self._done(it.row, x):
                        if it.row.reason == "eos" and record_every:
                            it.row.logits[len(it.row.tokens)] = it.logits
                        finish(it.row, [(k[:, :, :it.n], v[:, :, :it.n]) for k, v in it.kv])
                        continue
                    j = free.pop()
                    if not share:
                        cache.put_private(j, it.kv, it.n)
                    else:
                        if id(it.kv) not in source:
                            source[id(it.kv)] = cache.add_source(it.kv)
                        cache.put(j, source[id(it.kv)], it.n)
                    row[j], tok[j] = it.row, x

        admit(list(range(slots))[::-1])
        while True:
            live = [j for j in range(len(row)) if row[j] is not None]
            if not live:
                return
            if not queue and len(row) - len(live) >= max(1, len(row) // 4):
                cache.select(live)  # compact once a quarter of the slots have nothing left to do
                row, tok = [row[j] for j in live], [tok[j] for j in live]
            cache.advance()
            with kvbuffer.attending(self.model, cache):
                out = self._forward(input_ids=torch.tensor(tok, device=self.device)[:, None],
                                    position_ids=cache.step.position[:, None], cache=cache,
                                    # a ready 4-D mask is passed through untouched; the attention
                                    # builds its own from the cache
                                    attention_mask=torch.ones(len(row), 1, 1, 1, dtype=torch.bool, device=self.device))
            logits = out.logits[:, -1]
            nxt = self.chain.sample(logits, gen)[:, 0].tolist()
            free = []
            for j, r in enumerate(row):
                if r is None:
                    continue
                t = len(r.tokens)
                if record_every and t % record_every == 0:
                    r.logits[t] = logits[j]
                if self._done(r, nxt[j]):
                    if r.reason == "eos" and record_every:
                        r.logits[t] = logits[j]  # the logits at t = T
                    finish(r, cache.take(j) if save_kv else None)
                    row[j] = None
                    cache.clear(j)
                    free.append(j)
                else:
                    tok[j] = nxt[j]
            admit(free[::-1])

    # ------------------------------------------------------------------ one question

    def run_question(self, question: Question, index: int = 0) -> list[dict]:
        """Sample the traces and continuations of one question; return its records."""
        gen = self.generator(question)
        prompt = self.prompt_ids(question)
        traces = self.sample_traces(prompt, gen)
        texts, results, deterministic = self.continue_traces(prompt, traces, gen)
        return self._records(question, index, traces, texts, results, deterministic)

    def sample_traces(self, prompt: list[int], gen: torch.Generator) -> list[_Row]:
        """``N`` traces from one prefill of the prompt. Each finished trace keeps its keys and
        values and the logits at its checkpoints, for the continuations."""
        cfg = self.config
        kv, last = self._prefill(prompt)
        n = cfg.n_traces
        traces = [_Row(budget=cfg.max_new_tokens) for _ in range(n)]
        self._decode([_Item(tr, kv, len(prompt), last[-1]) for tr in traces], gen, record_every=cfg.stride, save_kv=True)
        return traces

    def prepare_traces(self, prompt: list[int], tokens: list[list[int]], reason: str = "eos") -> list[_Row]:
        """Traces given as token lists (sampled elsewhere), prefilled once each, ready for
        :meth:`continue_traces`."""
        out = []
        for toks in tokens:
            ts = sorted(set(range(0, len(toks) + 1, self.config.stride)) | {len(toks)})
            keep = torch.tensor([len(prompt) + t - 1 for t in ts], device=self.device)
            kv, logits = self._prefill(list(prompt) + list(toks), keep=keep)
            out.append(_Row(budget=self.config.max_new_tokens, tokens=list(toks), reason=reason,
                            logits={t: logits[j] for j, t in enumerate(ts)}, kv=kv))
        return out

    def continue_traces(self, prompt: list[int], traces: list[_Row], gen: torch.Generator,
                        max_continuation_tokens: int | None = None):
        """``M`` continuations from every checkpoint of every trace, batched across checkpoints
        and traces. A continuation from ``t`` may run ``max_new_tokens - t`` tokens (capped at
        ``max_continuation_tokens`` if given). Returns ``(prefix texts, continuation tokens,
        deterministic checkpoints)``."""
        cfg = self.config
        p = len(prompt)
        prefixes, deterministic = [], []
        texts = {}
        for i, tr in enumerate(traces):
            T = len(tr.tokens)
            for t in sorted(set(range(0, T + 1, cfg.stride)) | {T}):
                texts[i, t] = self.tokenizer.decode(tr.tokens[:t], skip_special_tokens=True)
                budget = cfg.max_new_tokens - t
                if max_continuation_tokens is not None:
                    budget = min(budget, max_continuation_tokens)
                if budget <= 0 or (tr.reason == "answer" and t == T and not cfg.shuffle_prefix):
                    deterministic.append((i, t))  # the prefix already holds the whole generation
                else:
                    prefixes.append((i, t, budget))
        if cfg.shuffle_prefix:
            prefix_kv, prefix_logits, prefix_text = self._shuffled_prefixes(prompt, traces, prefixes, gen)
            texts.update(prefix_text)
        else:
            prefix_kv = {(i, t): traces[i].kv for i, t, _ in prefixes}
            prefix_logits = {(i, t): traces[i].logits[t] for i, t, _ in prefixes}
        m = cfg.n_continuations
        # shortest prefixes first: rows decoding together then have similar lengths, so few
        # attended positions are padding
        order = sorted(prefixes, key=lambda x: x[1])
        rows = {(i, t): [_Row(budget=b, tail=texts[i, t][-400:]) for _ in range(m)] for i, t, b in order}
        self._decode([_Item(r, prefix_kv[i, t], p + t, prefix_logits[i, t]) for i, t, _ in order for r in rows[i, t]],
                     gen, share=not cfg.shuffle_prefix)  # shuffled prefixes are one per checkpoint
        results = {key: [r.tokens for r in rs] for key, rs in rows.items()}
        return texts, results, deterministic

    def sample_continuations(self, prompt: list[int], prefix: list[int], m: int, max_new_tokens: int,
                             gen: torch.Generator | None = None) -> list[list[int]]:
        """``m`` continuations of ``prompt + prefix`` (token ids) through the engine's own path:
        one prefill, buffered batched decoding, the run's sampling chain and stopping rules."""
        kv, last = self._prefill(list(prompt) + list(prefix))
        tail = self.tokenizer.decode(prefix, skip_special_tokens=True)[-400:]
        rows = [_Row(budget=max_new_tokens, tail=tail) for _ in range(m)]
        self._decode([_Item(r, kv, len(prompt) + len(prefix), last[-1]) for r in rows], gen)
        return [r.tokens + ([next(iter(self.eos))] if r.reason == "eos" else []) for r in rows]

    def _shuffled_prefixes(self, prompt, traces, prefixes, gen):
        """Table 2: for each (trace, t), the trace tokens of the prefix permuted (length kept),
        encoded afresh. Only the continuations see the shuffled prefix."""
        kv, logits, texts = {}, {}, {}
        for i, t, _ in prefixes:
            toks = traces[i].tokens[:t]
            if t > 1:
                perm = torch.randperm(t, generator=gen, device=self.device).tolist()
                toks = [toks[j] for j in perm]
            layer_kv, lg = self._prefill(prompt + toks)
            kv[i, t], logits[i, t] = layer_kv, lg[-1]
            texts[i, t] = self.tokenizer.decode(toks, skip_special_tokens=True)
        return kv, logits, texts

    def _records(self, question, index, traces, texts, results, deterministic) -> list[dict]:
        extract = self.task.extract_answer
        records = []
        name = getattr(self.model, "siautil_name", None) or getattr(self.model.config, "_name_or_path", "")
        for i, tr in enumerate(traces):
            T = len(tr.tokens)
            trace_text = self.tokenizer.decode(tr.tokens, skip_special_tokens=True)
            trace_answer = extract(trace_text, question)
            for t in sorted(set(range(0, T + 1, self.config.stride)) | {T}):
                if (i, t) in results:
                    conts = results[i, t]
                    prefix = tr.tokens[:t] if not self.config.shuffle_prefix else None
                    answers = []
                    for c in conts:
                        if prefix is not None:
                            text = self.tokenizer.decode(prefix + c, skip_special_tokens=True)
                        else:
                            text = texts[i, t] + self.tokenizer.decode(c, skip_special_tokens=True)
                        answers.append(extract(text, question))
                    lengths = [len(c) for c in conts]
                else:  # the prefix already holds the whole generation
                    answers = [extract(texts[i, t], question)] * self.config.n_continuations
                    lengths = [0] * self.config.n_continuations
                records.append(dict(
                    model=name, dataset=self.task.name, question_id=question.id, question_index=index,
                    trace=i, t=t, T=T, answers=answers, gold=question.gold,
                    correct=bool(self.task.is_correct(trace_answer, question)), trace_answer=trace_answer,
                    finish=tr.reason, continuation_tokens=lengths, trace_text=trace_text,
                    prefix_chars=len(texts[i, t]) if not self.config.shuffle_prefix else None,
                ))
        return records

