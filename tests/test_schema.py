"""The record schema (siautil.schema): what the store writes and refuses."""

import pyarrow as pa
import pytest

from siautil import schema, store, testing

RECORD = testing.record(trace_answer=None)


def test_a_record_of_the_schema_is_written_with_its_types():
    table = schema.table([RECORD])
    assert table.schema == schema.RECORD_SCHEMA
    assert table.column("trace_answer").type == pa.string()  # null, but typed: a run of nulls still concatenates
    assert [name for name, _, doc in schema.COLUMNS if not doc] == []  # every column documented


@pytest.mark.parametrize("change, why", [
    (lambda r: r.pop("correct"), r"missing \['correct'\]"),
    (lambda r: r.update(extra=1), r"not in the schema \['extra'\]"),
    (lambda r: r.update(t="zero"), "does not fit the record schema"),
])
def test_a_record_outside_the_schema_is_refused_naming_why(change, why, tmp_path):
    record = dict(RECORD)
    change(record)
    with pytest.raises(ValueError, match=why):
        schema.table([record])
    run = store.RunStore.open(tmp_path / "r", {"model": "m"})
    with pytest.raises(store.RunStoreError, match=f"question 0: .*{why}"):
        run.write(0, [record])
    assert run.done() == set()  # nothing half-written
