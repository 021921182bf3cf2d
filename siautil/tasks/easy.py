"""Simple one-step word problems, for small real models such as SmolLM2-135M-Instruct.

Each problem is one addition or subtraction of small numbers in an everyday sentence::

    Tom has 3 apples. He buys 4 more apples. How many apples does Tom have now?

Generated from a seed, with the gold answer computed, so no data files are needed.
"""

from __future__ import annotations

import random

from .base import NumericTask, Question

NAMES = ["Tom", "Anna", "Sam", "Lily", "Ben", "Maria", "Leo", "Emma", "Noah", "Mia"]
THINGS = ["apples", "books", "pencils", "stickers", "marbles", "cookies", "cards", "flowers", "toys", "coins"]
GAIN = ["buys {b} more {x}", "finds {b} more {x}", "gets {b} more {x} from a friend"]
LOSS = ["gives away {b} {x}", "loses {b} {x}", "eats {b} of the {x}"]


class EasyArithmetic(NumericTask):
    """``easy``: one-step addition and subtraction word problems with numbers up to ``max_value``."""

    name = "easy"
    splits = ("test", "train")
    instruction = (
        "Solve the problem. Think step by step, then finish with \"The answer is N.\" where N is a number.\n\n"
        "{question}"
    )

    def __init__(self, n_test: int = 200, max_value: int = 20, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.n_test, self.max_value, self.seed = n_test, max_value, seed

    def load(self, split: str | None = None, limit: int | None = None, sample: int | None = None,
             seed: int = 0, data_dir=None, source: str = "auto") -> list[Question]:
        split = split or self.default_split
        if split not in self.splits:
            raise ValueError(f"easy has no split {split!r}; its splits are: test, train")
        rng = random.Random(f"easy:{self.seed}:{split}")
        out = []
        for i in range(self.n_test):
            name, thing = rng.choice(NAMES), rng.choice(THINGS)
            a = rng.randint(2, self.max_value)
            if rng.random() < 0.5:
                b = rng.randint(1, self.max_value)
                verb, gold = rng.choice(GAIN), a + b
            else:
                b = rng.randint(1, a - 1)
                verb, gold = rng.choice(LOSS), a - b
            text = (f"{name} has {a} {thing}. {name.split()[0]} {verb.format(b=b, x=thing)}. "
                    f"How many {thing} does {name} have now?")
            out.append(Question(id=f"easy-{split}-{i}", text=text, gold=str(gold)))
        if sample is not None:
            out = random.Random(seed).sample(out, min(sample, len(out)))
        return out[:limit] if limit is not None else out
