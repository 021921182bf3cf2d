"""Tiny language models trained on the toy task under five regimes, several seeds each.

* **base**: maximum likelihood, until it has learned the arithmetic
  (:func:`train_until_learned`), on a pretraining-like corpus in which the reasoning text is
  not reliably tied to the true answer: correct worked solutions mixed with solutions that slip
  (one step's result is wrong and the rest follows from the wrong value) and solutions whose
  final answer does not follow from the steps;
* **sft**: maximum likelihood on correct (question, reasoning, answer) triples, from base;
* **rl**: policy gradient with a verifiable correctness reward, from SFT: for each question a
  group of completions is sampled and each is reinforced by its reward minus the group mean
  (REINFORCE with a group baseline, as in GRPO without clipping);
* **rl-base**: the same reward, from base with no SFT: does a correctness reward alone make
  prefixes informative?
* **uninformative**: maximum likelihood, from base, on triples whose final answer is always
  right but whose written steps are those of another question of the same length, for a fixed
  set of questions (the first ``memorised`` test questions, which the runs ask), until it has
  memorised their answers or reached its cap (:func:`train_until_memorised`; ``training.json``
  says which): accurate on those questions, with written steps that do not determine the answer
  in its training data (the control that separates "entropy tracks correctness because the
  model is accurate" from "because its prefixes inform the answer"). It is accurate because it
  *remembers* the answers, as a language model recalls a benchmark it was trained on: without
  informative steps the answer is a sum of digits modulo 5 that no single digit predicts, which
  a model this size does not learn to compute in one step.

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

import numpy as np
import pandas as pd
import torch

from . import models
from .tasks.toy import OPS, Problem, ToyTask, implied_answer, prompt_text, sample_problem, step_accuracy

ASSETS = models.TOY_ASSETS
REGIMES = tuple(models.TOY_REGIMES)
SEEDS = models.TOY_SEEDS
REBUILD = models.TOY_REBUILD
#: The regime whose weights each regime starts from (``None``: from scratch).
PARENT = {"base": None, "sft": "base", "rl": "sft", "rl-base": "base", "uninformative": "base"}


@dataclass(frozen=True)
class ToyTrainingConfig:
    steps: int = 4                 # operations per problem (the difficulty)
    hidden: int = 96
    layers: int = 2
    heads: int = 4
    intermediate: int = 288
    batch: int = 64
    lr: float = 3e-3               # peak learning rate of the uninformative phase (memorising answers)
    sft_lr: float = 3e-3           # the SFT phase's, from a base that can already do the arithmetic
    base_lr: float = 3e-3          # the base phase's: its noisy corpus stalls faster rates
    base_updates: int = 6000       # the most updates at base_lr before the decay (train_until_learned)
    base_step_accuracy: float = 0.85  # the held-out step accuracy that says base has learned (corpus: 0.9)
    warmup: int = 200              # the schedule of the phases trained until they have learned (train_until):
    decay: int = 500               # warmup, then the peak rate until learned, then this decay,
    check_every: int = 250         # with a check of what the model has learned this often
    sft_updates: int = 1200
    rl_updates: int = 40
    rl_base_updates: int = 150     # RL from base starts far lower (about chance) and needs more updates
    rl_questions: int = 16         # questions per RL update
    rl_group: int = 8              # completions per question
    rl_lr: float = 2e-4
    temperature: float = 1.0       # RL sampling temperature
    memorised: int = 60            # the uninformative regime's questions: the first of the test split, those
                                   # the runs ask (grid's toy-regimes)
    held_out_from: int = 100       # test questions from here on are held out: no run asks them, no regime
                                   # memorises them (the base phase's checks and training.json use them;
                                   # 2 of these 400 repeat the text of one of the first 60)
    uninformative_updates: int = 6000  # the most at the peak rate (train_until_memorised)
    memorised_accuracy: float = 0.8    # accuracy on the memorised questions that says it has them
    p_correct: float = 0.4         # base corpus mixture: correct solutions,
    p_slip: float = 0.3            # ... solutions with one wrong step (carried forward),
    p_unfaithful: float = 0.3      # ... solutions whose final answer is random
    min_steps: int = 1             # training problems have min_steps..steps operations (a mix of
                                   # lengths, as a corpus would; short ones teach the arithmetic fast)
    seed: int = 0


def char_tokenizer(extra_chars: str = "", add_bos: bool = False):
    """The toy models' tokenizer: one token per character (digits, letters, punctuation, space,
    newline), built with ``tokenizers``; the tests' tiny models use it too. With
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


def memorised_problems(cfg: ToyTrainingConfig) -> list[Problem]:
    """The questions the uninformative regime learns the answers of: the first ``cfg.memorised``
    of the test split, so the runs (which ask the first questions) ask what it remembers."""
    return ToyTask(steps=cfg.steps).problems("test", cfg.memorised)


def new_model(cfg: ToyTrainingConfig):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer(add_bos=True)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                         num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                         max_position_embeddings=256, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config), tok


def _padded(pad: int, prompts: list[list[int]], completions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``prompt + completion`` token ids padded with ``pad``, and the mask of each row's
    completion positions."""
    width = max(len(p) + len(c) for p, c in zip(prompts, completions))
    x = torch.full((len(prompts), width), pad)
    completion = torch.zeros((len(prompts), width), dtype=torch.bool)
    for r, (p, c) in enumerate(zip(prompts, completions)):
        x[r, : len(p) + len(c)] = torch.tensor(p + c)
        completion[r, len(p): len(p) + len(c)] = True
    return x, completion


def _batch(tok, docs: list[tuple[str, str]], device="cpu"):
    """Token ids and labels; the loss covers the reasoning and answer, not the question, whose
    digits are random and would only add noise to the gradient."""
    prompts = [[tok.bos_token_id] + tok(p, add_special_tokens=False)["input_ids"] for p, _ in docs]
    completions = [tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for _, c in docs]
    x, completion = _padded(tok.pad_token_id, prompts, completions)
    return x.to(device), torch.where(completion, x, -100).to(device)


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
        losses.append(_update(model, opt, tok, [make_doc(rng) for _ in range(cfg.batch)]))
        sched.step()
        if log and (step % 100 == 0 or step == updates - 1):
            log(f"step {step}: loss {losses[-1]:.3f}")
    model.eval()
    return losses


def _update(model, opt, tok, docs) -> float:
    x, y = _batch(tok, docs)
    loss = model(input_ids=x, labels=y).loss
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


def train_until(model, tok, make_doc, cfg: ToyTrainingConfig, seed: int, lr: float, measure, threshold: float,
                max_updates: int, log=None) -> dict:
    """Maximum likelihood with a warmup-stable-decay schedule that stays at ``lr`` until the
    model has learned what ``measure(model)`` measures (at least ``threshold``, checked every
    ``cfg.check_every`` updates), then decays linearly over ``cfg.decay`` updates (the first at
    the peak rate, the last at ``1 / cfg.decay`` of it); at most
    ``max_updates`` at the peak. What a tiny model learns here it learns in a sudden transition
    whose time depends on the seed, so a fixed schedule stops some seeds before it (see
    :func:`train_until_learned`). Returns the updates taken, whether the threshold was met, and
    the measure at the last check."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    step, decay_from, checked = 0, None, float("nan")
    while decay_from is None or step < decay_from + cfg.decay:
        scale = min(1.0, (step + 1) / cfg.warmup) if decay_from is None else 1.0 - (step - decay_from) / cfg.decay
        for group in opt.param_groups:
            group["lr"] = lr * scale
        model.train()
        loss = _update(model, opt, tok, [make_doc(rng) for _ in range(cfg.batch)])
        step += 1
        if decay_from is None and (step % cfg.check_every == 0 or step == max_updates):
            model.eval()
            checked = measure(model)
            if log:
                log(f"update {step}: loss {loss:.3f}, measured {checked:.3f}")
            if checked >= threshold or step >= max_updates:
                decay_from = step
    model.eval()
    return {"updates": step, "learned": bool(checked >= threshold), "measured_at_check": checked}


def train_until_learned(model, tok, make_doc, cfg: ToyTrainingConfig, seed: int, log=None) -> dict:
    """The base phase (:func:`train_until`): at ``cfg.base_lr`` until held-out step accuracy (one
    sample of each of 100 test questions from ``cfg.held_out_from``) reaches
    ``cfg.base_step_accuracy``, at most ``cfg.base_updates``: a tiny model learns the arithmetic
    suddenly, at an update that depends on the seed, so a fixed schedule would leave some seeds
    without it."""
    task = ToyTask(steps=cfg.steps)
    measure = lambda m: evaluate(m, tok, task, n=100, start=cfg.held_out_from)["step_accuracy"]  # noqa: E731
    return train_until(model, tok, make_doc, cfg, seed, cfg.base_lr, measure, cfg.base_step_accuracy,
                       cfg.base_updates, log)


def train_until_memorised(model, tok, make_doc, cfg: ToyTrainingConfig, seed: int, log=None) -> dict:
    """The uninformative phase (:func:`train_until`): at ``cfg.lr`` until accuracy on the
    memorised questions (one sample each, temperature 1) reaches ``cfg.memorised_accuracy``, at
    most ``cfg.uninformative_updates`` (how many memorising takes depends on the seed)."""
    task = ToyTask(steps=cfg.steps)
    measure = lambda m: evaluate(m, tok, task, n=cfg.memorised)["accuracy"]  # noqa: E731
    return train_until(model, tok, make_doc, cfg, seed, cfg.lr, measure, cfg.memorised_accuracy,
                       cfg.uninformative_updates, log)


def complete(model, tok, prompts: list[list[int]], n: int, temperature: float, max_new_tokens: int,
             gen: torch.Generator) -> list[list[list[int]]]:
    """``n`` completions of each prompt for training and evaluation, through the sampling
    engine (:func:`siautil.rollout.generate`): plain ancestral sampling (full softmax at
    ``temperature``), every completion run to EOS or ``max_new_tokens``; their random streams
    are seeded by one draw of ``gen`` per call, so a seeded training run samples the same."""
    from . import rollout

    settings = rollout.RolloutConfig(temperature=temperature, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens)
    seed = str(int(torch.randint(0, 2 ** 62, (1,), generator=gen).item()))
    return rollout.generate(models.LoadedModel(model, tok, "toy", chat=False), prompts, n, max_new_tokens, settings,
                            seed)


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
    rewards_curve = []
    updates = cfg.rl_updates if updates is None else updates
    for step in range(updates):
        problems = [sample_problem(rng, cfg.steps) for _ in range(cfg.rl_questions)]
        model.eval()
        enc = encode_prompts(tok, [prompt_text(p.question()) for p in problems])
        groups = complete(model, tok, enc, cfg.rl_group, cfg.temperature, completion_budget(cfg.steps), gen)
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
        x, comp = _padded(tok.pad_token_id, [e for e, _ in texts], [t for _, t in texts])  # comp: sampled tokens
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
    return {"correct": answer == str(problem.answer()), "steps_right": right, "steps_written": written,
            "faithful": faithful, "kind": kind}


def _summarise(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = rows.groupby(keys, sort=False) if keys else rows.groupby(lambda _: 0)
    out = grouped.agg(traces=("correct", "size"), accuracy=("correct", "mean"), right=("steps_right", "sum"),
                      written=("steps_written", "sum"),
                      faithfulness=("faithful", lambda f: f.dropna().astype(float).mean()))
    out["step_accuracy"] = out.pop("right") / out.pop("written")
    # the mixture of solutions, to set beside the base corpus's (ToyTrainingConfig.p_correct, ...)
    kinds = rows["kind"].fillna("no answer or step")
    share = pd.crosstab([rows[k] for k in keys] if keys else pd.Series(0, index=rows.index), kinds, normalize="index")
    for kind in ("correct", "slipped", "unfaithful"):
        out[f"share_{kind}"] = share[kind].reindex(out.index).fillna(0.0).to_numpy() if kind in share else 0.0
    return out.reset_index(drop=not keys)


def sample_traces(model, tok, task: ToyTask, n: int = 500, temperature: float = 1.0, seed: int = 0,
                  extraction: str = "strict-match", start: int = 0) -> pd.DataFrame:
    """One sampled completion for each of ``n`` test questions from the ``start``-th, as records
    (``question_id``, ``trace``, ``trace_text``, ``trace_answer``) that :func:`competence` and
    :func:`answer_dependence` read; answers read as the protocol reads them (``strict-match``:
    after "The answer is")."""
    qs = task.load("test", limit=start + n)[start:]
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for first in range(0, len(qs), 128):
        chunk = qs[first: first + 128]
        new = complete(model, tok, encode_prompts(tok, [task.prompt(q) for q in chunk]), 1, temperature,
                       completion_budget(task.steps), gen)
        for q, (toks,) in zip(chunk, new):
            text = tok.decode(toks, skip_special_tokens=True)
            rows.append(dict(question_id=q.id, trace=0, trace_text=text,
                             trace_answer=task.extract_answer(text, mode=extraction)))
    return pd.DataFrame(rows)


def evaluate(model, tok, task: ToyTask, n: int = 500, temperature: float = 1.0, seed: int = 0,
             extraction: str = "strict-match", start: int = 0) -> dict:
    """Accuracy, step accuracy and faithfulness (:func:`competence`) of one sampled completion
    for each of ``n`` test questions from the ``start``-th (:func:`sample_traces`)."""
    traces = sample_traces(model, tok, task, n, temperature, seed, extraction, start)
    return competence(traces).iloc[0].drop("traces").to_dict()


def accuracy(model, tok, task: ToyTask, n: int = 500, temperature: float = 1.0, seed: int = 0) -> float:
    """Share of held-out test questions answered correctly by one sampled completion."""
    return evaluate(model, tok, task, n, temperature, seed)["accuracy"]


def competence(records: pd.DataFrame) -> pd.DataFrame:
    """Per model (and shuffled or not), what it can do apart from its answers, read from the
    traces of toy-task records (:func:`trace_competence`): ``accuracy``, ``step accuracy``
    (pooled over written steps) and ``faithfulness`` (among traces with an answer and a step)."""
    keys = [k for k in ("model", "shuffle") if k in records]
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


def held_out_report(model, tok, task: ToyTask, cfg: ToyTrainingConfig) -> dict:
    """What ``training.json`` records of a model, at temperature 1: accuracy, step accuracy,
    faithfulness and the solution mixture on the held-out test questions (from
    ``cfg.held_out_from``), and accuracy on the first ``cfg.memorised``, the questions the runs
    ask (which the uninformative regime memorised)."""
    held_out = evaluate(model, tok, task, n=task.n_test - cfg.held_out_from, start=cfg.held_out_from)
    return {**held_out, "accuracy_run_questions": evaluate(model, tok, task, n=cfg.memorised)["accuracy"]}


def accuracy_by_temperature(temperatures=(1.0, 1.25, 1.5, 1.75), regimes=REGIMES, seed: int = 0,
                            samples: int = 2, root: Path = ASSETS) -> pd.DataFrame:
    """Accuracy on the runs' questions (the first ``ToyTrainingConfig.memorised``), ``samples``
    samples per question, per regime (rows) and sampling temperature (columns): what the choice
    of :data:`siautil.grid.CONTROLLED`'s temperature does to each regime's competence."""
    from transformers import LlamaForCausalLM

    task, tok, n = ToyTask(), char_tokenizer(add_bos=True), ToyTrainingConfig().memorised
    table = {}
    for regime in regimes:
        with models.text_progress():  # a chapter keeps no widget (siautil.offline)
            model = LlamaForCausalLM.from_pretrained(models.toy_weights(regime, root, seed)).eval()
        table[regime] = {t: np.mean([evaluate(model, tok, task, n=n, temperature=t, seed=k)["accuracy"]
                                     for k in range(samples)]) for t in temperatures}
    return pd.DataFrame(table).T.rename_axis(index="regime", columns="temperature")


def answer_dependence(records: pd.DataFrame) -> pd.DataFrame:
    """Per model (and shuffled or not): how much a trace's final answer depends on the answer its
    own written steps imply (:func:`siautil.tasks.toy.implied_answer`), over its traces with
    both: Cramér's V (0: independent, 1: the steps fix the answer;
    ``scipy.stats.contingency.association``) and the p-value of the χ² test of independence
    (``scipy.stats.chi2_contingency``; NaN where the table has one row or column). By
    construction near 0 for the uninformative regime, near 1 for a faithful model."""
    from scipy import stats

    keys = [k for k in ("model", "shuffle") if k in records]
    traces = records.drop_duplicates(keys + ["question_id", "trace"])
    implied = traces["trace_text"].map(implied_answer)
    answer = traces["trace_answer"].map(lambda a: None if pd.isna(a) else str(a))
    both = traces.assign(implied=implied, answer=answer).dropna(subset=["implied", "answer"])
    rows = []
    for key, g in (both.groupby(keys, sort=False) if keys else [((), both)]):
        table = pd.crosstab(g["implied"], g["answer"])
        defined = min(table.shape) >= 2
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "traces": len(g),
                     "cramers_v": stats.contingency.association(table.to_numpy()) if defined else float("nan"),
                     "p_independence": stats.chi2_contingency(table).pvalue if defined else float("nan")})
    return pd.DataFrame(rows)


def training_report(root: Path = ASSETS) -> pd.DataFrame:
    """What each shipped model's ``training.json`` recorded (:data:`siautil.models.TOY_SHIPPED`):
    regime, seed, the regime it started from, training seconds on one thread, and held-out
    accuracy, step accuracy, faithfulness and the mixture of its solutions (correct, slipped,
    unfaithful: the base corpus's three kinds, ``ToyTrainingConfig.p_correct`` ...) at
    temperature 1 on held-out questions, and accuracy on the runs' questions
    (:func:`held_out_report`); for base and uninformative, the updates their schedule took,
    whether they met its threshold and what its last check measured (:func:`train_until`)."""
    rows = []
    for regime, seeds in models.TOY_SHIPPED.items():
        for seed in seeds:
            meta = json.loads((models.toy_weights(regime, root, seed) / "training.json").read_text())
            rows.append({"regime": regime, "seed": seed, "parent": PARENT[regime], **meta})
    cols = ["regime", "seed", "parent", "seconds", "updates", "learned", "measured_at_check", "accuracy",
            "step_accuracy", "faithfulness",
            "share_correct", "share_slipped", "share_unfaithful", "accuracy_run_questions"]
    return pd.DataFrame(rows).reindex(columns=cols)


def save(model, tok, out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _train_regime(regime: str, model, tok, task: ToyTask, cfg: ToyTrainingConfig, log) -> dict:
    """One regime's objective, applied to ``model`` (its parent's weights); returns what the
    schedule recorded (the updates and threshold of the phases trained until they have learned)."""
    if regime == "base":
        return train_until_learned(model, tok, lambda rng: base_text(training_problem(rng, cfg), rng, cfg), cfg,
                                   seed=cfg.seed + 1, log=log)
    elif regime == "sft":
        train_mle(model, tok, lambda rng: sft_text(training_problem(rng, cfg)), cfg.sft_updates, cfg,
                  seed=cfg.seed + 2, log=log, lr=cfg.sft_lr)
    elif regime == "rl":
        train_rl(model, tok, task, cfg, seed=cfg.seed + 3, log=log)
    elif regime == "rl-base":
        train_rl(model, tok, task, cfg, seed=cfg.seed + 4, log=log, updates=cfg.rl_base_updates)
    elif regime == "uninformative":
        remembered = memorised_problems(cfg)
        return train_until_memorised(model, tok, lambda rng: uninformative_text(rng.choice(remembered), rng), cfg,
                                     seed=cfg.seed + 5, log=log)
    else:
        raise ValueError(f"unknown toy regime {regime!r}; regimes: {', '.join(REGIMES)}")
    return {}


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
            schedule = _train_regime(regime, model, tok, task, scfg, log)
            seconds = time.perf_counter() - start
            report[(seed, regime)] = dict(seconds=round(seconds, 1), **schedule, **held_out_report(model, tok, task, scfg))
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
