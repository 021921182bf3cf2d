"""Deterministic answer extraction and canonical answer forms.

Conditional answer entropy is computed over extracted answers, so two spellings of one
value must land in one class: every numeric answer is reduced to one canonical string per
value (:func:`canonical_number`), and ``None`` is the paper's null answer ``∅`` for output
with no parsable answer (book/formulas.md, "Objects").
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Sequence

#: Decimal places kept for values with no finite decimal expansion (1/3 -> "0.333333").
DECIMALS = 6

#: How an answer is read from generated text, named as lm-evaluation-harness names its filters.
#: ``strict-match``: only an explicit final-answer marker ("The answer is", ``####``,
#: ``\\boxed{}``) counts; output without one is the null answer ``∅`` (our reading of the
#: paper's Appendix A.1.1: "unparsable output" maps to ``∅``). ``flexible-extract``: the marker
#: first, else fallbacks (the last number in the text; a bare or bold option label).
EXTRACTION_MODES = ("strict-match", "flexible-extract")


def check_mode(mode: str) -> str:
    """``mode`` if it is an extraction mode, else a ``ValueError`` listing the valid ones."""
    if mode not in EXTRACTION_MODES:
        raise ValueError(f"unknown extraction mode {mode!r}; valid modes: {', '.join(EXTRACTION_MODES)}")
    return mode

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
# a sign only when it is not a binary minus ("5-3" is two numbers); U+2212 is the math minus
_SIGNED = rf"(?<![\w.)\]])[-\u2212]?(?:{_NUM})"
NUMBER = re.compile(rf"(?P<num>{_SIGNED})(?:\s*/\s*(?P<den>{_NUM}))?")

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
WORD_NUMBER = re.compile(
    r"\b(?:(?P<tens>" + "|".join(_TENS) + r")(?:[-\s](?P<unit2>" + "|".join(list(_UNITS)[1:10]) + r"))?"
    r"|(?P<hundred>a hundred|one hundred)|(?P<unit>" + "|".join(_UNITS) + r"))\b",
    re.IGNORECASE,
)

# "The answer is", "final answer:", "Answer =", "#### " ... each ends where the answer starts.
MARKER = re.compile(
    r"####\s*"
    r"|(?:the\s+)?(?:final\s+)?answer\s*(?:is|was|would be|will be|should be)?\s*(?::|=|-(?=\s))?\s*(?:\*\*)?\s*"
    r"(?:(?:therefore|thus|then)\s*,?\s*)?",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}")
_LATEX_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mathbf|textrm)\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\[,;:!]|\\\$|\\%|\$")


def canonical_number(value: str | int | float | Fraction | Decimal) -> str:
    """The one string that stands for a numeric value: ``"12.50"``, ``"12.5"``, ``"12.500"``
    all give ``"12.5"``; ``"1,000"`` gives ``"1000"``; ``"-0"`` gives ``"0"``; ``"3/4"`` gives
    ``"0.75"``; a value with no finite decimal expansion is rounded to :data:`DECIMALS` places.

    Raises ``ValueError`` if ``value`` is not a number.
    """
    frac = to_fraction(value)
    if frac.denominator == 1:
        return str(frac.numerator)
    d = Decimal(frac.numerator) / Decimal(frac.denominator)
    den = frac.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if den != 1:  # non-terminating: fixed precision
        d = d.quantize(Decimal(1).scaleb(-DECIMALS))
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def to_fraction(value: str | int | float | Fraction | Decimal) -> Fraction:
    """Parse a number (thousands separators, currency and percent signs, ``a/b``) exactly."""
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(Decimal(repr(value)))
    if isinstance(value, Decimal):
        return Fraction(value)
    text = str(value).strip().replace("\u2212", "-").replace(",", "").replace(" ", "")
    text = text.strip("$€£%").rstrip(".")
    if "/" in text:
        num, _, den = text.partition("/")
        f = to_fraction(num) / to_fraction(den) if to_fraction(den) != 0 else None
        if f is None:
            raise ValueError(f"not a number: {value!r} (division by zero)")
        return f
    try:
        return Fraction(Decimal(text))
    except (InvalidOperation, ValueError):
        raise ValueError(f"not a number: {value!r}") from None


def _clean_latex(text: str) -> str:
    text = _LATEX_FRAC.sub(r"\1/\2", text)
    text = text.replace("{,}", ",")
    text = _LATEX_TEXT.sub(r" \1 ", text)
    # "\text{ apples}" and friends carry no number; "\$" and "$" are currency or math delimiters
    return _LATEX_NOISE.sub(" ", text)


def _numbers(text: str) -> list[tuple[int, str]]:
    """(position, canonical value) of every number in ``text``, fractions as values."""
    out = []
    for m in NUMBER.finditer(text):
        num = m["num"]
        try:
            value = canonical_number(f"{num}/{m['den']}" if m["den"] else num)
        except ValueError:  # a/0
            continue
        out.append((m.start(), value))
    return out


def _word_number(text: str) -> str | None:
    m = WORD_NUMBER.search(text)
    if not m:
        return None
    if m["hundred"]:
        return "100"
    if m["tens"]:
        return str(_TENS[m["tens"].lower()] + (_UNITS[m["unit2"].lower()] if m["unit2"] else 0))
    return str(_UNITS[m["unit"].lower()])


def boxed_contents(text: str) -> list[tuple[int, str]]:
    """(position, content) of every ``\\boxed{...}``, with nested braces matched."""
    out = []
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append((m.start(), text[m.end():i - 1]))
    return out


def _from_window(window: str) -> str | None:
    """The number an answer marker announces: after the last ``=`` of its clause, else the first."""
    window = _clean_latex(window)
    clause = re.split(r"\n|(?<=[^\d\s])\.\s|\.\s+(?=[A-Z])", window, maxsplit=1)[0]
    if "=" in clause:
        tail = clause.rsplit("=", 1)[1]
        nums = _numbers(tail)
        if nums:
            return nums[0][1]
    nums = _numbers(clause)
    if nums:
        return nums[0][1]
    return _word_number(clause[:40])


def marked_numbers(text: str) -> list[str]:
    """Every numeric answer ``text`` announces with a marker or ``\\boxed{}``, in order of
    position: a trace that writes "The answer is 12. Wait, ... The answer is 13." gives
    ``["12", "13"]``, which is where the stop rule ``answer`` and ``eos`` part ways."""
    if not text:
        return []
    found = []
    for pos, content in boxed_contents(text):
        nums = _numbers(_clean_latex(content))
        value = nums[-1][1] if nums else _word_number(content)
        if value is not None:
            found.append((pos, value))
    for m in MARKER.finditer(text):
        value = _from_window(text[m.end():m.end() + 120])
        if value is not None:
            found.append((m.start(), value))
    return [v for _, v in sorted(found)]


def extract_number(text: str, mode: str = "flexible-extract") -> str | None:
    """The final numeric answer in a model's output, canonical, or ``None``.

    The last explicit answer marker wins (``#### x``, "the answer is x", "final answer: x",
    the last ``\\boxed{...}``). Under ``mode="strict-match"`` that is all: text without a
    marker is the null answer. Under ``"flexible-extract"`` the fallbacks follow: the last
    number in the text, else a number written as a simple word when the text has no digits.
    """
    check_mode(mode)
    if not text:
        return None
    marked = marked_numbers(text)
    if marked:
        return marked[-1]
    if mode == "strict-match":
        return None
    nums = _numbers(_clean_latex(text))
    if nums:
        return nums[-1][1]
    words = list(WORD_NUMBER.finditer(text))
    return _word_number(words[-1].group(0)) if words else None


# ---------------------------------------------------------------------------- multiple choice

_CHOICE_MARKERS = [
    # "The answer is (B)", "answer: C", "Final Answer: **B**", "correct option is B"
    r"(?:answer|option|choice)\s*(?:is|would be|should be|:|=|-)?\s*:?\s*(?:option|choice)?\s*",
    r"\\boxed\{\s*",
    r"^\s*",  # the whole output is just a label
]


def extract_choice(text: str, options: Sequence[tuple[str, str]] | None = None,
                   mode: str = "flexible-extract") -> str | None:
    """The option label a model chose, or ``None``.

    ``options`` is ``[(label, text), ...]``; labels may be letters ``A``–``E`` or digits
    ``1``–``5``. The last label after an answer marker wins ("The answer is (B)", "Answer: C",
    ``\\boxed{B}``). Under ``mode="strict-match"`` that is all: an output that only opens with
    an option ("(D) pitch") names no answer explicitly, and the protocol reads it as the null
    answer. Under ``"flexible-extract"`` a label standing alone in bold (``**B**``) or on its own
    line counts too, and so does an output that opens with a label as the question lists
    options ("(D) pitch", "D) Potential Energy", "B. carbon"), then an answer given as one
    option's exact text.
    """
    check_mode(mode)
    if not text:
        return None
    labels = [lab for lab, _ in options] if options else list("ABCDE") + list("12345")
    lab_re = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
    label = rf"[\(\[\*]*\s*(?P<label>{lab_re})\s*[\)\]\*]*(?![\w'])"
    found: list[tuple[int, str]] = []
    markers = _CHOICE_MARKERS[:2] if mode == "strict-match" else _CHOICE_MARKERS
    for marker in markers:
        flags = re.IGNORECASE | (re.MULTILINE if marker == r"^\s*" else 0)
        pat = re.compile(marker + label, flags)
        for m in pat.finditer(text):
            lab = m["label"]
            rest = text[m.end():m.end() + 2]
            if lab not in labels:
                # "answer: c" names option C, but "the answer is a plant" is an article
                if lab.upper() not in labels or re.match(r"\s+\w", rest):
                    continue
                lab = lab.upper()
            if marker == r"^\s*" and rest.strip() and not rest.startswith(("\n", ".", ")")):
                continue
            found.append((m.start("label"), lab))
    if mode == "flexible-extract":
        for m in re.finditer(rf"\*\*\s*\(?(?P<label>{lab_re})\)?[.:]?\s*\*\*", text):
            found.append((m.start("label"), m["label"]))
        # an output that opens with an option as the question listed it: "(D) pitch", "D) energy"
        lead = re.match(rf"\s*(?:\((?P<a>{lab_re})\)|(?P<b>{lab_re})[).:])(?=\s|$)", text)
        if lead:
            found.append((lead.start(), lead["a"] or lead["b"]))
    if found:
        return max(found)[1]
    if options and mode == "flexible-extract":
        norm = _normalise_text(text)
        tail = _normalise_text(re.split(r"answer\s*(?:is|:)", text, flags=re.IGNORECASE)[-1])
        exact = [lab for lab, opt in options if _normalise_text(opt) in (norm, tail)]
        if len(exact) == 1:
            return exact[0]
    return None


def _normalise_text(s: str) -> str:
    return re.sub(r"[^\w\s]", "", s).strip().lower()


def number_answer_complete(text: str) -> bool:
    """True once ``text`` holds a finished marked answer: a closed ``\\boxed{...}``, or a marker
    and a number followed by a line break or sentence end (so ``"is 7"`` may still grow to ``"72"``)."""
    if boxed_contents(text):
        return True
    return re.search(
        r"(?:####|answer\s*(?:is|:))\s*[^\n]{0,30}?\d(?:\.\d+)?\s*[^\d\s,./]*\s*(?:\.\s|\n)",
        text, re.IGNORECASE,
    ) is not None


def choice_answer_complete(text: str) -> bool:
    """True once ``text`` names an option after an answer marker, followed by more text."""
    return re.search(r"(?:answer|option)\s*(?:is|:)\s*[\(\*]*\s*[A-E1-5]\b\W", text, re.IGNORECASE) is not None
