"""A key/value cache for decoding many continuations of a few shared prefixes.

Monte-Carlo continuations have a special shape: hundreds of rows decode at once, but they
continue a handful of prefixes, and each prefix is the start of one of a few traces (every
checkpoint of a trace is a prefix of the same token sequence). Decoding is bound by reading
keys and values, so storing each row's prefix in its own buffer, as a padded batch does,
reads the same prefix once per row at every step. :class:`SlotCache` instead keeps

* **sources**: prefilled sequences (a trace, or a prompt), held once and never copied; a row
  starts with the first ``n`` positions of one source;
* **slots**: ``B`` rows, each with its own preallocated buffer for the tokens it generates,
  written in place (no ``torch.cat`` per step). A finished row's slot takes the next waiting
  row at once (continuous batching), so the batch stays full until the work runs out.

Attention for a decoding step is split in two (cascade attention): each source's keys are
read once for all the rows that continue it, each row's own tokens are read once, and the two
partial softmaxes are merged exactly through their log-sum-exp. The result equals ordinary
attention over the row's whole sequence, and the engine's tests check it against full
forwards and ``generate`` for every architecture in the registry.

The layers are ``CacheLayerMixin`` s, so every architecture that takes a ``Cache`` works with
them unchanged; the split attention is registered with transformers' ``AttentionInterface``
and is active only inside :func:`attending`, around the engine's decoding forwards.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicLayer

ATTENTION = "siautil_slots"
_ACTIVE: contextvars.ContextVar[SlotCache | None] = contextvars.ContextVar("siautil_slot_cache", default=None)


class _Step:
    """What one decoding step reads and writes, shared by every layer: each row's source and
    prefix length, its own length so far, and the rows of each source."""

    def __init__(self, slots: int, device):
        self.device = device
        self.rows = torch.arange(slots, device=device)
        self.own = torch.zeros(slots, dtype=torch.long, device=device)  # where this step writes
        self.width = 1                                                   # own positions attended
        # own positions are read in two tiers: [0, split) for every row (a view, no copy), and
        # [split, width) only for the rows that long, gathered (see SlotCache.advance)
        self.split = 1
        self.long: torch.Tensor | None = None
        self.near = self.far = None  # the tiers' masks
        self.groups: list[tuple[int, torch.Tensor, torch.Tensor, int]] = []  # (source, rows, mask, length)


class SlotLayer(DynamicLayer):
    """One layer's per-slot buffers ``(B, H, capacity, D)`` of generated keys and values."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, slots: int, capacity: int, step: _Step):
        super().__init__()
        # zeroed, not empty: positions past a row's length are masked, but uninitialised memory
        # may hold NaN, and NaN survives masking (0 * NaN)
        self._k = keys.new_zeros((slots, keys.shape[1], capacity, keys.shape[3]))
        self._v = values.new_zeros((slots, values.shape[1], capacity, values.shape[3]))
        self.step = step
        self.is_initialized = True
        self.device = keys.device

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if key_states.shape[-2] != 1:
            raise ValueError("SlotLayer decodes one token per row per step; prefill with a DynamicCache")
        s = self.step
        self._k[s.rows, :, s.own] = key_states[:, :, 0]
        self._v[s.rows, :, s.own] = value_states[:, :, 0]
        # the attention reads the buffers itself (see slot_attention); these are not used
        return key_states, value_states

    def get_seq_length(self) -> int:
        return self.step.width - 1

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.step.width, 0

    def capacity(self) -> int:
        return self._k.shape[2]

    def grow(self, capacity: int) -> None:
        for name in ("_k", "_v"):
            old = getattr(self, name)
            new = old.new_zeros(old.shape[:2] + (capacity,) + old.shape[3:])
            new[:, :, : old.shape[2]] = old
            setattr(self, name, new)

    def select(self, indices: torch.Tensor) -> None:
        self._k = self._k.index_select(0, indices)
        self._v = self._v.index_select(0, indices)


class SlotCache(Cache):
    """``slots`` rows over shared sources, with own buffers of ``capacity`` generated tokens
    (grown on demand up to ``limit``). ``like`` is any prefill's per-layer ``(keys, values)``."""

    def __init__(self, like: list[tuple[torch.Tensor, torch.Tensor]], slots: int, capacity: int,
                 limit: int | None = None):
        self.step = _Step(slots, like[0][0].device)
        self.limit = limit
        self.sources: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        self.source = [-1] * slots   # slot -> source index (-1: empty)
        self.prefix = [0] * slots    # slot -> prefix length taken from its source
        self.length = [0] * slots    # slot -> own tokens written so far
        self.attended = 0            # layers that ran slot_attention in the current step
        super().__init__(layers=[SlotLayer(k, v, slots, capacity, self.step) for k, v in like])

    @property
    def slots(self) -> int:
        return len(self.source)

    def add_source(self, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
        """Hold a prefill's per-layer ``(1, H, L, D)`` keys and values (by reference); return its index."""
        self.sources.append(kv)
        return len(self.sources) - 1

    def put(self, slot: int, source: int, n: int) -> None:
        """Start ``slot`` as a row whose prefix is the first ``n`` positions of ``source``."""
        self.source[slot], self.prefix[slot], self.length[slot] = source, n, 0

    def clear(self, slot: int) -> None:
        self.source[slot] = -1

    def position(self, slot: int) -> int:
        """The position id of the next token of ``slot``."""
        return self.prefix[slot] + self.length[slot]

    def take(self, slot: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``slot``'s whole sequence so far (prefix and own tokens), per layer ``(1, H, n, D)``."""
        n, m, src = self.prefix[slot], self.length[slot], self.sources[self.source[slot]]
        return [(torch.cat([sk[:, :, :n], layer._k[slot: slot + 1, :, :m]], dim=2),
                 torch.cat([sv[:, :, :n], layer._v[slot: slot + 1, :, :m]], dim=2))
                for layer, (sk, sv) in zip(self.layers, src)]

    def advance(self) -> None:
        """Prepare the next step: every live row writes one token after its own tokens. Empty
        slots write at 0 and attend only to it (their output is never used)."""
        own = [m if s >= 0 else 0 for m, s in zip(self.length, self.source)]
        width = max(own) + 1
        if width > self.layers[0].capacity():
            cap = self.layers[0].capacity()
            new = max(width, min(cap + cap // 2, self.limit or width))
            for layer in self.layers:
                layer.grow(new)
        dev = self.step.device
        self.step.own = torch.tensor(own, dtype=torch.long, device=dev)
        self.step.width = width
        split = self._split(own)
        self.step.split = split
        pos = torch.arange(width, device=dev)[None, :]
        self.step.near = pos[:, :split] <= self.step.own[:, None]
        long = [j for j, m in enumerate(own) if m >= split]
        self.step.long = torch.tensor(long, dtype=torch.long, device=dev) if long else None
        if long:
            self.step.far = pos[:, split:] <= self.step.own[self.step.long][:, None]
        groups = {}
        for j, (s, n) in enumerate(zip(self.source, self.prefix)):
            if s >= 0:
                groups.setdefault(s, ([], []))
                groups[s][0].append(j)
                groups[s][1].append(n)
        self.step.groups = []
        for s, (rows, ns) in groups.items():
            n = torch.tensor(ns, device=dev)
            length = max(ns)
            self.step.groups.append((s, torch.tensor(rows, device=dev),
                                     torch.arange(length, device=dev)[None, :] < n[:, None], length))
        for j, s in enumerate(self.source):
            if s >= 0:
                self.length[j] += 1

    @staticmethod
    def _split(own: list[int]) -> int:
        """Where the dense tier ends: rows' lengths are spread (continuations end at random
        times), so reading every row up to the longest wastes most of the read. Positions
        past ``split`` are gathered (copied, then read) for the few rows that long, so the
        split minimises ``B * split + 2 * sum over long rows of (width - split)``."""
        width = max(own) + 1
        lengths = sorted(own)
        b = len(lengths)
        best, best_cost = width, b * width
        for q in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
            split = lengths[int(q * (b - 1))] + 1
            n_long = sum(1 for m in lengths if m >= split)
            cost = b * split + 2 * n_long * (width - split)
            if cost < best_cost:
                best, best_cost = split, cost
        return best

    def select(self, indices: list[int]) -> None:
        """Keep only the slots ``indices``, in that order."""
        idx = torch.tensor(indices, dtype=torch.long, device=self.step.device)
        for layer in self.layers:
            layer.select(idx)
        self.source = [self.source[j] for j in indices]
        self.prefix = [self.prefix[j] for j in indices]
        self.length = [self.length[j] for j in indices]
        self.step.rows = torch.arange(len(indices), device=idx.device)


def _partial(q, k, v, mask, scaling, softcap):
    """Unnormalised attention of queries ``q (..., Q, D)`` over ``k, v (..., L, D)``: returns
    ``(max score, sum of exp, exp-weighted sum of values)``, the pieces a softmax is merged from."""
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    scores = scores.masked_fill(~mask, float("-inf"))
    top = scores.amax(-1, keepdim=True)
    e = torch.exp(scores - top)
    return top, e.sum(-1, keepdim=True), torch.matmul(e.to(v.dtype), v).float()


def _merge(acc, rows: torch.Tensor, part) -> None:
    """Fold the partial softmax ``part`` of ``rows`` into the running ``acc`` (in place)."""
    top, total, out = acc
    t1, s1, o1 = top[rows], total[rows], out[rows]
    t2, s2, o2 = part
    m = torch.maximum(t1, t2)
    a1, a2 = torch.exp(t1 - m), torch.exp(t2 - m)
    top[rows], total[rows], out[rows] = m, a1 * s1 + a2 * s2, a1 * o1 + a2 * o2


def slot_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None, **kwargs):
    """Attention of one decoding step over a :class:`SlotCache`: per source, then per row, merged."""
    cache = _ACTIVE.get()
    if cache is None:
        raise RuntimeError(f"{ATTENTION} attention runs only inside kvbuffer.attending(model, cache)")
    layer = cache.layers[module.layer_idx]
    cache.attended += 1
    s = cache.step
    b, hq, _, d = query.shape
    hkv = layer._k.shape[1]
    scaling = d ** -0.5 if scaling is None else scaling
    q = query.reshape(b, hkv, hq // hkv, d)          # grouped-query heads share their key head
    # each row's own tokens: the near tier for every row, the far tier for long rows
    top, total, out = _partial(q, layer._k[:, :, : s.split], layer._v[:, :, : s.split], s.near[:, None, None, :],
                               scaling, softcap)
    if s.long is not None:
        far = slice(s.split, s.width)
        _merge((top, total, out), s.long,
               _partial(q.index_select(0, s.long), layer._k[:, :, far].index_select(0, s.long),
                        layer._v[:, :, far].index_select(0, s.long), s.far[:, None, None, :], scaling, softcap))
    # the shared prefixes: one read of each source for all its rows
    for src, rows, mask, length in s.groups:
        sk, sv = cache.sources[src][module.layer_idx]
        qs = q.index_select(0, rows).transpose(0, 1).reshape(hkv, -1, d)    # (Hkv, rows * groups, D)
        t2, s2, o2 = _partial(qs, sk[0, :, :length], sv[0, :, :length],
                              mask.repeat_interleave(hq // hkv, dim=0)[None], scaling, softcap)
        _merge((top, total, out), rows, [x.reshape(hkv, len(rows), hq // hkv, -1).transpose(0, 1) for x in (t2, s2, o2)])
    attn = (out / total).to(query.dtype).reshape(b, hq, 1, out.shape[-1])
    return attn.transpose(1, 2).contiguous(), None


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
