"""The GPU check: what the suite cannot show on a CPU, on a CUDA GPU, offline (every model is
built from a configuration), in under 8 minutes.

    python benchmarks/gpu_check.py                        # on cuda; --out report.json keeps the figures
    python benchmarks/gpu_check.py --device cpu --quick   # the same steps, small, to check the script here

1. **The machine**: the GPU's name, compute capability, memory, CUDA and driver
   (:func:`siautil.models.gpu`), and the package versions.
2. **The cache and engine tests on the device** (``SIAUTIL_TEST_DEVICE``,
   ``SIAUTIL_TEST_PRECISION``: the suite's tiny models of the four architectures moved there): the
   slot cache against full forwards, the whole engine, same seed same records, each row's own
   stream whatever the batch, in fp32 and bf16; NF4 on a small model.
3. **One window decoded twice** by the engine on a Qwen2.5-3B-shaped bf16 model (random
   weights): identical records, or the first difference.
4. **Throughput** on that model and one fixed workload (N traces of a GSM8K window run to the
   budget, M continuations from every checkpoint): the engine, per-prefix ``generate``, and
   the vLLM backend where vLLM is installed, each against the memory-bandwidth bound (every
   weight read once a step: ``rows × bandwidth / weight bytes``, bandwidth measured by a copy).
   The engine's rate (and vLLM's) is filed in ``siautil/assets/throughput.json`` with
   ``--record``, for ``siautil grid --estimate``.
5. **χ² of the first continuation token**: from one prompt, the engine's sampling chain gives
   the exact distribution of the first token (temperature 0.7, top-p off); draws of the engine (its per-stream uniforms)
   and of vLLM (one seeded request each) are each tested against it (scipy's ``chisquare``,
   bins with an expected count under 5 pooled). A backend that samples another distribution
   (a temperature or top-p applied differently) fails it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SUITE = [  # the cache and engine tests whose claims depend on the device's kernels
    "tests/test_kvbuffer.py::test_slot_cache_gives_the_full_forward_logits",
    "tests/test_rollout.py::test_every_architecture_runs_the_whole_engine",
    "tests/test_rollout.py::test_same_seed_same_records_and_seed_matters",
    "tests/test_rollout.py::test_each_row_draws_from_its_own_stream_whatever_the_batch",
    "tests/test_decode.py::test_the_batch_draws_what_one_row_at_a_time_draws_whatever_its_size",
]
NF4 = "tests/test_models.py::test_nf4_runs_the_whole_engine"


def say(line: str) -> None:
    print(line, flush=True)


def machine(device: str) -> dict:
    from siautil import models, store

    return dict(gpu=models.gpu(device), cpu=models.cpu_model(), versions=store.package_versions())


def suite(device: str, quick: bool) -> dict:
    """The cache and engine tests on ``device``: pytest's outcome per precision."""
    out = {}
    for precision in ("fp32",) if quick else ("fp32", "bf16"):
        env = dict(os.environ, SIAUTIL_TEST_DEVICE=device, SIAUTIL_TEST_PRECISION=precision, HF_HUB_OFFLINE="1")
        tests = SUITE + ([NF4] if precision == "fp32" else [])
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
        out[precision] = dict(passed=done.returncode == 0, summary=summary, seconds=round(time.perf_counter() - start, 1))
        say(f"  {precision}: {summary}")
        if done.returncode != 0:
            failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
            say("\n".join(f"    {line}" for line in failed[:20]))
    return out


def build(device: str, quick: bool, directory: Path):
    """A Qwen2.5-3B-shaped bf16 model with random weights (smaller with ``quick``) and the toy
    character tokenizer, saved to ``directory`` (for vLLM) and loaded as siautil loads a model.
    Its vocabulary is the tokenizer's, so every sampled id decodes."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    from siautil import models, toy

    tok = toy.char_tokenizer()
    size = (dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4) if quick else
            dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16))
    cfg = Qwen2Config(vocab_size=len(tok), num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
                      eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id, **size)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    precision = "bf16" if device == "cuda" else "fp32"
    return models.load(str(directory), precision, device=device)


def workload(quick: bool):
    from siautil import rollout, tasks

    settings = rollout.RolloutConfig(n_traces=2 if quick else 4, n_continuations=4 if quick else 16,
                                     stride=16 if quick else 64, max_new_tokens=48 if quick else 256,
                                     temperature=0.7, top_p=0.95, top_k=0, window=2 if quick else 8,
                                     max_batch_rows=64 if quick else 512, seed=7)
    questions = tasks.get("gsm8k").load(limit=settings.window)
    return settings, list(enumerate(questions))


def twice(loaded, device: str, quick: bool) -> tuple[dict, dict, dict]:
    """One window decoded twice by the engine: identical records, or the first difference;
    with the first run's records and its generated tokens and seconds (the engine's throughput)."""
    from siautil import rollout, tasks

    settings, window = workload(quick)
    timed = {}
    runs = []
    for _ in range(2):
        engine = rollout.Engine(loaded, tasks.get("gsm8k"), settings)
        _sync(device)
        start = time.perf_counter()
        runs.append(dict(engine.run_window(window)))
        _sync(device)
        timed = timed or dict(method="engine", tokens=engine.stats["generated_tokens"],
                              seconds=time.perf_counter() - start)
    a, b = runs
    first = next(((k, i) for k in a for i, (x, y) in enumerate(zip(a[k], b[k])) if x != y), None)
    same = a == b
    say(f"  {sum(map(len, a.values()))} records: " + ("identical" if same else f"differ, first at question, record {first}"))
    return dict(identical=same, first_difference=first), a, timed


def bandwidth(device: str) -> float:
    """Bytes per second of a device-to-device copy of 1 GiB (read and write), best of 5."""
    n = 2**29 if device == "cuda" else 2**25
    x, y = torch.empty(n, dtype=torch.float16, device=device), torch.empty(n, dtype=torch.float16, device=device)
    best = 0.0
    for _ in range(5):
        _sync(device)
        start = time.perf_counter()
        y.copy_(x)
        _sync(device)
        best = max(best, 2 * x.numel() * x.element_size() / (time.perf_counter() - start))
    return best


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def throughput(loaded, directory: Path, device: str, quick: bool, recs: dict, engine: dict) -> list[dict]:
    """Generated tokens per second of the engine (``engine``: its timed run of the window, whose
    records are ``recs``), per-prefix ``generate`` (from the first question's checkpoints, at the
    lengths the engine's traces had) and vLLM on the same window."""
    from siautil import rollout, tasks, vllm_engine

    settings, window = workload(quick)
    task = tasks.get("gsm8k")
    weights = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    bw = bandwidth(device)
    rows_bound = lambda rows: rows * bw / weights
    results = [engine]
    prompt_of = rollout.Engine(loaded, task, settings).prompt_ids

    # per-prefix generate, from prefixes of the engine's own trace lengths
    kw = settings.chain().generate_kwargs()
    tokens, start = 0, time.perf_counter()
    for k, question in window[:1]:
        prompt = prompt_of(question)
        for r in (r for r in recs[k] if not r["deterministic"]):
            n_new = settings.max_new_tokens - r["t"]
            ids = torch.tensor([prompt + [5] * r["t"]], device=device)
            out = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), num_return_sequences=settings.n_continuations,
                                        max_new_tokens=n_new, pad_token_id=loaded.tokenizer.pad_token_id, **kw)
            tokens += int((out[:, ids.shape[1]:] != loaded.tokenizer.pad_token_id).sum())
    _sync(device)
    results.append(dict(method="generate", tokens=tokens, seconds=time.perf_counter() - start))

    if device == "cuda":
        torch.cuda.empty_cache()  # vLLM sizes its cache from what is free when it starts
        try:
            llm, tokenizer = vllm_engine.load(str(directory), "bf16", seed=settings.seed, gpu_memory_utilization=0.5)
        except vllm_engine.VLLMMissing as e:
            say(f"  vLLM: {e}")
        else:
            backend = vllm_engine.VLLMEngine(llm, tokenizer, task, settings, "gpu-check", chat=False)
            start = time.perf_counter()
            dict(backend.run_window(window))
            results.append(dict(method="vllm", tokens=backend.stats["generated_tokens"],
                                seconds=time.perf_counter() - start, llm=llm, tokenizer=tokenizer))
    for r in results:
        rate = r["tokens"] / r["seconds"]
        r["tokens_per_s"] = round(rate, 1)
        say(f"  {r['method']:8s} {r['tokens']:8d} tokens {r['seconds']:7.1f} s {rate:9.0f} tok/s")
    say(f"  bound: {bw / 1e9:.0f} GB/s over {weights / 1e9:.2f} GB of weights = {rows_bound(1):.0f} tok/s per row "
        f"in flight, {rows_bound(settings.max_batch_rows):.0f} at {settings.max_batch_rows} rows (KV reads not counted)")
    return results


def chi_square(loaded, device: str, quick: bool, vllm=None) -> dict:
    """The first token after one prompt: draws of the engine's chain and of vLLM against the
    chain's exact distribution."""
    from scipy.stats import chisquare

    from siautil import rollout, streams, tasks, vllm_engine

    settings, window = workload(quick)
    # top-p off: two backends' logits differ in their last bits, and a token at the nucleus's
    # edge kept by one and cut by the other would fail the test for nothing
    settings = replace(settings, top_p=1.0)
    n = 2000 if quick else 20000
    prompt = rollout.Engine(loaded, tasks.get("gsm8k"), settings).prompt_ids(window[0][1])
    chain = settings.chain()
    with torch.no_grad():
        logits = loaded.model(torch.tensor([prompt], device=device)).logits[0, -1:].float()
    ids, probs = chain.candidates(logits)
    exact = {t: p for t, p in zip(ids[0].tolist(), probs[0].double().tolist()) if p > 0}
    keys = [streams.key(settings.seed, 9, j) for j in range(n)]
    u = torch.from_numpy(streams.uniforms(keys, [0] * n)).to(device)
    drawn = {"engine": chain.sample_uniform(logits.expand(n, -1), u).tolist()}
    if vllm is not None:
        from vllm import SamplingParams, TokensPrompt

        llm = vllm["llm"]
        params = [SamplingParams(max_tokens=1, temperature=settings.temperature, top_p=settings.top_p, top_k=0,
                                 seed=vllm_engine.request_seed(k), detokenize=False) for k in keys]
        outs = llm.generate([TokensPrompt(prompt_token_ids=prompt)] * n, params, use_tqdm=False)
        drawn["vllm"] = [o.outputs[0].token_ids[0] for o in outs]
    out = {}
    order = sorted(exact, key=exact.get, reverse=True)
    for name, tokens in drawn.items():
        counts = np.bincount(tokens, minlength=max(max(tokens), max(order)) + 1)
        outside = int(counts.sum() - counts[order].sum())
        expected = np.array([exact[t] * n for t in order])
        observed = counts[order].astype(float)
        keep = expected >= 5  # a prefix (most likely first); the rest pooled into one bin
        f_exp, f_obs = list(expected[keep]), list(observed[keep])
        tail_exp, tail_obs = expected[~keep].sum(), observed[~keep].sum()
        if tail_exp >= 5 or not f_exp:
            f_exp, f_obs = f_exp + [tail_exp], f_obs + [tail_obs]
        elif tail_exp > 0:  # too small to stand alone: with the last bin
            f_exp[-1], f_obs[-1] = f_exp[-1] + tail_exp, f_obs[-1] + tail_obs
        f_exp, f_obs = np.array(f_exp), np.array(f_obs)
        stat, p = chisquare(f_obs, f_exp * f_obs.sum() / f_exp.sum())
        out[name] = dict(draws=n, bins=len(f_exp), chi2=round(float(stat), 2), p=float(p), outside_support=outside)
        say(f"  {name:7s} {n} draws, {len(f_exp)} bins: chi2 {stat:.1f}, p = {p:.3f}; {outside} outside the chain's support")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="a small model and workload (to check the script)")
    ap.add_argument("--record", action="store_true", help="file the measured rates in siautil/assets/throughput.json")
    ap.add_argument("--out", help="write the report as JSON here")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device here; --device cpu --quick checks the script on the CPU")
    from siautil import grid, memory

    report = {}
    start = time.perf_counter()
    report["machine"] = machine(args.device)
    say(f"1. machine: {report['machine']['gpu'] or 'no GPU'}, {report['machine']['cpu']}")
    say("2. cache and engine tests on the device")
    report["suite"] = suite(args.device, args.quick)
    with tempfile.TemporaryDirectory() as d:
        say("3. one window twice")
        loaded = build(args.device, args.quick, Path(d))
        shape = memory.Shape.of(loaded.model.config)
        say(f"  model: {shape.params / 1e9:.2f}e9 parameters, {shape.layers} layers, {shape.kv_heads} KV heads")
        report["twice"], recs, timed = twice(loaded, args.device, args.quick)
        say("4. throughput")
        results = throughput(loaded, Path(d), args.device, args.quick, recs, timed)
        vllm = next((r for r in results if r["method"] == "vllm"), None)
        say("5. chi-square of the first continuation token")
        report["chi_square"] = chi_square(loaded, args.device, args.quick, vllm)
        report["throughput"] = [{k: v for k, v in r.items() if k not in ("llm", "tokenizer")} for r in results]
        if args.record:
            for r in results:
                if r["method"] in ("engine", "vllm"):
                    grid.record_throughput(dict(
                        backend=r["method"], device="cuda" if args.device == "cuda" else "cpu",
                        hardware=grid.hardware(args.device), model="Qwen2.5-3B-shaped, random weights"
                        + (" (quick)" if args.quick else ""), params=shape.params, precision=loaded.precision,
                        threads=torch.get_num_threads(), tokens_per_s=r["tokens_per_s"],
                        date=datetime.date.today().isoformat(), command="benchmarks/gpu_check.py"))
            say(f"  filed in {grid.MEASURED}")
    report["seconds"] = round(time.perf_counter() - start, 1)
    say(f"done in {report['seconds']:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
