"""Profiles and cell selection: the grid as data (running it is tests/test_runs.py)."""

import subprocess
import sys

import pytest

from siautil import grid, models
from siautil.config import RunConfig


def test_profiles():
    default = grid.cells("default")
    assert {c.model for c in default} >= {"toy-base", "toy-sft", "toy-rl", "smollm2-135m-instruct"}
    assert {c.sampling.shuffle for c in default} == {"none", "tokens", "steps"}
    cells = grid.cells("paper")
    assert len([c for c in cells if c.sampling.shuffle == "none"]) == 33
    assert {c.name for c in cells if c.sampling.shuffle == "steps"} == \
        {f"{m}__gsm8k__shuffled-steps" for m in grid.PAPER_SHUFFLE}
    assert all(c.precision == "bf16" and c.sampling.max_new_tokens == 600 for c in cells)
    assert all(c.precision == "nf4" for c in grid.cells("paper-nf4"))
    with pytest.raises(ValueError, match="profiles: default, paper, paper-nf4, pilot, smollm2-arc, toy-regimes"):
        grid.cells("nope")


def test_every_profile_follows_the_protocol_with_one_chain():
    for profile in grid.PROFILES:
        cells = grid.cells(profile)
        assert all(c.sampling.stop == "eos" and c.sampling.extraction == "strict-match" for c in cells)
        assert all(c.sampling.top_k == 0 and c.sampling.repetition_penalty == 1.0 for c in cells)
        # one chain per profile, except the toy cells, which sample at grid.TOY in every profile
        chains = {c.sampling.chain() for c in cells if c.task != "toy"}
        assert len(chains) == (1 if any(c.task != "toy" for c in cells) else 0), (profile, chains)
        assert {c.sampling.chain() for c in cells if c.task == "toy"} <= {grid.TOY.chain()}


def test_select_one_model():
    (cell,) = grid.select("paper", model="Qwen/Qwen2.5-3B-Instruct", dataset="gsm8k", precision="nf4")
    assert cell.precision == "nf4" and cell.needs_files and cell.name == "Qwen/Qwen2.5-3B-Instruct__gsm8k"
    with pytest.raises(models.ModelError, match="valid precisions: fp32, bf16, nf4"):
        RunConfig("m", "gsm8k", grid.PAPER, precision="int3")
    steps = grid.select("default", shuffle="steps")
    assert steps and all(c.sampling.shuffle == "steps" and c.name.endswith("__shuffled-steps") for c in steps)
    assert len(grid.select("default", shuffle=None)) == len(grid.cells("default"))
    assert [c.sampling.shuffle for c in grid.select("paper", model="m", dataset="svamp", shuffle=None)] == \
        ["none", "tokens", "steps"]


def test_whether_a_cell_reads_files_is_its_tasks():
    assert all(c.needs_files for c in grid.cells("paper") + grid.cells("pilot") + grid.cells("smollm2-arc"))
    default = {c.task: c.needs_files for c in grid.cells("default")}
    assert default == {"toy": False, "arc-easy": True}


def test_the_grid_is_data():
    # importing the grid does not import the run store machinery
    code = "import sys, siautil.grid; assert not {'siautil.runs', 'siautil.store'} & set(sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    with pytest.raises(AttributeError):
        grid.run_dir  # where a run lives is siautil.paths.run_dir, one spelling


def test_smollm2_runs_only_where_the_pilot_found_signal():
    # the pilot (data/stored/pilot) found no correct GSM8K or SVAMP trace: those cells would
    # have no defined coefficient, so the default profile and the stored run leave them out
    smol = [c for c in grid.cells("default") + grid.cells("smollm2-arc") if c.model == "smollm2-135m-instruct"]
    assert {c.task for c in smol} == {"arc-easy", "arc-challenge"}
    assert all(c.sampling.max_new_tokens >= 256 for c in smol)  # most ARC traces finish (pilot: at most 349 tokens)
    assert {c.sampling for c in grid.cells("smollm2-arc")} == {grid.SMOL_ARC}
