"""What sampling a model takes in accelerator memory, and how many rows fit.

The engine (:mod:`siautil.rollout`) holds three things besides activations:

* the **weights**: parameters × bytes per parameter (NF4: 4 bits per quantised weight plus
  one absmax per block of 64, the embeddings and output layer kept in the compute dtype);
* the **slot buffers**: each decoding row owns a buffer for the keys and values of the tokens
  it generates, up to the run's budget (:mod:`siautil.kvbuffer`), so ``rows × budget`` tokens;
* the **trace caches**: every trace of a question in flight keeps its keys and values
  (prompt and generation) until its checkpoints' continuations are done, so ``window × N ×
  (prompt + budget)`` tokens, and the shared prefixes read by a step hold as many again (a
  shuffled run also holds its re-encoded checkpoint prefixes).

A token's keys and values take ``2 × layers × KV heads × head dim × bytes``: grouped-query
models (Qwen2.5: 2 KV heads) take a fraction of what full multi-head ones (DeepSeek-LLM-7B:
32) do, which is why the rows that fit differ twenty-fold between models of the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Bytes per parameter and per cached key/value element of each precision (NF4 computes, and
#: caches, in bf16).
WEIGHT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "nf4": 0.5 + 4 / 64}
CACHE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "nf4": 2}
#: Memory kept free for activations, the logits of a step, the allocator's fragmentation and
#: what else runs on the device: a share of what is free, and at least this many bytes.
RESERVE_SHARE = 0.10
RESERVE_MIN = 2 * 2**30
GB = 2**30


@dataclass(frozen=True)
class Shape:
    """The sizes of a decoder-only transformer that memory depends on (its configuration's
    ``num_hidden_layers``, ``num_key_value_heads``, ``head_dim``, ``hidden_size``,
    ``vocab_size``, ``tie_word_embeddings``) and its parameter count."""

    layers: int
    kv_heads: int
    head_dim: int
    hidden: int
    vocab: int
    params: float
    tied: bool = False

    @classmethod
    def of(cls, config, params: float | None = None) -> Shape:
        """The shape of a Hugging Face model configuration (its parameter count estimated from
        the configuration when not given)."""
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        kv = getattr(config, "num_key_value_heads", None) or heads
        tied = bool(getattr(config, "tie_word_embeddings", False))
        if params is None:
            h, ff = config.hidden_size, getattr(config, "intermediate_size", 4 * config.hidden_size)
            attention = h * heads * head_dim * 2 + h * kv * head_dim * 2
            params = config.num_hidden_layers * (attention + 3 * h * ff) + config.vocab_size * h * (1 if tied else 2)
        return cls(config.num_hidden_layers, kv, head_dim, config.hidden_size, config.vocab_size, float(params), tied)

    def kv_bytes_per_token(self, precision: str) -> int:
        """Keys and values of one token, every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * CACHE_BYTES[precision]

    def weight_bytes(self, precision: str) -> float:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        if precision == "nf4":  # bitsandbytes quantises the linear layers, not the embeddings
            return (self.params - embeddings) * WEIGHT_BYTES["nf4"] + embeddings * CACHE_BYTES["nf4"]
        return self.params * WEIGHT_BYTES[precision]


@dataclass(frozen=True)
class Footprint:
    """Bytes each part of a run takes at ``rows`` decoding rows."""

    weights: float
    slots: float
    traces: float
    reserve: float

    @property
    def total(self) -> float:
        return self.weights + self.slots + self.traces + self.reserve


def footprint(shape: Shape, precision: str, rows: int, limit: int, kept_tokens: int, device_bytes: float) -> Footprint:
    """What a run takes at ``rows`` rows of ``limit`` tokens each (the budget, plus the prompt
    where rows copy their prefixes), with ``kept_tokens`` tokens of trace caches and shared
    prefixes (:func:`kept_tokens`), on a device of ``device_bytes``."""
    per_token = shape.kv_bytes_per_token(precision)
    return Footprint(shape.weight_bytes(precision), rows * limit * per_token, kept_tokens * per_token,
                     max(RESERVE_MIN, RESERVE_SHARE * device_bytes))


def kept_tokens(window: int, n_traces: int, prompt: int, budget: int, checkpoints: int = 0) -> int:
    """Tokens of keys and values held beside the slots: each trace of the ``window`` questions
    in flight, and the padded batch of shared prefixes a step reads (as large again). A
    shuffled run (``checkpoints`` per trace, else 0) also holds each checkpoint's re-encoded
    prefix until its rows take it, half a budget long on average."""
    shuffled = window * n_traces * checkpoints * (prompt + budget // 2)
    return 2 * window * n_traces * (prompt + budget) + shuffled


def rows_that_fit(shape: Shape, precision: str, free_bytes: float, limit: int, kept: int, max_rows: int,
                  weights_loaded: bool = True, device_bytes: float | None = None) -> int:
    """The most decoding rows, up to ``max_rows``, whose slot buffers fit in ``free_bytes``
    beside the trace caches (``kept`` tokens), a reserve, and the weights unless they are
    already loaded (and so no longer free); 0 when not even one row fits."""
    fp = footprint(shape, precision, 0, limit, kept, device_bytes if device_bytes is not None else free_bytes)
    room = free_bytes - fp.traces - fp.reserve - (0 if weights_loaded else fp.weights)
    return int(max(0, min(max_rows, room // (limit * shape.kv_bytes_per_token(precision)))))
