"""The paper's tables ("Machine Unlearning in Contrastive Learning", arXiv 2405.07317, section V) from ``evaluate`` rows of the results store.

- Table II / III: before vs after vs retrain per dataset, model and method (main rows);
- Table IV / V: ablation of the loss terms (Eq. 2 = ``gp``, Eq. 3 = ``memgp``; each subset of a, b, c; L_train on
  the forget or the retain set), rows tagged ``ablation``;
- Table VI: forget sizes, rows tagged ``forget_size``;
- Table VII: the supervised model vs retrain.

Each builder returns a list of :class:`~orchestrator.report.document.Table` (empty when no row fits). Cells are
``mean ± sd`` over seeds (:mod:`orchestrator.report.aggregate`).

    tables = table_ii(plain(results.load("runs/results")))
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from orchestrator.report.aggregate import (
    cell,
    fmt,
    json_column,
    select_evaluations,
    summarise,
    where,
    with_utility,
)
from orchestrator.report.document import Table

STAGES = ("before", "after", "retrain")
STAGE_LABEL = {"before": "original", "after": "unlearned", "retrain": "retrained"}
ATTACK = (("mia_accuracy", "attack acc"), ("mia_precision", "prec"), ("mia_recall", "recall"), ("mia_auc", "AUC"),
          ("mia_tpr_at_1fpr", "TPR@1%FPR"))
FORGET_SIGNALS = (("forget_top1", "top-1"), ("forget_loss", "loss"), ("forget_cos_mean", "view cos"))
KEYS = ["dataset", "model", "method"]


def label(line, name: str = "method") -> str:
    return str(line[name]) + (f" ({line['config']})" if line.get("config") else "")


def _has_stage(line, stage: str, metrics) -> bool:
    return any(not math.isnan(line.get(f"{stage}_{m}", np.nan)) for m in metrics)


def table_ii(frame: pd.DataFrame) -> list[Table]:
    """Long layout: one line per model state (original / unlearned / retrained): utility and every attack metric."""
    rows = with_utility(select_evaluations(frame, main=True))
    metrics = ["util", "linear_acc", *(m for m, _ in ATTACK)]
    summary = summarise(rows, KEYS, [f"{s}_{m}" for s in STAGES for m in metrics])
    lines = []
    for _, line in summary.iterrows():
        for stage in STAGES:
            if _has_stage(line, stage, metrics):
                lines.append([line["dataset"], line["model"], label(line), str(line["n"]), STAGE_LABEL[stage],
                              *(cell(line, f"{stage}_{m}") for m in metrics)])
    if not lines:
        return []
    return [Table(["dataset", "model", "method", "n", "state", "acc", "linear", *(h for _, h in ATTACK)], lines,
                  "Table II: utility (kNN accuracy for encoders, test accuracy for classifiers; linear probe) and the "
                  "primary membership-inference attack on the forget set, before / after unlearning and retrained")]


def table_iii(frame: pd.DataFrame) -> list[Table]:
    """Compact per model (the paper's Table III): ACC and MIA before / after / retrain."""
    rows = with_utility(select_evaluations(frame, main=True))
    metrics = [f"{s}_{m}" for m in ("util", "mia_accuracy") for s in STAGES]
    summary = summarise(rows, KEYS, metrics)
    lines = [[line["dataset"], line["model"], label(line), str(line["n"]), *(cell(line, m) for m in metrics)]
             for _, line in summary.iterrows()]
    if not lines:
        return []
    return [Table(["dataset", "model", "method", "n", "ACC before", "ACC after", "ACC retrain", "MIA before",
                   "MIA after", "MIA retrain"], lines, "Table III: accuracy and attack accuracy per model")]


def ablation_descriptor(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``equation``, ``terms``, ``train_on``, ``form`` per row: ``extra_json.ablation`` when the row carries
    it, else derived from the method (gp = Eq. 2, memgp = Eq. 3) and the weights a, b, c > 0."""
    out = frame.copy()
    described = [e.get("ablation") or {} for e in json_column(out, "extra_json")]
    equations, terms = [], []
    for (_, row), ab in zip(out.iterrows(), described, strict=True):
        method = row["method"]
        equations.append(ab.get("equation") or {"gp": "eq2", "memgp": "eq3"}.get(method, method))
        weights = (("a", row.get("hp_a")), ("b", row.get("hp_b")), ("c", row.get("hp_c")))
        terms.append(ab.get("terms") or "+".join(n for n, w in weights if w is not None and not math.isnan(w) and w > 0))
    out["equation"], out["terms"] = equations, terms
    out["train_on"] = [ab.get("train_term_source") or row for ab, row in zip(described, out["hp_train_term_source"],
                                                                            strict=True)]
    out["form"] = [ab.get("form") or row for ab, row in zip(described, out["hp_form"], strict=True)]
    return out


def reference_lines(rows: pd.DataFrame, metrics, *, stage: str = "before", name: str = "original", lead: int,
                    trail: int = 0) -> list[list[str]]:
    """One line per dataset/model with the values of a reference model: the original (``before``) or the retrained
    one (``retrain``), each such model counted once however many unlearned models were evaluated against it.
    Layout: dataset, model, name, ``lead`` blanks, n, the metrics, ``trail`` blanks."""
    uri = {"before": "original_uri", "retrain": "retrained_uri"}[stage]
    lines = []
    work = rows.assign(dataset=rows["dataset"].fillna(""), model=rows["model"].fillna(""))
    for (dataset, model), group in work.groupby(["dataset", "model"], sort=True):
        if group[uri].notna().all():
            group = group.drop_duplicates(subset=[uri])
        values = []
        for m in metrics:
            column = group[f"{stage}_{m}"].astype("float64").dropna()
            values.append(fmt(column.mean() if len(column) else np.nan,
                              column.std(ddof=1) if len(column) > 1 else np.nan))
        lines.append([dataset, model, name, *([""] * lead), str(len(group)), *values, *([""] * trail)])
    return lines


def table_iv_v(frame: pd.DataFrame) -> list[Table]:
    rows = ablation_descriptor(with_utility(select_evaluations(frame, experiments=["ablation"])))
    if rows.empty:
        return []
    metrics = ["util", "mia_accuracy", "mia_auc", *(m for m, _ in FORGET_SIGNALS)]
    heads = ["ACC", "attack acc", "AUC", *(h for _, h in FORGET_SIGNALS)]
    tables = []
    specs = (("eq2", "Table IV: ablation of Eq. 2 (gp): L_Norm (c), gradient penalty on interpolates (b), L_train (a)",
              (("c", "L_Norm (c)"), ("b", "GP (b)"), ("a", "L_train (a)"))),
             ("eq3", "Table V: ablation of Eq. 3 (memgp): member gradient penalty (b), L_train (a)",
              (("b", "MemGP (b)"), ("a", "L_train (a)"))))
    known = [eq for eq, _, _ in specs]
    for equation, caption, terms in (*specs, ("other", "Other ablation rows", (("a", "a"), ("b", "b"), ("c", "c")))):
        part = where(rows, [(e == equation) if equation != "other" else e not in known for e in rows["equation"]])
        if part.empty:
            continue
        summary = summarise(part, ["dataset", "model", "equation", "terms", "train_on", "form"],
                            [f"after_{m}" for m in metrics])
        lines = reference_lines(part, metrics, lead=len(terms) + 2)
        for _, line in summary.iterrows():
            used = set(str(line["terms"]).split("+"))
            marks = ["✓" if t in used else "×" for t, _ in terms]
            name = line["train_on"] + (f" ({line['config']})" if line["config"] else "")
            lines.append([line["dataset"], line["model"], line["equation"], *marks, name, line["form"],
                          str(line["n"]), *(cell(line, f"after_{m}") for m in metrics)])
        tables.append(Table(["dataset", "model", "equation", *(h for _, h in terms), "L_train on", "form", "n",
                             *heads], lines, caption + "; after unlearning (first line: the original model); "
                                                       "top-1 / loss / view cos are forget-set means"))
    return tables


def table_vi(frame: pd.DataFrame) -> list[Table]:
    rows = with_utility(select_evaluations(frame, experiments=["forget_size"]))
    if rows.empty:
        return []
    metrics = ["util", "mia_accuracy", "mia_auc", *(m for m, _ in FORGET_SIGNALS)]
    summary = summarise(rows, ["dataset", "model", "method", "forget_size", "num_members"],
                        [*(f"after_{m}" for m in metrics), "gap_mia_accuracy"])
    lines = reference_lines(rows, metrics, lead=2, trail=1)
    for _, line in summary.iterrows():
        share = line["forget_size"] / line["num_members"] if line["num_members"] else np.nan
        lines.append([line["dataset"], line["model"], label(line), f"{line['forget_size']:.0f}",
                      "–" if math.isnan(share) else f"{100 * share:.0f}%", str(line["n"]),
                      *(cell(line, f"after_{m}") for m in metrics), cell(line, "gap_mia_accuracy")])
    heads = ["ACC", "attack acc", "AUC", *(h for _, h in FORGET_SIGNALS)]
    return [Table(["dataset", "model", "method", "forget size", "of members", "n", *heads, "gap to retrain"], lines,
                  "Table VI: after unlearning, by forget-set size (first line: the original model)")]


def table_vii(frame: pd.DataFrame) -> list[Table]:
    rows = select_evaluations(frame, main=True, experiments=["supervised"])
    rows = with_utility(where(rows, [m == "supervised" for m in rows["model"]]))
    metrics = [f"{s}_{m}" for m in ("util", "mia_accuracy", "forget_top1", "nonmember_top1") for s in STAGES]
    summary = summarise(rows, ["dataset", "method"], metrics)
    lines = [[line["dataset"], label(line), str(line["n"]), *(cell(line, m) for m in metrics)]
             for _, line in summary.iterrows()]
    if not lines:
        return []
    stages = ("bef", "af", "retrain")
    return [Table(["dataset", "method", "n", *(f"{h} {s}" for h in ("ACC", "MIA", "MTop1", "NMTop1") for s in stages)],
                  lines, "Table VII: supervised model before, after unlearning and retrained (test accuracy; "
                         "MTop1 / NMTop1 = mean top-1 confidence on the forget set / non-members)")]
