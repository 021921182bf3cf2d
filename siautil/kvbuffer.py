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

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, spare: int = 64):
        super().__init__()
        b, h, n, d = keys.shape
        self._k = keys.new_zeros((b, h, n + spare, d))
        self._v = values.new_zeros((b, values.shape[1], n + spare, values.shape[-1]))
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
            new = old.new_zeros(old.shape[:2] + (new_cap,) + old.shape[3:])
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
        self._k = self._k[indices]
        self._v = self._v[indices]
        self._views()

    def crop(self, tokens_to_remove: int) -> None:  # pragma: no cover - not used by the engine
        self.length = max(0, self.length - abs(tokens_to_remove))
        self._views()

    def row(self, i: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A copy of row ``i``'s keys and values over buffer positions ``[start, stop)``."""
        return self._k[i: i + 1, :, start:stop].clone(), self._v[i: i + 1, :, start:stop].clone()


def buffer_cache(layers_kv: list[tuple[torch.Tensor, torch.Tensor]], spare: int = 64) -> Cache:
    """A ``Cache`` of :class:`BufferLayer` holding the given per-layer ``(keys, values)``."""
    return Cache(layers=[BufferLayer(k, v, spare) for k, v in layers_kv])


def cache_tensors(cache: Cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The per-layer ``(keys, values)`` of any transformers cache after a prefill."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def left_padded(prefixes: list[list[tuple[torch.Tensor, torch.Tensor]]], lengths: list[int],
                repeats: int = 1):
    """Stack per-prefix caches (each ``(1, H, ≥ℓ_u, D)`` per layer, first ``ℓ_u`` used) right-aligned
    into ``(U * repeats, H, L, D)``, each prefix repeated ``repeats`` times in a row.

    Returns ``(layers_kv, pad)`` with ``pad[r] = L - ℓ_r`` zero columns before row ``r``.
    """
    width = max(lengths)
    n_layers = len(prefixes[0])
    out = []
    for layer in range(n_layers):
        k0, v0 = prefixes[0][layer]
        k = k0.new_zeros((len(prefixes), k0.shape[1], width, k0.shape[3]))
        v = v0.new_zeros((len(prefixes), v0.shape[1], width, v0.shape[3]))
        for r, (pre, n) in enumerate(zip(prefixes, lengths)):
            k[r, :, width - n:] = pre[layer][0][0, :, :n]
            v[r, :, width - n:] = pre[layer][1][0, :, :n]
        if repeats > 1:
            k, v = k.repeat_interleave(repeats, dim=0), v.repeat_interleave(repeats, dim=0)
        out.append((k, v))
    return out, [width - n for n in lengths for _ in range(repeats)]
