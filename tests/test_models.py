"""Loading models (siautil.models): registry and hub names, precisions, the weights a run names,
local directories."""

import pytest
import torch

from siautil import models


def test_model_resolution_errors():
    with pytest.raises(models.ModelError, match="Registry names: .*qwen2.5-3b.*hub id"):
        models.resolve("not-a-model")
    with pytest.raises(models.ModelError, match="CUDA GPU.*precision='fp32'"):
        models.quantization_config("4bit", "cpu")
    assert models.resolve("Qwen/Qwen2.5-3B")[0] == "Qwen/Qwen2.5-3B"
    assert models.resolve("qwen2.5-3b-instruct")[0] == "Qwen/Qwen2.5-3B-Instruct"
    assert len(models.PAPER_MODELS) == 11 and all(m in models.REGISTRY for m in models.PAPER_MODELS)


def test_local_directory_loads(tiny, tmp_path):
    model, tok = tiny("qwen2", seed=8)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lm, tk = models.load(str(tmp_path))
    assert lm.dtype == torch.float32 and not lm.training
    ids = torch.tensor([tk("abc")["input_ids"]])
    torch.testing.assert_close(lm(ids).logits, model(ids).logits)
