"""ARC, the AI2 Reasoning Challenge (Clark et al., 2018): grade-school science multiple choice."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator

from .base import ChoiceTask, DataError, FileTask, Question, field_of, hub_rows, read_jsonl, require_file

#: questions in each subset's test split
SIZES = {"Challenge": 1172, "Easy": 2376}


class ARC(FileTask, ChoiceTask):
    """``subset`` is ``"Challenge"`` or ``"Easy"``. Labels are kept as the data has them
    (``A``–``E``, or ``1``–``5`` for some questions)."""

    splits = ("test", "dev")

    def __init__(self, subset: str = "Challenge", **kwargs):
        super().__init__(**kwargs)
        if subset not in SIZES:
            raise ValueError(f"ARC subset must be 'Challenge' or 'Easy', got {subset!r}")
        self.subset = subset
        self.name = f"arc-{subset.lower()}"
        self.size = SIZES[subset]

    def _question(self, qid: str, stem: str, labels, texts, key, where: str) -> Question:
        options = tuple((str(lab).strip(), str(txt).strip()) for lab, txt in zip(labels, texts))
        gold = str(key).strip()
        if gold not in {lab for lab, _ in options}:
            raise DataError(f"{where}: answerKey {gold!r} is not one of the labels {[l for l, _ in options]}")
        return Question(id=qid, text=stem.strip(), gold=gold, options=options)

    def _from_files(self, directory: Path, split: str) -> Iterator[Question]:
        name = f"ARC-{self.subset}-{split.capitalize()}.jsonl"
        path = require_file(directory / "arc" / name, self)
        out = []
        for n, r in read_jsonl(path):
            q = field_of(r, "question", path, n)
            choices = field_of(q, "choices", path, n)
            out.append(self._question(
                field_of(r, "id", path, n), field_of(q, "stem", path, n),
                [c["label"] for c in choices], [c["text"] for c in choices],
                field_of(r, "answerKey", path, n), f"{path}, line {n}"))
        return iter(out)

    def _from_hub(self, split: str) -> Iterator[Question]:
        hub_split = {"test": "test", "dev": "validation"}[split]
        rows = hub_rows("allenai/ai2_arc", f"ARC-{self.subset}", hub_split)
        return iter(self._question(r["id"], r["question"], r["choices"]["label"], r["choices"]["text"],
                                   r["answerKey"], f"allenai/ai2_arc {hub_split} row {i}")
                    for i, r in enumerate(rows))

    def few_shot_examples(self, k: int, seed: int = 0, data_dir=None):
        dev = self.load("dev", data_dir=data_dir)
        picked = random.Random(seed).sample(dev, k)
        return [(q, self.answer_format.format(answer=q.gold)) for q in picked]
