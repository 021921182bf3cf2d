"""What the paper leaves open (siautil.choices): each choice applied to a real run, the flags that
name a flipped sign or a halved number, and the share of traces that rewrite their answer."""

import numpy as np
import pandas as pd

from siautil import choices, estimators, models, rollout, tasks


def test_flags_name_a_flip_and_a_halving():
    tab = pd.DataFrame([
        dict(choice="x", value="a", default=True, model="m", dataset="d", **{"table 1 mean": 0.6, "mid-trace AUC": 0.7}),
        dict(choice="x", value="b", default=False, model="m", dataset="d", **{"table 1 mean": -0.3, "mid-trace AUC": 0.6}),
        dict(choice="y", value="a", default=True, model="m", dataset="d", **{"table 1 mean": 0.6, "mid-trace AUC": 0.7}),
        dict(choice="y", value="c", default=False, model="m", dataset="d", **{"table 1 mean": 0.5, "mid-trace AUC": 0.69}),
    ])
    out = choices.flags(tab)
    assert any("x = b flips the sign of the table 1 mean" in s for s in out)
    assert any("x = b halves the mid-trace AUC" in s for s in out)
    assert not any("y = c" in s for s in out)


def test_every_choice_applies_to_a_real_run():
    task = tasks.get("toy")
    lm = models.load("toy-sft", "fp32")
    tok = lm.tokenizer
    cfg = rollout.RolloutConfig(n_traces=4, n_continuations=8, stride=8, max_new_tokens=52, temperature=2.5, top_p=1.0)
    eng = rollout.Engine(lm, task, cfg)
    recs = pd.DataFrame([r for k, q in enumerate(task.load(limit=6)) for r in eng.run_question(q, k)])
    tab = choices.table(recs)
    assert set(tab["choice"]) == set(choices.CHOICES)
    assert tab.groupby("choice")["default"].sum().eq(1).all()
    assert len(tab) == sum(len(v) for v in choices.CHOICES.values())
    holding = tab[tab.choice == "checkpoints"].set_index("value")
    # a trace that ends "The answer is 3." holds its answer at t = T and from where its digit is
    # written ("The answer is 3" may still grow), and at t = 0 nothing does
    state = pd.Series(estimators.answer_states(recs), index=recs.index)
    last = recs[recs["t"] == recs["T"]]
    finished = last["trace_text"].str.contains(r"The answer is \d\.$")
    assert finished.any() and (state[last.index[finished]] != "none").all()
    assert (state[recs.t == 0] == "none").all()
    digit = recs["prefix_text"].str.contains(r"The answer is \d$")
    assert digit.any() and (state[digit] == "growing").all()
    assert np.isfinite(holding.loc["all", "table 1 mean"])
    # before the answer: no checkpoint from the first that holds one on (it is never t = 0)
    kept = estimators.select(recs, checkpoints="before answer")
    assert 0 < len(kept) < len(recs) and (pd.Series(estimators.answer_states(kept)) == "none").all()
    assert not kept["prefix_text"].str.contains("The answer is").any() or \
        not kept["prefix_text"].str.contains(r"The answer is \d").any()
    assert np.isfinite(holding.loc["before answer", "table 1 mean"])
    extraction = tab[tab.choice == "extraction"].set_index("value").drop(columns=["choice", "default"])
    assert not extraction.loc["strict-match"].equals(extraction.loc["flexible-extract"])
    estimator = tab[tab.choice == "estimator"].set_index("value")["table 1 mean"]
    assert estimator["paper"] != estimator["decoupled"]
    rw = choices.rewrites_answer(recs)
    assert rw["traces"].item() == 24 and 0 <= rw["share_rewriting"].item() <= 1


def test_rewrites_answer_counts_the_traces_that_write_a_second_answer():
    texts = {("q1", 0): "The answer is 12. Wait, 5 + 8 = 13. The answer is 13.",
             ("q1", 1): "The answer is 13.", ("q2", 0): "The answer is 4. So the answer is 4.",
             ("q2", 1): "I do not know."}
    rows = [dict(model="m", dataset="d", question_id=q, trace=n, t=t, trace_text=text)
            for (q, n), text in texts.items() for t in (0, 4, 8)]  # one row per checkpoint, one text per trace
    rw = choices.rewrites_answer(pd.DataFrame(rows))
    assert (rw["model"].item(), rw["traces"].item()) == ("m", 4)
    assert rw["share_rewriting"].item() == 0.25  # the same answer written twice is no rewrite
