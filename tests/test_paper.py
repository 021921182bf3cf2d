"""The paper's reported numbers (siautil.paper): Table 1 in long form, each model's regime, our
cells beside the paper's, Table 3."""

import numpy as np
import pandas as pd

from siautil import models, paper


def test_paper_numbers_cover_table_1():
    t = paper.table1()
    assert len(t) == 33 and set(t["regime"]) == {"Base", "SFT", "SFT+RL"}
    assert t.query("model == 'gemma-2-2b' and dataset == 'gsm8k'")["paper"].item() == -0.530


def test_table_1_has_the_papers_eleven_models_on_three_datasets():
    t = paper.table1()
    assert sorted(t["model"].unique()) == sorted(models.PAPER_MODELS)
    assert (t.groupby("model")["dataset"].agg(tuple) == paper.DATASETS).all()
    assert t["paper"].between(-1, 1).all()


def test_our_cells_sit_beside_the_papers():
    ours = pd.DataFrame(dict(model=["gemma-2-2b", "toy-sft", "someone/else"], dataset=["svamp", "toy", "gsm8k"],
                             mean=[0.1, 0.2, 0.3]))
    out = paper.beside_paper(ours)
    assert list(out.columns) == ["model", "regime", "dataset", "mean", paper.QUOTED] and "regime" not in ours
    assert out["regime"].tolist() == ["Base", models.REGISTRY["toy-sft"].regime, "?"]
    assert out[paper.QUOTED].iloc[0] == 0.169 and out[paper.QUOTED].iloc[1:].isna().all()
    assert out["mean"].tolist() == [0.1, 0.2, 0.3]


def test_table_3_quotes_table_1s_gsm8k_value_as_its_original():
    t = paper.table3()
    assert len(t) == 4 and set(t["dataset"]) == {"gsm8k"} and (t["regime"] != "?").all()
    gsm8k = paper.table1().query("dataset == 'gsm8k'").set_index("model")["paper"]
    np.testing.assert_array_equal(t[f"original ({paper.QUOTED})"], gsm8k[t["model"]])


def test_table_2_is_quoted_beside_ours_for_the_models_the_paper_shuffled():
    ours = pd.DataFrame(dict(model=["qwen2.5-3b", "toy-sft"], original=[0.5, 0.6], shuffled=[0.1, 0.0]))
    out = paper.beside_table2(ours)
    assert out[f"original ({paper.QUOTED})"].iloc[0] == 0.682 and out[f"shuffled ({paper.QUOTED})"].iloc[0] == -0.132
    assert out[f"original ({paper.QUOTED})"].iloc[1:].isna().all() and "original" in out and len(out) == 2
