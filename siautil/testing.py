"""Builders for tests and benchmarks: tiny random-weight models of every architecture family in
the registry, with the toy models' character-level tokenizer, and records that follow the
schema. Nothing here downloads.

The suite's shared tiny models live on :data:`DEVICE` in :data:`PRECISION`
(``SIAUTIL_TEST_DEVICE``, ``SIAUTIL_TEST_PRECISION``; CPU and fp32 by default), so the cache and
engine tests run on a GPU as they are (``benchmarks/gpu_check.py``)."""

from __future__ import annotations

import os

import torch

from .models import DTYPES, REGISTRY, LoadedModel, ModelError
from .toy import char_tokenizer

#: Where the suite's tiny models run, and in which precision (fp32 or bf16; nf4 has its own test).
DEVICE = os.environ.get("SIAUTIL_TEST_DEVICE", "cpu")
PRECISION = os.environ.get("SIAUTIL_TEST_PRECISION", "fp32")


def tiny_config(family: str, vocab_size: int = 64):
    """A small random-weight config of an architecture family in the registry."""
    import transformers as tf

    common = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    if family == "llama":
        return tf.LlamaConfig(**common)
    if family == "qwen2":
        return tf.Qwen2Config(**common)
    if family == "gemma2":
        return tf.Gemma2Config(**common, head_dim=8, sliding_window=4096, query_pre_attn_scalar=8)
    if family == "olmo3":
        return tf.Olmo3Config(**common, sliding_window=4096)
    raise ModelError(f"no tiny config for family {family!r}; families: llama, qwen2, gemma2, olmo3")


def record(**fields) -> dict:
    """One record of :data:`siautil.schema.RECORD_SCHEMA`, a correct trace's checkpoint by default,
    with ``fields`` replacing the defaults."""
    base = dict(model="m", dataset="toy", question_id="q", question_index=0, trace=0, t=0, T=3,
                answers=["1", None], gold="1", correct=True, trace_answer="1", finish="eos",
                continuation_tokens=[3, 2], trace_text="abc", prefix_chars=0, prefix_text="",
                continuations=["abc", "ab"], deterministic=False)
    unknown = set(fields) - set(base)
    if unknown:
        raise KeyError(f"not record fields: {sorted(unknown)}")
    return base | fields


FAMILIES = sorted({s.family for s in REGISTRY.values()})


def tiny_model(family: str = "llama", seed: int = 0, eos_bias: float = 0.0, device: str = "cpu",
               precision: str = "fp32", **overrides) -> LoadedModel:
    """A random-weight model of ``family`` with :func:`siautil.toy.char_tokenizer`, for tests
    and benchmarks, as :func:`siautil.models.load` returns a model (on ``device`` in
    ``precision``, plain prompts); the same weights on every device (drawn on the CPU in fp32).

    ``eos_bias`` is added to the end-of-sequence logit, so continuations end at varied lengths
    as real ones do (about ``1 / (1 + V e^-bias)`` per step).
    """
    from transformers import AutoModelForCausalLM

    tokenizer = char_tokenizer()
    config = tiny_config(family, vocab_size=len(tokenizer))
    for k, v in overrides.items():
        setattr(config, k, v)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    if eos_bias:
        head = model.lm_head
        biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
        biased.weight.data.copy_(head.weight.data)
        biased.bias.data.zero_()
        biased.bias.data[tokenizer.eos_token_id] = eos_bias
        model.lm_head = biased
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval().to(device=device, dtype=DTYPES[precision])
    return LoadedModel(model, tokenizer, f"tiny-{family}", precision, f"random {family}, seed {seed}", chat=False)
