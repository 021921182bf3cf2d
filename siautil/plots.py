"""The book's figures. Each function takes a tidy DataFrame from siautil and returns a Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import theory


def fano(points: pd.DataFrame, n_a: int) -> plt.Figure:
    """True MAP error against conditional entropy, with Theorem 1's bounds as curves."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(points["h"], points["map_error"], s=10, alpha=0.6, label="true MAP error $P_{e,t}$")
    h = np.linspace(0, np.log(n_a), 200)
    ax.plot(h, [theory.fano_error_bound(x, n_a) for x in h], "k-", label="Fano (sharp)")
    ax.plot(h, [theory.fano_lower_bound(x, n_a) for x in h], "k--", label="Fano (Theorem 1)")
    ax.set_xlabel(r"$H(A \mid X, Z_{\leq t})$ (nats)")
    ax.set_ylabel("error of the Bayes predictor")
    ax.set_title(f"Theorem 1 on random joints, |A| = {n_a}")
    ax.legend()
    fig.tight_layout()
    return fig


def continuity(points: pd.DataFrame, n: int) -> plt.Figure:
    """Entropy gaps under KL perturbations against Lemma 5's modulus ``eps_n(delta)``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(points["kl"], points["gap"], s=10, alpha=0.6, label=r"observed $|H(P)-H(Q)|$")
    d = np.linspace(0, points["kl"].max() * 1.02, 300)
    ax.plot(d, [theory.epsilon(x, n) for x in d], "k-", label=r"$\varepsilon_n(\delta)$ (Lemma 5)")
    ax.axhline(np.log(n), color="grey", lw=0.8, ls=":", label=r"$\log n$")
    ax.set_xlabel(r"$\delta = \mathrm{KL}(P \,\|\, Q)$ (nats)")
    ax.set_ylabel("entropy gap (nats)")
    ax.set_title(f"Continuity of entropy, n = {n}")
    ax.legend()
    fig.tight_layout()
    return fig


def telescoping(table: pd.DataFrame) -> plt.Figure:
    """Proposition 1: stacked per-step information against the entropy drop."""
    fig, ax = plt.subplots(figsize=(6, 4))
    t = table["t"].to_numpy()
    bottom = 0.0
    for i in range(1, len(t)):
        v = table["step_information"].iloc[i]
        ax.bar(t[i:], v, bottom=bottom, width=0.6, alpha=0.7, label=rf"$I(A; Z_{{{i}}} \mid X, Z_{{<{i}}})$")
        bottom = bottom + v
    ax.plot(t, table["drop"], "ko-", label=r"$H(A|X) - H(A|X, Z_{\leq t})$")
    ax.set_xlabel("prefix length t")
    ax.set_ylabel("nats")
    ax.set_title("Entropy drop = sum of per-step information")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sia_worlds(table: pd.DataFrame) -> plt.Figure:
    """The model's entropy and the gold-answer information in an aligned and a broken world."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (world, g) in zip(axes, table.groupby("world", sort=False)):
        ax.plot(g["t"], g["model_entropy"], "o-", label=r"model: $H_\theta(A \mid X, Z_{\leq t})$")
        ax.plot(g["t"], g["gold_information"], "s-", label=r"gold: $I_q(A^*; Z_{\leq t} \mid X)$")
        ax.set_title(world)
        ax.set_xlabel("prefix length t")
    axes[0].set_ylabel("nats")
    axes[0].legend()
    fig.tight_layout()
    return fig
