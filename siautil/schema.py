"""What a run stores: one record per (question, trace, checkpoint), as a pyarrow schema with each
column documented once. The run store writes records with it and refuses records that do not
fit it (:meth:`siautil.store.RunStore.write`); :mod:`siautil.records` builds them.

Columns the analyses add when reading (``run``, ``protocol``, ``shuffle``, ``regime``, ...)
are not part of a record."""

from __future__ import annotations

import pyarrow as pa

#: (column, type, what it holds), in the order records are written.
COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("model", pa.string(), "the model's name as the run records it (registry name, hub id or path)"),
    ("dataset", pa.string(), "the task's name (siautil.tasks.get)"),
    ("question_id", pa.string(), "the question's stable id in its task"),
    ("question_index", pa.int64(), "the question's place in the run (after any sample), from 0"),
    ("trace", pa.int64(), "the trace's index among the question's N traces"),
    ("t", pa.int64(), "the checkpoint: the prefix length in generated tokens"),
    ("T", pa.int64(), "the trace's length in generated tokens (its EOS not counted)"),
    ("answers", pa.list_(pa.string()), "the M continuations' answers under the run's extraction (null: no answer)"),
    ("gold", pa.string(), "the question's gold answer, canonical"),
    ("correct", pa.bool_(), "whether the trace's own answer is the gold one"),
    ("trace_answer", pa.string(), "the trace's own answer under the run's extraction (null: none)"),
    ("finish", pa.string(), "why the trace stopped: eos, length or answer (siautil.decode.Finish)"),
    ("continuation_tokens", pa.list_(pa.int64()), "each continuation's length in tokens"),
    ("trace_text", pa.string(), "the trace's whole text"),
    ("prefix_chars", pa.int64(), "the length of the prefix as written, in characters of trace_text"),
    ("prefix_text", pa.string(), "the prefix the continuations saw (shuffled in a shuffled run)"),
    ("continuations", pa.list_(pa.string()), "the text each continuation added to prefix_text"),
    ("deterministic", pa.bool_(), "no budget was left: the prefix is the whole generation, nothing sampled"),
)

RECORD_SCHEMA = pa.schema([pa.field(name, kind) for name, kind, _ in COLUMNS])

#: The columns every analysis needs (:func:`siautil.estimators.check_records`); an oracle run
#: (:mod:`siautil.oracle`) has these and its exact values, not the text.
ANALYSED = ("question_id", "trace", "t", "T", "answers", "gold", "correct")


def table(records: list[dict]) -> pa.Table:
    """``records`` as a table of :data:`RECORD_SCHEMA`; a record with a column missing, one too
    many or a value of another type is refused, naming it."""
    names = [name for name, _, _ in COLUMNS]
    for i, record in enumerate(records):
        if list(record) != names:
            missing = [n for n in names if n not in record]
            extra = [n for n in record if n not in names]
            raise ValueError(f"record {i} does not follow the record schema (siautil.schema): "
                             f"missing {missing}, not in the schema {extra}" if missing or extra else
                             f"record {i}'s columns are not in the schema's order")
    try:
        return pa.Table.from_pylist(records, schema=RECORD_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(f"a record does not fit the record schema (siautil.schema): {e}") from None
