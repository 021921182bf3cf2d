"""The sampling engine: reasoning traces, checkpoints, and Monte-Carlo continuations (Appendix A).

For each question: sample ``N`` traces; take checkpoints ``t ∈ {0, s, 2s, …} ∪ {T}``; from each
prefix ``(x, z_<=t)``, ``t = T`` included, sample ``M`` continuations with the same decoding;
extract every answer. Every record keeps its continuations' text (answers can be read again
under another extraction mode) and says whether its prefix already holds a final answer.

What makes it fast, compared with calling ``generate`` once per prefix:

* one prefill per question: the traces are decoded from one prompt prefill, and each trace's
  keys and values are kept when it finishes, so no prefix is ever encoded again (the
  logits at every checkpoint are kept too, so the first continuation token costs nothing);
* continuous batching: all continuations of a question (every trace, every checkpoint, ``M``
  each) wait in one queue for ``max_batch_rows`` slots, and a slot freed by a finished row
  takes the next one at once, so the batch stays full until the work runs out;
* shared prefixes are read once: every checkpoint of a trace is a prefix of the same keys and
  values, which all its rows attend to through one read per step (:mod:`siautil.kvbuffer`);
* a generation stops at EOS or its token budget (``stop="eos"``, the paper's protocol), or
  also as soon as its final answer is written (``stop="answer"``; the task says when);
* generated keys and values are written in place into preallocated slots, and the sampler
  never sorts the whole vocabulary (:mod:`siautil.sampling`).

Randomness is drawn from one generator per question, seeded from the run seed and the
question id, so a question's records do not depend on which other questions ran, on shards,
or on resuming.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import InitVar, asdict, dataclass, field

import torch

from . import kvbuffer
from .sampling import SamplingChain
from .tasks import Question, Task
from .tasks.extract import check_mode

#: characters after which a final answer may have just become complete (see Task.answer_complete)
TRIGGERS = (".", "\n", "}", ")", " ")


#: How a generation ends. ``"eos"``: at EOS or the token budget, as the paper's protocol
#: (Appendix A: traces run to EOS or 600 tokens). ``"answer"``: also as soon as a complete final
#: answer is written (cheaper; changes T, the trace's label and the continuations' answers for
#: models that write past their first answer).
STOP_RULES = ("eos", "answer")
#: characters of recent text kept per row for the answer-complete check of ``stop="answer"``
TAIL_CHARS = 400


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
    shuffle_prefix: bool = False      # Table 2: permute each prefix's tokens for the continuations
    stop: str = "eos"                 # one of STOP_RULES
    extraction: str = "strict-match"  # one of tasks.extract.EXTRACTION_MODES
    prompt_style: str = "auto"        # "auto" | "chat" | "plain"
    few_shot: int = 0
    max_batch_rows: int = 256         # continuation rows decoded together
    stop_at_answer: InitVar[bool | None] = None

    def __post_init__(self, stop_at_answer):
        if stop_at_answer is not None:
            object.__setattr__(self, "stop", "answer" if stop_at_answer else "eos")
        if self.top_k is None:
            object.__setattr__(self, "top_k", 0)
        for name in ("n_traces", "n_continuations", "stride", "max_new_tokens", "max_batch_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
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


def checkpoints(T: int, stride: int) -> list[int]:
    """The checkpoints of a trace of ``T`` tokens: ``{0, s, 2s, …} ∪ {T}`` (Appendix A)."""
    return sorted(set(range(0, T + 1, stride)) | {T})


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
        self.chain = config.chain()
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
        if self.config.stop == "answer":
            row.tail = (row.tail + self.piece[tok])[-TAIL_CHARS:]
            if self.trigger[tok] and self.task.answer_complete(row.tail):
                row.reason = "answer"
                return True
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
        values and the logits at its checkpoints, ``t = T`` included, for the continuations."""
        cfg = self.config
        kv, last = self._prefill(prompt)
        n = cfg.n_traces
        traces = [_Row(budget=cfg.max_new_tokens) for _ in range(n)]
        self._decode([_Item(tr, kv, len(prompt), last[-1]) for tr in traces], gen, record_every=cfg.stride, save_kv=True)
        for tr in traces:
            T = len(tr.tokens)
            if T not in tr.logits and T < cfg.max_new_tokens:
                # a trace that stopped at its answer: its last token was sampled but never fed,
                # so encode the whole trace once for the t = T checkpoint's keys and logits
                tr.kv, logits = self._prefill(list(prompt) + tr.tokens)
                tr.logits[T] = logits[-1]
        return traces

    def prepare_traces(self, prompt: list[int], tokens: list[list[int]], reason: str = "eos") -> list[_Row]:
        """Traces given as token lists (sampled elsewhere), prefilled once each, ready for
        :meth:`continue_traces`."""
        out = []
        for toks in tokens:
            ts = checkpoints(len(toks), self.config.stride)
            keep = torch.tensor([len(prompt) + t - 1 for t in ts], device=self.device)
            kv, logits = self._prefill(list(prompt) + list(toks), keep=keep)
            out.append(_Row(budget=self.config.max_new_tokens, tokens=list(toks), reason=reason,
                            logits={t: logits[j] for j, t in enumerate(ts)}, kv=kv))
        return out

    def continue_traces(self, prompt: list[int], traces: list[_Row], gen: torch.Generator,
                        max_continuation_tokens: int | None = None):
        """``M`` continuations from every checkpoint of every trace, ``t = T`` included, batched
        across checkpoints and traces. A continuation from ``t`` may run ``max_new_tokens - t``
        tokens (capped at ``max_continuation_tokens`` if given); a checkpoint with no budget
        left is deterministic (its prefix is the whole generation). Returns ``(prefix texts,
        continuation tokens, deterministic checkpoints)``, each keyed by ``(trace, t)``; a prefix
        text is the pair (the trace's prefix, the prefix the continuations saw), which differ
        only with ``shuffle_prefix``."""
        cfg = self.config
        p = len(prompt)
        prefixes, deterministic = [], []
        texts = {}
        for i, tr in enumerate(traces):
            for t in checkpoints(len(tr.tokens), cfg.stride):
                texts[i, t] = self.tokenizer.decode(tr.tokens[:t], skip_special_tokens=True)
                budget = cfg.max_new_tokens - t
                if max_continuation_tokens is not None:
                    budget = min(budget, max_continuation_tokens)
                if budget <= 0:
                    deterministic.append((i, t))
                else:
                    prefixes.append((i, t, budget))
        if cfg.shuffle_prefix:
            prefix_kv, prefix_logits, prefix_text = self._shuffled_prefixes(prompt, traces, prefixes, gen)
        else:
            prefix_kv = {(i, t): traces[i].kv for i, t, _ in prefixes}
            prefix_logits = {(i, t): traces[i].logits[t] for i, t, _ in prefixes}
            prefix_text = texts
        m = cfg.n_continuations
        # shortest prefixes first: rows decoding together then have similar lengths, so few
        # attended positions are padding
        order = sorted(prefixes, key=lambda x: x[1])
        rows = {(i, t): [_Row(budget=b, tail=prefix_text[i, t][-TAIL_CHARS:]) for _ in range(m)] for i, t, b in order}
        self._decode([_Item(r, prefix_kv[i, t], p + t, prefix_logits[i, t]) for i, t, _ in order for r in rows[i, t]],
                     gen, share=not cfg.shuffle_prefix)  # shuffled prefixes are one per checkpoint
        results = {key: [r.tokens for r in rs] for key, rs in rows.items()}
        return {key: (text, prefix_text.get(key, text)) for key, text in texts.items()}, results, deterministic

    def sample_continuations(self, prompt: list[int], prefix: list[int], m: int, max_new_tokens: int,
                             gen: torch.Generator | None = None) -> list[list[int]]:
        """``m`` continuations of ``prompt + prefix`` (token ids) through the engine's own path:
        one prefill, buffered batched decoding, the run's sampling chain and stopping rules."""
        kv, last = self._prefill(list(prompt) + list(prefix))
        tail = self.tokenizer.decode(prefix, skip_special_tokens=True)[-TAIL_CHARS:]
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

    def _continuation_text(self, prefix: list[int], prefix_text: str, cont: list[int]) -> str:
        """The text a continuation adds to its prefix, such that ``prefix_text + it`` is the
        decoded whole (what the answer is read from, now and on re-extraction)."""
        whole = self.tokenizer.decode(prefix + cont, skip_special_tokens=True)
        if whole.startswith(prefix_text):
            return whole[len(prefix_text):]
        return self.tokenizer.decode(cont, skip_special_tokens=True)

    def _records(self, question, index, traces, texts, results, deterministic) -> list[dict]:
        """One record per (trace, checkpoint): the ``M`` answers, the continuations' text (so the
        answers can be read again under another extraction mode), and the checkpoint's flags."""
        cfg = self.config

        def extract(text):
            return self.task.extract_answer(text, question, mode=cfg.extraction)

        records = []
        name = getattr(self.model, "siautil_name", None) or getattr(self.model.config, "_name_or_path", "")
        for i, tr in enumerate(traces):
            T = len(tr.tokens)
            trace_text = self.tokenizer.decode(tr.tokens, skip_special_tokens=True)
            trace_answer = extract(trace_text)
            for t in checkpoints(T, cfg.stride):
                original, prefix_text = texts[i, t]
                if (i, t) in results:
                    # the shuffled prefix's tokens are not kept, so its continuations are decoded alone
                    conts = [self._continuation_text(tr.tokens[:t], prefix_text, c) if not cfg.shuffle_prefix
                             else self.tokenizer.decode(c, skip_special_tokens=True) for c in results[i, t]]
                    lengths = [len(c) for c in results[i, t]]
                else:  # no budget left: the prefix is the whole generation
                    prefix_text = original
                    conts, lengths = [""] * cfg.n_continuations, [0] * cfg.n_continuations
                records.append(dict(
                    model=name, dataset=self.task.name, question_id=question.id, question_index=index,
                    trace=i, t=t, T=T, answers=[extract(prefix_text + c) for c in conts], gold=question.gold,
                    correct=bool(self.task.is_correct(trace_answer, question)), trace_answer=trace_answer,
                    finish=tr.reason, continuation_tokens=lengths, trace_text=trace_text,
                    prefix_chars=len(original), prefix_text=prefix_text, continuations=conts,
                    holds_answer=bool(self.task.holds_answer(original)),
                    deterministic=(i, t) not in results,
                ))
        return records
