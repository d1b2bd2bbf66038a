"""The report's other tables: per-method gap to retrain (with the wall-time ratio), baselines, Tune-found vs paper
default configurations, Tune searches, every attack, scheduled batches, and the runs overview.

    tables = gap_to_retrain(plain(results.load("runs/results")))
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
from orchestrator.report.paper_tables import KEYS, STAGES, label, reference_lines


def _time_by_uri(frame: pd.DataFrame, kind: str, column: str) -> dict[str, float]:
    rows = frame[(frame["kind"] == kind) & frame["checkpoint_uri"].notna()]
    return {uri: t for uri, t in zip(rows["checkpoint_uri"], rows[column].astype("float64"), strict=True)
            if not math.isnan(t)}


def with_times(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``unlearn_s`` / ``retrain_s`` to evaluate rows: the wall times of the unlearn / retrain jobs that wrote
    the evaluated and the retrained checkpoints (matched by checkpoint path), else the evaluated checkpoint's own
    recorded time."""
    unlearn, retrain = _time_by_uri(frame, "unlearn", "unlearn_time_s"), _time_by_uri(frame, "retrain",
                                                                                      "retrain_time_s")
    out = rows.copy()
    out["unlearn_s"] = [unlearn.get(u, w if m not in ("retrain", "none") else np.nan)
                        for u, w, m in zip(out["checkpoint_uri"], out["wall_time_s"], out["method"], strict=True)]
    out["retrain_s"] = [retrain.get(u, np.nan) for u in out["retrained_uri"]]
    return out


def gap_to_retrain(frame: pd.DataFrame) -> list[Table]:
    rows = select_evaluations(frame)
    rows = where(rows, [not math.isnan(r) and m not in ("retrain", "none")
                        for r, m in zip(rows["retrain_mia_accuracy"], rows["method"], strict=True)])
    if rows.empty:
        return []
    rows = with_times(frame, with_utility(rows))
    rows["util_gap"] = rows["after_util"] - rows["retrain_util"]
    metrics = ["after_mia_accuracy", "retrain_mia_accuracy", "gap_mia_accuracy", "gap_mia_auc", "leakage_vs_chance",
               "util_gap", "unlearn_s", "retrain_s"]
    summary = summarise(rows, [*KEYS, "experiment"], metrics)
    lines = []
    for _, line in summary.iterrows():
        ratio = line["unlearn_s"] / line["retrain_s"] if line["retrain_s"] else np.nan
        lines.append([line["dataset"], line["model"], label(line), line["experiment"], str(line["n"]),
                      *(cell(line, m) for m in metrics[:6]), cell(line, "unlearn_s", digits=1),
                      cell(line, "retrain_s", digits=1), fmt(ratio, digits=3)])
    return [Table(["dataset", "model", "method", "experiment", "n", "attack after", "attack retrain",
                   "attack gap", "AUC gap", "|after - 0.5|", "utility after - retrain", "unlearn s", "retrain s",
                   "time ratio"], lines,
                  "Per-method gap to the retrained model (after - retrain; the reference need not sit at 0.5) and "
                  "unlearning / retraining wall time")]


def baselines(frame: pd.DataFrame) -> list[Table]:
    rows = select_evaluations(frame, experiments=["baselines"])
    if rows.empty:
        return []
    rows = with_times(frame, with_utility(rows))
    rows["drop"] = rows["before_util"] - rows["after_util"]
    metrics = ["after_mia_accuracy", "after_mia_auc", "after_util", "gap_mia_accuracy", "leakage_vs_chance", "drop"]
    summary = summarise(rows, KEYS, [*metrics, "unlearn_s"])
    lines = [[line["dataset"], line["model"], label(line), str(line["n"]), *(cell(line, m) for m in metrics),
              cell(line, "unlearn_s", digits=1)] for _, line in summary.iterrows()]
    lines += reference_lines(rows, ["mia_accuracy", "mia_auc", "util"], stage="retrain", name="retrain (reference)",
                             lead=0, trail=4)
    return [Table(["dataset", "model", "method", "n", "attack acc", "AUC", "utility", "gap to retrain", "|attack - 0.5|",
                   "utility drop", "unlearn s"], lines, "Baselines on the same splits, after unlearning (last lines: the "
                                                    "retrained reference)")]


_HP = ("hp_a", "hp_b", "hp_c", "hp_form", "hp_train_term_source", "hp_lr", "hp_epochs")


def tuned_vs_default(frame: pd.DataFrame) -> list[Table]:
    tuned = select_evaluations(frame, experiments=["tuned"])
    if tuned.empty:
        return []
    methods = set(zip(tuned["dataset"], tuned["model"], tuned["method"], strict=True))
    default = select_evaluations(frame, main=True)
    default = where(default, [k in methods for k in zip(default["dataset"], default["model"], default["method"],
                                                          strict=True)])
    rows = with_utility(pd.concat([default.assign(source="paper default"), tuned.assign(source="Tune-found")]))
    rows["drop"] = rows["before_util"] - rows["after_util"]
    metrics = ["after_mia_accuracy", "gap_mia_accuracy", "leakage_vs_chance", "after_util", "drop"]
    summary = summarise(rows, [*KEYS, "source", *_HP], metrics)
    lines = [[line["dataset"], line["model"], line["method"], line["source"],
              ", ".join(f"{h[3:]}={_short(line[h])}" for h in _HP if line[h] != ""), str(line["n"]),
              *(cell(line, m) for m in metrics)] for _, line in summary.iterrows()]
    return [Table(["dataset", "model", "method", "config", "hyperparameters", "n", "attack acc", "gap to retrain",
                   "|attack - 0.5|", "utility", "utility drop"], lines,
                  "Tune-found configuration (experiment `tuned`) beside the paper's defaults (main rows)")]


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def tune_searches(frame: pd.DataFrame) -> list[Table]:
    rows = frame[frame["kind"] == "tune-trial"].reset_index(drop=True)
    if rows.empty:
        return []
    extra = json_column(rows, "extra_json")
    rows["feasible"] = [bool(e.get("feasible")) for e in extra]
    rows["objective"] = [float(e["objective"]) if isinstance(e.get("objective"), (int, float)) else np.nan
                         for e in extra]
    rows["hp"] = json_column(rows, "hp_json")
    lines = []
    # one row per search and method: a portfolio search (several methods) gets each method's best feasible trial
    for (search, method), group in rows.groupby(["experiment", "method"], sort=True, dropna=False):
        feasible = group[group["feasible"] & group["objective"].notna()]
        best = feasible.loc[feasible["objective"].idxmin()] if len(feasible) else None
        hp = "" if best is None else ", ".join(f"{k}={_short(v)}" for k, v in sorted(best["hp"].items())
                                                if k != "method" and v is not None)
        lines.append([str(search), str(method), str(len(group)), str(int((group["status"] == "ok").sum())),
                      str(len(feasible)), "no feasible trial" if best is None else fmt(best["objective"]),
                      "–" if best is None else fmt(best["after_mia_accuracy"]), hp])
    return [Table(["search", "method", "trials", "ok", "feasible", "best objective", "best attack acc",
                   "best config"], lines, "Tune searches (validation protocol; kind tune-trial; per search and "
                                          "method, its best feasible trial)")]


def all_attacks(frame: pd.DataFrame) -> list[Table]:
    rows = frame[frame["kind"] == "evaluate"].reset_index(drop=True)
    if rows.empty or rows["attack"].nunique() < 2:
        return []
    metrics = [f"{s}_mia_{m}" for m in ("accuracy", "auc") for s in STAGES]
    summary = summarise(rows, [*KEYS, "attack"], metrics)
    lines = [[line["dataset"], line["model"], label(line), line["attack"], str(line["n"]),
              *(cell(line, m) for m in metrics)] for _, line in summary.iterrows()]
    return [Table(["dataset", "model", "method", "attack", "n", "acc before", "acc after", "acc retrain",
                   "AUC before", "AUC after", "AUC retrain"], lines, "Every attack (all experiments)")]


def scheduled_batches(frame: pd.DataFrame) -> list[Table]:
    rows = frame[frame["kind"] == "scheduled-batch"].reset_index(drop=True)
    if rows.empty:
        return []
    lines = []
    for (_, row), extra in zip(rows.iterrows(), json_column(rows, "extra_json"), strict=True):
        attack = "mia_accuracy" if not math.isnan(row["after_mia_accuracy"]) else "mia_auc"
        util = "knn_acc" if not math.isnan(row["after_knn_acc"]) else "test_acc"
        lines.append([str(row["batch_id"]), str(row["status"]), str(extra.get("version") or "–"),
                      f"{row['forget_size']:.0f}", f"{fmt(row[f'before_{attack}'])} -> {fmt(row[f'after_{attack}'])}",
                      f"{fmt(row[f'before_{util}'])} -> {fmt(row[f'after_{util}'])}", fmt(row["wall_time_s"], digits=1),
                      str(extra.get("reason") or "")])
    return [Table(["batch", "status", "version", "ids", "attack parent -> candidate", "utility parent -> candidate",
                   "wall s", "reason"], lines, "Scheduled deletion batches (`unlearn schedule run`)")]


def runs_overview(frame: pd.DataFrame) -> list[Table]:
    counts = frame.groupby(["kind", "status"], dropna=False).size().reset_index(name="rows")
    tables = [Table(["kind", "status", "rows"], [[str(k), str(s), str(n)] for k, s, n in counts.itertuples(index=False)],
                    "Rows in the results store")]
    pre = with_utility(frame[frame["kind"] == "pretrain"].reset_index(drop=True))
    if not pre.empty:
        summary = summarise(pre, ["dataset", "model", "num_members", "hp_epochs"],
                            ["before_util", "before_linear_acc", "wall_time_s"])
        tables.append(Table(["dataset", "model", "members", "epochs", "config", "n", "utility", "linear probe", "wall s"],
                            [[line["dataset"], line["model"], _short(line["num_members"]), _short(line["hp_epochs"]),
                              line["config"], str(line["n"]), cell(line, "before_util"),
                              cell(line, "before_linear_acc"), cell(line, "wall_time_s", digits=1)]
                             for _, line in summary.iterrows()], "Pretrained models"))
    return tables
