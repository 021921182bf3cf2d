"""The sampling engine (siautil.rollout): exact sampling semantics, equality with greedy generate,
every architecture, determinism, stop rules, checkpoints and the protocol's settings."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from siautil import decode, estimators, models, rollout, tasks, testing
from siautil.sampling import SamplingChain

from scripted_model import Q as SCRIPT_Q
from scripted_model import SCRIPT, scripted

TASK = tasks.get("gsm8k")
Q = tasks.Question(id="q1", text="Tom has 3 apples and buys 4 more. How many apples?", gold="7")


def _exact_two_token_law(model, ids, chain, eos):
    """P(first two continuation tokens) under ``chain``, by enumeration."""
    with torch.no_grad():
        p1 = chain.processors()(None, model(torch.tensor([ids])).logits[0, -1:].float()).softmax(-1)[0]
        law = {}
        for a in torch.nonzero(p1 > 1e-9).flatten().tolist():
            if a == eos:
                law[(a,)] = p1[a].item()
                continue
            p2 = chain.processors()(None, model(torch.tensor([ids + [a]])).logits[0, -1:].float()).softmax(-1)[0]
            for b in torch.nonzero(p2 > 1e-9).flatten().tolist():
                law[(a, b)] = p1[a].item() * p2[b].item()
    return law


def _chi2(counts, law, n):
    keys = sorted(law, key=lambda k: -law[k])
    exp = np.array([law[k] * n for k in keys])
    obs = np.array([counts.get(k, 0) for k in keys])
    big = exp >= 5
    rest_exp, rest_obs = exp[~big].sum(), obs[~big].sum() + n - obs.sum()
    exp_b, obs_b = exp[big], obs[big]
    if rest_exp > 0 or rest_obs > 0:
        exp_b, obs_b = np.append(exp_b, max(rest_exp, 1e-12)), np.append(obs_b, rest_obs)
    exp_b *= obs_b.sum() / exp_b.sum()
    return stats.chisquare(obs_b, exp_b).pvalue


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_engine_samples_the_exact_distribution_and_a_wrong_temperature_is_caught(tiny, precision):
    # in bf16 too: the law is the bf16 model's own (its full forward's logits)
    lm = tiny("llama", seed=3, eos_bias=1.0)
    model, tok = lm.model, lm.tokenizer
    if precision == "bf16":
        lm = testing.tiny_model("llama", seed=3, eos_bias=1.0)
        model, tok = lm.model, lm.tokenizer
        model.to(torch.bfloat16)
    settings = rollout.RolloutConfig(temperature=0.8, top_p=0.9, top_k=12, max_new_tokens=2, stop="eos")
    eng = rollout.Engine(lm, TASK, settings)
    prompt = tok("Q: 3 + 4 =")["input_ids"]
    prefix = tok(" 7")["input_ids"]
    n = 6000
    (conts,) = rollout.generate(lm, [prompt + prefix], n, 2, settings, seed="0")
    counts = {}
    for c in conts:
        counts[tuple(c[:2])] = counts.get(tuple(c[:2]), 0) + 1
    eos = tok.eos_token_id
    good = _exact_two_token_law(model, prompt + prefix, eng.chain, eos)
    assert _chi2(counts, good, n) > 1e-3
    wrong = _exact_two_token_law(model, prompt + prefix, SamplingChain(1.6, 12, 0.9), eos)
    assert _chi2(counts, wrong, n) < 1e-6


@pytest.mark.parametrize("family", testing.FAMILIES)
def test_engine_continuations_equal_greedy_generate(tiny, family):
    # top-k 1 makes sampling greedy, so every continuation is determined: through slots that
    # are refilled as rows end (3 slots, 2 traces x several checkpoints), each must equal
    # generate's greedy continuation of its own prefix. Larger initial weights give peaked
    # logits, so greedy choices are not near-ties.
    lm = tiny(family, seed=11, eos_bias=1.0, initializer_range=0.5)
    model, tok = lm.model, lm.tokenizer
    cfg = rollout.RolloutConfig(n_traces=2, n_continuations=1, stride=6, max_new_tokens=30, top_k=1,
                                stop="eos", max_batch_rows=3)
    eng = rollout.Engine(lm, TASK, cfg)
    prompt = tok("Q: 3 + 4 =")["input_ids"]
    g = torch.Generator().manual_seed(0)
    traces = [torch.randint(4, len(tok), (n,), generator=g).tolist() for n in (17, 11)]
    cps = eng.continue_traces(prompt, traces, seed="0")
    lengths = set()
    for cp in cps:
        i, t, (cont,) = cp.trace, cp.t, [r.tokens for r in cp.continuations]
        ids = torch.tensor([prompt + traces[i][:t]])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=30 - t,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
        want = out[: out.index(tok.eos_token_id)] if tok.eos_token_id in out else out
        assert cont == want, (i, t)
        lengths.add(len(cont))
    assert len(cps) == 7 and len(lengths) > 2  # rows ended at different steps


@pytest.mark.parametrize("family", testing.FAMILIES)
def test_every_architecture_runs_the_whole_engine(tiny, family):
    lm = tiny(family, seed=2, eos_bias=0.5)
    model, tok = lm.model, lm.tokenizer
    cfg = rollout.RolloutConfig(n_traces=2, n_continuations=3, stride=7, max_new_tokens=40)
    recs = rollout.Engine(lm, TASK, cfg).run_question(Q, 0)
    for trace in (0, 1):
        ts = [r["t"] for r in recs if r["trace"] == trace]
        T = [r["T"] for r in recs if r["trace"] == trace][0]
        assert ts == sorted(set(range(0, T + 1, 7)) | {T})
    assert all(len(r["answers"]) == 3 for r in recs)
    assert all(r["gold"] == "7" for r in recs)


def test_same_seed_same_records_and_seed_matters(tiny):
    lm = tiny("qwen2", seed=4, eos_bias=0.5)
    model, tok = lm.model, lm.tokenizer
    cfg = rollout.RolloutConfig(n_traces=2, n_continuations=4, stride=5, max_new_tokens=30, seed=11)
    a = rollout.Engine(lm, TASK, cfg).run_question(Q, 0)
    b = rollout.Engine(lm, TASK, cfg).run_question(Q, 0)
    assert a == b
    c = rollout.Engine(lm, TASK, rollout.RolloutConfig(**{**cfg.as_dict(), "seed": 12})).run_question(Q, 0)
    assert a != c


def test_each_row_draws_from_its_own_stream_whatever_the_batch(tiny):
    # other batch sizes and windows put rows beside other rows: with per-row streams they draw
    # the same tokens (fp32 logits differ with the batch only in the last bits, too little to
    # move a draw here), so the records are the same; a shared generator would change them all
    lm = tiny("llama", seed=5, eos_bias=0.5)
    model, tok = lm.model, lm.tokenizer
    base = dict(n_traces=2, n_continuations=4, stride=5, max_new_tokens=30)
    qs = [(0, Q), (1, tasks.Question("q2", "Anna has 9 books and gives away 2. How many?", "7"))]

    def records(**kw):
        eng = rollout.Engine(lm, TASK, rollout.RolloutConfig(**base, **kw))
        return {k: rs for w in range(0, 2, kw.get("window", 8)) for k, rs in eng.run_window(qs[w: w + kw.get("window", 8)])}

    small, large, single = records(max_batch_rows=4), records(max_batch_rows=256), records(window=1)
    assert small == large == single
    assert records(seed=1) != small


def test_a_token_shuffle_shows_the_continuations_the_prefix_permuted(tiny):
    lm = tiny("llama", seed=7, eos_bias=0.3)
    model, tok = lm.model, lm.tokenizer
    cfg = rollout.RolloutConfig(n_traces=2, n_continuations=2, stride=5, max_new_tokens=25, shuffle="tokens")
    recs = rollout.Engine(lm, TASK, cfg).run_question(Q, 0)
    assert [r["t"] for r in recs if r["trace"] == 0] == sorted(set(range(0, recs[0]["T"] + 1, 5)) | {recs[0]["T"]})
    moved = 0
    for r in recs:
        written = r["trace_text"][:r["prefix_chars"]]  # one character a token: the prefix as written
        assert sorted(r["prefix_text"]) == sorted(written), r["t"]  # the same tokens, length kept
        moved += r["prefix_text"] != written
    assert moved >= len(recs) // 2  # and mostly in another order


def test_a_steps_shuffle_keeps_the_format_and_changes_what_the_steps_say():
    from siautil.tasks.toy import STEP

    lm = models.load("toy-sft", "fp32")
    tok = lm.tokenizer
    task = tasks.get("toy")
    cfg = rollout.RolloutConfig(n_traces=2, n_continuations=4, stride=8, max_new_tokens=52, temperature=1.0,
                                top_p=1.0, shuffle="steps")
    recs = [r for k, q in enumerate(task.load(limit=3)) for r in rollout.Engine(lm, task, cfg).run_question(q, k)]
    changed = 0
    for r in recs:
        written = r["trace_text"][:r["prefix_chars"]]
        seen = r["prefix_text"]
        # the operations stay where they were; only the written results may differ
        assert [m[:3] for m in STEP.findall(seen)] == [m[:3] for m in STEP.findall(written)], r["t"]
        assert STEP.sub("", seen) == STEP.sub("", written)
        changed += seen != written
    assert changed > 0
    answers = [a for r in recs if 0 < r["t"] < r["T"] for a in r["answers"]]
    assert sum(a is None for a in answers) <= len(answers) // 10  # the continuations still answer


def test_context_overflow_names_the_question(tiny):
    lm = tiny("llama", max_position_embeddings=64)
    model, tok = lm.model, lm.tokenizer
    eng = rollout.Engine(lm, TASK, rollout.RolloutConfig(max_new_tokens=50))
    with pytest.raises(ValueError, match="question q1.*context of 64"):
        eng.run_question(Q)


# ------------------------------------------------------------------ the protocol on a scripted trace


def test_stop_rule_eos_runs_past_the_first_answer():
    recs = pd.DataFrame(scripted(stop="eos").run_question(SCRIPT_Q))
    assert recs["trace_text"].iloc[0] == SCRIPT and recs["finish"].iloc[0] == "eos"
    assert recs["trace_answer"].iloc[0] == "13" and recs["correct"].all()
    T = recs["T"].iloc[0]
    last = recs[recs.t == T].iloc[0]
    assert not last["deterministic"] and sum(last["continuation_tokens"]) == 0  # sampled: EOS at once
    assert list(last["answers"]) == ["13"] * 3
    # where the prefixes stand with the answer, read from their text: none before "12" is
    # written, one from there on ("written", or "growing" where it ends in "13." that may
    # still become 13.5)
    states = pd.Series(estimators.answer_states(recs), index=recs.index)
    start = SCRIPT.index("12")
    assert (states[recs["prefix_chars"] <= start] == "none").all()
    after = states[recs["prefix_chars"] >= start + 4]
    assert len(after) and after.isin(["written", "growing"]).all() and (after == "written").any()
    assert recs["prefix_text"].tolist() == [SCRIPT[:c] for c in recs["prefix_chars"]]
    early = recs[recs.t == 0].iloc[0]
    assert [early["prefix_text"] + c for c in early["continuations"]] == [SCRIPT] * 3


def test_stop_rule_answer_stops_at_the_first_and_still_samples_t_equals_T():
    recs = pd.DataFrame(scripted(stop="answer").run_question(SCRIPT_Q))
    assert recs["trace_text"].iloc[0] == "The answer is 12. " and recs["finish"].iloc[0] == "answer"
    assert recs["trace_answer"].iloc[0] == "12" and not recs["correct"].any()
    T = recs["T"].iloc[0]
    assert recs["t"].tolist() == rollout.checkpoints(T, 8)
    last = recs[recs.t == T].iloc[0]
    assert not last["deterministic"] and estimators.answer_states(recs[recs.t == T])[0] == "written"
    assert list(last["continuations"]) == ["Wait, "] * 3 and list(last["answers"]) == ["12"] * 3


def test_a_trace_stopped_at_its_answer_keeps_keys_and_logits_for_t_equals_T():
    eng = scripted(stop="answer")
    prompt = eng.prompt_ids(SCRIPT_Q)
    (trace,) = eng._sample_traces(prompt, eng.stream_seed(SCRIPT_Q))
    T = len(trace.tokens)
    assert trace.finish is decode.Finish.ANSWER and T in trace.logits
    assert trace.kv[0][0].shape[-2] == len(prompt) + T  # the last token was encoded too
    with torch.no_grad():  # and the logits at T are those of a full forward pass
        full = eng.loaded.model(torch.tensor([prompt + trace.tokens])).logits[0, -1]
    torch.testing.assert_close(trace.logits[T], full, atol=1e-4, rtol=0)


def test_a_checkpoint_with_no_budget_left_is_deterministic():
    recs = pd.DataFrame(scripted(max_new_tokens=20, stride=8).run_question(SCRIPT_Q))
    assert recs["finish"].iloc[0] == "length" and recs["T"].iloc[0] == 20
    assert recs.set_index("t")["deterministic"].to_dict() == {0: False, 8: False, 16: False, 20: True}
    assert recs["trace_answer"].iloc[0] == "12"  # strict: the one marked answer written so far


# ------------------------------------------------------------------ the run's settings, not the model's


def test_the_runs_top_k_is_its_own_whatever_the_model_says():
    lm = testing.tiny_model("llama", seed=1)  # its own: the test changes its generation_config
    model, tok = lm.model, lm.tokenizer
    model.generation_config.top_k = 20
    model.generation_config.temperature = 0.3
    eng = rollout.Engine(lm, TASK, rollout.RolloutConfig(temperature=0.9, top_p=0.8))
    assert (eng.chain.top_k, eng.chain.temperature, eng.chain.top_p) == (0, 0.9, 0.8)
    assert rollout.RolloutConfig(top_k=None).top_k == 0


def test_settings_outside_the_protocol_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="valid rules: eos, answer"):
        rollout.RolloutConfig(stop="newline")
    with pytest.raises(ValueError, match="valid modes"):
        rollout.RolloutConfig(extraction="regex")
    with pytest.raises(ValueError, match="repetition_penalty must be 1.0"):
        rollout.RolloutConfig(repetition_penalty=1.1)
    # the precision, the one run setting outside RolloutConfig: test_models.py


def _toy_answers(window, temperature, n_questions=12):
    """Answer counts per (question, checkpoint position) of toy-sft on the toy task."""
    from siautil import models

    lm = models.load("toy-sft", "fp32")
    tok = lm.tokenizer
    task = tasks.get("toy")
    cfg = rollout.RolloutConfig(n_traces=2, n_continuations=16, stride=8, max_new_tokens=52,
                                temperature=temperature, top_p=1.0, window=window)
    eng = rollout.Engine(lm, task, cfg)
    qs = list(enumerate(task.load(limit=n_questions)))
    recs = [r for w in range(0, n_questions, window) for _, rs in eng.run_window(qs[w: w + window]) for r in rs]
    df = pd.DataFrame(recs).explode("answers")
    df["answers"] = df["answers"].fillna("none")
    df["step"] = (df["t"] // 8).clip(upper=4)
    return df.groupby(["step", "answers"]).size()


def test_window_sizes_give_answers_of_the_same_distribution_and_a_wrong_temperature_is_caught():
    # per row random streams: a window changes which rows share a batch, not their draws; the
    # answers per checkpoint then agree between windows (a chi-square test of homogeneity),
    # and the same test rejects a run at another temperature
    one, six, cold = _toy_answers(1, 2.0), _toy_answers(6, 2.0), _toy_answers(6, 1.2)

    def p_value(a, b):
        table = pd.concat([a, b], axis=1).fillna(0)
        table = table[table.sum(axis=1) >= 10]
        return stats.chi2_contingency(table.to_numpy()).pvalue

    assert p_value(one, six) > 0.01
    assert p_value(one, cold) < 1e-4


class _EosFrom(torch.nn.Module):
    """Wraps a tiny model: EOS is certain from absolute position ``start`` on and impossible
    before, so a question's trace length is set by its prompt's length."""

    def __init__(self, model, start, eos):
        super().__init__()
        self.inner, self.start, self.eos = model, start, eos
        self.config, self.generation_config = model.config, model.generation_config

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def forward(self, input_ids=None, position_ids=None, logits_to_keep=0, **kw):
        out = self.inner(input_ids=input_ids, position_ids=position_ids, logits_to_keep=logits_to_keep, **kw)
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1])[None]
        pos = position_ids[:, -out.logits.shape[1]:]
        out.logits[..., self.eos] = torch.where(pos + 1 >= self.start, 100.0, -100.0).to(out.logits.dtype)
        return out


def test_a_question_with_long_traces_does_not_hold_the_window_back():
    lm = testing.tiny_model("llama", seed=3)
    model, tok = lm.model, lm.tokenizer
    long_q = tasks.Question("long", "1+1?", "2")
    short_q = tasks.Question("short", "What is one plus one, written as a number? " * 3, "2")
    cfg = rollout.RolloutConfig(n_traces=2, n_continuations=2, stride=10, max_new_tokens=90, window=2)
    wrapped = _EosFrom(model, 0, tok.eos_token_id)
    eng = rollout.Engine(models.LoadedModel(wrapped, tok, "eos-from", chat=False), TASK, cfg)
    start = len(eng.prompt_ids(short_q)) + 3  # the short question's rows end almost at once
    wrapped.start = start
    assert len(eng.prompt_ids(long_q)) < start - 40
    finished = []
    for k, recs in eng.run_window([(0, long_q), (1, short_q)]):
        finished.append((k, eng.stats["forward_passes"], recs[0]["T"]))
    (first, at_first, t_first), (second, at_second, t_second) = finished
    assert (first, second) == (1, 0) and t_first < t_second
    assert at_first < at_second / 2  # done while the long question's traces were still decoding
