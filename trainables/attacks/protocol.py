"""Which samples an attack is fitted on and which it is scored on, for both threat models.

- ``auditor``: the attacker queries the target itself. ``nonmember_eval`` is split in two halves by a seeded
  permutation; the attack is fitted on the target's ``retain`` vs half A and scored on the forget set vs half B.
- ``shadow``: the attack is fitted on a shadow model's ``shadow_member`` vs ``shadow_nonmember`` and scored on the
  same forget set vs half B of the target.

The scored set is balanced (the larger side subsampled), so accuracy 0.5 is chance; ``balanced=False`` scores
every forget id against all of half B instead (a rank test needs no balance and gains power from every sample).
``extra`` names further sets to score with the same fitted attack (e.g. ``{"earlier": ids}``, the ids forgotten by
earlier batches); they are never fitted on. Fit and score ids never overlap: :meth:`AttackSets.check` asserts it,
and every evaluation calls it.

Example:
    >>> sets = attack_sets(splits, forget_ids, threat_model="auditor", seed=0)
    >>> sets.fit_ids, sets.fit_labels, sets.score_ids, sets.score_labels
    >>> sets.scored_sets()          # {"forget": ids, "nonmember": ids, **extra}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from trainables.data.splits import Splits
from trainables.errors import UserError


@dataclass(frozen=True)
class AttackSets:
    fit_members: np.ndarray
    fit_nonmembers: np.ndarray
    score_members: np.ndarray
    score_nonmembers: np.ndarray
    threat_model: str = "auditor"
    balanced: bool = True
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # role -> further ids scored, never fitted on

    def scored_sets(self) -> dict[str, np.ndarray]:
        """Every scored set by role: ``forget`` (the audited members), ``nonmember`` (half B), then ``extra``."""
        return {"forget": self.score_members, "nonmember": self.score_nonmembers, **self.extra}

    @property
    def fit_ids(self) -> np.ndarray:
        return np.concatenate([self.fit_members, self.fit_nonmembers])

    @property
    def fit_labels(self) -> np.ndarray:
        return np.r_[np.ones(len(self.fit_members), int), np.zeros(len(self.fit_nonmembers), int)]

    @property
    def score_ids(self) -> np.ndarray:
        return np.concatenate([self.score_members, self.score_nonmembers])

    @property
    def score_labels(self) -> np.ndarray:
        return np.r_[np.ones(len(self.score_members), int), np.zeros(len(self.score_nonmembers), int)]

    def check(self) -> AttackSets:
        """Assert the protocol: fit and score sets disjoint, scored set balanced, no id twice."""
        scored = np.concatenate([self.score_ids, *self.extra.values()]) if self.extra else self.score_ids
        overlap = np.intersect1d(self.fit_ids, scored)
        assert len(overlap) == 0, f"attack fit and score sets share {len(overlap)} sample ids"
        assert len(np.unique(self.fit_ids)) == len(self.fit_ids), "a sample id appears twice in the fit set"
        assert len(np.unique(scored)) == len(scored), "a sample id appears twice in the scored sets"
        if self.balanced:
            assert len(self.score_members) == len(self.score_nonmembers), "the scored set is not balanced"
        return self


def _sample(rng: np.random.Generator, ids: np.ndarray, n: int) -> np.ndarray:
    return np.sort(rng.choice(ids, size=n, replace=False)) if n < len(ids) else np.sort(ids)


def attack_sets(splits: Splits, forget_ids, *, threat_model: str = "auditor", seed: int = 0,
                max_fit: int | None = None, max_score: int | None = None, balanced: bool = True,
                extra: Mapping[str, object] | None = None) -> AttackSets:
    """Fit / score ids for ``forget_ids`` (members whose membership is audited) under ``threat_model``.

    ``extra``: role -> member ids also scored (and excluded from the fit set), e.g. earlier forgotten ids.
    """
    forget = np.unique(np.asarray(forget_ids, dtype=np.int64))
    extra_sets = {role: np.unique(np.asarray(ids, dtype=np.int64)) for role, ids in (extra or {}).items()}
    if len(forget) == 0:
        raise UserError("nothing to audit: the forget set is empty")
    members = splits["member"]
    if len(np.setdiff1d(forget, members)):
        raise UserError("the audited forget ids are not all members of the model's training set")
    rng = np.random.default_rng([seed, 17])
    nonmember_eval = rng.permutation(splits["nonmember_eval"])
    if len(nonmember_eval) < 4:
        raise UserError(f"nonmember_eval holds {len(nonmember_eval)} samples; the attacks need at least 4 "
                        f"(two halves: one to fit, one to score)")
    half_a, half_b = np.sort(nonmember_eval[: len(nonmember_eval) // 2]), np.sort(nonmember_eval[len(nonmember_eval) // 2:])
    if balanced:
        n_score = min(len(forget), len(half_b), max_score or len(forget))
        score_members, score_nonmembers = _sample(rng, forget, n_score), _sample(rng, half_b, n_score)
    else:
        score_members, score_nonmembers = forget, half_b
    never_fit = np.concatenate([forget, *extra_sets.values()])
    if threat_model == "auditor":
        fit_pos, fit_neg = np.setdiff1d(members, never_fit), half_a
    elif threat_model == "shadow":
        fit_pos, fit_neg = splits["shadow_member"], splits["shadow_nonmember"]
        if len(fit_pos) == 0 or len(fit_neg) == 0:
            raise UserError("the shadow threat model needs shadow data: pretrain with data.shadow_members and "
                            "data.shadow_nonmembers > 0 (the splits of this checkpoint have none)")
    else:
        raise UserError(f"unknown threat model {threat_model!r}; choose auditor or shadow")
    if len(fit_pos) == 0:
        raise UserError("no retained members to fit the attack on (the forget set holds every member)")
    n_fit = min(len(fit_pos), len(fit_neg), max_fit or len(fit_pos))
    sets = AttackSets(_sample(rng, fit_pos, n_fit), _sample(rng, fit_neg, n_fit), score_members, score_nonmembers,
                      threat_model, balanced, extra_sets)
    return sets.check()
