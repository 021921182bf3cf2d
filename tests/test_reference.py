"""Records from fixed seeds, identical to the reference run stored before the restructuring (#13)."""

import json

import pytest

from reference import PATH, records

STORED = json.loads(PATH.read_text())


@pytest.fixture(scope="module")
def fresh():
    return json.loads(json.dumps(records()))


@pytest.mark.parametrize("name", sorted(STORED))
def test_records_equal_the_stored_reference(fresh, name):
    assert len(fresh[name]) == len(STORED[name])
    for got, want in zip(fresh[name], STORED[name]):
        assert got == want
