"""Monte-Carlo estimators of conditional answer entropy and gold surprisal (Appendix A).

A *record* is one checkpoint of one trace: the ``M`` answers extracted from continuations
of the prefix ``(x, z_<=t)`` (``None`` is the null answer ``∅``, a class of its own) and the
gold answer ``y*``. A run's records are a DataFrame with at least the columns

    question_id, trace, t, T, answers (list of str | None), gold (str), correct (bool)

(:data:`siautil.schema.ANALYSED`; a run store's records, :mod:`siautil.schema`, have them). Everything here is vectorised over
records: answers are dictionary-encoded once with pyarrow and counted with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .infotheory import row_entropy, xlogx

from .errors import SiautilError
from .schema import ANALYSED


#: Default pseudo-count of the gold-surprisal smoothing: ``p̂ = (hits + α) / (M + 2α)``.
#: ``α = 1/2`` is the Jeffreys (Krichevsky–Trofimov) estimator of a binary probability
#: (gold answer or not), finite for every ``M`` and consistent as ``M`` grows.
DEFAULT_ALPHA = 0.5


class RecordsError(SiautilError, ValueError):
    """Records that cannot be estimated from (missing columns, no answers, ...)."""


def check_records(records: pd.DataFrame) -> pd.DataFrame:
    """Validate the record columns; an empty run or a missing column gets a clear error."""
    if not isinstance(records, pd.DataFrame):
        raise RecordsError(f"records must be a pandas DataFrame, got {type(records).__name__}")
    missing = [c for c in ANALYSED if c not in records.columns]
    if missing:
        raise RecordsError(f"records lack the columns {missing}; a run's records have {list(ANALYSED)}")
    if records.empty:
        raise RecordsError("the run has no records: nothing was sampled (or every question was filtered out)")
    return records


# ------------------------------------------------------------------------- counting


@dataclass(frozen=True)
class AnswerCounts:
    """Per-record answer counts, as runs: record ``row[j]`` saw answer ``code[j]`` ``count[j]`` times.

    ``m[i]`` is the number of answers of record ``i``, ``hits[i]`` how many equal its gold
    answer, ``mode[i]`` its most frequent answer (``None`` for the null answer; ties go to
    the answer that sorts first), ``classes[i]`` how many distinct answers it saw.
    """

    row: np.ndarray
    code: np.ndarray
    count: np.ndarray
    m: np.ndarray
    hits: np.ndarray
    mode: np.ndarray
    classes: np.ndarray
    vocabulary: np.ndarray


def _as_arrow_lists(answers) -> pa.Array:
    """Answers as an Arrow ``list<string>`` array: zero-copy for Arrow-backed columns (as read
    from the run store by :func:`siautil.store.load_records`), converted from Python lists otherwise."""
    if isinstance(answers, pd.Series) and isinstance(answers.dtype, pd.ArrowDtype):
        arr = answers.array.__arrow_array__()
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    elif isinstance(answers, (pa.Array, pa.ChunkedArray)):
        arr = answers.combine_chunks() if isinstance(answers, pa.ChunkedArray) else answers
    else:
        arr = pa.array(list(answers), type=pa.list_(pa.string()))
    if arr.type != pa.list_(pa.string()):
        arr = arr.cast(pa.list_(pa.string()))
    return arr


def arrow_records(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` with the answers column stored as Arrow lists (fast to count, compact)."""
    out = records.copy()
    out["answers"] = pd.Series(pd.arrays.ArrowExtensionArray(_as_arrow_lists(records["answers"])),
                               index=records.index)
    return out


def count_answers(answers: pd.Series | list, gold: pd.Series | list | None = None,
                  keep: int | None = None, start: int = 0) -> AnswerCounts:
    """Count each record's answers (vectorised). ``keep`` uses only ``keep`` answers of each
    record from position ``start`` on (continuations are i.i.d., so that is a valid subsample
    with fewer ``M``; disjoint slices are independent samples)."""
    lists = _as_arrow_lists(answers)
    if keep is not None or start:
        if keep is not None and keep < 1:
            raise RecordsError(f"keep must be at least 1 answer per record, got {keep}")
        lists = pc.list_slice(lists, start, None if keep is None else start + keep)
    n = len(lists)
    m = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(lists)
    enc = pc.dictionary_encode(flat, null_encoding="encode")
    vocab = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    rows = np.repeat(np.arange(n), m)
    v = max(len(vocab), 1)
    # one integer key per (record, answer); sorting it groups equal answers of a record
    key = np.sort(rows * v + codes)
    start = np.ones(len(key), dtype=bool)
    start[1:] = key[1:] != key[:-1]
    run_start = np.flatnonzero(start)
    run_count = np.diff(np.append(run_start, len(key)))
    run_row, run_code = key[run_start] // v, key[run_start] % v
    classes = np.bincount(run_row, minlength=n)
    # the mode: the largest run of each row (first among ties, i.e. smallest code)
    best = np.full(n, -1)
    if len(run_row):
        order = np.lexsort((-run_count, run_row))  # by row, then largest count first
        first = np.ones(len(order), dtype=bool)
        first[1:] = run_row[order][1:] != run_row[order][:-1]
        best[run_row[order][first]] = run_code[order][first]
    mode = np.where(best >= 0, vocab[np.maximum(best, 0)] if len(vocab) else None, None)
    hits = np.zeros(n, dtype=np.int64)
    if gold is not None:
        gold_arr = np.asarray(list(gold), dtype=object)
        lookup = {v: i for i, v in enumerate(vocab) if v is not None}
        gold_code = np.array([lookup.get(g, -2) if g is not None else -2 for g in gold_arr])
        matched = run_code == gold_code[run_row]
        hits = np.bincount(run_row[matched], weights=run_count[matched], minlength=n).astype(np.int64)
    return AnswerCounts(run_row, run_code, run_count, m, hits, mode, classes, vocab)


# ------------------------------------------------------------------------- entropy


def _as_counts(counts) -> np.ndarray:
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError("counts must be a 1-D array of answer counts (or 2-D, one row per record)")
    if np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise ValueError("counts must be finite and non-negative")
    return arr


def plugin_entropy(counts) -> float | np.ndarray:
    """The paper's plug-in estimate ``Ĥ = -Σ p̂(a) log p̂(a)``, ``p̂ = count / M`` (Appendix A).

    ``counts`` holds the number of continuations that gave each answer (1-D), or one row
    per record (2-D, zero-padded). Biased low by about ``(K-1)/(2M)`` for ``K`` answers with
    non-zero probability; consistent as ``M → ∞``. ``M = 0`` gives NaN.
    """
    arr = _as_counts(counts)
    m = arr.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = arr / m[..., None] if arr.ndim > 1 else arr / m
    h = np.where(m > 0, row_entropy(p), np.nan)
    return float(h) if np.ndim(h) == 0 else h


def _miller_madow_correction(classes, m) -> np.ndarray:
    """The Miller–Madow term ``(K̂ - 1) / (2M)`` (infinite or NaN where ``M = 0``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (classes - 1) / (2 * m)


def miller_madow_entropy(counts) -> float | np.ndarray:
    """Miller–Madow bias-corrected entropy: ``Ĥ_plugin + (K̂ - 1) / (2M)``, ``K̂`` the number of
    answers seen. Offered beside the paper's plug-in estimator."""
    arr = _as_counts(counts)
    return plugin_entropy(arr) + _miller_madow_correction((arr > 0).sum(axis=-1), arr.sum(axis=-1))


def entropy_from_counts(ac: AnswerCounts, estimator: str = "plugin") -> np.ndarray:
    """Per-record entropy from :func:`count_answers` runs (``"plugin"`` or ``"miller-madow"``).

    The same ``p log p`` terms as :func:`plugin_entropy` (:func:`siautil.infotheory.xlogx`),
    summed per record over its runs with ``bincount`` rather than over a dense
    records × vocabulary table, which could be large."""
    if estimator not in ("plugin", "miller-madow", "mm"):
        raise ValueError(f"estimator must be 'plugin' or 'miller-madow', got {estimator!r}")
    p = ac.count / ac.m[ac.row].astype(np.float64)
    h = -np.bincount(ac.row, weights=xlogx(p), minlength=len(ac.m))
    if estimator != "plugin":
        h = h + _miller_madow_correction(ac.classes, ac.m)
    return np.where(ac.m > 0, h, np.nan)


# ------------------------------------------------------------------------- gold surprisal


def gold_probability(hits, m, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Smoothed ``p̂(y* | x, z_<=t) = (hits + α) / (M + 2α)``; ``α = 0`` is the raw plug-in."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    hits = np.asarray(hits, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    if np.any(hits > m) or np.any(hits < 0):
        raise ValueError("hits must lie between 0 and M")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m + 2 * alpha > 0, (hits + alpha) / (m + 2 * alpha), np.nan)


def gold_surprisal(hits, m, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Gold surprisal ``ŝ_t = -log p̂(y* | x, z_<=t)`` (Definition 9, estimated).

    The plug-in (``alpha=0``) is infinite when no continuation reaches the gold answer; the
    paper does not say how it handled that. The default adds ``α = 1/2`` pseudo-counts to
    both "gold" and "not gold" (:data:`DEFAULT_ALPHA`); the book shows how much the
    alignment coefficient depends on ``α``.
    """
    with np.errstate(divide="ignore"):
        return -np.log(gold_probability(hits, m, alpha))


def reextract(records: pd.DataFrame, mode: str) -> pd.DataFrame:
    """``records`` with ``answers``, ``trace_answer`` and ``correct`` read again from the stored
    text under extraction ``mode`` (``"strict-match"`` or ``"flexible-extract"``), without
    sampling anything. Needs records written under protocol 2 or later (they keep ``prefix_text`` and
    ``continuations``). Records do not keep a multiple-choice question's options, so for ARC
    any label A–E or 1–5 is accepted here and an answer given as an option's exact text is not
    recognised: re-reading an ARC run can differ slightly from the answers it stored."""
    from .tasks import Question, get
    from .tasks.extract import check_mode

    check_mode(mode)
    missing = [c for c in ("prefix_text", "continuations", "trace_text", "dataset") if c not in records]
    if missing:
        raise RecordsError(f"re-extraction needs the columns {missing}: these records were written before "
                           "continuations were kept (protocol 1); sample the run again")
    out = records.copy()
    answers, trace_answers, correct = [], [], []
    tasks = {}
    for row in records[["dataset", "question_id", "gold", "prefix_text", "continuations", "trace_text"]].itertuples(index=False):
        task = tasks.setdefault(row.dataset, get(row.dataset))
        q = Question(id=row.question_id, text="", gold=row.gold)
        answers.append([task.extract_answer(row.prefix_text + c, q, mode=mode) for c in row.continuations])
        a = task.extract_answer(row.trace_text, q, mode=mode)
        trace_answers.append(a)
        correct.append(bool(task.is_correct(a, q)))
    out["answers"] = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(answers, type=pa.list_(pa.string()))),
                               index=records.index)
    out["trace_answer"], out["correct"] = trace_answers, correct
    return out


#: Which checkpoints a computation uses: every one (the paper's computation), or only those
#: before the trace has begun to write a final answer (:func:`before_answer`).
CHECKPOINTS = ("all", "before answer")


def answer_states(records: pd.DataFrame) -> np.ndarray:
    """The answer state of each record's prefix (:meth:`siautil.tasks.Task.answer_state`:
    ``"none"``, ``"growing"`` or ``"written"``), read by the record's own task from the trace's
    text (``trace_text[:prefix_chars]``: the original prefix, also for shuffled-prefix runs,
    whose ``prefix_text`` is what the continuations saw). Records that carry an
    ``answer_state`` column (the oracle's, which knows where its answer is written) keep it."""
    if "answer_state" in records:
        return records["answer_state"].to_numpy(dtype=object)
    missing = [c for c in ("dataset", "trace_text", "prefix_chars") if c not in records]
    if missing:
        raise RecordsError(f"where a prefix holds an answer is read from the columns {missing}, which these records "
                           "lack (a store written under protocol 1 keeps no text): give them an answer_state column "
                           "or sample the run again")
    from .tasks import get

    tasks, cache = {}, {}
    out = np.empty(len(records), dtype=object)
    for i, (dataset, text, chars) in enumerate(zip(records["dataset"], records["trace_text"], records["prefix_chars"])):
        key = (dataset, text, int(chars))
        if key not in cache:
            task = tasks.setdefault(dataset, get(dataset))
            cache[key] = task.answer_state(text[:int(chars)])
        out[i] = cache[key]
    return out


def before_answer(records: pd.DataFrame) -> np.ndarray:
    """Whether each record's checkpoint comes before its trace has begun to write a final
    answer: neither it nor any earlier checkpoint of the trace holds one, written or growing
    (:func:`answer_states`)."""
    from .tasks.base import NO_ANSWER

    holds = pd.Series(answer_states(records) != NO_ANSWER, index=records.index)
    keys = [k for k in ("model", "dataset", "shuffle", "run", "question_id", "trace") if k in records]
    order = records.sort_values(keys + ["t"]).index
    seen = holds.loc[order].groupby([records.loc[order, k] for k in keys], sort=False).cummax()
    return ~seen.reindex(records.index).to_numpy(dtype=bool)


def select(records: pd.DataFrame, extraction: str | None = None, checkpoints: str = "all") -> pd.DataFrame:
    """``records`` with answers read again under ``extraction`` (:func:`reextract`; ``None``
    keeps the run's own) and, with ``checkpoints="before answer"``, only the checkpoints before
    the trace begins to write a final answer (:func:`before_answer`)."""
    check_records(records)
    if checkpoints not in CHECKPOINTS:
        raise ValueError(f"checkpoints must be one of {CHECKPOINTS}, got {checkpoints!r}")
    if extraction is not None:
        records = reextract(records, extraction)
    if checkpoints == "before answer":
        kept = records[before_answer(records)]
        if kept.empty:
            raise RecordsError("no checkpoint comes before its trace's answer: every prefix already holds one")
        records = kept
    return records


def estimate(records: pd.DataFrame, alpha: float = DEFAULT_ALPHA, estimator: str = "plugin",
             keep: int | None = None, extraction: str | None = None,
             checkpoints: str = "all") -> pd.DataFrame:
    """One row per record: ``entropy`` ``Ĥ_t``, ``surprisal`` ``ŝ_t``, ``gold_prob``, ``m``,
    ``mode`` (the majority answer) and ``pos = t / T``, beside the record's keys.

    ``extraction`` reads the answers again under that mode first (:func:`reextract`; ``None``
    keeps the run's own). ``checkpoints="before answer"`` keeps only the checkpoints before the
    trace begins to write its final answer (those after have entropy near 0 and a surprisal set
    by the trace's correctness alone, so they leak the label into every diagnostic). Both
    through :func:`select`."""
    records = select(records, extraction, checkpoints)
    ac = count_answers(records["answers"], records["gold"], keep=keep)
    if np.any(ac.m == 0):
        bad = records.loc[ac.m == 0, ["question_id", "trace", "t"]].head(3).to_dict("records")
        raise RecordsError(f"{int((ac.m == 0).sum())} records have no answers (M = 0), e.g. {bad}")
    keys = [c for c in ("model", "dataset", "regime", "shuffle", "run", "question_id", "trace", "t", "T", "correct",
                        "deterministic") if c in records]
    out = records[keys].reset_index(drop=True).copy()
    out["m"] = ac.m
    out["entropy"] = entropy_from_counts(ac, estimator)
    out["hits"] = ac.hits
    out["gold_prob"] = gold_probability(ac.hits, ac.m, alpha)
    out["surprisal"] = -np.log(out["gold_prob"].to_numpy()) if alpha > 0 else gold_surprisal(ac.hits, ac.m, 0)
    out["mode"] = ac.mode
    out["mode_correct"] = np.asarray(ac.mode == records["gold"].to_numpy(dtype=object), dtype=bool)
    T = out["T"].to_numpy(dtype=np.float64)
    out["pos"] = np.where(T > 0, out["t"].to_numpy(dtype=np.float64) / np.where(T > 0, T, 1), 1.0)
    return out
