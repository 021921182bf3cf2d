"""A reference run stored before the #13 restructuring: records of tiny models under fixed seeds.

``python tests/reference.py`` rewrites ``tests/data/reference_records.json`` (do it only when a
change is meant to alter the records, and say so in the commit); ``test_reference.py`` checks
that the engine, the oracle and the store still produce exactly these records.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

PATH = Path(__file__).resolve().parent / "data" / "reference_records.json"
QUESTIONS = [("q1", "Tom has 3 apples and buys 4 more. How many apples?", "7"),
             ("q2", "Anna has 9 books and gives away 2. How many books?", "7")]
SETTINGS = {
    "eos": dict(n_traces=2, n_continuations=3, stride=7, max_new_tokens=24, temperature=1.0, top_p=1.0, seed=3),
    "answer-topk": dict(n_traces=2, n_continuations=3, stride=5, max_new_tokens=20, temperature=0.9, top_p=0.9,
                        top_k=20, stop="answer", seed=4),
    "shuffled": dict(n_traces=2, n_continuations=2, stride=6, max_new_tokens=18, temperature=1.2, top_p=1.0,
                     shuffle="tokens", seed=5, max_batch_rows=3, extraction="flexible-extract"),
}
#: a trained model on its own task: real answers, answer-holding prefixes, both stop rules
TOY = {
    "toy-sft-eos": dict(n_traces=2, n_continuations=4, stride=4, max_new_tokens=52, temperature=2.0, top_p=1.0, seed=1),
    "toy-sft-answer": dict(n_traces=2, n_continuations=4, stride=6, max_new_tokens=52, temperature=1.0, top_p=0.9,
                           stop="answer", seed=2),
}
KEYS = ("question_id", "question_index", "trace", "t", "T", "answers", "gold", "correct", "trace_answer", "finish",
        "continuation_tokens", "trace_text", "prefix_chars", "prefix_text", "continuations", "deterministic")


def _tiny():
    from siautil.testing import tiny_model

    return tiny_model("llama", seed=0, eos_bias=1.0)


def records() -> dict:
    from siautil import models, oracle, rollout, tasks

    torch.set_num_threads(1)
    loaded = _tiny()
    task = tasks.get("gsm8k")
    out = {}
    for name, kw in SETTINGS.items():
        engine = rollout.Engine(loaded, task, rollout.RolloutConfig(prompt_style="plain", **kw))
        rows = []
        for i, (qid, text, gold) in enumerate(QUESTIONS):
            rows += [{k: r[k] for k in KEYS} for r in engine.run_question(tasks.Question(qid, text, gold), i)]
        out[name] = rows
    loaded = models.load("toy-sft", "fp32")  # the reference is fp32 on every machine
    task = tasks.get("toy")
    for name, kw in TOY.items():
        engine = rollout.Engine(loaded, task, rollout.RolloutConfig(**kw))
        out[name] = [{k: r[k] for k in KEYS} for i, q in enumerate(task.load(limit=2)) for r in engine.run_question(q, i)]
    run = oracle.sample_run(oracle.aligned(), n_questions=3, n_traces=2, n_continuations=4, seed=7)
    out["oracle"] = json.loads(json.dumps(run.to_dict(orient="records")))
    return out


if __name__ == "__main__":
    PATH.parent.mkdir(exist_ok=True)
    PATH.write_text(json.dumps(records(), indent=0, sort_keys=True) + "\n")
    print(f"wrote {PATH}")
