"""What a task is: its questions, prompt, gold answers and answer extraction in one place."""

from __future__ import annotations

import abc
import itertools
import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from . import extract
from .datafiles import DATA_ENV, DataError, data_dir as default_data_dir, verified


@dataclass(frozen=True)
class Question:
    """One benchmark item: stable ``id``, ``text``, canonical ``gold`` answer, and for
    multiple choice its ``options`` as ``((label, text), ...)``."""

    id: str
    text: str
    gold: str
    options: tuple[tuple[str, str], ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


#: The states of :meth:`Task.answer_state`: no answer in the prefix yet, an answer still being
#: written, a complete one.
NO_ANSWER, ANSWER_GROWING, ANSWER_WRITTEN = "none", "growing", "written"
ANSWER_STATES = (NO_ANSWER, ANSWER_GROWING, ANSWER_WRITTEN)

#: how a prompt is written: through the model's chat template, as plain text, or decided by :func:`use_chat`
PROMPT_STYLES = ("auto", "chat", "plain")


def use_chat(style: str, tokenizer=None, declared: bool | None = None) -> bool:
    """Whether prompts go through the chat template: the one place this is decided.

    ``style`` ``"chat"`` or ``"plain"`` as asked; ``"auto"`` follows ``declared`` (the
    model's registry entry, when it has one), else whether the tokenizer has a chat template.
    """
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt style must be one of {', '.join(PROMPT_STYLES)}, got {style!r}")
    has_template = tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))
    chat = style == "chat" or (style == "auto" and (has_template if declared is None else declared))
    if chat and not has_template:
        raise ValueError("a chat prompt needs a tokenizer with a chat template; use prompt_style='plain'")
    return chat


class Task(abc.ABC):
    """A benchmark: subclasses set the class attributes and implement the abstract hooks.

    ``load`` returns questions (split checking, sampling and limits for every task; the
    questions themselves come from the hook ``_questions``: files or the hub for
    :class:`FileTask`, a generator for the synthetic tasks); ``prompt`` renders one for a chat
    or a base model; ``extract_answer`` reads the final answer from generated text (``None`` is
    the null answer); ``answer_complete`` says when a continuation can stop because its final
    answer is written.
    """

    name: str = ""
    #: default split and the splits this task knows
    default_split: str = "test"
    splits: tuple[str, ...] = ("test",)
    #: the chain-of-thought instruction; ``{question}`` (and ``{options}``) are filled in
    instruction: str = ""
    #: how a worked example ends in few-shot prompts
    answer_format: str = "The answer is {answer}."
    #: whether the questions are read from benchmark files (or the hub); False for generated tasks
    needs_files: bool = False
    #: questions in the default split (what a run without a limit samples); None: not known
    size: int | None = None

    def __init__(self, instruction: str | None = None, data_dir: str | os.PathLike | None = None):
        if instruction is not None:
            self.instruction = instruction
        self.data_dir = data_dir

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    # ------------------------------------------------------------------ data

    def load(self, split: str | None = None, limit: int | None = None, sample: int | None = None,
             seed: int = 0, data_dir: str | os.PathLike | None = None,
             source: str = "auto") -> list[Question]:
        """Questions of ``split`` in file (or generation) order.

        ``sample`` draws that many questions at random (seeded) before ``limit`` keeps the first
        ``limit``. For a :class:`FileTask`, ``source`` is ``"files"`` (the official files in
        ``data_dir``, else ``$SIAUTIL_DATA_DIR``, else the checkout's ``data/``), ``"hub"``
        (Hugging Face datasets), or ``"auto"`` (files when there is a directory, else the hub);
        a generated task needs neither.
        """
        split = split or self.default_split
        if split not in self.splits:
            raise ValueError(f"{self.name} has no split {split!r}; its splits are: {', '.join(self.splits)}")
        questions = self._questions(split, data_dir or self.data_dir, source)
        if sample is None:  # a generated task makes only the first ``limit``
            return list(itertools.islice(questions, limit))
        questions = list(questions)
        picked = random.Random(seed).sample(questions, min(sample, len(questions)))
        return picked[:limit] if limit is not None else picked

    @abc.abstractmethod
    def _questions(self, split: str, data_dir: str | os.PathLike | None, source: str) -> Iterable[Question]:
        """Every question of ``split`` (a known one), in order: read from files or the hub, or
        generated. ``data_dir`` and ``source`` are :meth:`load`'s, for tasks that read files."""

    def few_shot_examples(self, k: int, seed: int = 0, data_dir=None) -> list[tuple[Question, str]]:
        """``k`` worked examples ``(question, solution text)`` for base-model prompts."""
        raise NotImplementedError(f"{self.name} has no worked examples for few-shot prompts")

    # ------------------------------------------------------------------ prompts

    def format_question(self, question: Question) -> str:
        """The question as the model reads it (options listed for multiple choice)."""
        if not question.options:
            return question.text
        opts = "\n".join(f"({lab}) {txt}" for lab, txt in question.options)
        return f"{question.text}\n{opts}"

    def user_message(self, question: Question) -> str:
        return self.instruction.format(question=self.format_question(question))

    def prompt(self, question: Question, tokenizer=None, chat: bool | None = None, few_shot: int = 0,
               seed: int = 0, *, style: str | None = None) -> str:
        """The text a model is conditioned on.

        ``chat=True`` applies the tokenizer's chat template to the instruction (instruct
        models); ``chat=False`` writes ``Question: ... Answer:`` text for base models, with
        ``few_shot`` worked examples before it. The engine decides ``chat`` once per model
        (:func:`use_chat`); called directly without it (or with the old ``style=``), the
        same rule decides from the tokenizer.
        """
        if chat is None:
            chat = use_chat(style or "auto", tokenizer)
        elif style is not None:
            raise ValueError("give chat= or style=, not both")
        if chat:
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": self.user_message(question)}],
                tokenize=False, add_generation_prompt=True,
            )
        shots = self.few_shot_examples(few_shot, seed) if few_shot else []
        parts = [f"Question: {self.format_question(q)}\nAnswer: {sol}\n\n" for q, sol in shots]
        parts.append(f"Question: {self.format_question(question)}\nAnswer: Let's think step by step.")
        return "".join(parts)

    # ------------------------------------------------------------------ answers

    @abc.abstractmethod
    def extract_answer(self, text: str, question: Question | None = None,
                       mode: str = "flexible-extract") -> str | None:
        """The final answer written in ``text`` (``None``: the null answer), read under an
        extraction ``mode`` of :data:`siautil.tasks.extract.EXTRACTION_MODES`."""

    @abc.abstractmethod
    def canonical_gold(self, raw: Any) -> str:
        """A gold answer as the data writes it, in the canonical form answers are compared in."""

    def is_correct(self, answer: str | None, question: Question) -> bool:
        """Whether an extracted answer equals the question's gold answer (``None`` never does)."""
        return answer is not None and answer == question.gold

    def answer_complete(self, text: str) -> bool:
        """Whether generation can stop: the final answer is fully written in ``text``."""
        return False

    def shuffle_steps(self, text: str, rng: random.Random) -> str:
        """``text`` (a prefix of a trace) with its written steps shuffled and their format kept,
        for the ablation ``shuffle="steps"``: its complete lines, or where it has fewer than two,
        its complete sentences, in a random order; the unfinished last one stays last, so the
        continuation goes on from where the prefix stopped. Text with fewer than two complete
        steps is returned as it is."""
        for unit in (r"[^\n]*\n", r"[^.!?\n]*[.!?]+(?:\s+|$)"):
            steps = re.findall(unit, text)
            if len(steps) >= 2:
                break
        else:
            return text
        done = "".join(steps)
        if not text.startswith(done):  # the pattern matched pieces, not a tiling of the text
            return text
        rng.shuffle(steps)
        return "".join(steps) + text[len(done):]

    def chance(self, question: Question) -> float | None:
        """The accuracy of a uniform guess among the question's possible answers, where they are
        finitely many (``None``: an open numeric answer has no such level)."""
        return None

    #: Text a next token might append to a written answer (a digit, a decimal part, a letter):
    #: if any of them changes what strict extraction reads, the answer is still being written.
    growth_probes: tuple[str, ...] = ("5", "a")

    def answer_state(self, prefix: str) -> str:
        """Where a prefix stands with respect to its final answer, by this task's own reading
        (strict extraction of the prefix, :data:`~siautil.tasks.extract.EXTRACTION_MODES`):

        * :data:`NO_ANSWER`: strict extraction reads no answer in it;
        * :data:`ANSWER_GROWING`: it reads one, but the text could still extend it ("The answer
          is 4" may become "45", "The answer is 4." may become "4.5", "The answer is B" may become "Boron"): some
          :attr:`growth_probes` suffix changes what is read;
        * :data:`ANSWER_WRITTEN`: it reads one that no appended character changes.

        A checkpoint whose prefix holds an answer, written or growing, measures the written
        answer rather than the reasoning: its continuations mostly repeat it, so its entropy is
        near 0 and its gold surprisal is set by whether that answer is right."""
        answer = self.extract_answer(prefix, None, mode="strict-match")
        if answer is None:
            return NO_ANSWER
        if any(self.extract_answer(prefix + probe, None, mode="strict-match") != answer for probe in self.growth_probes):
            return ANSWER_GROWING
        return ANSWER_WRITTEN


# ---------------------------------------------------------------------- file helpers


def resolve_data_dir(directory: str | os.PathLike | None, task: Task) -> Path:
    """The benchmark directory, or a :class:`DataError` that says how to provide one."""
    if not directory:
        raise DataError(
            f"no benchmark files for {task.name}: this install has no data/ folder. Clone the "
            f"repository (its data/ holds them), or set ${DATA_ENV} / pass data_dir=... to a "
            "directory with the official files, or load from the hub with source='hub' when online"
        )
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise DataError(
            f"data directory {path} does not exist: pass data_dir=... or set ${DATA_ENV} to a "
            "directory with the official files, or use source='hub' when online"
        )
    return path


def require_file(path: Path, task: Task, directory: Path | None = None) -> Path:
    """``path`` if it exists and, when it is an official file, has its official checksum."""
    if not path.is_file():
        raise DataError(
            f"{task.name}: missing file {path}. Put the official file there (see data/README.md: "
            f"`git checkout -- data/` restores a clone's), point data_dir / ${DATA_ENV} elsewhere, "
            "or use source='hub' when online"
        )
    return verified(path, directory if directory is not None else path.parents[1])


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of a JSON Lines file; a malformed line raises naming file and line."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}, line {lineno}: expected a JSON object")
            yield lineno, rec


def field_of(rec: dict, key: str, path: Path, lineno: int | str) -> Any:
    try:
        return rec[key]
    except KeyError:
        raise DataError(f"{path}, line {lineno}: record has no field {key!r}") from None


def hub_rows(repo: str, config: str | None, split: str) -> Sequence[dict]:
    """Rows of a Hugging Face dataset, or a clear error when the hub cannot be reached."""
    try:
        import datasets
    except ImportError:
        raise DataError("loading from the hub needs the `datasets` package: pip install 'siautil[hub]' "
                        "(or pip install datasets), or point data_dir / $SIAUTIL_DATA_DIR at the official files") from None
    try:
        return datasets.load_dataset(repo, config, split=split)
    except Exception as e:  # noqa: BLE001 - any network/cache failure becomes one clear message
        raise DataError(
            f"could not load {repo}{'/' + config if config else ''} ({split}) from the Hugging Face hub: "
            f"{type(e).__name__}: {str(e)[:200]}. Offline? Point data_dir or ${DATA_ENV} at the official files."
        ) from None


class FileTask(Task):
    """A benchmark whose questions are read from its official files or the Hugging Face hub:
    subclasses implement both readers."""

    needs_files = True

    def _questions(self, split: str, data_dir: str | os.PathLike | None, source: str) -> list[Question]:
        directory = default_data_dir(data_dir)
        if source == "files" or (source == "auto" and directory):
            return list(self._from_files(resolve_data_dir(directory, self), split))
        if source in ("hub", "auto"):
            return list(self._from_hub(split))
        raise ValueError(f"source must be 'auto', 'files' or 'hub', got {source!r}")

    @abc.abstractmethod
    def _from_files(self, directory: Path, split: str) -> Iterator[Question]:
        """The questions of ``split`` from the official files in ``directory``."""

    @abc.abstractmethod
    def _from_hub(self, split: str) -> Iterator[Question]:
        """The questions of ``split`` from the Hugging Face hub."""


class NumericTask(Task):
    """A task whose answers are numbers (GSM8K, SVAMP, the toy task)."""

    instruction = (
        "Solve the following problem step by step. At the end, write your final answer as "
        "\"The answer is N.\" where N is a number.\n\n{question}"
    )

    def extract_answer(self, text: str, question: Question | None = None,
                       mode: str = "flexible-extract") -> str | None:
        return extract.extract_number(text, mode)

    def canonical_gold(self, raw: Any) -> str:
        return extract.canonical_number(raw)

    def answer_complete(self, text: str) -> bool:
        return extract.number_answer_complete(text)


class ChoiceTask(Task):
    """A multiple-choice task whose answers are option labels (ARC)."""

    instruction = (
        "Answer the following multiple-choice question. Think step by step, then finish with "
        "\"The answer is (X).\" where X is the label of the correct option.\n\n{question}"
    )
    answer_format = "The answer is ({answer})."

    def extract_answer(self, text: str, question: Question | None = None,
                       mode: str = "flexible-extract") -> str | None:
        return extract.extract_choice(text, question.options if question else None, mode)

    def canonical_gold(self, raw: Any) -> str:
        return str(raw).strip()

    def answer_complete(self, text: str) -> bool:
        return extract.choice_answer_complete(text)

    def chance(self, question: Question) -> float | None:
        return 1 / len(question.options) if question.options else None


class GoldErrors:
    """Collects gold answers that do not parse, to report them all at once."""

    def __init__(self, task: Task, source: str):
        self.task, self.source, self.bad = task, source, []

    def parse(self, raw: Any, where: str) -> str | None:
        try:
            return self.task.canonical_gold(raw)
        except ValueError:
            self.bad.append(f"{where}: {raw!r}")
            return None

    def raise_if_any(self) -> None:
        if self.bad:
            shown = "; ".join(self.bad[:10]) + (" ..." if len(self.bad) > 10 else "")
            raise DataError(f"{self.task.name}: {len(self.bad)} gold answers in {self.source} do not parse: {shown}")
