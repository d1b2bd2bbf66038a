"""Reference-calibrated per-example membership scores: LiRA offline with a fixed variance.

Carlini et al., "Membership Inference Attacks From First Principles" (IEEE S&P 2022), Algorithm 1, offline variant:
K reference models are trained with the target's recipe on random halves of a data pool, so each sample is OUT
(not trained on) for some of them. For a sample ``i`` with target signal ``x_i`` the score is how far ``x_i`` sits
above what models that never saw ``i`` produce on it:

    score_i = (x_i - mu_out_i) / sigma        mu_out_i = mean of sample i's signals in its OUT references
                                              sigma    = ONE standard deviation for all samples (fixed variance)

This is the one-sided test statistic of the paper (``1 - Pr[Z > x]``, ``Z ~ N(mu_out, sigma^2)`` is monotone in
it); higher = more member-like. The per-sample mean removes how easy a sample is for *any* model (a clean "1" is
confidently classified by every model: a population attack flags it, this score does not). The fixed variance is
what makes small K work: a per-sample variance needs many OUT models per sample, one pooled over every sample needs
only two models overall (Carlini et al. measured the fixed-variance offline attack within 2x of the online one).
RMIA (Zarifzadeh et al., "Low-Cost High-Power Membership Inference Attacks", ICML 2024) is the alternative with a
population ratio; it is not implemented here.

Signals (one number per sample and model, :func:`sample_signal`):

- ``logit_conf`` (classifiers): the logit-scaled true-class confidence ``log(p_y / (1 - p_y))``, computed stably
  from the logits as ``z_y - logsumexp(z_{j != y})`` (Carlini et al., Sec. IV-C: it makes the OUT distribution
  close to Gaussian).
- ``view_cos`` (encoders): the Fisher transform ``atanh`` of the mean pairwise cosine similarity of the augmented
  views (EncoderMI's signal; an overfit encoder maps views of a member closer together).
- ``neg_loss`` (encoders): minus the per-sample NT-Xent loss of two views against a fixed bank of non-member
  negatives (:mod:`trainables.attacks.signals`).

Shapes: N samples, K reference models. ``fit(ref_signals (N, K), in_mask (N, K))``; ``score_samples(x (N,))``
scores the same N samples, row for row.

Example:
    >>> attack = LiRAOffline().fit(ref_signals, in_mask)        # (N, K), (N, K) bool
    >>> scores = attack.score_samples(target_signal)              # (N,), higher = more member-like
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.base import BaseEstimator

from trainables.attacks.signals import Signals

SIGNALS = ("logit_conf", "view_cos", "neg_loss")
# Measured on digits (docs/evaluation.md, "Reference-calibrated attack"): view_cos carries the encoder's signal.
ENCODER_SIGNAL = "view_cos"


def default_signal(method: str | None) -> str:
    """The per-sample signal for a model pretrained with ``method``: classifiers ``logit_conf``."""
    return "logit_conf" if method == "supervised" else ENCODER_SIGNAL


def sample_signal(signals: Signals, kind: str) -> np.ndarray:
    """(N,) one number per sample from a model's :class:`Signals` (higher = the model fits the sample better)."""
    if kind == "logit_conf":
        logits = np.asarray(signals.output, dtype=np.float64)  # (N, C): a classifier's clean logits
        rows = np.arange(len(logits))
        y = np.clip(signals.labels, 0, logits.shape[1] - 1)
        others = logits.copy()
        others[rows, y] = -np.inf
        return logits[rows, y] - logsumexp(others, axis=1)
    if kind == "view_cos":
        return np.arctanh(np.clip(signals.cos_mean.astype(np.float64), -1 + 1e-6, 1 - 1e-6))
    if kind == "neg_loss":
        return -np.asarray(signals.loss, dtype=np.float64)
    raise ValueError(f"unknown reference signal {kind!r}; choose one of {', '.join(SIGNALS)}")


class LiRAOffline(BaseEstimator):
    """LiRA offline, fixed variance. ``fit`` on reference signals, ``score_samples`` a target on the same rows."""

    def __init__(self, min_std: float = 1e-6):
        self.min_std = min_std

    def fit(self, ref_signals, in_mask) -> LiRAOffline:
        """``ref_signals`` (N, K): sample i's signal under reference model k; ``in_mask`` (N, K): k trained on i."""
        x = np.asarray(ref_signals, dtype=np.float64)
        inside = np.asarray(in_mask, dtype=bool)
        if x.ndim != 2 or x.shape != inside.shape:
            raise ValueError(f"ref_signals {x.shape} and in_mask {inside.shape} must both be (N, K)")
        if x.shape[1] < 2:
            raise ValueError(f"a reference-calibrated attack needs at least 2 reference models, got {x.shape[1]}")
        out = ~inside
        n_out = out.sum(1)
        if (n_out == 0).any():
            raise ValueError(f"{int((n_out == 0).sum())} samples are IN every reference model: no OUT signal")
        if not np.isfinite(x[out]).all():
            raise ValueError("the reference signals hold NaN or inf")
        self.mu_out_ = np.where(out, x, 0.0).sum(1) / n_out
        # Pooled within-sample variance over samples with >= 2 OUT signals; else the spread of all OUT signals.
        resid = np.where(out, x - self.mu_out_[:, None], 0.0)
        many = n_out >= 2
        if many.any():
            var = (resid[many] ** 2).sum() / (n_out[many] - 1).sum()
        else:
            var = x[out].var()
        self.sigma_ = max(float(np.sqrt(var)), self.min_std)
        self.n_out_ = n_out
        return self

    def score_samples(self, target_signal) -> np.ndarray:
        """(N,) z-scores ``(x - mu_out) / sigma``; higher = more member-like."""
        x = np.asarray(target_signal, dtype=np.float64)
        if x.shape != self.mu_out_.shape:
            raise ValueError(f"target signal {x.shape} does not match the {len(self.mu_out_)} fitted samples")
        return (x - self.mu_out_) / self.sigma_

    def predict_proba(self, target_signal) -> np.ndarray:
        """(N, 2): ``[1 - p, p]`` with ``p = Phi(score)``, the paper's ``Pr[Z < x]`` under the OUT Gaussian."""
        p = norm.cdf(self.score_samples(target_signal))
        return np.column_stack([1 - p, p])
