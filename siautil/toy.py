"""Tiny language models trained on the toy task under the paper's three regimes.

* **base**: maximum likelihood on a pretraining-like corpus in which the reasoning text is not
  reliably tied to the true answer: correct worked solutions mixed with solutions that slip
  (one step's result is wrong and the rest follows from the wrong value) and solutions whose
  final answer does not follow from the steps;
* **SFT**: maximum likelihood on correct (question, reasoning, answer) triples, from base;
* **RL**: policy gradient with a verifiable correctness reward, from SFT: for each question a
  group of completions is sampled and each is reinforced by its reward minus the group mean
  (REINFORCE with a group baseline, as in GRPO without clipping).

The models are Llama-architecture transformers with the project's character tokenizer, saved
with ``save_pretrained``; :func:`siautil.models.load` and the sampling engine treat them like
any model. Training is seeded and single-threaded, so ``siautil toy train`` reproduces the
shipped weights bit for bit on the same software stack (``SHA256SUMS`` records them).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import models
from .testing import char_tokenizer
from .tasks.toy import OPS, Problem, ToyTask, prompt_text, sample_problem

ASSETS = models.TOY_ASSETS
REGIMES = tuple(models.TOY_REGIMES)
REBUILD = models.TOY_REBUILD
verified_path = models.toy_weights  # the old name


@dataclass(frozen=True)
class ToyTrainingConfig:
    steps: int = 4                 # operations per problem (the difficulty)
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    intermediate: int = 192
    batch: int = 64
    lr: float = 1e-2
    base_updates: int = 1800
    sft_updates: int = 1800
    rl_updates: int = 40
    rl_questions: int = 16         # questions per RL update
    rl_group: int = 8              # completions per question
    rl_lr: float = 2e-4
    temperature: float = 1.0       # RL sampling temperature
    p_correct: float = 0.4         # base corpus mixture: correct solutions,
    p_slip: float = 0.3            # ... solutions with one wrong step (carried forward),
    p_unfaithful: float = 0.3      # ... solutions whose final answer is random
    min_steps: int = 1             # training problems have min_steps..steps operations (a mix of
                                   # lengths, as a corpus would; short ones teach the arithmetic fast)
    seed: int = 0


def training_problem(rng: random.Random, cfg: ToyTrainingConfig) -> Problem:
    """A training problem of random length between ``cfg.min_steps`` and ``cfg.steps``."""
    return sample_problem(rng, rng.randint(cfg.min_steps, cfg.steps))


def completion_budget(steps: int) -> int:
    """Tokens a complete solution needs: ``" a:3+4=7"`` per step, ``" The answer is 9."``, EOS."""
    return 8 * steps + 20


def base_text(problem: Problem, rng: random.Random, cfg: ToyTrainingConfig) -> tuple[str, str]:
    """One document of the base corpus as ``(prompt, reasoning and answer)`` (see the module docstring)."""
    u = rng.random()
    values = problem.values()
    if u < cfg.p_correct:
        body = problem.solution()
    elif u < cfg.p_correct + cfg.p_slip:
        i = rng.randrange(1, len(values))
        n = problem.modulus
        wrong = list(values[:i]) + [(values[i] + rng.randrange(1, n)) % n]
        for op, b in problem.ops[i:]:
            wrong.append(OPS[op](wrong[-1], b, n))
        body = problem.solution(values=wrong)
    else:
        body = problem.solution(answer=(values[-1] + rng.randrange(1, problem.modulus)) % problem.modulus)
    return prompt_text(problem.question()), f" {body}"


def sft_text(problem: Problem) -> tuple[str, str]:
    return prompt_text(problem.question()), f" {problem.solution()}"


def new_model(cfg: ToyTrainingConfig):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                         num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                         max_position_embeddings=256, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config), tok


def _batch(tok, docs: list[tuple[str, str]], device="cpu"):
    """Token ids and labels; the loss covers the reasoning and answer, not the question, whose
    digits are random and would only add noise to the gradient."""
    enc = [([tok.bos_token_id] + tok(p, add_special_tokens=False)["input_ids"],
            tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]) for p, c in docs]
    width = max(len(p) + len(c) for p, c in enc)
    x = torch.full((len(enc), width), tok.pad_token_id)
    labels = torch.full((len(enc), width), -100)
    for r, (p, c) in enumerate(enc):
        x[r, : len(p) + len(c)] = torch.tensor(p + c)
        labels[r, len(p): len(p) + len(c)] = torch.tensor(c)
    return x.to(device), labels.to(device)


def train_mle(model, tok, make_doc, updates: int, cfg: ToyTrainingConfig, seed: int, log=None) -> list[float]:
    """Maximum likelihood on ``(prompt, completion)`` documents from ``make_doc(rng)``; returns the loss curve."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=updates, pct_start=0.1)
    model.train()
    losses = []
    for step in range(updates):
        x, y = _batch(tok, [make_doc(rng) for _ in range(cfg.batch)])
        loss = model(input_ids=x, labels=y).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log and (step % 100 == 0 or step == updates - 1):
            log(f"step {step}: loss {loss.item():.3f}")
    model.eval()
    return losses


def sampler(model, tok, task: ToyTask, temperature: float, max_new_tokens: int):
    """The sampling engine set up for training and evaluation: plain ancestral sampling (full
    softmax at ``temperature``), every completion run to EOS or ``max_new_tokens``."""
    from . import rollout

    settings = rollout.RolloutConfig(temperature=temperature, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens)
    return rollout.Engine(model, tok, task, settings, chat=False)


def encode_prompts(tok, prompts: list[str]) -> list[list[int]]:
    """Prompt ids as in training (:func:`_batch`): BOS, then the text."""
    return [[tok.bos_token_id] + tok(p, add_special_tokens=False)["input_ids"] for p in prompts]


def train_rl(model, tok, task: ToyTask, cfg: ToyTrainingConfig, seed: int, log=None) -> list[float]:
    """REINFORCE with a per-question group baseline and a correctness reward; returns the
    mean reward per update."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.rl_lr, weight_decay=0.0)
    engine = sampler(model, tok, task, cfg.temperature, completion_budget(cfg.steps))
    rewards_curve = []
    for step in range(cfg.rl_updates):
        problems = [sample_problem(rng, cfg.steps) for _ in range(cfg.rl_questions)]
        model.eval()
        enc = encode_prompts(tok, [prompt_text(p.question()) for p in problems])
        groups = engine.sample_prompts(enc, cfg.rl_group, completion_budget(cfg.steps), gen)
        texts, rewards = [], []
        for e, p, group in zip(enc, problems, groups):
            for toks in group:  # each ends with EOS if it ended there
                text = tok.decode(toks, skip_special_tokens=True)
                rewards.append(float(task.extract_answer(text) == str(p.answer())))
                texts.append((e, toks))
        r = torch.tensor(rewards).view(cfg.rl_questions, cfg.rl_group)
        adv = (r - r.mean(1, keepdim=True)).flatten()
        rewards_curve.append(r.mean().item())
        model.train()
        # log-likelihood of each sampled completion under the current policy
        seqs = [e[1:] + t for e, t in texts]  # _batch adds BOS itself
        ids = [[tok.bos_token_id] + s for s in seqs]
        width = max(map(len, ids))
        x = torch.full((len(ids), width), tok.pad_token_id)
        comp = torch.zeros((len(ids), width), dtype=torch.bool)
        for row, ((e, t), s) in enumerate(zip(texts, ids)):
            x[row, : len(s)] = torch.tensor(s)
            comp[row, len(e): len(s)] = True  # positions of sampled tokens
        logp = model(input_ids=x).logits[:, :-1].float().log_softmax(-1)
        tok_logp = logp.gather(-1, x[:, 1:, None])[..., 0] * comp[:, 1:]
        loss = -(adv * tok_logp.sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log and (step % 10 == 0 or step == cfg.rl_updates - 1):
            log(f"RL update {step}: mean reward {r.mean().item():.3f}")
    model.eval()
    return rewards_curve


def accuracy(model, tok, task: ToyTask, n: int = 500, temperature: float = 1.0, seed: int = 0) -> float:
    """Share of held-out test questions answered correctly by one sampled completion."""
    qs = task.load("test", limit=n)
    gen = torch.Generator().manual_seed(seed)
    engine = sampler(model, tok, task, temperature, completion_budget(task.steps))
    correct = 0
    for start in range(0, len(qs), 128):
        chunk = qs[start: start + 128]
        new = engine.sample_prompts(encode_prompts(tok, [task.prompt(q) for q in chunk]), 1, completion_budget(task.steps), gen)
        for q, (toks,) in zip(chunk, new):
            correct += task.is_correct(task.extract_answer(tok.decode(toks, skip_special_tokens=True)), q)
    return correct / len(qs)


def save(model, tok, out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def train(regimes=REGIMES, out: Path = ASSETS, cfg: ToyTrainingConfig = ToyTrainingConfig(), log=print) -> dict:
    """Train the regimes in order (each starts from the previous one's weights) and save them
    under ``out/<regime>``; write ``out/SHA256SUMS``. Returns per-regime times and accuracies."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    task = ToyTask(steps=cfg.steps)
    report = {}
    model, tok = new_model(cfg)
    last = max(REGIMES.index(r) for r in regimes)
    for regime in REGIMES[: last + 1]:
        if regime not in regimes:  # an earlier regime this call does not retrain: start from its weights
            model = type(model).from_pretrained(models.toy_weights(regime, out))
            continue
        start = time.perf_counter()
        if regime == "base":
            train_mle(model, tok, lambda rng: base_text(training_problem(rng, cfg), rng, cfg),
                      cfg.base_updates, cfg, seed=cfg.seed + 1, log=log)
        elif regime == "sft":
            train_mle(model, tok, lambda rng: sft_text(training_problem(rng, cfg)),
                      cfg.sft_updates, cfg, seed=cfg.seed + 2, log=log)
        else:
            train_rl(model, tok, task, cfg, seed=cfg.seed + 3, log=log)
        seconds = time.perf_counter() - start
        acc = accuracy(model, tok, task)
        report[regime] = dict(seconds=round(seconds, 1), accuracy=acc)
        log(f"{regime}: {seconds:.0f} s, held-out accuracy {acc:.3f}")
        save(model, tok, out / regime, dict(regime=regime, config=asdict(cfg), **report[regime]))
    sums = [f"{models.file_sha256(p)}  {p.relative_to(out)}" for r in REGIMES for p in sorted((out / r).glob("*.safetensors"))
            if (out / r).exists()]
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return report
