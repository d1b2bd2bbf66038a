"""Rows of the results store -> report groups: plain dtypes, the primary attack, experiment tags, seeds pooled.

Seeds: rows that differ only in seeds (any hyperparameter whose key ends in ``seed``) or in runtime settings
(``runtime.*``: threads, device, progress) are one configuration; a table line is the mean over them, with the
sample standard deviation as the spread and ``n`` the number of rows. Rows with the same table key but otherwise
different hyperparameters stay separate lines, labelled by the keys that differ (the ``config`` column).

    frame = plain(results.load("runs/results"))
    main = select_evaluations(frame, main=True)
    summary = summarise(main, keys=["dataset", "model", "method"], metrics=["after_mia_accuracy"])
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

# Experiment tags with a table of their own (docs/results.md); every other tag (or none) is a "main" row.
SPECIAL = ("ablation", "forget_size", "supervised", "baselines", "tuned", "scheduled", "audit")
_IGNORED_KEYS = ("data.data_dir", "data.download", "attack.bootstrap")


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """Arrow-typed frame -> numpy float64 for numbers (NaN for missing) and Python objects for the rest."""
    columns = {}
    for col in df.columns:
        series = df[col].reset_index(drop=True)
        if pd.api.types.is_float_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype):
            columns[col] = series.astype("float64")
        else:
            columns[col] = series.astype(object).where(series.notna(), None)
    return pd.DataFrame(columns, index=range(len(df)))


def where(df: pd.DataFrame, mask) -> pd.DataFrame:
    """Rows of ``df`` where ``mask`` (a list of booleans) holds; safe on an empty frame."""
    return df[pd.Series(list(mask), index=df.index, dtype=bool)].reset_index(drop=True)


def json_column(df: pd.DataFrame, column: str) -> list[dict]:
    return [json.loads(v) if isinstance(v, str) and v else {} for v in df[column]]


def is_main(experiment) -> bool:
    return experiment not in SPECIAL


def select_evaluations(df: pd.DataFrame, *, experiments: Iterable[str] | None = None, main: bool = False,
                    attack: str | None = None) -> pd.DataFrame:
    """``evaluate`` rows of one attack (default: each evaluation's primary attack), optionally of some
    experiment tags (``main=True``: the unlearning evaluations without a special tag)."""
    rows = df[df["kind"] == "evaluate"]
    if attack:
        rows = rows[rows["attack"] == attack]
    else:
        rows = where(rows, [bool(e.get("primary", True)) for e in json_column(rows, "extra_json")])
    if main or experiments is not None:
        wanted = set(experiments or ())
        # an evaluation of a pretrained model alone (method "none") is an audit, not an unlearning result
        rows = where(rows, [(main and is_main(e) and m != "none") or e in wanted
                            for e, m in zip(rows["experiment"], rows["method"], strict=True)])
    return rows.reset_index(drop=True)


def _signature_keys(hp: dict) -> dict:
    return {k: v for k, v in hp.items()
            if "seed" not in k.rsplit(".", 1)[-1] and not k.startswith("runtime.") and ".runtime." not in k
            and k not in _IGNORED_KEYS}


def config_signature(hp_json: str | None) -> str:
    """The hyperparameters that define a configuration (seeds and runtime settings left out), as a string."""
    hp = json.loads(hp_json) if hp_json else {}
    return json.dumps(_signature_keys(hp), sort_keys=True, default=str)


def _short(key: str) -> str:
    return key.removeprefix("unlearning.")


def _variant_labels(signatures: Sequence[str]) -> dict[str, str]:
    """For several signatures of one table key: a label naming the values that differ."""
    dicts = {s: json.loads(s) for s in signatures}
    keys = sorted({k for d in dicts.values() for k in d})
    differing = [k for k in keys if len({json.dumps(d.get(k), default=str) for d in dicts.values()}) > 1]
    return {s: ", ".join(f"{_short(k)}={d.get(k)}" for k in differing[:4]) + (" ..." if len(differing) > 4 else "")
            for s, d in dicts.items()}


def summarise(df: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """One line per (keys, configuration): ``n``, each metric's mean and ``<metric>_sd`` (NaN for n < 2),
    ``config`` naming what distinguishes configurations that share the keys. Sorted by the keys."""
    columns = [*keys, "config", "n", *metrics, *(f"{m}_sd" for m in metrics)]
    if df.empty:
        return pd.DataFrame(columns=columns)
    work = df.copy()
    for key in keys:
        work[key] = [("" if v is None or (isinstance(v, float) and math.isnan(v)) else v) for v in work[key]]
    work["_sig"] = [config_signature(h) for h in work["hp_json"]]
    for m in metrics:
        if m not in work:
            work[m] = np.nan
    lines = []
    for key_values, group in work.groupby(list(keys), sort=True, dropna=False):
        key_values = key_values if isinstance(key_values, tuple) else (key_values,)
        labels = _variant_labels(sorted(group["_sig"].unique())) if group["_sig"].nunique() > 1 else {}
        for sig, rows in group.groupby("_sig", sort=True):
            line = dict(zip(keys, key_values, strict=True))
            line["config"] = labels.get(sig, "")
            line["n"] = len(rows)
            for m in metrics:
                values = rows[m].astype("float64").dropna()
                line[m] = values.mean() if len(values) else np.nan
                line[f"{m}_sd"] = values.std(ddof=1) if len(values) > 1 else np.nan
            lines.append(line)
    return pd.DataFrame(lines, columns=columns)


def fmt(value, sd=np.nan, *, digits: int = 3) -> str:
    """``0.512 ± 0.021`` (the spread only when there is one); ``–`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:.{digits}f}"
    if sd is not None and isinstance(sd, float) and not math.isnan(sd):
        text += f" ± {sd:.{digits}f}"
    return text


def cell(line, metric: str, *, digits: int = 3) -> str:
    """Formatted mean ± sd of ``metric`` from a :func:`summarise` line."""
    return fmt(line.get(metric, np.nan), line.get(f"{metric}_sd", np.nan), digits=digits)


def with_utility(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``{stage}_util`` per row: test accuracy for a classifier (``model`` supervised) when recorded, else kNN
    accuracy (encoders; the paper's "model accuracy")."""
    out = df.copy()
    supervised = np.array([m == "supervised" for m in out["model"]], dtype=bool)
    for stage in ("before", "after", "retrain"):
        knn = out.get(f"{stage}_knn_acc", pd.Series(np.nan, index=out.index)).astype("float64").to_numpy()
        test = out.get(f"{stage}_test_acc", pd.Series(np.nan, index=out.index)).astype("float64").to_numpy()
        out[f"{stage}_util"] = np.where(supervised & ~np.isnan(test), test, np.where(np.isnan(knn), test, knn))
    return out
