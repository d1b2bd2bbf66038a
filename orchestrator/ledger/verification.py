"""Verify-before-promote: the gate as a statistical decision, separate from how the scores are measured.

The evidence is per-sample membership scores (higher = more member-like) of the primary attack on this batch's
ids (``forget``), on held-out non-members (``nonmember``, half B of ``nonmember_eval``) and on the ids forgotten by
earlier batches (``earlier``), for the candidate and for its parent, plus per-sample utility correctness of both.

1. **Forgotten** (:func:`membership_test`): a one-sided Mann-Whitney U test that the candidate scores the batch
   higher than the non-members, at level ``alpha``. It must *not* reject.
2. **Power check**: the same test on the *parent* and the same ids must reject (the batch was detectable before
   unlearning). Otherwise the verdict is ``no-signal``: "not forgotten" and "never detectable" cannot be told
   apart on this batch (:func:`gate_verdict`).
3. **No relearning**: the same test on the candidate's scores of the earlier batches' ids must not reject.
4. **Utility**: the drop of the utility accuracy from the parent (kNN for encoders, test accuracy for classifiers),
   through a paired bootstrap on the same evaluation samples; the candidate fails only when the drop is
   significantly above ``max_accuracy_drop``: the lower end of the (1 - 2 alpha) interval (the one-sided bound at
   level alpha) exceeds the cap.
5. Any non-finite score or metric fails.

The final verdict: ``failed`` (with every reason) when 3, 4 or 5 fails or the candidate's test rejects while the
parent's does too; else ``no-signal`` when the parent's test does not reject; else ``verified``.

Why Mann-Whitney: distribution-free (attack scores are probabilities of arbitrary shape), exact for small batches,
valid for unequal group sizes (every held-out non-member adds power), and its U / (n1 n0) is the attack's AUC.
Under "forgotten" the batch is exchangeable with held-out non-members (both are random draws of the same data that
the candidate behaves as if it never saw), which is exactly the test's null hypothesis.

    t = membership_test(member_scores, nonmember_scores, alpha=0.05)    # t.p_value, t.rejects, t.auc
    gate_verdict(candidate_test, parent_test)                            # "verified" | "failed" | "no-signal"
    result = decide(GateScores(...), VerifyConfig())                     # VerificationResult
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from trainables.config import StrictModel

Verdict = Literal["verified", "failed", "no-signal"]
TEST_NAME = "mann-whitney-u-greater"
LEGACY_KEYS = ("attack_metric", "attack_tolerance", "reference")  # the old fixed-tolerance rule (schema 1 ledgers)


class VerifyConfig(StrictModel):
    """The gate's settings (``unlearn schedule run --alpha ... --max-accuracy-drop ... --on-no-signal ...``)."""

    alpha: float = Field(0.05, gt=0, le=0.2, description="level of the one-sided membership tests")
    max_accuracy_drop: float = Field(0.05, ge=0, le=1, description="max utility drop from the parent")
    utility_bootstrap: int = Field(1000, ge=100, le=100_000, description="paired bootstrap resamples of the drop")
    check_earlier: bool = Field(True, description="re-test ids forgotten by earlier batches (relearning)")
    on_no_signal: Literal["hold", "promote"] = Field(
        "hold", description="hold: re-queue the requests (no retry used) and batch them with more; promote: promote "
                            "and record 'not detectable before or after'")
    hold_max_age_hours: float = Field(168.0, gt=0, description="hold no longer than this (oldest request), then "
                                                               "escalate")
    hold_max_size: int = Field(1000, ge=1, description="a batch of this many ids still without signal escalates")
    attack: dict = Field(default_factory=lambda: {"bootstrap": 0},
                         description="AttackConfig fields for the evaluation, e.g. {n_views: 6, max_fit: 500}")

    @model_validator(mode="before")
    @classmethod
    def _drop_legacy(cls, data: Any) -> Any:
        """A batch frozen by the old rule (attack tolerance) still resumes: those keys mean nothing to the gate."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in LEGACY_KEYS}
        return data

    @field_validator("attack")
    @classmethod
    def _valid_attack(cls, attack: dict) -> dict:
        from trainables.attacks.config import AttackConfig

        AttackConfig.model_validate(attack)  # e.g. n_views=abc fails here, before any training
        return attack


@dataclass(frozen=True)
class MembershipTest:
    """One-sided test "members score higher than non-members"; ``auc`` = U / (n_member n_nonmember)."""

    statistic: float
    p_value: float
    alpha: float
    rejects: bool
    n_member: int
    n_nonmember: int
    auc: float
    test: str = TEST_NAME


class NonFiniteScores(ValueError):
    """A score or metric is NaN or infinite: no verdict can rest on it."""


def _finite(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(arr)):
        raise NonFiniteScores(f"{int((~np.isfinite(arr)).sum())} non-finite {name} (NaN or inf)")
    return arr


def membership_test(member_scores, nonmember_scores, *, alpha: float = 0.05) -> MembershipTest:
    """Mann-Whitney U, alternative "greater" (scipy: exact for small samples without ties, else normal
    approximation with tie and continuity correction). ``member_scores`` (n1,), ``nonmember_scores`` (n0,).

    Raises :class:`NonFiniteScores` on NaN / inf. An empty side gives p = 1 (no evidence, never rejects).

    >>> membership_test([0.9, 0.8, 0.95, 0.85] * 5, [0.1, 0.2, 0.3, 0.4] * 5).rejects
    True
    """
    from scipy.stats import mannwhitneyu

    members, nonmembers = _finite("member scores", member_scores), _finite("non-member scores", nonmember_scores)
    n1, n0 = len(members), len(nonmembers)
    if n1 == 0 or n0 == 0:
        return MembershipTest(0.0, 1.0, alpha, False, n1, n0, 0.5)
    res = mannwhitneyu(members, nonmembers, alternative="greater")
    p = float(res.pvalue)
    return MembershipTest(float(res.statistic), p, alpha, p < alpha, n1, n0, float(res.statistic) / (n1 * n0))


def gate_verdict(candidate: MembershipTest, parent: MembershipTest) -> Verdict:
    """parent does not reject -> ``no-signal``; else candidate rejects -> ``failed``; else ``verified``."""
    if not parent.rejects:
        return "no-signal"
    return "failed" if candidate.rejects else "verified"


@dataclass(frozen=True)
class UtilityDrop:
    """Paired bootstrap of ``parent - candidate`` accuracy on the same samples; [ci_low, ci_high] is the
    (1 - 2 alpha) percentile interval, so ``ci_low`` is the one-sided lower bound at level alpha."""

    metric: str
    parent: float
    candidate: float
    drop: float
    ci_low: float
    ci_high: float


def utility_drop(parent_correct, candidate_correct, *, alpha: float = 0.05, n_resamples: int = 1000,
                 seed: int = 0, metric: str = "accuracy") -> UtilityDrop:
    """``parent_correct`` / ``candidate_correct``: (N,) 0/1 per evaluation sample, same samples, same order."""
    from scipy.stats import bootstrap

    par, cand = _finite("utility values", parent_correct), _finite("utility values", candidate_correct)
    if len(par) != len(cand):
        raise ValueError(f"paired utility needs the same samples: {len(par)} vs {len(cand)}")
    drop = float(par.mean() - cand.mean()) if len(par) else 0.0
    if len(par) < 2 or np.all(par - cand == par[0] - cand[0]):  # no variation: the interval is the point
        return UtilityDrop(metric, float(par.mean()) if len(par) else 0.0,
                           float(cand.mean()) if len(cand) else 0.0, drop, drop, drop)
    res = bootstrap((par, cand), lambda a, b, axis=-1: a.mean(axis) - b.mean(axis), paired=True,
                    vectorized=True, n_resamples=n_resamples, confidence_level=1 - 2 * alpha, method="percentile",
                    rng=np.random.default_rng(seed))
    return UtilityDrop(metric, float(par.mean()), float(cand.mean()), drop,
                       float(res.confidence_interval.low), float(res.confidence_interval.high))


@dataclass
class GateScores:
    """What the executor measured. ``candidate`` / ``parent``: role (``forget``, ``nonmember``, ``earlier``) ->
    (sample ids (n,), scores (n,)); ``*_correct``: per-sample utility correctness on the same evaluation samples."""

    attack: str
    candidate: dict[str, tuple[np.ndarray, np.ndarray]]
    parent: dict[str, tuple[np.ndarray, np.ndarray]]
    parent_correct: np.ndarray | None = None
    candidate_correct: np.ndarray | None = None
    utility_metric: str = "accuracy"
    reference_k: int = 0
    extra_metrics: dict[str, float] = field(default_factory=dict)

    def evidence_rows(self) -> list[tuple[int, str, str, float]]:
        """(sample_id, role, model, score) for the evidence file."""
        return [(int(i), role, model, float(s)) for model, sets in (("parent", self.parent),
                                                                   ("candidate", self.candidate))
                for role, (ids, scores) in sets.items() for i, s in zip(ids, scores, strict=True)]


@dataclass
class VerificationResult:
    """What an executor's ``verify`` returns. ``verdict`` defaults from ``passed`` (an executor that only says
    passed / not passed is never read as verified when it failed); ``evidence``: (sample_id, role, model, score)."""

    passed: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    verdict: Verdict | None = None
    evidence: list[tuple[int, str, str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.verdict is None:
            self.verdict = "verified" if self.passed else "failed"
        if self.passed != (self.verdict == "verified"):
            raise ValueError(f"inconsistent verification result: passed={self.passed}, verdict {self.verdict!r}")

    @property
    def verification(self) -> dict[str, Any]:
        return self.metrics.get("verification", {})


def _scores(sets: dict, role: str) -> np.ndarray:
    return np.asarray(sets[role][1], dtype=np.float64) if role in sets else np.zeros(0)


def decide(scores: GateScores, cfg: VerifyConfig) -> VerificationResult:
    """Apply the gate (module docstring) to measured scores; never raises on bad numbers: they fail."""
    failures: list[str] = []
    cand = par = None
    util: UtilityDrop | None = None
    try:
        cand = membership_test(_scores(scores.candidate, "forget"), _scores(scores.candidate, "nonmember"),
                               alpha=cfg.alpha)
        par = membership_test(_scores(scores.parent, "forget"), _scores(scores.parent, "nonmember"),
                              alpha=cfg.alpha)
        earlier = None
        if cfg.check_earlier and len(_scores(scores.candidate, "earlier")):
            earlier = membership_test(_scores(scores.candidate, "earlier"), _scores(scores.candidate, "nonmember"),
                                      alpha=cfg.alpha)
        if scores.parent_correct is not None and scores.candidate_correct is not None:
            util = utility_drop(scores.parent_correct, scores.candidate_correct, alpha=cfg.alpha,
                                n_resamples=cfg.utility_bootstrap, metric=scores.utility_metric)
        for key, value in scores.extra_metrics.items():
            _finite(f"metric {key}", [value])
    except NonFiniteScores as exc:
        failures.append(f"{exc}: refusing to judge")
        earlier = None
    verdict: Verdict = "failed"
    if cand is not None and par is not None:
        verdict = gate_verdict(cand, par)
        if verdict == "failed":
            failures.append(f"the batch is still detectable: {TEST_NAME} p = {cand.p_value:.3g} < alpha {cfg.alpha} "
                            f"(attack AUC {cand.auc:.3f} on {cand.n_member} ids vs {cand.n_nonmember} non-members)")
    if earlier is not None and earlier.rejects:
        failures.append(f"earlier batches relearned: {earlier.n_member} previously forgotten ids are detectable "
                        f"again (p = {earlier.p_value:.3g} < {cfg.alpha}, AUC {earlier.auc:.3f})")
    if util is not None and util.ci_low > cfg.max_accuracy_drop:
        failures.append(f"{util.metric} dropped {util.drop:.3f} ({util.parent:.3f} -> {util.candidate:.3f}), "
                        f"{100 * (1 - 2 * cfg.alpha):.0f}% interval [{util.ci_low:.3f}, {util.ci_high:.3f}] above "
                        f"the cap {cfg.max_accuracy_drop}")
    if failures:
        verdict = "failed"
    reason = "; ".join(failures)
    if verdict == "no-signal":
        reason = (f"no membership signal: even the parent (before unlearning) does not show these {par.n_member} ids "
                  f"as members (p = {par.p_value:.3g} >= alpha {cfg.alpha}, AUC {par.auc:.3f}); forgetting cannot "
                  f"be told from never detectable on this batch")
    record = {
        "verdict": verdict, "test": TEST_NAME,
        "statistic": cand.statistic if cand else None, "p_value": cand.p_value if cand else None,
        "alpha": cfg.alpha, "parent_p_value": par.p_value if par else None,
        "parent_rejects": bool(par.rejects) if par else None,
        "n_forget": len(_scores(scores.candidate, "forget")), "n_nonmember": len(_scores(scores.candidate, "nonmember")),
        "attack": scores.attack, "reference_k": int(scores.reference_k),
        "utility": ({k: v for k, v in asdict(util).items() if k != "metric"} if util else None),
        "reason": reason,
    }
    if earlier is not None:
        record["earlier_p_value"], record["n_earlier"] = earlier.p_value, earlier.n_member
    metrics: dict[str, Any] = {"verification": record, "batch_size": float(record["n_forget"])}
    if cand is not None and par is not None:
        metrics.update(forget_auc=cand.auc, forget_auc_parent=par.auc, p_value=cand.p_value,
                       parent_p_value=par.p_value)
    if util is not None:
        metrics.update(accuracy_parent=util.parent, accuracy_candidate=util.candidate, accuracy_drop=util.drop)
    return VerificationResult(verdict == "verified", metrics, reason, verdict, scores.evidence_rows())
