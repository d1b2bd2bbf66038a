"""Every attack yields one membership score per scored sample, by scored set, aligned with the sample ids."""

from __future__ import annotations

import numpy as np

from tests.conftest import tiny_job
from trainables.attacks.config import ATTACKS, AttackConfig
from trainables.attacks.protocol import attack_sets
from trainables.attacks.runner import SignalQuery, run_attacks
from trainables.data import make_splits
from trainables.jobs.common import new_model


def test_every_attack_scores_every_scored_set(digits_source):
    job = tiny_job("simclr", data={"num_members": 60, "num_nonmembers": 60})
    splits = make_splits(digits_source, job.data)
    model, _ = new_model(job, digits_source, len(splits["member"]))
    forget, earlier = splits["forget"][:5], splits["forget"][5:8]
    cfg = AttackConfig(n_views=3, bootstrap=0, loss_negatives=8)
    sets = attack_sets(splits, forget, seed=0, balanced=False, extra={"earlier": earlier})
    query = SignalQuery.for_model(cfg, job.model_dump(mode="json"), digits_source, splits)
    results, _ = run_attacks(model, digits_source, sets, query, cfg)
    assert set(results) == set(ATTACKS)
    for result in results.values():
        assert set(result.sample_scores) == {"forget", "nonmember", "earlier"}
        for role, ids in sets.scored_sets().items():
            assert np.array_equal(result.set_ids[role], ids)
            assert result.sample_scores[role].shape == (len(ids),)
            assert result.sample_scores[role].dtype == np.float64
            assert np.all((result.sample_scores[role] >= 0) & (result.sample_scores[role] <= 1))
        # the by-set scores are the same numbers as the flat score vector (members first, then non-members)
        assert np.array_equal(np.concatenate([result.sample_scores["forget"], result.sample_scores["nonmember"]]),
                              result.score)
