"""Attack metrics with bootstrap 95% intervals, and the scores that compare an unlearned model with retraining.

Point estimates come from ``sklearn.metrics``. Intervals: a stratified bootstrap (members and non-members
resampled separately, so every replicate stays balanced), percentile interval; the replicates are computed in
vectorised numpy (rank-based AUC, exact TPR at a fixed FPR), tested against sklearn on fixed inputs.

TPR at FPR x (Carlini et al., "Membership Inference Attacks From First Principles", 2022) is the largest true
positive rate of any threshold whose false positive rate is <= x. With n non-members the smallest non-zero FPR is
1/n: at 0.1% FPR and n < 1000 this is the TPR at *zero* false positives, a very noisy number.

Example:
    >>> m = attack_metrics(y, score, pred)            # {"accuracy": ..., "auc": ..., "tpr_at_1fpr": ...}
    >>> ci = bootstrap_metrics(y, score, pred)         # {"auc": (value, lo, hi), ...}
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score, roc_curve

METRICS = ("accuracy", "precision", "recall", "auc", "tpr_at_1fpr", "tpr_at_01fpr")
FPR_POINTS = {"tpr_at_1fpr": 0.01, "tpr_at_01fpr": 0.001}


def tpr_at_fpr(y_true, score, fpr: float) -> float:
    """Largest TPR over thresholds with FPR <= ``fpr`` (sklearn's ROC curve)."""
    fprs, tprs, _ = roc_curve(np.asarray(y_true), np.asarray(score, dtype=np.float64))
    return float(tprs[fprs <= fpr + 1e-12].max())


def attack_metrics(y_true, score, pred) -> dict[str, float]:
    """Accuracy, precision, recall (of ``pred``), ROC AUC and TPR at 1% / 0.1% FPR (of ``score``)."""
    y_true, pred = np.asarray(y_true).astype(int), np.asarray(pred).astype(int)
    out = {
        "accuracy": float(accuracy_score(y_true, pred)),
        "precision": float(precision_score(y_true, pred, zero_division=0)),
        "recall": float(recall_score(y_true, pred, zero_division=0)),
        "auc": float(roc_auc_score(y_true, score)),
    }
    for name, fpr in FPR_POINTS.items():
        out[name] = tpr_at_fpr(y_true, score, fpr)
    return out


def _replicate_metrics(member_score, nonmember_score, member_pred, nonmember_pred) -> dict[str, np.ndarray]:
    """Metrics of R bootstrap replicates at once: each argument is (R, n_members) or (R, n_nonmembers)."""
    n1, n0 = member_score.shape[1], nonmember_score.shape[1]
    tp = member_pred.sum(1)
    fp = nonmember_pred.sum(1)
    tn = n0 - fp
    ranks = rankdata(np.concatenate([member_score, nonmember_score], 1), axis=1)  # average ranks for ties
    out = {
        "accuracy": (tp + tn) / (n1 + n0),
        "precision": np.divide(tp, tp + fp, out=np.zeros(len(tp)), where=(tp + fp) > 0),
        "recall": tp / n1,
        "auc": (ranks[:, :n1].sum(1) - n1 * (n1 + 1) / 2) / (n1 * n0),
    }
    desc = -np.sort(-nonmember_score, axis=1)
    for name, fpr in FPR_POINTS.items():
        k = int(np.floor(fpr * n0 + 1e-9))  # at most k false positives allowed
        if k >= n0:
            out[name] = np.ones(len(tp))
        else:  # strictly above the (k+1)-th largest non-member score
            out[name] = (member_score > desc[:, k:k + 1]).mean(1)
    return out


def bootstrap_metrics(y_true, score, pred, *, n_boot: int = 1000, seed: int = 0,
                      alpha: float = 0.05) -> dict[str, tuple[float, float, float]]:
    """``{metric: (value, lo, hi)}``: sklearn point estimate and a stratified percentile bootstrap interval."""
    y_true = np.asarray(y_true).astype(int)
    score, pred = np.asarray(score, dtype=np.float64), np.asarray(pred).astype(int)
    point = attack_metrics(y_true, score, pred)
    if n_boot <= 0:
        return {k: (v, float("nan"), float("nan")) for k, v in point.items()}
    rng = np.random.default_rng(seed)
    mem, non = np.flatnonzero(y_true == 1), np.flatnonzero(y_true == 0)
    out: dict[str, list[np.ndarray]] = {k: [] for k in METRICS}
    for start in range(0, n_boot, 250):  # chunks keep memory small
        r = min(250, n_boot - start)
        im = mem[rng.integers(0, len(mem), (r, len(mem)))]
        inn = non[rng.integers(0, len(non), (r, len(non)))]
        for k, v in _replicate_metrics(score[im], score[inn], pred[im], pred[inn]).items():
            out[k].append(v)
    result = {}
    for k, v in point.items():
        reps = np.concatenate(out[k])
        lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
        result[k] = (v, float(lo), float(hi))
    return result


def mia_efficacy(forget_pred) -> float:
    """SalUn-style MIA-efficacy (Fan et al., ICLR 2024): share of forget samples the attack calls non-members."""
    forget_pred = np.asarray(forget_pred).astype(int)
    return float((forget_pred == 0).mean()) if len(forget_pred) else float("nan")


def leakage(accuracy: float, retrain_accuracy: float | None = None) -> dict[str, float]:
    """How far an attack accuracy is from "no information". Far *below* 0.5 leaks as much as far above.

    ``leakage_vs_chance = |acc - 0.5|``; with a retrained reference, ``gap_to_retrain = acc - acc_retrain`` and
    ``leakage_vs_retrain = |gap|`` (the retrained model is the gold standard, and it need not sit at 0.5).
    """
    out = {"leakage_vs_chance": abs(accuracy - 0.5)}
    if retrain_accuracy is not None and np.isfinite(retrain_accuracy):
        out["gap_to_retrain"] = accuracy - retrain_accuracy
        out["leakage_vs_retrain"] = abs(accuracy - retrain_accuracy)
    return out


def verdict(value: float, lo: float, hi: float, *, chance: float = 0.5) -> str:
    """Reading of an accuracy/AUC interval: above chance, below chance (also leakage), or an interval that
    includes chance: absence of evidence at this sample size, not evidence of absence (the gate's rank test on
    per-sample scores has more power)."""
    if np.isfinite(lo) and lo > chance:
        return "members distinguishable (above chance)"
    if np.isfinite(hi) and hi < chance:
        return "leaks: below chance (forget set unlike non-members)"
    return "interval includes chance (not, on its own, evidence of forgetting)"
