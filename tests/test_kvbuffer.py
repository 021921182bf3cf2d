"""The slot cache and slot attention (siautil.kvbuffer): batched decoding over shared prefixes
gives the logits and keys of a full forward pass, in every architecture, and attention that
bypasses the interface is refused."""

import pytest
import torch

from siautil import kvbuffer, rollout, tasks, testing

TASK = tasks.get("gsm8k")


@pytest.mark.parametrize("family", testing.FAMILIES)
def test_slot_cache_gives_the_full_forward_logits(tiny, family):
    # two rows continue prefixes of one source (a whole sequence and its first 5 tokens), a
    # third another source, a fourth a private copy of a prefix; mid-decoding the third slot
    # is taken over by a new source, as the engine does when a row finishes. Every step must
    # equal a full forward of each row.
    lm = tiny(family, seed=1)
    model, tok = lm.model, lm.tokenizer
    dev = model.device
    # a batched step and a full forward sum in other orders: exact in fp32 but for rounding,
    # within bf16's precision (8 bits of mantissa) on the GPU check's bf16 run
    tol = dict(atol=1e-4, rtol=1e-4) if model.dtype == torch.float32 else dict(atol=6e-2, rtol=3e-2)
    eng = rollout.Engine(lm, TASK, rollout.RolloutConfig())
    seqs = [tok("Tom has 3 apples")["input_ids"], tok("He buys 4")["input_ids"], tok("So 7")["input_ids"]]
    kvs = [eng.runner.prefill(s)[0] for s in seqs]
    cache = kvbuffer.SlotCache(kvs[0], slots=4, capacity=2, limit=64)  # too small: must grow
    src = [cache.add_source(kv) for kv in kvs[:2]]
    cache.put(0, src[0], len(seqs[0]))
    cache.put(1, src[0], 5)
    cache.put(2, src[1], len(seqs[1]))
    cache.put_private(3, kvs[0], 7)
    live = [list(seqs[0]), list(seqs[0][:5]), list(seqs[1]), list(seqs[0][:7])]
    for step, nxt in enumerate("!ab?c"):
        if step == 2:
            cache.put(2, cache.add_source(kvs[2]), len(seqs[2]))
            live[2] = list(seqs[2])
        ids = torch.tensor([[tok.convert_tokens_to_ids(nxt)]] * 4, device=dev)
        cache.advance()
        pos = cache.step.position[:, None]
        assert pos.flatten().tolist() == [len(x) for x in live]
        with torch.no_grad(), kvbuffer.attending(model, cache):
            got = model(input_ids=ids, position_ids=pos, attention_mask=torch.ones(4, 1, 1, 1, dtype=torch.bool,
                                                                                  device=dev),
                        cache=cache).logits[:, -1]
        for r in range(4):
            live[r].append(ids[r, 0].item())
            with torch.no_grad():
                want = model(torch.tensor([live[r]], device=dev)).logits[0, -1]
            torch.testing.assert_close(got[r], want, **tol)
    assert model.config._attn_implementation != kvbuffer.ATTENTION  # restored after the block
    for slot in (0, 3):
        whole = cache.take(slot)
        with torch.no_grad():
            want = kvbuffer.cache_tensors(model(torch.tensor([live[slot]], device=dev), use_cache=True).past_key_values)
        for (k, v), (wk, wv) in zip(whole, want):
            torch.testing.assert_close(k, wk, **tol)
            torch.testing.assert_close(v, wv, **tol)


def test_attention_that_bypasses_the_interface_is_refused():
    # a layer that reads its own copy of the config keeps its old attention and would see
    # only the newest token; the engine must say so instead of sampling garbage
    import copy

    lm = testing.tiny_model("llama", seed=2)  # its own: the test changes a layer's config
    model, tok = lm.model, lm.tokenizer
    model.model.layers[0].self_attn.config = copy.deepcopy(model.config)
    eng = rollout.Engine(lm, TASK, rollout.RolloutConfig(n_traces=1, n_continuations=2, max_new_tokens=8))
    with pytest.raises(RuntimeError, match="1 of 2 attention layers"):
        rollout.generate(lm, [tok("Q: 1")["input_ids"]], 2, 8, eng.config)
    assert model.config._attn_implementation == "sdpa"


def test_the_padded_sources_are_kept_while_the_rows_continue_the_same_sources(tiny):
    lm = tiny("llama", seed=1)
    model, tok = lm.model, lm.tokenizer
    dev = model.device
    eng = rollout.Engine(lm, TASK, rollout.RolloutConfig())
    kvs = [eng.runner.prefill(tok(text)["input_ids"])[0] for text in ("Tom has 3 apples", "He buys 4")]
    cache = kvbuffer.SlotCache(kvs[0], slots=2, capacity=8, limit=64)
    cache.put(0, cache.add_source(kvs[0]), 6)
    cache.put(1, cache.add_source(kvs[1]), 4)

    def step():
        cache.advance()
        with torch.no_grad(), kvbuffer.attending(model, cache):
            model(input_ids=torch.tensor([[5], [6]], device=dev), position_ids=cache.step.position[:, None],
                  attention_mask=torch.ones(2, 1, 1, 1, dtype=torch.bool, device=dev), cache=cache)
        return [layer.prefixes for layer in cache.layers]

    first = step()
    again = step()
    assert all(a[1] is b[1] and a[2] is b[2] for a, b in zip(first, again))  # nothing copied
    cache.put(1, 0, 3)  # slot 1 now continues source 0: one group, a new layout
    moved = step()
    assert all(m[1] is not a[1] and m[1].shape[0] == 1 for m, a in zip(moved, again))
