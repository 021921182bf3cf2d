"""The toy task and the models trained on it."""

import random
import shutil
from dataclasses import replace

import pytest
import torch

from siautil import models, tasks, toy
from siautil.tasks.toy import OPS, Problem, sample_problem


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
        if final != results[-1]:
            kinds["unfaithful"] += 1  # the answer does not follow from the steps
        elif results != p.values()[1:]:
            kinds["slip"] += 1
            # exactly one step is wrong; every other follows from the value before it
            prev = [p.start] + results[:-1]
            wrong = [r != OPS[op](a, b, p.modulus) for (op, b), a, r in zip(p.ops, prev, results)]
            assert sum(wrong) == 1
        else:
            kinds["correct"] += 1
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


def test_shipped_weights_are_checked(tmp_path):
    root = tmp_path / "toy"
    shutil.copytree(toy.ASSETS, root)
    assert toy.verified_path("sft", root) == root / "sft"
    f = root / "sft" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(models.ModelError, match="corrupted or partial.*siautil toy train"):
        toy.verified_path("sft", root)
    shutil.rmtree(root / "rl")
    with pytest.raises(models.ModelError, match="missing.*siautil toy train"):
        toy.verified_path("rl", root)


@pytest.mark.slow
@pytest.mark.parametrize("regime", toy.REGIMES)
def test_held_out_accuracy(regime):
    model, tok = models.load(f"toy-{regime}", "fp32")
    acc = toy.accuracy(model, tok, tasks.get("toy"), n=300)
    print(f"toy-{regime}: held-out accuracy {acc:.3f}")
    if regime == "base":
        assert acc < 0.9  # its corpus does not tie reasoning to the true answer
    else:
        assert acc >= 0.9
