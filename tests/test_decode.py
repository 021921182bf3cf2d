"""The decode loop (siautil.decode): a row's state and why it stops, and the continuous batch,
whose rows draw the tokens a plain one-row-at-a-time loop of full forward passes draws."""

import torch

from siautil import decode, streams, tasks
from siautil.sampling import SamplingChain

TASK = tasks.get("gsm8k")


def _rules(tok, stop="eos"):
    runner_piece = [p.replace("Ġ", " ") for p in tok.convert_ids_to_tokens(list(range(len(tok))))]
    trigger = [any(c in p for c in decode.TRIGGERS) for p in runner_piece]
    return decode.Stopping(frozenset({tok.eos_token_id}), stop, runner_piece, trigger, TASK.answer_complete)


def test_a_row_stops_at_eos_at_its_budget_and_with_stop_answer_once_the_answer_is_written(tiny):
    tok = tiny("llama").tokenizer
    logits = torch.zeros(len(tok))
    rules = _rules(tok, stop="answer")
    row = decode.Row(budget=50, tail="so the answer is 12")
    assert not row.accept(tok.convert_tokens_to_ids("."), logits, rules) and row.finish is None
    assert row.accept(tok.convert_tokens_to_ids("\n"), logits, rules) and row.finish is decode.Finish.ANSWER
    assert row.finish == "answer"  # stored as its string value
    eos = decode.Row(budget=50)
    assert eos.accept(tok.eos_token_id, logits, rules) and eos.finish is decode.Finish.EOS and not eos.tokens
    short = decode.Row(budget=1)
    assert short.accept(tok.convert_tokens_to_ids("7"), logits, rules) and short.finish is decode.Finish.LENGTH
    # under the paper's rule a written answer does not stop the row
    eos_rule = decode.Row(budget=50, tail="so the answer is 12.")
    assert not eos_rule.accept(tok.convert_tokens_to_ids("\n"), logits, _rules(tok)) and eos_rule.finish is None


def test_a_trace_row_keeps_the_logits_at_every_checkpoint_and_at_t_equals_T(tiny):
    tok = tiny("llama").tokenizer
    rules, seven = _rules(tok), tok.convert_tokens_to_ids("7")
    row = decode.Row(budget=50, record_every=3)
    for k in range(7):
        assert not row.accept(seven, torch.full((len(tok),), float(k)), rules)
    assert row.accept(tok.eos_token_id, torch.full((len(tok),), 7.0), rules)
    assert sorted(row.logits) == [0, 3, 6, 7]  # t = 0, 3, 6 and T = 7, where it ended
    assert [float(row.logits[t][0]) for t in (0, 3, 6, 7)] == [0.0, 3.0, 6.0, 7.0]  # each the logits given at t


def _plain_loop(model, prompt, stream, budget, chain, eos):
    """One row, one full forward pass of the whole sequence per token: the reference."""
    ids = list(prompt)
    for k in range(budget):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1:]
        u = torch.from_numpy(streams.uniforms([stream], [k]))
        tok = int(chain.sample_uniform(logits, u)[0])
        if tok in eos:
            break
        ids.append(tok)
    return ids[len(prompt):]


def test_the_batch_draws_what_one_row_at_a_time_draws_whatever_its_size(tiny):
    loaded = tiny("llama", seed=3, eos_bias=2.0)
    runner = decode.Runner(loaded)
    chain, rules = SamplingChain(temperature=1.0, top_k=0), _rules(loaded.tokenizer)
    prompts = [loaded.tokenizer("Tom has 3 apples.")["input_ids"], loaded.tokenizer("Anna, 9 books?")["input_ids"]]
    want = {(p, i): _plain_loop(loaded.model, prompts[p], streams.key("s", p, i), 12, chain, runner.eos)
            for p in range(2) for i in range(3)}
    assert len({len(v) for v in want.values()}) > 1  # rows end at different steps: slots free and refill

    for max_rows in (1, 2, 8):
        decoder = None
        rows = {}
        for p, prompt in enumerate(prompts):
            kv, last = runner.prefill(prompt)
            decoder = decoder or decode.Decoder(runner, chain, rules, max_rows, kv, limit=12 + max(map(len, prompts)))
            rows |= {(p, i): decode.Row(budget=12, stream=streams.key("s", p, i)) for i in range(3)}
            decoder.submit([decode.Item(rows[p, i], kv, len(prompt), last[-1]) for i in range(3)])
        decoder.drain()
        assert {k: r.tokens for k, r in rows.items()} == want, max_rows
        assert all(r.finish in (decode.Finish.EOS, decode.Finish.LENGTH) for r in rows.values())
