"""The paper's reported numbers, for comparison only (book/formulas.md, "The paper's numbers")."""

from __future__ import annotations

import pandas as pd

from . import models

#: Table 1: mean alignment coefficient per model (registry name) and dataset.
TABLE1 = {
    "qwen2.5-3b": (0.682, 0.603, 0.344),
    "qwen2.5-3b-instruct": (0.744, 0.835, 0.666),
    "qwen2.5-math-1.5b": (0.499, 0.802, 0.676),
    "deepseek-llm-7b-chat": (0.346, 0.295, 0.143),
    "deepseek-r1-distill-qwen-7b": (0.795, 0.593, 0.783),
    "gemma-2-2b": (-0.530, 0.169, -0.208),
    "gemma-2-2b-it": (0.522, 0.462, 0.578),
    "llama-3.2-3b": (-0.361, 0.424, -0.366),
    "llama-3.2-3b-instruct": (0.576, 0.399, 0.545),
    "olmo-3-7b-think-sft": (0.964, 0.884, 0.960),
    "olmo-3-7b-think": (0.885, 0.778, 0.887),
}
DATASETS = ("gsm8k", "svamp", "arc-challenge")

#: Table 2 (GSM8K): original -> shuffled prefixes.
TABLE2 = {"qwen2.5-3b": (0.682, -0.132), "qwen2.5-3b-instruct": (0.744, -0.005),
          "deepseek-r1-distill-qwen-7b": (0.795, 0.020), "gemma-2-2b-it": (0.522, -0.063)}

#: Table 3 (GSM8K): original -> coarser Monte-Carlo estimator.
TABLE3 = {"qwen2.5-3b": (0.682, 0.635), "qwen2.5-3b-instruct": (0.744, 0.831),
          "deepseek-r1-distill-qwen-7b": (0.795, 0.711), "gemma-2-2b-it": (0.522, 0.506)}


def table1() -> pd.DataFrame:
    """Table 1 in long form: model, regime, dataset, paper coefficient."""
    rows = [dict(model=m, regime=models.REGISTRY[m].regime, dataset=d, paper=v)
            for m, vals in TABLE1.items() for d, v in zip(DATASETS, vals)]
    return pd.DataFrame(rows)


def beside_paper(table: pd.DataFrame) -> pd.DataFrame:
    """Our Table 1 cells (``diagnostics.alignment_table`` with model and dataset, measured here)
    beside the paper's (column ``paper``, shown as "quoted from the paper": no paper model has
    run on this machine), with each model's regime; cells the paper did not run have none."""
    out = table.copy()
    out.insert(1, "regime", [models.regime(m) for m in out["model"]])
    return out.merge(table1()[["model", "dataset", "paper"]], on=["model", "dataset"], how="left")


def beside_table2(table: pd.DataFrame) -> pd.DataFrame:
    """Our Table 2 rows (``diagnostics.shuffle_table``, measured here) with the paper's original
    and shuffled-prefix coefficients (GSM8K; ``paper_original``, ``paper_shuffled``); models the
    paper did not shuffle have none."""
    out = table.copy()
    # the paper shuffled tokens: its numbers stand beside that shuffle only
    tokens = out["shuffle"].eq("tokens") if "shuffle" in out else pd.Series(True, index=out.index)
    out["paper_original"] = [TABLE2.get(m, (None, None))[0] if t else None for m, t in zip(out["model"], tokens)]
    out["paper_shuffled"] = [TABLE2.get(m, (None, None))[1] if t else None for m, t in zip(out["model"], tokens)]
    return out


def table3() -> pd.DataFrame:
    """Table 3 (GSM8K), quoted for comparison: per model, the paper's mean coefficient with its
    original estimator and with the coarser one (a coarser stride and fewer continuations per
    prefix; book/formulas.md, "Diagnostics"): ``paper_original``, ``paper_coarser``."""
    rows = [dict(model=m, regime=models.regime(m), dataset="gsm8k", paper_original=a, paper_coarser=b)
            for m, (a, b) in TABLE3.items()]
    return pd.DataFrame(rows)
