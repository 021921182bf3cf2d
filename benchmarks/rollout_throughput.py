"""Continuation sampling: the engine against per-prefix ``generate`` on one fixed workload.

    .venv/bin/python benchmarks/rollout_throughput.py                 # all three workloads, CPU
    .venv/bin/python benchmarks/rollout_throughput.py --workload smollm2 --precision bf16
    .venv/bin/python benchmarks/rollout_throughput.py --device cuda   # a Qwen2.5-3B-shaped model, bf16 (--precision nf4)
    .venv/bin/python benchmarks/rollout_throughput.py --workload smollm2 --record   # files the engine's rate

``--record`` adds the engine's rate on the workload nearest the paper's models (the
Qwen2.5-3B-shaped one on CUDA, SmolLM2 on a CPU) to ``siautil/assets/throughput.json``, which
``siautil grid --estimate`` reads (:func:`siautil.grid.throughput`).

The workload: fixed traces (a few hundred tokens each), checkpoints every ``stride`` tokens,
``M`` continuations per checkpoint. *Realistic*: continuations end at EOS at varied lengths
(a random model with a bias on its EOS logit); *fixed*: EOS disabled, every continuation runs
``--fixed-len`` tokens, so nothing can be skipped. Each method draws the same number of
continuations from the same prefixes with the same sampling chain and budgets:

* ``generate``: what peer code does, ``model.generate(prefix, num_return_sequences=M)`` once
  per prefix;
* ``engine``: ``siautil.rollout.Engine``: one prefill per trace, all checkpoints batched.

*smollm2*: the real model, SmolLM2-135M-Instruct, on GSM8K and ARC-Easy questions with the
default book's settings (``grid.SMOL``); the engine samples traces and continuations of a
window of questions at a time, ``generate`` continues the engine's traces from the same
checkpoints. Below the table: the machine's matmul GFLOP/s and the engine's share of that bound.

Each method runs in its own process, so peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def build(args):
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    from siautil import toy

    tok = toy.char_tokenizer()
    torch.manual_seed(0)
    if args.device == "cuda":
        cfg = Qwen2Config(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                          num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=32768,
                          tie_word_embeddings=True, eos_token_id=2, bos_token_id=1, pad_token_id=0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        if args.precision == "nf4":
            from transformers import BitsAndBytesConfig
            import tempfile
            with tempfile.TemporaryDirectory() as d:
                model.save_pretrained(d)
                model = AutoModelForCausalLM.from_pretrained(
                    d, quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                              bnb_4bit_compute_dtype=torch.bfloat16),
                    device_map={"": "cuda"})
        else:
            model = model.to("cuda")
    else:
        # like a real LM, most compute per token is in the layers, not the vocabulary projection
        cfg = LlamaConfig(vocab_size=8192, hidden_size=256, intermediate_size=688, num_hidden_layers=6,
                          num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=4096,
                          eos_token_id=2, bos_token_id=1, pad_token_id=0, tie_word_embeddings=False)
        model = AutoModelForCausalLM.from_config(cfg)
    head = model.get_output_embeddings()
    bias = torch.zeros(head.out_features, device=head.weight.device, dtype=torch.float32)
    model.get_output_embeddings().register_forward_hook(lambda m, i, o: o + bias.to(o.dtype))
    model.generation_config.eos_token_id = tok.eos_token_id
    # a bias on the EOS logit: continuations end at varied lengths, as real ones do; calibrated
    # so that EOS has probability 1 / mean_len per step under the sampling chain
    if args.workload == "fixed":
        bias[tok.eos_token_id] = -1e4
    else:
        prompt, traces = workload(args, model, tok)
        contexts = torch.tensor([prompt + tr for tr in traces])
        bias[tok.eos_token_id] = _calibrate(model, tok, bias, args.mean_len, contexts)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.eval()
    return model, tok


def _calibrate(model, tok, bias, mean_len: float, contexts: torch.Tensor) -> float:
    """The EOS bias that gives EOS probability ``1 / mean_len`` per step, on average over
    positions of the workload's own prefixes, under the benchmark's sampling chain."""
    from siautil.sampling import SamplingChain

    chain = SamplingChain(temperature=0.7, top_k=50, top_p=0.95)
    with torch.no_grad():
        logits = model(contexts.to(bias.device)).logits[:, ::8].reshape(-1, bias.shape[0]).float()
    lo, hi = -20.0, 20.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lg = logits.clone()
        lg[:, tok.eos_token_id] += mid
        ids_, probs = chain.candidates(lg)
        p = (probs * (ids_ == tok.eos_token_id)).sum(-1).mean().item()
        lo, hi = (mid, hi) if p < 1 / mean_len else (lo, mid)
    return lo


def workload(args, model, tok):
    """Fixed traces: the same for both methods (random tokens standing in for a sampled trace)."""
    g = torch.Generator().manual_seed(1)
    prompt = tok("Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:")["input_ids"]
    vocab = len(tok)
    traces = [torch.randint(4, vocab, (args.trace_len,), generator=g).tolist() for _ in range(args.n_traces)]
    return prompt, traces


def run_one(args) -> dict:
    from siautil import models, rollout, tasks

    torch.set_num_threads(args.threads)
    model, tok = build(args)
    loaded = models.LoadedModel(model, tok, "benchmark", args.precision, chat=False)
    prompt, traces = workload(args, model, tok)
    budget = args.fixed_len if args.workload == "fixed" else args.max_new_tokens
    settings = rollout.RolloutConfig(n_traces=len(traces), n_continuations=args.m, stride=args.stride,
                                     max_new_tokens=args.max_new_tokens, temperature=0.7, top_p=0.95, top_k=50,
                                     max_batch_rows=args.batch_rows,
                                     stop="answer" if args.workload != "fixed" else "eos")
    engine = rollout.Engine(loaded, tasks.get("gsm8k"), settings)
    checkpoints = [(i, t) for i, tr in enumerate(traces) for t in rollout.checkpoints(len(tr), args.stride)]
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    tokens = 0
    if args.method == "generate":
        kw = engine.chain.generate_kwargs()
        for i, t in checkpoints:
            ids = torch.tensor([prompt + traces[i][:t]], device=args.device)
            n_new = min(budget, args.max_new_tokens - t) if args.workload == "fixed" else args.max_new_tokens - t
            out = model.generate(ids, attention_mask=torch.ones_like(ids), num_return_sequences=args.m,
                                 max_new_tokens=n_new, min_new_tokens=n_new if args.workload == "fixed" else 0,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **kw)
            new = out[:, ids.shape[1]:]
            # count the tokens each sample really has (up to and including its EOS)
            for row in new.tolist():  # tokens before EOS, as the engine counts them
                tokens += row.index(tok.eos_token_id) if tok.eos_token_id in row else len(row)
    else:
        cps = engine.continue_traces(prompt, traces, seed="0",
                                     max_continuation_tokens=budget if args.workload == "fixed" else None)
        tokens = sum(len(r.tokens) for cp in cps for r in cp.continuations)
    sync()
    wall = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return dict(method=args.method, workload=args.workload, wall_s=wall, tokens=tokens,
                samples=len(checkpoints) * args.m, peak_mib=peak, params=model.num_parameters())


def run_smollm2(args) -> dict:
    """The real-model workload: SmolLM2-135M-Instruct on GSM8K and ARC-Easy questions with the
    default book's sampling settings (``grid.SMOL``). The engine samples the traces and their
    continuations, a window of questions at a time, and saves the traces; ``generate`` then
    draws the same number of continuations from the same prefixes (its trace time not counted)."""
    from dataclasses import replace

    from siautil import grid, models, rollout, tasks

    torch.set_num_threads(args.threads)
    loaded = models.load("smollm2-135m-instruct", args.precision, device=args.device)
    lm, tok = loaded.model, loaded.tokenizer
    settings = replace(grid.SMOL, window=args.window, max_batch_rows=args.batch_rows)
    work = [(name, tasks.get(name).load(limit=args.questions)) for name in ("gsm8k", "arc-easy")]
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    tokens, samples = 0, 0
    if args.method == "engine":
        saved = []
        for name, questions in work:
            engine = rollout.Engine(loaded, tasks.get(name), settings)
            for w in range(0, len(questions), settings.window):
                window = [(k, questions[k]) for k in range(w, min(w + settings.window, len(questions)))]
                for k, recs in engine.run_window(window):
                    saved.append(dict(prompt=engine.prompt_ids(questions[k]),
                                      traces=[tok(r["trace_text"], add_special_tokens=False)["input_ids"]
                                              for r in recs if r["t"] == 0]))
                    samples += sum(len(r["continuation_tokens"]) for r in recs if not r["deterministic"])
            tokens += engine.stats["generated_tokens"]
        sync()
        wall = time.perf_counter() - start
        Path(args.traces_file).write_text(json.dumps(saved))
    else:
        kw = rollout.RolloutConfig(**{**settings.as_dict()}).chain().generate_kwargs()
        eos = lm.generation_config.eos_token_id
        for item in json.loads(Path(args.traces_file).read_text()):
            for trace in item["traces"]:
                for t in rollout.checkpoints(len(trace), settings.stride):
                    if settings.max_new_tokens - t <= 0:
                        continue
                    ids = torch.tensor([item["prompt"] + trace[:t]], device=args.device)
                    out = lm.generate(ids, attention_mask=torch.ones_like(ids), num_return_sequences=settings.n_continuations,
                                      max_new_tokens=settings.max_new_tokens - t, pad_token_id=tok.pad_token_id, **kw)
                    eos_ids = set([eos] if isinstance(eos, int) else eos or []) | {tok.eos_token_id}
                    for row in out[:, ids.shape[1]:].tolist():
                        stop = next((j for j, x in enumerate(row) if x in eos_ids), len(row))
                        tokens += stop
                    samples += settings.n_continuations
        sync()
        wall = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return dict(method=args.method, workload="smollm2", wall_s=wall, tokens=tokens, samples=samples, peak_mib=peak,
                params=lm.num_parameters())


def matmul_gflops(dtype: torch.dtype, device: str = "cpu", n: int = 64, k: int = 576, m: int = 1536) -> float:
    """Measured GFLOP/s of ``torch.matmul`` at a decoding step's shape (``n`` rows through one
    of SmolLM2's MLP projections), best of several runs."""
    a = torch.randn(n, k, dtype=dtype, device=device)
    b = torch.randn(k, m, dtype=dtype, device=device)
    best = 0.0
    for _ in range(5):
        reps = 50
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n * k * m * reps / (time.perf_counter() - start) / 1e9)
    return best


def flops_per_token(model) -> float:
    """About ``2 x`` the parameters a token passes through (the embedding lookup is free, the
    output projection is not)."""
    emb = model.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in model.parameters())
    head = model.get_output_embeddings().weight
    tied = head.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    return 2.0 * (total - emb + (head.numel() if tied else 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-traces", type=int, default=4)
    ap.add_argument("--trace-len", type=int, default=300)
    ap.add_argument("--stride", type=int, default=30)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=600)
    ap.add_argument("--fixed-len", type=int, default=64)
    ap.add_argument("--mean-len", type=float, default=60, help="mean continuation length (realistic workload)")
    ap.add_argument("--batch-rows", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workload", choices=["realistic", "fixed", "smollm2", "both", "all"], default="all",
                    help="both: realistic and fixed; all: both and smollm2")
    ap.add_argument("--record", action="store_true",
                    help="add the engine's rate to siautil/assets/throughput.json (what --estimate reads)")
    ap.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16", "nf4"],
                    help="weights of both methods (default: bf16 on cuda, fp32 on a CPU; nf4 on cuda only)")
    ap.add_argument("--questions", type=int, default=4, help="smollm2 workload: questions per dataset")
    ap.add_argument("--window", type=int, default=8, help="smollm2 workload: questions in flight")
    ap.add_argument("--traces-file", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--method", choices=["generate", "engine"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    if args.method:
        print(json.dumps(run_smollm2(args) if args.workload == "smollm2" else run_one(args)))
        return
    results = []
    chosen = {"both": ["realistic", "fixed"], "all": ["realistic", "fixed", "smollm2"]}.get(args.workload, [args.workload])
    traces_file = Path(tempfile.mkdtemp()) / "smollm2-traces.json"
    for wl in chosen:
        # the engine first on smollm2: it samples the traces generate continues
        for method in (("engine", "generate") if wl == "smollm2" else ("generate", "engine")):
            cmd = [sys.executable, __file__, *sys.argv[1:], "--workload", wl, "--method", method,
                   "--traces-file", str(traces_file)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results.append(json.loads(out))
            r = results[-1]
            print(f"{wl:9s} {method:8s} {r['samples']:5d} samples {r['tokens']:7d} tokens {r['wall_s']:8.1f} s "
                  f"{r['tokens'] / r['wall_s']:8.0f} tok/s  peak {r['peak_mib']:7.0f} MiB", flush=True)
    print()
    print(f"| workload | generate s | engine s | speed-up | generate tok/s | engine tok/s | peak MiB (gen / eng) |"
          f"  ({args.threads} thread{'s' * (args.threads > 1)}, {args.device}, smollm2 in {args.precision})")
    print("|---|---|---|---|---|---|---|")
    for wl in dict.fromkeys(r["workload"] for r in results):
        g = next(r for r in results if r["workload"] == wl and r["method"] == "generate")
        e = next(r for r in results if r["workload"] == wl and r["method"] == "engine")
        print(f"| {wl} | {g['wall_s']:.1f} | {e['wall_s']:.1f} | {g['wall_s'] / e['wall_s']:.1f}x | "
              f"{g['tokens'] / g['wall_s']:.0f} | {e['tokens'] / e['wall_s']:.0f} | {g['peak_mib']:.0f} / {e['peak_mib']:.0f} |")
    if "smollm2" in chosen:
        roofline(args, next(r for r in results if r["workload"] == "smollm2" and r["method"] == "engine"))
    if args.record:
        record(args, results)


def record(args, results: list[dict]) -> None:
    """File the engine's rate on the workload nearest the paper's models (:data:`siautil.grid.MEASURED`)."""
    import datetime

    from siautil import grid

    workload = "realistic" if args.device == "cuda" else "smollm2"
    found = [r for r in results if r["workload"] == workload and r["method"] == "engine"]
    if not found:
        print(f"--record: the {workload} workload did not run (--workload {workload} or all); nothing filed")
        return
    r = found[0]
    model = ("Qwen2.5-3B-shaped, random weights" if workload == "realistic" else "smollm2-135m-instruct")
    entry = dict(backend="engine", device="cuda" if args.device.startswith("cuda") else "cpu",
                 hardware=grid.hardware(args.device), model=model, params=r["params"], precision=args.precision,
                 threads=args.threads, tokens_per_s=round(r["tokens"] / r["wall_s"], 1),
                 date=datetime.date.today().isoformat(), command="benchmarks/rollout_throughput.py " + " ".join(
                     a for a in sys.argv[1:] if a != "--record"))
    grid.record_throughput(entry)
    print(f"filed in {grid.MEASURED}: {entry}")


def roofline(args, engine: dict) -> None:
    """The machine's matmul throughput, the model's FLOPs per token, and the engine's share of
    the bound they set."""
    from siautil import models

    torch.set_num_threads(args.threads)
    per_token = flops_per_token(models.load("smollm2-135m-instruct", "fp32", device=args.device).model)
    print()
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        g = matmul_gflops(dtype, args.device)
        print(f"- matmul, {args.threads} thread(s), {name}: {g:.0f} GFLOP/s -> at most {g * 1e9 / per_token:.0f} tok/s")
    g = matmul_gflops(torch.bfloat16 if args.precision == "bf16" else torch.float32, args.device)
    rate = engine["tokens"] / engine["wall_s"]
    print(f"- SmolLM2-135M: {per_token / 1e9:.3f} GFLOP per token; the engine ({args.precision}) at {rate:.0f} tok/s "
          f"is {rate * per_token / (g * 1e9):.0%} of the {args.precision} matmul bound")


if __name__ == "__main__":
    main()
