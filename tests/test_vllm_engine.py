"""The vLLM backend (siautil.vllm_engine) on a fake of vLLM's API (tests/fake_vllm.py): the
requests it plans (prompts, budgets, seeds, every sampling field, when continuations go in),
records equal to the engine's when vLLM draws what the engine drew from each stream, how a
finish is read, and what it refuses."""

import random
import sys

import pytest

import fake_vllm
from siautil import models, records, rollout, streams, tasks, vllm_engine
from siautil.checkpoints import checkpoints
from siautil.vllm_engine import VLLMEngine, request_seed

TASK = tasks.get("gsm8k")
A = tasks.Question(id="a", text="Tom has 12 apples and buys 1 more. How many?", gold="13")
B = tasks.Question(id="b", text="2 + 2?", gold="4")
#: what every request sets itself, leaving nothing to vLLM's or the model's defaults
EXPLICIT = {"n", "temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
            "repetition_penalty", "seed", "max_tokens", "stop_token_ids", "ignore_eos", "detokenize", "logprobs",
            "output_kind"}


@pytest.fixture
def tok(tiny):
    return tiny("llama", seed=4, eos_bias=2.0).tokenizer


def _drawn(seed: int, n: int, eos: int) -> list[int]:
    """Pseudo-random draws of a request: ``n`` letters' ids from its seed, then EOS."""
    rng = random.Random(seed)
    return [rng.randrange(10, 40) for _ in range(n)] + [eos]


def _key(question, *coords, config):
    return request_seed(streams.key(rollout.stream_seed(config, question), *coords))


def _run(tok, config, script, questions=((0, A), (1, B)), eos=None, **fake):
    """Run the backend on the fake; ``script`` maps a request seed to its draws (others draw
    one letter then EOS). Returns (yielded pairs, the fake engine)."""
    engine = fake_vllm.Engine(lambda r: script.get(r.params.seed) or _drawn(r.params.seed, 1, tok.eos_token_id),
                              tok.eos_token_id, **fake)
    backend = VLLMEngine(fake_vllm.LLM(engine), tok, TASK, config, "tiny-llama", eos=eos)
    return list(backend.run_window(list(questions))), engine


def test_the_request_plan_prompts_budgets_seeds_fields_and_when_continuations_go_in(monkeypatch, tok):
    fake_vllm.install(monkeypatch)
    cfg = rollout.RolloutConfig(n_traces=2, n_continuations=3, stride=2, max_new_tokens=6, temperature=0.8,
                                top_p=0.9)
    eos = tok.eos_token_id
    traces = {A: [[11, 12, 13, eos], [14] * 9], B: [[15, eos], [eos]]}  # T = 3, 6 (budget), 1, 0
    script = {_key(q, 0, i, config=cfg): draws for q, ts in traces.items() for i, draws in enumerate(ts)}
    slow = {_key(B, 0, i, config=cfg) for i in range(2)}
    out, engine = _run(tok, cfg, script, per_step=2, delay=lambda r: 40 if r.params.seed in slow else 0)

    expected, continuations = {}, {A: set(), B: set()}
    for q, ts in traces.items():
        prompt = rollout.prompt_ids(TASK, tok, q, cfg, chat=False)
        for i, draws in enumerate(ts):
            expected[_key(q, 0, i, config=cfg)] = (prompt, 6)
            trace = [x for x in draws if x != eos][:6]
            for t in checkpoints(len(trace), 2):
                if t < 6:  # t = 6 has no budget left: no request
                    for j in range(3):
                        continuations[q].add(_key(q, 1, i, t, j, config=cfg))
                        expected[_key(q, 1, i, t, j, config=cfg)] = (prompt + trace[:t], 6 - t)
    got = {r.params.seed: (r.prompt, r.params.max_tokens) for r in engine.requests}
    assert len(got) == len(engine.requests) == len(expected) == 2 * 2 + 3 * (3 + 3 + 2 + 1)  # seeds all distinct
    assert got == expected
    for r in engine.requests:
        p = r.params
        assert EXPLICIT <= p.explicit
        assert (p.n, p.temperature, p.top_p, p.top_k, p.min_p) == (1, 0.8, 0.9, 0, 0.0)
        assert (p.presence_penalty, p.frequency_penalty, p.repetition_penalty) == (0.0, 0.0, 1.0)
        assert (p.stop_token_ids, p.ignore_eos, p.detokenize, p.logprobs) == ([eos], False, False, None)
    # A's continuations went in while B's traces were still decoding, and A finished first
    submitted = {r.params.seed: r.submitted for r in engine.requests}
    b_traces_done = min(r.finished for r in engine.requests if r.params.seed in slow)
    assert max(submitted[k] for k in continuations[A]) < b_traces_done
    assert [k for k, _ in out] == [0, 1]


@pytest.mark.parametrize("shuffle", ["none", "tokens"])
def test_records_equal_the_engine_s_when_vllm_draws_what_the_engine_drew(monkeypatch, tiny, shuffle):
    loaded = tiny("llama", seed=4, eos_bias=2.0)
    tok, eos = loaded.tokenizer, loaded.tokenizer.eos_token_id
    # 4 traces: some reach the budget, some end at EOS at T = 0, on a checkpoint and between two
    cfg = rollout.RolloutConfig(n_traces=4, n_continuations=3, stride=3, max_new_tokens=12, shuffle=shuffle)
    engine = rollout.Engine(loaded, TASK, cfg)
    draws, seen = {}, {}  # request seed -> the engine's draws; -> (prompt, text and length of the prefix seen)
    build = records.build

    def capture(task, question, index, model, traces, cps, *args, **kw):
        prompt = engine.prompt_ids(question)
        for tr in traces:
            draws[request_seed(tr.stream)] = tr.tokens + [eos] * (tr.finish.value == "eos")
            seen[request_seed(tr.stream)] = (prompt, "", 0)
        for cp in cps:
            for r in cp.continuations:
                draws[request_seed(r.stream)] = r.tokens + [eos] * (r.finish.value == "eos")
                seen[request_seed(r.stream)] = (prompt, cp.seen_text, cp.seen)
        return build(task, question, index, model, traces, cps, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(rollout.records, "build", capture)
        want = dict(engine.run_window([(0, A), (1, B)]))
    ends = {(r["T"] % 3 > 0, r["finish"]) for recs in want.values() for r in recs}
    assert ends == {(False, "length"), (False, "eos"), (True, "eos")}
    assert any(d == [eos] for d in draws.values())  # a continuation that ends at once

    def answer(r):
        prompt, text, n = seen[r.params.seed]
        assert r.prompt[:len(prompt)] == prompt and len(r.prompt) == len(prompt) + n
        assert tok.decode(r.prompt[len(prompt):], skip_special_tokens=True) == text
        return draws[r.params.seed]

    fake_vllm.install(monkeypatch)
    fake = fake_vllm.Engine(answer, eos, per_step=4)
    got = dict(VLLMEngine(fake_vllm.LLM(fake), tok, TASK, cfg, loaded.name).run_window([(0, A), (1, B)]))
    assert sorted(r.params.seed for r in fake.requests) == sorted(draws)
    assert got == want


@pytest.mark.parametrize("include_stop", [True, False])
@pytest.mark.parametrize("internal_ids", [False, True])
def test_eos_is_stripped_a_budget_kept_and_a_spent_checkpoint_gets_no_request(monkeypatch, tok, include_stop,
                                                                               internal_ids):
    fake_vllm.install(monkeypatch)
    cfg = rollout.RolloutConfig(n_traces=2, n_continuations=2, stride=3, max_new_tokens=6)
    other_eos = 7  # a second EOS id, from the generation config: vLLM reports it as the stop reason
    script = {_key(A, 0, 0, config=cfg): [11, 12, other_eos], _key(A, 0, 1, config=cfg): [13] * 10}
    (pair,), engine = _run(tok, cfg, script, questions=[(0, A)], include_stop=include_stop,
                           internal_ids=internal_ids, generation_config={"eos_token_id": [tok.eos_token_id, 7]})
    recs = pair[1]
    by = {(r["trace"], r["t"]): r for r in recs}
    assert sorted(by) == [(0, 0), (0, 2), (1, 0), (1, 3), (1, 6)]
    assert {(r["trace"], r["T"], r["finish"]) for r in recs} == {(0, 2, "eos"), (1, 6, "length")}
    assert by[0, 0]["trace_text"] == tok.decode([11, 12])
    assert all(r["continuation_tokens"] == [1, 1] for k, r in by.items() if k != (1, 6))  # their EOS stripped
    assert by[1, 6]["deterministic"] and by[1, 6]["continuation_tokens"] == [0, 0]
    budgets = sorted(r.params.max_tokens for r in engine.requests)
    assert budgets == [3, 3, 4, 4] + [6] * 6  # traces, then t = 0, 2 of trace 0 and t = 0, 3 of trace 1
    assert all(r.params.stop_token_ids == sorted({tok.eos_token_id, 7}) for r in engine.requests)


def test_stop_answer_and_other_finishes_are_refused(monkeypatch, tok):
    fake_vllm.install(monkeypatch)
    engine = fake_vllm.Engine(lambda r: [10, tok.eos_token_id], tok.eos_token_id)
    with pytest.raises(ValueError, match='stop="eos"'):
        VLLMEngine(fake_vllm.LLM(engine), tok, TASK, rollout.RolloutConfig(stop="answer"), "tiny")
    backend = VLLMEngine(fake_vllm.LLM(engine), tok, TASK, rollout.RolloutConfig(n_traces=1), "tiny")
    assert backend.info() == dict(backend="vllm", vllm=fake_vllm.VERSION, eos=[tok.eos_token_id],
                                  request_seed="streams.key % 2**63, one request per sequence")
    finish = engine._finish

    def aborted(r):
        out = finish(r)
        out.outputs[0].finish_reason = "abort"
        return out

    monkeypatch.setattr(engine, "_finish", aborted)
    with pytest.raises(RuntimeError, match="abort"):
        backend.run_question(A)


def test_request_seeds_fit_vllm_s_signed_64_bit_range():
    keys = [0, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, streams.key("0:a", 1, 2, 3, 4)]
    assert [request_seed(k) for k in keys[:4]] == [0, 2 ** 63 - 1, 0, 2 ** 63 - 1]
    assert all(0 <= request_seed(k) < 2 ** 63 for k in keys)


def test_without_vllm_the_error_names_the_install(monkeypatch, tok):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[vllm\]'"):
        vllm_engine.load("toy-sft", "bf16")
    with pytest.raises(vllm_engine.VLLMMissing, match="pip install"):
        VLLMEngine(fake_vllm.LLM(fake_vllm.Engine(lambda r: [], 2)), tok, TASK, rollout.RolloutConfig(), "tiny")


def test_load_resolves_the_registry_and_maps_precisions(monkeypatch):
    fake_vllm.install(monkeypatch)
    llm, tokenizer = vllm_engine.load("toy-sft", "bf16", seed=3)
    assert llm.kwargs == dict(model=models.resolve("toy-sft")[0], dtype="bfloat16", seed=3,
                              gpu_memory_utilization=0.9, enable_prefix_caching=True, generation_config="vllm")
    loaded = models.load("toy-sft", "fp32")
    q = tasks.get("toy").load(limit=1)[0]
    settings = rollout.RolloutConfig(max_new_tokens=100)
    assert (rollout.prompt_ids(tasks.get("toy"), tokenizer, q, settings, chat=False)
            == rollout.Engine(loaded, tasks.get("toy"), settings).prompt_ids(q))
    assert vllm_engine.load("toy-sft", "fp32")[0].kwargs["dtype"] == "float32"
    nf4 = vllm_engine.load("toy-sft", "nf4", max_model_len=512)[0].kwargs
    assert (nf4["quantization"], nf4["dtype"], nf4["max_model_len"]) == ("bitsandbytes", "bfloat16", 512)
    with pytest.raises(models.ModelError, match="precision"):
        vllm_engine.load("toy-sft", "int8")


def test_a_window_left_early_takes_its_requests_with_it(monkeypatch, tok):
    fake_vllm.install(monkeypatch)
    config = rollout.RolloutConfig(n_traces=2, n_continuations=2, stride=1, max_new_tokens=4)
    engine = fake_vllm.Engine(lambda r: _drawn(r.params.seed, 1, tok.eos_token_id), tok.eos_token_id, per_step=1)
    backend = VLLMEngine(fake_vllm.LLM(engine), tok, TASK, config, "tiny-llama")
    window = backend.run_window([(0, A), (1, B)])
    next(window)  # the first question done, the second's requests still in vLLM
    assert engine.has_unfinished_requests()
    window.close()
    assert not engine.has_unfinished_requests() and not backend._owner
    again = dict(backend.run_window([(2, A)]))  # the next window sees only its own outputs
    assert list(again) == [2]
