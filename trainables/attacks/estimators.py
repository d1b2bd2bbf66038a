"""Membership-inference attacks as scikit-learn estimators: ``fit`` on reference data, ``predict_proba`` on targets.

Label 1 = member. Inputs are per-sample signal matrices (see :mod:`trainables.attacks.signals`):

- :class:`EncoderMI` (Liu et al., "EncoderMI: Membership Inference against Pre-trained Encoders in Contrastive
  Learning", CCS 2021). ``variant="vector"``: the sorted pairwise view-similarity vector (N, n(n-1)/2) into a
  classifier (logistic regression or a small MLP). ``variant="threshold"``: the mean similarity against one
  threshold chosen on the reference data (direction included: an over-unlearned model may *lower* member
  similarity, and an adaptive attacker learns that too).
- :class:`FeatureAttack`: any feature matrix into a classifier, e.g. the confidence features (top-1/2/3, entropy,
  modified entropy, loss; Song & Mittal 2021) or those joined with the similarity vector.

Example:
    >>> attack = EncoderMI(variant="vector").fit(ref_cos, ref_is_member)
    >>> p_member = attack.predict_proba(target_cos)[:, 1]
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def make_classifier(name: str = "logreg", random_state: int = 0):
    """A standardised logistic regression, or a small MLP (one hidden layer of 64, early stopping)."""
    if name == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    if name == "mlp":
        return make_pipeline(StandardScaler(), MLPClassifier((64,), alpha=1e-3, max_iter=500, early_stopping=True,
                                                             n_iter_no_change=20, random_state=random_state))
    raise ValueError(f"unknown attack classifier {name!r}; choose logreg or mlp")


def _check_fit(X, y) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y).astype(int)
    if X.ndim == 1:
        X = X[:, None]
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if set(np.unique(y)) != {0, 1}:
        raise ValueError("an attack is fitted on members (1) and non-members (0): both classes are needed")
    return X, y


class FeatureAttack(ClassifierMixin, BaseEstimator):
    """A classifier on per-sample membership features, shape (N, F)."""

    def __init__(self, classifier: str = "logreg", random_state: int = 0):
        self.classifier = classifier
        self.random_state = random_state

    def _features(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return X[:, None] if X.ndim == 1 else X

    def fit(self, X, y):
        X, y = _check_fit(self._features(X), y)
        self.model_ = make_classifier(self.classifier, self.random_state).fit(X, y)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.model_.predict_proba(self._features(X))

    def decision_function(self, X) -> np.ndarray:
        """The membership score (higher = more likely a member); monotone in ``predict_proba``."""
        return self.predict_proba(X)[:, 1]

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class EncoderMI(FeatureAttack):
    """EncoderMI on sorted view-similarity vectors (N, P); ``variant`` is ``vector`` or ``threshold``."""

    def __init__(self, variant: str = "vector", classifier: str = "logreg", random_state: int = 0):
        super().__init__(classifier, random_state)
        self.variant = variant

    def fit(self, X, y):
        if self.variant == "vector":
            return super().fit(X, y)
        if self.variant != "threshold":
            raise ValueError(f"unknown EncoderMI variant {self.variant!r}; choose vector or threshold")
        s, y = _check_fit(self._mean(X), y)
        s = s[:, 0]
        self.threshold_, self.direction_ = best_threshold(s, y)
        self.scale_ = float(s.std()) or 1.0
        self.classes_ = np.array([0, 1])
        return self

    def _mean(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return X.mean(1) if X.ndim == 2 else X

    def predict_proba(self, X) -> np.ndarray:
        if self.variant == "vector":
            return super().predict_proba(X)
        z = self.direction_ * (self._mean(X) - self.threshold_) / self.scale_
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        # Ties at the threshold count as members, matching ``predict`` (score >= threshold).
        p = np.where(z == 0, 0.5, p)
        return np.column_stack([1 - p, p])


def best_threshold(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The threshold and direction (+1: members score higher) with the best balanced accuracy on (score, y)."""
    values = np.unique(score)
    cuts = np.concatenate([[values[0] - 1.0], (values[1:] + values[:-1]) / 2, [values[-1] + 1.0]])
    pos, neg = score[y == 1], score[y == 0]
    tpr = (pos[None, :] >= cuts[:, None]).mean(1)
    tnr = (neg[None, :] < cuts[:, None]).mean(1)
    balanced = (tpr + tnr) / 2  # direction +1; direction -1 has balanced accuracy 1 - this
    up, down = int(balanced.argmax()), int(balanced.argmin())
    if balanced[up] >= 1 - balanced[down]:
        return float(cuts[up]), 1.0
    return float(cuts[down]), -1.0
