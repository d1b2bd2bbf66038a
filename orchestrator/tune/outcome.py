"""The results of a search: one ``tune-trial`` row per finished trial in the results store, the best feasible
trial's config as ``best.yaml`` (an UnlearnJob file for ``unlearn forget --config`` and ``unlearn schedule run
--config``), and ``summary.json``.

Row columns (``orchestrator/results/store.py`` schema): ``trial_id``, ``experiment`` (the search name), ``status`` (ok,
diverged: NaN / exploding loss, error: the trial crashed), ``method``, the UnlearnJob keys as ``hp_*`` / ``hp_json``,
``before_*`` (the original model), ``after_*`` (the trial's model), ``retrain_*`` (the retrained model, with
``--retrained``), all under the validation protocol, ``gap_mia_*`` / ``leakage_vs_*``, ``wall_time_s`` (the
trial as Tune timed it), ``unlearn_time_s``, ``eval_time_s``, ``checkpoint_uri`` (with ``--keep-models``),
``parent_uri`` / ``retrained_uri``. The search's own fields are in ``extra_json`` and :func:`load_trials` turns
them into columns: ``objective``, ``objective_name``, ``feasible``, ``accuracy_drop``, ``accuracy_metric``,
``cap``, ``constraint``, ``epochs_run``, ``stopped_early``, ``trial_time_s``, ``sampled`` (the raw Tune config),
``protocol``, ``space``, ``error``.

Rows are written once per trial: a resumed search skips trials whose row the store already holds.

Example:
    >>> df = load_trials("runs/results", experiment="tune-memgp-1a2b3c4d")
    >>> df.loc[df.feasible].sort_values("objective").head()
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from orchestrator.results.store import append, load, make_row
from orchestrator.tune.per_method import per_method_best
from trainables.tuning.objective import select_best

EXTRA_COLUMNS = ("objective", "objective_name", "feasible", "accuracy_drop", "accuracy_metric", "cap", "constraint",
                 "epochs_run", "stopped_early", "trial_time_s", "sampled", "protocol", "space", "error")
PROTOCOL = "validation: attack fit on retain vs half of nonmember_ref, scored on forget vs the other half"


@dataclass
class TrialRecord:
    trial_id: str
    tune_status: str                    # TERMINATED, ERROR, PENDING, RUNNING, PAUSED
    config: dict[str, Any]
    result: dict[str, Any]              # the last report
    error: str | None = None

    @property
    def finished(self) -> bool:
        """Errored, or ended with a reported result. A trial that an interruption ended before it reported
        anything counts as unfinished (a resumed search runs it)."""
        return self.tune_status == "ERROR" or (self.tune_status == "TERMINATED" and "status" in self.result)

    @property
    def status(self) -> str:
        if self.tune_status == "ERROR" or not self.result.get("status"):
            return "error"
        return str(self.result["status"])

    def selection_view(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "status": self.status, "objective": self.result.get("objective"),
                "feasible": self.result.get("feasible") is True and self.status == "ok"}


@dataclass
class SearchOutcome:
    name: str
    trials: list[TrialRecord]
    best: TrialRecord | None
    best_config: dict[str, Any] | None
    rows_written: int
    best_config_path: Path | None
    summary_path: Path
    samples: int
    experiment_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    per_method: list[dict[str, Any]] = field(default_factory=list)  # each method's best feasible trial
    accuracy_metric: str = "accuracy"   # what the cap applies to (knn_acc, test_acc, ...)

    @property
    def finished(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.finished]

    @property
    def interrupted(self) -> bool:
        return len(self.finished) < self.samples

    @property
    def feasible(self) -> list[TrialRecord]:
        return [t for t in self.finished if t.selection_view()["feasible"]]


def collect_trials(grid) -> list[TrialRecord]:
    """Every trial of a ``ResultGrid`` (finished or not), with its Tune status."""
    records = []
    for trial, result in zip(grid._experiment_analysis.trials, grid, strict=True):  # Trial objects carry the status
        metrics = dict(result.metrics or {})
        config = {k: v for k, v in (result.config or {}).items()}
        records.append(TrialRecord(trial.trial_id, str(trial.status), config, metrics,
                                   None if result.error is None else f"{type(result.error).__name__}: "
                                                                     f"{str(result.error)[-500:]}"))
    return records


def trial_row(record: TrialRecord, *, base, space, state: dict[str, Any]) -> dict[str, Any]:
    result = record.result
    after = {k: float(v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
             and k not in _NOT_METRICS}
    values = space.best_config(record.config) if record.config else {}
    planned = int(values.get("epochs", space.fixed.get("epochs", 0)) or 0)
    epochs_run = int(result.get("epochs_run") or 0)
    gaps: dict[str, Any] = {}
    if "mia_accuracy" in after:
        gaps["leakage_vs_chance"] = abs(after["mia_accuracy"] - 0.5)
        if base.reference:
            gaps["gap_mia_accuracy"] = after["mia_accuracy"] - base.reference["mia_accuracy"]
            gaps["gap_mia_auc"] = after["mia_auc"] - base.reference["mia_auc"]
            gaps["leakage_vs_retrain"] = abs(gaps["gap_mia_accuracy"])
    view = record.selection_view()
    extra = {"objective": view["objective"], "objective_name": state["objective"], "feasible": view["feasible"],
             "accuracy_drop": result.get("accuracy_drop"), "accuracy_metric": state["accuracy"], "cap": state["cap"],
             "constraint": result.get("constraint"), "epochs_run": epochs_run,
             "stopped_early": bool(record.status == "ok" and planned and epochs_run < planned),
             "trial_time_s": result.get("trial_time_s"), "sampled": record.config, "protocol": PROTOCOL,
             "space": state["space"], "error": record.error or result.get("error"),
             "timestamp": result.get("timestamp"), "pid": result.get("pid")}
    meta = base.meta
    return make_row(
        kind="tune-trial", status=record.status, dataset=meta.get("dataset"), model=meta.get("method"),
        backbone=meta.get("backbone"), method=space.method_of(record.config) if record.config else space.method,
        attack=base.attack.attacks[0],
        threat_model=base.attack.threat_model, num_members=int(len(base.plan.forget_ids) + len(base.plan.retain_ids)),
        forget_size=int(len(base.plan.forget_ids)), n_score=int(after["n_score"]) if "n_score" in after else None,
        trial_id=record.trial_id, experiment=state["name"], checkpoint_uri=result.get("checkpoint_path"),
        parent_uri=base.checkpoint_path, retrained_uri=base.retrained_path,
        wall_time_s=result.get("time_total_s"), unlearn_time_s=result.get("unlearn_time_s"),
        eval_time_s=result.get("eval_time_s"), hyperparameters=values,
        metrics={"before": base.original, "after": after, **({"retrain": base.reference} if base.reference else {})},
        extra=extra, **gaps,
    )


# Tune's bookkeeping and the search's own fields: not model metrics.
_NOT_METRICS = {"objective", "accuracy_drop", "constraint", "epochs_run", "unlearn_time_s", "eval_time_s",
                "trial_time_s", "timestamp", "time_this_iter_s", "time_total_s", "training_iteration", "pid",
                "time_since_restore", "iterations_since_restore", "checkpoint_dir_name", "done"}


def finish_search(trials: list[TrialRecord], *, base, space, settings, state: dict[str, Any], log) -> SearchOutcome:
    """Write the rows of finished trials not yet in the store, then best.yaml (a complete search with a feasible
    trial) and summary.json."""
    out = Path(settings.out)
    done = [t for t in trials if t.finished]
    stored = load(settings.results, kinds=["tune-trial"])
    already = set(stored.loc[stored["experiment"] == state["name"], "trial_id"].dropna().astype(str))
    rows = [trial_row(t, base=base, space=space, state=state) for t in done if t.trial_id not in already]
    if rows:
        append(settings.results, rows)
    best_view = select_best(t.selection_view() for t in done)
    best = next((t for t in done if best_view and t.trial_id == best_view["trial_id"]), None)
    outcome = SearchOutcome(state["name"], trials, best, None, len(rows), None, out / "summary.json",
                            settings.samples, f"{state['storage'].rstrip('/')}/{state['name']}")
    outcome.accuracy_metric = state["accuracy"]
    outcome.per_method = per_method_best(done, space, config_of=lambda t: best_config(t, space))
    if best is not None and not outcome.interrupted:
        outcome.best_config = best_config(best, space)
        outcome.best_config_path = write_best_config(out / "best.yaml", outcome.best_config, best, state)
    _write_summary(outcome, state, settings)
    log(f"{len(rows)} trial row(s) written to {settings.results} (experiment {state['name']})")
    return outcome


def best_config(record: TrialRecord, space) -> dict[str, Any]:
    """The trial's UnlearnJob keys; a trial that ASHA stopped early is reported with the epochs it ran."""
    config = space.best_config(record.config)
    epochs_run = int(record.result.get("epochs_run") or 0)
    if epochs_run and epochs_run < int(config.get("epochs", epochs_run)):
        config["epochs"] = epochs_run
    return config


def write_best_config(path: Path, config: dict[str, Any], best: TrialRecord, state: dict[str, Any]) -> Path:
    """``best.yaml``, validated as an UnlearnJob first, written atomically."""
    from orchestrator.config import validate
    from trainables.unlearning.config import UnlearnJob

    validate(UnlearnJob, config)
    r = best.result
    header = (f"# best feasible trial {best.trial_id} of search {state['name']} ({state['space']})\n"
              f"# objective {state['objective']} = {r['objective']:.4f}; attack accuracy {r.get('mia_accuracy', 0):.4f};"
              f" {state['accuracy']} drop {r.get('accuracy_drop', 0):.4f} <= cap {state['cap']}\n"
              f"# scored with the validation protocol (nonmember_ref halves); audit with `unlearn evaluate`\n"
              f"# use: unlearn forget --config {path.name} ... | unlearn schedule run --config {path.name}\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, path)
    return path


def _write_summary(outcome: SearchOutcome, state: dict[str, Any], settings) -> None:
    best = outcome.best
    summary = {
        "search": outcome.name, "experiment_path": outcome.experiment_path, "results": settings.results,
        "samples": outcome.samples, "finished": len(outcome.finished), "feasible": len(outcome.feasible),
        "interrupted": outcome.interrupted, "objective": state["objective"], "cap": state["cap"],
        "accuracy_metric": state["accuracy"], "protocol": PROTOCOL,
        "best": None if best is None else {
            "trial_id": best.trial_id, "objective": best.result.get("objective"),
            "accuracy_drop": best.result.get("accuracy_drop"), "mia_accuracy": best.result.get("mia_accuracy"),
            "config": outcome.best_config},
        "best_config": None if outcome.best_config_path is None else str(outcome.best_config_path),
        "per_method": outcome.per_method,
    }
    tmp = outcome.summary_path.with_name(".summary.json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=_json_default))
    os.replace(tmp, outcome.summary_path)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def load_trials(path: str, *, experiment: str | None = None) -> pd.DataFrame:
    """The ``tune-trial`` rows of the results store (optionally one search), with the search's fields from
    ``extra_json`` as columns (:data:`EXTRA_COLUMNS`)."""
    df = load(path, kinds=["tune-trial"])
    if experiment is not None:
        df = df.loc[df["experiment"] == experiment]
    extra = [json.loads(text or "{}") for text in df["extra_json"]]
    df = df.reset_index(drop=True)
    for column in EXTRA_COLUMNS:
        df[column] = [e.get(column) for e in extra]
    df["feasible"] = df["feasible"].fillna(False).astype(bool)
    df["objective"] = pd.to_numeric(df["objective"], errors="coerce")
    return df
