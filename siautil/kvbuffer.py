"""A key/value cache that writes into preallocated buffers instead of concatenating.

transformers' ``DynamicLayer`` grows by ``torch.cat`` at every decoding step, copying the
whole cache each time. :class:`BufferLayer` keeps spare capacity and writes new keys and
values in place; it is a ``CacheLayerMixin`` like any other, so every architecture that
takes a ``Cache`` works with it unchanged. Rows are left-padded: every row's prefix ends at
the same buffer position, so all rows append at the same index and a 2-D attention mask
hides the padding.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class BufferLayer(DynamicLayer):
    """One layer's keys and values, shape ``(B, H, capacity, D)``, of which ``length`` are filled."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, spare: int = 64, length: int | None = None):
        """Hold ``keys``/``values``. With ``length`` given they are adopted as the buffers (no
        copy), their first ``length`` positions filled; otherwise they are copied into new
        buffers with ``spare`` free positions."""
        super().__init__()
        if length is not None:
            self._k, self._v, self.length = keys, values, length
        else:
            b, h, n, d = keys.shape
            # spare capacity is only ever read after it is written, so it needs no zeroing
            self._k = keys.new_empty((b, h, n + spare, d))
            self._v = values.new_empty((b, values.shape[1], n + spare, values.shape[-1]))
            self._k[:, :, :n] = keys
            self._v[:, :, :n] = values
            self.length = n
        self.is_initialized = True
        self.device = keys.device
        self._views()

    def _views(self) -> None:
        self.keys = self._k[:, :, : self.length]
        self.values = self._v[:, :, : self.length]

    def _grow(self, needed: int) -> None:
        cap = self._k.shape[2]
        new_cap = max(needed, 2 * cap)
        for name in ("_k", "_v"):
            old = getattr(self, name)
            new = old.new_empty(old.shape[:2] + (new_cap,) + old.shape[3:])
            new[:, :, : self.length] = old[:, :, : self.length]
            setattr(self, name, new)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        q = key_states.shape[-2]
        if self.length + q > self._k.shape[2]:
            self._grow(self.length + q)
        self._k[:, :, self.length: self.length + q] = key_states
        self._v[:, :, self.length: self.length + q] = value_states
        self.length += q
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows ``indices``, copying only the filled part of each buffer."""
        for name in ("_k", "_v"):
            old = getattr(self, name)
            new = old.new_empty((len(indices),) + old.shape[1:])
            torch.index_select(old[:, :, : self.length], 0, indices, out=new[:, :, : self.length])
            setattr(self, name, new)
        self._views()

    def crop(self, tokens_to_remove: int) -> None:  # pragma: no cover - not used by the engine
        self.length = max(0, self.length - abs(tokens_to_remove))
        self._views()

    def row(self, i: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A copy of row ``i``'s keys and values over buffer positions ``[start, stop)``."""
        return self._k[i: i + 1, :, start:stop].clone(), self._v[i: i + 1, :, start:stop].clone()


def buffer_cache(layers_kv: list[tuple[torch.Tensor, torch.Tensor]], spare: int = 64,
                 length: int | None = None) -> Cache:
    """A ``Cache`` of :class:`BufferLayer` holding the given per-layer ``(keys, values)``;
    with ``length``, the tensors are adopted as buffers whose first ``length`` positions are filled."""
    return Cache(layers=[BufferLayer(k, v, spare, length) for k, v in layers_kv])


def cache_tensors(cache: Cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The per-layer ``(keys, values)`` of any transformers cache after a prefill."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def left_padded(prefixes: list[list[tuple[torch.Tensor, torch.Tensor]]], lengths: list[int],
                repeats: int = 1, spare: int = 0):
    """Stack per-prefix caches (each ``(1, H, ≥ℓ_u, D)`` per layer, first ``ℓ_u`` used) right-aligned
    into buffers of ``U * repeats`` rows, each prefix repeated ``repeats`` times in a row, with
    ``spare`` free positions after the common length ``L = max ℓ``.

    Returns ``(layers_kv, pad)`` with ``pad[r] = L - ℓ_r`` zero columns before row ``r``.
    """
    width = max(lengths)
    out = []
    for layer in range(len(prefixes[0])):
        k0, v0 = prefixes[0][layer]
        bufs = []
        for t0 in (k0, v0):
            buf = t0.new_empty((len(prefixes) * repeats, t0.shape[1], width + spare, t0.shape[3]))
            buf[:, :, :width].zero_()
            bufs.append(buf)
        for u, (pre, n) in enumerate(zip(prefixes, lengths)):
            rows = slice(u * repeats, (u + 1) * repeats)
            bufs[0][rows, :, width - n: width] = pre[layer][0][:, :, :n]
            bufs[1][rows, :, width - n: width] = pre[layer][1][:, :, :n]
        out.append(tuple(bufs))
    return out, [width - n for n in lengths for _ in range(repeats)]
