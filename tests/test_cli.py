"""The command line: flags derived from the settings, one exit-code rule for errors."""

import dataclasses
import subprocess
import sys

import pytest

from siautil import cli, errors, rollout, runs, store


def _settings(*flags):
    args = cli.build_parser().parse_args(["rollout", "--model", "m", "--task", "toy", "--out", "o", *flags])
    values = {name: getattr(args, name) for name in cli._setting_names()}
    if values["max_new_tokens"] is None:  # the model's own default (runs.default_budget)
        values["max_new_tokens"] = rollout.RolloutConfig().max_new_tokens
    return rollout.RolloutConfig(**values)


def test_every_setting_has_a_flag_with_its_default():
    names = {f.name for f in dataclasses.fields(rollout.RolloutConfig)}
    assert set(cli._setting_names()) == names
    assert _settings() == rollout.RolloutConfig()
    assert set(cli.FLAG_DEFAULTS) <= names
    assert set(cli.SETTING_HELP) == names  # every flag says what it does


def test_flags_and_none():
    s = _settings("--n-traces", "2", "--n-continuations", "3", "--shuffle", "steps", "--top-k", "none", "--min-p", "0.1",
                  "--stop", "answer", "--max-new-tokens", "40", "--temperature", "1.5")
    assert (s.n_traces, s.n_continuations, s.shuffle, s.top_k, s.min_p) == (2, 3, "steps", 0, 0.1)
    assert (s.stop, s.max_new_tokens, s.temperature) == ("answer", 40, 1.5)
    s = _settings("--n-traces", "5", "--shuffle", "none", "--top-k", "20", "--min-p", "none")
    assert (s.n_traces, s.shuffle, s.top_k, s.min_p) == (5, "none", 20, None)
    for gone in ("--traces", "--continuations", "--quantize"):  # one spelling per setting
        with pytest.raises(SystemExit):
            _settings(gone, "2")


def test_bad_flags_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        _settings("--stop", "never")
    assert e.value.code == cli.ERROR_EXIT == 2
    with pytest.raises(SystemExit):
        _settings("--top-k", "many")


def test_errors_print_one_line_and_exit_2(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert cli.main(["rollout", "--model", "nope", "--task", "toy", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'nope'") and "Registry names" in err
    assert cli.main(["rollout", "--model", "toy-sft", "--task", "mmlu", "--out", out]) == 2
    assert capsys.readouterr().err.startswith("error: unknown task 'mmlu'; known tasks:")  # no KeyError quotes
    assert cli.main(["rollout", "--model", "toy-sft", "--task", "toy", "--out", out, "--repetition-penalty", "1.1"]) == 2
    assert "repetition_penalty must be 1.0" in capsys.readouterr().err


def test_every_siautil_error_exits_2(monkeypatch, capsys):
    for cls in (store.RunStoreError, errors.SiautilError):
        def fail(*a, **k):
            raise cls("the store is broken; do X")

        monkeypatch.setattr(runs, "sample_grid", fail)
        assert cli.main(["grid", "--no-book"]) == 2
        assert capsys.readouterr().err == "error: the store is broken; do X\n"


def test_grid_estimate(capsys):
    assert cli.main(["grid", "--profile", "paper", "--estimate", "--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "\nthroughput: " in out and "GPU memory per model" in out
    assert cli.main(["grid", "--profile", "paper", "--estimate", "--device", "cuda", "--backend", "vllm"]) == 0
    assert "tok/s for vllm on" in capsys.readouterr().out


def test_the_vllm_backend_without_vllm_names_the_install_and_makes_no_store(tmp_path, monkeypatch, capsys):
    import builtins

    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (
        (_ for _ in ()).throw(ImportError("No module named 'vllm'")) if name == "vllm" else real(name, *a, **k)))
    out = tmp_path / "r"
    assert cli.main(["rollout", "--model", "toy-sft", "--task", "toy", "--limit", "1", "--backend", "vllm",
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the vLLM backend needs vLLM") and "pip install -e '.[vllm]'" in err
    assert not out.exists()


def test_the_module_exits_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "siautil.cli", "rollout", "--model", "nope", "--task", "toy",
                          "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: unknown model 'nope'")


#: the command line in a process that takes Ctrl-C as a terminal's foreground job does (a shell
#: starts background jobs with SIGINT ignored, and a child keeps what is ignored)
CTRL_C = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "from siautil.cli import main; sys.exit(main())")


def _interrupt(argv, first_file, timeout=240):
    """Run the command line, press Ctrl-C once ``first_file()`` finds what it wrote, and return
    ``(exit status, stderr)``."""
    import os
    import signal
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.monotonic() + timeout
    while first_file() is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.slow
def test_ctrl_c_of_a_rollout_ends_in_one_line_that_says_what_is_kept_and_how_to_resume(tmp_path):
    out = tmp_path / "run"
    code, err = _interrupt(["rollout", "--model", "toy-sft", "--task", "toy", "--out", str(out), "--window", "1",
                            "--max-new-tokens", "52", "--stride", "4"],
                           lambda: next((out / store.RECORDS).glob("q*.parquet"), None) if out.exists() else None)
    assert code == cli.INTERRUPTED_EXIT, err
    assert err.rstrip().splitlines()[-1] == (f"interrupted: the questions finished are kept in {out}; "
                                             "run the same command again to resume")
    assert "Traceback" not in err and "leaked" not in err
    assert store.RunStore(out, {}).done()  # what was finished is there to resume from


@pytest.mark.slow
def test_ctrl_c_of_a_grid_in_worker_processes_leaves_no_traceback_or_leaked_semaphore(tmp_path):
    cell = tmp_path / "default" / "toy-base__toy" / store.RECORDS
    code, err = _interrupt(["grid", "--profile", "default", "--no-book", "--runs-dir", str(tmp_path), "--workers", "2"],
                           lambda: next(cell.glob("q*.parquet"), None) if cell.exists() else None)
    assert code == cli.INTERRUPTED_EXIT, err
    assert err.rstrip().splitlines()[-1] == (f"interrupted: the questions finished are kept under {tmp_path}/default; "
                                             "run the same command again to resume")
    assert "Traceback" not in err and "leaked semaphore" not in err
