"""The decoding distribution: temperature, top-k, top-p (and min-p) with the exact semantics of
transformers' logits processors, which ``generate(do_sample=True)`` applies in this order."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import LogitsProcessorList, MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

#: ``generate`` applies top-k 50 when neither the model's generation config nor the call sets it.
GENERATE_DEFAULT_TOP_K = 50


@dataclass(frozen=True)
class SamplingChain:
    """The effective sampling settings, recorded in every run's configuration."""

    temperature: float = 1.0
    top_k: int = GENERATE_DEFAULT_TOP_K  # 0 disables
    top_p: float = 1.0
    min_p: float | None = None

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (greedy decoding has no entropy to measure), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")

    @classmethod
    def for_model(cls, model, temperature: float | None = None, top_p: float | None = None,
                  top_k: int | None = None, min_p: float | None = None) -> "SamplingChain":
        """The chain ``generate(do_sample=True, ...)`` would use: the run's settings, else the
        model's generation config, else generate's defaults (top-k 50)."""
        gc = getattr(model, "generation_config", None)

        def pick(value, attr, default):
            if value is not None:
                return value
            v = getattr(gc, attr, None) if gc is not None else None
            return default if v is None else v

        return cls(temperature=float(pick(temperature, "temperature", 1.0)),
                   top_k=int(pick(top_k, "top_k", GENERATE_DEFAULT_TOP_K)),
                   top_p=float(pick(top_p, "top_p", 1.0)),
                   min_p=pick(min_p, "min_p", None))

    def as_dict(self) -> dict:
        return asdict(self)

    def generate_kwargs(self) -> dict:
        """Keyword arguments that make ``model.generate`` sample this same distribution."""
        kw = dict(do_sample=True, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                  repetition_penalty=1.0)
        if self.min_p is not None:
            kw["min_p"] = self.min_p
        return kw

    def processors(self) -> LogitsProcessorList:
        """transformers' own warpers, in generate's order."""
        out = LogitsProcessorList()
        if self.temperature != 1.0:
            out.append(TemperatureLogitsWarper(self.temperature))
        if self.top_k:
            out.append(TopKLogitsWarper(top_k=self.top_k))
        if self.top_p < 1.0:
            out.append(TopPLogitsWarper(top_p=self.top_p))
        if self.min_p is not None:
            out.append(MinPLogitsWarper(min_p=self.min_p))
        return out

    # ------------------------------------------------------------------ the fast path

    def candidates(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(token ids, probabilities)`` of the tokens the chain keeps, per row: shape ``(B, k')``.

        Equal in distribution to ``softmax(processors(logits))`` but without sorting the whole
        vocabulary: top-k keeps every token tied with the k-th score (as ``TopKLogitsWarper``
        does), and top-p is then applied to those candidates only, which gives the same set
        because the removed tokens have probability zero; top-p alone grows a ``torch.topk``
        candidate set until it holds the nucleus (:meth:`_nucleus`).
        """
        raw = logits.float()
        if self.min_p is not None or (not self.top_k and self.top_p >= 1.0) or self.top_k >= raw.shape[-1]:
            return self._full(raw)
        scores = raw / self.temperature if self.temperature != 1.0 else raw
        if not self.top_k:
            return self._nucleus(raw, scores)
        vals, ids = torch.topk(scores, self.top_k, dim=-1)
        kth = vals[..., -1:]
        n_keep = int((scores >= kth).sum(-1).max())  # ties with the k-th score are kept
        if n_keep > self.top_k:
            vals, ids = torch.topk(scores, n_keep, dim=-1)
            vals = vals.masked_fill(vals < kth, float("-inf"))
        if self.top_p < 1.0:
            vals = vals.masked_fill(self._outside_nucleus(vals, vals.logsumexp(-1, keepdim=True)), float("-inf"))
        return ids, vals.softmax(-1)

    def _full(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """transformers' warpers on the whole row of unscaled logits ``raw``."""
        ids = torch.arange(raw.shape[-1], device=raw.device).expand_as(raw)
        return ids, self.processors()(None, raw).softmax(-1)

    def _outside_nucleus(self, vals: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
        """TopPLogitsWarper's rule on candidate scores ``vals`` whose full-vocabulary
        normaliser is ``lse``: sort ascending, drop tokens whose cumulative probability (every
        token outside the candidates counted below them) is ``<= 1 - top_p``, always keep the
        most likely one."""
        asc_vals, asc_pos = torch.sort(vals, descending=False)
        p = (asc_vals - lse).exp()
        rest = (1 - p.sum(-1, keepdim=True)).clamp_min(0)
        remove = (rest + p.cumsum(-1)) <= (1 - self.top_p)
        remove[..., -1:] = False
        return remove.scatter(-1, asc_pos, remove)

    def _nucleus(self, raw: torch.Tensor, scores: torch.Tensor, k: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-p without sorting the vocabulary: take the ``k`` best candidates by
        ``torch.topk``; when every row's lowest candidate falls outside the nucleus, so does
        every token below it, and the nucleus lies within the candidates. Otherwise ``k`` grows
        (×4), and only past a quarter of the vocabulary is the whole row sorted."""
        lse = scores.logsumexp(-1, keepdim=True)
        v = scores.shape[-1]
        while k < v // 4:
            vals, ids = torch.topk(scores, k, dim=-1)
            out = self._outside_nucleus(vals, lse)
            lowest = vals.argmin(-1, keepdim=True)
            if bool(out.gather(-1, lowest).all()):
                vals = vals.masked_fill(out, float("-inf"))
                return ids, vals.softmax(-1)
            k *= 4
        return self._full(raw)

    def sample(self, logits: torch.Tensor, generator: torch.Generator | None = None,
               num_samples: int = 1) -> torch.Tensor:
        """Draw ``num_samples`` token ids per row (with replacement): shape ``(B, num_samples)``."""
        ids, probs = self.candidates(logits)
        pick = torch.multinomial(probs, num_samples, replacement=True, generator=generator)
        return ids.gather(-1, pick)

    def sample_uniform(self, logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One token id per row by inversion: candidates in token-id order, the first whose
        cumulative probability exceeds ``u[row]`` (``u`` uniform on ``[0, 1)``, one per row, e.g.
        from :mod:`siautil.streams`). The same distribution as :meth:`sample`, with the randomness
        supplied per row; the fixed order makes a row's token a function of its own logits and
        ``u``, whatever else is in the batch (which candidate path the batch took included).
        Logits that are not finite (NaN) are refused: they have no distribution to sample."""
        ids, probs = self.candidates(logits)
        if ids.shape[-1] < logits.shape[-1]:  # the full path is in id order already
            ids, order = ids.sort(-1)
            probs = probs.gather(-1, order)
        cum = probs.double().cumsum(-1)
        total = cum[:, -1:]
        if not bool(torch.isfinite(total).all()):
            raise ValueError("the model's logits are not finite (NaN or inf) for some row; check the weights "
                             "and precision (a bf16 or nf4 overflow?)")
        target = u.to(device=cum.device, dtype=torch.float64)[:, None] * total
        pick = (cum <= target).sum(-1, keepdim=True).clamp_max(ids.shape[-1] - 1)
        return ids.gather(-1, pick)[:, 0]
