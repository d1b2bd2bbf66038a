"""One search trial without Ray: scored with the validation protocol (never a nonmember_eval image), per-epoch
results for ASHA, and a diverging configuration recorded as an infeasible finding."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.tune.space import load_space
from tests.test_unlearning import spy_on
from tests.tune_helpers import tiny_checkpoint
from trainables.checkpoint import load_checkpoint
from trainables.config import PretrainJob
from trainables.jobs.common import load_data
from trainables.loops.context import LoopContext
from trainables.tuning.base import prepare_search_base
from trainables.tuning.objective import WORST, Scoring
from trainables.tuning.trial import run_trial

CONFIG = {"a": 1.0, "a_zero": False, "b": 3.0, "form": "squared", "train_term_source": "forget", "lr": 3e-3}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("tune_trial") / "base")


def _context() -> LoopContext:
    return LoopContext(progress=False, log=lambda m: None)


def test_a_trial_never_reads_an_evaluation_nonmember(checkpoint):
    ck = load_checkpoint(checkpoint)
    source, _ = load_data(PretrainJob.model_validate(ck.meta["config"]).data, ck.splits)
    spied, spy = spy_on(source)
    space = load_space("memgp", ["epochs=2", "runtime.progress=false"])
    base = prepare_search_base(checkpoint, space.job(CONFIG), scoring=Scoring(), attack={"bootstrap": 0,
                                                                                      "n_views": 4},
                               source=spied)
    result = run_trial(base, space.job(CONFIG), _context())
    held_out = set(int(i) for i in ck.splits["nonmember_eval"])
    assert spy.touched, "the spy saw no reads at all"
    assert not spy.touched & held_out, "the search read nonmember_eval images"
    assert set(int(i) for i in ck.splits["nonmember_ref"]) & spy.touched  # what it scores on instead
    assert result["status"] == "ok" and result["epochs_run"] == 2
    assert result["objective"] == pytest.approx(abs(result["mia_accuracy"] - 0.5))
    assert result["accuracy_drop"] == pytest.approx(base.original["knn_acc"] - result["knn_acc"])
    assert result["feasible"] == (result["accuracy_drop"] <= 0.10)
    assert result["n_score"] == min(len(ck.splits["forget"]), len(ck.splits["nonmember_ref"]) - 50)
    assert 0 < result["unlearn_time_s"] < result["trial_time_s"] and result["eval_time_s"] > 0


def test_per_epoch_results_and_a_diverged_trial(checkpoint):
    space = load_space("memgp", ["epochs=3", "runtime.progress=false"])
    base = prepare_search_base(checkpoint, space.job(CONFIG), scoring=Scoring("mia_accuracy", 0.2),
                               attack={"bootstrap": 0, "n_views": 4, "attacks": ["encodermi_vector"]})
    seen = []
    final = run_trial(base, space.job(CONFIG), _context(), per_epoch=seen.append)
    assert [r["epochs_run"] for r in seen] == [1, 2] and final["epochs_run"] == 3
    assert all(np.isfinite(r["objective"]) and r["objective"] == r["mia_accuracy"] for r in seen + [final])
    assert final["unlearn_time_s"] > 0 and final["eval_time_s"] > seen[-1]["eval_time_s"] > seen[0]["eval_time_s"]

    exploding = load_space("memgp", ["epochs=3", "explode_limit=1e-9", "runtime.progress=false"])
    diverged = run_trial(base, exploding.job(CONFIG), _context(), per_epoch=seen.append)
    assert diverged["status"] == "diverged" and "exploded" in diverged["error"]
    assert diverged["objective"] == WORST and diverged["feasible"] is False and diverged["epochs_run"] == 0
