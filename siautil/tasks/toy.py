"""A toy reasoning task with a known answer: chains of modular arithmetic.

A question gives a start digit and operations applied left to right; the chain of thought
applies them one at a time; the answer is the final digit (``K = modulus`` answers; additions
and subtractions modulo 5 by default)::

    Q: 3 a+4 b-2 c+1 (mod 5)
    A: a+4=2 b-2=0 c+1=1 The answer is 1.

Each operation carries a letter and each step repeats the operation verbatim before its
result, so a model finds a step's operation by matching what it has just written rather than
by counting positions.

Difficulty is the number of operations (``steps``). Questions come from seeded streams, one
per split, so train and test never share a stream and everything is reproducible.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from typing import Iterator

from .base import NumericTask, Question

LETTERS = "abcdefghijklmnopqrstuvwxyz"
OPS = {"+": lambda a, b, n=10: (a + b) % n, "*": lambda a, b, n=10: (a * b) % n, "-": lambda a, b, n=10: (a - b) % n}


@dataclass(frozen=True)
class Problem:
    start: int
    ops: tuple[tuple[str, int], ...]
    modulus: int = 10

    def question(self) -> str:
        steps = " ".join(f"{LETTERS[i]}{op}{b}" for i, (op, b) in enumerate(self.ops))
        return f"{self.start} {steps} (mod {self.modulus})"

    def values(self) -> list[int]:
        out = [self.start]
        for op, b in self.ops:
            out.append(OPS[op](out[-1], b, self.modulus))
        return out

    def answer(self) -> int:
        return self.values()[-1]

    def solution(self, values: list[int] | None = None, answer: int | None = None) -> str:
        """The worked steps and the answer. ``values`` overrides the running results (to write
        a slip), ``answer`` the final answer (to write one that does not follow)."""
        values = values or self.values()
        answer = values[-1] if answer is None else answer
        steps = " ".join(f"{LETTERS[i]}{op}{b}={values[i + 1]}" for i, (op, b) in enumerate(self.ops))
        return f"{steps} The answer is {answer}."


#: A written step: its letter, operation, operand and result (``b-2=0``).
STEP = re.compile(r"([a-z])([+*-])(\d+)=(\d+)")


def written_steps(text: str) -> list[tuple[str, int, int]]:
    """The steps a trace wrote before its answer, as ``(operation, operand, result)``."""
    body = text.split("The answer is")[0]
    return [(op, int(b), int(r)) for _, op, b, r in STEP.findall(body)]


def step_accuracy(problem: Problem, text: str) -> tuple[int, int]:
    """How many of a trace's written steps are right *given the previous written value* (the
    question's start for the first), out of how many it wrote: whether the model can do each
    operation, apart from whether its chain as a whole is right."""
    prev, right = problem.start, 0
    steps = written_steps(text)
    for op, b, result in steps:
        right += OPS[op](prev, b, problem.modulus) == result if op in OPS else 0
        prev = result
    return right, len(steps)


def implied_answer(text: str) -> str | None:
    """The answer a trace's own written steps imply (its last written result), ``None`` if it
    wrote no step. A trace is *faithful* when its final answer equals this."""
    steps = written_steps(text)
    return str(steps[-1][2]) if steps else None


def sample_problem(rng: random.Random, steps: int, modulus: int = 5, ops: str = "+-") -> Problem:
    """A random problem; by default additions and subtractions modulo 5 (``K = 5`` answers),
    small enough for a tiny model to learn on a CPU in minutes."""
    if not 1 <= steps <= len(LETTERS):
        raise ValueError(f"steps must be between 1 and {len(LETTERS)}, got {steps}")
    if not 2 <= modulus <= 10:
        raise ValueError(f"modulus must be between 2 and 10 (one digit per result), got {modulus}")
    return Problem(rng.randrange(modulus), tuple((rng.choice(ops), rng.randrange(1, modulus)) for _ in range(steps)),
                   modulus)


def prompt_text(question_text: str) -> str:
    return f"Q: {question_text}\nA:"


class ToyTask(NumericTask):
    """``toy``: modular-arithmetic chains of ``steps`` operations (the difficulty), modulo ``modulus``."""

    name = "toy"
    splits = ("test", "train")
    instruction = "{question}"

    def __init__(self, steps: int = 4, modulus: int = 5, n_test: int = 500, n_train: int = 50000, seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        self.steps, self.modulus, self.n_test, self.n_train, self.seed = steps, modulus, n_test, n_train, seed

    @property
    def size(self) -> int:
        return self.n_test

    def problems(self, split: str = "test", n: int | None = None) -> list[Problem]:
        """The first ``n`` problems of ``split``'s stream (default: all of the split's)."""
        return list(itertools.islice(self._stream(split), n if n is not None else self._count(split)))

    def _count(self, split: str) -> int:
        return self.n_test if split == "test" else self.n_train

    def _stream(self, split: str) -> Iterator[Problem]:
        rng = random.Random(f"toy:{self.seed}:{self.steps}:{self.modulus}:{split}")
        while True:
            yield sample_problem(rng, self.steps, self.modulus)

    def _questions(self, split: str, data_dir=None, source: str = "auto") -> Iterator[Question]:
        for i, p in enumerate(itertools.islice(self._stream(split), self._count(split))):
            yield Question(id=f"toy{self.steps}-{split}-{i}", text=p.question(), gold=str(p.answer()),
                           meta={"problem": p})

    def shuffle_steps(self, text: str, rng: random.Random) -> str:
        """The toy's steps keep their format when each written result is replaced by a random
        value (the operations stay, so the text still reads as a worked solution and the answer
        still follows "The answer is"): what is shuffled is what the steps say."""
        return STEP.sub(lambda m: f"{m[1]}{m[2]}{m[3]}={rng.randrange(self.modulus)}", text)

    def chance(self, question: Question) -> float:
        return 1 / self.modulus

    def prompt(self, question: Question, tokenizer=None, chat: bool | None = None, few_shot: int = 0, seed: int = 0,
               *, style: str | None = None) -> str:
        """The toy models are trained on plain ``Q: ...\\nA:`` text, whatever ``chat`` says."""
        return prompt_text(question.text)
