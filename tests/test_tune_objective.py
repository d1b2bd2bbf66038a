"""The search's objective, its accuracy-drop constraint, best-trial selection, the validation view and the
resource plan: pure functions, no Ray."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from orchestrator.tune.search import plan_resources
from trainables.data.splits import Splits
from trainables.errors import UserError
from trainables.tuning.objective import WORST, Scoring, resolve_accuracy, select_best
from trainables.tuning.validation import validation_splits

ORIGINAL = {"knn_acc": 0.80, "mia_accuracy": 0.70, "mia_auc": 0.75}


def test_objectives_and_feasibility():
    metrics = {"mia_accuracy": 0.42, "mia_auc": 0.40, "knn_acc": 0.72}
    score = Scoring("mia_distance", 0.10).score(metrics, original=ORIGINAL)
    assert score["objective"] == pytest.approx(0.08)  # below chance leaks too
    assert score["accuracy_drop"] == pytest.approx(0.08) and score["constraint"] == pytest.approx(-0.02)
    assert score["feasible"] is True
    assert Scoring("mia_accuracy", 0.10).score(metrics, original=ORIGINAL)["objective"] == pytest.approx(0.42)
    tight = Scoring("mia_distance", 0.05).score(metrics, original=ORIGINAL)
    assert tight["feasible"] is False and tight["constraint"] == pytest.approx(0.03)
    retrained = {"mia_accuracy": 0.46, "mia_auc": 0.44, "knn_acc": 0.76}
    gap = Scoring("gap_to_retrain", 0.10).score(metrics, original=ORIGINAL, reference=retrained)["objective"]
    assert gap == pytest.approx((0.04 + 0.04 + 0.04) / 3)
    # the larger of the two target distances: |0.42 - 0.5| = 0.08 beats |0.42 - 0.46| = 0.04, and the reverse
    target = Scoring("target_distance", 0.10)
    assert target.score(metrics, original=ORIGINAL, reference=retrained)["objective"] == pytest.approx(0.08)
    assert target.score({**metrics, "mia_accuracy": 0.52}, original=ORIGINAL,
                        reference={**retrained, "mia_accuracy": 0.44})["objective"] == pytest.approx(0.08)
    assert target.score({**metrics, "mia_accuracy": 0.47}, original=ORIGINAL,
                        reference=retrained)["objective"] == pytest.approx(0.03)
    for needs in ("gap_to_retrain", "target_distance"):
        with pytest.raises(UserError, match="--retrained"):
            Scoring(needs, 0.10).score(metrics, original=ORIGINAL)
    assert Scoring().diverged() == {"objective": WORST, "accuracy_drop": pytest.approx(float("nan"), nan_ok=True),
                                    "constraint": WORST, "feasible": False}


@pytest.mark.parametrize("cap", [0, 1, -0.1, 1.5, 10])
def test_cap_outside_unit_interval_is_refused(cap):
    with pytest.raises(UserError, match=r"--cap must be in \(0, 1\)"):
        Scoring("mia_distance", cap)


def test_unknown_objective_and_accuracy_choices():
    with pytest.raises(UserError, match="unknown objective"):
        Scoring("auc", 0.1)
    assert resolve_accuracy("auto", True) == "knn_acc" and resolve_accuracy("auto", False) == "test_acc"
    assert resolve_accuracy("linear", True) == "linear_acc"
    with pytest.raises(UserError, match="needs a classifier"):
        resolve_accuracy("test", True)


def test_a_cap_violating_trial_is_never_chosen_even_with_the_best_objective():
    rows = [
        {"trial_id": "violates", "objective": 0.001, "feasible": False, "status": "ok"},  # best objective
        {"trial_id": "diverged", "objective": 0.0, "feasible": False, "status": "diverged"},
        {"trial_id": "nan", "objective": math.nan, "feasible": True, "status": "ok"},
        {"trial_id": "good", "objective": 0.05, "feasible": True, "status": "ok"},
        {"trial_id": "better", "objective": 0.02, "feasible": True, "status": "ok"},
        {"trial_id": "errored", "objective": None, "feasible": True, "status": "error"},
    ]
    assert select_best(rows)["trial_id"] == "better"
    assert select_best([r for r in rows if r["trial_id"] in ("violates", "diverged", "nan")]) is None
    # the same from a results-store frame (Arrow dtypes, missing values as NA)
    df = pd.DataFrame(rows).astype({"objective": "float64[pyarrow]", "feasible": "bool[pyarrow]"})
    df.loc[5, "feasible"] = pd.NA
    assert select_best(df.to_dict("records"))["trial_id"] == "better"


def _splits(n_ref: int) -> Splits:
    ids = {"retain": np.arange(0, 40), "forget": np.arange(40, 50), "nonmember_ref": np.arange(100, 100 + n_ref),
           "nonmember_eval": np.arange(200, 240), "shadow_member": np.array([], np.int64),
           "shadow_nonmember": np.array([], np.int64)}
    return Splits(ids, {int(i): 0 for v in ids.values() for i in v})


def test_validation_view_never_holds_nonmember_eval():
    splits = _splits(30)
    view = validation_splits(splits, forget_ids=np.arange(45, 50), retain_ids=np.arange(0, 45))
    assert not np.intersect1d(view["nonmember_eval"], splits["nonmember_eval"]).size
    assert np.array_equal(view["nonmember_eval"], splits["nonmember_ref"])
    assert np.array_equal(view["forget"], np.arange(45, 50)) and len(view["retain"]) == 45
    assert all(not np.intersect1d(view[s], splits["nonmember_eval"]).size for s in view.ids)
    with pytest.raises(UserError, match="nonmember_ref"):
        validation_splits(_splits(5), forget_ids=np.arange(40, 50), retain_ids=np.arange(0, 40))


def test_resource_plan_fits_every_running_trial_on_a_small_cluster():
    two = {"CPU": 2.0}
    assert plan_resources(two, workers=1, cpus=1, gpu=False, samples=10).max_concurrent == 2
    assert plan_resources(two, workers=1, cpus=1, gpu=False, samples=1).max_concurrent == 1
    assert plan_resources(two, workers=1, cpus=0.5, gpu=False, samples=10, limit=3).max_concurrent == 3
    train = plan_resources(two, workers=2, cpus=0.5, gpu=False, samples=10)  # driver 0.5 + 2 x 0.5
    assert (train.max_concurrent, train.per_trial_cpu, train.trial) == (1, 1.5, {"cpu": 0.5})
    assert plan_resources({"CPU": 16.0}, workers=2, cpus=1, gpu=False, samples=10).max_concurrent == 6
    with pytest.raises(UserError, match="one trial needs 4.5 CPUs"):
        plan_resources(two, workers=4, cpus=1, gpu=False, samples=10)
    with pytest.raises(UserError, match="GPUs"):
        plan_resources(two, workers=1, cpus=1, gpu=True, samples=10)
    gpus = plan_resources({"CPU": 16.0, "GPU": 2.0}, workers=1, cpus=2, gpu=True, samples=10)
    assert gpus.max_concurrent == 2 and gpus.trial == {"cpu": 2, "gpu": 1.0}
    assert plan_resources(two, workers=4, cpus=1, gpu=False, samples=10, joined=True).max_concurrent == 1
