"""The paper's reported numbers (siautil.paper): Table 1 in long form, each model's regime, our
cells beside the paper's, Tables 2 and 3, and how a table shows the quoted columns."""

import numpy as np
import pandas as pd

from siautil import models, paper, tables


def test_table_1_has_the_papers_eleven_models_on_three_datasets_with_the_registry_s_regimes():
    t = paper.table1()
    assert len(t) == 33 and sorted(t["model"].unique()) == sorted(models.PAPER_MODELS)
    assert (t.groupby("model")["dataset"].agg(tuple) == paper.DATASETS).all()
    assert t["paper"].between(-1, 1).all()
    assert (t["regime"] == t["model"].map(models.regime)).all() and set(t["regime"]) == {"Base", "SFT", "SFT+RL"}


def test_our_cells_sit_beside_the_papers_by_model_and_dataset():
    ours = pd.DataFrame(dict(model=["gemma-2-2b", "gemma-2-2b", "toy-sft", "someone/else"],
                             dataset=["svamp", "gsm8k", "toy", "gsm8k"], mean=[0.1, 0.2, 0.3, 0.4]))
    out = paper.beside_paper(ours)
    assert list(out.columns) == ["model", "regime", "dataset", "mean", "paper"] and "regime" not in ours
    assert out["regime"].tolist() == ["Base", "Base", models.REGISTRY["toy-sft"].regime, "?"]
    quoted = paper.table1().set_index(["model", "dataset"])["paper"]
    assert out["paper"].iloc[:2].tolist() == [quoted["gemma-2-2b", "svamp"], quoted["gemma-2-2b", "gsm8k"]]
    assert out["paper"].iloc[2:].isna().all() and out["mean"].tolist() == [0.1, 0.2, 0.3, 0.4]


def test_tables_2_and_3_quote_table_1_s_gsm8k_value_as_their_original():
    gsm8k = paper.table1().query("dataset == 'gsm8k'").set_index("model")["paper"]
    t3 = paper.table3()
    assert len(t3) == 4 and set(t3["dataset"]) == {"gsm8k"} and (t3["regime"] != "?").all()
    np.testing.assert_array_equal(t3["paper_original"], gsm8k[t3["model"]])
    ours = pd.DataFrame(dict(model=list(paper.TABLE2) + ["toy-sft"], shuffle="tokens", original=0.5, shuffled=0.1))
    t2 = paper.beside_table2(pd.concat([ours, ours.assign(shuffle="steps")], ignore_index=True))
    tokens = t2[t2["shuffle"] == "tokens"]
    np.testing.assert_array_equal(tokens["paper_original"].iloc[:4], gsm8k[list(paper.TABLE2)])
    assert tokens["paper_original"].iloc[4:].isna().all()  # a model the paper did not shuffle
    assert t2.loc[t2["shuffle"] == "steps", ["paper_original", "paper_shuffled"]].isna().all().all()  # it shuffled tokens


def test_a_table_heads_the_paper_s_numbers_as_quoted():
    shown = tables.show(paper.table3(), ["model", "paper_original"])
    assert list(shown.shown.columns) == ["model", "original (quoted from the paper)"]
    assert "coarser (quoted from the paper)" in shown.full.columns
