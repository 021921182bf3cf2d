"""Counter-based random streams (siautil.streams): deterministic, uniform, independent."""

import itertools

import numpy as np
import pytest
from scipy import stats

from siautil import streams


def test_a_stream_is_a_function_of_its_seed_and_coordinates():
    assert streams.key("0:q1", 1, 2) == streams.key("0:q1", 1, 2)
    keys = {streams.key(seed, *c) for seed in ("0:q1", "1:q1", "0:q2") for c in itertools.product(range(3), repeat=2)}
    assert len(keys) == 27  # every seed and coordinate gives its own stream
    assert streams.key("s", 1, 0) != streams.key("s", 0, 1)
    k = streams.key("s", 4)
    np.testing.assert_array_equal(streams.uniforms([k] * 3, [0, 1, 2]), streams.uniforms([k, k, k], [0, 1, 2]))
    with pytest.raises(ValueError, match="non-negative"):
        streams.key("s", -1)


def test_draws_are_uniform_and_independent():
    keys = [streams.key("u", i) for i in range(20000)]
    first, second = streams.uniforms(keys, [0] * 20000), streams.uniforms(keys, [1] * 20000)
    assert first.min() >= 0 and first.max() < 1
    assert stats.kstest(first, "uniform").pvalue > 0.001
    assert stats.kstest(streams.uniforms([keys[0]] * 20000, range(20000)), "uniform").pvalue > 0.001
    assert abs(stats.pearsonr(first, second).statistic) < 0.03  # consecutive draws of one stream
    assert abs(stats.pearsonr(first[:-1], first[1:]).statistic) < 0.03  # neighbouring streams


def test_permutations_are_uniform():
    counts = {}
    for i in range(6000):
        p = tuple(streams.permutation(streams.key("p", i), 3))
        counts[p] = counts.get(p, 0) + 1
    assert sorted(sorted(p) for p in counts) == [[0, 1, 2]] * 6
    assert stats.chisquare(list(counts.values())).pvalue > 0.001
    assert streams.permutation(streams.key("p", 0), 1) == [0] and streams.permutation(7, 0) == []


def test_keys_mix_as_the_uint64_finaliser_does():
    # the key derivation in Python ints is SplitMix64's finaliser (streams._mix, numpy uint64)
    rng = np.random.default_rng(0)
    xs = rng.integers(0, 2**63, size=200, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 200, dtype=np.uint64)
    with np.errstate(over="ignore"):
        expected = streams._mix(xs)
    assert [streams._mix_int(int(x)) for x in xs] == [int(v) for v in expected]
    # a fixed key, so a change of derivation (which would change every run's draws) is seen
    assert streams.key("0:q1", 1, 2, 3) == 0x51443952356F20EE
