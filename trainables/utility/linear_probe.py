"""Linear-probe accuracy: a logistic regression (scikit-learn) on frozen, standardised features."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_probe_accuracy(train_x, train_y, test_x, test_y, *, max_iter: int = 500, C: float = 1.0) -> float:
    train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=C))
    probe.fit(train_x, np.asarray(train_y))
    return float(probe.score(test_x, np.asarray(test_y)))
