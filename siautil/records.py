"""Building a question's records (:mod:`siautil.schema`) from what was sampled: its traces and,
at each checkpoint, the continuations. Any backend that samples traces and continuations
(:mod:`siautil.rollout`'s engine) builds its records here, so they are the same records whatever
sampled them.

A trace is anything with ``tokens`` (its generated token ids, EOS not included) and ``finish``
(:class:`siautil.decode.Finish`); a checkpoint is a :class:`Checkpoint`, whose continuations
are anything with ``tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from .tasks import Question, Task


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
    logits: object = None
    continuations: list = field(default_factory=list)
    seen: int | None = None

    def __post_init__(self):
        if self.seen is None:
            self.seen = self.t

    @property
    def deterministic(self) -> bool:
        return self.budget <= 0


def continuation_text(decode: Callable[[list[int]], str], trace_tokens: list[int], cp: Checkpoint,
                      tokens: list[int], shuffled: bool) -> str:
    """The text a continuation adds to the prefix it saw, such that ``cp.seen_text + it`` is the
    decoded whole (what its answer is read from, now and on re-extraction)."""
    if shuffled:
        # the shuffled prefix's tokens are not kept, so its continuations are decoded alone
        return decode(tokens)
    whole = decode(trace_tokens[:cp.t] + list(tokens))
    if whole.startswith(cp.seen_text):
        return whole[len(cp.seen_text):]
    return decode(tokens)


def build(task: Task, question: Question, index: int, model: str, traces: Sequence, checkpoints: Sequence[Checkpoint],
          decode: Callable[[list[int]], str], extraction: str, n_continuations: int, shuffled: bool) -> list[dict]:
    """One record per checkpoint, in the schema's columns: the ``M`` answers (read under
    ``extraction``), the continuations' text (so the answers can be read again under another
    extraction mode), the trace's text, answer and outcome."""

    def extract(text):
        return task.extract_answer(text, question, mode=extraction)

    texts = [decode(list(tr.tokens)) for tr in traces]
    answers = [extract(text) for text in texts]
    records = []
    for cp in checkpoints:
        tr = traces[cp.trace]
        if cp.deterministic:  # no budget left: the prefix is the whole generation
            seen, conts, lengths = cp.prefix_text, [""] * n_continuations, [0] * n_continuations
        else:
            seen = cp.seen_text
            conts = [continuation_text(decode, list(tr.tokens), cp, list(r.tokens), shuffled) for r in cp.continuations]
            lengths = [len(r.tokens) for r in cp.continuations]
        records.append(dict(
            model=model, dataset=task.name, question_id=question.id, question_index=index, trace=cp.trace, t=cp.t,
            T=len(tr.tokens), answers=[extract(seen + c) for c in conts], gold=question.gold,
            correct=bool(task.is_correct(answers[cp.trace], question)), trace_answer=answers[cp.trace],
            finish=getattr(tr.finish, "value", tr.finish), continuation_tokens=lengths, trace_text=texts[cp.trace],
            prefix_chars=len(cp.prefix_text), prefix_text=seen, continuations=conts, deterministic=cp.deterministic,
        ))
    return records
