"""The checkpoints of a trace, in a module of its own so that torch-free code (the oracle)
and the sampling engine (:mod:`siautil.rollout`) share one definition without importing
each other. Imports nothing."""

from __future__ import annotations


def checkpoints(T: int, stride: int) -> list[int]:
    """The checkpoints of a trace of ``T`` tokens: ``{0, s, 2s, …} ∪ {T}`` (Appendix A)."""
    return sorted(set(range(0, T + 1, stride)) | {T})
