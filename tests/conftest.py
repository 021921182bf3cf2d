"""Shared set-up for the whole suite: one torch thread, and the tiny random-weight models built
once per session.

``tiny(family="llama", seed=0, eos_bias=0.0, **overrides)`` returns the loaded model
(:class:`siautil.models.LoadedModel`) of :func:`siautil.testing.tiny_model` with those arguments, built the first time they are asked
for and shared from then on. A shared model must not be changed: a test that changes a model
(its ``generation_config``, its weights, a layer's config) builds its own with
``testing.tiny_model``. At the end of the session every shared model is compared with how it was
built, so a test that changed one anyway fails at its teardown instead of leaking the change.
``tiny_store(name, **settings)`` writes a small run store with one of them. The shared models
live on ``testing.DEVICE`` in ``testing.PRECISION`` (``SIAUTIL_TEST_DEVICE``,
``SIAUTIL_TEST_PRECISION``), which ``benchmarks/gpu_check.py`` sets to run the cache and engine
tests on a GPU.

This directory is on ``sys.path`` (pytest's rootdir insertion for a ``tests/`` without
``__init__.py``), so the helper modules beside the tests import by name: ``reference``,
``scripted_model``.
"""

import functools

import pytest
import torch

from siautil import rollout, store, tasks, testing
from siautil.config import RunConfig

torch.set_num_threads(1)


#: what ``save_pretrained`` fills into a config: bookkeeping, not a change (a change of dtype
#: shows in the weights)
SAVE_FILLS = ("architectures", "dtype")


def _config(model):
    return {k: v for k, v in model.config.to_dict().items() if k not in SAVE_FILLS}


def _state(model):
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            model.generation_config.to_dict(), _config(model), model.config._attn_implementation)


def _changes(model, before) -> list[str]:
    weights, generation, config, attention = before
    now = model.state_dict()
    out = [f"weights {k}" for k, v in weights.items() if k not in now or not torch.equal(now[k], v)]
    out += ["generation_config"] * (model.generation_config.to_dict() != generation)
    out += ["config"] * (_config(model) != config)
    out += ["attention implementation"] * (model.config._attn_implementation != attention)
    return out


@pytest.fixture(scope="session")
def tiny():
    """A factory of shared tiny models: ``tiny(family, seed=..., eos_bias=..., **overrides)``."""
    built = {}

    @functools.lru_cache(maxsize=None)
    def build(family, seed, eos_bias, overrides):
        loaded = testing.tiny_model(family, seed=seed, eos_bias=eos_bias, device=testing.DEVICE,
                                    precision=testing.PRECISION, **dict(overrides))
        built[(family, seed, eos_bias, overrides)] = (loaded.model, _state(loaded.model))
        return loaded

    def get(family="llama", seed=0, eos_bias=0.0, **overrides):
        return build(family, seed, float(eos_bias), tuple(sorted(overrides.items())))

    yield get
    changed = {key: what for key, (model, before) in built.items() if (what := _changes(model, before))}
    assert not changed, (f"a test changed shared tiny models {changed}; a test that changes a model builds its "
                         "own with siautil.testing.tiny_model")


@pytest.fixture
def tiny_store(tiny, tmp_path):
    """``tiny_store(name, **settings)``: the path of a run store ``tmp_path / name`` written by a
    tiny Llama on two GSM8K-style questions (2 traces, 4 continuations, stride 4, 16 new tokens,
    and ``settings``)."""
    def write(name, **kw):
        loaded = tiny("llama", seed=4, eos_bias=2.0)
        settings = rollout.RolloutConfig(n_traces=2, n_continuations=4, stride=4, max_new_tokens=16, **kw)
        path = tmp_path / name
        run = store.RunStore.open(path, RunConfig("tiny", "gsm8k", settings, precision="fp32").stored(loaded.weights))
        eng = rollout.Engine(loaded, tasks.get("gsm8k"), settings)
        questions = [tasks.Question(id="q1", text="Tom has 12 apples and buys 1 more. How many?", gold="13"),
                     tasks.Question(id="q2", text="2 + 2?", gold="4")]
        for k, q in enumerate(questions):
            run.write(k, eng.run_question(q, k))
        return path

    return write
