"""Building records (siautil.records) from what any backend sampled."""

from types import SimpleNamespace

from siautil import records, schema, tasks
from siautil.decode import Finish
from siautil.records import Checkpoint

TASK = tasks.get("toy")
Q = tasks.Question("toy4-test-0", "3 a+1 (mod 5)", "4")


def _decode(ids):
    return "".join(chr(i) for i in ids)


def _ids(text):
    return [ord(c) for c in text]


def test_records_from_plain_token_lists_follow_the_schema_and_read_the_answers():
    trace = SimpleNamespace(tokens=_ids(" a+1=4 The answer is 4."), finish=Finish.EOS)
    T = len(trace.tokens)
    cps = [Checkpoint(0, 0, 10, "", ""), Checkpoint(0, 7, 10, " a+1=4 ", " a+1=4 "), Checkpoint(0, T, 0, _decode(trace.tokens), "")]
    cps[0].continuations = [SimpleNamespace(tokens=_ids(" a+1=4 The answer is 4.")),
                            SimpleNamespace(tokens=_ids(" a+1=2 The answer is 2."))]
    cps[1].continuations = [SimpleNamespace(tokens=_ids("The answer is 4.")), SimpleNamespace(tokens=_ids("Hmm"))]
    recs = records.build(TASK, Q, 5, "a-model", [trace], cps, _decode, "strict-match", 2, shuffled=False)
    schema.table(recs)  # every record fits the schema
    assert [r["answers"] for r in recs] == [["4", "2"], ["4", None], ["4", "4"]]
    assert all(r["correct"] and r["trace_answer"] == "4" and r["finish"] == "eos" for r in recs)
    assert recs[1]["continuations"] == ["The answer is 4.", "Hmm"] and recs[1]["continuation_tokens"] == [16, 3]
    last = recs[2]
    assert last["deterministic"] and last["continuations"] == ["", ""] and last["prefix_text"] == last["trace_text"]
    assert (recs[0]["model"], recs[0]["question_index"], recs[0]["T"]) == ("a-model", 5, T)


def test_a_continuation_s_text_is_what_it_adds_to_the_prefix_it_saw():
    cp = Checkpoint(0, 2, 5, "ab", "ab")
    assert records.continuation_text(_decode, _ids("abc"), cp, _ids("cd"), shuffled=False) == "cd"
    shuffled = Checkpoint(0, 2, 5, "ab", "ba")
    assert records.continuation_text(_decode, _ids("abc"), shuffled, _ids("cd"), shuffled=True) == "cd"
