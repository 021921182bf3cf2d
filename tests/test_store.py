"""The run store (siautil.store): atomic per-question files, resume, refusal of another configuration,
shards merged, kill -9; stores written before the protocol, and runs kept apart when loaded; damaged
files named, refused on load and sampled again; dead writers' temporary files removed; two writers of
one question leaving one whole file."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from siautil import config, estimators, grid, models, rollout, runs, store, testing
from siautil.config import RunConfig


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tiny):
    d = tmp_path_factory.mktemp("tiny")
    lm = tiny("llama", seed=0)
    model, tok = lm.model, lm.tokenizer
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture
def data(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    rows = [{"question": f"Sam has {i} pens and buys {i + 1}. How many?", "answer": f"#### {2 * i + 1}"}
            for i in range(8)]
    (tmp_path / "gsm8k" / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


SETTINGS = rollout.RolloutConfig(n_traces=2, n_continuations=3, stride=6, max_new_tokens=20)
#: one question per window, so resuming and sharding act question by question (windows: test_runs)
SINGLE = rollout.RolloutConfig(**{**SETTINGS.as_dict(), "window": 1})


def test_resume_skips_finished_questions(tmp_path, tiny_dir, data):
    out = tmp_path / "run"
    runs.sample(RunConfig(str(tiny_dir), "gsm8k", SINGLE, limit=3), out, data_dir=data, progress=False)
    files = sorted((out / "records").iterdir())
    mtimes = [f.stat().st_mtime_ns for f in files]
    runs.sample(RunConfig(str(tiny_dir), "gsm8k", SINGLE, limit=5), out, data_dir=data, progress=False)
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # not rewritten
    assert store.RunStore(out, {}).done() == {0, 1, 2, 3, 4}
    df = store.load_records(out)
    assert set(df["question_index"]) == {0, 1, 2, 3, 4}
    cfg = store.read_config(out)
    assert cfg["n_continuations"] == 3 and cfg["model"] == str(tiny_dir) and "torch" in cfg["versions"]
    # the estimators take the stored records directly
    assert len(estimators.estimate(df)) == len(df)


def test_other_configuration_is_refused(tmp_path, tiny_dir, data):
    out = tmp_path / "run"
    runs.sample(RunConfig(str(tiny_dir), "gsm8k", SETTINGS, limit=1), out, data_dir=data, progress=False)
    other = rollout.RolloutConfig(**{**SETTINGS.as_dict(), "temperature": 1.0})
    with pytest.raises(store.RunStoreError, match=r"different configuration:\n  temperature: 0.7 \(stored\) vs 1.0"):
        runs.sample(RunConfig(str(tiny_dir), "gsm8k", other, limit=1), out, data_dir=data, progress=False)
    assert store.RunStore(out, {}).done() == {0}  # finished work untouched


def test_shards_merge_to_the_unsharded_run(tmp_path, tiny_dir, data):
    whole = runs.sample(RunConfig(str(tiny_dir), "gsm8k", SINGLE, limit=4), tmp_path / "whole", data_dir=data,
                                  progress=False)
    parts = [runs.sample(RunConfig(str(tiny_dir), "gsm8k", SINGLE, limit=4), tmp_path / f"s{i}", data_dir=data,
                                   shard=f"{i}/2", progress=False) for i in range(2)]
    assert store.RunStore(parts[0], {}).done() == {0, 2}
    merged = store.merge(parts, tmp_path / "merged")
    pd.testing.assert_frame_equal(store.load_records(merged), store.load_records(whole))


def test_a_store_written_before_the_protocol_loads_and_says_so(tmp_path):
    path = tmp_path / "old"
    (path / store.RECORDS).mkdir(parents=True)
    old = dict(model="toy-sft", task="toy", stop_at_answer=True, n_continuations=2, temperature=1.4)
    (path / store.CONFIG).write_text(json.dumps(old))
    rows = [dict(model="toy-sft", dataset="toy", question_id="a", question_index=0, trace=0, t=t, T=8,
                 answers=["1", "2"], gold="1", correct=True) for t in (0, 4, 8)]
    pq.write_table(pa.Table.from_pylist(rows), path / store.RECORDS / "q000000.parquet")  # as protocol 1 wrote it
    with pytest.warns(UserWarning, match="protocol 1.*filled in.*without sampling"):
        recs = store.load_records(path)
    assert set(recs["protocol"]) == {1}
    assert np.isfinite(estimators.estimate(recs)["entropy"]).all()  # still readable
    with pytest.raises(estimators.RecordsError, match="protocol 1"):
        estimators.estimate(recs, checkpoints="before answer")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(estimators.RecordsError, match="protocol 1"):
            estimators.estimate(store.load_records(path), extraction="strict-match")
    # sampling into it is refused with the way to keep it and start afresh
    new = RunConfig("toy-sft", "toy", precision="fp32").stored("siautil/assets/toy/sft")
    with pytest.raises(store.RunStoreError, match="protocol 1.*stays readable.*mv .*protocol1"):
        store.RunStore.open(path, new)
    assert (path / store.RECORDS / "q000000.parquet").exists()


def test_bare_record_files_keep_their_runs_apart(tmp_path, tiny_store):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tiny_store("a")
    one = path / store.RECORDS / "q000000.parquet"
    # two unlabelled copies with the same file name in different folders are two runs
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        shutil.copy(one, tmp_path / d / "r.parquet")
    both = store.load_records([tmp_path / "x" / "r.parquet", tmp_path / "y" / "r.parquet"])
    assert both["run"].nunique() == 2 and set(both["protocol"]) == {config.PROTOCOL}
    # a file that already carries a run label keeps it
    table = pq.read_table(one)
    labelled = table.append_column("run", pa.array(["abc"] * table.num_rows)).append_column(
        "protocol", pa.array([2] * table.num_rows, pa.int64()))
    pq.write_table(labelled, tmp_path / "l.parquet")
    assert set(store.load_records(tmp_path / "l.parquet")["run"]) == {"abc"}


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(tmp_path, tiny_dir, data):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "siautil.cli", "rollout", "--model", str(tiny_dir), "--task", "gsm8k",
            "--data-dir", str(data), "--limit", "8", "--n-traces", "2", "--n-continuations", "3", "--stride", "6",
            "--max-new-tokens", "40", "--window", "2"]
    ref = tmp_path / "ref"
    subprocess.run(args + ["--out", str(ref)], check=True, env=env, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "records").exists() and len(list((out / "records").glob("q*.parquet"))) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list((out / "records").glob("q*.parquet")))
    assert done_before < 8, "the run finished before it could be killed; make it longer"
    subprocess.run(args + ["--out", str(out)], check=True, env=env, capture_output=True)
    pd.testing.assert_frame_equal(store.load_records(out), store.load_records(ref))


def test_a_store_of_an_earlier_protocol_is_kept_apart_with_the_command_that_moves_it(tmp_path):
    old = store.RunStore.open(tmp_path / "r", dict(model="m", task="toy", protocol=2, temperature=0.7))
    old.write(0, [testing.record(question_id="a")])
    with pytest.raises(store.RunStoreError, match=r"protocol 2; it stays readable.*mv .*r\.protocol2.*protocol 3"):
        store.RunStore.open(tmp_path / "r", dict(model="m", task="toy", protocol=3, temperature=0.7, window=8))
    assert old.done() == {0}


# ------------------------------------------------- damaged files, dead writers' files, racing writers

#: a toy cell of three windows of one question, small enough to sample in seconds
TOY = replace(grid.TOY, n_traces=2, n_continuations=3, stride=8, window=1)


def _toy_run(out, **kw):
    return runs.sample(RunConfig("toy-sft", "toy", TOY, limit=3), out, progress=False, **kw)


def _records(path):
    return store.load_records(path).drop(columns=["run"])


def test_a_truncated_file_is_named_refused_on_load_and_sampled_again_on_resume(tmp_path):
    ref = _records(_toy_run(tmp_path / "ref"))
    out = _toy_run(tmp_path / "cut")
    victim = out / store.RECORDS / "q000001.parquet"
    assert (out / store.RECORDS / "q000001.parquet.sha256").read_text().endswith("  q000001.parquet\n")
    victim.write_bytes(victim.read_bytes()[:100])  # a partial copy, a full disk
    kept = (out / store.RECORDS / "q000000.parquet").stat().st_mtime_ns
    with pytest.raises(store.RunStoreError, match=r"q000001\.parquet is damaged \(100 bytes, not readable as "
                                                  r"Parquet.*siautil rollout --model toy-sft --task toy --out"):
        store.load_records(out)
    assert store.RunStore(out, {}).done() == {0, 2} and set(store.RunStore(out, {}).damaged()) == {1}
    with pytest.warns(store.DamagedRecordWarning, match=r"q000001\.parquet is damaged.*sampled again"):
        _toy_run(out)
    assert (out / store.RECORDS / "q000000.parquet").stat().st_mtime_ns == kept  # sound files untouched
    pd.testing.assert_frame_equal(_records(out), ref)


def test_a_changed_file_fails_its_checksum_and_a_store_without_checksums_is_checked_by_reading(tmp_path):
    out = _toy_run(tmp_path / "r")
    victim = out / store.RECORDS / "q000002.parquet"
    original = victim.read_bytes()
    # one flipped byte inside the largest column chunk's page data (a flip in a page header or the
    # footer can leave a readable file: see the checksum's docstring), the first such byte from
    # three quarters into the chunk on
    meta = pq.ParquetFile(victim).metadata.row_group(0)
    chunk = max((meta.column(i) for i in range(meta.num_columns)), key=lambda c: c.total_compressed_size)
    end = (chunk.dictionary_page_offset or chunk.data_page_offset) + chunk.total_compressed_size
    for at in range(chunk.data_page_offset + (end - chunk.data_page_offset) * 3 // 4, end):
        data = bytearray(original)
        data[at] ^= 0xFF
        try:
            pq.read_table(pa.BufferReader(bytes(data)), page_checksum_verification=True)
        except (pa.ArrowException, OSError):
            break
    else:
        pytest.fail("no byte of the chunk's last quarter breaks a page checksum")
    victim.write_bytes(bytes(data))
    damaged = store.RunStore(out, {}).damaged()
    assert set(damaged) == {2} and "its checksum file says sha256" in damaged[2]
    # stores written before the checksums (data/stored) have none: sound files pass by a whole read
    for sidecar in (out / store.RECORDS).glob("*.sha256"):
        sidecar.unlink()
    assert store.RunStore(out, {}).done() == {0, 1}
    (out / store.RECORDS / "q000000.parquet").write_bytes(b"PAR1")
    assert set(store.RunStore(out, {}).damaged()) == {0, 2}


def test_a_grid_cell_names_the_grid_command_that_repairs_it(tmp_path):
    cell = RunConfig("toy-sft", "toy", TOY, limit=1)
    path = runs.ensure(cell, "default", tmp_path, progress=False)
    (path / store.RECORDS / "q000000.parquet").write_bytes(b"")
    with pytest.raises(store.RunStoreError, match=f"siautil grid --profile default --runs-dir {tmp_path} --no-book"):
        runs.records("default", [cell], runs_dir=tmp_path, run_missing=False)


def test_a_damaged_bare_file_and_a_damaged_shard_are_named(tmp_path):
    out = _toy_run(tmp_path / "s0", shard="0/2")
    one = out / store.RECORDS / "q000000.parquet"
    one.write_bytes(one.read_bytes()[:-10])
    with pytest.raises(store.RunStoreError, match=r"q000000\.parquet is damaged.*copy it again"):
        store.load_records(one)
    with pytest.raises(store.RunStoreError, match=r"s0/records/q000000\.parquet is damaged.*then merge"):
        store.merge([out], tmp_path / "merged")


def test_dead_writers_temporaries_are_removed_on_open_and_live_ones_kept(tmp_path):
    config = dict(model="m", task="toy", protocol=3)
    run = store.RunStore.open(tmp_path / "r", config)
    rows = [testing.record(question_id="a")]
    run.write(0, rows)
    records = tmp_path / "r" / store.RECORDS
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = [records / f".q000001.parquet.tmp-{dead.pid}",  # before #17: the bare pid
            records / f".q000001.parquet.tmp-{dead.pid}-{store.socket.gethostname()}-0123abcd",
            tmp_path / "r" / f".config.json.tmp-{dead.pid}"]
    live = records / f".q000002.parquet.tmp-{os.getpid()}-{store.socket.gethostname()}-89abcdef"
    elsewhere = records / ".q000003.parquet.tmp-1-another-host-0123abcd"
    old = records / ".q000004.parquet.tmp-1-another-host-fedcba98"
    for p in [*left, live, elsewhere, old]:
        p.write_bytes(b"half a file")
    os.utime(old, (time.time() - 2 * store.STALE_AFTER,) * 2)
    store.RunStore.open(tmp_path / "r", config)
    assert [p.exists() for p in left] == [False] * 3 and not old.exists()
    assert live.exists() and elsewhere.exists()  # a writer running now, here or on another host
    assert store.RunStore(tmp_path / "r", {}).done() == {0}


WRITER = """
import sys
from siautil import store, testing
run = store.RunStore(sys.argv[1], dict(model="m", task="toy", protocol=3))
tag = sys.argv[2]
for i in range(int(sys.argv[3])):
    run.write(0, [testing.record(question_id=tag, trace=k, t=i, answers=[tag] * 50) for k in range(200)])
"""


def test_two_writers_of_the_same_question_leave_one_whole_file(tmp_path):
    path = tmp_path / "r"
    store.RunStore.open(path, dict(model="m", task="toy", protocol=3))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, "40"], env=env) for tag in "ab"]
    while any(p.poll() is None for p in procs):  # a reader in between sees a whole file or none
        if (path / store.RECORDS / "q000000.parquet").exists():
            df = store.load_records(path)
            assert df["question_id"].nunique() == 1 and len(df) == 200
    assert [p.wait() for p in procs] == [0, 0]
    df = store.load_records(path)
    assert len(df) == 200 and df["question_id"].nunique() == 1 and (df["t"] == 39).all()
    assert store.RunStore(path, {}).damaged() == {}
    assert sorted(p.name for p in (path / store.RECORDS).iterdir()) == ["q000000.parquet", "q000000.parquet.sha256"]


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_a_store_at_an_fsspec_url_runs_resumes_merges_and_loads_like_a_local_one(tmp_path, scheme):
    import fsspec

    root = f"file://{tmp_path}/url" if scheme == "file" else f"memory://siautil-test-{os.getpid()}"
    ref = _records(_toy_run(tmp_path / "ref"))
    try:
        out = _toy_run(f"{root}/r")
        assert str(out) == f"{root}/r".removeprefix("file://")  # a local store is named by its path
        pd.testing.assert_frame_equal(_records(out), ref)
        assert store.read_config(out)["model"] == "toy-sft" and store.RunStore(out, {}).done() == {0, 1, 2}
        fs, inner = fsspec.core.url_to_fs(f"{root}/r/records/q000001.parquet")
        fs.pipe_file(inner, fs.cat_file(inner)[:100])
        with pytest.raises(store.RunStoreError, match=r"r/records/q000001\.parquet is damaged"):
            store.load_records(out)
        with pytest.warns(store.DamagedRecordWarning):
            _toy_run(out)
        shards = [_toy_run(f"{root}/s{i}", shard=f"{i}/2") for i in range(2)]
        pd.testing.assert_frame_equal(_records(store.merge(shards, f"{root}/merged")), ref)
        pd.testing.assert_frame_equal(_records(out), ref)
    finally:
        if scheme == "memory":
            fsspec.filesystem("memory").rm(root.split("://")[1], recursive=True)


def test_a_run_resumed_with_another_thread_count_says_its_records_agree_only_in_distribution(tmp_path):
    out = _toy_run(tmp_path / "run")
    config = store.read_config(out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.RunStore.open(out, config)  # the same machine: nothing to say
    other = {**config, "machine": {**config["machine"], "threads": config["machine"]["threads"] + 1}}
    n = config["machine"]["threads"]
    with pytest.warns(store.MachineChangedWarning, match=f"threads {n} -> {n + 1}.*in distribution, not bit for bit"):
        store.RunStore.open(out, other)


# ------------------------------------------------- one configuration at a time, shared work, faults named

def test_a_writer_with_other_settings_is_refused_while_the_first_holds_even_an_empty_store(tmp_path):
    first = store.RunStore.open(tmp_path / "r", dict(model="m", task="toy", protocol=3, seed=0))
    with pytest.raises(store.RunStoreError, match=r"being written now by another writer with other settings:"
                                                  r"\n  seed: 0 \(stored\) vs 1 \(now\)"):
        store.RunStore.open(tmp_path / "r", dict(model="m", task="toy", protocol=3, seed=1))
    with store.RunStore.open(tmp_path / "r", dict(model="m", task="toy", protocol=3, seed=0)):
        pass  # the same settings join
    first.close()
    # no writer and no records: the store takes the new settings, as one whose run failed at once
    with store.RunStore.open(tmp_path / "r", dict(model="m", task="toy", protocol=3, seed=1)):
        assert store.read_config(tmp_path / "r")["seed"] == 1


def test_every_write_checks_the_directory_still_holds_its_settings(tmp_path):
    rows = [testing.record(question_id="a")]
    with store.RunStore.open(tmp_path / "r", dict(model="m", task="toy", protocol=3, seed=0)) as run:
        run.write(0, rows)
        (tmp_path / "r" / store.CONFIG).write_text(json.dumps(dict(model="m", task="toy", protocol=3, seed=7)))
        with pytest.raises(store.RunStoreError, match=r"config\.json no longer holds this run's settings \(seed: 7 "
                                                      r"\(stored\) vs 0 \(now\)\)"):
            run.write(1, rows)
    assert store.RunStore(tmp_path / "r", {}).done() == {0}


def _rollout_command(out, seed):
    return [sys.executable, "-m", "siautil.cli", "rollout", "--model", "toy-sft", "--task", "toy", "--out", str(out),
            "--limit", "6", "--window", "1", "--n-traces", "2", "--n-continuations", "3", "--stride", "8",
            "--max-new-tokens", "52", "--temperature", "2.0", "--top-p", "1.0", "--seed", str(seed)]


@pytest.mark.slow
def test_two_writers_with_different_settings_one_is_refused_and_the_records_are_the_config_s(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "both"
    procs = [subprocess.Popen(_rollout_command(out, seed), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for seed in (0, 1)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert refused.startswith("error: ") and "seed: " in refused and "Traceback" not in refused
    seed = store.read_config(out)["seed"]
    # the records are those of the settings config.json names, every one: sampled alone, they are the same
    alone = tmp_path / "alone"
    subprocess.run(_rollout_command(alone, seed), env=env, check=True, capture_output=True)
    pd.testing.assert_frame_equal(_records(out), _records(alone))
    assert set(store.load_records(out)["run"]) == {store.run_id(store.read_config(out))}


def test_two_writers_with_the_same_settings_share_the_work_and_sample_nothing_twice(tmp_path, monkeypatch):
    import threading

    writes, lock = [], threading.Lock()
    real = store.RunStore._write_bytes

    def counted(self, index, data):
        with lock:
            writes.append((threading.current_thread().name, index))
        return real(self, index, data)

    monkeypatch.setattr(store.RunStore, "_write_bytes", counted)
    settings = replace(TOY, window=1)
    errors = []

    def writer(loaded):
        try:
            runs.sample(RunConfig("toy-sft", "toy", settings, limit=8), tmp_path / "shared", progress=False,
                                  loaded=loaded)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    # loaded here, one after the other: transformers' loading is not thread-safe
    models_ = [models.load("toy-sft") for _ in range(2)]
    threads = [threading.Thread(target=writer, args=(m,), name=f"writer{k}") for k, m in enumerate(models_)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    indices = [i for _, i in writes]
    assert sorted(indices) == list(range(8)), f"some question was sampled twice or not at all: {writes}"
    assert store.RunStore(tmp_path / "shared", {}).done() == set(range(8))


def test_out_naming_a_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    from siautil import cli

    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert cli.main(["rollout", "--model", "toy-sft", "--task", "toy", "--out", str(target), "--limit", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(target) in err and "give a directory" in err
    assert target.read_text() == "mine"


@pytest.mark.parametrize("code, advice", [(28, "the disk is full"), (13, "no permission to write there")])
def test_a_write_that_fails_names_the_file_leaves_no_temporary_and_the_rerun_resumes(tmp_path, monkeypatch, capsys,
                                                                                     code, advice):
    import builtins
    import errno

    from siautil import cli

    assert code in (errno.ENOSPC, errno.EACCES)
    real_open, budget = builtins.open, {"writes": 2}

    class Failing:
        """A file that takes part of what is written, then fails as the disk or the system would."""

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(code, os.strerror(code))

        def __getattr__(self, name):
            return getattr(self.f, name)

    def open_(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        if "w" in mode and ".parquet.tmp-" in str(path):
            budget["writes"] -= 1
            if budget["writes"] < 0:
                return Failing(f)
        return f

    monkeypatch.setattr(store, "open", open_, raising=False)
    out = tmp_path / "run"
    argv = ["rollout", "--model", "toy-sft", "--task", "toy", "--out", str(out), "--limit", "3", "--window", "1",
            "--n-traces", "2", "--n-continuations", "2", "--stride", "16", "--max-new-tokens", "52"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    line = err.rstrip().splitlines()[-1]  # the progress bars before it are the run's
    assert "Traceback" not in err and line.startswith("error: cannot write ") and advice in line
    err = line
    failed = int(re.search(r"records/q(\d+)\.parquet: ", err)[1])
    assert failed >= 1 and "run the same command again" in err
    assert not list(out.rglob("*.tmp-*")), "a temporary file was left behind"
    assert store.RunStore(out, {}).done() == set(range(failed))  # the questions written before are kept
    monkeypatch.setattr(store, "open", real_open, raising=False)
    assert cli.main(argv) == 0
    assert store.RunStore(out, {}).done() == {0, 1, 2}


def test_a_truncated_config_is_named_when_loading(tmp_path):
    out = _toy_run(tmp_path / "run")
    config = out / store.CONFIG
    config.write_bytes(config.read_bytes()[:40])
    with pytest.raises(store.RunStoreError, match=rf"{config} is not valid JSON \(.*40 bytes: cut short\?\)"):
        store.load_records(out)
