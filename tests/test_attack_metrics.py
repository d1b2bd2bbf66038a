"""Attack metrics, intervals and estimators on synthetic features (no models)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from trainables.attacks.estimators import EncoderMI, FeatureAttack, best_threshold
from trainables.audit.metrics import (
    _replicate_metrics,
    attack_metrics,
    bootstrap_metrics,
    leakage,
    mia_efficacy,
    tpr_at_fpr,
    verdict,
)


def _fit_score(attack, members_fit, non_fit, members_score, non_score):
    X = np.concatenate([members_fit, non_fit])
    y = np.r_[np.ones(len(members_fit)), np.zeros(len(non_fit))]
    attack.fit(X, y)
    Xs = np.concatenate([members_score, non_score])
    ys = np.r_[np.ones(len(members_score)), np.zeros(len(non_score))]
    score = attack.predict_proba(Xs)[:, 1]
    return bootstrap_metrics(ys, score, attack.predict(Xs), n_boot=500, seed=1)


@pytest.mark.parametrize("attack", [EncoderMI("vector"), EncoderMI("threshold"), EncoderMI("vector", "mlp"),
                                    FeatureAttack()])
def test_same_distribution_gives_auc_interval_around_half(attack):
    rng = np.random.default_rng(0)
    sample = lambda n: np.sort(rng.normal(0.8, 0.05, (n, 45)), axis=1)  # noqa: E731
    m = _fit_score(attack, sample(300), sample(300), sample(300), sample(300))
    auc, lo, hi = m["auc"]
    assert lo < 0.5 < hi, m["auc"]
    assert abs(auc - 0.5) < 0.07
    acc, lo, hi = m["accuracy"]
    assert lo < 0.5 < hi


@pytest.mark.parametrize("attack", [EncoderMI("vector"), EncoderMI("threshold"), FeatureAttack("mlp")])
def test_well_separated_gives_auc_above_095(attack):
    rng = np.random.default_rng(1)
    members = lambda n: np.sort(rng.normal(0.95, 0.02, (n, 45)), axis=1)  # noqa: E731
    nonmembers = lambda n: np.sort(rng.normal(0.80, 0.05, (n, 45)), axis=1)  # noqa: E731
    m = _fit_score(attack, members(200), nonmembers(200), members(200), nonmembers(200))
    assert m["auc"][0] > 0.95
    assert m["auc"][1] > 0.9  # the interval is tight too
    assert m["accuracy"][0] > 0.9


def test_metrics_agree_with_sklearn_on_fixed_inputs():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(157, int), np.zeros(143, int)]
    score = np.round(rng.normal(y * 0.7, 1.0), 1)  # rounded: many ties
    pred = (score > 0.3).astype(int)
    m = attack_metrics(y, score, pred)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["auc"] == pytest.approx(roc_auc_score(y, score))
    # the vectorised bootstrap replicate with the identity resample gives the same numbers
    rep = _replicate_metrics(score[y == 1][None], score[y == 0][None], pred[y == 1][None], pred[y == 0][None])
    for key in m:
        assert rep[key][0] == pytest.approx(m[key]), key


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_tpr_at_fpr_matches_sklearn_roc(seed):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(300, int), np.zeros(1200, int)]
    score = np.round(rng.normal(y * 1.0, 1.0), 2)
    rep = _replicate_metrics(score[y == 1][None], score[y == 0][None], y[y == 1][None], 0 * y[y == 0][None])
    for key, fpr in (("tpr_at_1fpr", 0.01), ("tpr_at_01fpr", 0.001)):
        assert rep[key][0] == pytest.approx(tpr_at_fpr(y, score, fpr))


def test_tpr_at_fpr_on_a_hand_made_roc():
    nonmembers = np.arange(1000) / 1000  # 0.000 ... 0.999
    members = np.array([0.9995, 0.9985, 0.995, 0.5])
    y = np.r_[np.ones(4, int), np.zeros(1000, int)]
    score = np.r_[members, nonmembers]
    # 0.1% FPR = 1 false positive allowed: threshold 0.9985 admits 0.999 (one FP) and two members.
    assert tpr_at_fpr(y, score, 0.001) == pytest.approx(0.5)
    # 1% FPR = 10 false positives (0.990..0.999): three members clear it.
    assert tpr_at_fpr(y, score, 0.01) == pytest.approx(0.75)
    # 0% FPR: only the member above every non-member.
    assert tpr_at_fpr(y, score, 0.0) == pytest.approx(0.25)
    m = bootstrap_metrics(y, score, (score > 0.99).astype(int), n_boot=0)
    assert m["tpr_at_01fpr"][0] == pytest.approx(0.5) and m["tpr_at_1fpr"][0] == pytest.approx(0.75)
    assert np.isnan(m["auc"][1])  # no interval without resamples


def test_bootstrap_interval_contains_value_and_is_reproducible():
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(100, int), np.zeros(100, int)]
    score = rng.normal(y * 0.5, 1.0)
    a = bootstrap_metrics(y, score, (score > 0.25).astype(int), n_boot=300, seed=7)
    b = bootstrap_metrics(y, score, (score > 0.25).astype(int), n_boot=300, seed=7)
    assert a == b
    for value, lo, hi in a.values():
        assert lo <= value + 1e-9 and value <= hi + 1e-9
    assert 0.02 < a["auc"][2] - a["auc"][1] < 0.3  # a real interval, not a point


def test_threshold_attack_learns_the_direction():
    # an over-unlearned model: members now have *lower* similarity than non-members
    score = np.r_[np.full(50, 0.2), np.full(50, 0.8)]
    y = np.r_[np.ones(50, int), np.zeros(50, int)]
    cut, direction = best_threshold(score, y)
    assert direction == -1 and 0.2 < cut < 0.8
    attack = EncoderMI("threshold").fit(score[:, None], y)
    assert (attack.predict(score[:, None]) == y).all()


def test_attacks_reject_single_class_and_unknown_variants():
    with pytest.raises(ValueError, match="both classes"):
        EncoderMI().fit(np.zeros((4, 3)), np.ones(4))
    with pytest.raises(ValueError, match="variant"):
        EncoderMI("bogus").fit(np.zeros((4, 3)), np.r_[1, 1, 0, 0])


def test_efficacy_leakage_and_verdict():
    assert mia_efficacy([1, 0, 0, 0]) == pytest.approx(0.75)
    lk = leakage(0.30, 0.45)
    assert lk["leakage_vs_chance"] == pytest.approx(0.2)  # far below chance leaks too
    assert lk["gap_to_retrain"] == pytest.approx(-0.15) and lk["leakage_vs_retrain"] == pytest.approx(0.15)
    assert "below chance" in verdict(0.3, 0.25, 0.35)
    assert "above chance" in verdict(0.7, 0.65, 0.75)
    assert "includes chance" in verdict(0.52, 0.47, 0.57)
