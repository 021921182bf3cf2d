"""The checkpoints of a trace (siautil.checkpoints): {0, s, 2s, ...} and T."""

from hypothesis import given
from hypothesis import strategies as st

from siautil import checkpoints as cp


def test_checkpoints():
    assert cp.checkpoints(10, 4) == [0, 4, 8, 10]
    assert cp.checkpoints(8, 4) == [0, 4, 8]
    assert cp.checkpoints(0, 3) == [0]


@given(st.integers(0, 1000), st.integers(1, 64))
def test_checkpoints_step_by_the_stride_and_end_at_T(T, stride):
    c = cp.checkpoints(T, stride)
    assert c[0] == 0 and c[-1] == T and len(c) == len(set(c))
    steps = [b - a for a, b in zip(c, c[1:])]
    assert all(s == stride for s in steps[:-1]) and all(0 < s <= stride for s in steps[-1:])
    assert len(c) == T // stride + 1 + (T % stride != 0)
