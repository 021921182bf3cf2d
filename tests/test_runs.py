"""Running the grid's cells into run stores and reading them back (siautil.runs): cost, chapters that
sample a missing cell, sweeps, settings refused before any sampling, shards."""

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from siautil import config, grid, memory, models, paths, rollout, runs, store, tasks
from siautil.config import RunConfig


#: a toy cell small enough to sample in a second
CELL = RunConfig("toy-sft", "toy", replace(grid.TOY, n_traces=1, n_continuations=2, stride=16), limit=2)


def test_cost_has_a_total_and_takes_sizes_from_the_tasks():
    est = grid.cost("paper", device="cuda")
    assert est["cell"].iloc[-1] == "total" and est["tokens"].iloc[-1] == est["tokens"].iloc[:-1].sum()
    assert est["hours"].iloc[-1] > 1
    sizes = dict(zip(est["cell"], est["questions"]))
    for cell in grid.cells("paper"):
        assert sizes[cell.name] == tasks.get(cell.task).size
    assert grid.cost("default", device="cpu")["questions"].iloc[:-1].tolist() == [c.limit for c in grid.cells("default")]


def test_cost_counts_each_cell_s_own_budget_and_context(monkeypatch):
    est = grid.cost("default", device="cpu").iloc[:-1]
    assert (est["tokens"] > 0).all() and (est["hours"] > 0).all()
    for cell, row in zip(grid.cells("default"), est.itertuples()):
        assert row.trace_tokens <= cell.sampling.max_new_tokens
    # a budget past the toy model's 256-token context: never assumed to write more than it can hold
    monkeypatch.setattr(grid, "cells", lambda profile: [replace(CELL, sampling=replace(CELL.sampling, max_new_tokens=600))])
    row = grid.cost("default", device="cpu").iloc[0]
    assert row["trace_tokens"] <= 256 and row["tokens"] > 0


def test_the_default_budget_fits_the_model_s_context():
    assert config.default_budget("toy-sft") == 128  # half its 256 tokens
    assert config.default_budget("gpt2-not-here/none") == rollout.RolloutConfig().max_new_tokens  # context unknown


def test_a_chapter_samples_a_missing_cell_visibly(tmp_path, capsys):
    df = runs.records("default", [CELL], runs_dir=tmp_path)
    out = capsys.readouterr()
    assert "sampling toy-sft__toy now: 2 of 2 questions" in out.out and "2/2" in out.err  # the line and the bar
    assert sorted(df["question_index"].unique()) == [0, 1] and (df["shuffle"] == "none").all()
    assert (paths.run_dir(CELL, "default", tmp_path) / store.CONFIG).exists()
    again = runs.records("default", [CELL], runs_dir=tmp_path)  # all there: nothing sampled, nothing said
    assert "sampling" not in capsys.readouterr().out and len(again) == len(df)
    fewer = runs.records("default", [replace(CELL, limit=1)], runs_dir=tmp_path)  # the store holds more
    assert set(fewer["question_index"]) == {0}


def test_records_without_sampling_name_the_command(tmp_path):
    with pytest.raises(store.RunStoreError, match="siautil grid --profile default"):
        runs.records("default", [CELL], runs_dir=tmp_path, run_missing=False)


def test_a_cell_without_its_files_is_skipped_with_a_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(tasks.DATA_ENV, str(tmp_path / "nowhere"))
    cell = RunConfig("smollm2-135m-instruct", "svamp", grid.SMOL, limit=1)
    assert not runs.data_available(cell) and runs.data_available(CELL)
    assert runs.ensure(cell, "default", tmp_path) is None
    assert "skipped smollm2-135m-instruct__svamp: benchmark files not available" in capsys.readouterr().out


def test_sweep_runs_each_setting_once(tmp_path, capsys):
    swept = runs.sweep(CELL, runs_dir=tmp_path, temperature=(1.0, 2.0))
    assert sorted(swept["temperature"].unique()) == [1.0, 2.0]
    assert "sampling toy-sft__toy temperature=2.0 now: 2 of 2 questions" in capsys.readouterr().out
    runs.sweep(CELL, runs_dir=tmp_path, temperature=(1.0, 2.0))  # reused once sampled
    assert "sampling" not in capsys.readouterr().out
    assert (tmp_path / "sweep" / CELL.name / "temperature=1.0" / store.CONFIG).exists()


def test_runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SIAUTIL_RUNS", str(tmp_path))
    assert paths.default_runs_dir() == tmp_path
    assert paths.run_dir(CELL.shuffled(), "default") == tmp_path / "default" / "toy-sft__toy__shuffled"
    monkeypatch.delenv("SIAUTIL_RUNS")
    checkout = paths.checkout()
    assert paths.default_runs_dir() == checkout / "runs"  # beside the shipped data/, not in it
    import subprocess

    ignored = subprocess.run(["git", "check-ignore", "-q", str(checkout / "runs" / "default")], cwd=checkout)
    assert ignored.returncode == 0, "runs/ must be ignored by git"


def test_settings_the_model_cannot_take_fail_first_and_the_empty_store_takes_new_ones(tmp_path):
    out = tmp_path / "run"
    too_long = rollout.RolloutConfig(n_traces=1, n_continuations=2, stride=8, max_new_tokens=600)
    with pytest.raises(ValueError, match="exceeds the model's context of 256 tokens"):
        runs.sample(RunConfig("toy-sft", "toy", too_long, limit=1), out, progress=False)
    assert store.RunStore(out, {}).done() == set()
    fits = rollout.RolloutConfig(**{**too_long.as_dict(), "max_new_tokens": 52})
    runs.sample(RunConfig("toy-sft", "toy", fits, limit=1), out, progress=False)  # not refused: nothing was lost
    assert store.read_config(out)["max_new_tokens"] == 52 and store.RunStore(out, {}).done() == {0}


def test_bad_shard():
    with pytest.raises(ValueError, match="i/n"):
        runs.parse_shard("3")
    with pytest.raises(ValueError, match="0 <= i < n"):
        runs.parse_shard("2/2")


#: three windows of two toy questions (the last one short)
WINDOWED = RunConfig("toy-sft", "toy", replace(grid.TOY, n_traces=2, n_continuations=3, stride=8, window=2), limit=5)


def _records(path):
    return store.load_records(path).drop(columns=["run"])


def test_windows_split_the_questions_in_order():
    assert runs.windows(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert runs.windows(0, 3) == [] and runs.windows(3, 8) == [range(0, 3)]


def test_sharded_and_resumed_runs_equal_a_whole_run(tmp_path):
    import pandas as pd

    def run(out, **kw):
        return runs.sample(WINDOWED, tmp_path / out, progress=False, **kw)

    whole = _records(run("whole"))
    shards = [run(f"s{i}", shard=f"{i}/2") for i in range(2)]
    assert store.RunStore(shards[0], {}).done() == {0, 1, 4}  # windows 0 and 2
    merged = store.merge(shards, tmp_path / "merged")
    pd.testing.assert_frame_equal(_records(merged), whole)
    # a run cut short inside a window: that window is sampled again whole, the others kept
    part = run("part")
    (part / store.RECORDS / "q000003.parquet").unlink()
    kept = (part / store.RECORDS / "q000000.parquet").stat().st_mtime_ns
    redone = (part / store.RECORDS / "q000002.parquet").stat().st_mtime_ns
    run("part")
    assert (part / store.RECORDS / "q000000.parquet").stat().st_mtime_ns == kept  # another window
    assert (part / store.RECORDS / "q000002.parquet").stat().st_mtime_ns != redone  # q3's window, whole
    pd.testing.assert_frame_equal(_records(part), whole)


def test_records_name_their_precision_and_weights_and_the_summary_counts_them(tmp_path):
    df = runs.records("default", [CELL], runs_dir=tmp_path, progress=False)
    assert set(df["precision"]) == {"fp32"} and df["weights"].iloc[0].startswith("siautil/assets/toy/sft")
    s = runs.summary(df)
    assert s[["model", "questions", "traces", "precision"]].values.tolist() == [["toy-sft", 2, 2, "fp32"]]
    traces = df.drop_duplicates(["question_id", "trace"])
    assert s["accuracy"].item() == traces["correct"].mean()


# ---------------------------------------------------------------- GPU memory, faked on the CPU


class FakeEngine:
    """What runs.fit_rows and runs._with_memory read of an engine: its settings, device and
    model, and a copy at other rows."""

    def __init__(self, loaded, rows, window=8):
        self.loaded = loaded
        self.config = rollout.RolloutConfig(n_traces=4, n_continuations=4, stride=16, max_new_tokens=600,
                                            window=window, max_batch_rows=rows)
        self.runner = SimpleNamespace(device=torch.device("cuda"))

    def with_rows(self, rows):
        return FakeEngine(self.loaded, rows, self.config.window)

    def slot_limit(self, prompts):
        return self.config.max_new_tokens  # unshuffled: a slot holds a generation


def test_rows_are_cut_to_what_fits_in_free_gpu_memory_and_the_run_says_so(monkeypatch, capsys):
    # Llama-3.2-3B's shape, weights loaded (so not free), 8 questions of 4 traces in flight
    shape = models.REGISTRY["llama-3.2-3b"].shape
    loaded = SimpleNamespace(name="llama-3.2-3b", precision="bf16", model=SimpleNamespace(config=None))
    monkeypatch.setattr(memory.Shape, "of", classmethod(lambda cls, config: shape))
    total = 80 * memory.GB
    per_row = 600 * shape.kv_bytes_per_token("bf16")
    fixed = memory.footprint(shape, "bf16", 0, 600, memory.kept_tokens(8, 4, 100, 600), total)
    free = fixed.traces + fixed.reserve + 200.5 * per_row
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
    fitted = runs.fit_rows(FakeEngine(loaded, 512), [[0] * 100, [0] * 40])
    assert fitted.config.max_batch_rows == 200
    assert "200 decoding rows fit in the" in capsys.readouterr().out
    assert runs.fit_rows(e := FakeEngine(loaded, 128), [[0] * 100]) is e  # asked for fewer: kept
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (fixed.traces + fixed.reserve, total))
    with pytest.raises(runs.RunError, match="not one decoding row of 600 tokens fits.*lower --window or --max-new-tokens"):
        runs.fit_rows(FakeEngine(loaded, 512), [[0] * 100, [0] * 40])


def test_out_of_memory_splits_the_window_first_then_halves_the_rows(monkeypatch):
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    bar = SimpleNamespace(write=lambda line: said.append(line))
    said, sampled = [], []

    def sample_window(engine, part, fits):
        if not fits(engine, part):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        sampled.append((list(part), engine.config.max_batch_rows))

    # more than two questions in flight never fit: the window is split, the rows kept
    engine = runs._with_memory(FakeEngine(None, 64), range(8), lambda e, p: sample_window(e, p, lambda e, p: len(p) <= 2), bar)
    assert sampled == [([0, 1], 64), ([2, 3], 64), ([4, 5], 64), ([6, 7], 64)] and engine.config.max_batch_rows == 64
    assert said[0] == "CUDA out of memory: questions 0-7 again, 4 and 4 at a time"
    # more than 16 rows never fit: one question at a time, then the rows halved, kept for the rest
    sampled.clear()
    engine = runs._with_memory(FakeEngine(None, 64), range(2), lambda e, p: sample_window(
        e, p, lambda e, p: len(p) == 1 and e.config.max_batch_rows <= 16), bar)
    assert sampled == [([0], 16), ([1], 16)] and engine.config.max_batch_rows == 16
    # rows down to one question's continuations, still out of memory: the error is the run's
    with pytest.raises(torch.cuda.OutOfMemoryError):
        runs._with_memory(FakeEngine(None, 64), range(2), lambda e, p: sample_window(e, p, lambda e, p: False), bar)


def test_each_question_records_the_rows_and_window_it_was_decoded_with(tmp_path):
    path = runs.sample(replace(CELL, sampling=replace(CELL.sampling, max_batch_rows=8, window=2)), tmp_path / "run",
                       progress=False)
    run = store.RunStore(path, store.read_config(path))
    assert run.decoding(0) == run.decoding(1) == {"backend": "engine", "max_batch_rows": 8, "window": 2}


def test_a_run_of_one_backend_is_read_and_resumed_by_the_other(tmp_path):
    path = runs.sample(CELL, tmp_path / "run", progress=False)
    engine = RunConfig(**{**CELL.__dict__, "backend": "engine"}).resolved("cpu").stored("w")
    vllm = RunConfig(**{**CELL.__dict__, "backend": "vllm"}).resolved("cpu").stored("w")
    assert store.run_id(engine) == store.run_id(vllm)  # one experiment, equal in distribution
    with store.RunStore.open(path, {**store.read_config(path), "backend": "vllm"}) as run:
        assert run.done() == {0, 1}


def test_after_out_of_memory_the_questions_already_written_are_not_sampled_again(tmp_path, monkeypatch):
    from tqdm import tqdm

    from siautil import testing

    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    asked = [tasks.Question(f"q{k}", "1 + 1?", "2") for k in range(4)]
    calls = []

    class Engine(FakeEngine):
        stats = {"generated_tokens": 0}

        def run_window(self, pairs):
            calls.append([k for k, _ in pairs])
            for n, (k, _) in enumerate(pairs):
                if n == 1 and len(pairs) > 2:  # the whole window does not fit: out of memory mid-way
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory")
                yield k, [testing.record(question_index=k, question_id=f"q{k}")]

        def with_rows(self, rows):
            return Engine(self.loaded, rows, self.config.window)

    with store.RunStore.open(tmp_path / "run", CELL.resolved("cpu").stored("w")) as run:
        runs._sample_windows(run, Engine(None, 64, window=4), asked, [range(4)], tqdm(disable=True))
        assert calls == [[0, 1, 2, 3], [1], [2, 3]] and run.done() == {0, 1, 2, 3}
        assert run.decoding(0)["window"] == 4 and run.decoding(1)["window"] == 1
