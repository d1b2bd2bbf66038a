"""Run the configured attacks on one model: query signals, fit each attack, score it, summarise with intervals.

The auditor fits on the target's own signals; the shadow threat model passes ``fitted`` attacks trained on a shadow
model (:func:`fit_attacks`) and only scores here. Every run asserts the protocol (disjoint fit / score ids).

Example:
    >>> query = SignalQuery.for_model(cfg, model_config, source, splits)
    >>> sets = attack_sets(splits, forget_ids, seed=cfg.seed)
    >>> results, signals = run_attacks(model, source, sets, query, cfg)
    >>> results["encodermi_vector"].metrics["auc"]      # (value, lo, hi)
    >>> results["encodermi_vector"].sample_scores["forget"]   # (n_forget,) higher = more member-like

Every attack yields a per-sample membership score (its ``predict_proba`` of "member", higher = more member-like)
for every sample it scores: ``AttackResult.sample_scores[role]`` is aligned with ``AttackResult.set_ids[role]``,
for the roles of :meth:`AttackSets.scored_sets` (``forget``, ``nonmember`` and any ``extra`` set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trainables.attacks.config import REFERENCE_ATTACKS, AttackConfig
from trainables.attacks.estimators import EncoderMI, FeatureAttack
from trainables.attacks.protocol import AttackSets
from trainables.attacks.signals import Signals, compute_signals
from trainables.audit.metrics import bootstrap_metrics, mia_efficacy
from trainables.data.sources import ImageSource
from trainables.data.splits import Splits
from trainables.errors import UserError


@dataclass
class SignalQuery:
    """How a model is queried: view strength and count, temperatures, loss negatives, seed, device."""

    strength: float
    hflip: float
    n_views: int
    softmax_temperature: float
    loss_temperature: float
    negatives: torch.Tensor | None = None
    negative_ids: np.ndarray | None = None
    batch_size: int = 256
    device: Any = "cpu"
    seed: int = 0
    task: str = "head"
    center: bool = False

    @classmethod
    def for_model(cls, cfg: AttackConfig, model_config: dict | None, source: ImageSource, splits: Splits,
                  device: Any = "cpu") -> SignalQuery:
        """Defaults from the model's pretraining config (``meta["config"]``): its augmentation and temperature."""
        model_config = model_config or {}
        augment = model_config.get("augment") or {}
        strength = cfg.augment_strength if cfg.augment_strength is not None else augment.get("strength")
        if strength is None:
            raise UserError("the attack's view strength is unknown: set attack.augment_strength (the model's "
                            "pretraining config is not available)")
        hflip = cfg.hflip if cfg.hflip is not None else augment.get("hflip", 0.5)
        loss_t = cfg.loss_temperature or (model_config.get("model") or {}).get("temperature", 0.1)
        negatives = negative_ids = None
        pool = splits["nonmember_ref"]
        if cfg.loss_negatives and len(pool):
            rng = np.random.default_rng([cfg.seed, 29])
            negative_ids = np.sort(rng.choice(pool, size=min(cfg.loss_negatives, len(pool)), replace=False))
            negatives = source.images[torch.from_numpy(negative_ids)]
        return cls(float(strength), float(hflip), cfg.n_views, cfg.softmax_temperature, float(loss_t), negatives,
                   negative_ids, cfg.batch_size, device, cfg.seed, cfg.output, cfg.center)

    def signals(self, model, source: ImageSource, ids) -> Signals:
        return compute_signals(model, source, ids, strength=self.strength, hflip=self.hflip, n_views=self.n_views,
                               softmax_temperature=self.softmax_temperature, loss_temperature=self.loss_temperature,
                               negatives=self.negatives, negative_ids=self.negative_ids, batch_size=self.batch_size,
                               device=self.device, seed=self.seed, task=self.task,
                               center=self.center)


@dataclass
class AttackResult:
    """One attack scored on one model: per-sample scores, predictions and metrics ``(value, lo, hi)``.

    ``sample_ids`` / ``y`` / ``score`` / ``pred``: the scored forget set then the non-members (label 1 = member);
    ``sample_scores[role]`` / ``set_ids[role]``: the scores by scored set (``forget``, ``nonmember``, extras).
    """

    name: str
    threat_model: str
    sample_ids: np.ndarray
    y: np.ndarray
    score: np.ndarray
    pred: np.ndarray
    metrics: dict[str, tuple[float, float, float]]
    mia_efficacy: float
    extra: dict[str, Any] = field(default_factory=dict)
    sample_scores: dict[str, np.ndarray] = field(default_factory=dict)
    set_ids: dict[str, np.ndarray] = field(default_factory=dict)

    def value(self, metric: str) -> float:
        return self.metrics[metric][0]


def attack_features(name: str, signals: Signals) -> np.ndarray:
    """The feature matrix an attack reads from the signals."""
    if name.startswith("encodermi"):
        return signals.view_cos
    if name == "confidence":
        return signals.confidence_features()
    if name == "combined":
        return np.column_stack([signals.view_cos, signals.confidence_features()])
    if name == "lira":
        from trainables.attacks.reference_scoring import lira_features

        return lira_features(signals)
    raise ValueError(f"unknown attack {name!r}")


def build_attack(name: str, cfg: AttackConfig):
    if name == "encodermi_vector":
        return EncoderMI("vector", cfg.classifier, cfg.seed)
    if name == "encodermi_threshold":
        return EncoderMI("threshold", cfg.classifier, cfg.seed)
    if name == "lira":  # per-example: calibrated on the reference set, not on the target's fit samples
        from trainables.attacks.reference_scoring import ReferenceCalibratedAttack

        return ReferenceCalibratedAttack(cfg)
    return FeatureAttack(cfg.classifier, cfg.seed)


def fit_attacks(fit_signals: Signals, fit_labels: np.ndarray, cfg: AttackConfig) -> dict[str, Any]:
    """Fit every configured attack on reference signals (label 1 = member)."""
    return {name: build_attack(name, cfg).fit(attack_features(name, fit_signals), fit_labels)
            for name in cfg.attacks}


def member_scores(attack, name: str, signals: Signals) -> np.ndarray:
    """(N,) float64 membership scores of one fitted attack (higher = more member-like)."""
    return np.asarray(attack.predict_proba(attack_features(name, signals))[:, 1], dtype=np.float64)


def score_attacks(fitted: dict[str, Any], signals: Signals, labels: np.ndarray, cfg: AttackConfig,
                  threat_model: str, extra: dict[str, Signals] | None = None, *,
                  aligned: Signals | None = None) -> dict[str, AttackResult]:
    """Score ``signals`` (members then non-members, ``labels``) and every ``extra`` set with each fitted attack.
    ``aligned``: the same samples queried on their own (the reference models' order: same views per sample), read
    by the per-example attacks."""
    out = {}
    for name, attack in fitted.items():
        own = aligned if aligned is not None and name in REFERENCE_ATTACKS else signals
        score = member_scores(attack, name, own)
        pred = (score >= 0.5).astype(int)
        metrics = bootstrap_metrics(labels, score, pred, n_boot=cfg.bootstrap, seed=cfg.seed)
        by_set = {"forget": score[labels == 1], "nonmember": score[labels == 0]}
        set_ids = {"forget": signals.sample_ids[labels == 1], "nonmember": signals.sample_ids[labels == 0]}
        for role, sig in (extra or {}).items():
            by_set[role], set_ids[role] = member_scores(attack, name, sig), sig.sample_ids
        out[name] = AttackResult(name, threat_model, signals.sample_ids, labels, score, pred, metrics,
                                 mia_efficacy(pred[labels == 1]), sample_scores=by_set, set_ids=set_ids)
    return out


def run_attacks(model, source: ImageSource, sets: AttackSets, query: SignalQuery, cfg: AttackConfig, *,
                fitted: dict[str, Any] | None = None) -> tuple[dict[str, AttackResult], Signals]:
    """Score ``model``; fit the attacks on its own reference signals unless ``fitted`` (shadow) is given.

    Returns the results and the signals of the scored samples (members first, then non-members); the ``extra``
    sets of ``sets`` are scored too (``AttackResult.sample_scores``).
    """
    sets.check()
    ids = np.concatenate([sets.score_ids, *sets.extra.values()])
    if fitted is None:
        ids = np.concatenate([sets.fit_ids, ids])
    signals = query.signals(model, source, ids)
    if fitted is None:
        fitted = fit_attacks(signals.take(sets.fit_ids), sets.fit_labels, cfg)
    scored = signals.take(sets.score_ids)
    aligned = None
    if any(name in REFERENCE_ATTACKS for name in fitted):
        # the views follow the batch position: query the scored ids alone, as the reference models are
        aligned = scored if len(ids) == len(sets.score_ids) else query.signals(model, source, sets.score_ids)
    extra = {role: signals.take(role_ids) for role, role_ids in sets.extra.items()}
    return score_attacks(fitted, scored, sets.score_labels, cfg, sets.threat_model, extra, aligned=aligned), scored
