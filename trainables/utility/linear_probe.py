"""Linear-probe accuracy: a logistic regression (scikit-learn) on frozen, standardised features.

scikit-learn is imported on first use: every training loop imports this module (through ``eval.utility``), and
sklearn (with scipy) was ~15% of a Ray Train worker's import time before its loop starts, for runs that may never
probe (the unlearning monitor does not).
"""

from __future__ import annotations

import numpy as np


def linear_probe_accuracy(train_x, train_y, test_x, test_y, *, max_iter: int = 500, C: float = 1.0) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=C))
    probe.fit(train_x, np.asarray(train_y))
    return float(probe.score(test_x, np.asarray(test_y)))
