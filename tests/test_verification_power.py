"""The verdict-rate arithmetic of benchmarks/verification_power.py, on synthetic per-sample scores."""

from __future__ import annotations

import numpy as np

from benchmarks.power_rates import Scores, judge_targets, sub_batches, verdict_rates


def test_parent_is_never_verified_and_a_truly_forgotten_model_is_at_the_test_level():
    # Parent: members score +1.5 sd above non-members (AUC ~0.86): a one-sided rank test at alpha 0.05 rejects a
    # batch of 25 nearly always. Retrained: forget scores drawn like non-members, so it rejects ~alpha of batches.
    rng = np.random.default_rng(0)
    non = rng.normal(0, 1, 400)
    parent = Scores(rng.normal(1.5, 1, 200), non, 0.0)
    retrained = Scores(rng.normal(0, 1, 200), rng.normal(0, 1, 400), 0.0)
    batches = sub_batches(200, [10, 25, 400], 40, seed=0)
    assert set(batches) == {10, 25}  # a size above the forget set is skipped
    rates = verdict_rates({"parent": parent, "retrained": retrained}, parent, batches, alpha=0.05, seed=0)
    assert all(r["verified"] == 0 for r in rates["parent"].values())
    assert rates["parent"][25]["failed"] >= 0.95 and rates["parent"][25]["parent_rejects"] >= 0.95
    assert rates["retrained"][25]["verified"] >= 0.85  # 1 - alpha, minus sampling noise of 40 batches
    assert rates["parent"][25]["old_pass"] <= 0.1  # accuracy ~0.77 is far from 0.5
    judged = judge_targets(rates)
    assert judged["parent_verified_le_5pct"] and 25 in judged["powered_n"]
    assert judged["decidable_n"] in (10, 25)


def test_no_signal_when_the_parent_shows_no_membership():
    rng = np.random.default_rng(1)
    flat = Scores(rng.normal(0, 1, 100), rng.normal(0, 1, 300), 0.0)
    rates = verdict_rates({"parent": flat, "retrained": flat}, flat, sub_batches(100, [50], 30, 0), alpha=0.05,
                          seed=0)
    assert rates["retrained"][50]["no-signal"] >= 0.85  # nothing was detectable before: never "verified"
    assert judge_targets(rates)["decidable_n"] is None
