"""The reproduction's targets, marked met / missed from the results store, for BENCHMARKS.md and the
report. Per dataset, model, method and experiment (main / tuned / supervised rows of the penalty methods; mean over
seeds):

- ``before``: the original model's attack accuracy on the forget set >= 0.75 (the overfit recipe worked);
- ``vs_retrain``: |attack accuracy after - retrained model's| <= 0.05;
- ``vs_chance``: |attack accuracy after - 0.5| <= 0.05;
- ``drop``: utility before - after <= 0.10 (kNN accuracy for encoders, test accuracy for classifiers).

    df = targets_table(results.load("runs/results"))
    print(targets_markdown(df))
"""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.report.aggregate import fmt, plain, select_evaluations, summarise, where, with_utility
from orchestrator.report.document import Document, Mark, Table

TARGETS = {"before": 0.75, "vs_retrain": 0.05, "vs_chance": 0.05, "drop": 0.10}
EXPERIMENTS = ("main", "tuned", "supervised")
METHODS = ("gp", "memgp")


def target_met(name: str, value: float) -> bool:
    """Whether a measured value (a mean over seeds; distances taken per seed first) meets target ``name``.
    Attack accuracies are multiples of 1/n, so a value on the threshold is compared without float noise."""
    eps = 1e-9
    if name == "before":
        return value >= TARGETS["before"] - eps
    return value <= TARGETS[name] + eps


def targets_table(df: pd.DataFrame, *, methods=METHODS, experiments=EXPERIMENTS) -> pd.DataFrame:
    """One line per dataset / model / method / experiment / configuration: the measured values (means over seeds,
    ``n`` rows), and ``met_<target>`` booleans (None when a value is missing), ``all_met``. Rows with an
    untagged or unknown experiment count as ``main``. Accepts :func:`orchestrator.results.store.load`'s frame."""
    frame = df if "before_util" in df else plain(df)
    rows = select_evaluations(frame, main=True, experiments=experiments)
    rows = with_utility(where(rows, [m in methods for m in rows["method"]]))
    rows["experiment"] = [e if e in experiments else "main" for e in rows["experiment"]]
    rows["vs_retrain"] = (rows["after_mia_accuracy"] - rows["retrain_mia_accuracy"]).abs()
    rows["vs_chance"] = (rows["after_mia_accuracy"] - 0.5).abs()
    rows["drop"] = rows["before_util"] - rows["after_util"]
    metrics = ["before_mia_accuracy", "after_mia_accuracy", "retrain_mia_accuracy", "before_util", "after_util",
               "vs_retrain", "vs_chance", "drop"]
    out = summarise(rows, ["dataset", "model", "method", "experiment"], metrics)
    checks = {"before": "before_mia_accuracy", "vs_retrain": "vs_retrain", "vs_chance": "vs_chance", "drop": "drop"}
    for name, column in checks.items():
        out[f"met_{name}"] = [None if v is None or math.isnan(v) else target_met(name, v) for v in out[column]]
    out["all_met"] = [all(out.loc[i, f"met_{n}"] in (True,) for n in checks) for i in out.index]
    return out


def _mark(value: float, sd: float, met) -> str:
    return Mark(fmt(value, sd), met)


def targets_rows(df: pd.DataFrame) -> Table:
    """The targets as a report table (each cell: value, then met / MISSED)."""
    heads = ["dataset", "model", "method", "experiment", "n", "attack before >= 0.75", "|after - retrain| <= 0.05",
             "|after - 0.5| <= 0.05", "utility drop <= 0.10", "all"]
    lines = []
    for _, line in df.iterrows():
        lines.append([line["dataset"], line["model"], line["method"] + (f" ({line['config']})" if line["config"]
                                                                          else ""),
                      line["experiment"], str(line["n"]),
                      _mark(line["before_mia_accuracy"], line["before_mia_accuracy_sd"], line["met_before"]),
                      _mark(line["vs_retrain"], line["vs_retrain_sd"], line["met_vs_retrain"]),
                      _mark(line["vs_chance"], line["vs_chance_sd"], line["met_vs_chance"]),
                      _mark(line["drop"], line["drop_sd"], line["met_drop"]),
                      Mark("", bool(line["all_met"]))])
    return Table(heads, lines, "Targets on CPU scale: the forget-set attack accuracy before unlearning, "
                               "after unlearning against the retrained model and chance, and the utility drop")


def targets_markdown(df: pd.DataFrame) -> str:
    """:func:`targets_table` (or a results frame) as a Markdown table, for BENCHMARKS.md."""
    table = df if "met_before" in df else targets_table(df)
    if table.empty:
        return "*No evaluated main / tuned / supervised rows of gp or memgp yet.*\n"
    doc = Document("")
    doc.table(targets_rows(table))
    return doc.markdown().split("\n", 2)[2]

