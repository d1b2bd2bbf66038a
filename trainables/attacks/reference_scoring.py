"""Score any model's samples with a reference set (no training): :func:`reference_scores`, and the ``lira`` attack
of ``unlearn evaluate`` / ``unlearn tune`` (:class:`ReferenceCalibratedAttack`).

The reference models are queried exactly like the target (same :class:`SignalQuery`: views, strength, seed, loss
negatives), and their per-sample signals are cached by sample ids, so auditing several models (original,
unlearned, retrained) or several deletion batches queries each reference once per id set.

Example:
    >>> scores = reference_scores("runs/p.references-k4", model, source, batch_ids)   # (N,), higher = member
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from trainables.attacks.reference import SIGNALS, LiRAOffline, default_signal, sample_signal
from trainables.attacks.reference_set import ReferenceSet, open_reference_set
from trainables.attacks.signals import Signals
from trainables.errors import UserError


def resolve_signal(kind: str | None, method: str | None) -> str:
    return default_signal(method) if kind in (None, "auto") else kind


class ReferenceScorer:
    """A reference set bound to a query: per-sample reference signals (N, K), cached by ids."""

    def __init__(self, ref: ReferenceSet, config=None, *, device: Any = "cpu", source=None):
        from trainables.attacks.runner import SignalQuery
        from trainables.audit.forgetting import as_attack_config
        from trainables.config import DataConfig
        from trainables.jobs.common import load_data

        self.ref, self.cfg = ref, as_attack_config(config)
        self.splits = ref.splits()
        if source is None:
            source, _ = load_data(DataConfig.model_validate(ref.recipe["data"]), self.splits)
        self.source = source
        self.query = SignalQuery.for_model(self.cfg, ref.recipe, source, self.splits, device)
        self.kind = resolve_signal(self.cfg.reference_signal, ref.method)
        self.pool = np.concatenate([self.splits["member"], self.splits["nonmember"]])
        self._cache: dict[bytes, np.ndarray] = {}

    def check_ids(self, ids: np.ndarray) -> None:
        outside = np.setdiff1d(ids, self.pool)
        if len(outside):
            raise UserError(f"{len(outside)} sample ids (e.g. {outside[:5].tolist()}) are not in the data pool of "
                            f"reference set {self.ref.path}: it was built for another model or split")

    def signals(self, ids) -> dict[str, np.ndarray]:
        """``{signal kind: (N, K)}`` of the reference models on ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        key = ids.tobytes()
        if key not in self._cache:
            self.check_ids(ids)
            per_model = []
            for i in range(self.ref.k):
                model = self.ref.load_model(i).to(self.query.device)
                per_model.append(all_signals(self.query.signals(model, self.source, ids)))
            self._cache[key] = np.stack(per_model, axis=-1)  # (N, len(SIGNALS), K)
        return {kind: self._cache[key][:, j, :] for j, kind in enumerate(SIGNALS)}

    def score(self, ids, target_signal: np.ndarray, kind: str | None = None) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        refs = self.signals(ids)[kind or self.kind]
        return LiRAOffline().fit(refs, self.ref.in_mask_for(ids)).score_samples(target_signal)


def all_signals(signals: Signals) -> np.ndarray:
    """(N, len(SIGNALS)): every reference signal kind of one model."""
    return np.column_stack([sample_signal(signals, kind) for kind in SIGNALS])


@lru_cache(maxsize=4)
def _scorer(path: str, sha256: str | None, config_json: str, device: str) -> ReferenceScorer:
    import json

    return ReferenceScorer(open_reference_set(path, expected_sha256=sha256), json.loads(config_json), device=device)


def reference_scores(reference_set: ReferenceSet | str | Path, model, source, ids, *,
                     config: Mapping[str, Any] | None = None, kind: str | None = None,
                     device: Any = "cpu") -> np.ndarray:
    """(N,) LiRA offline scores of ``model`` on ``ids`` (higher = more member-like), calibrated by the reference set.

    ``config``: AttackConfig fields for the query (e.g. ``{"n_views": 6}``; the views, strength and seed must be
    the same for every model compared). ``kind``: the signal (default: by the reference set's method).
    """
    ref = reference_set if isinstance(reference_set, ReferenceSet) else open_reference_set(reference_set)
    scorer = ReferenceScorer(ref, dict(config or {}), device=device, source=source)
    ids = np.asarray(ids, dtype=np.int64)
    target = sample_signal(scorer.query.signals(model, source, ids), kind or scorer.kind)
    return scorer.score(ids, target, kind)


def lira_features(signals: Signals) -> np.ndarray:
    """(N, 1 + len(SIGNALS)): the sample id (per-example attacks are keyed by it), then every signal kind."""
    return np.column_stack([signals.sample_ids.astype(np.float64), all_signals(signals)])


class ReferenceCalibratedAttack:
    """The ``lira`` attack for the attack runner: nothing is fitted on the target (the calibration is the reference
    set); ``predict_proba`` reads :func:`lira_features` rows and returns ``[1 - Phi(z), Phi(z)]``."""

    def __init__(self, cfg):
        import json

        if not cfg.reference_set:
            raise UserError("attack 'lira' needs a reference set: --attack-set reference_set=DIR "
                            "(build one with `unlearn models references build`)")
        self.scorer = _scorer(str(Path(cfg.reference_set).resolve()), None,
                              json.dumps(cfg.model_dump(mode="json"), sort_keys=True), "cpu")
        self.classes_ = np.array([0, 1])

    def fit(self, X, y=None) -> ReferenceCalibratedAttack:
        return self

    def score_samples(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        ids = X[:, 0].astype(np.int64)
        return self.scorer.score(ids, X[:, 1 + SIGNALS.index(self.scorer.kind)])

    def predict_proba(self, X) -> np.ndarray:
        from scipy.stats import norm

        p = norm.cdf(self.score_samples(X))
        return np.column_stack([1 - p, p])
