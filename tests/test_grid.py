"""Profiles and cell selection: the grid as data (running it is tests/test_runs.py)."""

import subprocess
import sys

import pytest

from siautil import grid, models


def test_profiles():
    default = grid.cells("default")
    assert {c.model for c in default} >= {"toy-base", "toy-sft", "toy-rl", "smollm2-135m-instruct"}
    assert {c.settings.shuffle for c in default} == {"none", "tokens", "steps"}
    cells = grid.cells("paper")
    assert len([c for c in cells if c.settings.shuffle == "none"]) == 33
    assert {c.name for c in cells if c.settings.shuffle == "steps"} == \
        {f"{m}__gsm8k__shuffled-steps" for m in grid.PAPER_SHUFFLE}
    assert all(c.precision == "bf16" and c.settings.max_new_tokens == 600 for c in cells)
    assert all(c.precision == "nf4" for c in grid.cells("paper-nf4"))
    with pytest.raises(ValueError, match="profiles: default, paper, paper-nf4, pilot, smollm2-arc, toy-regimes"):
        grid.cells("nope")


def test_every_profile_follows_the_protocol_with_one_chain():
    for profile in grid.PROFILES:
        cells = grid.cells(profile)
        assert all(c.settings.stop == "eos" and c.settings.extraction == "strict-match" for c in cells)
        assert all(c.settings.top_k == 0 and c.settings.repetition_penalty == 1.0 for c in cells)
        # one chain per profile, except the toy cells, which sample at grid.TOY in every profile
        chains = {c.settings.chain() for c in cells if c.task != "toy"}
        assert len(chains) == (1 if any(c.task != "toy" for c in cells) else 0), (profile, chains)
        assert {c.settings.chain() for c in cells if c.task == "toy"} <= {grid.TOY.chain()}


def test_select_one_model():
    (cell,) = grid.select("paper", model="Qwen/Qwen2.5-3B-Instruct", dataset="gsm8k", precision="nf4")
    assert cell.precision == "nf4" and cell.needs_files and cell.name == "Qwen/Qwen2.5-3B-Instruct__gsm8k"
    assert cell.needs_data  # the old name, read from the task
    assert grid.Cell("m", "gsm8k", grid.PAPER, needs_data=False).needs_files  # the old keyword, ignored
    assert grid.Cell("m", "gsm8k", grid.PAPER, quantize="4bit").precision == "nf4"  # the old keyword
    with pytest.raises(models.ModelError, match="valid precisions: fp32, bf16, nf4"):
        grid.Cell("m", "gsm8k", grid.PAPER, precision="int3")
    steps = grid.select("default", shuffle="steps")
    assert steps and all(c.settings.shuffle == "steps" and c.name.endswith("__shuffled-steps") for c in steps)
    assert len(grid.select("default", shuffle=None)) == len(grid.cells("default"))
    assert [c.settings.shuffle for c in grid.select("paper", model="m", dataset="svamp", shuffle=None)] == \
        ["none", "tokens", "steps"]


def test_whether_a_cell_reads_files_is_its_tasks():
    assert all(c.needs_files for c in grid.cells("paper") + grid.cells("pilot") + grid.cells("smollm2-arc"))
    default = {c.task: c.needs_files for c in grid.cells("default")}
    assert default == {"toy": False, "arc-easy": True}


def test_grid_is_data_and_forwards_the_old_names():
    # importing the grid does not import the run store machinery
    code = "import sys, siautil.grid; assert 'siautil.runs' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    from siautil import runs

    assert grid.estimate is runs.cost and grid.records is runs.records and grid.run_dir is runs.run_dir
    for name in ("ensure", "sweep", "run_grid", "default_runs_dir", "data_available", "THROUGHPUT"):
        assert getattr(grid, name) is getattr(runs, name)
    with pytest.raises(AttributeError):
        grid.nope


def test_smollm2_runs_only_where_the_pilot_found_signal():
    # the pilot (data/stored/pilot) found no correct GSM8K or SVAMP trace: those cells would
    # have no defined coefficient, so the default profile and the stored run leave them out
    smol = [c for c in grid.cells("default") + grid.cells("smollm2-arc") if c.model == "smollm2-135m-instruct"]
    assert {c.task for c in smol} == {"arc-easy", "arc-challenge"}
    assert all(c.settings.max_new_tokens >= 256 for c in smol)  # most ARC traces finish (pilot: at most 349 tokens)
    assert {c.settings for c in grid.cells("smollm2-arc")} == {grid.SMOL_ARC}
