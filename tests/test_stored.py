"""The runs committed under data/stored (siautil.runs.stored): complete, readable, and the
larger SmolLM2 run sampled again bit for bit where the machine, precision and threads match."""

import pandas as pd
import pytest
import torch

from siautil import grid, models, paths, runs, store

PROFILE = "smollm2-arc"


def _stored(profile: str) -> pd.DataFrame:
    records = runs.stored(profile)
    if records is None:
        pytest.skip(f"this checkout has no data/stored/{profile}")
    return records


@pytest.mark.parametrize("profile", ["pilot", PROFILE, "toy-regimes"])
def test_a_stored_run_holds_every_question_and_trace_of_its_cells(profile):
    records = _stored(profile)
    for cell in grid.cells(profile):
        got = records[(records["model"] == cell.model) & (records["dataset"] == cell.task)
                      & (records["shuffle"] == cell.sampling.shuffle)]
        assert got["question_index"].nunique() == cell.limit, cell.name
        per_question = got.drop_duplicates(["question_index", "trace"]).groupby("question_index").size()
        assert (per_question == cell.sampling.n_traces).all(), cell.name
        config = store.read_config(paths.run_dir(cell, profile, paths.stored_dir()))
        assert {k: config[k] for k in ("n_traces", "n_continuations", "stride", "max_new_tokens")} == \
            {k: getattr(cell.sampling, k) for k in ("n_traces", "n_continuations", "stride", "max_new_tokens")}


def test_outside_a_checkout_there_is_no_stored_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.stored_dir() is None and runs.stored(PROFILE) is None


def _why_not_replayable(config: dict) -> str | None:
    """Why this process cannot reproduce the stored bits (None when it can)."""
    here, there = runs.machine(), config.get("machine", {})
    if models.default_device() != "cpu":
        return "the stored run was sampled on a CPU"
    # a run stored before the CPU model was recorded is compared on what it recorded
    same_cpu = all(there[k] == here[k] for k in ("cpu", "cpu_model", "native_bf16") if k in there)
    if not same_cpu or (config["precision"] == "bf16" and not here["native_bf16"]):
        return f"it was sampled on {there} in {config['precision']}; this machine is {here}"
    if there.get("threads") != torch.get_num_threads():
        return f"it was sampled with {there.get('threads')} threads, this process has {torch.get_num_threads()}"
    mine = store.package_versions()
    changed = [k for k in ("torch", "transformers") if config["versions"].get(k) != mine.get(k)]
    return f"{', '.join(changed)} differ from the stored run's" if changed else None


@pytest.mark.parametrize("profile", [PROFILE, "toy-regimes"])
def test_a_window_of_the_stored_run_samples_again_identically(tmp_path, profile):
    _stored(profile)
    # the first cell this machine can replay (a profile's cells may have been sampled on several)
    reasons = {}
    for cell in grid.cells(profile):
        path = paths.run_dir(cell, profile, paths.stored_dir())
        reasons[cell.name] = _why_not_replayable(store.read_config(path))
        if reasons[cell.name] is None:
            break
    else:
        pytest.skip(f"bit-for-bit replay needs the same machine, precision and threads: {next(iter(reasons.values()))}")
    stored = store.load_records(path)
    # the cheapest window (fewest generated tokens) keeps the test short
    traces = stored.drop_duplicates(["question_index", "trace"]).groupby("question_index")["T"].sum()
    tokens = stored["continuation_tokens"].map(sum).groupby(stored["question_index"]).sum() + traces
    windows = runs.windows(cell.limit, cell.sampling.window)
    j = min(range(len(windows)), key=lambda k: tokens[list(windows[k])].sum())
    again = runs.sample(cell, tmp_path / "again", shard=f"{j}/{len(windows)}", progress=False)
    got = store.load_records(again)
    expected = stored[stored["question_index"].isin(list(windows[j]))].reset_index(drop=True)
    assert sorted(got["question_index"].unique()) == list(windows[j])
    pd.testing.assert_frame_equal(got.sort_values(["question_index", "trace", "t"]).reset_index(drop=True),
                                  expected.sort_values(["question_index", "trace", "t"]).reset_index(drop=True))


def test_the_pilot_found_signal_only_on_arc():
    """What chose the default profile's dataset (grid.cells("default")): no GSM8K or SVAMP
    trace of the pilot is right, some ARC traces are."""
    from siautil import diagnostics

    accuracy = diagnostics.trace_summary(_stored("pilot")).set_index("dataset")["accuracy"]
    assert accuracy["gsm8k"] == 0 and accuracy["svamp"] == 0
    assert accuracy["arc-easy"] > 0 and accuracy["arc-challenge"] > 0


def test_a_chapter_reads_the_stored_run_first_and_samples_only_without_one(tmp_path, monkeypatch):
    stored = _stored("pilot")  # skips first where there is none (published would sample it)
    pd.testing.assert_frame_equal(runs.published("pilot"), stored)
    from test_runs import CELL

    monkeypatch.setattr(paths, "stored_dir", lambda: tmp_path / "no-stored-runs")
    sampled = runs.published("default", [CELL], runs_dir=tmp_path, progress=False)
    assert (paths.run_dir(CELL, "default", tmp_path) / store.CONFIG).exists() and len(sampled)
