"""siautil.memory: the bytes a run takes, checked against what a model and its cache really hold,
and the rows that fit, checked by their arithmetic."""

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache, LlamaConfig, Qwen2Config

from siautil import memory, models, testing


@pytest.mark.parametrize("family", ["llama", "qwen2", "olmo3"])
def test_a_token_s_keys_and_values_take_what_the_shape_says(family):
    loaded = testing.tiny_model(family)
    shape = memory.Shape.of(loaded.model.config)
    n = 7
    cache = DynamicCache(config=loaded.model.config)
    with torch.no_grad():
        loaded.model(torch.arange(3, 3 + n)[None], cache=cache, use_cache=True)
    held = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    assert held == n * shape.kv_bytes_per_token("fp32")
    assert shape.kv_bytes_per_token("bf16") * 2 == shape.kv_bytes_per_token("fp32")


def test_the_parameter_estimate_is_the_model_s_count_but_for_its_norms():
    cfg = LlamaConfig(vocab_size=1000, hidden_size=128, intermediate_size=344, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    model = AutoModelForCausalLM.from_config(cfg)
    norms = (2 * cfg.num_hidden_layers + 1) * cfg.hidden_size
    assert memory.Shape.of(cfg).params == model.num_parameters() - norms


@pytest.mark.parametrize("name, config", [
    ("qwen2.5-3b", Qwen2Config(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                               num_attention_heads=16, num_key_value_heads=2, tie_word_embeddings=True)),
    ("llama-3.2-3b", LlamaConfig(vocab_size=128256, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                                 num_attention_heads=24, num_key_value_heads=8, tie_word_embeddings=True)),
])
def test_the_registry_s_shapes_match_the_published_configurations(name, config):
    registered, published = models.REGISTRY[name].shape, memory.Shape.of(config)
    assert (registered.layers, registered.kv_heads, registered.head_dim, registered.hidden, registered.vocab,
            registered.tied) == (published.layers, published.kv_heads, published.head_dim, published.hidden,
                                 published.vocab, published.tied)
    assert registered.params == pytest.approx(published.params, rel=0.01)


@pytest.mark.parametrize("name, gb", [("llama-3.2-3b", 35.2), ("gemma-2-2b", 32.7), ("deepseek-llm-7b-chat", 151.0)])
def test_slot_buffers_of_512_rows_of_600_tokens(name, gb):
    fp = memory.footprint(models.REGISTRY[name].shape, "bf16", rows=512, limit=600, kept_tokens=0,
                          device_bytes=80 * memory.GB)
    assert fp.slots / 1e9 == pytest.approx(gb, rel=0.01)


def test_nf4_weights_take_a_quarter_of_bf16_but_for_the_embeddings():
    shape = models.REGISTRY["deepseek-llm-7b-chat"].shape
    embeddings = 2 * shape.vocab * shape.hidden
    assert shape.weight_bytes("bf16") == 2 * shape.params
    assert shape.weight_bytes("nf4") == pytest.approx((shape.params - embeddings) * 0.5625 + 2 * embeddings)


def test_rows_that_fit_are_what_is_left_after_the_caches_and_the_reserve():
    shape = memory.Shape(layers=2, kv_heads=2, head_dim=4, hidden=16, vocab=10, params=1e3)
    per_row = 100 * shape.kv_bytes_per_token("fp32")
    kept = 50
    device = 100 * memory.GB
    reserve = memory.RESERVE_SHARE * device
    base = reserve + kept * shape.kv_bytes_per_token("fp32")
    fit = lambda free, **kw: memory.rows_that_fit(shape, "fp32", free, 100, kept, max_rows=64,
                                                  device_bytes=device, **kw)
    assert fit(base + 5 * per_row) == 5
    assert fit(base + 5 * per_row - 1) == 4
    assert fit(base + 500 * per_row) == 64
    assert fit(base - 1) == 0
    weights = shape.weight_bytes("fp32")
    assert fit(base + weights + 5 * per_row, weights_loaded=False) == 5
    assert memory.rows_that_fit(shape, "fp32", 1.0, 100, kept, 64) == 0  # the reserve's floor: 2 GiB


def test_kept_tokens_hold_every_trace_of_the_window_and_the_prefix_batch():
    assert memory.kept_tokens(window=8, n_traces=4, prompt=100, budget=600) == 2 * 8 * 4 * 700
    # a shuffled run also holds each checkpoint's re-encoded prefix, half a budget on average
    assert memory.kept_tokens(8, 4, 100, 600, checkpoints=13) == 2 * 8 * 4 * 700 + 8 * 4 * 13 * 400
