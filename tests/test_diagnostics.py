"""Diagnostics (siautil.diagnostics): the alignment coefficient and its tables, the signatures
(cumulative gain, information gain, AUC by position, plateau, early stopping), the shuffle
ablation and budget curve, hand-computed and against scipy and sklearn; runs kept apart."""

from siautil import diagnostics, estimators, runs, store


def test_shuffled_and_unshuffled_runs_stay_apart(tiny_store):
    a = tiny_store("plain")
    b = tiny_store("shuffled", shuffle_prefix=True)
    recs = store.load_records([a, b])
    assert recs["run"].nunique() == 2 and set(recs["protocol"]) == {runs.PROTOCOL}
    recs["shuffled"] = recs["run"] == store.run_id(store.read_config(b))
    traj = estimators.estimate(recs)
    assert len(diagnostics.trace_alignment(traj).groupby(["run"])) == 2
    assert len(diagnostics.alignment(recs, n_resamples=10, min_checkpoints=2)) == 2
    curve, counts = diagnostics.cumulative_gain(traj, n_resamples=10)
    assert counts["run"].nunique() == 2
