"""A tiny Llama that writes a known script, for tests of the engine's stop rules and checkpoints
on known text (``test_rollout``) and of answers re-extracted from stored text (``test_estimators``).

Not a test file: the tests import it by name (``from scripted_model import ...``), as this
directory is on ``sys.path`` (see ``conftest.py``).
"""

import torch
from transformers import LlamaForCausalLM

from siautil import models, rollout, tasks, testing

TASK = tasks.get("gsm8k")
Q = tasks.Question(id="q1", text="Tom has 12 apples and buys 1 more. How many?", gold="13")
SCRIPT = "The answer is 12. Wait, 5 + 8 = 13. The answer is 13."


class ScriptedLM(LlamaForCausalLM):
    """A tiny Llama whose logits favour, by a wide margin, the next character of a script
    written after the prompt, then EOS: greedy decoding writes the script whatever the prefix's
    position, so the engine's stop rules and checkpoints can be checked on known text."""

    script: list[int] = []
    prompt_len: int = 0

    def forward(self, input_ids=None, position_ids=None, logits_to_keep=0, **kw):
        out = super().forward(input_ids=input_ids, position_ids=position_ids, logits_to_keep=logits_to_keep, **kw)
        n = input_ids.shape[1]
        if position_ids is None:  # the engine's prefills start from an empty cache
            position_ids = torch.arange(n)[None].expand(input_ids.shape[0], n)
        if isinstance(logits_to_keep, torch.Tensor):
            pos = position_ids[:, logits_to_keep]
        else:
            pos = position_ids[:, -logits_to_keep:] if logits_to_keep else position_ids
        following = self.script + [self.config.eos_token_id]
        idx = (pos + 1 - self.prompt_len).clamp(0, len(following) - 1)
        bias = torch.zeros_like(out.logits)
        bias.scatter_(-1, torch.tensor(following)[idx][..., None], 50.0)
        out.logits = out.logits + bias
        return out


def scripted(max_new_tokens=80, stride=8, **kw):
    """An engine over a fresh :class:`ScriptedLM` that writes :data:`SCRIPT` after :data:`Q`'s
    prompt (greedy: top-k 1), with 3 continuations per checkpoint."""
    tok = testing.char_tokenizer()
    torch.manual_seed(0)
    model = ScriptedLM(testing.tiny_config("llama", vocab_size=len(tok))).eval()
    settings = rollout.RolloutConfig(n_traces=1, n_continuations=3, stride=stride, max_new_tokens=max_new_tokens,
                                     top_k=1, temperature=1.0, top_p=1.0, **kw)
    engine = rollout.Engine(models.LoadedModel(model, tok, "scripted", chat=False), TASK, settings)
    model.script = tok(SCRIPT, add_special_tokens=False)["input_ids"]
    model.prompt_len = len(engine.prompt_ids(Q))
    return engine
