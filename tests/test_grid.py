"""Profiles and cell selection: the grid as data (running it is tests/test_runs.py)."""

import subprocess
import sys

import pytest

from siautil import grid, memory, models
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
    with pytest.raises(models.ModelError, match="valid precisions: fp32, bf16, fp16, nf4"):
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


def test_the_cost_says_it_assumes_a_throughput_where_none_was_measured(tmp_path):
    est = grid.cost("paper", device="cuda", backend="vllm", measured=tmp_path / "none.json")
    assert est.attrs["throughput"].startswith("assumed 20,000 tok/s for vllm on cuda: none measured")
    assert est["hours"].iloc[-1] == pytest.approx(est["tokens"].iloc[-1] / grid.THROUGHPUT["cuda"] / 3600)


def test_the_cost_uses_the_measured_throughput_of_the_backend_scaled_by_parameters(tmp_path):
    path = tmp_path / "throughput.json"
    common = dict(device="cuda", model="Qwen2.5-3B-shaped", params=3.09e9, precision="bf16", threads=1,
                  command="benchmarks/gpu_check.py")
    grid.record_throughput(dict(common, backend="engine", hardware="GPU A", tokens_per_s=5000.0, date="2026-01-01"), path)
    grid.record_throughput(dict(common, backend="vllm", hardware="GPU A", tokens_per_s=30000.0, date="2026-01-01"), path)
    grid.record_throughput(dict(common, backend="vllm", hardware="GPU B", tokens_per_s=10000.0, date="2026-02-01"), path)
    est = grid.cost("paper", device="cuda", backend="vllm", measured=path)
    assert est.attrs["throughput"].startswith("measured 10,000 tok/s for vllm on GPU B, not this hardware")
    by_cell = dict(zip(est["cell"], est["hours"] * 3600 / est["tokens"]))  # seconds per token
    qwen = next(c.name for c in grid.cells("paper") if c.model == "qwen2.5-3b")
    deepseek = next(c.name for c in grid.cells("paper") if c.model == "deepseek-llm-7b-chat")
    assert 1 / by_cell[qwen] == pytest.approx(10000.0 * 3.09e9 / models.REGISTRY["qwen2.5-3b"].shape.params)
    assert by_cell[deepseek] / by_cell[qwen] == pytest.approx(6.91e9 / 3.09e9)
    engine = grid.cost("paper", device="cuda", backend="engine", measured=path)
    assert engine.attrs["throughput"].startswith("measured 5,000 tok/s for engine")
    assert engine["hours"].iloc[-1] == pytest.approx(est["hours"].iloc[-1] * 2)
    assert grid.throughput("cpu", "vllm", path)[0] is None  # a GPU's rate is not a CPU's


def test_the_memory_table_fits_each_gpu_and_shrinks_the_window_only_where_rows_do_not_fit():
    table = grid.memory_table("paper", gpu_gb=(80, 40))
    assert set(table["model"]) == {c.model for c in grid.cells("paper")}
    m = grid.PAPER.n_continuations
    for row in table.itertuples():
        assert row.total_gb <= row.gpu_gb
        assert row.weights_gb + row.trace_caches_gb + row.slot_buffers_gb <= row.total_gb
        assert (row.window == grid.PAPER.window) == (row.rows >= m) or row.window < grid.PAPER.window
    deepseek = table.set_index(["model", "gpu_gb"]).loc[("deepseek-llm-7b-chat", 40)]
    assert 0 < deepseek.window < grid.PAPER.window and deepseek.rows >= m  # full multi-head attention
    shape = models.REGISTRY["deepseek-llm-7b-chat"].shape
    wider = memory.kept_tokens(deepseek.window + 1, grid.PAPER.n_traces, 200, grid.PAPER.max_new_tokens)
    assert memory.rows_that_fit(shape, "bf16", 40 * memory.GB, grid.PAPER.max_new_tokens, wider, 512,
                                weights_loaded=False) < m
    qwen = table.set_index(["model", "gpu_gb"]).loc[("qwen2.5-3b", 80)]
    assert qwen.window == grid.PAPER.window and qwen.rows == grid.PAPER.max_batch_rows  # two KV heads
