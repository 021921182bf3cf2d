"""The paper's reported numbers (siautil.paper): Table 1 in long form, each model's regime, our
cells beside the paper's, Table 3."""

from siautil import paper


def test_paper_numbers_cover_table_1():
    t = paper.table1()
    assert len(t) == 33 and set(t["regime"]) == {"Base", "SFT", "SFT+RL"}
    assert t.query("model == 'gemma-2-2b' and dataset == 'gsm8k'")["paper"].item() == -0.530
