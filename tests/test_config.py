"""A run's configuration (siautil.config): its name, what it stores, its checks."""

import pytest

from siautil import config, models, rollout
from siautil.config import RunConfig


def test_a_run_is_named_by_model_task_and_shuffle():
    run = RunConfig("toy-sft", "toy")
    assert run.name == "toy-sft__toy"
    assert run.shuffled().name == "toy-sft__toy__shuffled" and run.shuffled("steps").sampling.shuffle == "steps"
    assert not run.needs_files and RunConfig("m", "gsm8k").needs_files


def test_what_a_run_stores_holds_every_setting_and_its_resolved_precision():
    run = RunConfig("toy-sft", "toy", rollout.RolloutConfig(temperature=1.5), split="test", limit=3)
    with pytest.raises(ValueError, match="precision decided"):
        run.stored("w")
    stored = run.resolved("cpu").stored("siautil/assets/toy/sft")
    assert stored["precision"] == "fp32"  # the toy models' own
    assert stored["protocol"] == config.PROTOCOL and stored["weights"] == "siautil/assets/toy/sft"
    assert stored["temperature"] == 1.5 and stored["split"] == "test"
    assert "limit" not in stored  # a store holds a run whatever limit reads it
    assert set(rollout.RolloutConfig().as_dict()) <= set(stored)


def test_an_unknown_precision_is_refused_when_the_run_is_made():
    with pytest.raises(models.ModelError, match="valid precisions: fp32, bf16, fp16, nf4"):
        RunConfig("m", "gsm8k", precision="int3")


def test_the_backend_is_part_of_what_a_run_stores_and_an_unknown_one_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'tgi'; valid backends: engine, vllm"):
        RunConfig("toy-sft", "toy", backend="tgi")
    engine = RunConfig("toy-sft", "toy").resolved("cpu").stored("w")
    vllm = RunConfig("toy-sft", "toy", backend="vllm").resolved("cpu").stored("w")
    assert engine["backend"] == "engine" and {k for k in engine if engine[k] != vllm[k]} == {"backend"}
