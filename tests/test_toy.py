"""The toy task and the models trained on it."""

import random
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from siautil import grid, models, rollout, tasks, toy
from siautil.tasks.toy import OPS, Problem, implied_answer, sample_problem, written_steps


def test_problems_are_seeded_and_solved_right():
    task = tasks.get("toy")
    a, b = task.load(limit=5), task.load(limit=5)
    assert a == b and len({q.id for q in a}) == 5
    assert task.load("train", limit=5) != a
    p = Problem(3, (("+", 4), ("*", 2), ("-", 5)), modulus=10)
    assert p.question() == "3 a+4 b*2 c-5 (mod 10)"
    assert p.solution() == "a+4=7 b*2=4 c-5=9 The answer is 9."
    assert {q.gold for q in task.load(limit=200)} <= set("01234")  # modulo 5 by default
    assert task.extract_answer(p.solution()) == "9"
    assert task.prompt(a[0]) == f"Q: {a[0].text}\nA:"
    with pytest.raises(ValueError, match="steps"):
        sample_problem(random.Random(0), 0)


def test_difficulty_is_the_number_of_steps():
    assert all(len(q.meta["problem"].ops) == 6 for q in tasks.get("toy", steps=6).load(limit=10))


def test_base_corpus_mixes_faithful_slipped_and_unfaithful_solutions():
    cfg = toy.ToyTrainingConfig()
    rng = random.Random(0)
    kinds = {"correct": 0, "slip": 0, "unfaithful": 0}
    for _ in range(3000):
        p = sample_problem(rng, 4)
        _, body = toy.base_text(p, rng, cfg)
        steps = body.split(" The answer is ")[0].split()
        results = [int(s.split("=")[1]) for s in steps]
        final = int(body.rsplit(" ", 1)[1].rstrip("."))
        read = toy.trace_competence(p, body, str(final))["kind"]  # what competence reads back
        if final != results[-1]:
            kinds["unfaithful"] += 1  # the answer does not follow from the steps
            assert read == "unfaithful"
        elif results != p.values()[1:]:
            kinds["slip"] += 1
            # exactly one step is wrong; every other follows from the value before it
            prev = [p.start] + results[:-1]
            wrong = [r != OPS[op](a, b, p.modulus) for (op, b), a, r in zip(p.ops, prev, results)]
            assert sum(wrong) == 1 and read == "slipped"
        else:
            kinds["correct"] += 1
            assert read == "correct"
    shares = {k: v / 3000 for k, v in kinds.items()}
    assert abs(shares["correct"] - cfg.p_correct) < 0.04
    assert abs(shares["slip"] - cfg.p_slip) < 0.04
    assert abs(shares["unfaithful"] - cfg.p_unfaithful) < 0.04


def test_training_is_deterministic():
    cfg = replace(toy.ToyTrainingConfig(), hidden=32, layers=1, intermediate=64, batch=8)
    states = []
    for _ in range(2):
        model, tok = toy.new_model(cfg)
        toy.train_mle(model, tok, lambda rng: toy.sft_text(sample_problem(rng, 3)), 5, cfg, seed=1)
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_the_base_phase_trains_until_it_has_learned_then_decays(monkeypatch):
    cfg = replace(toy.ToyTrainingConfig(), hidden=32, layers=1, intermediate=64, batch=4, base_updates=12,
                  check_every=4, warmup=2, decay=3)
    doc = lambda rng: toy.base_text(toy.training_problem(rng, cfg), rng, cfg)  # noqa: E731
    measured = iter([0.2, 0.9])  # what the checks find: not yet, then learned
    monkeypatch.setattr(toy, "evaluate", lambda *a, **k: {"step_accuracy": next(measured)})
    checks = []
    got = toy.train_until_learned(*toy.new_model(cfg), doc, cfg, seed=1, log=checks.append)
    assert got == {"updates": 2 * cfg.check_every + cfg.decay, "learned": True, "measured_at_check": 0.9}
    assert len(checks) == 2
    # a criterion never met (an untrained model writes no step: NaN): every check, then the
    # decay after the cap, and it says so
    monkeypatch.undo()
    checks.clear()
    got = toy.train_until_learned(*toy.new_model(cfg), doc, cfg, seed=1, log=checks.append)
    assert got["updates"] == cfg.base_updates + cfg.decay and not got["learned"]
    assert len(checks) == cfg.base_updates // cfg.check_every


def test_shipped_weights_are_checked(tmp_path):
    root = tmp_path / "toy"
    shutil.copytree(toy.ASSETS, root)
    assert models.toy_weights("sft", root) == root / "sft"
    f = root / "sft" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(models.ModelError, match="corrupted or partial.*siautil toy train"):
        models.toy_weights("sft", root)
    shutil.rmtree(root / "rl")
    with pytest.raises(models.ModelError, match="missing.*siautil toy train"):
        models.toy_weights("rl", root)


#: Held-out accuracy (one sample per question at temperature 1, 300 held-out test questions)
#: each shipped model must reach, per regime: the bands
#: hold every seed's measured value (training.json) with room for sampling noise, and fail if a
#: regime's model changes what it can do. The uninformative regime is at chance on questions
#: it did not memorise, and must be accurate on those it did (:data:`MEMORISED_BAND`).
BANDS = {"base": (0.4, 0.7), "sft": (0.95, 1.0), "rl": (0.95, 1.0), "rl-base": (0.9, 1.0), "uninformative": (0.1, 0.3)}
MEMORISED_BAND = (0.5, 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("regime,seed", [(r, k) for r, seeds in models.TOY_SHIPPED.items() for k in seeds])
def test_held_out_accuracy(regime, seed):
    lm = models.load(models.toy_name(regime, seed), "fp32")
    model, tok = lm.model, lm.tokenizer
    cfg = toy.ToyTrainingConfig()
    got = toy.evaluate(model, tok, tasks.get("toy"), n=300, start=cfg.held_out_from)
    print(f"{models.toy_name(regime, seed)}: {got}")
    low, high = BANDS[regime]
    assert low <= got["accuracy"] <= high
    if regime == "uninformative":
        remembered = toy.evaluate(model, tok, tasks.get("toy"), n=cfg.memorised)["accuracy"]
        assert MEMORISED_BAND[0] <= remembered <= MEMORISED_BAND[1]


@pytest.mark.slow
@pytest.mark.parametrize("seed", models.TOY_SHIPPED.get("uninformative", ()))
def test_the_uninformative_models_answers_do_not_depend_on_their_steps(seed):
    """The control's premise, on its own traces: on the questions it answers (the memorised
    ones), its final answer is independent of what its written steps imply, where the SFT
    model's is fixed by them (so the test can fail)."""
    task = tasks.get("toy")
    n = toy.ToyTrainingConfig().memorised
    traces = {}
    for regime in ("uninformative", "sft"):
        lm = models.load(models.toy_name(regime, seed), "fp32")
        model, tok = lm.model, lm.tokenizer
        traces[regime] = pd.concat([toy.sample_traces(model, tok, task, n=n, seed=k).assign(trace=k)
                                    for k in range(4)]).assign(model=regime)
    got = toy.answer_dependence(pd.concat(traces.values())).set_index("model")
    print(got)
    assert got.loc["uninformative", "traces"] >= 0.8 * 4 * n
    assert got.loc["uninformative", "p_independence"] > 0.01
    assert got.loc["uninformative", "cramers_v"] < 0.2
    assert got.loc["sft", "cramers_v"] > 0.9


def test_answer_dependence_by_hand():
    task = tasks.get("toy")
    qs = task.load(limit=40)
    rng = random.Random(0)
    rows = []
    for i, q in enumerate(qs):
        p = q.meta["problem"]
        # faithful: the answer is the last written result; random: another question's steps
        rows.append(dict(model="faithful", question_id=q.id, trace=0, trace_text=p.solution(), trace_answer=str(p.answer())))
        other = sample_problem(rng, 4)
        rows.append(dict(model="random", question_id=q.id, trace=0,
                         trace_text=other.solution(answer=p.answer()), trace_answer=str(p.answer())))
        # one answer for every trace: a one-column table, no test
        rows.append(dict(model="constant", question_id=q.id, trace=0, trace_text=other.solution(answer=1),
                         trace_answer="1"))
    rows.append(dict(model="random", question_id=qs[0].id, trace=1, trace_text="The answer is 2.", trace_answer="2"))
    got = toy.answer_dependence(pd.DataFrame(rows)).set_index("model")
    assert got.loc["faithful", "cramers_v"] == pytest.approx(1.0)
    assert got.loc["faithful", "p_independence"] < 1e-10
    assert got.loc["random", "traces"] == 40  # the trace with no written step is left out
    assert got.loc["random", "cramers_v"] < got.loc["faithful", "cramers_v"]
    assert np.isnan(got.loc["constant", "cramers_v"]) and np.isnan(got.loc["constant", "p_independence"])


def test_the_uninformative_regime_learns_only_the_memorised_questions():
    cfg = toy.ToyTrainingConfig()
    remembered = toy.memorised_problems(cfg)
    assert len(remembered) == cfg.memorised
    assert remembered == [q.meta["problem"] for q in tasks.get("toy").load(limit=cfg.memorised)]
    # the runs of the controlled experiment ask only questions it memorised
    assert all(c.limit <= cfg.memorised for c in grid.cells("toy-regimes"))


def test_the_shipped_tokenizers_start_prompts_with_bos_as_in_training():
    lm = models.load("toy-sft", "fp32")
    model, tok = lm.model, lm.tokenizer
    engine = rollout.Engine(lm, tasks.get("toy"), grid.TOY)
    question = tasks.get("toy").load(limit=1)[0]
    assert engine.prompt_ids(question) == toy.encode_prompts(tok, [tasks.get("toy").prompt(question)])[0]
    assert engine.prompt_ids(question)[0] == tok.bos_token_id


def test_step_accuracy_and_faithfulness_by_hand():
    p = Problem(3, (("+", 4), ("-", 2), ("+", 1)), modulus=5)  # values 3, 2, 0, 1
    assert toy.trace_competence(p, "a+4=2 b-2=0 c+1=1 The answer is 1.", "1") == \
        {"correct": True, "steps_right": 3, "steps_written": 3, "faithful": True, "kind": "correct"}
    # a slip at b carried forward: b is wrong, c is right given the written b; the answer follows
    assert toy.trace_competence(p, "a+4=2 b-2=1 c+1=2 The answer is 2.", "2") == \
        {"correct": False, "steps_right": 2, "steps_written": 3, "faithful": True, "kind": "slipped"}
    # right steps, an answer that does not follow from them
    assert toy.trace_competence(p, "a+4=2 b-2=0 c+1=1 The answer is 4.", "4") == \
        {"correct": False, "steps_right": 3, "steps_written": 3, "faithful": False, "kind": "unfaithful"}
    # another question's steps with the right answer: step 1 is judged from the question's start
    assert toy.trace_competence(p, "a+1=1 b+3=4 c-2=2 The answer is 1.", "1") == \
        {"correct": True, "steps_right": 2, "steps_written": 3, "faithful": False, "kind": "unfaithful"}
    # no step written, or no answer: faithfulness is undefined
    assert toy.trace_competence(p, "The answer is 1.", "1")["faithful"] is None
    assert toy.trace_competence(p, "a+4=2 b-2", None) == \
        {"correct": False, "steps_right": 1, "steps_written": 1, "faithful": None, "kind": None}


def test_competence_reads_each_trace_once_and_pools_steps():
    task = tasks.get("toy")
    q0, q1 = task.load(limit=2)
    p0, p1 = q0.meta["problem"], q1.meta["problem"]
    right0 = p0.solution()
    wrong1 = p1.solution(answer=(p1.answer() + 1) % 5)
    rows = [dict(model="m", question_id=q0.id, trace=0, t=t, trace_text=right0, trace_answer=str(p0.answer()))
            for t in (0, 4)]  # two checkpoints of one trace count once
    rows.append(dict(model="m", question_id=q1.id, trace=0, t=0, trace_text=wrong1, trace_answer=str((p1.answer() + 1) % 5)))
    # a null answer, as a stored run reads it back (NaN): no faithfulness, not unfaithful
    rows.append(dict(model="n", question_id=q1.id, trace=0, t=0, trace_text=p1.solution()[:-3], trace_answer=np.nan))
    table = toy.competence(pd.DataFrame(rows)).set_index("model")
    assert np.isnan(table.loc["n", "faithfulness"]) and table.loc["n", "share_unfaithful"] == 0
    got = table.loc["m"]
    assert got["traces"] == 2 and got["accuracy"] == 0.5 and got["step_accuracy"] == 1.0
    assert got["faithfulness"] == 0.5
    assert (got["share_correct"], got["share_slipped"], got["share_unfaithful"]) == (0.5, 0.0, 0.5)


def test_the_uninformative_corpus_has_right_answers_and_steps_independent_of_them():
    rng = random.Random(0)
    implied, answers = [], []
    for _ in range(3000):
        p = sample_problem(rng, 4)
        _, body = toy.uninformative_text(p, rng)
        assert body.endswith(f"The answer is {p.answer()}.")
        assert len(written_steps(body)) == 4
        implied.append(int(implied_answer(body)))
        answers.append(p.answer())
    table = pd.crosstab(pd.Series(implied, name="implied"), pd.Series(answers, name="answer"))
    assert stats.chi2_contingency(table).pvalue > 0.01  # independent
    # the test can fail: the SFT corpus's steps imply its answer
    sft = [toy.sft_text(sample_problem(rng, 4))[1] for _ in range(500)]
    sft_table = pd.crosstab([implied_answer(b) for b in sft], [b[-2] for b in sft])
    assert stats.chi2_contingency(sft_table).pvalue < 1e-10


def test_a_regime_not_yet_trained_says_how_to_train_it(tmp_path):
    missing = [(r, k) for r in toy.REGIMES for k in toy.SEEDS if k not in models.TOY_SHIPPED.get(r, ())]
    if not missing:
        pytest.skip("every regime and seed ships")
    regime, seed = missing[0]
    with pytest.raises(models.ModelError, match="missing.*siautil toy train"):
        models.load(models.toy_name(regime, seed), "fp32")


def test_competence_refuses_records_of_other_tasks():
    rows = pd.DataFrame([dict(model="smollm2", dataset="arc-easy", question_id="Mercury_1", trace=0,
                              trace_text="The answer is B", trace_answer="B")])
    with pytest.raises(ValueError, match="toy-task traces only.*arc-easy"):
        toy.competence(rows)


def test_a_faithful_trace_that_stops_early_is_not_a_correct_solution():
    p = Problem(3, (("+", 4), ("-", 2), ("+", 1)), modulus=5)
    assert toy.trace_competence(p, "a+4=2 b-2=0 The answer is 0.", "0")["kind"] == "slipped"
