"""GSM8K (Cobbe et al., 2021): grade-school maths word problems, integer answers."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Iterator

from .base import FileTask, GoldErrors, NumericTask, Question, field_of, hub_rows, read_jsonl, require_file

_CALC = re.compile(r"<<[^>]*>>")


def split_solution(answer: str) -> tuple[str, str]:
    """``(worked solution without calculator annotations, raw gold)`` of a GSM8K answer field."""
    body, sep, gold = answer.rpartition("####")
    if not sep:
        raise ValueError("no '####' gold marker")
    return _CALC.sub("", body).strip(), gold.strip()


class GSM8K(FileTask, NumericTask):
    name = "gsm8k"
    size = 1319
    splits = ("test", "train")

    def _records(self, rows, source: str, ids_from: str) -> Iterator[Question]:
        errors = GoldErrors(self, source)
        out = []
        for where, rec in rows:
            try:
                solution, raw = split_solution(rec["answer"])
            except ValueError:
                errors.bad.append(f"{where}: no '#### answer' line")
                continue
            gold = errors.parse(raw, where)
            if gold is not None:
                out.append(Question(id=f"{ids_from}-{len(out)}", text=rec["question"], gold=gold,
                                    meta={"solution": solution}))
        errors.raise_if_any()
        return iter(out)

    def _from_files(self, directory: Path, split: str) -> Iterator[Question]:
        path = require_file(directory / "gsm8k" / f"{split}.jsonl", self)
        rows = ((f"{path}, line {n}", {"question": field_of(r, "question", path, n),
                                       "answer": field_of(r, "answer", path, n)})
                for n, r in read_jsonl(path))
        return self._records(rows, str(path), f"gsm8k-{split}")

    def _from_hub(self, split: str) -> Iterator[Question]:
        rows = hub_rows("openai/gsm8k", "main", split)
        return self._records(((f"openai/gsm8k {split} row {i}", r) for i, r in enumerate(rows)),
                             f"openai/gsm8k {split}", f"gsm8k-{split}")

    def few_shot_examples(self, k: int, seed: int = 0, data_dir=None):
        train = self.load("train", data_dir=data_dir)
        picked = random.Random(seed).sample(train, k)
        return [(q, f"{q.meta['solution']} {self.answer_format.format(answer=q.gold)}") for q in picked]
