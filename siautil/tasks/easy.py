"""Simple one-step word problems, for small real models such as SmolLM2-135M-Instruct.

Each problem is one addition or subtraction of small numbers in an everyday sentence::

    Tom has 3 apples. He buys 4 more apples. How many apples does Tom have now?

Generated from a seed, with the gold answer computed, so no data files are needed. Each split
is its own seeded stream: ``test`` holds ``n_test`` questions (200; the book's runs read its
first ones), ``train`` ``n_train`` (1,000) others, for few-shot examples or training. Before
``n_train`` existed the train split had ``n_test`` questions: they are the first 200 of the
same stream, so a ``limit``-ed read of it is unchanged (a ``sample`` now draws from all 1,000).
"""

from __future__ import annotations

import random
from typing import Iterator

from .base import NumericTask, Question

NAMES = ["Tom", "Anna", "Sam", "Lily", "Ben", "Maria", "Leo", "Emma", "Noah", "Mia"]
THINGS = ["apples", "books", "pencils", "stickers", "marbles", "cookies", "cards", "flowers", "toys", "coins"]
GAIN = ["buys {b} more {x}", "finds {b} more {x}", "gets {b} more {x} from a friend"]
LOSS = ["gives away {b} {x}", "loses {b} {x}", "eats {b} of the {x}"]


class EasyArithmetic(NumericTask):
    """``easy``: one-step addition and subtraction word problems with numbers up to ``max_value``;
    ``n_test`` questions in the test split, ``n_train`` in the train split."""

    name = "easy"
    splits = ("test", "train")
    instruction = (
        "Solve the problem. Think step by step, then finish with \"The answer is N.\" where N is a number.\n\n"
        "{question}"
    )

    def __init__(self, n_test: int = 200, max_value: int = 20, seed: int = 0, n_train: int = 1000, **kwargs):
        super().__init__(**kwargs)
        self.n_test, self.n_train, self.max_value, self.seed = n_test, n_train, max_value, seed

    @property
    def size(self) -> int:
        return self.n_test

    def _questions(self, split: str, data_dir=None, source: str = "auto") -> Iterator[Question]:
        rng = random.Random(f"easy:{self.seed}:{split}")
        for i in range(self.n_test if split == "test" else self.n_train):
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
            yield Question(id=f"easy-{split}-{i}", text=text, gold=str(gold))
