"""The report's figures: summary plots drawn from the rows (attack accuracy per method before / after / retrain;
attack and utility against forget-set size), and the evaluation suite's PNGs (ROC, cosine and top-1 histograms,
signal pairs, t-SNE, loss history) copied from the ``unlearn evaluate`` output each row lists in
``extra_json.plots``, so the report directory is self-contained.

    written = summary_figures(frame, out / "figures")           # [(relative path, caption)]
    written += evaluation_figures(frame, out / "figures")
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.report.aggregate import json_column, select_evaluations, summarise, where, with_utility
from orchestrator.report.paper_tables import KEYS, STAGE_LABEL, STAGES
from trainables.audit.plot_style import DPI, ROLE_COLOURS, styled

MAX_EVALUATION_GROUPS = 8  # copy the plots of at most this many dataset/model/method groups


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def attack_by_method(frame: pd.DataFrame, path: Path) -> Path | None:
    rows = select_evaluations(frame, main=True)
    summary = summarise(rows, KEYS, [f"{s}_mia_accuracy{x}" for s in STAGES for x in ("", "_lo", "_hi")])
    if summary.empty:
        return None
    plt = _pyplot()
    with styled():
        return _attack_bars(plt, summary, path)


def _attack_bars(plt, summary: pd.DataFrame, path: Path) -> Path:
    names = [f"{r['model']}\n{r['method']}" + (f"\n{r['config']}" if r["config"] else "") for _, r in summary.iterrows()]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.4 * len(names) + 2), 4.4))
    single = (summary["n"] == 1).to_numpy()
    for i, stage in enumerate(STAGES):
        col = f"{stage}_mia_accuracy"
        mean = summary[col].astype(float).to_numpy()
        sd = summary[f"{col}_sd"].astype(float).fillna(0).to_numpy()
        # whiskers: sd over seeds; a single run shows its 95% bootstrap interval instead
        low = np.where(single, mean - summary[f"{col}_lo"].astype(float).fillna(summary[col]).to_numpy(), sd)
        high = np.where(single, summary[f"{col}_hi"].astype(float).fillna(summary[col]).to_numpy() - mean, sd)
        ax.bar(x + (i - 1) * 0.27, mean, 0.27, yerr=np.vstack([low, high]), label=STAGE_LABEL[stage], capsize=3,
               color=ROLE_COLOURS[STAGE_LABEL[stage]])  # the evaluation plots' colours
    ax.axhline(0.5, color="k", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(x, names)
    ax.set_ylabel("attack accuracy (forget set)")
    ax.set_ylim(0, 1.15)  # room for the legend above the bars
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.legend(ncol=4, loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def forget_size_plot(frame: pd.DataFrame, path: Path) -> Path | None:
    rows = with_utility(select_evaluations(frame, experiments=["forget_size"]))
    summary = summarise(rows, ["model", "method", "forget_size"], ["after_mia_accuracy", "after_util"])
    if summary.empty:
        return None
    plt = _pyplot()
    with styled():
        return _forget_size_lines(plt, summary, path)


def _forget_size_lines(plt, summary: pd.DataFrame, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (model, method), group in summary.groupby(["model", "method"]):
        group = group.sort_values("forget_size")
        for ax, metric in zip(axes, ("after_mia_accuracy", "after_util"), strict=True):
            ax.errorbar(group["forget_size"].astype(float), group[metric].astype(float),
                        yerr=group[f"{metric}_sd"].astype(float).fillna(0), marker="o", label=f"{model} {method}")
    axes[0].axhline(0.5, color="k", linestyle="--", linewidth=1)
    axes[0].set_ylabel("attack accuracy after")
    axes[1].set_ylabel("accuracy after")
    for ax in axes:
        ax.set_xlabel("forget-set size")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def summary_figures(frame: pd.DataFrame, folder: Path) -> list[tuple[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for fn, name, caption in ((attack_by_method, "attack_by_method.png",
                               "Forget-set attack accuracy (primary attack) of the original, unlearned and retrained "
                               "models per method; bars: mean over seeds, whiskers: sd over seeds (one run: its 95% bootstrap "
                               "interval)"),
                              (forget_size_plot, "forget_size.png",
                               "Attack accuracy and accuracy after unlearning against the forget-set size")):
        if fn(frame, folder / name) is not None:
            out.append((f"{folder.name}/{name}", caption))
    return out


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(str(p) for p in parts if p)).strip("-") or "model"


# what each evaluation figure shows, for the reader who did not write the code
CAPTIONS = {
    "roc": "ROC of each attack on log-log axes (membership leaks at low false-positive rates); circles mark the "
           "TPR at 1% and 0.1% FPR reported in the tables; the dotted diagonal is chance",
    "roc_linear": "ROC of each attack on linear axes",
    "hist_cosine": "Mean augmented-view cosine similarity, forget set vs held-out non-members (paper Fig. 4); "
                   "overlapping histograms = the attack cannot tell them apart",
    "hist_top1": "Top-1 confidence, forget set vs held-out non-members",
    "signal_pairs": "Per-sample top-1 confidence, view cosine and loss in pairs (paper Fig. 6 in 2-D)",
    "top3_pairs": "The three largest output probabilities in pairs (paper Fig. 3 in 2-D)",
    "scatter3d": "Top-1 confidence, view cosine and loss in 3-D (paper Fig. 6)",
    "top3_3d": "The three largest output probabilities in 3-D (paper Fig. 3)",
    "tsne": "t-SNE of the model outputs, forget set vs non-members (paper Fig. 7)",
    "loss_history": "Every loss term and monitor per unlearning epoch, each on its own scale",
}


def evaluation_figures(frame: pd.DataFrame, folder: Path) -> tuple[list[tuple[str, list[tuple[str, str]]]], list[str]]:
    """Copy the newest evaluation's PNGs of each main / supervised group; returns ([(group label, [(relative path,
    caption)])], notes about groups or files left out)."""
    rows = select_evaluations(frame, main=True, experiments=["supervised"])
    rows = rows.assign(plots=[e.get("plots") or [] for e in json_column(rows, "extra_json")])
    rows = where(rows, [bool(p) for p in rows["plots"]])
    groups_out, notes = [], []
    groups = list(rows.groupby(KEYS, sort=True, dropna=False))
    for i, (key, group) in enumerate(groups):
        if i >= MAX_EVALUATION_GROUPS:
            notes.append(f"{len(groups) - i} more evaluated groups have plots; see their evaluate output folders")
            break
        newest = group.sort_values("created_at").iloc[-1]
        target = folder / _slug(*key)
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for src in map(Path, newest["plots"]):
            if not src.is_file():
                notes.append(f"missing plot {src}")
                continue
            shutil.copy2(src, target / src.name)
            written.append((f"{folder.name}/{target.name}/{src.name}",
                            CAPTIONS.get(src.stem, src.stem.replace("_", " "))))
        if written:
            source = Path(newest["checkpoint_uri"] or "").name or "evaluation"
            groups_out.append((f"{' / '.join(str(k) for k in key)} (checkpoint {source})", written))
    return groups_out, notes
