"""The attack protocol: fit and score ids disjoint, scored set balanced, both threat models, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import tiny_job
from trainables.attacks.protocol import AttackSets, attack_sets
from trainables.data import make_splits
from trainables.errors import UserError


@pytest.fixture
def splits(digits_source):
    job = tiny_job(data={"num_members": 300, "num_nonmembers": 300, "shadow_members": 150,
                         "shadow_nonmembers": 150})
    return make_splits(digits_source, job.data)


@pytest.mark.parametrize("threat_model", ["auditor", "shadow"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_and_score_sets_never_overlap(splits, threat_model, seed):
    sets = attack_sets(splits, splits["forget"], threat_model=threat_model, seed=seed)
    assert len(np.intersect1d(sets.fit_ids, sets.score_ids)) == 0
    assert len(sets.score_members) == len(sets.score_nonmembers) > 0
    assert set(sets.score_members) <= set(splits["forget"])
    assert set(sets.score_nonmembers) <= set(splits["nonmember_eval"])
    if threat_model == "auditor":
        assert set(sets.fit_members) <= set(splits["retain"])
        assert set(sets.fit_nonmembers) <= set(splits["nonmember_eval"])
    else:
        assert set(sets.fit_members) <= set(splits["shadow_member"])
        assert set(sets.fit_nonmembers) <= set(splits["shadow_nonmember"])
    assert len(sets.fit_members) == len(sets.fit_nonmembers)


def test_scored_set_is_balanced_when_forget_is_large(splits):
    big_forget = splits["member"][:250]
    sets = attack_sets(splits.with_forget(big_forget), big_forget, seed=0)
    # nonmember_eval holds 150: half B = 75, so 75 forget samples are scored against 75 non-members
    assert len(sets.score_members) == len(sets.score_nonmembers) == 75


def test_check_rejects_overlap_and_imbalance():
    with pytest.raises(AssertionError, match="share 1 sample ids"):
        AttackSets(np.array([1, 2]), np.array([3, 4]), np.array([4]), np.array([5])).check()
    with pytest.raises(AssertionError, match="not balanced"):
        AttackSets(np.array([1]), np.array([2]), np.array([3, 4]), np.array([5])).check()


def test_protocol_errors(digits_source, splits):
    with pytest.raises(UserError, match="not all members"):
        attack_sets(splits, splits["nonmember_eval"][:3])
    with pytest.raises(UserError, match="threat model"):
        attack_sets(splits, splits["forget"], threat_model="oracle")
    no_shadow = make_splits(digits_source, tiny_job().data)
    with pytest.raises(UserError, match="shadow_members"):
        attack_sets(no_shadow, no_shadow["forget"], threat_model="shadow")


def test_unbalanced_sets_score_every_forget_id_and_all_of_half_b(splits):
    forget, earlier = splits["forget"][:7], splits["forget"][7:12]
    sets = attack_sets(splits, forget, seed=0, balanced=False, extra={"earlier": earlier})
    assert np.array_equal(sets.score_members, np.sort(forget))
    assert len(sets.score_nonmembers) == len(splits["nonmember_eval"]) - len(splits["nonmember_eval"]) // 2
    # earlier forgotten ids are scored but never fitted on as "members"
    assert np.array_equal(sets.scored_sets()["earlier"], np.sort(earlier))
    assert len(np.intersect1d(sets.fit_ids, earlier)) == 0
    assert set(sets.scored_sets()) == {"forget", "nonmember", "earlier"}


def test_check_rejects_an_extra_set_that_was_fitted_on():
    with pytest.raises(AssertionError, match="share 1 sample ids"):
        AttackSets(np.array([1]), np.array([2]), np.array([3]), np.array([4]), extra={"earlier": np.array([1])}).check()
