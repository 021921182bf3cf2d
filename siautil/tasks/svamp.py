"""SVAMP (Patel et al., 2021): one-operation arithmetic word problems with structural variations."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterator

from .base import DataError, FileTask, GoldErrors, NumericTask, Question, field_of, hub_rows, read_jsonl, require_file


class SVAMP(FileTask, NumericTask):
    """``split="all"``: the 1,000 problems of ``SVAMP.json``; ``"test"``: the 300-question
    ChilleD/SVAMP test split; ``"train"``: the other 700 (used for few-shot examples)."""

    name = "svamp"
    size = 300
    default_split = "test"
    splits = ("test", "all", "train")

    def _all(self, directory: Path) -> list[Question]:
        path = require_file(directory / "svamp" / "SVAMP.json", self)
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(records, list):
            raise DataError(f"{path}: expected a JSON array of problems")
        errors, out = GoldErrors(self, str(path)), []
        for i, r in enumerate(records):
            where = f"{path}, record {i}"
            gold = errors.parse(field_of(r, "Answer", path, f"record {i}"), where)
            if gold is None:
                continue
            body, question = field_of(r, "Body", path, f"record {i}"), field_of(r, "Question", path, f"record {i}")
            out.append(Question(id=r.get("ID", f"svamp-{i}"), text=f"{body.strip()} {question.strip()}", gold=gold,
                                meta={"equation": r.get("Equation", ""), "type": r.get("Type", "")}))
        errors.raise_if_any()
        return out

    def _test_ids(self, directory: Path) -> list[str]:
        """The IDs of the 300-question test split, in its order: ``svamp/test_ids.txt`` (as the
        project ships them), else the ID field of a ``chilled_svamp_test.jsonl`` copy."""
        ids = directory / "svamp" / "test_ids.txt"
        if ids.is_file() or not (directory / "svamp" / "chilled_svamp_test.jsonl").is_file():
            path = require_file(ids, self)
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        path = require_file(directory / "svamp" / "chilled_svamp_test.jsonl", self)
        return [field_of(r, "id", path, n) for n, r in read_jsonl(path)]

    def _from_files(self, directory: Path, split: str) -> Iterator[Question]:
        everything = self._all(directory)
        if split == "all":
            return iter(everything)
        ids = self._test_ids(directory)
        by_id = {q.id: q for q in everything}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise DataError(f"{self.name}: test ids not in SVAMP.json: {missing[:5]}")
        if split == "test":
            return iter(by_id[i] for i in ids)
        test = set(ids)
        return iter(q for q in everything if q.id not in test)

    def _from_hub(self, split: str) -> Iterator[Question]:
        if split == "all":
            return iter([*self._from_hub("train"), *self._from_hub("test")])
        rows = hub_rows("ChilleD/SVAMP", None, split)
        errors, out = GoldErrors(self, f"ChilleD/SVAMP {split}"), []
        for i, r in enumerate(rows):
            gold = errors.parse(r["Answer"], f"ChilleD/SVAMP {split} row {i}")
            if gold is not None:
                out.append(Question(id=r["ID"], text=f"{r['Body'].strip()} {r['Question'].strip()}", gold=gold,
                                    meta={"equation": r.get("Equation", ""), "type": r.get("Type", "")}))
        errors.raise_if_any()
        return iter(out)

    def few_shot_examples(self, k: int, seed: int = 0, data_dir=None):
        train = self.load("train", data_dir=data_dir)
        picked = random.Random(seed).sample(train, k)
        return [(q, f"{q.meta['equation'].strip()} = {q.gold}. {self.answer_format.format(answer=q.gold)}")
                for q in picked]
