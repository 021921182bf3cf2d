"""Counter-based random streams: every sequence the engine samples draws from its own stream.

A stream is a 64-bit key derived from the run seed and the sequence's coordinates (question,
trace, checkpoint, continuation); draw ``k`` of a stream is a fixed function of ``(key, k)``
(SplitMix64's finaliser over ``key + (k + 1) * golden``), like the counter-based generators
of Salmon et al. (2011, "Parallel random numbers: as easy as 1, 2, 3"). So which sequences
share a batch, in what order rows are admitted, how a run is sharded or resumed change no
draw: a record depends on its own coordinates and on the logits the model computes for it.
(The logits themselves can differ in the last bits with the batch a row sits in; see
:mod:`siautil.rollout` for how runs stay reproducible anyway.)

Torch- and state-free: keys are Python ints, draws numpy arrays.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 values (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _mix_int(x: int) -> int:
    """:func:`_mix` on one Python int (the same wrapping arithmetic, masked to 64 bits): a
    key is derived once per sequence, and numpy's per-call cost was 8% of a toy run."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


@functools.lru_cache(maxsize=4096)
def _seed_key(seed: int | str) -> int:
    return int.from_bytes(hashlib.sha256(str(seed).encode()).digest()[:8], "little")


def key(seed: int | str, *coordinates: int) -> int:
    """The key of the stream at ``coordinates`` (non-negative ints) under ``seed`` (an int or a
    string, such as ``"<run seed>:<question id>"``)."""
    x = _seed_key(seed)
    for c in coordinates:
        if c < 0:
            raise ValueError(f"stream coordinates are non-negative, got {coordinates}")
        x = _mix_int((x ^ ((c + 1) * GOLDEN)) & MASK)
    return x


def uniforms(keys, counters) -> np.ndarray:
    """Draw ``counters[i]`` of stream ``keys[i]``, uniform on ``[0, 1)`` with 53 random bits."""
    k = np.asarray(keys, dtype=np.uint64)
    c = np.asarray(counters, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = _mix(k + (c + np.uint64(1)) * np.uint64(GOLDEN))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def permutation(stream: int, n: int) -> list[int]:
    """A uniformly random permutation of ``range(n)`` from ``stream`` (its draws ``0 .. n-2``,
    Fisher-Yates)."""
    u = uniforms(np.full(max(n - 1, 0), stream, dtype=np.uint64), np.arange(max(n - 1, 0)))
    out = list(range(n))
    for i in range(n - 1, 0, -1):
        j = int(u[n - 1 - i] * (i + 1))
        out[i], out[j] = out[j], out[i]
    return out
