"""Model builders for tests, benchmarks and the toy trainer: tiny random-weight models of every
architecture family in the registry, with a character-level tokenizer. Nothing here downloads."""

from __future__ import annotations

import torch

from .models import REGISTRY, ModelError

def tiny_config(family: str, vocab_size: int = 64):
    """A small random-weight config of an architecture family in the registry."""
    import transformers as tf

    common = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    if family == "llama":
        return tf.LlamaConfig(**common)
    if family == "qwen2":
        return tf.Qwen2Config(**common)
    if family == "gemma2":
        return tf.Gemma2Config(**common, head_dim=8, sliding_window=4096, query_pre_attn_scalar=8)
    if family == "olmo3":
        return tf.Olmo3Config(**common, sliding_window=4096)
    raise ModelError(f"no tiny config for family {family!r}; families: llama, qwen2, gemma2, olmo3")


FAMILIES = sorted({s.family for s in REGISTRY.values()})


def char_tokenizer(extra_chars: str = "", add_bos: bool = False):
    """A character-level tokenizer (digits, letters, punctuation, space, newline) built with
    ``tokenizers``: small enough for tiny models, real enough for the whole engine. With
    ``add_bos`` it starts every encoding with BOS, as Llama's tokenizers do (the toy models are
    trained on BOS-prefixed text, so the engine's prompts must start with it too)."""
    import string

    from tokenizers import Tokenizer, decoders, models as tok_models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = list(dict.fromkeys(string.digits + string.ascii_letters + string.punctuation + " \n" + extra_chars))
    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>"] + chars)}
    tok = Tokenizer(tok_models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def tiny_model(family: str = "llama", seed: int = 0, eos_bias: float = 0.0, **overrides):
    """A random-weight model of ``family`` with :func:`char_tokenizer`, for tests and benchmarks.

    ``eos_bias`` is added to the end-of-sequence logit, so continuations end at varied lengths
    as real ones do (about ``1 / (1 + V e^-bias)`` per step).
    """
    from transformers import AutoModelForCausalLM

    tokenizer = char_tokenizer()
    config = tiny_config(family, vocab_size=len(tokenizer))
    for k, v in overrides.items():
        setattr(config, k, v)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    if eos_bias:
        head = model.lm_head
        biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
        biased.weight.data.copy_(head.weight.data)
        biased.bias.data.zero_()
        biased.bias.data[tokenizer.eos_token_id] = eos_bias
        model.lm_head = biased
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    model.siautil_name = f"tiny-{family}"
    return model, tokenizer
