"""The sampling chain (siautil.sampling): the fast sampler equals transformers' processors, and
the chain follows generate's defaults."""

import pytest
import torch

from siautil import testing
from siautil.sampling import SamplingChain


@pytest.mark.parametrize("chain", [
    SamplingChain(temperature=0.7, top_k=50, top_p=0.95),
    SamplingChain(temperature=1.3, top_k=5, top_p=0.5),
    SamplingChain(temperature=1.0, top_k=0, top_p=0.9),
    SamplingChain(temperature=0.5, top_k=20, top_p=1.0),
    SamplingChain(temperature=1.0, top_k=10, top_p=0.8, min_p=0.05),
    # top-k off: the temperature is applied once, and top-p alone finds its nucleus in a
    # growing top-k candidate set (a flat row needs the full sort)
    SamplingChain(temperature=1.4, top_k=0, top_p=1.0),
    SamplingChain(temperature=0.7, top_k=0, top_p=0.95),
    SamplingChain(temperature=2.0, top_k=0, top_p=0.99),
    SamplingChain(temperature=0.7, top_k=0, top_p=0.9, min_p=0.02),
])
def test_fast_sampler_is_transformers_chain(chain):
    torch.manual_seed(0)
    logits = torch.randn(6, 300) * 3
    logits[0, :8] = 5.0  # ties at the top-k boundary
    want = chain.processors()(None, logits.clone()).softmax(-1)
    ids, probs = chain.candidates(logits)
    got = torch.zeros_like(want).scatter_add_(-1, ids, probs)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_chain_follows_generate_defaults():
    model = testing.tiny_model("llama").model  # its own: the test changes its generation_config
    model.generation_config.top_k = None
    assert SamplingChain.for_model(model, 0.7, 0.95).top_k == 50
    model.generation_config.top_k = 20
    assert SamplingChain.for_model(model, 0.7, 0.95).top_k == 20
    assert SamplingChain.for_model(model, 0.7, 0.95, top_k=0).top_k == 0
    with pytest.raises(ValueError, match="temperature"):
        SamplingChain(temperature=0)


@pytest.mark.parametrize("chain", [SamplingChain(temperature=0.7, top_k=0, top_p=0.95),
                                   SamplingChain(temperature=1.3, top_k=5, top_p=1.0)])
def test_sampling_by_inversion_gives_the_chains_probabilities(chain):
    # u on a fine grid of [0, 1): the share of u mapped to each token is its probability, to
    # the grid's resolution, ties at the top-k boundary included
    torch.manual_seed(1)
    logits = torch.randn(1, 300) * 3
    logits[0, :8] = 5.0
    want = chain.processors()(None, logits.clone()).softmax(-1)[0]
    n = 200_000
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    picks = chain.sample_uniform(logits.expand(n, -1), u)
    got = torch.bincount(picks, minlength=300).double() / n
    torch.testing.assert_close(got, want.double(), atol=2 / n, rtol=0)


def test_a_rows_draw_does_not_depend_on_its_neighbours():
    # a flat neighbour sends the whole batch down the full-vocabulary path; candidates in id
    # order keep the row's token the same, and non-finite logits are refused
    chain = SamplingChain(temperature=0.7, top_k=0, top_p=0.95)
    torch.manual_seed(2)
    row = torch.randn(1, 2000) * 4
    flat = torch.zeros(1, 2000)
    u = torch.tensor([0.1, 0.5, 0.7, 0.93], dtype=torch.float64)
    for x in u:
        alone = chain.sample_uniform(row, x[None])
        beside = chain.sample_uniform(torch.cat([row, flat]), torch.stack([x, x]))[:1]
        assert alone.item() == beside.item()
    with pytest.raises(ValueError, match="not finite"):
        chain.sample_uniform(torch.full((1, 50), float("nan")), torch.tensor([0.5]))
