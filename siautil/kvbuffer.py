"""A key/value cache for decoding many continuations of a few shared prefixes.

Monte-Carlo continuations have a special shape: hundreds of rows decode at once, but they
continue a handful of prefixes, and each prefix is the start of one of a few traces (every
checkpoint of a trace is a prefix of the same token sequence). Decoding is bound by reading
keys and values, so storing each row's prefix in its own buffer, as a padded batch does,
reads the same prefix once per row at every step. :class:`SlotCache` instead keeps

* **sources**: prefilled sequences (a trace, or a prompt), held once; a row starts with the
  first ``n`` positions of one source (the sources in use are laid out in one padded batch
  per layer, read by all their rows, and kept from step to step until the sources in use or
  their lengths change);
* **slots**: ``B`` rows, each with its own preallocated buffer for the tokens it generates,
  written in place (no ``torch.cat`` per step). A finished row's slot takes the next waiting
  row at once (continuous batching), so the batch stays full until the work runs out.

Attention for a decoding step lays each row's scores out as ``[its source's prefix | its own
tokens]``: each source's keys are read once for all the rows that continue it, each row's own
keys once, and one masked softmax over the row gives exactly the attention over its whole
sequence (the values are read the same way). The engine's tests check it against full
forwards and ``generate`` for every architecture in the registry.

The layers are ``CacheLayerMixin`` s, so every architecture that takes a ``Cache`` works with
them unchanged; this attention is registered with transformers' ``AttentionInterface``
and is active only inside :func:`attending`, around the engine's decoding forwards.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicLayer

ATTENTION = "siautil_slots"
EMPTY, PRIVATE = -1, -2  # a slot's source when it holds no row, or a row with its prefix copied in
_ACTIVE: contextvars.ContextVar[SlotCache | None] = contextvars.ContextVar("siautil_slot_cache", default=None)


class _Step:
    """What one decoding step reads and writes, shared by every layer: where each row writes
    its new token, the rows of each source, and which score columns each row may attend to."""

    def __init__(self, slots: int, device):
        self.device = device
        self.rows = torch.arange(slots, device=device)
        self.own = torch.zeros(slots, dtype=torch.long, device=device)  # where this step writes
        self.position = torch.zeros(slots, dtype=torch.long, device=device)  # position id of the new token
        self.width = 1                  # own positions attended (the longest row's, plus this step's)
        self.prefix_cols = 0            # score columns for prefixes (the longest prefix in use)
        self.groups: list[tuple[int, int]] = []  # (source, the longest prefix its rows take from it)
        self.layout: tuple = ()          # the groups and prefix columns: what the padded sources hold
        # the groups laid out as one padded batch: slot of each (group, place) (G * R), and
        # which of those places hold a row (their index in that layout, and their slots)
        self.padded = self.placed = self.placed_rows = None
        self.places = 0                 # R: the most rows of any group
        self.hidden: torch.Tensor | None = None  # (B, 1, 1, prefix_cols + width): True where masked


class SlotLayer(DynamicLayer):
    """One layer's per-slot buffers of generated keys ``(B, H, D, capacity)`` (transposed) and
    values ``(B, H, capacity, D)``."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, slots: int, capacity: int, step: _Step):
        super().__init__()
        # zeroed, not empty: positions past a row's length are masked, but uninitialised memory
        # may hold NaN, and NaN survives masking (0 * NaN)
        # keys are stored transposed, (B, H, D, capacity): a decoding step multiplies each row's
        # few query heads with its own keys, a product that runs faster with the keys'
        # positions on the contiguous axis (benchmarks/rollout_throughput.py)
        self._k = keys.new_zeros((slots, keys.shape[1], keys.shape[3], capacity))
        self._v = values.new_zeros((slots, values.shape[1], capacity, values.shape[3]))
        # the sources in use as one zero-padded batch, (layout, keys (G, H, D, cols), values
        # (G, H, cols, D)): sources never change once added, so a layout names its contents
        self.prefixes: tuple[tuple, torch.Tensor, torch.Tensor] | None = None
        self.step = step
        self.is_initialized = True
        self.device = keys.device

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if key_states.shape[-2] != 1:
            raise ValueError("SlotLayer decodes one token per row per step; prefill with a DynamicCache")
        s = self.step
        self._k[s.rows, :, :, s.own] = key_states[:, :, 0]
        self._v[s.rows, :, s.own] = value_states[:, :, 0]
        # the attention reads the buffers itself (see slot_attention); these are not used
        return key_states, value_states

    def get_seq_length(self) -> int:
        return self.step.width - 1

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.step.width, 0

    def capacity(self) -> int:
        return self._v.shape[2]

    def grow(self, capacity: int) -> None:
        k, v = self._k, self._v
        self._k = k.new_zeros(k.shape[:3] + (capacity,))
        self._k[..., : k.shape[3]] = k
        self._v = v.new_zeros(v.shape[:2] + (capacity,) + v.shape[3:])
        self._v[:, :, : v.shape[2]] = v

    def own_keys(self, slot: int, n: int) -> torch.Tensor:
        """``slot``'s first ``n`` own keys, ``(1, H, n, D)`` like a prefill's (a view)."""
        return self._k[slot: slot + 1, :, :, :n].transpose(-1, -2)

    def select(self, indices: torch.Tensor) -> None:
        self._k = self._k.index_select(0, indices)
        self._v = self._v.index_select(0, indices)

    def add_rows(self, n: int) -> None:
        for name in ("_k", "_v"):
            old = getattr(self, name)
            setattr(self, name, torch.cat([old, old.new_zeros((n,) + old.shape[1:])]))


class SlotCache(Cache):
    """``slots`` rows over shared sources, with own buffers of ``capacity`` generated tokens
    (grown on demand up to ``limit``). ``like`` is any prefill's per-layer ``(keys, values)``."""

    def __init__(self, like: list[tuple[torch.Tensor, torch.Tensor]], slots: int, capacity: int,
                 limit: int | None = None):
        self.step = _Step(slots, like[0][0].device)
        self.limit = limit
        self.sources: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        self.source = [EMPTY] * slots  # slot -> source index, EMPTY or PRIVATE
        self.prefix = [0] * slots    # slot -> prefix length taken from its source
        self.length = [0] * slots    # slot -> own tokens written so far
        self.attended = 0            # layers that ran slot_attention in the current step
        super().__init__(layers=[SlotLayer(k, v, slots, capacity, self.step) for k, v in like])

    def add_source(self, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
        """Hold a prefill's per-layer ``(1, H, L, D)`` keys and values (by reference); return its index."""
        self.sources.append(kv)
        return len(self.sources) - 1

    def put(self, slot: int, source: int, n: int) -> None:
        """Start ``slot`` as a row whose prefix is the first ``n`` positions of ``source``."""
        self.source[slot], self.prefix[slot], self.length[slot] = source, n, 0

    def put_private(self, slot: int, kv: list[tuple[torch.Tensor, torch.Tensor]], n: int) -> None:
        """Start ``slot`` as a row that copies the first ``n`` positions of ``kv`` into its own
        buffer: for prefixes that only a few rows continue, where a source of their own would
        cost more small operations per layer than the copy saves."""
        self._reserve(n)
        for layer, (k, v) in zip(self.layers, kv):
            layer._k[slot, :, :, :n] = k[0, :, :n].transpose(-1, -2)
            layer._v[slot, :, :n] = v[0, :, :n]
        self.source[slot], self.prefix[slot], self.length[slot] = PRIVATE, 0, n

    def clear(self, slot: int) -> None:
        self.source[slot] = EMPTY

    def take(self, slot: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``slot``'s whole sequence so far (prefix and own tokens), per layer ``(1, H, n, D)``."""
        n, m = self.prefix[slot], self.length[slot]
        if self.source[slot] == PRIVATE:
            return [(layer.own_keys(slot, m).contiguous(), layer._v[slot: slot + 1, :, :m].clone())
                    for layer in self.layers]
        src = self.sources[self.source[slot]]
        return [(torch.cat([sk[:, :, :n], layer.own_keys(slot, m)], dim=2),
                 torch.cat([sv[:, :, :n], layer._v[slot: slot + 1, :, :m]], dim=2))
                for layer, (sk, sv) in zip(self.layers, src)]

    def advance(self) -> None:
        """Prepare the next step: every live row writes one token after its own tokens, at the
        position ids ``step.position``. Empty slots write at 0 and attend only to it (their
        output is never used)."""
        own = [m if s != EMPTY else 0 for m, s in zip(self.length, self.source)]
        width = max(own) + 1
        self._reserve(width)
        dev = self.step.device
        self.step.width = width
        groups: dict[int, list[int]] = {}
        for j, src in enumerate(self.source):
            if src >= 0:
                groups.setdefault(src, []).append(j)
        self.step.groups = [(src, max(self.prefix[j] for j in rows)) for src, rows in groups.items()]
        places = max(map(len, groups.values()), default=0)
        padded = [rows[p] if p < len(rows) else 0 for rows in groups.values() for p in range(places)]
        placed = [g * places + p for g, rows in enumerate(groups.values()) for p in range(len(rows))]
        prefix = [n if src >= 0 else 0 for n, src in zip(self.prefix, self.source)]
        # the step's indices cross to the device in one copy (each copy from host memory waits for the host)
        b, n_padded = len(own), len(padded)
        flat = torch.tensor(own + prefix + padded + placed, dtype=torch.long).to(dev, non_blocking=True)
        self.step.own, prefix = flat[:b], flat[b: 2 * b]
        self.step.padded, self.step.placed = flat[2 * b: 2 * b + n_padded], flat[2 * b + n_padded:]
        self.step.places = places
        self.step.placed_rows = self.step.padded[self.step.placed]
        cols = max((length for _, length in self.step.groups), default=0)
        self.step.prefix_cols = cols
        self.step.layout = (tuple(self.step.groups), cols)
        self.step.position = prefix + self.step.own
        c = torch.arange(cols + width, device=dev)[None, :]
        seen = torch.where(c < cols, c < prefix[:, None], c - cols <= self.step.own[:, None])
        self.step.hidden = ~seen[:, None, None, :]
        for j, s in enumerate(self.source):
            if s != EMPTY:
                self.length[j] += 1

    def _reserve(self, needed: int) -> None:
        """Make every slot's buffer hold ``needed`` positions, growing by half (at most to ``limit``)."""
        have = self.layers[0].capacity()
        if needed > have:
            new = max(needed, min(have + have // 2, self.limit or needed))
            for layer in self.layers:
                layer.grow(new)

    def add_slots(self, n: int) -> None:
        """Add ``n`` empty slots after the present ones (rows that arrive while decoding)."""
        for layer in self.layers:
            layer.add_rows(n)
        self.source += [EMPTY] * n
        self.prefix += [0] * n
        self.length += [0] * n
        self.step.rows = torch.arange(len(self.source), device=self.step.device)

    def select(self, indices: list[int]) -> None:
        """Keep only the slots ``indices``, in that order."""
        idx = torch.tensor(indices, dtype=torch.long, device=self.step.device)
        for layer in self.layers:
            layer.select(idx)
        self.source = [self.source[j] for j in indices]
        self.prefix = [self.prefix[j] for j in indices]
        self.length = [self.length[j] for j in indices]
        self.step.rows = torch.arange(len(indices), device=idx.device)


def slot_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None, **kwargs):
    """Attention of one decoding step over a :class:`SlotCache`.

    The scores of a row are laid out as ``[its source's prefix | its own tokens]``: each
    source's keys are multiplied once with the queries of all its rows, each row's own keys
    with its own query; one masked softmax over the row gives exactly the attention over
    its whole sequence; the values are read the same way. The sources in use are laid out in
    one zero-padded batch per layer, so all groups take one product (with many small groups,
    the indexing around each small product costs more than the product); the batch is kept
    until the layout changes (a source joins or leaves, or a group's longest prefix changes),
    so a step copies no prefix while the rows continue the same sources. The padding adds
    exact zeros, which leave the sums unchanged."""
    cache = _ACTIVE.get()
    if cache is None:
        raise RuntimeError(f"{ATTENTION} attention runs only inside kvbuffer.attending(model, cache)")
    layer = cache.layers[module.layer_idx]
    cache.attended += 1
    s = cache.step
    b, hq, _, d = query.shape
    hkv = layer._v.shape[1]
    r = hq // hkv
    q = query.reshape(b, hkv, r, d)  # grouped-query heads share their key head
    cols, width = s.prefix_cols, s.width
    own_k, own_v = layer._k[..., :width], layer._v[:, :, :width]
    scores = q.new_empty((b, hkv, r, cols + width), dtype=torch.float32)
    scores[..., cols:] = torch.matmul(q, own_k)
    groups, places = len(s.groups), s.places
    if groups:
        # every group's source keys and values in one padded batch, keys transposed like the
        # slots' own: one product for all groups instead of a handful of small ones per group
        if layer.prefixes is None or layer.prefixes[0] != s.layout:
            layer.prefixes = None  # freed before its successor is allocated
            kt = q.new_zeros((groups, hkv, d, cols))
            vs = q.new_zeros((groups, hkv, cols, d))
            for g, (src, length) in enumerate(s.groups):
                sk, sv = cache.sources[src][module.layer_idx]
                kt[g, :, :, :length] = sk[0, :, :length].transpose(-1, -2)
                vs[g, :, :length] = sv[0, :, :length]
            layer.prefixes = (s.layout, kt, vs)
        _, kt, vs = layer.prefixes
        qg = q.index_select(0, s.padded).reshape(groups, places, hkv, r, d).transpose(1, 2)
        part = torch.matmul(qg.reshape(groups, hkv, places * r, d), kt)
        part = part.reshape(groups, hkv, places, r, cols).transpose(1, 2).reshape(groups * places, hkv, r, cols)
        scores[s.placed_rows, :, :, :cols] = part.index_select(0, s.placed).float()
    scores.mul_(scaling if scaling is not None else d ** -0.5)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    probs = scores.masked_fill_(s.hidden, float("-inf")).softmax(-1).to(own_v.dtype)
    out = torch.matmul(probs[..., cols:], own_v).float()  # the two parts are summed in float32
    if groups:
        pg = probs.index_select(0, s.padded)[..., :cols].reshape(groups, places, hkv, r, cols).transpose(1, 2)
        part = torch.matmul(pg.reshape(groups, hkv, places * r, cols), vs)
        part = part.reshape(groups, hkv, places, r, d).transpose(1, 2).reshape(groups * places, hkv, r, d)
        out.index_add_(0, s.placed_rows, part.index_select(0, s.placed).float())
    return out.to(query.dtype).reshape(b, hq, 1, -1).transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, slot_attention)


@contextmanager
def attending(model, cache: SlotCache):
    """Within this block, ``model``'s attention reads ``cache`` with :func:`slot_attention`.
    Raises if a forward inside it did not attend through it in every layer (a model whose
    attention bypasses transformers' ``AttentionInterface`` would otherwise see only the
    newest token, silently)."""
    config = model.config
    before = config._attn_implementation
    token = _ACTIVE.set(cache)
    config._attn_implementation = ATTENTION
    cache.attended = 0
    try:
        yield
    finally:
        config._attn_implementation = before
        _ACTIVE.reset(token)
    if cache.attended != len(cache.layers):
        raise RuntimeError(f"{type(model).__name__}: {cache.attended} of {len(cache.layers)} attention layers went "
                           "through transformers' AttentionInterface; the engine needs all of them (models "
                           "with custom remote code may not dispatch there)")


def cache_tensors(cache: Cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The per-layer ``(keys, values)`` of any transformers cache after a prefill."""
    return [(layer.keys, layer.values) for layer in cache.layers]
