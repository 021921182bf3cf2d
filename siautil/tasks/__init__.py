"""Benchmarks as tasks: each holds its data loading, prompt, gold answers and answer extraction.

    >>> from siautil import tasks
    >>> task = tasks.get("gsm8k")
    >>> questions = task.load(limit=10, data_dir="path/to/data")   # or $SIAUTIL_DATA_DIR, or the hub
    >>> task.extract_answer("... so she pays $1,234.50. The answer is 1234.5")
    '1234.5'

A new benchmark is a subclass of :class:`NumericTask` or :class:`ChoiceTask` (with
:class:`FileTask` first when it reads files: it implements ``_from_files`` and ``_from_hub``;
a generated task implements ``_questions``) and one :func:`register` call. ``Task.load``
does the split check, ``sample`` and ``limit`` for every task.
"""

from __future__ import annotations

from typing import Callable

from .arc import ARC
from .base import DATA_ENV, ChoiceTask, DataError, FileTask, NumericTask, Question, Task
from .extract import canonical_number, extract_choice, extract_number
from .gsm8k import GSM8K
from .svamp import SVAMP
from .toy import ToyTask
from .easy import EasyArithmetic

_REGISTRY: dict[str, Callable[..., Task]] = {}


def register(name: str, factory: Callable[..., Task]) -> None:
    """Make ``get(name)`` return ``factory(**kwargs)``."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    """The registered task names."""
    return sorted(_REGISTRY)


def get(name: str, **kwargs) -> Task:
    """The task called ``name`` (``"gsm8k"``, ``"svamp"``, ``"arc-challenge"``, ``"arc-easy"``, ...)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(names())}") from None
    return factory(**kwargs)


register("gsm8k", GSM8K)
register("svamp", SVAMP)
register("arc-challenge", lambda **kw: ARC("Challenge", **kw))
register("arc-easy", lambda **kw: ARC("Easy", **kw))
register("toy", ToyTask)
register("easy", EasyArithmetic)

__all__ = [
    "ARC", "DATA_ENV", "EasyArithmetic", "ChoiceTask", "DataError", "FileTask", "GSM8K", "NumericTask", "Question", "SVAMP", "Task", "ToyTask",
    "canonical_number", "extract_choice", "extract_number", "get", "names", "register",
]
