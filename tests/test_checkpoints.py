"""The checkpoints of a trace (siautil.checkpoints): {0, s, 2s, ...} and T."""

from siautil import checkpoints as cp


def test_checkpoints():
    assert cp.checkpoints(10, 4) == [0, 4, 8, 10]
    assert cp.checkpoints(8, 4) == [0, 4, 8]
    assert cp.checkpoints(0, 3) == [0]
