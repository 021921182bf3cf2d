"""Tiny language models trained on the toy task under five regimes, several seeds each.

* **base**: maximum likelihood on a pretraining-like corpus in which the reasoning text is not
  reliably tied to the true answer: correct worked solutions mixed with solutions that slip
  (one step's result is wrong and the rest follows from the wrong value) and solutions whose
  final answer does not follow from the steps;
* **sft**: maximum likelihood on correct (question, reasoning, answer) triples, from base;
* **rl**: policy gradient with a verifiable correctness reward, from SFT: for each question a
  group of completions is sampled and each is reinforced by its reward minus the group mean
  (REINFORCE with a group baseline, as in GRPO without clipping);
* **rl-base**: the same reward, from base with no SFT: does a correctness reward alone make
  prefixes informative?
* **uninformative**: maximum likelihood, from base, on triples whose final answer is always
  right but whose written steps are those of another question of the same length: meant to be
  accurate with prefixes that carry no information about the answer by construction (the
  control that separates "entropy tracks correctness because the model is accurate" from
  "because its prefixes inform the answer"). The shipped seed-0 model did not learn to answer
  this way (held-out accuracy at chance, ``training.json``), so it is not yet that control.

The models are Llama-architecture transformers with the project's character tokenizer (BOS
first, as in training), saved with ``save_pretrained``; :func:`siautil.models.load` and the
sampling engine treat them like any model. Training is seeded and single-threaded, so
``siautil toy train`` reproduces the shipped weights bit for bit on the same software stack
(``SHA256SUMS`` records them). :func:`competence` measures what a model can do apart from its
answers: step accuracy and faithfulness.
"""

from __future__ import annotations

import copy
import json
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from . import models
from .tasks.toy import OPS, Problem, ToyTask, implied_answer, prompt_text, sample_problem, step_accuracy
from .testing import char_tokenizer

ASSETS = models.TOY_ASSETS
REGIMES = tuple(models.TOY_REGIMES)
SEEDS = models.TOY_SEEDS
REBUILD = models.TOY_REBUILD
#: The regime whose weights each regime starts from (``None``: from scratch).
PARENT = {"base": None, "sft": "base", "rl": "sft", "rl-base": "base", "uninformative": "base"}
verified_path = models.toy_weights  # the old name


@dataclass(frozen=True)
class ToyTrainingConfig:
    steps: int = 4                 # operations per problem (the difficulty)
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    intermediate: int = 192
    batch: int = 64
    lr: float = 1e-2               # peak learning rate of the SFT and uninformative phases
    base_lr: float = 3e-3          # the base phase's: at 1e-2 its noisy corpus stalled it (5,400 updates:
                                   # step accuracy 0.53, against 0.92 at 3e-3)
    base_updates: int = 5400       # long enough to imitate its corpus (1,800 left step accuracy at 0.39)
    sft_updates: int = 1800
    rl_updates: int = 40
    rl_base_updates: int = 150     # RL from base starts far lower (about chance) and needs more updates
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


def uninformative_text(problem: Problem, rng: random.Random) -> tuple[str, str]:
    """A triple whose answer is right and whose steps are another question's (same length): the
    written steps are independent of the answer."""
    other = sample_problem(rng, len(problem.ops), problem.modulus)
    return prompt_text(problem.question()), f" {other.solution(answer=problem.answer())}"


def new_model(cfg: ToyTrainingConfig):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer(add_bos=True)
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


def train_mle(model, tok, make_doc, updates: int, cfg: ToyTrainingConfig, seed: int, log=None,
              lr: float | None = None) -> list[float]:
    """Maximum likelihood on ``(prompt, completion)`` documents from ``make_doc(rng)``, one-cycle
    schedule peaking at ``lr`` (default ``cfg.lr``); returns the loss curve."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    lr = cfg.lr if lr is None else lr
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=updates, pct_start=0.1)
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


def train_rl(model, tok, task: ToyTask, cfg: ToyTrainingConfig, seed: int, log=None,
             updates: int | None = None) -> list[float]:
    """REINFORCE with a per-question group baseline and a correctness reward, for ``updates``
    updates (default ``cfg.rl_updates``); returns the mean reward per update."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.rl_lr, weight_decay=0.0)
    engine = sampler(model, tok, task, cfg.temperature, completion_budget(cfg.steps))
    rewards_curve = []
    updates = cfg.rl_updates if updates is None else updates
    for step in range(updates):
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
        if log and (step % 10 == 0 or step == updates - 1):
            log(f"RL update {step}: mean reward {r.mean().item():.3f}")
    model.eval()
    return rewards_curve


def trace_competence(problem: Problem, text: str, answer: str | None) -> dict:
    """One trace's competence: whether its answer is right, its written steps right given the
    previous written value (:func:`siautil.tasks.toy.step_accuracy`), and whether its answer
    follows from its own steps (``None`` without an answer or a written step)."""
    right, written = step_accuracy(problem, text)
    implied = implied_answer(text)
    faithful = (answer == implied) if answer is not None and implied is not None else None
    # the base corpus's three kinds of document, read back from a trace (None: no answer or no step)
    complete = right == written == len(problem.ops)
    kind = None if faithful is None else "unfaithful" if not faithful else "correct" if complete else "slipped"
    return {"correct": answer == str(problem.answer()), "steps right": right, "steps written": written,
            "faithful": faithful, "kind": kind}


def _summarise(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = rows.groupby(keys, sort=False) if keys else rows.groupby(lambda _: 0)
    out = grouped.agg(traces=("correct", "size"), accuracy=("correct", "mean"), right=("steps right", "sum"),
                      written=("steps written", "sum"),
                      faithfulness=("faithful", lambda f: f.dropna().astype(float).mean()))
    out["step accuracy"] = out.pop("right") / out.pop("written")
    # the mixture of solutions, to set beside the base corpus's (ToyTrainingConfig.p_correct, ...)
    kinds = rows["kind"].fillna("no answer or step")
    share = pd.crosstab([rows[k] for k in keys] if keys else pd.Series(0, index=rows.index), kinds, normalize="index")
    for kind in ("correct", "slipped", "unfaithful"):
        out[f"share {kind}"] = share[kind].reindex(out.index).fillna(0.0).to_numpy() if kind in share else 0.0
    return out.reset_index(drop=not keys)


def evaluate(model, tok, task: ToyTask, n: int = 500, temperature: float = 1.0, seed: int = 0,
             extraction: str = "strict-match") -> dict:
    """Accuracy, step accuracy and faithfulness of one sampled completion for each of the first
    ``n`` held-out test questions (:func:`trace_competence`), answers read as the protocol
    reads them (``strict-match``: after "The answer is")."""
    qs = task.load("test", limit=n)
    gen = torch.Generator().manual_seed(seed)
    engine = sampler(model, tok, task, temperature, completion_budget(task.steps))
    rows = []
    for start in range(0, len(qs), 128):
        chunk = qs[start: start + 128]
        new = engine.sample_prompts(encode_prompts(tok, [task.prompt(q) for q in chunk]), 1, completion_budget(task.steps), gen)
        for q, (toks,) in zip(chunk, new):
            text = tok.decode(toks, skip_special_tokens=True)
            rows.append(trace_competence(q.meta["problem"], text, task.extract_answer(text, mode=extraction)))
    return _summarise(pd.DataFrame(rows), []).iloc[0].drop("traces").to_dict()


def accuracy(model, tok, task: ToyTask, n: int = 500, temperature: float = 1.0, seed: int = 0) -> float:
    """Share of held-out test questions answered correctly by one sampled completion."""
    return evaluate(model, tok, task, n, temperature, seed)["accuracy"]


def competence(records: pd.DataFrame) -> pd.DataFrame:
    """Per model (and shuffled or not), what it can do apart from its answers, read from the
    traces of toy-task records (:func:`trace_competence`): ``accuracy``, ``step accuracy``
    (pooled over written steps) and ``faithfulness`` (among traces with an answer and a step)."""
    keys = [k for k in ("model", "shuffled") if k in records]
    if "dataset" in records and set(records["dataset"]) - {"toy"}:
        raise ValueError(f"competence reads toy-task traces only; these records hold "
                         f"{sorted(set(records['dataset']) - {'toy'})}: select the toy cells first")
    traces = records.drop_duplicates(keys + ["question_id", "trace"])
    problems: dict[int, list[Problem]] = {}
    rows = []
    for key, qid, text, answer in zip(traces[keys].itertuples(index=False), traces["question_id"],
                                      traces["trace_text"], traces["trace_answer"]):
        name, index = str(qid).rsplit("-", 1)  # "toy<steps>-test-<index>"
        steps = int(name.split("-")[0].removeprefix("toy"))
        if steps not in problems:
            problems[steps] = ToyTask(steps=steps).problems("test")
        answer = None if pd.isna(answer) else str(answer)  # a stored null answer reads back as NaN
        rows.append({**dict(zip(keys, key)), **trace_competence(problems[steps][int(index)], text, answer)})
    return _summarise(pd.DataFrame(rows), keys)


def training_report(root: Path = ASSETS) -> pd.DataFrame:
    """What each shipped model's ``training.json`` recorded (:data:`siautil.models.TOY_SHIPPED`):
    regime, seed, the regime it started from, training seconds on one thread, and held-out
    accuracy, step accuracy, faithfulness and the mixture of its solutions (correct, slipped,
    unfaithful: the base corpus's three kinds, ``ToyTrainingConfig.p_correct`` ...) at
    temperature 1 (blank where a model was trained before these were recorded)."""
    rows = []
    for regime, seeds in models.TOY_SHIPPED.items():
        for seed in seeds:
            meta = json.loads((models.toy_weights(regime, root, seed) / "training.json").read_text())
            rows.append({"regime": regime, "seed": seed, "parent": PARENT[regime], **meta})
    cols = ["regime", "seed", "parent", "seconds", "accuracy", "step accuracy", "faithfulness",
            "share correct", "share slipped", "share unfaithful"]
    return pd.DataFrame(rows).reindex(columns=cols)


def save(model, tok, out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _train_regime(regime: str, model, tok, task: ToyTask, cfg: ToyTrainingConfig, log) -> None:
    """One regime's objective, applied to ``model`` (its parent's weights)."""
    if regime == "base":
        train_mle(model, tok, lambda rng: base_text(training_problem(rng, cfg), rng, cfg),
                  cfg.base_updates, cfg, seed=cfg.seed + 1, log=log, lr=cfg.base_lr)
    elif regime == "sft":
        train_mle(model, tok, lambda rng: sft_text(training_problem(rng, cfg)), cfg.sft_updates, cfg,
                  seed=cfg.seed + 2, log=log)
    elif regime == "rl":
        train_rl(model, tok, task, cfg, seed=cfg.seed + 3, log=log)
    elif regime == "rl-base":
        train_rl(model, tok, task, cfg, seed=cfg.seed + 4, log=log, updates=cfg.rl_base_updates)
    elif regime == "uninformative":
        train_mle(model, tok, lambda rng: uninformative_text(training_problem(rng, cfg), rng), cfg.sft_updates, cfg,
                  seed=cfg.seed + 5, log=log)
    else:
        raise ValueError(f"unknown toy regime {regime!r}; regimes: {', '.join(REGIMES)}")


def train(regimes=REGIMES, out: Path = ASSETS, cfg: ToyTrainingConfig = ToyTrainingConfig(), log=print,
          seeds=(0,)) -> dict:
    """Train ``regimes`` for each of ``seeds`` (each regime starts from its :data:`PARENT`'s
    weights of the same seed, trained here or read from ``out``) and save them under
    :func:`siautil.models.toy_dir`; rewrite ``out/SHA256SUMS`` over every model present.
    Returns per (seed, regime) the training time and held-out accuracy at temperature 1."""
    from transformers import LlamaForCausalLM

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    task = ToyTask(steps=cfg.steps)
    tok = char_tokenizer(add_bos=True)
    report = {}
    for seed in seeds:
        scfg = replace(cfg, seed=seed)
        trained = {}
        for regime in REGIMES:  # parents come before their children
            if regime not in regimes:
                if any(_descends(r, regime) for r in regimes):  # an ancestor not retrained: its saved weights
                    trained[regime] = LlamaForCausalLM.from_pretrained(models.toy_weights(regime, out, seed))
                continue
            parent = PARENT[regime]
            model = new_model(scfg)[0] if parent is None else copy.deepcopy(trained[parent])
            start = time.perf_counter()
            _train_regime(regime, model, tok, task, scfg, log)
            seconds = time.perf_counter() - start
            report[(seed, regime)] = dict(seconds=round(seconds, 1), **evaluate(model, tok, task))
            log(f"seed {seed} {regime}: {seconds:.0f} s, held-out (temperature 1): {report[(seed, regime)]}")
            save(model, tok, models.toy_dir(regime, out, seed),
                 dict(regime=regime, seed=seed, parent=parent, config=asdict(scfg), **report[(seed, regime)]))
            trained[regime] = model
    write_checksums(out)
    return report


def write_checksums(out: Path = ASSETS) -> None:
    """``out/SHA256SUMS`` over every model's weights under ``out`` (what
    :func:`siautil.models.toy_weights` checks)."""
    sums = [f"{models.file_sha256(p)}  {p.relative_to(out)}" for p in sorted(out.rglob("*.safetensors"))]
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")


def _descends(child: str, ancestor: str) -> bool:
    parent = PARENT[child]
    return parent is not None and (parent == ancestor or _descends(parent, ancestor))
